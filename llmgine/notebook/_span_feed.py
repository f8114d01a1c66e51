"""`SpanFeed`: spans from the observability buffer as waterfall bars, live.

The buffer tells its listeners of every span as it starts and as it ends; the feed's
listener only appends to a deque (it may be called on any thread), and `flush()` applies
what gathered. Bars are ordered depth first by parent and child, each trace after the one
that started before it; a running span's bar reaches "now" and is hatched. `figure()`
turns bars into a plain plotly figure dict (one bar trace per kind, so the legend names
the colours), which `TraceView` applies to its FigureWidget and the dashboard hands to
Panel's Plotly pane.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from html import escape
from typing import Any, Literal

from llmgine import _semconv as sc
from llmgine.bus import Session
from llmgine.errors import ObservabilityError
from llmgine.notebook._event_feed import session_key
from llmgine.observability import Observability, SpanRecord, current

__all__ = [
    "KINDS",
    "KIND_COLOURS",
    "KIND_LABELS",
    "Bar",
    "SpanFeed",
    "figure",
    "observability_for",
    "span_kind",
    "summary_line",
]

KINDS = ("session", "command", "llm", "tool", "other")
KIND_LABELS = {
    "session": "session",
    "command": "command",
    "llm": "LLM call",
    "tool": "tool",
    "other": "other",
}
# Colour-blind-safe (Tableau 10), and apart in lightness for greyscale prints.
KIND_COLOURS = {
    "session": "#9da5b4",
    "command": "#4c78a8",
    "llm": "#f58518",
    "tool": "#54a24b",
    "other": "#b279a2",
}
DEFAULT_MAX_SPANS = 500
INTAKE = 20_000
RUNNING_PATTERN = "/"
ROW_PX = 22
# The span names: left-aligned in the left margin, indented per level of nesting.
LABEL_FONT_PX = 12
_CHAR_PX, _NARROW_PX, _WIDE_PX = 7.0, 4.0, 11.0  # generous, for a 12 px sans-serif
_NARROW = frozenset(" .,:;'|!()[]/\\-_ifjlrtI1")
_WIDE = frozenset("ABCDEFGHJKLMNOPQRSTUVWXYZmw@%&")
LABEL_PAD_PX = 8
INDENT_PX = 16
MAX_LABEL_CHARS = 40  # longer names are cut, whole on hover
TITLE_PX = 36
AXIS_PX = 46  # the x axis's tick labels and title, under the plot
LEGEND_PX = 26  # the legend, under the axis title


def observability_for(bus: Any = None, obs: Observability | None = None) -> Observability:
    """The `Observability` a trace view reads: ``obs``, else the enabled one (observing
    ``bus`` too), else a new one for ``bus``; without a bus and with none enabled, an
    `ObservabilityError` saying what to call."""
    if obs is not None:
        if bus is not None:
            obs.observe(bus)
        return obs
    enabled = current()
    if enabled is not None:
        if bus is not None:
            enabled.observe(bus)
        return enabled
    if bus is None:
        raise ObservabilityError(
            "a trace view reads spans recorded by observability, which is off: call "
            "llmgine.observability.enable(bus) first, or pass bus=your_bus"
        )
    from llmgine import observability

    return observability.enable(bus)


@dataclass(frozen=True)
class Bar:
    """One span as drawn: milliseconds from the first span shown, depth under its root."""

    record: SpanRecord
    kind: str
    depth: int
    start_ms: float
    end_ms: float
    running: bool

    @property
    def span_id(self) -> str:
        return f"{self.record.span_id:016x}"

    @property
    def parent_id(self) -> str | None:
        parent = self.record.parent_id
        return None if parent is None else f"{parent:016x}"

    @property
    def duration_ms(self) -> float:
        return self.end_ms - self.start_ms

    @property
    def label(self) -> str:
        # No-break spaces: plotly trims ordinary leading spaces from tick labels.
        return "\u00a0\u00a0\u00a0" * self.depth + self.record.name

    def hover(self) -> str:
        """The hover text: kind, status, model, tokens, cost, latency, and more."""
        a = self.record.attributes
        lines = [f"<b>{escape(self.record.name)}</b>"]
        status = "running" if self.running else self.record.status
        lines.append(f"{KIND_LABELS[self.kind]} · {status}")
        model = a.get(sc.RESPONSE_MODEL) or a.get(sc.REQUEST_MODEL)
        if model:
            provider = a.get(sc.PROVIDER_NAME)
            lines.append(f"model: {escape(str(model))}" + (f" ({provider})" if provider else ""))
        tokens_in, tokens_out = a.get(sc.USAGE_INPUT_TOKENS), a.get(sc.USAGE_OUTPUT_TOKENS)
        if tokens_in is not None or tokens_out is not None:
            lines.append(f"tokens: {_n(tokens_in)} in / {_n(tokens_out)} out")
        cost = a.get(sc.COST_USD)
        if cost is not None:
            lines.append(f"cost: ${cost:.6f}")
        verb = "running for" if self.running else "latency"
        lines.append(f"{verb}: {self.duration_ms:,.1f} ms")
        ttft = a.get(sc.TIME_TO_FIRST_TOKEN_MS)
        if ttft is not None:
            lines.append(f"first token: {ttft:,.1f} ms")
        for key, name in ((sc.TOOL_NAME, "tool"), (sc.COMMAND_TYPE, "command")):
            if a.get(key) and self.kind != "llm":
                lines.append(f"{name}: {escape(str(a[key]))}")
        if a.get(sc.ERROR_TYPE):
            lines.append(f"error: {escape(str(a[sc.ERROR_TYPE]))}")
        if self.record.status_message:
            lines.append(escape(self.record.status_message[:200]))
        if self.record.session_id:
            lines.append(f"session: {escape(self.record.session_id)}")
        if a.get(sc.SERVICE_NAME):  # a span collected from another process says which
            lines.append(f"service: {escape(str(a[sc.SERVICE_NAME]))}")
        return "<br>".join(lines)


def _n(value: object) -> str:
    return "?" if value is None else f"{value:,}" if isinstance(value, int) else str(value)


def span_kind(record: SpanRecord) -> str:
    """``llmgine.span.kind`` (session, command, llm, tool), else a guess, else "other"."""
    kind = record.attributes.get(sc.SPAN_KIND)
    if kind in KIND_LABELS:
        return str(kind)
    operation = record.attributes.get(sc.OPERATION_NAME)
    if operation == sc.OP_EXECUTE_TOOL:
        return "tool"
    if operation is not None:
        return "llm"
    return "other"


class SpanFeed:
    """The spans of one session (or all), kept up to date from the span buffer.

    Args:
        obs: the observability whose span buffer to read (see `observability_for`).
        session: a `Session` or session id; None for every span.
        max_spans: the most spans drawn (the oldest finished ones go first).
        span: a span id (16 hex digits, as a sweep's ``span_id`` column has it): only
            that span and those under it (a sweep cell's call, of a session of thousands).
    """

    def __init__(
        self,
        obs: Observability,
        *,
        session: str | Session | None = None,
        max_spans: int = DEFAULT_MAX_SPANS,
        span: str | None = None,
    ) -> None:
        if max_spans < 1:
            raise ValueError(f"max_spans must be at least 1, got {max_spans}")
        try:
            self._subtree = set() if span is None else {int(span, 16)}
        except ValueError:
            raise ValueError(f"span is a span id of 16 hex digits, got {span!r}") from None
        self.span = span
        self.obs = obs
        self.max_spans = max_spans
        self.session = session_key(session)
        self.dropped = 0
        self._intake: deque[tuple[str, SpanRecord]] = deque(maxlen=INTAKE)
        self._spans: dict[int, SpanRecord] = {}
        self._traces: set[int] = set()  # traces of the session filtered on
        append = self._intake.append

        def heard(what: Literal["start", "end"], record: SpanRecord) -> None:
            append((what, record))

        # Take what the fan-out still holds, subscribe, then read what is there: a span that
        # ends in between is heard twice, and `_apply` keeps its ended record.
        obs.buffer.catch_up()
        self._unsubscribe: Callable[[], None] | None = obs.buffer.subscribe(heard)
        # By start: a parent before its children (a span filter takes a subtree downwards).
        recorded = sorted(obs.buffer.records(obs.redactor), key=lambda r: r.start_time)
        for record in recorded:
            self._apply("end" if record.end_time is not None else "start", record)
        self._prune()

    @property
    def closed(self) -> bool:
        return self._unsubscribe is None

    def close(self) -> None:
        """Stop listening to the span buffer (what was heard stays drawable)."""
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None

    @property
    def running(self) -> int:
        return sum(1 for r in self._spans.values() if r.end_time is None)

    def __len__(self) -> int:
        return len(self._spans)

    def flush(self) -> bool:
        """Apply the spans heard since the last flush; True if any was new or changed."""
        if self._unsubscribe is not None:
            self.obs.buffer.catch_up()  # a reader: spans held back for the loop's idle turn
        intake = self._intake
        batch = [intake.popleft() for _ in range(len(intake))]
        changed = False
        for what, record in batch:
            changed = self._apply(what, record) or changed
        if changed:
            self._prune()
        return changed

    def _apply(self, what: str, record: SpanRecord) -> bool:
        if not self._wanted(record):
            return False
        known = self._spans.get(record.span_id)
        if known == record:
            return False  # heard twice: nothing changed
        if what == "start":
            if known is not None:
                return False  # already ended, or heard twice
            # Started spans come straight from the SDK, before the buffer's redaction.
            record = self._redacted(record)
        self._spans[record.span_id] = record
        return True

    def _wanted(self, record: SpanRecord) -> bool:
        if self.span is not None:
            # Parents start (and are heard) before their children, so the subtree grows
            # downwards as spans arrive.
            if record.span_id in self._subtree or record.parent_id in self._subtree:
                self._subtree.add(record.span_id)
                return True
            return False
        if self.session is None:
            return True
        if record.session_id == self.session:
            self._traces.add(record.trace_id)
            return True
        return record.trace_id in self._traces

    def _redacted(self, record: SpanRecord) -> SpanRecord:
        redactor = self.obs.redactor
        return record._replace(
            name=redactor.text(record.name),
            attributes=redactor.value(record.attributes),
            status_message=(
                None if record.status_message is None else redactor.text(record.status_message)
            ),
            events=tuple((n, t, redactor.value(a)) for n, t, a in record.events),
        )

    def _prune(self) -> None:
        excess = len(self._spans) - self.max_spans
        if excess <= 0:
            return
        finished = sorted(
            (r for r in self._spans.values() if r.end_time is not None),
            key=lambda r: r.start_time,
        )
        for record in finished[:excess]:
            del self._spans[record.span_id]
            self.dropped += 1

    def records(self) -> list[SpanRecord]:
        return list(self._spans.values())

    def bars(self, now_ns: int | None = None) -> list[Bar]:
        """The spans as bars, depth first (parents before children, by start time)."""
        spans = self._spans
        if not spans:
            return []
        now = time.time_ns() if now_ns is None else now_ns
        children: dict[int | None, list[SpanRecord]] = {}
        for record in spans.values():
            parent = record.parent_id if record.parent_id in spans else None
            children.setdefault(parent, []).append(record)
        for siblings in children.values():
            siblings.sort(key=lambda r: (r.start_time, r.span_id))
        origin = min(r.start_time for r in spans.values())
        bars: list[Bar] = []
        stack = [(root, 0) for root in reversed(children.get(None, []))]
        while stack:
            record, depth = stack.pop()
            end = record.end_time if record.end_time is not None else max(now, record.start_time)
            bars.append(
                Bar(
                    record,
                    span_kind(record),
                    depth,
                    (record.start_time - origin) / 1e6,
                    (end - origin) / 1e6,
                    record.end_time is None,
                )
            )
            stack.extend((c, depth + 1) for c in reversed(children.get(record.span_id, [])))
        return bars


def figure(bars: Iterable[Bar], *, title: str = "", height: int | None = None) -> dict[str, Any]:
    """A plotly figure dict: one horizontal bar trace per kind, rows top to bottom.

    Plotly right-aligns y tick labels, which hides any indentation, so the span names are
    left-aligned annotations in the left margin instead, shifted right by their depth (a
    pixel offset from the plot's edge, so it holds at any width), with the margin sized to
    the longest one. The legend sits at the figure's bottom edge (pixels, not a fraction
    of the plot's height), in a bottom margin that leaves the x-axis title its own room.
    """
    drawn = list(bars)
    data = []
    for kind in KINDS:
        rows = [(i, b) for i, b in enumerate(drawn) if b.kind == kind]
        data.append(
            {
                "type": "bar",
                "orientation": "h",
                "name": KIND_LABELS[kind],
                "legendgroup": kind,
                "showlegend": bool(rows),
                "y": [i for i, _ in rows],
                "base": [b.start_ms for _, b in rows],
                "x": [max(b.duration_ms, 0.001) for _, b in rows],
                "customdata": [b.span_id for _, b in rows],
                "hovertext": [b.hover() for _, b in rows],
                "hovertemplate": "%{hovertext}<extra></extra>",
                "text": ["running…" if b.running else "" for _, b in rows],
                "textposition": "inside",
                "marker": {
                    "color": KIND_COLOURS[kind],
                    "pattern": {"shape": [RUNNING_PATTERN if b.running else "" for _, b in rows]},
                    "line": {"width": 0},
                },
            }
        )
    names = [_short(b.record.name) for b in drawn]
    widest = max(
        (b.depth * INDENT_PX + _text_px(n) for b, n in zip(drawn, names, strict=True)),
        default=0,
    )
    left = LABEL_PAD_PX + widest + LABEL_PAD_PX
    top = TITLE_PX if title else 10
    bottom = AXIS_PX + (LEGEND_PX if drawn else 0)
    layout = {
        "title": {"text": title, "x": 0, "xanchor": "left", "pad": {"l": 8}, "font": {"size": 13}},
        "barmode": "overlay",
        "bargap": 0.25,
        "height": height or max(180, top + bottom + ROW_PX * len(drawn) + 12),
        "margin": {"l": left, "r": 16, "t": top, "b": bottom},
        "xaxis": {
            "title": {"text": "ms since the first span shown", "standoff": 6},
            "rangemode": "tozero",
            "automargin": True,
        },
        "yaxis": {
            "autorange": "reversed",
            "tickmode": "array",
            "tickvals": list(range(len(drawn))),  # one grid line per row
            "showticklabels": False,  # the names are the annotations below
            "automargin": False,
        },
        "annotations": [
            _label(i, bar, name, left)
            for i, (bar, name) in enumerate(zip(drawn, names, strict=True))
        ],
        "legend": {
            "orientation": "h",
            "x": 0,
            "xanchor": "left",
            "y": 0,
            "yanchor": "bottom",
            "yref": "container",
        },
        "hoverlabel": {"align": "left"},
    }
    return {"data": data, "layout": layout}


def _short(name: str) -> str:
    return name if len(name) <= MAX_LABEL_CHARS else name[: MAX_LABEL_CHARS - 1] + "…"


def _text_px(text: str) -> int:
    """A generous width for ``text`` in the labels' 12 px sans-serif (no font metrics
    here): narrow, wide and other characters at their widest common widths."""
    return round(
        sum(_NARROW_PX if c in _NARROW else _WIDE_PX if c in _WIDE else _CHAR_PX for c in text)
    )


def _label(row: int, bar: Bar, name: str, left: int) -> dict[str, Any]:
    """Row ``row``'s name, left-aligned in the margin and indented by its depth."""
    label: dict[str, Any] = {
        "xref": "paper",
        "yref": "y",
        "x": 0,
        "y": row,
        "xanchor": "left",
        "yanchor": "middle",
        "xshift": LABEL_PAD_PX - left + bar.depth * INDENT_PX,
        "align": "left",
        "showarrow": False,
        "text": escape(name, quote=False),
        "font": {"size": LABEL_FONT_PX},
    }
    if name != bar.record.name:
        label["hovertext"] = escape(bar.record.name, quote=False)
    return label


def summary_line(feed: SpanFeed) -> str:
    """``12 spans, 1 running`` (and how many older spans are no longer drawn)."""
    running = feed.running
    text = f"{len(feed)} span{'s' if len(feed) != 1 else ''}"
    if running:
        text += f", {running} running"
    if feed.dropped:
        text += f" ({feed.dropped:,} older not drawn)"
    if feed.session:
        text = f"session {feed.session}: {text}"
    return text
