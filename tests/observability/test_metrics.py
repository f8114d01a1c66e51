"""Metrics in memory: the bus's counters and gauges, and the GenAI histograms."""

from __future__ import annotations

import pandas as pd

from llmgine import observability
from llmgine.bus import Command, Event, MessageBus
from llmgine.observability import llm_span, semconv
from llmgine.observability._metrics import PENDING_LIMIT


class Tick(Event):
    pass


class Fail(Command[None]):
    pass


def value(df: pd.DataFrame, name: str, **attrs: str) -> float:
    rows = df[df["name"] == name]
    for key, want in attrs.items():
        rows = rows[rows[f"attributes.{key}"] == want]
    assert len(rows) == 1, f"expected one {name} point with {attrs}, got {len(rows)}"
    return float(rows["value"].iloc[0])


async def test_bus_metrics_follow_the_bus_stats(bus: MessageBus) -> None:
    obs = observability.enable()
    obs.observe(bus, name="main")

    def broken(event: Tick) -> None:
        raise RuntimeError("handler bug")

    bus.on_event(Tick, lambda e: None)
    bus.on_event(Tick, broken)
    for _ in range(3):
        await bus.publish(Tick())
    await bus.drain()
    await bus.execute(Fail())
    df = obs.metrics_df()
    stats = bus.stats()
    assert value(df, semconv.METRIC_BUS_PUBLISHED, **{semconv.BUS_NAME: "main"}) == 3
    assert value(df, semconv.METRIC_BUS_DELIVERED) == stats.delivered
    assert value(df, semconv.METRIC_BUS_HANDLER_FAILURES) == 3
    assert value(df, semconv.METRIC_BUS_COMMANDS) == 1
    assert value(df, semconv.METRIC_BUS_COMMANDS_FAILED) == 1
    assert value(df, semconv.METRIC_BUS_DROPPED) == 0
    assert value(df, semconv.METRIC_BUS_QUEUE_DEPTH) == 0
    p99 = value(df, semconv.METRIC_BUS_HANDLER_LATENCY, **{semconv.QUANTILE: "p99"})
    assert p99 == stats.event_latency.p99_ms > 0


def test_genai_histograms_record_tokens_and_duration() -> None:
    obs = observability.enable()
    for tokens in (10, 30):
        with llm_span(provider="anthropic", model="claude-sonnet-4-5") as call:
            call.response(model="claude-sonnet-4-5-20250929", input_tokens=tokens, output_tokens=5)
    df = obs.metrics_df()
    usage = df[df["name"] == semconv.METRIC_TOKEN_USAGE]
    inputs = usage[usage[f"attributes.{semconv.TOKEN_TYPE}"] == "input"].iloc[0]
    assert inputs["count"] == 2
    assert inputs["value"] == 40
    assert inputs["min"] == 10
    assert inputs["max"] == 30
    assert inputs[f"attributes.{semconv.PROVIDER_NAME}"] == "anthropic"
    assert inputs[f"attributes.{semconv.RESPONSE_MODEL}"] == "claude-sonnet-4-5-20250929"
    duration = df[df["name"] == semconv.METRIC_OPERATION_DURATION].iloc[0]
    assert duration["unit"] == "s"
    assert duration["count"] == 2


def test_unknown_token_counts_are_not_recorded_as_zero() -> None:
    obs = observability.enable()
    with llm_span(provider="openai", model="m") as call:
        call.response(model="m")
    df = obs.metrics_df()
    assert df[df["name"] == semconv.METRIC_TOKEN_USAGE].empty


def test_llm_figures_wait_for_collection_but_never_pile_up() -> None:
    obs = observability.enable()
    for _ in range(5):
        with llm_span(provider="openai", model="m") as call:
            call.response(model="m", input_tokens=1, output_tokens=1)
    assert len(obs.metrics._pending) == 5  # off the call's path until collected
    usage = obs.metrics_df().query("name == @semconv.METRIC_TOKEN_USAGE")
    assert usage["count"].sum() == 10  # 5 calls, input and output each
    assert len(obs.metrics._pending) == 0
    for _ in range(PENDING_LIMIT - 1):
        obs.metrics.record_llm_call({"gen_ai.provider.name": "x"}, 0.1, 1, 1)
    assert len(obs.metrics._pending) == PENDING_LIMIT - 1
    obs.metrics.record_llm_call({"gen_ai.provider.name": "x"}, 0.1, 1, 1)
    assert len(obs.metrics._pending) == 0  # flushed in a batch at the limit
