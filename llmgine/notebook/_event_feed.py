"""`EventFeed`: a bus's events as rows, cheaply enough to watch 50,000 events a second.

The hot path is one C call: the feed's observer's ``on_event`` is a bounded deque's
``append`` (no Python frame per event). `flush()` moves what gathered into a bounded
history, counts it with C-level helpers, and formats only the rows that will be shown
(at most ``max_rows`` per flush). Everything shown is redacted: summaries and payloads go
through the redactor before they are cut short, so no half of a key survives a cut.

`EventStream` (the Jupyter widget) and the Panel dashboard read the same feed.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from operator import attrgetter
from typing import Any

from pydantic import BaseModel

from llmgine._redact import REDACTED, Redactor, default_redactor
from llmgine.bus import BusObserver, Event, MessageBus, Session, Subscription, message_type_name

__all__ = [
    "DEFAULT_CAPACITY",
    "DEFAULT_MAX_ROWS",
    "EventFeed",
    "FeedUpdate",
    "Row",
    "TypeSpec",
]

DEFAULT_MAX_ROWS = 500
# Kept for filtering and payloads; held as the event objects themselves, which the GC
# walks, so more costs the bus throughput (see benchmarks/bench_widgets.py).
DEFAULT_CAPACITY = 5_000
SUMMARY_CHARS = 160
VALUE_CHARS = 60
PAYLOAD_CHARS = 100_000
SESSIONS_LISTED = 100

Row = dict[str, Any]  # JSON-ready: seq, id, type, session, time, summary
TypeSpec = str | type[Event]

_BASE_FIELDS = frozenset({"id", "timestamp", "session_id", "metadata"})
_session_of = attrgetter("session_id")


class _Tap(BusObserver):
    """An observer whose ``on_event`` is a deque's append (set in ``__init__``)."""

    def __init__(self, append: Any) -> None:
        self.on_event = append  # type: ignore[method-assign]


@dataclass(frozen=True)
class FeedUpdate:
    """What one `EventFeed.flush` changed.

    ``rows`` are the rows added (oldest first) or, when ``rebuilt``, every row now shown.
    ``rows_changed`` is False when nothing visible changed (paused, or nothing new).
    """

    rows: list[Row]
    rebuilt: bool
    rows_changed: bool
    received: int


def _type_name(spec: TypeSpec) -> str:
    if isinstance(spec, str):
        if not spec.strip():
            raise ValueError("an event type filter must be a non-empty type name")
        return spec.strip()
    if isinstance(spec, type) and issubclass(spec, Event):
        return message_type_name(spec)
    raise TypeError(
        f"filter types by Event subclass or type name, got {spec!r}; e.g. "
        'types=[LLMCallCompleted] or types=["LLMCallCompleted"]'
    )


def session_key(session: str | Session | None) -> str | None:
    """A session filter as an id: a `Session`, its id, or None / "" for every session."""
    if session is None:
        return None
    if isinstance(session, Session):
        return session.id
    if isinstance(session, str):
        return session or None
    raise TypeError(f"filter by a Session or a session id, got {type(session).__name__}")


