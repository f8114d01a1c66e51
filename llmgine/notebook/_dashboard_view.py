"""`Dashboard`: the Events, Trace and Compare tabs over one bus, as a Panel layout.

A served dashboard is a browser page that redraws, on its one thread, whatever the server
sends it. The first version sent everything that changed five times a second: the whole
trace figure (up to 500 bars with their hover text) even while its tab was hidden, and
both session lists. Plotly redrew a hidden chart without pause and the page fell behind:
after two minutes of ``--demo 0.3`` traffic a JavaScript round trip in the page took
seconds, and a fresh page could not switch tabs. So each tick sends only what the page
shows, and only what changed:

- new rows are streamed to the Events table (Panel appends them and drops the oldest past
  ``max_rows``), only while the Events tab is shown; a table hidden meanwhile gets the
  rows it missed streamed the same way when it is shown again (a whole new ``value``
  would make the page rebuild the table, blank for a moment). The page still sets every
  row of the table at each stream (Panel's Tabulator does), so it holds the newest 100;
- the trace figure is redrawn at most once per ``trace_interval``, only while the Trace
  tab is shown (at once when it is opened); the spans are still taken in every
  ``trace_interval``, so nothing is lost while it is hidden. It draws the newest
  ``max_spans`` (50): plotly lays out every row's tick label on each redraw, which took
  2 s for 500 rows in headless Chromium, 80 ms for 100 and 40 ms for 50;
- the filters' choices (event types, sessions) are sent at most once per
  ``trace_interval``, and only when they changed;
- nothing is sent while the page has not yet applied the last ``IN_FLIGHT`` updates. A
  page says which update it applied last (a hidden number the server counts up each
  tick, copied in the page by a ``jslink`` to another that comes back), so a page slowed
  down, by a busy machine or a busy tab, gets fewer updates rather than a growing queue:
  the server kept queueing for a page that had fallen behind, and grew by 400 MB in ten
  minutes. What it missed follows in one update when it has caught up (rows are kept,
  spans taken in). A page that never answers (a notebook, or no browser) is sent to as
  usual.

`Dashboard.refresh` is the exception: it updates every view now, shown or not (for a
notebook, or a test, that wants everything current).
"""

from __future__ import annotations

import asyncio
import html
import math
import time
from collections.abc import Sequence
from typing import Any

import pandas as pd
import panel as pn
from panel.viewable import Viewer

from llmgine._redact import redacting_logger
from llmgine.bus import MessageBus, Session
from llmgine.llm import Model
from llmgine.notebook._event_feed import EventFeed, Row
from llmgine.notebook._span_feed import SpanFeed, figure, observability_for, summary_line
from llmgine.notebook._static_html import counts_line
from llmgine.observability import Observability

__all__ = [
    "DEFAULT_INTERVAL",
    "DEFAULT_MAX_SPANS",
    "DEFAULT_MODELS",
    "DEFAULT_TABLE_ROWS",
    "DEFAULT_TRACE_INTERVAL",
    "Dashboard",
    "dashboard",
]

log = redacting_logger("llmgine.notebook")

DEFAULT_MODELS = ("demo:llmgine-demo", "demo:llmgine-demo-2")
DEFAULT_INTERVAL = 0.2
# A figure of hundreds of bars costs the page far more to draw than a few rows, and a
# waterfall redrawn once a second still reads as live.
DEFAULT_TRACE_INTERVAL = 1.0
DEFAULT_MAX_SPANS = 50  # see the module's docstring: the redraw's cost grows with rows
DEFAULT_TABLE_ROWS = 100  # Panel sends, and the page sets, every row again at each update
IN_FLIGHT = 3  # updates a page may have still to apply before the next one waits
EVENT_COLUMNS = ["seq", "time", "type", "session", "summary", "id"]
EVENTS_TAB, TRACE_TAB, COMPARE_TAB = 0, 1, 2
ALL = ""


