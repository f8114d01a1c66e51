"""Metrics through the OpenTelemetry metrics SDK, readable in memory.

Bus metrics are observable instruments read from ``bus.stats()`` when metrics are
collected, so they cost the bus nothing per event. GenAI metrics are histograms with the
spec's advisory bucket boundaries; each LLM call only appends its figures to a deque, and
they are recorded into the histograms when metrics are collected (the SDK's per-record
attribute handling took about 80 µs a call; batching it keeps it off the call's path).
"""

from __future__ import annotations

import weakref
from collections import deque
from collections.abc import Iterable, Sequence
from typing import Any

import pandas as pd
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    Gauge,
    Histogram,
    InMemoryMetricReader,
    MetricReader,
    Sum,
)
from opentelemetry.sdk.resources import Resource

from llmgine import _semconv as sc
from llmgine.bus import BusStats, MessageBus

__all__ = ["PENDING_LIMIT", "Metrics"]

# LLM calls waiting to be recorded, at most (about 500 bytes each): a periodic reader, such
# as the OTLP exporter's, records them from its own thread long before this many wait.
PENDING_LIMIT = 10_000


class Metrics:
    """The meter provider of one `Observability`, its instruments and its in-memory reader."""

    def __init__(self, resource: Resource, extra_readers: Sequence[MetricReader] = ()) -> None:
        self.reader = InMemoryMetricReader()
        self.provider = MeterProvider(
            metric_readers=[self.reader, *extra_readers], resource=resource
        )
        meter = self.provider.get_meter("llmgine")
        self._buses: weakref.WeakKeyDictionary[MessageBus, str] = weakref.WeakKeyDictionary()
        self._tokens = meter.create_histogram(
            sc.METRIC_TOKEN_USAGE,
            unit="{token}",
            description="Number of input and output tokens used",
            explicit_bucket_boundaries_advisory=list(sc.TOKEN_USAGE_BUCKETS),
        )
        self._duration = meter.create_histogram(
            sc.METRIC_OPERATION_DURATION,
            unit="s",
            description="GenAI operation duration",
            explicit_bucket_boundaries_advisory=list(sc.DURATION_BUCKETS),
        )
        counters = {
            sc.METRIC_BUS_PUBLISHED: ("published", "Events published"),
            sc.METRIC_BUS_DELIVERED: ("delivered", "Event handler calls that ran"),
            sc.METRIC_BUS_HANDLER_FAILURES: ("handler_failures", "Event handlers that raised"),
            sc.METRIC_BUS_DROPPED: ("dropped", "Events dropped by backpressure"),
            sc.METRIC_BUS_REJECTED: ("rejected", "Events rejected by backpressure"),
            sc.METRIC_BUS_COMMANDS: ("commands_executed", "Commands executed"),
            sc.METRIC_BUS_COMMANDS_FAILED: ("commands_failed", "Commands that failed"),
        }
        for name, (field, description) in counters.items():
            meter.create_observable_counter(
                name, callbacks=[self._counter(field)], unit="{event}", description=description
            )
        meter.create_observable_gauge(
            sc.METRIC_BUS_QUEUE_DEPTH,
            callbacks=[self._counter("queue_depth")],
            unit="{event}",
            description="Events queued for delivery",
        )
        # Runs first at every collection, by any reader: records the calls waiting.
        self._pending: deque[tuple[dict[str, Any], float, int | None, int | None]] = deque()
        meter.create_observable_gauge(
            "llmgine.metrics.pending_llm_calls",
            callbacks=[self._flush_callback],
            unit="{call}",
            description="LLM calls recorded into the GenAI histograms at this collection",
        )
        meter.create_observable_gauge(
            sc.METRIC_BUS_HANDLER_LATENCY,
            callbacks=[self._latency],
            unit="ms",
            description="Event delivery latency percentiles (all handlers of one event)",
        )

    def observe_bus(self, bus: MessageBus, name: str) -> None:
        self._buses[bus] = name

    def forget_bus(self, bus: MessageBus) -> None:
        self._buses.pop(bus, None)

    def _snapshots(self) -> list[tuple[str, BusStats]]:
        return [(name, bus.stats()) for bus, name in list(self._buses.items())]

    def _counter(self, field: str) -> Any:
        def observe(options: CallbackOptions) -> Iterable[Observation]:
            return [
                Observation(getattr(stats, field), {sc.BUS_NAME: name})
                for name, stats in self._snapshots()
            ]

        return observe

    def _latency(self, options: CallbackOptions) -> Iterable[Observation]:
        out = []
        for name, stats in self._snapshots():
            latency = stats.event_latency
            for quantile, value in (("p50", latency.p50_ms), ("p99", latency.p99_ms)):
                out.append(Observation(value, {sc.BUS_NAME: name, sc.QUANTILE: quantile}))
        return out

    def record_llm_call(
        self,
        attrs: dict[str, Any],
        seconds: float,
        input_tokens: int | None,
        output_tokens: int | None,
    ) -> None:
        """Note one LLM call; it reaches the histograms at the next collection (or now,
        in a batch, once `PENDING_LIMIT` are waiting, so memory stays bounded without a
        reader)."""
        self._pending.append((attrs, seconds, input_tokens, output_tokens))
        if len(self._pending) >= PENDING_LIMIT:
            self.flush()

    def _flush_callback(self, options: CallbackOptions) -> Iterable[Observation]:
        return [Observation(self.flush())]

    def flush(self) -> int:
        """Record the calls waiting into the histograms; returns how many."""
        count = 0
        pending = self._pending
        while pending:
            try:
                attrs, seconds, input_tokens, output_tokens = pending.popleft()
            except IndexError:  # another reader's collection took the last one
                break
            self._record(attrs, seconds, input_tokens, output_tokens)
            count += 1
        return count

    def _record(
        self,
        attrs: dict[str, Any],
        seconds: float,
        input_tokens: int | None,
        output_tokens: int | None,
    ) -> None:
        self._duration.record(seconds, attrs)
        if sc.ERROR_TYPE in attrs:
            attrs = {k: v for k, v in attrs.items() if k != sc.ERROR_TYPE}
        if input_tokens is not None:
            self._tokens.record(input_tokens, {**attrs, sc.TOKEN_TYPE: "input"})
        if output_tokens is not None:
            self._tokens.record(output_tokens, {**attrs, sc.TOKEN_TYPE: "output"})

    def frame(self) -> pd.DataFrame:
        """Every metric point now: one row per (metric, attribute set)."""
        rows: list[dict[str, Any]] = []
        data = self.reader.get_metrics_data()
        for resource_metrics in data.resource_metrics if data else ():
            for scope in resource_metrics.scope_metrics:
                for metric in scope.metrics:
                    for point in metric.data.data_points:
                        row: dict[str, Any] = {
                            "name": metric.name,
                            "unit": metric.unit,
                            "type": type(metric.data).__name__.lower(),
                        }
                        if isinstance(metric.data, Histogram):
                            row.update(
                                value=point.sum,  # type: ignore[union-attr]
                                count=point.count,  # type: ignore[union-attr]
                                min=point.min,  # type: ignore[union-attr]
                                max=point.max,  # type: ignore[union-attr]
                            )
                        elif isinstance(metric.data, Sum | Gauge):
                            row["value"] = point.value  # type: ignore[union-attr]
                        for key, value in (point.attributes or {}).items():
                            row[f"attributes.{key}"] = value
                        rows.append(row)
        columns = ["name", "unit", "type", "value", "count", "min", "max"]
        frame = pd.DataFrame(rows)
        for column in columns:
            if column not in frame:
                frame[column] = pd.Series(dtype="object")
        rest = sorted(c for c in frame.columns if c not in columns)
        return frame[columns + rest]

    def shutdown(self) -> None:
        self.provider.shutdown()
