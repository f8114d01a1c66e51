"""The seam between publishing an event and dispatching it: `Transport`, and `LocalTransport`.

`LocalTransport` is a bounded in-process queue drained by worker tasks, with backpressure:

* ``block``       -- a publisher waits while the queue is full, until it falls to the low mark;
* ``drop_oldest`` -- the oldest queued event makes room; every drop is counted and logged;
* ``reject``      -- the publish raises `BackpressureError`; every rejection is counted.

Reaching the high watermark marks the queue ``under_pressure`` until depth falls to the low
watermark. Workers sleep on a future while the queue is empty, so an idle bus costs nothing.
A transport over another engine (NATS) implements the same `Transport` protocol.
"""

from __future__ import annotations

import asyncio
import contextvars
import os
from collections import Counter, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Literal, Protocol

from llmgine._idle import when_idle
from llmgine._redact import redacting_logger
from llmgine.bus._delivery import handler_cancelled
from llmgine.bus._loop import refuse_if_running
from llmgine.bus._messages import Event, message_type_name
from llmgine.errors import (
    BackpressureError,
    BusError,
    BusStoppedError,
    EventLoopMismatchError,
    TransportError,
)

__all__ = ["BackpressureStrategy", "Deliver", "LocalTransport", "QueueStats", "Transport"]

log = redacting_logger("llmgine.bus")

# Fewer queued events than this wait for an idle turn of the loop before delivery.
IDLE_BATCH = 64

BackpressureStrategy = Literal["block", "drop_oldest", "reject"]
Deliver = Callable[[Event], Awaitable[object]]

# Set inside a worker task (and inherited by tasks it starts): publishing from there must
# never wait on the queue that only this worker can empty.
_worker_of: contextvars.ContextVar[LocalTransport | None] = contextvars.ContextVar(
    "llmgine_worker_of", default=None
)


@dataclass(frozen=True, slots=True)
class QueueStats:
    """A transport's queue counters."""

    depth: int = 0
    capacity: int = 0
    under_pressure: bool = False
    high_watermark_hits: int = 0
    dropped: int = 0
    rejected: int = 0
    blocked: int = 0
    dropped_by_type: dict[str, int] = field(default_factory=dict)


class Transport(Protocol):
    """Carries published events to the bus's dispatcher."""

    def bind(self, deliver: Deliver) -> None:
        """Set the coroutine function that dispatches one event to its handlers."""

    def try_send(self, event: Event) -> bool:
        """Queue an event if that needs no waiting and no backpressure decision; returns
        whether it did (if not, the caller awaits `send`)."""

    async def send(self, event: Event) -> None:
        """Queue an event for delivery, applying backpressure."""

    def send_nowait(self, event: Event) -> None:
        """Queue an event without waiting; raises `BackpressureError` if it cannot."""

    async def drain(self) -> None:
        """Return once every event sent so far (and any they caused) has been delivered."""

    async def flush_session(self, session_id: str) -> None:
        """Deliver every event of one session sent so far before returning."""

    async def start(self) -> None:
        """Bind to the running event loop and accept events."""

    async def stop(self) -> None:
        """Deliver what is queued, then stop accepting events."""

    def stats(self) -> QueueStats:
        """The queue's counters."""


