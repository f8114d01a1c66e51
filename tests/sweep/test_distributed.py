"""A sweep over NATS: worker processes make its live calls; the notebook keeps its store,
limits, progress, scores and rows, and its spans are the parents of the workers'."""

from __future__ import annotations

import asyncio
import re
import signal
from collections.abc import Awaitable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from llmgine import observability
from llmgine.bus import MessageBus
from llmgine.bus.nats import NatsServer, NatsTransport
from llmgine.errors import NoWorkerError, RateLimitedError
from llmgine.llm import (
    ChatMessage,
    Generate,
    LLMCallCompleted,
    LLMCallStarted,
    LLMRequest,
    LLMStreamDelta,
    Model,
    RemoteModel,
    WorkerService,
    get_model,
    worker,
)
from llmgine.llm._worker import EVENTS
from llmgine.sweep import Sweep, contains
from tests.bus.conftest import nats_server, nats_transport, peer_transport, spawn_worker
from tests.conftest import FakeTime
from tests.deadline import DEADLINE

__all__ = ["nats_server"]  # the session's server, from tests/bus/conftest.py

ROOT = Path(__file__).resolve().parents[2]
DATA = [f"Name a colour, question {i}" for i in range(6)]
MODELS = ["demo:alpha", "demo:beta"]
COMPARED = [
    "prompt_id",
    "prompt",
    "model",
    "params",
    "repeat",
    "text",
    "finish_reason",
    "input_tokens",
    "output_tokens",
    "error_type",
    "cache_hit",
    "score.contains",
]


def sweep(store: Path, **options: Any) -> Sweep:
    return Sweep(
        DATA, MODELS, repeats=2, scorers=[contains("Offline demo")], store=store, **options
    )


class Bar:
    """A progress bar that counts what the sweep tells it."""

    def __init__(self) -> None:
        self.updates = 0
        self.lines: list[str] = []

    def update(self, n: int) -> None:
        self.updates += n

    def write(self, line: str) -> None:
        self.lines.append(line)

    def set_postfix(self, **values: Any) -> None:
        pass

    def close(self) -> None:
        pass


@pytest.fixture
def bars(monkeypatch: pytest.MonkeyPatch) -> list[Bar]:
    made: list[Bar] = []

    def bar(total: int, show: bool) -> Bar | None:
        if not show:
            return None
        made.append(Bar())
        return made[-1]

    monkeypatch.setattr("llmgine.sweep._run._progress_bar", bar)
    return made


def start_worker(
    server: NatsServer, transport: NatsTransport, spans: Path
) -> Awaitable[asyncio.subprocess.Process]:
    return spawn_worker(
        "tests.sweep.traced_worker:setup",
        server,
        transport,
        durable="sweepers",
        env={"LLMGINE_TEST_SPANS": str(spans)},
    )


async def serving(worker: asyncio.subprocess.Process) -> None:
    assert worker.stdout is not None
    ready = await asyncio.wait_for(worker.stdout.readline(), DEADLINE)
    assert b"serving commands [llmgine.llm.Generate]" in ready, ready


async def stop_worker(worker: asyncio.subprocess.Process) -> int:
    """Stop ``worker`` by its process; how many commands it answered."""
    if worker.returncode is None:
        worker.send_signal(signal.SIGTERM)
    try:
        out, err = await asyncio.wait_for(worker.communicate(), DEADLINE)
    finally:
        if worker.returncode is None:
            worker.kill()
            await worker.wait()
    assert worker.returncode == 0, err.decode()
    said = re.search(rb"stopped \((\d+) command\(s\) answered\)", out)
    assert said is not None, out.decode()
    return int(said.group(1))


