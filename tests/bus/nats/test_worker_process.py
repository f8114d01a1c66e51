"""`WorkerProcess`: an `llmgine worker` started from Python, ready on return, stopped or
killed by its process."""

from __future__ import annotations

import asyncio
import os
import re
import signal

import pytest

from llmgine.bus import MessageBus
from llmgine.bus.nats import NatsServer, NatsTransport, WorkerProcess
from llmgine.errors import WorkerError
from llmgine.observability import REDACTED
from tests.bus.conftest import ROOT, nats_transport
from tests.bus.nats.worker_app import Slow
from tests.deadline import DEADLINE

ENV = {"PYTHONPATH": str(ROOT)}
SECRET_KEY = "sk-proj-" + "Mn4bVc7xZl0kJh3gFd6sAp9oIu2yTr5e"


def start(
    transport: NatsTransport, spec: str = "tests.bus.nats.worker_app:setup", **options: object
) -> WorkerProcess:
    return WorkerProcess.start(
        spec,
        url=transport.url,
        stream=transport.stream,
        subject_prefix=transport.prefix,
        env=ENV,
        **options,  # type: ignore[arg-type]
    )


async def test_a_started_worker_serves_until_stopped(nats_server: NatsServer) -> None:
    transport = nats_transport(nats_server)
    async with MessageBus(transport=transport) as caller:
        worker = await asyncio.to_thread(start, transport, name="one", timeout=DEADLINE)
        assert worker.alive
        assert worker.name == "one"
        assert "running" in repr(worker)
        assert "serving commands [tests.bus.nats.worker_app.Slow]" in worker.log_tail()[-1]
        assert (await caller.execute(Slow(tag="a", seconds=0))).value == "done a"
        assert await asyncio.to_thread(worker.stop, DEADLINE) == 0
        assert worker.returncode == 0
        assert worker.log_tail()[-1] == "llmgine worker: stopped (1 command(s) answered)"
        assert "exited 0" in repr(worker)
        after = await caller.execute(Slow(tag="b", seconds=0))
        assert type(after.exception).__name__ == "NoHandlerError"


async def test_kill_ends_it_at_once_and_another_worker_takes_over(
    nats_server: NatsServer,
) -> None:
    transport = nats_transport(nats_server)
    async with MessageBus(transport=transport) as caller:
        first = await asyncio.to_thread(start, transport, timeout=DEADLINE)
        second = await asyncio.to_thread(start, transport, timeout=DEADLINE)
        try:
            assert first.name == f"worker-{first.pid}"
            assert await asyncio.to_thread(first.kill) == -signal.SIGKILL
            assert not first.alive
            for tag in "cd":  # only the second is left to answer
                assert (await caller.execute(Slow(tag=tag, seconds=0))).value == f"done {tag}"
        finally:
            assert await asyncio.to_thread(second.stop, DEADLINE) == 0
        assert "stopped (2 command(s) answered)" in second.log_tail()[-1]


def test_a_worker_that_exits_before_serving_is_an_error_with_its_log_redacted(
    nats_server: NatsServer,
) -> None:
    transport = nats_transport(nats_server)
    with pytest.raises(WorkerError, match="exited with code 2 before serving") as caught:
        start(transport, f"{SECRET_KEY}:setup", timeout=DEADLINE)
    message = str(caught.value)
    assert "cannot import" in message
    assert SECRET_KEY not in message
    assert REDACTED in message


def test_a_worker_not_ready_in_time_is_killed(nats_server: NatsServer) -> None:
    transport = nats_transport(nats_server)
    with pytest.raises(
        WorkerError, match="did not say it serves within 1 s, so it was killed"
    ) as caught:
        start(transport, "tests.bus.nats.worker_app:never_ready", timeout=1)
    pid = int(re.search(r"pid (\d+)", str(caught.value)).group(1))  # type: ignore[union-attr]
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # gone, and reaped


async def test_leaving_its_with_block_stops_it(nats_server: NatsServer) -> None:
    transport = nats_transport(nats_server)
    async with MessageBus(transport=transport):
        worker = await asyncio.to_thread(start, transport, timeout=DEADLINE)
        with worker:
            assert worker.alive
        assert worker.returncode == 0


async def test_a_worker_that_does_not_stop_in_time_is_killed(nats_server: NatsServer) -> None:
    transport = nats_transport(nats_server)
    async with MessageBus(transport=transport):
        worker = await asyncio.to_thread(
            start, transport, "tests.bus.nats.worker_app:deaf", timeout=DEADLINE
        )
        with pytest.raises(WorkerError, match=r"did not stop within 0.5 s of SIGTERM, so it"):
            await asyncio.to_thread(worker.stop, 0.5)
        assert worker.returncode == -signal.SIGKILL