class EventFeed:
    """The last ``capacity`` events of a bus, and the newest ``max_rows`` of those that
    pass the filters, as rows.

    Args:
        bus: the bus to watch (from now on; earlier events are not replayed).
        max_rows: rows shown at most.
        capacity: events kept for filtering and payload expansion (at least ``max_rows``).
        types: show only these event types (classes, or names: ``"LLMCallCompleted"`` or
            the registered ``"module.Class"``); None for every type.
        session: show only this session's events (a `Session` or id); None for all.
        redactor: what keeps secrets out of rows and payloads (the default one if None).
    """

    def __init__(
        self,
        bus: MessageBus,
        *,
        max_rows: int = DEFAULT_MAX_ROWS,
        capacity: int = DEFAULT_CAPACITY,
        types: Iterable[TypeSpec] | None = None,
        session: str | Session | None = None,
        redactor: Redactor | None = None,
    ) -> None:
        if not isinstance(bus, MessageBus):
            raise TypeError(f"EventFeed watches a MessageBus, got {type(bus).__name__}")
        if max_rows < 1:
            raise ValueError(f"max_rows must be at least 1, got {max_rows}")
        if capacity < max_rows:
            raise ValueError(
                f"capacity ({capacity}) must be at least max_rows ({max_rows}): the rows "
                "shown come from the events kept"
            )
        self.bus = bus
        self.max_rows = max_rows
        self.capacity = capacity
        self.redactor = redactor or default_redactor
        self._intake: deque[Event] = deque(maxlen=capacity)
        self._history: deque[Event] = deque(maxlen=capacity)
        self._rows: deque[Row] = deque(maxlen=max_rows)
        self._received = 0  # events moved from intake to history, ever
        self._seen_when_closed = 0
        self._types: dict[type[Event], None] = {}  # insertion-ordered set
        self._sessions: dict[str, None] = {}  # insertion-ordered set, newest last
        self._type_filter: frozenset[str] = frozenset()
        self._allowed: set[type[Event]] | None = None  # None: every type passes
        self._session_filter: str | None = None
        self._paused = False
        self._stale = True  # rows must be rebuilt from history at the next flush
        self._formats: dict[type[Event], tuple[str, str, tuple[tuple[str, bool], ...]]] = {}
        self.set_filter(types=types, session=session)
        # Read the bus's count before observing: nothing runs between the two lines.
        self._observed_at_start = bus.stats().observed
        self._subscription: Subscription | None = bus.add_observer(_Tap(self._intake.append))

    # -- state -------------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        return self._subscription is None

    @property
    def paused(self) -> bool:
        return self._paused

    @property
    def rows(self) -> list[Row]:
        """The rows shown, oldest first."""
        return list(self._rows)

    @property
    def type_filter(self) -> list[str]:
        return sorted(self._type_filter)

    @property
    def session_filter(self) -> str | None:
        return self._session_filter

    def counts(self) -> dict[str, int]:
        """``seen`` (events the bus delivered while watched), ``kept`` (held for filters
        and payloads), ``shown`` (rows), ``dropped`` (seen but no longer kept).

        Events delivered since the last `flush` are in neither ``kept`` nor ``dropped``:
        they are still held, on their way in."""
        seen = self.seen
        kept = len(self._history)
        dropped = max(0, seen - kept - len(self._intake))
        return {"seen": seen, "kept": kept, "shown": len(self._rows), "dropped": dropped}

    @property
    def seen(self) -> int:
        if self._subscription is None:
            return self._seen_when_closed
        return self.bus.stats().observed - self._observed_at_start

    def types_seen(self) -> list[str]:
        """The event types received (short names), sorted."""
        return sorted({self._format_of(cls)[0] for cls in self._types})

    def type_names(self) -> dict[str, str]:
        """Short name -> registered name (``module.Class``) of each type received."""
        return dict(sorted(self._format_of(cls)[:2] for cls in self._types))

    def sessions_seen(self) -> list[str]:
        """Session ids seen, newest first (at most 100)."""
        return list(reversed(self._sessions))

    # -- control -----------------------------------------------------------------------

    def set_filter(
        self,
        *,
        types: Iterable[TypeSpec] | None = None,
        session: str | Session | None = None,
    ) -> None:
        """Show only ``types`` (None or empty: all) of ``session`` (None: all); the rows
        are rebuilt from the events kept at the next flush."""
        if isinstance(types, str | type):
            types = [types]
        names = frozenset(_type_name(t) for t in types or ())
        sid = session_key(session)
        if names == self._type_filter and sid == self._session_filter:
            return
        self._type_filter = names
        self._allowed = None if not names else set()
        if self._allowed is not None:
            self._allowed.update(cls for cls in self._types if self._type_passes(cls))
        self._session_filter = sid
        self._stale = True

    def pause(self) -> None:
        """Stop updating rows; events are still counted and kept (up to ``capacity``)."""
        self._paused = True

    def resume(self) -> None:
        """Update rows again, catching up with what arrived while paused."""
        if self._paused:
            self._paused = False
            self._stale = True

    def close(self) -> None:
        """Stop watching the bus (removes the observer); what was kept stays readable."""
        if self._subscription is not None:
            self._seen_when_closed = self.seen
            self._subscription.remove()
            self._subscription = None

    # -- flushing ----------------------------------------------------------------------

    def flush(self) -> FeedUpdate:
        """Take in what arrived since the last flush and work out the rows to show."""
        batch = self._drain()
        if batch:
            self._accept(batch)
        if self._paused:
            return FeedUpdate([], False, False, len(batch))
        if self._stale:
            self._stale = False
            self._rows.clear()
            self._rows.extend(self._format_newest(self._history, self._received, self.max_rows))
            return FeedUpdate(list(self._rows), True, True, len(batch))
        if not batch:
            return FeedUpdate([], False, False, 0)
        added = self._format_newest(batch, self._received, self.max_rows)
        self._rows.extend(added)
        return FeedUpdate(added, False, bool(added), len(batch))

    def _drain(self) -> list[Event]:
        # popleft is atomic, so a bus publishing from another thread loses nothing here.
        intake = self._intake
        popleft = intake.popleft
        return [popleft() for _ in range(len(intake))]

    def _accept(self, batch: list[Event]) -> None:
        # C-level passes only (set over map): this sees every event, not just rows shown.
        self._history.extend(batch)
        self._received += len(batch)
        new_types = set(map(type, batch)).difference(self._types)
        if new_types:
            self._types.update(dict.fromkeys(new_types))
            if self._allowed is not None:
                self._allowed.update(cls for cls in new_types if self._type_passes(cls))
        sessions = self._sessions
        # dict.fromkeys runs in C; the loop sees each distinct session of the batch once.
        for sid in dict.fromkeys(map(_session_of, batch)):
            if sid is not None:
                sessions.pop(sid, None)
                sessions[sid] = None
        while len(sessions) > SESSIONS_LISTED:
            del sessions[next(iter(sessions))]

    def _type_passes(self, cls: type[Event]) -> bool:
        short, full, _ = self._format_of(cls)
        return short in self._type_filter or full in self._type_filter

    def _passes(self, event: Event) -> bool:
        allowed, sid = self._allowed, self._session_filter
        return (allowed is None or type(event) in allowed) and (
            sid is None or event.session_id == sid
        )

    def _format_newest(self, events: Sequence[Event], end_seq: int, limit: int) -> list[Row]:
        """Rows of the newest ``limit`` matching ``events`` (whose last has sequence number
        ``end_seq - 1``), oldest first. Scans from the newest end and stops early, so a
        flush formats at most ``limit`` rows however many events arrived."""
        if self._allowed is None and self._session_filter is None:
            count = min(limit, len(events))
            first = len(events) - count
            tail = [events[i] for i in range(first, len(events))]
            return [self.row(end_seq - count + i, e) for i, e in enumerate(tail)]
        picked: list[tuple[int, Event]] = []
        seq = end_seq
        for event in reversed(events):
            seq -= 1
            if self._passes(event):
                picked.append((seq, event))
                if len(picked) == limit:
                    break
        return [self.row(s, e) for s, e in reversed(picked)]

    # -- formatting (only for rows shown) ---------------------------------------------

    def _format_of(self, cls: type[Event]) -> tuple[str, str, tuple[tuple[str, bool], ...]]:
        cached = self._formats.get(cls)
        if cached is None:
            fields = tuple(
                (name, self.redactor.value({name: "x"})[name] == REDACTED)
                for name in cls.model_fields
                if name not in _BASE_FIELDS
            )
            cached = self._formats[cls] = (cls.__name__, message_type_name(cls), fields)
        return cached

    def row(self, seq: int, event: Event) -> Row:
        """One row: its sequence number, the event's id, type, session, time, summary."""
        cls = type(event)
        short, _, fields = self._formats.get(cls) or self._format_of(cls)
        return {
            "seq": seq,
            "id": event.id,
            "type": short,
            "session": event.session_id or "",
            "time": event.timestamp.isoformat(timespec="milliseconds")[11:23],
            "summary": self._summary(event, fields),
        }

    def _summary(self, event: Event, fields: tuple[tuple[str, bool], ...]) -> str:
        parts: list[str] = []
        length = 0
        values = event.__dict__
        for name, sensitive in fields:
            value = values.get(name)
            text = REDACTED if sensitive and value else self._short(value)
            parts.append(f"{name}={text}")
            length += len(parts[-1]) + 2
            if length > SUMMARY_CHARS:
                break
        return _cut(", ".join(parts), SUMMARY_CHARS)

    def _short(self, value: Any) -> str:
        if isinstance(value, str):
            return _cut(" ".join(self.redactor.text(value).split()), VALUE_CHARS)
        if value is None or isinstance(value, bool | int | float):
            return repr(value)
        if isinstance(value, BaseModel):
            value = value.model_dump(mode="json")
        try:
            text = json.dumps(self.redactor.value(value), default=str, ensure_ascii=False)
        except (TypeError, ValueError):
            text = self.redactor.text(repr(value))
        return _cut(text, VALUE_CHARS)

    def find(self, event_id: str) -> Event | None:
        """The kept event with this id (the newest, if published twice)."""
        for event in reversed(self._history):
            if event.id == event_id:
                return event
        return None

    def payload(self, event_id: str) -> str:
        """The kept event's full payload as indented JSON, redacted."""
        event = self.find(event_id)
        if event is None:
            return json.dumps(
                {"error": f"event {event_id} is no longer kept (capacity {self.capacity})"}
            )
        return payload_json(event, self.redactor)


def payload_json(event: Event, redactor: Redactor) -> str:
    """An event as indented JSON with its type first, every secret redacted."""
    data = {"type": message_type_name(type(event)), **event.model_dump(mode="json")}
    text = json.dumps(redactor.value(data), indent=2, ensure_ascii=False, default=str)
    return redactor.text(_cut(text, PAYLOAD_CHARS))


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
