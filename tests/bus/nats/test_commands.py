"""Commands across processes over NATS request/reply: one worker answers each command."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import nats
import nats.errors

from llmgine.bus import (
    BreakerPolicy,
    Command,
    CommandFailed,
    CommandPolicy,
    MessageBus,
    RetryPolicy,
)
from llmgine.bus.nats import NatsServer, NatsTransport
from llmgine.errors import (
    CircuitOpenError,
    CommandTimeoutError,
    NoHandlerError,
    RemoteCommandError,
)
from tests.bus.conftest import nats_transport, peer_transport
from tests.deadline import DEADLINE

ROOT = Path(__file__).resolve().parents[3]


class Double(Command[int]):
    n: int


class Explode(Command[str]):
    why: str


class Hang(Command[str]):
    tag: str


@asynccontextmanager
async def caller_and_worker(server: NatsServer) -> AsyncIterator[tuple[MessageBus, MessageBus]]:
    transport = nats_transport(server)
    async with (
        MessageBus(transport=transport) as caller,
        MessageBus(transport=peer_transport(transport)) as worker,
    ):
        yield caller, worker


async def test_a_command_with_no_local_handler_is_answered_by_another_bus(
    nats_server: NatsServer,
) -> None:
    async with caller_and_worker(nats_server) as (caller, worker):
        worker.on_command(Double, lambda c: c.n * 2)
        await worker.start()  # subscribes the new handler's type before anyone asks
        result = await caller.execute(Double(n=21))
        assert result.success, result.error
        assert result.value == 42
        assert isinstance(result.value, int)
        answered = worker.stats()  # counted where it ran, as a command of its own
        assert answered.commands_executed == answered.commands_succeeded == 1
        assert answered.command_latency.count == 1
        assert caller.stats().commands_succeeded == 1


async def test_a_local_handler_runs_locally(nats_server: NatsServer) -> None:
    async with caller_and_worker(nats_server) as (caller, worker):
        worker.on_command(Double, lambda c: -1)
        caller.on_command(Double, lambda c: c.n * 3)
        await worker.start()
        result = await caller.execute(Double(n=2))
        assert result.value == 6
        assert worker.stats().commands_executed == 0


async def test_a_remote_failure_keeps_its_type_and_message(nats_server: NatsServer) -> None:
    async with caller_and_worker(nats_server) as (caller, worker):

        def explode(c: Explode) -> str:
            raise ValueError(f"cannot: {c.why}")

        worker.on_command(Explode, explode)
        failed: list[CommandFailed] = []
        worker.on_event(CommandFailed, failed.append)
        await worker.start()
        result = await caller.execute(Explode(why="no disk"))
        await worker.drain()
        # The worker keeps its own account of the failure, as for a command of its own.
        assert worker.stats().commands_failed == 1
        assert worker.dead_letters.get(result.command_id).error.type == "builtins.ValueError"
        assert [f.command_id for f in failed] == [result.command_id]
        assert not result.success
        assert result.error is not None
        assert result.error.type == "builtins.ValueError"
        assert result.error.message == "cannot: no disk"
        assert "explode" in result.error.traceback
        assert isinstance(result.exception, RemoteCommandError)
        assert result.exception.remote_type == "builtins.ValueError"
        assert caller.dead_letters.get(result.command_id).error.type == "builtins.ValueError"


async def test_no_worker_is_no_handler_at_once(nats_server: NatsServer) -> None:
    async with MessageBus(transport=nats_transport(nats_server)) as caller:
        async with asyncio.timeout(DEADLINE):  # the server says so: never a hang
            result = await caller.execute(Double(n=1))
        assert isinstance(result.exception, NoHandlerError)
        assert isinstance(result.exception.__cause__, nats.errors.NoRespondersError)
        assert "llmgine worker" in str(result.exception)


async def test_a_removed_handler_stops_serving(nats_server: NatsServer) -> None:
    async with caller_and_worker(nats_server) as (caller, worker):
        subscription = worker.on_command(Double, lambda c: c.n)
        await worker.start()
        assert (await caller.execute(Double(n=5))).value == 5
        subscription.remove()
        await worker.start()  # lets the unsubscription reach the server
        result = await caller.execute(Double(n=5))
        assert isinstance(result.exception, NoHandlerError)


async def test_two_workers_in_a_queue_group_answer_each_command_once(
    nats_server: NatsServer,
) -> None:
    transport = nats_transport(nats_server)
    answered: Counter[int] = Counter()
    by_worker: Counter[str] = Counter()

    def handler(name: str) -> Callable[[Double], int]:
        def run(c: Double) -> int:
            answered[c.n] += 1
            by_worker[name] += 1
            return c.n * 2

        return run

    async with (
        MessageBus(transport=transport) as caller,
        MessageBus(transport=peer_transport(transport)) as one,
        MessageBus(transport=peer_transport(transport)) as two,
    ):
        one.on_command(Double, handler("one"))
        two.on_command(Double, handler("two"))
        await one.start()
        await two.start()
        results = await asyncio.gather(*(caller.execute(Double(n=i)) for i in range(200)))
    assert [r.value for r in results] == [i * 2 for i in range(200)]
    assert answered == Counter(range(200))  # each exactly once
    assert sum(by_worker.values()) == 200


async def test_a_worker_that_does_not_answer_in_time_is_a_timeout(
    nats_server: NatsServer,
) -> None:
    release = asyncio.Event()
    started = asyncio.Event()

    async def hang(c: Hang) -> str:
        started.set()
        await release.wait()
        return c.tag

    async with caller_and_worker(nats_server) as (caller, worker):
        worker.on_command(Hang, hang)
        await worker.start()
        result = await caller.execute(Hang(tag="x"), timeout=0.5)
        assert isinstance(result.exception, CommandTimeoutError)
        # It did reach the worker, which did not answer in time.
        await asyncio.wait_for(started.wait(), DEADLINE)
        release.set()


async def test_command_timeout_bounds_a_command_without_a_policy(nats_server: NatsServer) -> None:
    release = asyncio.Event()

    async def hang(c: Hang) -> str:
        await release.wait()
        return c.tag

    transport = nats_transport(nats_server, command_timeout=0.5)
    async with (
        MessageBus(transport=transport) as caller,
        MessageBus(transport=peer_transport(transport)) as worker,
    ):
        worker.on_command(Hang, hang)
        await worker.start()
        result = await caller.execute(Hang(tag="x"))
        assert isinstance(result.exception, CommandTimeoutError)
        assert "command_timeout" in str(result.exception)
        release.set()


WORKER = """
import asyncio, sys
from llmgine.bus import MessageBus
from llmgine.bus.nats import NatsTransport
from tests.bus.nats.test_commands import Double, Hang