async def test_two_workers_make_the_live_calls_and_the_notebook_keeps_the_rest(
    nats_server: NatsServer, tmp_path: Path, bars: list[Bar]
) -> None:
    in_process = await sweep(
        tmp_path / "local.sqlite3", progress=False, model_options={"latency": 0}
    ).run()
    transport = nats_transport(nats_server)
    spans = [tmp_path / "w0.json", tmp_path / "w1.json"]
    rows: list[dict[str, Any]] = []
    try:
        async with MessageBus(transport=transport) as bus:  # creates the stream first
            assert bus.distributed
            obs = observability.enable(bus)
            workers = [await start_worker(nats_server, transport, s) for s in spans]
            try:
                await asyncio.gather(*(serving(w) for w in workers))  # started side by side
                store = tmp_path / "notebook.sqlite3"
                result = await sweep(store, bus=bus).run(on_row=rows.append)
                sent = transport.commands.requests
                again = await sweep(store, bus=bus, progress=False).run()
                resent = transport.commands.requests - sent
            finally:
                answered = await asyncio.gather(*(stop_worker(w) for w in workers))
        for path in spans:
            obs.load(path)
        everything = obs.spans_df()
    finally:
        observability.disable()

    # The rows are those of one process: texts, scores, the lot; all live the first time.
    df = result.df
    assert len(df) == len(in_process.df) == 24
    pd.testing.assert_frame_equal(df[COMPARED], in_process.df[COMPARED])
    assert not df["cache_hit"].any()
    assert df["ttft_ms"].notna().all()  # measured by the workers, streaming
    # Spread over both workers, each live call once.
    assert sum(answered) == 24
    assert min(answered) > 0, answered
    # The re-run is answered from the notebook's store: no command left the notebook.
    assert resent == 0
    assert again.df["cache_hit"].all()
    assert list(again.df["text"]) == list(df["text"])
    # Progress and on_row saw every row.
    assert len(rows) == 24
    assert sorted((r["prompt_id"], r["model"], r["repeat"]) for r in rows) == sorted(
        zip(df["prompt_id"], df["model"], df["repeat"], strict=True)
    )
    assert bars[0].updates == 24
    assert any("go to worker processes" in line for line in bars[0].lines)
    # Traces: each live row's span is the notebook's command span whose child is the
    # worker's GenAI span: one GenAI span per call, in the row's trace.
    kind = everything["attributes.llmgine.span.kind"]
    llm = everything[kind == "llm"]
    by_id = everything.set_index("span_id")
    for span_id, trace_id in zip(df["span_id"], df["trace_id"], strict=True):
        assert by_id.loc[span_id, "name"] == "command Generate"
        assert by_id.loc[span_id, "attributes.llmgine.span.kind"] == "command"
        assert by_id.loc[span_id, "session_id"] == result.session_id
        under = llm[llm["parent_id"] == span_id]
        assert len(under) == 1, under
        assert under["trace_id"].iloc[0] == trace_id
    live_calls = llm[llm["parent_id"].isin(set(df["span_id"]))]
    replays = llm[llm["span_id"].isin(set(again.df["span_id"]))]
    assert len(live_calls) == 24
    assert replays["attributes.llmgine.cache.hit"].all()
    assert len(llm) == len(live_calls) + len(replays) == 48  # nothing else is a GenAI span


