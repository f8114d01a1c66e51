"""A filter or event middleware that raises: counted, reported, never a silent loss."""

from __future__ import annotations

import asyncio
import logging

import pytest

from llmgine.bus import Delivery, Event, EventHandlerFailed, EventNext, MessageBus
from tests.deadline import DEADLINE


class Order(Event):
    n: int = 0


def broken_filter(event: Event) -> bool:
    if isinstance(event, Order) and event.n == 0:
        raise ValueError("filter bug")
    return True


async def test_a_raising_filter_on_a_queued_event_is_counted_and_reported(
    bus: MessageBus, caplog: pytest.LogCaptureFixture
) -> None:
    delivered: list[int] = []
    reports: list[EventHandlerFailed] = []
    bus.on_event(Order, lambda e: delivered.append(e.n))
    bus.on_event(EventHandlerFailed, reports.append)
    bus.add_filter(broken_filter)
    with caplog.at_level(logging.ERROR, logger="llmgine.bus"):
        await bus.publish(Order(n=0, session_id="s1"))
        await bus.publish(Order(n=1))
        async with asyncio.timeout(DEADLINE):
            await bus.drain()
    assert delivered == [1]  # a failing filter lets nothing through...
    stats = bus.stats()
    assert stats.handler_failures == 1  # ...but the event is not lost without a trace
    assert stats.filtered == 0  # it was not filtered out: the filter failed
    (report,) = reports
    assert report.handler == broken_filter.__qualname__
    assert report.event_type.endswith("Order")
    assert report.error.message == "filter bug"
    assert report.session_id == "s1"
    assert "bus filter" in caplog.text


async def test_a_raising_filter_on_a_waiting_publish_returns_the_failure(
    bus: MessageBus,
) -> None:
    bus.add_filter(broken_filter)
    delivery = await bus.publish(Order(n=0), wait=True)
    assert not delivery.ok
    assert not delivery.filtered
    assert delivery.handled == 0
    assert [f.handler for f in delivery.failures] == [broken_filter.__qualname__]
    assert isinstance(delivery.failures[0].error, ValueError)


async def test_a_middleware_raising_before_its_handlers_is_reported(bus: MessageBus) -> None:
    delivered: list[int] = []
    reports: list[EventHandlerFailed] = []

    async def gate(event: Event, call_next: EventNext) -> Delivery:
        if isinstance(event, Order) and event.n == 0:
            raise RuntimeError("middleware bug")
        return await call_next(event)

    bus.on_event(Order, lambda e: delivered.append(e.n))
    bus.on_event(EventHandlerFailed, reports.append)
    bus.add_event_middleware(gate)
    await bus.publish(Order(n=0))
    await bus.publish(Order(n=1))
    async with asyncio.timeout(DEADLINE):
        await bus.drain()
    assert delivered == [1]
    assert bus.stats().handler_failures == 1
    assert [r.handler for r in reports] == [gate.__qualname__]


async def test_a_middleware_raising_after_its_handlers_keeps_what_they_did(
    bus: MessageBus,
) -> None:
    delivered: list[int] = []

    async def audit(event: Event, call_next: EventNext) -> Delivery:
        delivery = await call_next(event)
        if isinstance(event, Order):
            raise RuntimeError("audit log full")
        return delivery

    def handler_bug(e: Order) -> None:
        raise KeyError("handler bug")

    bus.on_event(Order, lambda e: delivered.append(e.n))
    bus.on_event(Order, handler_bug)
    bus.add_event_middleware(audit)
    delivery = await bus.publish(Order(n=5), wait=True)  # used to raise RuntimeError
    assert delivered == [5]
    assert delivery.handled == 2
    assert [f.handler for f in delivery.failures] == [handler_bug.__qualname__, audit.__qualname__]
    assert bus.stats().handler_failures == 2


async def test_a_middleware_failing_on_every_event_does_not_loop(bus: MessageBus) -> None:
    calls = 0

    async def always(event: Event, call_next: EventNext) -> Delivery:
        nonlocal calls
        calls += 1
        raise RuntimeError("always")

    bus.add_event_middleware(always)
    delivery = await bus.publish(Order(), wait=True)
    assert not delivery.ok
    # The event, then its EventHandlerFailed (whose own failure is logged only).
    assert calls == 2
    assert bus.stats().handler_failures == 2


async def test_a_filter_that_returns_an_awaitable_or_no_truth_value_is_a_failure(
    bus: MessageBus,
) -> None:
    class NoTruth:
        def __bool__(self) -> bool:
            raise ValueError("ambiguous truth value")

    async def async_filter(event: Event) -> bool:
        return True

    delivered: list[int] = []
    bus.on_event(Order, lambda e: delivered.append(e.n))
    first = bus.add_filter(async_filter)  # type: ignore[arg-type]
    delivery = await bus.publish(Order(n=1), wait=True)
    assert isinstance(delivery.failures[0].error, TypeError)
    assert "synchronous" in str(delivery.failures[0].error)
    first.remove()
    bus.add_filter(lambda e: NoTruth())  # type: ignore[arg-type,return-value]
    await bus.publish(Order(n=2))
    async with asyncio.timeout(DEADLINE):
        await bus.drain()
    assert delivered == []
    # Each filter failed on its event and on that failure's EventHandlerFailed (logged).
    assert bus.stats().handler_failures == 4
