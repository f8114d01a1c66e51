"""Request/reply through one reply subscription a connection (`Requests`): the replies
reach their own callers, and every way a request ends leaves nothing waiting."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import nats
import nats.errors
import pytest
from nats.aio.client import Client
from nats.aio.msg import Msg

from llmgine.bus import MessageBus
from llmgine.bus.nats import NatsServer
from llmgine.bus.nats._requests import Requests
from llmgine.errors import TransportError
from tests.bus.conftest import nats_transport, peer_transport
from tests.bus.nats.test_commands import Hang
from tests.deadline import DEADLINE


@pytest.fixture
async def nc(nats_server: NatsServer) -> AsyncIterator[Client]:
    client = await nats.connect(nats_server.url)
    yield client
    await client.close()


async def echo_upper(nc: Client, subject: str) -> None:
    async def answer(msg: Msg) -> None:
        await msg.respond(msg.data.upper() + (msg.headers or {}).get("x-tag", "").encode())

    await nc.subscribe(subject, cb=answer)
    await nc.flush()


async def test_concurrent_requests_each_get_their_own_reply(nc: Client) -> None:
    await echo_upper(nc, "req.upper")
    requests = await Requests.open(nc)
    words = [f"word{i}" for i in range(200)]
    replies = await asyncio.gather(
        *(
            requests.request("req.upper", w.encode(), timeout=DEADLINE, headers={"x-tag": str(i)})
            for i, w in enumerate(words)
        )
    )
    assert [r.data for r in replies] == [f"WORD{i}{i}".encode() for i in range(200)]
    assert requests.waiting == 0


async def test_nobody_listening_is_no_responders_at_once(nc: Client) -> None:
    requests = await Requests.open(nc)
    with pytest.raises(nats.errors.NoRespondersError):
        # The server answers "no responders" at once: the deadline is never reached.
        await requests.request("req.nobody", b"?", timeout=DEADLINE)
    assert requests.waiting == 0


async def test_no_reply_in_time_is_a_timeout_and_a_late_reply_is_ignored(nc: Client) -> None:
    held: list[Msg] = []
    arrived = asyncio.Event()

    async def hold(msg: Msg) -> None:  # answers only when told to
        held.append(msg)
        arrived.set()

    await nc.subscribe("req.slow", cb=hold)
    requests = await Requests.open(nc)
    with pytest.raises(nats.errors.TimeoutError):
        await requests.request("req.slow", b"late", timeout=0.2)
    assert requests.waiting == 0
    await asyncio.wait_for(arrived.wait(), DEADLINE)
    await held[0].respond(b"too late")  # reaches nobody, and breaks nothing
    await echo_upper(nc, "req.after")
    reply = await requests.request("req.after", b"still works", timeout=DEADLINE)
    assert reply.data == b"STILL WORKS"


async def received(nc: Client, subject: str, count: int) -> asyncio.Event:
    """Set once ``count`` requests on ``subject`` arrived (and are never answered)."""
    got, arrived = [], asyncio.Event()

    async def keep(msg: Msg) -> None:
        got.append(msg)
        if len(got) == count:
            arrived.set()

    await nc.subscribe(subject, cb=keep)
    return arrived


async def test_a_cancelled_caller_leaves_nothing_waiting(nc: Client) -> None:
    arrived = await received(nc, "req.never", 1)
    requests = await Requests.open(nc)
    caller = asyncio.create_task(requests.request("req.never", b"x", timeout=DEADLINE))
    await asyncio.wait_for(arrived.wait(), DEADLINE)
    assert requests.waiting == 1
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
    assert requests.waiting == 0


async def test_closing_fails_the_requests_waiting_at_once(nc: Client) -> None:
    arrived = await received(nc, "req.never", 3)
    requests = await Requests.open(nc)
    callers = [
        asyncio.create_task(requests.request("req.never", b"x", timeout=DEADLINE)) for _ in range(3)
    ]
    await asyncio.wait_for(arrived.wait(), DEADLINE)
    assert requests.waiting == 3
    await requests.close()
    for caller in callers:
        with pytest.raises(nats.errors.ConnectionClosedError):
            await caller  # well before DEADLINE: close() failed it
    with pytest.raises(nats.errors.ConnectionClosedError):
        await requests.request("req.never", b"after", timeout=DEADLINE)
    assert requests.waiting == 0


async def test_stopping_a_bus_fails_the_command_it_waits_for_at_once(
    nats_server: NatsServer,
) -> None:
    transport = nats_transport(nats_server)
    async with MessageBus(transport=peer_transport(transport)) as worker:
        started, release = asyncio.Event(), asyncio.Event()

        async def hang(command: Hang) -> str:
            started.set()
            await release.wait()  # answers only after the caller stopped
            return command.tag

        worker.on_command(Hang, hang)
        await worker.start()
        caller = MessageBus(transport=transport)
        await caller.start()
        running = asyncio.create_task(caller.execute(Hang(tag="t")))
        await asyncio.wait_for(started.wait(), DEADLINE)
        await caller.stop()
        result = await asyncio.wait_for(running, DEADLINE)  # not at its command_timeout
        release.set()  # the worker's stop waits for the handlers it runs
    assert not result.success
    assert isinstance(result.exception, TransportError)
    assert "closed before a worker answered Hang" in str(result.exception)
