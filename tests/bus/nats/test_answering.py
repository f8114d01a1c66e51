"""How a worker runs the commands it answers for others: handlers that wait run side by
side (up to ``command_concurrency``), plain functions at once, and either way the worker
knows how many it is running."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from llmgine.bus import Command, CommandPolicy, MessageBus, RetryPolicy
from llmgine.bus.nats import NatsServer, NatsTransport
from tests.bus.conftest import nats_transport, peer_transport
from tests.deadline import DEADLINE

WIDTH = 5


class Wait(Command[int]):
    n: int


class Plain(Command[int]):
    n: int


Started = Callable[[], None]


def waiting_handlers() -> dict[str, Callable[[asyncio.Event, Started], Callable[[Wait], Any]]]:
    """A coroutine function, and a plain function that returns an awaitable; each calls
    ``started()`` as it begins and answers once ``release`` is set."""

    def coroutine(release: asyncio.Event, started: Started) -> Callable[[Wait], Any]:
        async def handle(command: Wait) -> int:
            started()
            await release.wait()
            return command.n

        return handle

    def plain_around(release: asyncio.Event, started: Started) -> Callable[[Wait], Any]:
        async def later(n: int) -> int:
            await release.wait()
            return n

        def handle(command: Wait) -> Awaitable[int]:
            started()
            return later(command.n)

        return handle

    return {"coroutine": coroutine, "plain function around a coroutine": plain_around}


@pytest.mark.parametrize("kind", list(waiting_handlers()))
async def test_handlers_that_wait_run_side_by_side(nats_server: NatsServer, kind: str) -> None:
    transport = nats_transport(nats_server)
    worker_transport = peer_transport(transport, command_concurrency=WIDTH)
    async with (
        MessageBus(transport=transport) as caller,
        MessageBus(transport=worker_transport) as worker,
    ):
        release, all_in = asyncio.Event(), asyncio.Event()

        def started() -> None:
            if worker_transport.commands.running == WIDTH:
                all_in.set()

        worker.on_command(Wait, waiting_handlers()[kind](release, started))
        await worker.start()
        for round_ in range(2):  # the second round as the first: nothing learned wrongly
            all_in.clear()
            release.clear()
            calls = [asyncio.create_task(caller.execute(Wait(n=i))) for i in range(WIDTH)]
            # Every command is in a handler at once: none waits for another to finish.
            await asyncio.wait_for(all_in.wait(), DEADLINE)
            release.set()
            results = await asyncio.gather(*calls)
            assert [r.value for r in results] == list(range(WIDTH)), round_


async def test_plain_functions_are_answered_and_counted(nats_server: NatsServer) -> None:
    transport = nats_transport(nats_server)
    worker_transport = peer_transport(transport)
    async with (
        MessageBus(transport=transport) as caller,
        MessageBus(transport=worker_transport) as worker,
    ):
        seen_running: list[int] = []

        def plain(command: Plain) -> int:
            seen_running.append(worker_transport.commands.running)
            return command.n * 10

        worker.on_command(Plain, plain)
        await worker.start()
        first = await caller.execute(Plain(n=1))  # its first: how it answers is learned
        rest = await asyncio.gather(*(caller.execute(Plain(n=i)) for i in range(2, 40)))
        assert [r.value for r in (first, *rest)] == [i * 10 for i in range(1, 40)]
        assert seen_running == [1] * 39  # each counted while it ran, none left over
        assert worker_transport.commands.running == 0
        assert worker.stats().commands_succeeded == 39


async def test_only_a_plain_function_without_policy_or_middleware_runs_at_once() -> None:
    transport = NatsTransport("nats://127.0.0.1:1", stream="S", subject_prefix="p")
    bus = MessageBus(transport=transport)  # never connected: only the rules are asked
    at_once = transport.commands._at_once  # what the router asks before answering at once
    bus.on_command(Plain, lambda c: c.n)
    assert not at_once(Plain)  # not yet seen to return a plain value
    assert (await bus.execute(Plain(n=1))).value == 1
    assert at_once(Plain)
    bus.set_policy(Plain, CommandPolicy(retry=RetryPolicy(attempts=2)))
    assert not at_once(Plain)  # a retry would sleep in the subscription's callback
    bus.set_policy(Plain, None)

    async def passing(command: Command[Any], nxt: Callable[[Command[Any]], Awaitable[Any]]) -> Any:
        return await nxt(command)

    middleware = bus.add_command_middleware(passing)
    assert not at_once(Plain)  # middleware may wait
    middleware.remove()
    assert at_once(Plain)

    async def coroutine(command: Wait) -> int:
        return command.n

    bus.on_command(Wait, coroutine)
    await bus.execute(Wait(n=1))
    assert not at_once(Wait)
    assert not at_once(Command)  # no handler at all
