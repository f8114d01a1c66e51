"""`TraceView`: a session's spans as a live waterfall (plotly's FigureWidget).

A VBox of a one-line summary and a `plotly.graph_objects.FigureWidget` (an anywidget in
plotly 6+, with plotly.js shipped in the plotly package: no CDN). Bars run from each
span's start to its end, one row per span, children under their parent; colour says the
kind (session, command, LLM call, tool); hovering shows model, tokens, cost and latency.
Running spans reach "now", hatched, and grow until they end: the view redraws on a
throttled ticker while any span runs or new ones arrive, never per span.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from html import escape
from typing import Any

import ipywidgets  # type: ignore[import-untyped]
import plotly.graph_objects as go  # type: ignore[import-untyped]

from llmgine.bus import MessageBus, Session
from llmgine.notebook._span_feed import (
    DEFAULT_MAX_SPANS,
    KIND_LABELS,
    Bar,
    SpanFeed,
    figure,
    observability_for,
    summary_line,
)
from llmgine.notebook._static_html import html_table
from llmgine.notebook._static_image import figure_png, png_html
from llmgine.notebook._ticker import Ticker
from llmgine.observability import Observability
from llmgine.observability import semconv as sc

__all__ = ["TraceView"]

DEFAULT_INTERVAL = 0.2  # five redraws a second at most, while something changes


class TraceView(ipywidgets.VBox):  # type: ignore[misc]  # ipywidgets is untyped
    """The spans of a session (or of everything observed) as a waterfall, live.

    Args:
        session: a `Session` or session id; None for every span recorded.
        bus: a bus to observe (observability is enabled for it if it is off).
        obs: the `Observability` to read (by default the enabled one).
        max_spans: the most spans drawn (the oldest finished ones go first).
        interval: seconds between redraws at most.
        height: the figure's height in pixels (by default it grows with the spans).
        span: only this span (16 hex digits) and the spans under it, e.g. one call of
            a sweep (its row's ``span_id``), which `SweepView` shows for a clicked cell.

    Raises:
        ObservabilityError: observability is off and no ``bus`` was given.

    Example:
        observability.enable(bus)
        async with bus.session("chat") as session:
            view = TraceView(session)
            view                                 # displays, and follows the session
            await session.execute(Generate(request=LLMRequest(messages=[ChatMessage.user("hi")])))
    """

    def __init__(
        self,
        session: str | Session | None = None,
        *,
        bus: MessageBus | None = None,
        obs: Observability | None = None,
        max_spans: int = DEFAULT_MAX_SPANS,
        interval: float = DEFAULT_INTERVAL,
        height: int | None = None,
        span: str | None = None,
        **kwargs: Any,
    ) -> None:
        ticker = Ticker(self._tick, interval)
        feed = SpanFeed(
            observability_for(bus, obs), session=session, max_spans=max_spans, span=span
        )
        self._ticker, self.feed = ticker, feed
        self.height = height
        self.bars: list[Bar] = []
        self.renders = 0
        self._png: tuple[str, bytes | None] | None = None
        self.summary = ipywidgets.HTML()
        self.summary.add_class("llmgine-trace-summary")
        # Born with the spans there are, not drawn into afterwards: plotly's page side
        # applies an update only once its script has loaded, and one sent before that
        # (a 5 MB script, seconds on a busy machine) is lost, so a view of a finished
        # session updated right after it was made could stay empty for good.
        feed.flush()
        self.bars = feed.bars()
        self.figure = go.FigureWidget(self._spec())
        self.figure.add_class("llmgine-trace-figure")
        super().__init__(children=[self.summary, self.figure], **kwargs)
        self.add_class("llmgine-trace")
        self._show_counts()
        self._ticker.start()

    @property
    def ticks(self) -> int:
        return self._ticker.ticks

    def refresh(self) -> bool:
        """Take in the spans heard and redraw now; True if anything was drawn anew."""
        changed = self.feed.flush()
        if changed or self.feed.running:
            self._draw()
            return True
        return False

    async def next_refresh(self) -> None:
        """Return once the throttled redraw has run again (at once if it is not running)."""
        await self._ticker.next_tick()

    def close(self) -> None:
        """Stop following the span buffer and close the widgets."""
        # Also called by the widget's __del__, when __init__ may have failed early.
        ticker = getattr(self, "_ticker", None)
        if ticker is not None:
            ticker.stop()
        for part in ("feed", "figure", "summary"):
            owned = getattr(self, part, None)
            if owned is not None:
                owned.close()
        super().close()

    def _tick(self) -> None:
        self.refresh()

    def _spec(self) -> dict[str, Any]:
        return figure(self.bars, title=self._title(), height=self.height)

    def _draw(self) -> None:
        self.bars = self.feed.bars()
        spec = self._spec()
        layout = dict(spec["layout"])
        # A merging update would change existing annotations in place and never drop one
        # (plotly's update merges arrays element by element): the row labels are replaced.
        labels = layout.pop("annotations")
        with self.figure.batch_update():
            for trace, data in zip(self.figure.data, spec["data"], strict=True):
                trace.update(data, overwrite=True)
            self.figure.layout.update(layout, overwrite=False)
            self.figure.layout.annotations = labels
        self._show_counts()

    def _show_counts(self) -> None:
        counts = escape(summary_line(self.feed))
        self.summary.value = f'<span class="llmgine-trace-counts">{counts}</span>'
        self.renders += 1

    def _title(self) -> str:
        records = self.feed.records()
        if not records:
            return "no spans yet"
        first = min(r.start_time for r in records)
        started = datetime.fromtimestamp(first / 1e9, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        return f"{summary_line(self.feed)} · from {started}"

    # -- text, HTML and an image, for saved notebooks -----------------------------------

    def png(self) -> bytes | None:
        """A PNG of the waterfall for saved notebooks, once its spans have all ended (None
        while any runs, with no spans, or where no image can be made: see
        `llmgine.notebook.chart`); made once per state of the view."""
        self._catch_up()
        return self._png_as_drawn()

    def _catch_up(self) -> None:
        if not self.feed.closed:
            self.refresh()

    def _png_as_drawn(self) -> bytes | None:
        if not self.bars or self.feed.running:
            return None
        key = self._title() + "\n" + "\n".join(map(repr, map(_cells, self.bars)))
        if self._png is None or self._png[0] != key:
            self._png = (key, figure_png(self.figure))
        return self._png[1]

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any]:
        # The widget view, and for a saved notebook (GitHub, nbviewer) the waterfall as a
        # PNG, both as image/png and in the HTML (which such renderers prefer), above the
        # table of spans. Every part from one refresh: spans arrive from other threads
        # (a collector's), and a text made before it would count fewer than the HTML.
        self._catch_up()
        bundle: dict[str, Any] = super()._repr_mimebundle_(**kwargs) or {}
        png = self._png_as_drawn()
        if png is not None:
            bundle["image/png"] = base64.b64encode(png).decode("ascii")
        bundle["text/plain"] = repr(self)
        bundle["text/html"] = self._static_html(png)
        return bundle

    def _repr_html_(self) -> str:
        self._catch_up()
        return self._static_html(self._png_as_drawn())

    def _static_html(self, png: bytes | None) -> str:
        # The waterfall's PNG (once its spans have ended) above the table of spans.
        chart = png_html(png, f"TraceView: {summary_line(self.feed)}")
        return chart + html_table(
            "llmgine-trace llmgine-trace-static",
            f"TraceView: {summary_line(self.feed)}",
            ("span", "kind", "start ms", "duration ms", "status", "model", "tokens", "cost"),
            ((f"llmgine-trace-row llmgine-trace-{b.kind}", _cells(b)) for b in self.bars),
            note="" if self.bars else "no spans yet",
        )

    def __repr__(self) -> str:
        if getattr(self, "feed", None) is None:
            return "<TraceView (not set up)>"
        state = "closed" if self.feed.closed else "live"
        return f"<TraceView {state}: {summary_line(self.feed)}>"


def _cells(bar: Bar) -> tuple[str, ...]:
    a = bar.record.attributes
    tokens_in, tokens_out = a.get(sc.USAGE_INPUT_TOKENS), a.get(sc.USAGE_OUTPUT_TOKENS)
    cost = a.get(sc.COST_USD)
    return (
        bar.label,
        KIND_LABELS[bar.kind],
        f"{bar.start_ms:,.1f}",
        f"{bar.duration_ms:,.1f}" + (" (running)" if bar.running else ""),
        "running" if bar.running else bar.record.status,
        str(a.get(sc.RESPONSE_MODEL) or a.get(sc.REQUEST_MODEL) or ""),
        "" if tokens_in is None and tokens_out is None else f"{tokens_in} in / {tokens_out} out",
        "" if cost is None else f"${cost:.6f}",
    )
