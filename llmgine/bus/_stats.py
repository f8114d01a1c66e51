"""Bounded metrics for the bus: a log-linear latency histogram and the `BusStats` snapshot."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from llmgine.bus._bus import MessageBus

__all__ = ["BusStats", "LatencyHistogram", "LatencySummary", "bus_stats"]

# 16 linear sub-buckets per power of two: any recorded value lands in a bucket whose bounds
# are within 6.25% of it, from 1 ns to ~2.4 hours, in a fixed 640-slot list (longer values
# share the last slot, which reports the true maximum).
_SUB_BITS = 4
_SUB = 1 << _SUB_BITS
_SLOTS = 40 * _SUB


def _bucket_upper_ns(index: int) -> int:
    if index < 2 * _SUB:
        return index
    shift = index // _SUB - 1
    return ((index % _SUB + _SUB + 1) << shift) - 1


@dataclass(frozen=True, slots=True)
class LatencySummary:
    """Percentiles in milliseconds (upper bounds of histogram buckets, within 6.25%)."""

    count: int
    mean_ms: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float


class LatencyHistogram:
    """A fixed-size histogram of durations in nanoseconds: O(1) to record, bounded memory."""

    __slots__ = ("_counts", "count", "max_ns", "total_ns")

    def __init__(self) -> None:
        self._counts = [0] * _SLOTS
        self.count = 0
        self.total_ns = 0
        self.max_ns = 0

    def record(self, ns: int) -> None:
        # The bucket index, computed inline: this runs once per delivered event.
        if ns < 2 * _SUB:
            index = ns if ns > 0 else 0
        else:
            shift = ns.bit_length() - (_SUB_BITS + 1)
            index = (shift + 1) * _SUB + (ns >> shift) - _SUB
            if index >= _SLOTS:
                index = _SLOTS - 1
        self._counts[index] += 1
        self.count += 1
        self.total_ns += ns
        if ns > self.max_ns:
            self.max_ns = ns

    def percentile_ns(self, q: float) -> int:
        """The smallest bucket bound below which at least fraction ``q`` of samples fall."""
        if not 0.0 <= q <= 1.0:
            raise ValueError(f"percentile must be between 0 and 1, got {q}")
        if self.count == 0:
            return 0
        rank = max(1, math.ceil(q * self.count - 1e-9))  # -1e-9: float noise in q * count
        seen = 0
        for index, n in enumerate(self._counts):
            seen += n
            if seen >= rank:
                if index == _SLOTS - 1:
                    return self.max_ns
                return min(_bucket_upper_ns(index), self.max_ns)
        return self.max_ns

    def summary(self) -> LatencySummary:
        ms = 1e-6
        return LatencySummary(
            count=self.count,
            mean_ms=(self.total_ns / self.count * ms) if self.count else 0.0,
            p50_ms=self.percentile_ns(0.50) * ms,
            p90_ms=self.percentile_ns(0.90) * ms,
            p99_ms=self.percentile_ns(0.99) * ms,
            max_ms=self.max_ns * ms,
        )


@dataclass(frozen=True, slots=True)
class BusStats:
    """A snapshot of a bus's counters; every collection in it is bounded.

    ``dropped`` and ``rejected`` count events lost to the ``drop_oldest`` strategy and
    refused by ``reject``; ``dropped_by_type`` names what was dropped.
    ``handler_failures`` counts every handler, bus filter and event middleware that raised
    on an event (each also published as `EventHandlerFailed`).
    """

    published: int
    delivered: int
    filtered: int
    handler_failures: int
    commands_executed: int
    commands_succeeded: int
    commands_failed: int
    dropped: int
    rejected: int
    blocked_publishes: int
    queue_depth: int
    queue_capacity: int
    under_pressure: bool
    high_watermark_hits: int
    event_latency: LatencySummary
    command_latency: LatencySummary
    breakers: dict[str, str] = field(default_factory=dict)
    dead_letters: int = 0
    dead_letters_evicted: int = 0
    scheduled_pending: int = 0
    active_sessions: int = 0
    dropped_by_type: dict[str, int] = field(default_factory=dict)
    observer_failures: int = 0
    observed: int = 0  # events handed to observers (see BusObserver)


def bus_stats(bus: MessageBus) -> BusStats:
    """`MessageBus.stats()`: a snapshot of the bus's counters and its transport's."""
    t = bus._transport.stats()
    return BusStats(
        published=bus._published,
        delivered=bus._delivered,
        filtered=bus._filtered,
        handler_failures=bus._handler_failures,
        commands_executed=bus._executed,
        commands_succeeded=bus._commands.succeeded,
        commands_failed=bus._commands.failed,
        dropped=t.dropped,
        rejected=t.rejected,
        blocked_publishes=t.blocked,
        queue_depth=t.depth,
        queue_capacity=t.capacity,
        under_pressure=t.under_pressure,
        high_watermark_hits=t.high_watermark_hits,
        event_latency=bus._event_latency.summary(),
        command_latency=bus._commands.latency.summary(),
        breakers=bus._commands.breaker_states(),
        dead_letters=len(bus.dead_letters),
        dead_letters_evicted=bus.dead_letters.evicted,
        scheduled_pending=bus._scheduler.pending,
        active_sessions=len(bus._book.open),
        dropped_by_type=t.dropped_by_type,
        observer_failures=bus._observers.failures,
        observed=bus._observed,
    )
