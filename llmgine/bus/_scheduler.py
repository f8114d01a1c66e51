"""Scheduled events: publish at a time or after a delay, on the event loop's own timer."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Literal

from llmgine._redact import redacting_logger
from llmgine.bus._messages import Event
from llmgine.errors import EventLoopMismatchError

__all__ = ["ScheduledEvent", "Scheduler"]

log = redacting_logger("llmgine.bus")


class ScheduledEvent:
    """A handle on an event waiting to be published; ``cancel()`` stops it."""

    def __init__(self, event: Event, due: float, scheduler: Scheduler) -> None:
        self.event = event
        self.due = due  # in the event loop's clock (loop.time())
        self.state: Literal["pending", "published", "cancelled", "failed"] = "pending"
        self.error: BaseException | None = None
        self._scheduler = scheduler
        self._timer: asyncio.TimerHandle | None = None
        self._done: asyncio.Future[None] | None = None

    def __repr__(self) -> str:
        return f"<ScheduledEvent {type(self.event).__name__} {self.state}>"

    def cancel(self) -> bool:
        """Cancel if still pending; returns whether it was."""
        if self.state != "pending":
            return False
        self._scheduler.cancelled(self)
        return True

    async def wait(self) -> None:
        """Return once the event was published (or cancelled, or failed to publish)."""
        done = self._done
        if done is None or done.done():
            return
        if done.get_loop() is not asyncio.get_running_loop():
            raise EventLoopMismatchError(
                "this scheduled event belongs to a bus on another event loop; wait for it "
                "on that loop (asyncio.run_coroutine_threadsafe(handle.wait(), loop))"
            )
        await asyncio.shield(done)


class Scheduler:
    """Keeps the timers of one bus; a timer publishes through ``publish`` when due."""

    def __init__(self, publish: Callable[[Event], Awaitable[None]]) -> None:
        self._publish = publish
        self._pending: set[ScheduledEvent] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def pending(self) -> int:
        return len(self._pending)

    def schedule(
        self, event: Event, *, at: datetime | None = None, delay: float | None = None
    ) -> ScheduledEvent:
        if (at is None) == (delay is None):
            raise ValueError("schedule() takes exactly one of at= (a datetime) or delay= (seconds)")
        if at is not None:
            if at.tzinfo is None:
                raise ValueError(
                    "schedule(at=...) needs a timezone-aware datetime, e.g. "
                    "datetime.now(UTC) + timedelta(seconds=5)"
                )
            delay = (at - datetime.now(UTC)).total_seconds()
        assert delay is not None
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            raise RuntimeError(
                "schedule() needs a running event loop; call it from async code "
                "(in a notebook, top-level await works)"
            ) from None
        delay = max(0.0, delay)
        handle = ScheduledEvent(event, loop.time() + delay, self)
        handle._done = loop.create_future()
        handle._timer = loop.call_at(handle.due, self._fire, handle)
        self._pending.add(handle)
        return handle

    def _fire(self, handle: ScheduledEvent) -> None:
        self._pending.discard(handle)
        task = asyncio.get_running_loop().create_task(self._run(handle))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, handle: ScheduledEvent) -> None:
        try:
            await self._publish(handle.event)
        except Exception as exc:  # e.g. the bus stopped, or 'reject' backpressure
            handle.state, handle.error = "failed", exc
            log.error("scheduled %s could not be published: %s", type(handle.event).__name__, exc)
        else:
            handle.state = "published"
        _resolve(handle)

    def cancelled(self, handle: ScheduledEvent) -> None:
        if handle._timer is not None:
            handle._timer.cancel()
        handle.state = "cancelled"
        self._pending.discard(handle)
        _resolve(handle)

    def cancel_all(self) -> int:
        """Cancel every pending event; returns how many were."""
        handles = list(self._pending)
        for handle in handles:
            handle.cancel()
        return len(handles)

    async def wait_running(self) -> None:
        """Wait for timers that already fired and are publishing now."""
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)


def _resolve(handle: ScheduledEvent) -> None:
    if handle._done is not None and not handle._done.done():
        handle._done.set_result(None)
