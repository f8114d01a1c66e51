"""The in-memory span buffer, and the redacting fan-out in front of every span consumer."""

from __future__ import annotations

import asyncio
import atexit
import threading
import weakref
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Literal, NamedTuple, cast

from opentelemetry.context import Context
from opentelemetry.sdk.trace import Event as SpanEvent
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.trace import SpanKind, Status, StatusCode

from llmgine._idle import when_idle
from llmgine._redact import Redactor, redacting_logger
from llmgine._semconv import CONVERSATION_ID, SESSION_ID

__all__ = [
    "RedactingFanout",
    "SpanBuffer",
    "SpanListener",
    "SpanRecord",
    "redacted_copy",
    "span_record",
]

log = redacting_logger("llmgine.observability")


class SpanRecord(NamedTuple):
    """A span as the buffer keeps it: plain values, about a kilobyte, and invisible to the
    garbage collector (a tuple of atoms), so a full buffer costs the process nothing."""

    name: str
    trace_id: int
    span_id: int
    parent_id: int | None
    kind: str  # "internal", "client", "server", "producer", "consumer"
    start_time: int  # nanoseconds since the epoch
    end_time: int | None  # None while the span runs
    status: str  # "unset", "ok", "error"
    status_message: str | None
    attributes: dict[str, Any]
    events: tuple[tuple[str, int, dict[str, Any]], ...]  # (name, time in ns, attributes)

    @property
    def duration_ms(self) -> float | None:
        return None if self.end_time is None else (self.end_time - self.start_time) / 1e6

    @property
    def session_id(self) -> str | None:
        value = self.attributes.get(SESSION_ID) or self.attributes.get(CONVERSATION_ID)
        return value if isinstance(value, str) else None


_KINDS = {k: k.name.lower() for k in SpanKind}
_STATUS = {StatusCode.UNSET: "unset", StatusCode.OK: "ok", StatusCode.ERROR: "error"}


def plain_attributes(span: ReadableSpan) -> dict[str, Any]:
    """A span's attributes as a plain dict (a copy)."""
    attributes = span.attributes
    if not attributes:
        return {}
    # A ReadableSpan's attributes are a read-only proxy whose public copy() copies what it
    # wraps: a dict (llmgine's spans) or the SDK's BoundedAttributes, whose own copy()
    # copies its dict at C speed. Iterating that Python-level mapping instead takes a
    # lock per item and is about 16 times slower.
    copy = getattr(attributes, "copy", None)
    if copy is not None:
        copied = copy()
        if type(copied) is dict:
            return copied
    return dict(attributes)


def span_record(span: ReadableSpan) -> SpanRecord:
    """The `SpanRecord` of an SDK span (running or finished)."""
    context, parent, status = span.context, span.parent, span.status
    attributes = plain_attributes(span)
    for key, value in attributes.items():
        if type(value) is tuple:
            attributes[key] = list(value)
    return SpanRecord(
        span.name,
        context.trace_id if context else 0,
        context.span_id if context else 0,
        parent.span_id if parent else None,
        _KINDS[span.kind],
        span.start_time or 0,
        span.end_time,
        _STATUS[status.status_code],
        status.description or None,
        attributes,
        tuple((e.name, e.timestamp, dict(e.attributes or {})) for e in span.events),
    )


SpanListener = Callable[[Literal["start", "end"], SpanRecord], None]

# About 1.2 KB per buffered LLM-call span (measured in benchmarks/), so the default holds
# a long notebook session in well under 200 MB.
DEFAULT_SPAN_CAPACITY = 50_000