class Dashboard(Viewer):
    """The three views over one bus, as a Panel layout (``.servable()``, or display it).

    Made by `dashboard`; `refresh()` updates every view now, `close()` stops watching.
    """

    def __init__(
        self,
        bus: MessageBus,
        *,
        session: str | Session | None = None,
        models: Sequence[str] = DEFAULT_MODELS,
        obs: Observability | None = None,
        max_rows: int = DEFAULT_TABLE_ROWS,
        max_spans: int = DEFAULT_MAX_SPANS,
        interval: float | None = DEFAULT_INTERVAL,
        trace_interval: float = DEFAULT_TRACE_INTERVAL,
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        if interval is not None and interval <= 0:
            raise ValueError(f"interval must be positive seconds (or None), got {interval}")
        if trace_interval <= 0:
            raise ValueError(f"trace_interval must be positive seconds, got {trace_interval}")
        self.bus = bus
        self.obs = observability_for(bus, obs)
        self.events = EventFeed(bus, max_rows=max_rows)
        self.max_spans = max_spans
        self.spans = SpanFeed(self.obs, session=session, max_spans=max_spans)
        self.trace_interval = trace_interval
        self._callback: Any = None
        self._compare_view: Any = None
        self._waiters: list[asyncio.Future[None]] = []
        self._table_rebuild = False  # the rows changed wholesale (filters, pause)
        self._table_seq = -1  # the sequence number of the table's newest row
        self._trace_stale = False  # spans changed since the figure was drawn
        self._slow_at = -math.inf  # time.monotonic() of the last trace and filter update
        self._closed = False
        self.refreshes = 0
        self.layout = pn.Tabs(  # type: ignore[no-untyped-call]
            ("Events", self._events_tab()),
            ("Trace", self._trace_tab()),
            ("Compare", self._compare_tab(models)),
            css_classes=["llmgine-dashboard"],
            sizing_mode="stretch_width",
        )
        self.layout.param.watch(self._tab_changed, "active")
        # The page's acknowledgement: it copies each update's number once applied.
        self._sent = pn.widgets.IntInput(value=0, visible=False)  # type: ignore[no-untyped-call]
        self._applied = pn.widgets.IntInput(value=0, visible=False)  # type: ignore[no-untyped-call]
        self._sent.jslink(self._applied, value="value")
        acknowledgement = pn.Row(self._sent, self._applied, visible=False)
        self.view = pn.Column(self.layout, acknowledgement, sizing_mode="stretch_width")
        self.refresh()
        if interval is not None:
            self._callback = pn.state.add_periodic_callback(self.tick, int(interval * 1000))
            if pn.state.curdoc is not None and pn.state.curdoc.session_context is not None:
                pn.state.on_session_destroyed(lambda _: self.close())

    def __panel__(self) -> pn.Column:
        return self.view

    @property
    def closed(self) -> bool:
        """Whether `close` ran (its page went away, or its server stopped)."""
        return self._closed

    @property
    def shown(self) -> int:
        """The tab the page shows: 0 Events, 1 Trace, 2 Compare."""
        return int(self.layout.active)

    # -- the events tab ----------------------------------------------------------------

    def _events_tab(self) -> pn.Column:
        self.pause = pn.widgets.Toggle(label="pause", css_classes=["llmgine-dashboard-pause"])
        self.type_filter = pn.widgets.MultiChoice(  # type: ignore[no-untyped-call]
            label="event types", options=[], placeholder="all types", width=320
        )
        self.session_filter = pn.widgets.Select(label="session", options={"all sessions": ALL})  # type: ignore[no-untyped-call]
        self.event_counts = pn.pane.HTML("", css_classes=["llmgine-dashboard-counts"])  # type: ignore[no-untyped-call]
        self.event_table = pn.widgets.Tabulator(  # type: ignore[no-untyped-call]
            pd.DataFrame(columns=EVENT_COLUMNS),
            row_content=self._payload_pane,
            hidden_columns=["seq", "id"],
            show_index=False,
            disabled=True,
            layout="fit_data_stretch",
            height=420,
            sizing_mode="stretch_width",
            css_classes=["llmgine-dashboard-events"],
        )
        self.pause.param.watch(self._pause_changed, "value")
        self.type_filter.param.watch(self._filters_changed, "value")
        self.session_filter.param.watch(self._filters_changed, "value")
        return pn.Column(
            pn.Row(self.pause, self.type_filter, self.session_filter, self.event_counts),
            self.event_table,
            sizing_mode="stretch_width",
        )

    def _payload_pane(self, row: pd.Series) -> pn.pane.HTML:
        payload = self.events.payload(str(row["id"]))
        return pn.pane.HTML(  # type: ignore[no-untyped-call]
            f'<pre class="llmgine-event-payload">{html.escape(payload)}</pre>',
            sizing_mode="stretch_width",
        )

    def _pause_changed(self, event: Any) -> None:
        if event.new:
            self.events.pause()
        else:
            self.events.resume()
        self._refresh_events(table=self.shown == EVENTS_TAB, choices=False)

    def _filters_changed(self, event: Any) -> None:
        self.events.set_filter(
            types=list(self.type_filter.value) or None, session=self.session_filter.value or None
        )
        self._refresh_events(table=self.shown == EVENTS_TAB, choices=False)

    def _refresh_events(self, *, table: bool, choices: bool, counts: bool = True) -> None:
        update = self.events.flush()
        self._table_rebuild = self._table_rebuild or update.rebuilt
        if table:
            self._sync_table()
        if choices:
            self._refresh_choices()
        if counts:
            paused = " · paused" if self.events.paused else ""
            self.event_counts.object = html.escape(counts_line(self.events.counts()) + paused)

    def _sync_table(self) -> None:
        """Bring the table up to the feed's rows. New rows are streamed (only they travel,
        and the page keeps its table); a new ``value`` is set only when the rows changed
        wholesale, as it makes Panel send the table's configuration again and the page
        build the table anew, blank meanwhile."""
        if self._table_rebuild:
            self._table_rebuild = False
            rows = self.events.rows
            self.event_table.value = pd.DataFrame(rows, columns=EVENT_COLUMNS)
        else:
            rows = self._rows_after(self._table_seq)
            if not rows:
                return
            frame = pd.DataFrame(rows, columns=EVENT_COLUMNS)
            self.event_table.stream(frame, rollover=self.events.max_rows)  # type: ignore[no-untyped-call]
        self._table_seq = int(rows[-1]["seq"]) if rows else -1

    def _rows_after(self, seq: int) -> list[Row]:
        rows = self.events.rows
        start = len(rows)
        while start > 0 and rows[start - 1]["seq"] > seq:
            start -= 1
        return rows[start:]

    def _refresh_choices(self) -> None:
        # Panel sends options whenever they are set, equal or not: compare first.
        types = self.events.types_seen()
        if types != list(self.type_filter.options):
            self.type_filter.options = types
        sessions = {"all sessions": ALL} | {s: s for s in self.events.sessions_seen()}
        if sessions != self.session_filter.options:
            self.session_filter.options = sessions
        if sessions != self.trace_session.options:
            self.trace_session.options = sessions

    # -- the trace tab -----------------------------------------------------------------

    def _trace_tab(self) -> pn.Column:
        self.trace_session = pn.widgets.Select(  # type: ignore[no-untyped-call]
            label="session", options={"all sessions": ALL}, value=self.spans.session or ALL
        )
        self.trace_summary = pn.pane.HTML("", css_classes=["llmgine-dashboard-trace-summary"])  # type: ignore[no-untyped-call]
        self.trace_pane = pn.pane.Plotly(  # type: ignore[no-untyped-call]
            figure([]), css_classes=["llmgine-dashboard-trace"], sizing_mode="stretch_width"
        )
        self.trace_session.param.watch(self._trace_session_changed, "value")
        return pn.Column(
            pn.Row(self.trace_session, self.trace_summary),
            self.trace_pane,
            sizing_mode="stretch_width",
        )

    def _trace_session_changed(self, event: Any) -> None:
        if (event.new or None) == self.spans.session:
            return
        self.spans.close()
        self.spans = SpanFeed(self.obs, session=event.new or None, max_spans=self.max_spans)
        self._trace_stale = True
        self._refresh_trace(draw=True)

    def _refresh_trace(self, *, draw: bool) -> None:
        """Take in the spans heard; draw them if ``draw`` and anything changed (a running
        span's bar grows, so it counts as a change)."""
        self._trace_stale = self.spans.flush() or self._trace_stale or bool(self.spans.running)
        if draw and self._trace_stale:
            self._trace_stale = False
            self.trace_pane.object = figure(self.spans.bars())
            self.trace_summary.object = html.escape(summary_line(self.spans))

    # -- the compare tab ---------------------------------------------------------------

    def _compare_tab(self, models: Sequence[str]) -> pn.Column:
        self.prompt = pn.widgets.TextAreaInput(
            label="prompt",
            placeholder="One prompt, sent to every model",
            height=100,
            sizing_mode="stretch_width",
            css_classes=["llmgine-dashboard-prompt"],
        )
        self.models = pn.widgets.TextInput(
            label="models (comma-separated provider:model specs)",
            value=", ".join(models),
            sizing_mode="stretch_width",
        )
        self.compare_button = pn.widgets.Button(  # type: ignore[no-untyped-call]
            label="Compare", color="primary", css_classes=["llmgine-dashboard-compare"]
        )
        self.compare_output = pn.Column(sizing_mode="stretch_width")
        self.compare_button.on_click(self._compare_clicked)
        return pn.Column(
            self.prompt, self.models, self.compare_button, self.compare_output,
            sizing_mode="stretch_width",
        )  # fmt: skip

    async def _compare_clicked(self, event: Any) -> None:
        await self.compare()

    async def compare(
        self, prompt: str | None = None, models: Sequence[str | Model] | None = None
    ) -> Any:
        """Run a `CompareView` of ``prompt`` on ``models`` (by default what the tab holds)
        on this dashboard's bus and show it; returns its results (None if it could not
        start: the tab says why)."""
        text = (self.prompt.value or "" if prompt is None else prompt).strip()
        specs = list(models) if models is not None else split_specs(self.models.value or "")
        if not text or not specs:
            self._compare_message("Type a prompt and at least one provider:model spec.")
            return None
        try:
            from llmgine.notebook._compare_view import CompareView
        except ImportError as exc:
            log.exception("CompareView could not be imported")
            self._compare_message(f"CompareView is not available: {exc}")
            return None
        try:
            view = CompareView(specs, text, bus=self.bus)
        except (TypeError, ValueError) as exc:
            self._compare_message(str(exc))
            return None
        if self._compare_view is not None:
            self._compare_view.close()
        self._compare_view = view
        self.compare_button.disabled = True
        self._show_compare(view)
        try:
            results = await view.run()
        finally:
            self.compare_button.disabled = False
            self._show_compare(view)
        return results

    def _compare_message(self, text: str) -> None:
        self.compare_output.objects = [
            pn.pane.HTML(  # type: ignore[no-untyped-call]
                f'<p class="llmgine-dashboard-compare-message">{html.escape(text)}</p>'
            )
        ]

    def _show_compare(self, view: Any) -> None:
        self.compare_output.objects = [
            pn.pane.HTML(view._repr_html_(), css_classes=["llmgine-dashboard-compare-result"]),  # type: ignore[no-untyped-call]
            pn.pane.Plotly(view.figure(), sizing_mode="stretch_width"),  # type: ignore[no-untyped-call]
        ]

    def _refresh_compare(self) -> None:
        view = self._compare_view
        if view is not None and self.compare_button.disabled:
            self.compare_output.objects[0].object = view._repr_html_()  # answers streaming in

    # -- refreshing --------------------------------------------------------------------

    def refresh(self) -> None:
        """Update every view now, shown or not, from what the bus and the span buffer did
        since the last update."""
        self._refresh_events(table=True, choices=True)
        self._refresh_trace(draw=True)
        self._refresh_compare()
        self._refreshed()

    @property
    def unapplied(self) -> int:
        """Updates sent that the page has not applied yet (0 until a page answers)."""
        applied = int(self._applied.value or 0)
        return int(self._sent.value or 0) - applied if applied else 0

    def tick(self) -> None:
        """The periodic update: what the page shows, and what changed, if the page keeps
        up (see the module's docstring for why not everything)."""
        shown, now = self.shown, time.monotonic()
        send = self.unapplied < IN_FLIGHT
        slow = now - self._slow_at >= self.trace_interval
        if slow:
            self._slow_at = now
        self._refresh_events(
            table=send and shown == EVENTS_TAB, choices=send and slow, counts=send
        )  # the feed takes in what arrived either way: it stays bounded
        if slow:
            self._refresh_trace(draw=send and shown == TRACE_TAB)
        if send:
            if shown == COMPARE_TAB:
                self._refresh_compare()
            self._sent.value = int(self._sent.value or 0) + 1
        self._refreshed()

    def _tab_changed(self, event: Any) -> None:
        # What a hidden tab skipped, at once (not at the next tick: the page just opened it).
        if event.new == EVENTS_TAB:
            self._sync_table()
        elif event.new == TRACE_TAB:
            self._refresh_trace(draw=True)
            self._slow_at = time.monotonic()

    def _refreshed(self) -> None:
        self.refreshes += 1
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    async def next_refresh(self) -> None:
        """Return once the dashboard refreshed again (by its periodic tick, or a call)."""
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        await waiter

    def close(self) -> None:
        """Stop refreshing and watching the bus and the span buffer."""
        self._closed = True
        if self._callback is not None:
            self._callback.stop()
            self._callback = None
        self.events.close()
        self.spans.close()
        if self._compare_view is not None:
            self._compare_view.close()
            self._compare_view = None

    def _repr_html_(self) -> str:
        return (
            '<div class="llmgine-dashboard-static"><b>llmgine dashboard</b>: events '
            f"{html.escape(counts_line(self.events.counts()))}; trace "
            f"{html.escape(summary_line(self.spans))}</div>"
        )


def split_specs(text: str) -> list[str]:
    return [s.strip() for s in text.replace("\n", ",").split(",") if s.strip()]


def dashboard(
    bus: MessageBus,
    *,
    session: str | Session | None = None,
    models: Sequence[str] = DEFAULT_MODELS,
    obs: Observability | None = None,
    max_rows: int = DEFAULT_TABLE_ROWS,
    max_spans: int = DEFAULT_MAX_SPANS,
    interval: float | None = DEFAULT_INTERVAL,
    trace_interval: float = DEFAULT_TRACE_INTERVAL,
) -> Dashboard:
    """The workbench dashboard for ``bus``: Events, Trace and Compare tabs.

    Observability is enabled for ``bus`` if it is off (the trace tab reads its spans).

    Args:
        bus: the bus to watch, and to run comparisons on.
        session: the session the trace tab starts on (None: every span).
        models: the model specs the compare tab starts with.
        obs: the `Observability` to read spans from (by default the enabled one).
        max_rows: event rows shown (the newest).
        max_spans: spans drawn in the trace (the newest; the summary counts the others).
        interval: seconds between updates of the tab shown (None: only when
            `Dashboard.refresh` is called).
        trace_interval: seconds between redraws of the trace figure and updates of the
            filters' choices (the heavier things to send and to draw).

    Example:
        import panel as pn
        pn.extension("tabulator", "plotly")
        dashboard(bus)                 # a notebook cell; or dashboard(bus).servable()
    """
    return Dashboard(
        bus,
        session=session,
        models=models,
        obs=obs,
        max_rows=max_rows,
        max_spans=max_spans,
        interval=interval,
        trace_interval=trace_interval,
    )
