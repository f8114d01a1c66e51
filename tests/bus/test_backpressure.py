"""The bounded event queue: drop_oldest, reject and block backpressure, and watermarks.

What these check is what the bus's docstring promises, seen from outside: depths, counts,
who waits and who does not. The single worker is parked inside a handler on a semaphore the
test controls, so the queue fills exactly as each test chooses; the test lets events
through one at a time and waits (on a future, never on time or a number of loop turns)
until the worker holds the next one. asyncio runs ready callbacks in the order they were
scheduled, so by then anything the worker's progress woke (a blocked publisher) has run.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from llmgine._idle import MAX_TURNS, ready_callbacks, when_idle
from llmgine.bus import (
    BackpressureStrategy,
    Delivery,
    Event,
    LocalTransport,
    MessageBus,
    message_type_name,
)
from llmgine.bus._transport import IDLE_BATCH
from llmgine.errors import BackpressureError, BusError


class Tick(Event):
    n: int


class Outer(Event):
    pass


class Inner(Event):
    pass


class Worker:
    """The `Tick` handler: parks on a semaphore before each event, then records it."""

    def __init__(self) -> None:
        self.permits = asyncio.Semaphore(0)
        self.entered = asyncio.Event()
        self.seen: list[int] = []
        self._holding: dict[int, asyncio.Future[None]] = {}

    async def __call__(self, event: Tick) -> None:
        self.entered.set()
        self._held(event.n).set_result(None)
        await self.permits.acquire()
        self.seen.append(event.n)

    def _held(self, n: int) -> asyncio.Future[None]:
        if n not in self._holding:
            self._holding[n] = asyncio.get_running_loop().create_future()
        return self._holding[n]

    async def holds(self, n: int) -> None:
        """Return once the worker has taken Tick ``n`` off the queue and is parked on it."""
        async with asyncio.timeout(10):  # a broken bus fails here, not at the suite timeout
            await self._held(n)

    def let_through(self, count: int = 1) -> None:
        for _ in range(count):
            self.permits.release()

    def open(self) -> None:
        self.let_through(100_000)


class Buses:
    """Makes buses whose Tick handler is a `Worker`; stops them all after the test."""

    def __init__(self) -> None:
        self.made: list[tuple[MessageBus, Worker]] = []

    async def __call__(
        self, capacity: int, strategy: BackpressureStrategy, **marks: int
    ) -> tuple[MessageBus, Worker]:
        bus = MessageBus(
            queue_capacity=capacity,
            backpressure=strategy,
            high_watermark=marks.get("high"),
            low_watermark=marks.get("low"),
        )
        worker = Worker()
        bus.on_event(Tick, worker)
        await bus.start()
        self.made.append((bus, worker))
        return bus, worker


@pytest.fixture
async def make_bus() -> AsyncIterator[Buses]:
    buses = Buses()
    yield buses
    for bus, worker in buses.made:
        worker.open()
        await bus.stop()


async def park(bus: MessageBus, worker: Worker) -> None:
    """Publish Tick 0 and wait until the worker holds it: the queue is then empty."""
    await bus.publish(Tick(n=0))
    await worker.entered.wait()
    assert bus.stats().queue_depth == 0


async def publish(bus: MessageBus, numbers: range) -> None:
    for n in numbers:
        await bus.publish(Tick(n=n))


# -- drop_oldest ------------------------------------------------------------------------


async def test_drop_oldest_drops_exactly_the_oldest_events(make_bus: Buses) -> None:
    bus, worker = await make_bus(4, "drop_oldest")
    await park(bus, worker)

    await publish(bus, range(1, 8))  # 7 events into 4 places

    stats = bus.stats()
    assert stats.dropped == 3
    assert stats.queue_depth == 4
    assert stats.dropped_by_type == {message_type_name(Tick): 3}
    assert stats.published == 8
    worker.open()
    await bus.drain()
    assert worker.seen == [0, 4, 5, 6, 7]


async def test_drop_oldest_applies_to_publish_nowait(make_bus: Buses) -> None:
    bus, worker = await make_bus(2, "drop_oldest")
    await park(bus, worker)

    for n in range(1, 5):
        bus.publish_nowait(Tick(n=n))

    assert bus.stats().dropped == 2
    worker.open()
    await bus.drain()
    assert worker.seen == [0, 3, 4]


# -- reject -----------------------------------------------------------------------------


async def test_reject_raises_and_queues_nothing_for_the_rejected(make_bus: Buses) -> None:
    bus, worker = await make_bus(3, "reject")
    await park(bus, worker)
    await publish(bus, range(1, 4))

    for n in (4, 5):
        with pytest.raises(BackpressureError, match="queue is full") as info:
            await bus.publish(Tick(n=n))
    message = str(info.value)
    assert "(3 events)" in message
    assert "'reject'" in message
    assert "not published" in message
    assert "queue_capacity" in message

    stats = bus.stats()
    assert stats.rejected == 2
    assert stats.dropped == 0
    assert stats.queue_depth == 3
    worker.open()
    await bus.drain()
    assert worker.seen == [0, 1, 2, 3]


async def test_rejected_events_are_not_counted_as_published(make_bus: Buses) -> None:
    bus, worker = await make_bus(2, "reject")
    await park(bus, worker)
    await publish(bus, range(1, 3))

    with pytest.raises(BackpressureError):
        await bus.publish(Tick(n=3))
    with pytest.raises(BackpressureError):
        bus.publish_nowait(Tick(n=4))

    stats = bus.stats()
    assert stats.rejected == 2
    assert stats.published == 3  # Tick 0, 1 and 2; the error said "not published"


@pytest.mark.parametrize("strategy", ["block", "reject"])
async def test_publish_nowait_into_a_full_queue_raises(
    make_bus: Buses, strategy: BackpressureStrategy
) -> None:
    bus, worker = await make_bus(2, strategy)
    await park(bus, worker)
    bus.publish_nowait(Tick(n=1))
    bus.publish_nowait(Tick(n=2))

    with pytest.raises(BackpressureError, match="queue is full") as info:
        bus.publish_nowait(Tick(n=3))

    if strategy == "block":
        assert "publish_nowait cannot wait; use `await bus.publish(event)`" in str(info.value)
    assert bus.stats().queue_depth == 2
    worker.open()
    await bus.drain()
    assert worker.seen == [0, 1, 2]


# -- block ------------------------------------------------------------------------------


async def test_block_holds_the_publisher_until_the_low_watermark(make_bus: Buses) -> None:
    bus, worker = await make_bus(4, "block", high=3, low=1)
    await park(bus, worker)
    await publish(bus, range(1, 5))  # full: depth 4
    resumed_at: list[int] = []

    async def publisher() -> None:
        await bus.publish(Tick(n=5))
        resumed_at.append(bus.stats().queue_depth)

    task = asyncio.create_task(publisher())

    for n, depth in ((1, 3), (2, 2)):  # above the low watermark: still blocked
        worker.let_through()
        await worker.holds(n)
        assert bus.stats().queue_depth == depth
        assert bus.stats().blocked_publishes == 1
        assert not task.done()

    worker.let_through()
    await worker.holds(3)  # depth fell to 1, the low watermark: the publisher went on
    assert task.done()
    assert resumed_at == [2]  # Tick 4 and its own Tick 5
    assert bus.stats().blocked_publishes == 1
    worker.open()
    await bus.drain()
    assert worker.seen == [0, 1, 2, 3, 4, 5]


async def test_block_delivers_every_event_exactly_once_in_order(make_bus: Buses) -> None:
    bus, worker = await make_bus(4, "block")
    await park(bus, worker)
    publishers = [
        asyncio.create_task(publish(bus, range(start, start + 30))) for start in (1, 101, 201)
    ]
    worker.open()  # the publishers fill the queue and block before the worker moves on
    async with asyncio.timeout(10):
        await asyncio.gather(*publishers)
        await bus.drain()

    expected = [0, *range(1, 31), *range(101, 131), *range(201, 231)]
    assert sorted(worker.seen) == expected  # exactly once
    for start in (1, 101, 201):  # each publisher's events in its order
        assert [n for n in worker.seen if start <= n < start + 30] == list(range(start, start + 30))
    stats = bus.stats()
    assert stats.blocked_publishes >= 3
    assert stats.dropped == stats.rejected == 0
    assert stats.published == len(expected)


@pytest.mark.parametrize("wait", [False, True])
async def test_a_handler_publishing_into_a_full_block_queue_does_not_deadlock(
    make_bus: Buses, wait: bool
) -> None:
    bus, worker = await make_bus(2, "block")
    log: list[str] = []
    started, go, done = asyncio.Event(), asyncio.Event(), asyncio.Event()
    deliveries: list[Delivery] = []

    async def outer(event: Outer) -> None:
        started.set()
        await go.wait()
        if wait:
            deliveries.append(await bus.publish(Inner(), wait=True))
        else:
            await bus.publish(Inner())
        log.append("outer done")
        done.set()

    def inner(event: Inner) -> None:
        log.append(f"inner at depth {bus.stats().queue_depth}")

    bus.on_event(Outer, outer)
    bus.on_event(Inner, inner)
    await bus.publish(Outer())
    await started.wait()  # the worker is inside Outer's handler
    await publish(bus, range(1, 3))  # the queue is now full behind Outer's handler
    assert bus.stats().queue_depth == 2

    go.set()
    async with asyncio.timeout(10):  # a deadlock fails here, not at the suite timeout
        await done.wait()

    assert log == ["inner at depth 2", "outer done"]  # delivered inline, before Tick 1
    if wait:
        assert deliveries[0].handled == 1
        assert deliveries[0].ok
    worker.open()
    await bus.drain()
    assert worker.seen == [1, 2]


# -- watermarks -------------------------------------------------------------------------


async def test_under_pressure_once_depth_reaches_the_high_watermark(make_bus: Buses) -> None:
    bus, worker = await make_bus(10, "block", high=6, low=2)
    await park(bus, worker)

    await publish(bus, range(1, 6))
    assert bus.stats().queue_depth == 5
    assert not bus.stats().under_pressure
    assert bus.stats().high_watermark_hits == 0

    await bus.publish(Tick(n=6))

    stats = bus.stats()
    assert stats.queue_depth == 6
    assert stats.under_pressure
    assert stats.high_watermark_hits == 1


async def test_pressure_ends_at_the_low_watermark_and_episodes_are_counted(
    make_bus: Buses,
) -> None:
    bus, worker = await make_bus(10, "drop_oldest", high=6, low=2)
    await park(bus, worker)
    await publish(bus, range(1, 10))  # depth 9: well past the high watermark
    assert bus.stats().under_pressure
    assert bus.stats().high_watermark_hits == 1

    for n in range(1, 8):
        worker.let_through()
        await worker.holds(n)
        depth = 9 - n
        stats = bus.stats()
        assert stats.queue_depth == depth
        assert stats.under_pressure == (depth > 2), depth
    assert bus.stats().high_watermark_hits == 1

    await publish(bus, range(10, 20))
    assert bus.stats().under_pressure
    assert bus.stats().high_watermark_hits == 2


# -- configuration ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"queue_capacity": 0}, "queue capacity must be at least 1, got 0"),
        ({"queue_capacity": -5}, "queue capacity must be at least 1"),
        ({"backpressure": "drop_newest"}, "must be 'block', 'drop_oldest' or 'reject'"),
        ({"queue_capacity": 10, "high_watermark": 11}, "0 <= low < high <= capacity"),
        ({"queue_capacity": 10, "high_watermark": 5, "low_watermark": 5}, "low=5, high=5"),
        ({"queue_capacity": 10, "high_watermark": 5, "low_watermark": 7}, "low < high"),
        ({"queue_capacity": 10, "low_watermark": -1}, "0 <= low"),
        ({"workers": 0}, "workers must be at least 1"),
    ],
)
def test_invalid_queue_settings_are_refused(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        MessageBus(**kwargs)


@pytest.mark.parametrize(
    "option",
    [
        {"queue_capacity": 5},
        {"backpressure": "reject"},
        {"high_watermark": 4},
        {"low_watermark": 1},
        {"workers": 2},
    ],
)
def test_queue_options_beside_a_transport_are_refused(option: dict[str, Any]) -> None:
    (name,) = option
    with pytest.raises(ValueError, match=f"also given {name}: queue options") as info:
        MessageBus(transport=LocalTransport(10), **option)
    assert "would be ignored" in str(info.value)
    assert "Configure the transport itself" in str(info.value)


def test_a_transport_alone_is_used_as_given() -> None:
    transport = LocalTransport(7, "reject")
    assert MessageBus(transport=transport).stats().queue_capacity == 7


async def test_drain_inside_a_handler_raises_bus_error(bus: MessageBus) -> None:
    errors: list[BaseException] = []

    async def handler(event: Tick) -> None:
        try:
            await bus.drain()
        except BusError as exc:
            errors.append(exc)

    bus.on_event(Tick, handler)
    await bus.publish(Tick(n=1))
    async with asyncio.timeout(10):
        await bus.drain()

    assert len(errors) == 1
    assert "inside an event handler" in str(errors[0])
    assert "wait=True" in str(errors[0])


async def idle_turn() -> int:
    """Wait for the loop's first turn with nothing else ready (`when_idle`: at most
    `MAX_TURNS` turns); returns how many callbacks were ready then (0 if it was idle)."""
    loop = asyncio.get_running_loop()
    turn: asyncio.Future[int] = loop.create_future()
    when_idle(loop, lambda: turn.set_result(len(ready_callbacks(loop) or ())))
    return await turn


async def checkpoint() -> None:
    """What an HTTP client does between writing a request's headers and its body: yield
    to the loop once, ready to go on at once. (A model of the publisher, not a wait.)"""
    await asyncio.sleep(0)


async def test_an_idle_bus_leaves_the_loop_idle_and_its_worker_parked() -> None:
    bus = MessageBus()
    seen: list[int] = []
    bus.on_event(Tick, lambda e: seen.append(e.n))
    async with bus:
        await bus.publish(Tick(n=1))
        await bus.drain()
        stats, tasks = bus.stats(), len(asyncio.all_tasks())

        # A polling worker would always be ready to run again: the loop would never idle.
        assert await idle_turn() == 0

        workers = [t for t in asyncio.all_tasks() if t.get_name().startswith("llmgine-bus-worker")]
        assert len(workers) == 1
        frames = workers[0].get_stack()
        assert [f.f_code.co_name for f in frames] == ["_work"]  # awaiting, not in sleep()
        assert len(asyncio.all_tasks()) == tasks
        assert bus.stats() == stats

        await bus.publish(Tick(n=2))  # and it wakes up for the next event
        await bus.drain()
        assert seen == [1, 2]


async def test_a_few_queued_events_wait_for_the_publisher_to_wait(bus: MessageBus) -> None:
    # A publisher about to send a request: delivery must not come between its yields
    # (headers written, body not yet) but once it waits for the answer.
    order: list[str] = []
    bus.on_event(Tick, lambda e: order.append(f"delivered {e.n}"))
    await bus.publish(Tick(n=1))
    for _ in range(MAX_TURNS // 2):  # a client yielding a few times between its writes
        await checkpoint()
    order.append("request sent")
    await idle_turn()  # waiting for the network: the loop is idle
    await bus.drain()
    assert order == ["request sent", "delivered 1"]


async def test_a_backlog_is_delivered_without_waiting_for_an_idle_loop(bus: MessageBus) -> None:
    seen: list[int] = []
    bus.on_event(Tick, lambda e: seen.append(e.n))
    stop_busy = asyncio.Event()

    async def busy() -> None:  # keeps the loop from ever being idle
        while not stop_busy.is_set():
            await checkpoint()

    keeping_busy = asyncio.create_task(busy())
    try:
        for n in range(IDLE_BATCH * 2):
            await bus.publish(Tick(n=n))
        # Asked after publishing, on a loop that never idles: answered only after the most
        # turns `when_idle` waits. The backlog was delivered before that: at once.
        assert await idle_turn() > 0  # the loop really was busy
        assert seen == list(range(IDLE_BATCH * 2))
    finally:
        stop_busy.set()
        await keeping_busy