class SpanBuffer(SpanProcessor):
    """A bounded ring of finished spans plus the spans still running; thread-safe.

    When full, the oldest finished span makes room (counted in ``evicted``). Listeners hear
    of every span as it starts and as it ends (as a `SpanRecord`), on the thread that
    started or ended it.
    """

    def __init__(self, capacity: int = DEFAULT_SPAN_CAPACITY) -> None:
        if capacity < 1:
            raise ValueError(f"span buffer capacity must be at least 1, got {capacity}")
        self.capacity = capacity
        self.evicted = 0
        self._finished: deque[SpanRecord] = deque(maxlen=capacity)
        self._running: dict[int, ReadableSpan] = {}
        self._listeners: tuple[SpanListener, ...] = ()
        # The (trace, span) ids kept, for `add` to skip spans it has: made at the first
        # add() (a collector adds every few hundred ms) and kept up to date from then on,
        # so a buffer nothing is added to pays one check a span.
        self._keys: set[tuple[int, int]] | None = None
        self._lock = threading.Lock()
        # Set by a `RedactingFanout` in front of the buffer: hands over spans it holds back.
        self.catch_up: Callable[[], None] = _nothing

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        with self._lock:
            self._running[span.context.span_id] = span
        if self._listeners:
            self._notify("start", span_record(span))

    def on_end(self, span: ReadableSpan) -> None:
        record = span_record(span)
        with self._lock:
            self._running.pop(record.span_id, None)
            self._keep(record)
        if self._listeners:
            self._notify("end", record)

    def _keep(self, record: SpanRecord) -> None:
        """Append ``record`` (the lock held), making room and keeping ``_keys`` true."""
        keys = self._keys
        if len(self._finished) == self.capacity:
            self.evicted += 1
            if keys is not None:
                oldest = self._finished[0]
                keys.discard((oldest.trace_id, oldest.span_id))
        self._finished.append(record)
        if keys is not None:
            keys.add((record.trace_id, record.span_id))

    def _notify(self, what: Literal["start", "end"], record: SpanRecord) -> None:
        for listener in self._listeners:
            try:
                listener(what, record)
            except Exception:
                log.exception("span buffer listener %r failed", listener)

    def add(self, records: Iterable[SpanRecord]) -> int:
        """Keep ``records`` (spans recorded elsewhere: see `llmgine.observability.load`) as
        finished spans, telling listeners; a span already kept (same trace and span id) is
        skipped, so adding a file twice is harmless. Returns how many were added."""
        self.catch_up()
        added: list[SpanRecord] = []
        with self._lock:
            if self._keys is None:
                self._keys = {(r.trace_id, r.span_id) for r in self._finished}
            for record in records:
                if (record.trace_id, record.span_id) in self._keys:
                    continue
                self._keep(record)
                added.append(record)
        if self._listeners:
            for record in added:
                self._notify("end", record)
        return len(added)

    def subscribe(self, listener: SpanListener) -> Callable[[], None]:
        """Call ``listener("start" | "end", record)`` for every span; returns an
        unsubscribe function."""
        with self._lock:
            self._listeners = (*self._listeners, listener)

        def unsubscribe() -> None:
            with self._lock:
                self._listeners = tuple(x for x in self._listeners if x is not listener)

        return unsubscribe

    def finished(self) -> list[SpanRecord]:
        """The finished spans kept, oldest first."""
        self.catch_up()
        with self._lock:
            return list(self._finished)

    def running(self) -> list[ReadableSpan]:
        """The spans started and not yet ended: live objects, not yet redacted, that read
        as a `ReadableSpan` does (SDK spans, or llmgine's own `LiteSpan`)."""
        self.catch_up()
        with self._lock:
            return list(self._running.values())

    def records(self, redactor: Redactor, *, include_running: bool = True) -> list[SpanRecord]:
        """Finished spans, then (redacted) running ones, as records."""
        self.catch_up()
        with self._lock:
            records = list(self._finished)
            running = list(self._running.values()) if include_running else []
        records.extend(span_record(redacted_copy(redactor, span)) for span in running)
        return records

    def clear(self) -> None:
        """Forget the finished spans (running ones stay: they will still end)."""
        self.catch_up()
        with self._lock:
            self._finished.clear()
            self._keys = None
            self.evicted = 0

    def __len__(self) -> int:
        self.catch_up()
        return len(self._finished)

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return True


def _nothing() -> None:
    pass


def _strings(value: object, out: list[str]) -> None:
    if isinstance(value, str):
        out.append(value)
    elif isinstance(value, Sequence):
        for item in value:
            _strings(item, out)


def _needs_redaction(redactor: Redactor, span: ReadableSpan) -> bool:
    # Most of a span's strings repeat from span to span (names, models, operations): the
    # redactor remembers the clean ones, so a typical span costs a few set lookups.
    attributes = plain_attributes(span).values()
    texts = [v for v in attributes if isinstance(v, str)]
    texts.append(span.name)
    if span.status.description:
        texts.append(span.status.description)
    for value in attributes:
        if type(value) is tuple:  # the SDK keeps sequences as tuples
            _strings(value, texts)
    for event in span.events:
        for value in (event.attributes or {}).values():
            _strings(value, texts)
    return not redactor.is_clean(*texts)


