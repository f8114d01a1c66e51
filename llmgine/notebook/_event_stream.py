"""`EventStream`: a bus's events, live in a notebook.

An anywidget: its front end is one ES module shipped in the package
(``static/event_stream.js``, source in ``extension/src/``). The bus's hot path pays one
deque append per event (see `EventFeed`); a `Ticker` on the kernel's event loop flushes
at most ten times a second, so a bus publishing 50,000 events a second costs the kernel
a few hundred formatted rows per flush, never one message per event.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from html import escape
from typing import Any

import anywidget
import traitlets

from llmgine._redact import Redactor
from llmgine.bus import MessageBus, Session
from llmgine.notebook._event_feed import (
    DEFAULT_CAPACITY,
    DEFAULT_MAX_ROWS,
    EventFeed,
    FeedUpdate,
    Row,
    TypeSpec,
)
from llmgine.notebook._static_html import asset, counts_line, html_table
from llmgine.notebook._ticker import Ticker

__all__ = ["EventStream"]

_COMPACT = (",", ":")
DEFAULT_INTERVAL = 0.1  # ten renders a second at most
HTML_ROWS = 50  # rows in the static HTML of a saved notebook
EXPANDED_MAX = 20  # payloads held for the front end at once


class EventStream(anywidget.AnyWidget):
    """The live events of a bus: type, session, time and a summary per row; click a row
    for its payload as JSON. Every value shown is redacted.

    Args:
        bus: the bus to watch, from now on.
        types: show only these event types (classes or names); None for all.
        session: show only this session's events (a `Session` or its id).
        max_rows: the newest rows shown (older ones scroll away; counts stay exact).
        capacity: events kept for filters and payloads (at least ``max_rows``).
        interval: seconds between renders at most (0.1: ten a second).
        redactor: the redactor for rows and payloads (llmgine's default if None).

    Without a running event loop (a plain script) nothing refreshes by itself: call
    `flush()`. `close()` stops watching the bus.

    Example:
        stream = EventStream(bus, types=["LLMCallCompleted"])
        stream                      # displays; rows arrive as the bus delivers events
        stream.pause(); stream.resume()
        stream.close()
    """

    _esm = asset("event_stream.js")
    _css = asset("event_stream.css")

    # The rows go as one JSON string: encoded in C, where a list of dicts would be walked
    # item by item by ipywidgets (twice the cost of the formatting, at 500 rows a flush).
    rows_json = traitlets.Unicode("[]").tag(sync=True)
    counts = traitlets.Dict().tag(sync=True)
    types: traitlets.List[str] = traitlets.List().tag(sync=True)
    # Short name -> "module.Class", sent when a type is first seen (not with every row).
    type_names = traitlets.Dict().tag(sync=True)
    sessions: traitlets.List[str] = traitlets.List().tag(sync=True)
    type_filter = traitlets.List(traitlets.Unicode()).tag(sync=True)
    session_filter = traitlets.Unicode("").tag(sync=True)
    paused = traitlets.Bool(False).tag(sync=True)
    expanded = traitlets.List(traitlets.Unicode()).tag(sync=True)
    payloads = traitlets.Dict().tag(sync=True)

    def __init__(
        self,
        bus: MessageBus,
        *,
        types: Iterable[TypeSpec] | None = None,
        session: str | Session | None = None,
        max_rows: int = DEFAULT_MAX_ROWS,
        capacity: int = DEFAULT_CAPACITY,
        interval: float = DEFAULT_INTERVAL,
        redactor: Redactor | None = None,
        **kwargs: Any,
    ) -> None:
        # Validated before anything is observed or opened, so bad input leaves no trace.
        ticker = Ticker(self._tick, interval)
        feed = EventFeed(
            bus,
            max_rows=max_rows,
            capacity=capacity,
            types=types,
            session=session,
            redactor=redactor,
        )
        self._ticker, self.feed = ticker, feed
        self.renders = 0
        super().__init__(
            type_filter=self.feed.type_filter,
            session_filter=self.feed.session_filter or "",
            **kwargs,
        )
        self.add_class("llmgine-events-widget")
        # (Not named _<trait>_changed: traitlets would take those for its old magic hooks.)
        self.observe(self._on_filters, names=["type_filter", "session_filter"])
        self.observe(self._on_paused, names=["paused"])
        self.observe(self._on_expanded, names=["expanded"])
        self.flush()
        self._ticker.start()

    # -- the public controls ---------------------------------------------------------

    @property
    def rows(self) -> list[Row]:
        """The rows shown (as of the last flush), oldest first."""
        return self.feed.rows

    @property
    def ticks(self) -> int:
        """Times the throttled flusher ran."""
        return self._ticker.ticks

    @property
    def seen(self) -> int:
        return self.feed.seen

    @property
    def dropped(self) -> int:
        return self.feed.counts()["dropped"]

    def pause(self) -> None:
        """Freeze the rows (events are still counted and kept)."""
        self.paused = True

    def resume(self) -> None:
        """Unfreeze, catching up with the events kept meanwhile."""
        self.paused = False

    def filter(
        self, *, types: Iterable[TypeSpec] | None = None, session: str | Session | None = None
    ) -> None:
        """Show only ``types`` of ``session`` (None: every type, every session)."""
        self.feed.set_filter(types=types, session=session)
        with self.hold_trait_notifications():
            self.type_filter = self.feed.type_filter
            self.session_filter = self.feed.session_filter or ""
        self.flush()

    def payload(self, event_id: str) -> str:
        """A kept event's payload as indented, redacted JSON."""
        return self.feed.payload(event_id)

    def flush(self) -> bool:
        """Take in what the bus delivered and render it now; True if the rows changed."""
        return self._render(self.feed.flush())

    async def next_flush(self) -> None:
        """Return once the throttled flusher has run again (at once if it is not running)."""
        await self._ticker.next_tick()

    def close(self) -> None:
        """Stop watching the bus (its observer is removed) and close the widget."""
        # Also called by the widget's __del__, when __init__ may have failed early.
        ticker, feed = getattr(self, "_ticker", None), getattr(self, "feed", None)
        if ticker is not None:
            ticker.stop()
        if feed is not None:
            feed.close()
        super().close()

    # -- rendering -------------------------------------------------------------------

    def _tick(self) -> None:
        self._render(self.feed.flush())

    def _render(self, update: FeedUpdate) -> bool:
        if not update.received and not update.rows_changed:
            return False
        with self.hold_sync():
            if update.rows_changed:
                self.rows_json = json.dumps(self.feed.rows, ensure_ascii=False, separators=_COMPACT)
                self.renders += 1
            self.counts = self.feed.counts()
            if update.received:
                types = self.feed.types_seen()
                if types != self.types:
                    self.types = types
                    self.type_names = self.feed.type_names()
                sessions = self.feed.sessions_seen()
                if sessions != self.sessions:
                    self.sessions = sessions
        return update.rows_changed

    def _on_filters(self, change: dict[str, Any]) -> None:
        self.feed.set_filter(types=self.type_filter, session=self.session_filter or None)
        self.flush()

    def _on_paused(self, change: dict[str, Any]) -> None:
        if change["new"]:
            self.feed.pause()
            self.counts = self.feed.counts()
        else:
            self.feed.resume()
            self.flush()

    def _on_expanded(self, change: dict[str, Any]) -> None:
        ids = list(dict.fromkeys(change["new"]))[-EXPANDED_MAX:]
        known = self.payloads
        self.payloads = {i: known.get(i) or self.feed.payload(i) for i in ids}

    # -- text and HTML, for saved notebooks --------------------------------------------

    def _repr_mimebundle_(self, **kwargs: Any) -> tuple[dict[str, Any], dict[str, Any]]:
        # Every part from one flush, made first: anywidget's text/plain (our repr) and the
        # HTML then count the same events.
        if not self.feed.closed:
            self.flush()
        shown = super()._repr_mimebundle_(**kwargs)  # anywidget's: (data, metadata)
        data, metadata = shown if shown is not None else ({}, {})
        data = {**data, "text/html": self._static_html()}
        return data, metadata

    def _static_rows(self) -> list[Row]:
        return list(reversed(self.feed.rows[-HTML_ROWS:]))

    def _repr_html_(self) -> str:
        if not self.feed.closed:
            self.flush()
        return self._static_html()

    def _static_html(self) -> str:
        rows = self._static_rows()
        table = html_table(
            "llmgine-events llmgine-events-static",
            f"EventStream: {counts_line(self.feed.counts())}"
            + (" (paused)" if self.paused else ""),
            ("time", "type", "session", "summary"),
            (
                ("llmgine-event-row", (r["time"], r["type"], r["session"], r["summary"]))
                for r in rows
            ),
            note=f"the newest {len(rows)} rows, newest first" if rows else "no events yet",
        )
        payloads = "".join(
            f'<details class="llmgine-event-payload"><summary>{escape(i)}</summary>'
            f"<pre>{escape(p)}</pre></details>"
            for i, p in self.payloads.items()
            if p
        )
        return table + payloads

    def __repr__(self) -> str:
        if getattr(self, "feed", None) is None:
            return "<EventStream (not set up)>"
        state = "closed" if self.feed.closed else "paused" if self.paused else "live"
        return f"<EventStream {state}: {counts_line(self.feed.counts())}>"