class LocalTransport:
    """A bounded in-process event queue with backpressure, drained by worker tasks."""

    def __init__(
        self,
        capacity: int = 10_000,
        strategy: BackpressureStrategy = "block",
        *,
        high_watermark: int | None = None,
        low_watermark: int | None = None,
        workers: int = 1,
    ) -> None:
        if capacity < 1:
            raise ValueError(f"queue capacity must be at least 1, got {capacity}")
        if strategy not in ("block", "drop_oldest", "reject"):
            raise ValueError(
                f"backpressure strategy must be 'block', 'drop_oldest' or 'reject', "
                f"got {strategy!r}"
            )
        high = (capacity * 8 // 10 or 1) if high_watermark is None else high_watermark
        low = high // 2 if low_watermark is None else low_watermark
        if not 0 <= low < high <= capacity:
            raise ValueError(
                f"watermarks must satisfy 0 <= low < high <= capacity; got low={low}, "
                f"high={high}, capacity={capacity}"
            )
        if workers < 1:
            raise ValueError(f"workers must be at least 1, got {workers}")
        self.capacity, self.strategy, self.high, self.low = capacity, strategy, high, low
        self.workers = workers
        self._queue: deque[Event] = deque()
        self._deliver: Deliver | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._current: list[Event | None] = [None] * workers
        self._worker_waiters: deque[asyncio.Future[None]] = deque()
        self._space_waiters: deque[asyncio.Future[None]] = deque()
        self._done_waiters: list[asyncio.Future[None]] = []  # woken after every event
        self._idle_waiters: list[asyncio.Future[None]] = []  # woken when nothing is left
        self._stopped = False
        self.under_pressure = False
        self.high_watermark_hits = 0
        self.dropped = 0
        self.rejected = 0
        self.blocked = 0
        self.dropped_by_type: Counter[str] = Counter()

    # -- lifecycle ---------------------------------------------------------------------

    def bind(self, deliver: Deliver) -> None:
        self._deliver = deliver

    async def start(self) -> None:
        self._stopped = False
        self._ensure_workers(asyncio.get_running_loop())

    def _ensure_workers(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._loop is loop and self._tasks:
            return
        if self._loop is not loop:
            refuse_if_running(self._loop)
        # A first start, or the old loop is gone (e.g. a new loop per test): queued events
        # are kept and delivered on this loop; futures of the old loop are abandoned.
        self._loop = loop
        self._worker_waiters.clear()
        self._space_waiters.clear()
        self._done_waiters.clear()
        self._idle_waiters.clear()
        self._current = [None] * self.workers
        self._tasks = [
            loop.create_task(self._work(i), name=f"llmgine-bus-worker-{i}")
            for i in range(self.workers)
        ]

    async def stop(self) -> None:
        await self.drain()
        self._stopped = True
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # -- sending -----------------------------------------------------------------------

    def try_send(self, event: Event) -> bool:
        # The common case without a coroutine: on our loop, workers running, below the
        # high watermark. Everything else goes through send(). Called from async code only.
        queue = self._queue
        if (
            self._stopped
            or len(queue) + 1 >= self.high
            or not self._tasks
            or asyncio.get_running_loop() is not self._loop
        ):
            return False
        queue.append(event)
        if self._worker_waiters:
            self._wake_worker()
        return True

    async def send(self, event: Event) -> None:
        if self._stopped:
            raise BusStoppedError("the bus is stopped; call `await bus.start()` to publish again")
        loop = asyncio.get_running_loop()
        if loop is not self._loop or not self._tasks:
            self._ensure_workers(loop)
        queue = self._queue
        if len(queue) >= self.capacity:
            if self.strategy == "block":
                if _worker_of.get() is self:
                    # A handler publishing into a full queue that only its own worker
                    # can empty: waiting would deadlock, so deliver it right here.
                    await self._deliver_now(event)
                    return
                await self._wait_for_space()
            else:
                self._overflow(event)
        queue.append(event)
        if len(queue) >= self.high and not self.under_pressure:
            self._pressure()
        if self._worker_waiters:
            self._wake_worker()

    def send_nowait(self, event: Event) -> None:
        if self._stopped:
            raise BusStoppedError("the bus is stopped; call `await bus.start()` to publish again")
        try:
            loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        if loop is None:
            if self._loop is not None and self._loop.is_running():
                raise EventLoopMismatchError(
                    "publish_nowait() was called from a thread other than the bus's event "
                    "loop; use loop.call_soon_threadsafe(bus.publish_nowait, event)"
                )
            # With no loop running yet, the workers start with the next send or drain.
        elif loop is not self._loop or not self._tasks:
            self._ensure_workers(loop)
        queue = self._queue
        if len(queue) >= self.capacity:
            if self.strategy == "block":
                self.rejected += 1
                raise BackpressureError(
                    f"the event queue is full ({self.capacity}) and publish_nowait cannot "
                    "wait; use `await bus.publish(event)` to wait for room."
                )
            self._overflow(event)
        queue.append(event)
        if len(queue) >= self.high and not self.under_pressure:
            self._pressure()
        if self._worker_waiters and loop is not None:
            self._wake_worker()

    def _pressure(self) -> None:
        self.under_pressure = True
        self.high_watermark_hits += 1
        log.info("event queue reached its high watermark (%d of %d)", self.high, self.capacity)

    def _overflow(self, event: Event) -> None:
        if self.strategy == "reject":
            self.rejected += 1
            raise BackpressureError(
                f"the event queue is full ({self.capacity} events) and its strategy is "
                "'reject': this event was not published. Slow the publisher, raise "
                "queue_capacity, or choose backpressure='block'."
            )
        old = self._queue.popleft()
        self.dropped += 1
        name = message_type_name(type(old))
        self.dropped_by_type[name] += 1
        if self.dropped & (self.dropped - 1) == 0:  # log at 1, 2, 4, 8, ... drops
            log.warning(
                "event queue full: dropped the oldest event (%s); %d dropped so far",
                name,
                self.dropped,
            )

    async def _wait_for_space(self) -> None:
        self.blocked += 1
        loop = asyncio.get_running_loop()
        self._ensure_workers(loop)
        while len(self._queue) >= self.capacity:
            waiter = loop.create_future()
            self._space_waiters.append(waiter)
            await waiter

    def _wake_worker(self) -> None:
        while self._worker_waiters:
            waiter = self._worker_waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    # -- delivering --------------------------------------------------------------------

    async def _deliver_now(self, event: Event) -> None:
        assert self._deliver is not None, "bind() must be called before events are sent"
        try:
            await self._deliver(event)
        except Exception:  # dispatch catches handler errors; this is a bug, keep going
            log.exception("llmgine bus: unexpected error delivering %s", type(event).__name__)
        except asyncio.CancelledError as exc:
            _escaped(event, exc)

    async def _work(self, index: int) -> None:
        _worker_of.set(self)
        queue = self._queue
        current = self._current
        deliver = self._deliver
        assert deliver is not None, "bind() must be called before the transport starts"
        loop = asyncio.get_running_loop()
        while True:
            if not queue:
                if self._idle_waiters and all(e is None for e in current):
                    self._idle_waiters = _wake_all(self._idle_waiters)
                waiter = loop.create_future()
                self._worker_waiters.append(waiter)
                await waiter
                # A few events arrived: deliver them when the loop is next idle. Whoever
                # published is usually about to wait for the network, and delivering first
                # would hold up their request (the work is the same, their latency is not).
                # A backlog is delivered at once: there, throughput is what counts.
                if len(queue) < IDLE_BATCH:
                    turn = loop.create_future()
                    when_idle(loop, partial(_resolve, turn))
                    await turn
                continue
            event = queue.popleft()
            if self._space_waiters or self.under_pressure:
                self._released()
            current[index] = event
            try:
                await deliver(event)
            except Exception:
                log.exception("llmgine bus: unexpected error delivering %s", type(event).__name__)
            except asyncio.CancelledError as exc:
                _escaped(event, exc)  # raises again if this worker is being stopped
            finally:
                current[index] = None
            if self._done_waiters:
                self._done_waiters = _wake_all(self._done_waiters)

    def _released(self) -> None:
        if len(self._queue) <= self.low:
            if self.under_pressure:
                self.under_pressure = False
            while self._space_waiters:
                waiter = self._space_waiters.popleft()
                if not waiter.done():
                    waiter.set_result(None)

    async def drain(self) -> None:
        if _worker_of.get() is self:
            raise BusError(
                "drain() was called from inside an event handler, where it would wait for "
                "itself; publish with wait=True instead, or drain from outside the handler."
            )
        loop = asyncio.get_running_loop()
        while self._queue or any(e is not None for e in self._current):
            self._ensure_workers(loop)
            waiter = loop.create_future()
            self._idle_waiters.append(waiter)
            await waiter

    async def flush_session(self, session_id: str) -> None:
        # Loop: delivering the session's events may queue more of them (a handler answering
        # in its session), and an in-flight one may finish by queueing another.
        loop = asyncio.get_running_loop()
        in_worker = _worker_of.get() is self
        while True:
            mine = self._take_session(session_id)
            if mine:
                for event in mine:
                    await self._deliver_now(event)
                continue
            if in_worker:
                return  # an in-flight event of this session may be our own caller
            if not any(e is not None and e.session_id == session_id for e in self._current):
                return
            waiter = loop.create_future()
            self._done_waiters.append(waiter)
            await waiter

    def _take_session(self, session_id: str) -> list[Event]:
        """Remove and return the queued events of one session, in order.

        They are delivered by the caller rather than waiting behind unrelated events (and,
        from inside a handler, rather than waiting on our own worker).
        """
        queue = self._queue
        if not any(e.session_id == session_id for e in queue):
            return []
        mine = [e for e in queue if e.session_id == session_id]
        others = [e for e in queue if e.session_id != session_id]
        queue.clear()
        queue.extend(others)
        if self._space_waiters or self.under_pressure:
            self._released()
        return mine

    def stats(self) -> QueueStats:
        return QueueStats(
            depth=len(self._queue),
            capacity=self.capacity,
            under_pressure=self.under_pressure,
            high_watermark_hits=self.high_watermark_hits,
            dropped=self.dropped,
            rejected=self.rejected,
            blocked=self.blocked,
            dropped_by_type=dict(self.dropped_by_type),
        )


def transport_for(
    transport: Transport | None,
    *,
    queue_capacity: int | None,
    backpressure: BackpressureStrategy | None,
    high_watermark: int | None,
    low_watermark: int | None,
    workers: int | None,
) -> Transport:
    """``transport`` as given (refusing queue options beside it, which it would ignore),
    or a `LocalTransport` with those options (``None``: the default)."""
    if transport is None:
        transport = transport_from_env(
            queue_options_given=any(
                v is not None
                for v in (queue_capacity, backpressure, high_watermark, low_watermark, workers)
            )
        )
    if transport is None:
        return LocalTransport(
            10_000 if queue_capacity is None else queue_capacity,
            "block" if backpressure is None else backpressure,
            high_watermark=high_watermark,
            low_watermark=low_watermark,
            workers=1 if workers is None else workers,
        )
    options = {
        "queue_capacity": queue_capacity,
        "backpressure": backpressure,
        "high_watermark": high_watermark,
        "low_watermark": low_watermark,
        "workers": workers,
    }
    given = [name for name, value in options.items() if value is not None]
    if given:
        raise ValueError(
            f"MessageBus(transport=...) was also given {', '.join(given)}: queue options "
            "only configure the built-in queue, so they would be ignored. Configure the "
            "transport itself (e.g. LocalTransport(capacity, strategy, ...)) and pass it "
            "alone."
        )
    return transport


def transport_from_env(*, queue_options_given: bool) -> Transport | None:
    """The transport ``LLMGINE_BUS_URL`` names (``nats://host:port``), or ``None`` (unset,
    empty or ``local:``): the built-in queue."""
    url = os.environ.get("LLMGINE_BUS_URL", "").strip()
    scheme = url.partition("://")[0].lower() if "://" in url else url.rstrip(":").lower()
    if not url or scheme == "local":
        return None
    if scheme not in ("nats", "tls"):
        raise TransportError(
            f"LLMGINE_BUS_URL={url!r} names no known transport: use nats://host:port (or "
            "tls://host:port) for NATS, or unset it (or set it to local:) for the in-process "
            "queue."
        )
    if queue_options_given:
        raise ValueError(
            f"LLMGINE_BUS_URL={url!r} chooses the NATS transport, and MessageBus was also "
            "given queue options, which configure only the in-process queue: unset the "
            "variable or leave the options out."
        )
    from llmgine.bus.nats import NatsTransport  # needs the extra: says which if missing

    return NatsTransport(url)


def _escaped(event: Event, exc: asyncio.CancelledError) -> None:
    """A CancelledError reached the transport although its task was not cancelled: the
    dispatcher reports user code's own, so this is a bug; log it and keep the worker."""
    error = handler_cancelled(exc, f"delivering {type(event).__name__}")
    log.error("llmgine bus: unexpected error delivering %s", type(event).__name__, exc_info=error)


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():  # cancelled meanwhile: the bus stopped
        future.set_result(None)


def _wake_all(waiters: list[asyncio.Future[None]]) -> list[asyncio.Future[None]]:
    """Resolve every waiter; returns the fresh, empty list to store in its place."""
    for waiter in waiters:
        if not waiter.done():
            waiter.set_result(None)
    return []