async def test_with_no_worker_the_sweep_stops_and_says_what_to_start(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    rows: list[dict[str, Any]] = []
    async with MessageBus(transport=nats_transport(nats_server)) as bus:
        with pytest.raises(NoWorkerError) as raised:
            await sweep(tmp_path / "c.sqlite3", bus=bus, progress=False).run(on_row=rows.append)
    message = str(raised.value)
    assert "no worker serves Generate" in message
    assert "llmgine worker llmgine.llm:worker" in message
    assert "LLMGINE_BUS_URL" in message
    assert rows == []  # no row was made an error row


async def test_a_worker_bus_in_this_process_serves_too_and_errors_keep_their_fields(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    """A 429 in the worker comes back as a `RateLimitedError` with its ``retry_after``
    (the sweep waits that long and retries), an exhausted quota is not retried, and a
    `Model` object is called in the notebook."""
    slow_down = RateLimitedError(
        "429: slow down", provider="test", model="w", status_code=429, retry_after=0.5
    )
    quota = RateLimitedError("429: insufficient_quota", provider="test", model="w")
    quota.retryable = False
    script = [slow_down, "worker answer a", quota]
    local = get_model("test:local", responses=["notebook answer a", "notebook answer b"])
    transport = nats_transport(nats_server)
    worker_transport = peer_transport(transport)
    time = FakeTime()
    async with MessageBus(transport=transport) as bus, MessageBus(transport=worker_transport) as w:
        WorkerService(w, responses=script).install()
        await worker_transport.commands.ready()
        result = await Sweep(
            ["a", "b"],
            ["test:w", local],
            store=tmp_path / "c.sqlite3",
            bus=bus,
            progress=False,
            concurrency=1,
            sleep=time.sleep,
            clock=time.clock,
        ).run()
    df = result.df.set_index(["prompt_id", "model"])
    assert df.loc[(0, "test:w"), "text"] == "worker answer a"
    assert 0.5 in time.sleeps  # the worker's retry_after, kept across the wire
    assert df.loc[(1, "test:w"), "error_type"] == "RateLimitedError"
    assert "insufficient_quota" in df.loc[(1, "test:w"), "error"]
    assert "llmgine.error.fields" not in df.loc[(1, "test:w"), "error"]
    assert df.loc[(0, "test:local"), "text"] == "notebook answer a"
    assert df.loc[(1, "test:local"), "text"] == "notebook answer b"
    assert len(local.adapter.requests) == 2  # type: ignore[attr-defined]


@pytest.mark.parametrize("caller_publishes", [True, False])
async def test_a_worker_publishes_no_events_for_a_caller_that_does(caller_publishes: bool) -> None:
    delivered: list[type] = []
    async with MessageBus() as bus:
        WorkerService(bus, latency=0).install()
        for kind in (LLMCallStarted, LLMStreamDelta, LLMCallCompleted):
            bus.on_event(kind, lambda e: delivered.append(type(e)))
        request = LLMRequest(messages=[ChatMessage.user("hello")])
        metadata = {EVENTS: "caller"} if caller_publishes else {}
        command = Generate(request=request, model="demo:x", stream=True, metadata=metadata)
        response = (await bus.execute(command)).unwrap()
        await bus.drain()
    assert response.time_to_first_token_ms is not None  # streamed from the provider
    if caller_publishes:
        assert delivered == []
    else:
        assert delivered[0] is LLMCallStarted
        assert LLMStreamDelta in delivered
        assert delivered[-1] is LLMCallCompleted


async def test_the_worker_setup_makes_a_model_once_per_spec_and_closes_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    closed: list[str] = []
    aclose = Model.aclose

    async def spy(model: Model) -> None:
        closed.append(model.spec)
        await aclose(model)

    monkeypatch.setattr(Model, "aclose", spy)
    request = LLMRequest(messages=[ChatMessage.user("hello")])
    async with MessageBus() as bus:
        close = worker(bus)
        for spec in ("demo:x", "demo:x", "demo:y"):
            result = await bus.execute(Generate(request=request, model=spec))
            assert result.success, result.error
        assert closed == []
    await close()
    assert sorted(closed) == ["demo:x", "demo:y"]


async def test_a_remote_model_on_an_in_process_bus_says_to_use_nats() -> None:
    async with MessageBus() as bus:
        assert not bus.distributed
        with pytest.raises(NoWorkerError) as raised:
            await Model(RemoteModel(bus, "demo:x")).generate("hi")
    assert "its transport is not NATS" in str(raised.value)
    assert "LLMGINE_BUS_URL" in str(raised.value)


async def test_a_call_whose_worker_never_answers_is_asked_again(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    """A worker that dies or hangs mid-call never replies: the command times out
    (``command_timeout``) and the sweep asks again, so the row is answered, not lost."""
    transport = nats_transport(nats_server)
    transport.commands.command_timeout = 1.0  # the wait for a reply that never comes
    worker_transport = peer_transport(transport)
    release = asyncio.Event()
    asked: list[str] = []
    time = FakeTime()
    async with MessageBus(transport=transport) as bus, MessageBus(transport=worker_transport) as w:
        service = WorkerService(w, latency=0)

        async def hang_once(command: Generate) -> Any:
            asked.append(command.id)
            if len(asked) == 1:
                # Its request went out with the 1 s wait; the retry gets the suite's
                # deadline, so a busy machine cannot make it time out too.
                transport.commands.command_timeout = DEADLINE
                await release.wait()  # the first call never answers in time
            return await service.handle(command)

        w.on_command(Generate, hang_once)
        await worker_transport.commands.ready()
        try:
            result = await Sweep(
                ["a"],
                ["demo:w"],
                store=tmp_path / "c.sqlite3",
                bus=bus,
                progress=False,
                sleep=time.sleep,
                clock=time.clock,
            ).run()
        finally:
            release.set()  # the hung handler returns, so the worker bus can stop
    assert len(asked) == 2  # asked, timed out, asked again
    row = result.df.iloc[0]
    assert pd.isna(row["error_type"])
    assert isinstance(row["text"], str)
    assert row["text"]
    assert time.sleeps == [1.0]  # the sweep's backoff before its retry
