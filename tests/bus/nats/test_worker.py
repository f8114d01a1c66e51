"""`llmgine worker module:setup`: a real process that serves commands and stops cleanly."""

from __future__ import annotations

import asyncio
import signal

import pytest

from llmgine.__main__ import main
from llmgine.bus import MessageBus
from llmgine.bus.nats import NatsServer
from tests.bus.conftest import nats_transport, spawn_worker
from tests.bus.nats.worker_app import Slow
from tests.deadline import DEADLINE


async def test_sigterm_lets_the_running_command_finish_then_exits_0(
    nats_server: NatsServer,
) -> None:
    transport = nats_transport(nats_server)
    async with MessageBus(transport=transport) as caller:  # creates the stream first
        worker = await spawn_worker(
            "tests.bus.nats.worker_app:setup", nats_server, transport, durable="workers"
        )
        try:
            assert worker.stdout is not None
            ready = await asyncio.wait_for(worker.stdout.readline(), DEADLINE)
            assert b"serving commands [tests.bus.nats.worker_app.Slow]" in ready, ready
            assert b"'workers'" in ready
            running = asyncio.create_task(caller.execute(Slow(tag="a", seconds=0.5)))
            line = await asyncio.wait_for(worker.stdout.readline(), DEADLINE)
            assert line.strip() == b"handling a"
            worker.send_signal(signal.SIGTERM)
            result = await asyncio.wait_for(running, DEADLINE)
            assert result.success, result.error
            assert result.value == "done a"  # answered after SIGTERM, before exiting
            out, err = await asyncio.wait_for(worker.communicate(), DEADLINE)
            assert worker.returncode == 0, err.decode()
            assert b"SIGTERM: stopping; finishing 1 running command(s)" in out
            assert b"stopped (1 command(s) answered)" in out
            assert b"Traceback" not in err
            # Gone from the queue group: nobody serves Slow any more.
            after = await caller.execute(Slow(tag="b", seconds=0))
            assert type(after.exception).__name__ == "NoHandlerError"
        finally:
            if worker.returncode is None:
                worker.kill()
                await worker.wait()


@pytest.mark.parametrize(
    ("spec", "says"),
    [
        ("tests.bus.nats.worker_app", "is not module:function"),
        ("no_such_module_here:setup", "cannot import 'no_such_module_here'"),
        ("tests.bus.nats.worker_app:missing", "has no 'missing'; define `def missing(bus)"),
        ("tests.bus.nats.worker_app:NOT_A_FUNCTION", "is a int, not a function"),
    ],
)
def test_a_bad_setup_spec_is_a_clear_error(
    spec: str, says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["worker", spec, "--url", "nats://127.0.0.1:1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("llmgine worker: ")
    assert says in err


def test_no_nats_url_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("LLMGINE_BUS_URL", raising=False)
    assert main(["worker", "tests.bus.nats.worker_app:setup"]) == 2
    assert "set LLMGINE_BUS_URL" in capsys.readouterr().err
