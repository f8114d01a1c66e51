"""User code that raises CancelledError on its own is a failure; a real cancel still stops.

A handler awaiting a task that something else cancelled gets a `CancelledError` although
nothing cancelled the bus. That must not end the worker (later events undelivered,
``drain()`` hanging) or pass for a cancellation of the caller.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from llmgine.bus import (
    BusObserver,
    Command,
    CommandFailed,
    CommandNext,
    Event,
    EventHandlerFailed,
    MessageBus,
)
from llmgine.errors import CommandTimeoutError, HandlerCancelledError
from tests.deadline import DEADLINE


class Tick(Event):
    n: int = 0


class Work(Command[str]):
    pass


async def awaits_a_task_cancelled_elsewhere() -> None:
    """What a handler sees when a task it awaits is cancelled by someone else."""
    task = asyncio.create_task(asyncio.Event().wait())
    task.cancel()  # before or after it started, awaiting it raises CancelledError here
    await task  # raises CancelledError in *our* task, which nobody cancelled


def collect(bus: MessageBus, event_type: type[Any]) -> list[Any]:
    seen: list[Any] = []
    bus.on_event(event_type, seen.append)
    return seen


async def test_a_queued_event_whose_handler_raises_it_is_a_failure_and_delivery_goes_on(
    bus: MessageBus,
) -> None:
    delivered: list[int] = []

    async def rogue(e: Tick) -> None:
        if e.n == 0:
            raise asyncio.CancelledError
        delivered.append(e.n)

    bus.on_event(Tick, rogue)
    reports = collect(bus, EventHandlerFailed)
    for n in range(3):
        await bus.publish(Tick(n=n))
    async with asyncio.timeout(DEADLINE):  # the old worker died here: drain never returned
        await bus.drain()
    assert delivered == [1, 2]
    assert bus.stats().handler_failures == 1
    assert [r.handler for r in reports] == [rogue.__qualname__]
    assert reports[0].error.type == "llmgine.errors.HandlerCancelledError"
    assert "nothing had cancelled it" in reports[0].error.message


async def test_a_waiting_publish_reports_it_in_the_delivery(bus: MessageBus) -> None:
    after: list[str] = []

    async def rogue(e: Tick) -> None:
        await awaits_a_task_cancelled_elsewhere()

    bus.on_event(Tick, rogue, priority=1)
    bus.on_event(Tick, lambda e: after.append("ran"))
    delivery = await bus.publish(Tick(), wait=True)  # used to raise CancelledError here
    assert after == ["ran"]
    assert delivery.handled == 2
    (failure,) = delivery.failures
    assert isinstance(failure.error, HandlerCancelledError)
    assert isinstance(failure.error.__cause__, asyncio.CancelledError)


async def test_a_command_handler_raising_it_gives_a_failed_result(bus: MessageBus) -> None:
    async def rogue(cmd: Work) -> str:
        await awaits_a_task_cancelled_elsewhere()
        return "unreachable"

    bus.on_command(Work, rogue)
    failed = collect(bus, CommandFailed)
    result = await bus.execute(Work())
    assert not result.success
    assert isinstance(result.exception, HandlerCancelledError)
    assert result.error is not None
    assert result.error.type.endswith("HandlerCancelledError")
    assert len(bus.dead_letters) == 1
    await bus.drain()
    assert len(failed) == 1
    with pytest.raises(HandlerCancelledError):
        result.unwrap()  # an ordinary exception, not a cancellation of the caller


async def test_a_command_middleware_raising_it_gives_a_failed_result(bus: MessageBus) -> None:
    async def rogue(cmd: Command[Any], call_next: CommandNext) -> Any:
        raise asyncio.CancelledError

    bus.on_command(Work, lambda cmd: "done")
    bus.add_command_middleware(rogue)
    result = await bus.execute(Work())
    assert isinstance(result.exception, HandlerCancelledError)
    assert "command middleware" in str(result.exception)
    assert bus.stats().commands_failed == 1


async def test_session_handlers_raising_it_leave_the_session_and_bus_working(
    bus: MessageBus,
) -> None:
    delivered: list[int] = []

    async def rogue(e: Tick) -> None:
        if e.n == 0:
            raise asyncio.CancelledError
        delivered.append(e.n)

    async with asyncio.timeout(DEADLINE):
        async with bus.session("s") as session:
            session.on_event(Tick, rogue)
            await session.publish(Tick(n=0))
            await session.publish(Tick(n=1))
            await session.publish(Tick(n=2), wait=True)
        await bus.publish(Tick(n=3))
        await bus.drain()
    assert sorted(delivered) == [1, 2]
    assert bus.stats().handler_failures == 1


async def test_filters_and_observers_raising_it_are_failures_too(bus: MessageBus) -> None:
    delivered: list[int] = []

    def rogue_filter(e: Event) -> bool:
        if isinstance(e, Tick) and e.n == 0:
            raise asyncio.CancelledError
        return True

    class RogueObserver(BusObserver):
        def on_event(self, event: Event) -> None:
            if isinstance(event, Tick) and event.n == 1:
                raise asyncio.CancelledError

    bus.on_event(Tick, lambda e: delivered.append(e.n))
    bus.add_filter(rogue_filter)
    bus.add_observer(RogueObserver())
    for n in range(3):
        await bus.publish(Tick(n=n))
    async with asyncio.timeout(DEADLINE):
        await bus.drain()
    assert delivered == [1, 2]  # 0 was stopped by its failing filter, 1 only upset an observer
    stats = bus.stats()
    assert stats.handler_failures == 1
    assert stats.observer_failures == 1


async def test_cancelling_a_waiting_publisher_still_cancels_it(bus: MessageBus) -> None:
    started = asyncio.Event()

    async def slow(e: Tick) -> None:
        started.set()
        await asyncio.Event().wait()

    bus.on_event(Tick, slow)
    publisher = asyncio.create_task(bus.publish(Tick(), wait=True))
    await started.wait()
    publisher.cancel()
    with pytest.raises(asyncio.CancelledError):
        await publisher
    assert publisher.cancelled()
    assert bus.stats().handler_failures == 0  # a real cancel is not a handler failure


async def test_a_timeout_around_a_waiting_publish_still_fires(bus: MessageBus) -> None:
    bus.on_event(Tick, lambda e: asyncio.Event().wait())
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.05):
            await bus.publish(Tick(), wait=True)
    assert bus.stats().handler_failures == 0


async def test_command_timeouts_and_cancelled_callers_still_work(bus: MessageBus) -> None:
    started = asyncio.Event()

    async def slow(cmd: Work) -> str:
        started.set()
        await asyncio.Event().wait()
        return "never"

    bus.on_command(Work, slow)
    timed_out = await bus.execute(Work(), timeout=0.05)
    assert isinstance(timed_out.exception, CommandTimeoutError)
    started.clear()
    caller = asyncio.create_task(bus.execute(Work()))
    await started.wait()
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
    assert bus.stats().commands_failed == 1  # the timeout, not the cancelled caller


async def test_cancelling_the_worker_itself_still_stops_it(bus: MessageBus) -> None:
    started = asyncio.Event()

    async def slow(e: Tick) -> None:
        started.set()
        await asyncio.Event().wait()

    bus.on_event(Tick, slow)
    await bus.publish(Tick())
    await started.wait()
    (worker,) = bus._transport._tasks  # type: ignore[attr-defined]
    worker.cancel()
    async with asyncio.timeout(DEADLINE):
        await asyncio.gather(worker, return_exceptions=True)
    assert worker.cancelled()
    assert bus.stats().handler_failures == 0
