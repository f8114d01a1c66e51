"""`LatencyHistogram` accuracy and memory, and the counters of `bus.stats()`."""

from __future__ import annotations

import asyncio
import math
import sys
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmgine.bus import Command, CommandResult, Event, MessageBus
from llmgine.bus._stats import LatencyHistogram

MINUTES_18 = 2**40  # ns: the range the histogram documents


def nearest_rank(values: list[int], q: float, slack: float = 0.0) -> int:
    """The smallest sample with at least fraction ``q`` of the samples at or below it
    (``slack`` forgives float noise in ``q * len(values)``)."""
    ordered = sorted(values)
    return ordered[max(1, math.ceil(q * len(ordered) - slack)) - 1]


def histogram(values: list[int]) -> LatencyHistogram:
    h = LatencyHistogram()
    for v in values:
        h.record(v)
    return h


# -- LatencyHistogram -------------------------------------------------------------------


def test_small_values_are_exact() -> None:
    h = histogram(list(range(1, 21)))

    assert h.percentile_ns(0.0) == 1
    assert h.percentile_ns(0.5) == 10
    assert h.percentile_ns(0.9) == 18
    assert h.percentile_ns(0.99) == 20
    assert h.percentile_ns(1.0) == 20
    assert h.count == 20
    assert h.max_ns == 20
    assert h.total_ns == 210


@pytest.mark.parametrize(
    ("values", "q", "expected"),
    [
        ([1, 2, 3, 4, 5], 0.5, 3),  # the median of five is the third
        ([1, 2, 3, 4, 5], 0.9, 5),
        ([1, 2, 3], 0.5, 2),
        ([5, 7], 0.5, 5),
        ([1, 2, 3, 4, 5, 6, 7], 0.5, 4),
    ],
)
def test_percentile_has_at_least_that_fraction_of_samples_below_it(
    values: list[int], q: float, expected: int
) -> None:
    result = histogram(values).percentile_ns(q)

    assert result == expected
    assert sum(v <= result for v in values) >= q * len(values)


def test_percentiles_on_known_data_are_within_the_bucket_error() -> None:
    values = list(range(1, 10_001))
    h = histogram(values)

    for q, true in [(0.5, 5_000), (0.9, 9_000), (0.99, 9_900), (1.0, 10_000)]:
        result = h.percentile_ns(q)
        assert true <= result <= true * 1.0625, (q, result)
    summary = h.summary()
    assert summary.count == 10_000
    assert summary.mean_ms == pytest.approx(5_000.5e-6)
    assert summary.max_ms == pytest.approx(10_000e-6)
    assert 5_000e-6 <= summary.p50_ms <= 5_000e-6 * 1.0625
    assert 9_900e-6 <= summary.p99_ms <= 9_900e-6 * 1.0625


@settings(database=None, deadline=None, max_examples=300)
@given(
    values=st.lists(st.integers(min_value=0, max_value=MINUTES_18), min_size=1, max_size=300),
    q=st.floats(min_value=0.0, max_value=1.0),
)
def test_percentile_is_never_below_the_true_value_and_at_most_6_25_percent_above(
    values: list[int], q: float
) -> None:
    result = histogram(values).percentile_ns(q)

    assert result >= nearest_rank(values, q, slack=1e-9)
    assert 16 * result <= 17 * nearest_rank(values, q)  # within 6.25%
    assert result <= max(values)


@settings(database=None, deadline=None)
@given(value=st.integers(min_value=0, max_value=MINUTES_18))
def test_a_single_sample_is_every_percentile(value: int) -> None:
    h = histogram([value])

    for q in (0.0, 0.5, 0.9, 0.99, 1.0):
        assert h.percentile_ns(q) == value


def test_values_beyond_the_range_are_not_under_reported() -> None:
    hours_3 = 3 * 3600 * 10**9
    h = histogram([hours_3])

    assert h.percentile_ns(0.5) == hours_3
    assert h.summary().p99_ms == pytest.approx(hours_3 * 1e-6)


def test_memory_is_a_fixed_number_of_slots() -> None:
    h = LatencyHistogram()
    slots = len(h._counts)
    size = sys.getsizeof(h._counts)

    for exponent in range(70):
        for step in range(0, 1_000, 7):
            h.record(2**exponent + step)

    assert len(h._counts) == slots == 640
    assert sys.getsizeof(h._counts) == size
    assert not hasattr(h, "__dict__")  # no room for anything else to grow
    assert h.count == 70 * len(range(0, 1_000, 7))


