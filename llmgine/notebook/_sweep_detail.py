"""A `SweepView` cell's detail: its calls in full (answer, scores, error, tokens, cost,
latency) and the trace of its call, or why there is none."""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape
from typing import Any

import ipywidgets as widgets  # type: ignore[import-untyped]

from llmgine._redact import redact_text
from llmgine.observability import Observability

__all__ = ["NO_OBSERVABILITY", "TraceViews", "detail_html", "trace_for"]

_FIELDS = (
    ("finish_reason", "finish"),
    ("input_tokens", "tokens in"),
    ("output_tokens", "tokens out"),
    ("cost_usd", "cost"),
    ("latency_ms", "latency"),
    ("ttft_ms", "first token"),
    ("cache_hit", "from the store"),
)
_ERROR_STYLE = "color:#b00020;white-space:pre-wrap"
NO_OBSERVABILITY = (
    "No trace: this call has no span. Either observability was off when the sweep ran "
    "(call llmgine.observability.enable(bus) and pass bus= to the Sweep, or run it with "
    "%llmgine sweep, whose bus is observed), or the model was passed as a Model object, "
    "which keeps the tracer it was made with (pass its spec, 'provider:model', instead)."
)


def _missing(value: object) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    return str(value) in ("nan", "<NA>", "None")


def _shown(name: str, value: object) -> str:
    if name == "cost_usd":
        return f"${float(value):.6f}"  # type: ignore[arg-type]
    if name in ("latency_ms", "ttft_ms"):
        return f"{float(value):,.0f} ms"  # type: ignore[arg-type]
    return str(value)


def _facts(row: dict[str, Any]) -> str:
    facts = [
        f"{label}: {_shown(name, row[name])}"
        for name, label in _FIELDS
        if name in row and not _missing(row[name])
    ]
    return " · ".join(facts)


def _scores(row: dict[str, Any]) -> str:
    found = []
    for key, value in row.items():
        if isinstance(key, str) and key.startswith("score.") and not _missing(value):
            shown = f"{value:.3f}" if isinstance(value, float) else str(value)
            found.append(f"<b>{escape(key[6:])}</b> {escape(shown)}")
    return " · ".join(found) or "<i>no score</i>"


def detail_html(prompt: str, label: str, rows: Sequence[dict[str, Any]]) -> str:
    """The calls of one cell (one per repeat), every answer in full, escaped."""
    parts = [
        '<div class="llmgine-sweep-detail">',
        f"<p><b>{escape(label)}</b> · {len(rows)} call{'s' if len(rows) != 1 else ''}</p>",
        f'<p><i>prompt:</i> <span style="white-space:pre-wrap">{escape(prompt)}</span></p>',
    ]
    for row in sorted(rows, key=lambda r: int(r.get("repeat") or 0)):
        parts.append(f'<div class="llmgine-sweep-call"><p><b>repeat {row.get("repeat", 0)}</b>')
        parts.append(f" · {_scores(row)}</p>")
        if not _missing(row.get("error_type")):
            # Redacted as every error llmgine shows: a provider's message may echo a key.
            error = redact_text(f"{row['error_type']}: {row.get('error') or ''}")
            parts.append(
                f'<div class="llmgine-sweep-error" style="{_ERROR_STYLE}">{escape(error)}</div>'
            )
        text = row.get("text")
        if not _missing(text):
            parts.append(
                f'<pre class="llmgine-sweep-answer" style="white-space:pre-wrap">'
                f"{escape(str(text))}</pre>"
            )
        parts.append(f"<p><small>{escape(_facts(row))}</small></p></div>")
    parts.append("</div>")
    return "".join(parts)


class TraceViews:
    """The trace views a view's clicks opened, by span, the newest ``keep``: a view shown
    again is reused, and one dropped is closed. Not closed at once when another cell is
    clicked, because a trace view may be displayed elsewhere too (``view.trace_box`` in a
    cell of its own), whose output would lose its widget."""

    def __init__(self, keep: int = 16) -> None:
        self.keep = keep
        self.views: dict[str, Any] = {}

    def get(self, obs: Observability, span: str) -> Any:
        from llmgine.notebook._trace_view import TraceView

        view = self.views.pop(span, None)
        if view is None:
            view = TraceView(obs=obs, span=span)
        self.views[span] = view  # the newest last
        while len(self.views) > self.keep:
            oldest = next(iter(self.views))
            self.views.pop(oldest).close()
        return view

    def close(self) -> None:
        views, self.views = list(self.views.values()), {}
        for view in views:
            view.close()


def trace_for(
    rows: Sequence[dict[str, Any]], obs: Observability | None, traces: TraceViews
) -> tuple[Any, ...]:
    """What shows a cell's trace: a `TraceView` of its first call's span (from
    ``traces``), or a note that says why there is none (observability off when it ran, or
    off now, or the span no longer kept)."""
    spans = [r for r in rows if not _missing(r.get("span_id"))]
    if not spans:
        return (_note(NO_OBSERVABILITY),)
    first = spans[0]
    where = f"span {first['span_id']} of trace {first.get('trace_id')}"
    if obs is None:
        return (_note(f"Observability is off now, so the trace ({where}) cannot be shown."),)
    view = traces.get(obs, str(first["span_id"]))
    if not view.bars:
        return (
            _note(
                f"The trace ({where}) is no longer in the span buffer, which keeps "
                "the newest spans."
            ),
        )
    shown: list[Any] = []
    if len(spans) > 1:
        shown.append(_note(f"The trace of repeat {first.get('repeat', 0)} ({where})."))
    return (*shown, view)


def _note(text: str) -> Any:
    return widgets.HTML(f'<p class="llmgine-sweep-trace-note"><i>{escape(text)}</i></p>')
