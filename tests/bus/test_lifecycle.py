"""Start, drain, stop, event loops, and the default bus."""

from __future__ import annotations

import asyncio
import threading

import pytest

from llmgine.bus import Command, Event, LocalTransport, MessageBus, default_bus, set_default_bus
from llmgine.errors import BusStoppedError, EventLoopMismatchError


class Job(Event):
    n: int = 0


class Do(Command[int]):
    pass


async def test_stop_delivers_everything_queued_then_refuses() -> None:
    bus = MessageBus()
    seen: list[int] = []
    bus.on_event(Job, lambda e: seen.append(e.n))
    for n in range(100):
        await bus.publish(Job(n=n))
    await bus.stop()
    assert seen == list(range(100))
    with pytest.raises(BusStoppedError, match="start"):
        await bus.publish(Job())
    with pytest.raises(BusStoppedError):
        await bus.publish(Job(), wait=True)
    with pytest.raises(BusStoppedError):
        bus.publish_nowait(Job())
    with pytest.raises(BusStoppedError):
        await bus.execute(Do())
    await bus.start()
    await bus.publish(Job(n=100), wait=True)
    assert seen[-1] == 100
    await bus.stop()


async def test_the_bus_is_an_async_context_manager() -> None:
    seen: list[int] = []
    async with MessageBus() as bus:
        bus.on_event(Job, lambda e: seen.append(e.n))
        await bus.publish(Job(n=1))
    assert seen == [1]


async def test_drain_waits_for_events_caused_by_events(bus: MessageBus) -> None:
    seen: list[int] = []

    async def chain(e: Job) -> None:
        seen.append(e.n)
        if e.n < 50:
            await bus.publish(Job(n=e.n + 1))

    bus.on_event(Job, chain)
    await bus.publish(Job(n=0))
    await bus.drain()
    assert seen == list(range(51))


async def test_buses_are_independent(bus: MessageBus) -> None:
    other = MessageBus()
    seen: list[str] = []
    bus.on_event(Job, lambda e: seen.append("first"))
    other.on_event(Job, lambda e: seen.append("second"))
    await other.publish(Job(), wait=True)
    assert seen == ["second"]
    await other.stop()


def test_default_bus_is_an_ordinary_replaceable_bus() -> None:
    previous = set_default_bus(None)
    try:
        first = default_bus()
        assert default_bus() is first
        mine = MessageBus(queue_capacity=5)
        assert set_default_bus(mine) is first
        assert default_bus() is mine
        assert mine.stats().queue_capacity == 5  # constructor arguments are honoured
    finally:
        set_default_bus(previous)


def test_a_bus_moves_to_a_new_loop_when_the_old_one_is_closed() -> None:
    bus = MessageBus()
    seen: list[int] = []
    bus.on_event(Job, lambda e: seen.append(e.n))

    async def first() -> None:
        await bus.publish(Job(n=1))
        await bus.drain()
        bus.publish_nowait(Job(n=2))  # left queued when this loop closes

    async def second() -> None:
        await bus.drain()
        await bus.publish(Job(n=3), wait=True)

    asyncio.run(first())
    asyncio.run(second())
    assert seen == [1, 2, 3]


def test_a_bus_refuses_a_second_running_loop() -> None:
    bus = MessageBus()
    started = threading.Event()
    finish = threading.Event()

    async def hold_loop() -> None:
        await bus.start()
        started.set()
        await asyncio.to_thread(finish.wait)

    thread = threading.Thread(target=asyncio.run, args=(hold_loop(),))
    thread.start()
    started.wait()
    try:

        async def other() -> None:
            with pytest.raises(EventLoopMismatchError, match="one bus per"):
                await bus.publish(Job())

        asyncio.run(other())
    finally:
        finish.set()
        thread.join()


def test_publish_nowait_before_any_loop_is_delivered_later() -> None:
    bus = MessageBus()
    seen: list[int] = []
    bus.on_event(Job, lambda e: seen.append(e.n))
    bus.publish_nowait(Job(n=9))

    async def later() -> None:
        await bus.drain()

    asyncio.run(later())
    assert seen == [9]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"capacity": 0}, "capacity"),
        ({"strategy": "spill"}, "strategy"),
        ({"capacity": 10, "high_watermark": 11}, "watermarks"),
        ({"capacity": 10, "high_watermark": 5, "low_watermark": 5}, "watermarks"),
        ({"workers": 0}, "workers"),
    ],
)
def test_queue_settings_are_checked(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        LocalTransport(**kwargs)  # type: ignore[arg-type]
