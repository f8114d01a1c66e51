"""enable() is idempotent; disable() leaves nothing behind, global providers included."""

from __future__ import annotations

from pathlib import Path

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider

from llmgine import observability
from llmgine.bus import Event, MessageBus
from llmgine.errors import ObservabilityError


class Tick(Event):
    pass


async def test_enabling_twice_is_one_setup_observing_once(bus: MessageBus) -> None:
    first = observability.enable(bus)
    second = observability.enable(bus)
    assert first is second is observability.current()
    await bus.publish(Tick(), wait=True)
    assert len(first.events_df()) == 1  # observed once, not twice


async def test_new_settings_replace_the_setup_and_keep_the_buses(
    bus: MessageBus, tmp_path: Path
) -> None:
    first = observability.enable(bus)
    second = observability.enable(jsonl=tmp_path / "t.jsonl")
    assert second is not first
    assert first.closed
    assert second.buses == [bus]
    await bus.publish(Tick(), wait=True)
    assert len(second.events_df()) == 1
    assert len(first.events_df()) == 0  # the old one no longer hears the bus


async def test_disable_stops_observing_and_restores_the_global_provider(
    bus: MessageBus,
) -> None:
    before = trace.get_tracer_provider()
    obs = observability.enable(bus)
    assert trace.get_tracer_provider() is before  # llmgine never installs a global one
    observability.disable()
    assert observability.current() is None
    assert trace.get_tracer_provider() is before
    await bus.publish(Tick(), wait=True)
    assert obs.events_df().empty
    assert bus.stats().observer_failures == 0
    with pytest.raises(ObservabilityError, match="enable"):
        obs.observe(bus)
    observability.disable()  # a second disable does nothing


def test_a_tracer_provider_of_yours_gets_a_processor_that_disable_switches_off() -> None:
    provider = TracerProvider()
    obs = observability.enable(tracer_provider=provider)
    provider.get_tracer("mine").start_span("seen").end()
    assert [s.name for s in obs.buffer.finished()] == ["seen"]
    observability.disable()
    provider.get_tracer("mine").start_span("not seen").end()
    assert [s.name for s in obs.buffer.finished()] == ["seen"]
    provider.get_tracer("mine").start_span("still works").end()  # not shut down


async def test_open_sessions_are_ended_when_observability_is_disabled(bus: MessageBus) -> None:
    obs = observability.enable(bus)
    async with bus.session("long"):
        assert [s.name for s in obs.buffer.running()] == ["session long"]
        observability.disable()
    assert obs.buffer.running() == []
    [span] = obs.buffer.finished()
    assert span.attributes["llmgine.session.unfinished"] is True


def test_module_level_frames_need_observability_on() -> None:
    with pytest.raises(ObservabilityError, match=r"enable\(bus\)"):
        observability.spans_df()
    obs = observability.enable()
    assert observability.spans_df().equals(obs.spans_df())
    assert observability.events_df().equals(obs.events_df())
    assert list(observability.metrics_df().columns)[:3] == ["name", "unit", "type"]
