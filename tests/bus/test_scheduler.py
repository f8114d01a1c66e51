"""Scheduled events: after a delay, at a time, cancelled, and on stop."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from llmgine.bus import Event, MessageBus
from llmgine.errors import BusStoppedError


class Tick(Event):
    n: int = 0


async def test_an_event_scheduled_after_a_delay_is_published(bus: MessageBus) -> None:
    got = asyncio.get_running_loop().create_future()
    bus.on_event(Tick, lambda e: got.set_result(e.n))
    loop = asyncio.get_running_loop()
    before = loop.time()
    handle = bus.schedule(Tick(n=7), delay=0.01)
    assert bus.stats().scheduled_pending == 1
    assert await got == 7
    await handle.wait()
    assert handle.state == "published"
    assert loop.time() - before >= 0.01
    assert bus.stats().scheduled_pending == 0


async def test_an_event_scheduled_at_a_time_is_published(bus: MessageBus) -> None:
    got = asyncio.get_running_loop().create_future()
    bus.on_event(Tick, lambda e: got.set_result(e.n))
    bus.schedule(Tick(n=1), at=datetime.now(UTC) + timedelta(milliseconds=5))
    assert await got == 1


async def test_a_time_in_the_past_publishes_at_once(bus: MessageBus) -> None:
    seen: list[int] = []
    bus.on_event(Tick, lambda e: seen.append(e.n))
    handle = bus.schedule(Tick(n=2), at=datetime.now(UTC) - timedelta(hours=1))
    await handle.wait()
    await bus.drain()
    assert seen == [2]


async def test_a_cancelled_event_is_never_published(bus: MessageBus) -> None:
    seen: list[int] = []
    bus.on_event(Tick, lambda e: seen.append(e.n))
    handle = bus.schedule(Tick(n=3), delay=3600)
    assert handle.cancel()
    assert not handle.cancel()
    await handle.wait()
    assert handle.state == "cancelled"
    assert bus.stats().scheduled_pending == 0
    await bus.drain()
    assert seen == []


async def test_session_schedules_carry_the_session_id(bus: MessageBus) -> None:
    got = asyncio.get_running_loop().create_future()
    async with bus.session("s") as session:
        session.on_event(Tick, lambda e: got.set_result(e.session_id))
        session.schedule(Tick(), delay=0)
        assert await got == session.id


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({}, "exactly one"),
        ({"delay": 1, "at": datetime.now(UTC)}, "exactly one"),
        ({"at": datetime(2030, 1, 1)}, "timezone-aware"),
    ],
)
async def test_schedule_checks_its_arguments(
    bus: MessageBus, kwargs: dict[str, object], match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        bus.schedule(Tick(), **kwargs)  # type: ignore[arg-type]


def test_schedule_outside_a_loop_says_it_needs_one() -> None:
    with pytest.raises(RuntimeError, match="running event loop"):
        MessageBus().schedule(Tick(), delay=1)


async def test_stop_cancels_pending_events_and_says_so(caplog: pytest.LogCaptureFixture) -> None:
    bus = MessageBus()
    handle = bus.schedule(Tick(), delay=3600)
    await bus.stop()
    assert handle.state == "cancelled"
    assert "cancelled 1 scheduled event" in caplog.text
    with pytest.raises(BusStoppedError):
        bus.schedule(Tick(), delay=1)


async def test_a_scheduled_event_that_cannot_be_published_is_marked_failed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    bus = MessageBus(queue_capacity=1, backpressure="reject")
    gate = asyncio.Event()
    entered = asyncio.Event()

    async def hold(e: Tick) -> None:
        entered.set()
        await gate.wait()

    bus.on_event(Tick, hold)
    await bus.publish(Tick())  # taken by the worker
    await entered.wait()
    await bus.publish(Tick())  # fills the queue
    handle = bus.schedule(Tick(), delay=0)
    await handle.wait()
    assert handle.state == "failed"
    assert handle.error is not None
    assert "could not be published" in caplog.text
    gate.set()
    await bus.stop()