async def main(url, stream, prefix):
    async def hang(c):
        print("handling", c.tag, flush=True)
        await asyncio.Event().wait()  # never answers: it is killed here

    transport = NatsTransport(url, stream=stream, subject_prefix=prefix)
    async with MessageBus(transport=transport) as bus:
        bus.on_command(Double, lambda c: c.n + 1000)
        bus.on_command(Hang, hang)
        await bus.start()
        print("ready", flush=True)
        await asyncio.Event().wait()

asyncio.run(main(*sys.argv[1:]))
"""


@asynccontextmanager
async def child_worker(transport: NatsTransport) -> AsyncIterator[asyncio.subprocess.Process]:
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        textwrap.dedent(WORKER),
        transport.url,
        transport.stream,
        transport.prefix,
        stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        assert child.stdout is not None
        line = await asyncio.wait_for(child.stdout.readline(), DEADLINE)
        assert line.strip() == b"ready"
        yield child
    finally:
        if child.returncode is None:
            child.kill()
            await child.wait()


async def test_a_worker_in_another_process_answers(nats_server: NatsServer) -> None:
    transport = nats_transport(nats_server)
    # The caller comes first: it creates the stream.
    async with MessageBus(transport=transport) as caller, child_worker(transport):
        result = await caller.execute(Double(n=1))
    assert result.value == 1001


async def test_a_worker_killed_mid_command_is_retried_on_another(
    nats_server: NatsServer,
) -> None:
    transport = nats_transport(nats_server)
    async with MessageBus(transport=transport) as caller, child_worker(transport) as child:
        # Attempts long enough for a busy machine; the first never answers (SIGKILL).
        caller.set_policy(Hang, CommandPolicy(timeout=5.0, retry=RetryPolicy(attempts=3)))
        running = asyncio.create_task(caller.execute(Hang(tag="once")))
        assert child.stdout is not None
        line = await asyncio.wait_for(child.stdout.readline(), DEADLINE)
        assert line.strip() == b"handling once"
        async with MessageBus(transport=peer_transport(transport)) as survivor:
            survivor.on_command(Hang, lambda c: f"survivor did {c.tag}")
            await survivor.start()
            child.send_signal(signal.SIGKILL)
            await child.wait()
            result = await asyncio.wait_for(running, DEADLINE)
    assert result.success, result.error
    assert result.value == "survivor did once"
    assert result.attempts == 2


async def test_the_callers_retry_and_breaker_wrap_remote_failures(
    nats_server: NatsServer,
) -> None:
    calls: list[str] = []

    def flaky(c: Explode) -> str:
        calls.append(c.why)
        if c.why == "always" or len(calls) == 1:
            raise ConnectionError(f"down: {c.why}")
        return f"ok {c.why}"

    async with caller_and_worker(nats_server) as (caller, worker):
        worker.on_command(Explode, flaky)
        await worker.start()
        caller.set_policy(
            Explode,
            CommandPolicy(
                retry=RetryPolicy(attempts=2, initial=0, jitter=0, retry_on=(RemoteCommandError,)),
                breaker=BreakerPolicy(failure_threshold=2, reset_timeout=3600),
            ),
        )
        retried = await caller.execute(Explode(why="once"))
        assert retried.value == "ok once"
        assert retried.attempts == 2
        calls.clear()
        failed = await caller.execute(Explode(why="always"))  # two more failures: open
        assert calls == ["always", "always"]
        assert failed.error is not None
        assert failed.error.type == "builtins.ConnectionError"
        breaker = caller.breaker(Explode)
        assert breaker is not None
        assert breaker.state == "open"
        fast = await caller.execute(Explode(why="always"))
        assert isinstance(fast.exception, CircuitOpenError)
        assert calls == ["always", "always"]  # failing fast: the worker was not asked


async def test_no_credential_travels_in_a_command_or_its_reply(nats_server: NatsServer) -> None:
    key = "sk-proj-" + "Q7x" * 16  # an OpenAI key's shape
    sniffer = await nats.connect(nats_server.url)
    # Every core message: the request on <prefix>.cmd.<type> and the reply to its inbox.
    everything = await sniffer.subscribe(">")
    await sniffer.flush(timeout=int(DEADLINE))
    try:
        async with caller_and_worker(nats_server) as (caller, worker):

            def leak(c: Explode) -> str:
                raise ValueError(f"the provider said: bad key {c.why}")

            worker.on_command(Explode, leak)
            await worker.start()
            result = await caller.execute(Explode(why=key))
        assert not result.success
        assert result.error is not None
        assert "bad key" in result.error.message  # the failure itself still arrives
        request = reply = b""
        while not (request and reply):
            msg = await everything.next_msg(timeout=DEADLINE)
            if ".cmd." in msg.subject:
                request = msg.data
            elif b"bad key" in msg.data:
                reply = msg.data
        assert key.encode() not in request
        assert key.encode() not in reply
    finally:
        await sniffer.close()
