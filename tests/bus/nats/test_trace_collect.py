"""One trace across processes: a real `llmgine worker` exports its spans over OTLP to the
caller's `Observability.collect`, under the caller's span (the traceparent NATS carried)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from llmgine import observability
from llmgine.bus import MessageBus
from llmgine.bus.nats import NatsServer, NatsTransport, WorkerProcess
from tests.bus.conftest import nats_transport
from tests.bus.nats.worker_app import Slow
from tests.deadline import DEADLINE

ROOT = Path(__file__).resolve().parents[3]
APP = "tests.bus.nats.worker_app:setup"


@pytest.fixture(autouse=True)
def _observability_off(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)  # this process exports nothing
    monkeypatch.delenv("OTEL_SERVICE_NAME", raising=False)
    observability.disable()
    yield
    observability.disable()


def start_worker(
    transport: NatsTransport, endpoint: str, name: str | None, **env: str
) -> WorkerProcess:
    return WorkerProcess.start(
        APP,
        url=transport.url,
        name=name,
        durable="workers",
        stream=transport.stream,
        subject_prefix=transport.prefix,
        env={"PYTHONPATH": str(ROOT), "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint, **env},
        timeout=DEADLINE,
    )


async def test_a_workers_command_span_joins_the_callers_trace(
    nats_server: NatsServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from llmgine.notebook import TraceView

    monkeypatch.setenv("OTEL_SERVICE_NAME", "the-notebook")  # the worker's name wins
    transport = nats_transport(nats_server)
    async with MessageBus(transport=transport) as caller:  # creates the stream first
        obs = observability.enable(caller)
        endpoint = obs.collect()
        worker = await asyncio.to_thread(start_worker, transport, endpoint, "worker-a")
        try:
            assert any("exporting spans over OTLP" in line for line in worker.log_tail())
            result = await caller.execute(Slow(tag="t", seconds=0))
            assert result.value == "done t"
            await obs.wait_for_spans(
                name="command Slow",
                where=lambda r: r.attributes.get("service.name") == "worker-a",
                timeout=DEADLINE,
            )
        finally:
            code = await asyncio.to_thread(worker.stop, DEADLINE)
        assert code == 0, worker.log_tail()
    spans = obs.spans_df(name="command Slow")
    assert len(spans) == 2, spans
    mine = spans[spans["attributes.service.name"].isna()].iloc[0]
    theirs = spans[spans["attributes.service.name"] == "worker-a"].iloc[0]
    assert theirs["parent_id"] == mine["span_id"]
    assert theirs["trace_id"] == mine["trace_id"]
    assert pd.isna(mine["parent_id"])
    assert theirs["start_time"] >= mine["start_time"]
    assert theirs["end_time"] <= mine["end_time"]

    view = TraceView(obs=obs, span=mine["span_id"], interval=3600)
    try:
        bars = [
            (b.record.name, b.depth, b.record.attributes.get("service.name")) for b in view.bars
        ]
        assert bars == [("command Slow", 0, None), ("command Slow", 1, "worker-a")]
        assert view.bars[1].parent_id == view.bars[0].span_id
        assert "worker-a" in view.bars[1].hover()
    finally:
        view.close()


async def test_stopping_a_worker_flushes_the_spans_it_held(nats_server: NatsServer) -> None:
    transport = nats_transport(nats_server)
    async with MessageBus(transport=transport) as caller:
        obs = observability.enable(caller)
        # Batches that would wait ten minutes: only the flush at SIGTERM can send this one.
        endpoint = obs.collect()
        # Unnamed, and no OTEL_SERVICE_NAME: the worker's default name.
        worker = await asyncio.to_thread(
            lambda: start_worker(transport, endpoint, None, OTEL_BSP_SCHEDULE_DELAY="600000")
        )
        try:
            assert (await caller.execute(Slow(tag="u", seconds=0))).success
        finally:
            code = await asyncio.to_thread(worker.stop, DEADLINE)
        assert code == 0, worker.log_tail()
    # The worker exited after its last export was answered: the span is here already.
    workers = obs.spans_df(name="command Slow")
    assert list(workers["attributes.service.name"].dropna()) == ["llmgine-worker"]


async def test_without_an_endpoint_a_worker_exports_nothing(nats_server: NatsServer) -> None:
    transport = nats_transport(nats_server)
    async with MessageBus(transport=transport) as caller:
        observability.enable(caller)
        worker = await asyncio.to_thread(
            lambda: WorkerProcess.start(
                APP,
                url=transport.url,
                stream=transport.stream,
                subject_prefix=transport.prefix,
                env={"PYTHONPATH": str(ROOT)},
                timeout=DEADLINE,
            )
        )
        try:
            assert not any("exporting spans" in line for line in worker.log_tail())
            assert (await caller.execute(Slow(tag="v", seconds=0))).success
        finally:
            assert await asyncio.to_thread(worker.stop, DEADLINE) == 0
    # Nothing observable in this process could show a worker exporting elsewhere (the
    # OTLP default address): its own log says whether it set an exporter up.
    assert not any("exporting spans" in line for line in worker.log_tail())