@pytest.mark.parametrize("q", [-0.01, 1.01, 50.0, math.nan])
def test_invalid_percentile_is_refused(q: float) -> None:
    h = histogram([1, 2, 3])
    with pytest.raises(ValueError, match="percentile must be between 0 and 1"):
        h.percentile_ns(q)


def test_an_empty_histogram_summarises_to_zeros() -> None:
    summary = LatencyHistogram().summary()

    assert summary.count == 0
    assert summary.mean_ms == summary.p50_ms == summary.p99_ms == summary.max_ms == 0.0


# -- bus.stats() ------------------------------------------------------------------------


class Ping(Event):
    n: int


class Double(Command[int]):
    x: int


class Explode(Command[None]):
    pass


class Orphan(Command[None]):
    pass


async def test_stats_count_a_known_mix_of_operations(bus: MessageBus) -> None:
    def broken(event: Ping) -> None:
        raise RuntimeError("handler bug")

    def explode(cmd: Explode) -> None:
        raise ValueError("kaboom")

    received: list[int] = []
    bus.on_event(Ping, lambda e: received.append(e.n))
    bus.on_event(Ping, broken)
    bus.on_command(Double, lambda c: c.x * 2)
    bus.on_command(Explode, explode)
    bus.add_filter(lambda e: not (isinstance(e, Ping) and e.n == 99))

    for n in range(3):
        await bus.publish(Ping(n=n))
    await bus.publish(Ping(n=3), wait=True)
    bus.publish_nowait(Ping(n=4))
    await bus.publish(Ping(n=99), wait=True)  # filtered
    results: list[CommandResult[Any]] = [
        await bus.execute(Double(x=1)),
        await bus.execute(Double(x=2)),
        await bus.execute(Explode()),
        await bus.execute(Orphan()),
    ]
    await bus.drain()

    assert [r.success for r in results] == [True, True, False, False]
    assert sorted(received) == [0, 1, 2, 3, 4]
    stats = bus.stats()
    assert stats.published == 6
    assert stats.filtered == 1
    assert stats.delivered == 10  # 5 pings x 2 handlers (a failing one counts)
    assert stats.handler_failures == 5
    assert stats.commands_executed == 4
    assert stats.commands_succeeded == 2
    assert stats.commands_failed == 2
    assert stats.dead_letters == 2
    assert stats.queue_depth == 0
    assert stats.queue_capacity == 10_000
    assert not stats.under_pressure
    assert stats.dropped == stats.rejected == stats.blocked_publishes == 0
    assert stats.command_latency.count == 4
    assert stats.event_latency.count >= 5
    for summary in (stats.command_latency, stats.event_latency):
        assert 0 < summary.p50_ms <= summary.p90_ms <= summary.p99_ms <= summary.max_ms
    assert stats.breakers == {}
    assert stats.scheduled_pending == 0
    assert stats.active_sessions == 0


async def test_queue_depth_counts_what_waits_behind_a_busy_worker() -> None:
    gate = asyncio.Event()
    entered = asyncio.Event()

    async def slow(event: Ping) -> None:
        entered.set()
        await gate.wait()

    async with MessageBus(queue_capacity=50) as bus:
        bus.on_event(Ping, slow)
        try:
            await bus.publish(Ping(n=0))
            await entered.wait()
            for n in range(1, 4):
                await bus.publish(Ping(n=n))
            stats = bus.stats()
            assert stats.queue_depth == 3
            assert stats.queue_capacity == 50
            assert stats.delivered == 0
        finally:
            gate.set()
        await bus.drain()
        assert bus.stats().queue_depth == 0
        assert bus.stats().delivered == 4


async def test_scheduled_pending_and_active_sessions(bus: MessageBus) -> None:
    first = bus.schedule(Ping(n=1), delay=3600)
    bus.schedule(Ping(n=2), delay=3600)
    assert bus.stats().scheduled_pending == 2
    first.cancel()
    assert bus.stats().scheduled_pending == 1

    async with bus.session("a"), bus.session("b"):
        assert bus.stats().active_sessions == 2
    assert bus.stats().active_sessions == 0


async def test_stats_are_a_snapshot(bus: MessageBus) -> None:
    bus.on_command(Double, lambda c: c.x)
    before = bus.stats()

    await bus.execute(Double(x=1))
    await bus.publish(Ping(n=1), wait=True)

    assert before.commands_executed == 0
    assert before.published == 0
    after = bus.stats()
    assert after.commands_executed == 1
    assert after.published == 1