def redacted_copy(redactor: Redactor, span: ReadableSpan) -> ReadableSpan:
    """``span`` itself when nothing in it needs redacting, else a redacted copy."""
    if not _needs_redaction(redactor, span):
        return span
    return ReadableSpan(
        name=redactor.text(span.name),
        context=span.context,
        parent=span.parent,
        resource=span.resource,
        attributes={k: redactor.value(v) for k, v in (span.attributes or {}).items()},
        events=[
            SpanEvent(
                e.name,
                {k: redactor.value(v) for k, v in (e.attributes or {}).items()},
                e.timestamp,
            )
            for e in span.events
        ],
        links=span.links,
        kind=span.kind,
        status=Status(span.status.status_code, redactor.text(span.status.description or "")),
        start_time=span.start_time,
        end_time=span.end_time,
        instrumentation_scope=span.instrumentation_scope,
    )


# Spans a fan-out holds back before it hands them over at once, whatever the loop does.
HOLD_LIMIT = 256


class RedactingFanout(SpanProcessor):
    """Hands every span to llmgine's consumers (buffer, files, exporters), redacted once.

    Off the caller's path: a span started or ended in a thread running an event loop is
    handed over when that loop is next idle (see `llmgine._idle`), waiting for the network
    mostly, so redaction checks and records cost a model call no latency. Starts
    and ends reach consumers in the order they happened. Whoever reads a consumer gets
    everything first: the buffer catches up before every read, `force_flush` and `close`
    hand over what is held; a thread with no loop hands over at once.

    It also is the off switch: a fanout added to a tracer provider the user owns cannot be
    removed from it, so `close()` makes it forward nothing from then on.
    """

    def __init__(self, redactor: Redactor, processors: Sequence[SpanProcessor]) -> None:
        self._redactor = redactor
        self._processors = tuple(processors)
        self._closed = False
        self._held: list[tuple[ReadableSpan, Context | None, bool]] = []  # (span, ctx, ended)
        self._scheduled_on: asyncio.AbstractEventLoop | None = None
        self._held_lock = threading.Lock()
        self._handing = threading.RLock()  # one hand-over at a time, in order; reentrant
        for processor in self._processors:
            if isinstance(processor, SpanBuffer):
                processor.catch_up = self.hand_over
        _OPEN.add(self)  # see _hand_over_at_exit

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        if not self._closed:
            self._hold(span, parent_context, False)

    def on_end(self, span: ReadableSpan) -> None:
        if not self._closed:
            self._hold(span, None, True)

    def _hold(self, span: ReadableSpan, context: Context | None, ended: bool) -> None:
        try:
            loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:  # a thread without a loop: handed over at once, below
            loop = None
        schedule_on: asyncio.AbstractEventLoop | None = None
        with self._held_lock:
            self._held.append((span, context, ended))
            if loop is not None and len(self._held) < HOLD_LIMIT:
                if self._scheduled_on is loop:
                    return
                # Scheduled on no loop, or on another (which may close before running it).
                self._scheduled_on = schedule_on = loop
        if schedule_on is not None:
            when_idle(schedule_on, self.hand_over)
        else:
            self.hand_over()

    def hand_over(self) -> None:
        """Give the consumers every span held back, in order."""
        with self._handing:
            with self._held_lock:
                held, self._held = self._held, []
                self._scheduled_on = None
            for span, context, ended in held:
                safe = redacted_copy(self._redactor, span) if ended else span
                for processor in self._processors:
                    try:
                        if ended:
                            processor.on_end(safe)
                        else:
                            processor.on_start(cast(Span, span), context)
                    except Exception:  # one broken consumer must not starve the others
                        log.exception("span consumer %r failed on a span", processor)

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        self.hand_over()
        return all(p.force_flush(timeout_millis) for p in self._processors)

    def close(self) -> None:
        """Hand over what is held, flush and shut down every consumer, then forward
        nothing more."""
        if self._closed:
            return
        self.hand_over()
        self._closed = True
        _OPEN.discard(self)
        for processor in self._processors:
            try:
                processor.shutdown()
            except Exception:
                log.exception("span consumer %r failed to shut down", processor)

    def shutdown(self) -> None:
        self.close()


# Held spans of a loop that closed before its idle turn (asyncio.run's very last spans) go
# with the next hand-over, any read, flush or close, or at the latest as the interpreter
# exits: one exit hook for every fan-out still open.
_OPEN: weakref.WeakSet[RedactingFanout] = weakref.WeakSet()


@atexit.register
def _hand_over_at_exit() -> None:
    for fanout in list(_OPEN):
        fanout.hand_over()
