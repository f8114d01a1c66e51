"""Event delivery: subclasses, priorities, filters, middleware, failures, waiting."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from llmgine.bus import (
    Command,
    Delivery,
    Event,
    EventHandlerFailed,
    EventNext,
    MessageBus,
    Subscription,
)
from llmgine.errors import HandlerRegistrationError


class Base(Event):
    n: int = 0


class Child(Base):
    pass


class Other(Event):
    pass


class Ping(Command[None]):
    pass


async def test_a_handler_for_a_base_class_receives_its_subclasses(bus: MessageBus) -> None:
    seen: list[str] = []
    bus.on_event(Base, lambda e: seen.append(f"base:{type(e).__name__}"))
    bus.on_event(Child, lambda e: seen.append("child"))
    bus.on_event(Event, lambda e: seen.append(f"any:{type(e).__name__}"))
    await bus.publish(Child(), wait=True)
    await bus.publish(Other(), wait=True)
    assert sorted(seen) == ["any:Child", "any:Other", "base:Child", "child"]


async def test_handlers_run_by_priority_then_registration_order(bus: MessageBus) -> None:
    order: list[str] = []
    bus.on_event(Base, lambda e: order.append("low"), priority=-1)
    bus.on_event(Base, lambda e: order.append("first-default"))
    bus.on_event(Base, lambda e: order.append("high"), priority=10)
    bus.on_event(Base, lambda e: order.append("second-default"))
    await bus.publish(Base(), wait=True)
    assert order == ["high", "first-default", "second-default", "low"]


async def test_sync_async_and_callable_object_handlers_all_run(bus: MessageBus) -> None:
    seen: list[str] = []

    async def coro(e: Base) -> None:
        seen.append("async")

    class Obj:
        async def __call__(self, e: Base) -> None:
            seen.append("object")

    bus.on_event(Base, coro)
    bus.on_event(Base, lambda e: seen.append("sync"))
    bus.on_event(Base, Obj())
    bus.on_event(Base, lambda e: coro(e))  # a sync callable returning an awaitable
    delivery = await bus.publish(Base(), wait=True)
    assert sorted(seen) == ["async", "async", "object", "sync"]
    assert delivery == Delivery(handled=4)


async def test_where_and_bus_filters_skip_events_and_count_them(bus: MessageBus) -> None:
    seen: list[int] = []
    bus.on_event(Base, lambda e: seen.append(e.n), where=lambda e: e.n % 2 == 0)
    flt = bus.add_filter(lambda e: not (isinstance(e, Base) and e.n > 3))
    for n in range(6):
        await bus.publish(Base(n=n), wait=True)
    assert seen == [0, 2]
    assert bus.stats().filtered == 2
    flt.remove()
    delivery = await bus.publish(Base(n=4), wait=True)
    assert seen == [0, 2, 4]
    assert delivery.ok
    assert (await bus.publish(Base(n=5), wait=True)).handled == 0


async def test_filtered_delivery_reports_it(bus: MessageBus) -> None:
    bus.add_filter(lambda e: False)
    delivery = await bus.publish(Base(), wait=True)
    assert delivery.filtered
    assert not delivery.ok


async def test_a_removed_subscription_stops_receiving(bus: MessageBus) -> None:
    seen: list[int] = []
    sub = bus.on_event(Base, lambda e: seen.append(e.n))
    await bus.publish(Base(n=1), wait=True)
    sub.remove()
    sub.remove()  # idempotent
    await bus.publish(Base(n=2), wait=True)
    assert seen == [1]
    assert not sub.active
    assert "removed" in repr(sub)


async def test_a_handler_removed_by_an_earlier_handler_does_not_run(bus: MessageBus) -> None:
    seen: list[str] = []
    subs: list[Subscription] = []

    def first(e: Base) -> None:
        seen.append("first")
        subs[0].remove()

    bus.on_event(Base, first, priority=1)
    subs.append(bus.on_event(Base, lambda e: seen.append("later")))
    await bus.publish(Base(), wait=True)
    assert seen == ["first"]


async def test_event_middleware_wraps_delivery_and_can_be_removed(bus: MessageBus) -> None:
    trail: list[str] = []

    async def outer(event: Event, call_next: EventNext) -> Delivery:
        trail.append("outer-in")
        delivery = await call_next(event)
        trail.append(f"outer-out:{delivery.handled}")
        return delivery

    async def inner(event: Event, call_next: EventNext) -> Delivery:
        trail.append("inner-in")
        return await call_next(event)

    bus.on_event(Base, lambda e: trail.append("handler"))
    first = bus.add_event_middleware(outer)
    bus.add_event_middleware(inner)
    await bus.publish(Base(), wait=True)
    assert trail == ["outer-in", "inner-in", "handler", "outer-out:1"]
    trail.clear()
    first.remove()
    await bus.publish(Base(), wait=True)
    assert trail == ["inner-in", "handler"]


async def test_middleware_can_short_circuit(bus: MessageBus) -> None:
    seen: list[int] = []

    async def block_odd(event: Event, call_next: EventNext) -> Delivery:
        if isinstance(event, Base) and event.n % 2:
            return Delivery(0, filtered=True)
        return await call_next(event)

    bus.add_event_middleware(block_odd)
    bus.on_event(Base, lambda e: seen.append(e.n))
    for n in range(4):
        await bus.publish(Base(n=n))
    await bus.drain()
    assert seen == [0, 2]


async def test_a_failing_handler_does_not_stop_the_others_and_is_reported(
    bus: MessageBus, caplog: pytest.LogCaptureFixture
) -> None:
    seen: list[str] = []
    failures: list[EventHandlerFailed] = []

    def broken(e: Base) -> None:
        raise RuntimeError("boom")

    bus.on_event(Base, broken, priority=1)
    bus.on_event(Base, lambda e: seen.append("after"))
    bus.on_event(EventHandlerFailed, failures.append)
    with caplog.at_level(logging.ERROR, logger="llmgine.bus"):
        delivery = await bus.publish(Base(session_id="s"), wait=True)
    assert seen == ["after"]
    assert delivery.handled == 2
    assert [f.handler for f in delivery.failures] == [broken.__qualname__]
    assert isinstance(delivery.failures[0].error, RuntimeError)
    assert len(failures) == 1
    assert failures[0].error.message == "boom"
    assert failures[0].session_id == "s"
    assert failures[0].event_type.endswith("Base")
    assert "boom" in caplog.text
    assert bus.stats().handler_failures == 1


async def test_a_failing_failure_handler_does_not_loop(bus: MessageBus) -> None:
    calls = 0

    def fails_on_failures(e: EventHandlerFailed) -> None:
        nonlocal calls
        calls += 1
        raise RuntimeError("again")

    bus.on_event(Base, lambda e: 1 / 0)
    bus.on_event(EventHandlerFailed, fails_on_failures)
    await bus.publish(Base(), wait=True)
    assert calls == 1
    assert bus.stats().handler_failures == 2


async def test_waiting_publish_does_not_wait_for_unrelated_queued_events(
    bus: MessageBus,
) -> None:
    release = asyncio.Event()
    started = asyncio.Event()
    seen: list[str] = []

    async def slow(e: Other) -> None:
        started.set()
        await release.wait()
        seen.append("slow")

    bus.on_event(Other, slow)
    bus.on_event(Base, lambda e: seen.append("fast"))
    await bus.publish(Other())  # occupies the worker until released
    await started.wait()
    await bus.publish(Other())  # and another queued behind it
    await bus.publish(Base(), wait=True)
    assert seen == ["fast"]
    release.set()
    await bus.drain()
    assert seen == ["fast", "slow", "slow"]


async def test_handlers_that_publish_and_wait_inside_handlers_never_deadlock(
    bus: MessageBus,
) -> None:
    seen: list[str] = []

    async def outer(e: Base) -> None:
        seen.append(f"outer{e.n}")
        if e.n < 3:
            await bus.publish(Base(n=e.n + 1), wait=True)  # nested, waiting
            await bus.publish(Child(n=100))  # and fire-and-forget from a handler

    bus.on_event(Base, outer)
    await bus.publish(Base(n=0))  # starts on the worker
    await bus.drain()
    assert seen[:4] == ["outer0", "outer1", "outer2", "outer3"]
    assert seen.count("outer100") == 3


async def test_publish_refuses_non_events_with_a_hint(bus: MessageBus) -> None:
    with pytest.raises(TypeError, match="execute"):
        await bus.publish(Ping())  # type: ignore[call-overload]
    with pytest.raises(TypeError, match="takes an Event"):
        await bus.publish("text")  # type: ignore[call-overload]
    with pytest.raises(TypeError, match="execute"):
        bus.publish_nowait(Ping())  # type: ignore[arg-type]


def test_registration_checks_its_arguments() -> None:
    bus = MessageBus()
    with pytest.raises(HandlerRegistrationError, match="on_command"):
        bus.on_event(Ping, print)  # type: ignore[type-var]
    with pytest.raises(HandlerRegistrationError, match="callable"):
        bus.on_event(Base, "nope")  # type: ignore[arg-type]
    with pytest.raises(HandlerRegistrationError, match="on_event"):
        bus.on_command(Base, print)  # type: ignore[type-var]
    with pytest.raises(TypeError, match="callable"):
        bus.add_filter(42)  # type: ignore[arg-type]


async def test_publish_nowait_queues_from_sync_code(bus: MessageBus) -> None:
    seen: list[int] = []
    bus.on_event(Base, lambda e: seen.append(e.n))
    for n in range(3):
        bus.publish_nowait(Base(n=n))
    await bus.drain()
    assert seen == [0, 1, 2]
    assert bus.stats().published == 3


async def test_queued_events_arrive_in_publish_order_with_one_worker(bus: MessageBus) -> None:
    seen: list[int] = []

    async def record(e: Base) -> None:
        seen.append(e.n)

    bus.on_event(Base, record)
    for n in range(500):
        await bus.publish(Base(n=n))
    await bus.drain()
    assert seen == list(range(500))


async def test_several_workers_deliver_everything_concurrently() -> None:
    bus = MessageBus(workers=3)
    gate = asyncio.Event()
    running = 0
    peak = 0
    done: list[int] = []

    async def handler(e: Base) -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        if running == 3:
            gate.set()
        await gate.wait()
        running -= 1
        done.append(e.n)

    bus.on_event(Base, handler)
    for n in range(9):
        await bus.publish(Base(n=n))
    await bus.drain()
    await bus.stop()
    assert sorted(done) == list(range(9))
    assert peak == 3


async def test_many_subscriptions_of_many_types_resolve_correctly(bus: MessageBus) -> None:
    counts: dict[str, int] = {}

    def count(tag: str) -> Any:
        return lambda e: counts.__setitem__(tag, counts.get(tag, 0) + 1)

    for i in range(20):
        bus.on_event(Base if i % 2 else Child, count(f"h{i}"))
    await bus.publish(Base(), wait=True)
    await bus.publish(Child(), wait=True)
    assert sum(counts.values()) == 10 + 20
