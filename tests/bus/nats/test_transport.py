"""NatsTransport's own guarantees, on real servers started from the wheel."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from llmgine.bus import Event, MessageBus, message_type_name, to_json
from llmgine.bus.nats import NatsServer, NatsTransport, nats_server_executable
from llmgine.errors import TransportError
from tests.bus.conftest import nats_transport, peer_transport
from tests.deadline import DEADLINE

ROOT = Path(__file__).resolve().parents[3]


class Ping(Event):
    n: int = 0


async def raw_publish(transport: NatsTransport, subject: str, data: bytes, msg_id: str) -> None:
    import nats

    nc = await nats.connect(transport.url)
    try:
        await nc.jetstream().publish(
            f"{transport.prefix}.event.{subject}", data, headers={"Nats-Msg-Id": msg_id}
        )
    finally:
        await nc.close()


def test_the_server_comes_from_the_wheel_and_stops_by_its_process() -> None:
    executable = nats_server_executable()
    assert Path(executable).is_relative_to(Path(sys.prefix).resolve()), executable
    server = NatsServer.start(timeout=DEADLINE)
    store = server.store_dir
    assert server.running, server.log_tail()
    assert server.url.startswith("nats://127.0.0.1:")
    assert store.is_dir()
    server.stop()
    assert server.process is not None
    assert server.process.returncode is not None
    assert not store.exists()


async def test_two_buses_both_receive_an_event(nats_server: NatsServer) -> None:
    first = nats_transport(nats_server)
    second = peer_transport(first)
    seen: list[tuple[str, int]] = []
    async with MessageBus(transport=first) as a, MessageBus(transport=second) as b:
        a.on_event(Ping, lambda e: seen.append(("a", e.n)))
        b.on_event(Ping, lambda e: seen.append(("b", e.n)))
        await a.publish(Ping(n=1))
        await b.publish(Ping(n=2))
        await a.drain()
        await b.drain()
    assert sorted(seen) == [("a", 1), ("a", 2), ("b", 1), ("b", 2)]


async def test_a_failing_handler_is_redelivered_then_dead_lettered(
    nats_server: NatsServer,
) -> None:
    transport = nats_transport(nats_server, max_deliver=3)
    calls = {"good": 0, "bad": 0}

    def good(e: Ping) -> None:
        calls["good"] += 1

    def bad(e: Ping) -> None:
        calls["bad"] += 1
        raise ValueError("the disk is full")

    async with MessageBus(transport=transport) as bus:
        bus.on_event(Ping, good)
        bus.on_event(Ping, bad)
        event = Ping(n=7)
        await bus.publish(event)
        await bus.drain()
        assert calls == {"good": 1, "bad": 3}  # the good handler ran once, not per delivery
        letter = bus.dead_letters.get(event.id)
        assert letter.message == event
        assert letter.attempts == 3
        assert "bad" in letter.reason
        assert "after 3 deliveries" in letter.reason
        assert "the disk is full" in letter.reason
        assert transport.counters()["redelivered"] == 2
        with pytest.raises(TypeError, match="holds an event"):
            _ = letter.command


async def test_a_handler_that_fails_once_is_handled_on_redelivery(
    nats_server: NatsServer,
) -> None:
    attempts: list[int] = []

    def flaky(e: Ping) -> None:
        attempts.append(e.n)
        if len(attempts) == 1:
            raise ConnectionError("try again")

    async with MessageBus(transport=nats_transport(nats_server)) as bus:
        bus.on_event(Ping, flaky)
        await bus.publish(Ping(n=1))
        await bus.drain()
        assert attempts == [1, 1]
        assert len(bus.dead_letters) == 0


async def test_a_duplicate_is_handled_once(nats_server: NatsServer) -> None:
    transport = nats_transport(nats_server)
    seen: list[str] = []
    async with MessageBus(transport=transport) as bus:
        bus.on_event(Ping, lambda e: seen.append(e.id))
        event = Ping(n=1)
        await bus.publish(event)
        await bus.publish(event)  # the server drops it: same Nats-Msg-Id
        # Another producer's copy under another message id (or one past the server's
        # duplicate window): the bus's seen-set drops it by the event's own id.
        await raw_publish(transport, "copy", to_json(event).encode(), "another-id")
        await bus.publish(Ping(n=2))
        await bus.drain()
        assert seen.count(event.id) == 1
        assert len(seen) == 2
        assert transport.counters()["duplicates"] == 1


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (json.dumps({"type": "nowhere.Unknown", "data": {}}), "not registered in this process"),
        ("{not json", "cannot be read"),
        (json.dumps({"type": "Ping", "data": {"n": 1, "added_in_v2": True}}), "cannot be read"),
    ],
    ids=["unregistered", "corrupt", "newer-schema"],
)
async def test_an_unreadable_message_goes_to_the_dead_letters_not_a_crash_loop(
    nats_server: NatsServer, payload: str, reason: str
) -> None:
    transport = nats_transport(nats_server)
    seen: list[int] = []
    async with MessageBus(transport=transport) as bus:
        bus.on_event(Ping, lambda e: seen.append(e.n))
        payload = payload.replace('"Ping"', json.dumps(message_type_name(Ping)))
        await raw_publish(transport, "bad", payload.encode(), "bad-1")
        await bus.publish(Ping(n=5))  # the bus goes on after it
        await bus.drain()
        assert seen == [5]
        (letter,) = list(bus.dead_letters)
        assert letter.message is None
        assert letter.raw == payload.encode()
        assert reason in letter.reason
        assert letter.id == "bad-1"
        assert letter.attempts == 1  # terminated: never redelivered


async def test_an_unregistered_type_is_handled_on_replay_once_its_class_exists(
    nats_server: NatsServer,
) -> None:
    transport = nats_transport(nats_server)
    payload = json.dumps({"type": "tests.late.Arrived", "data": {"what": "x"}})
    async with MessageBus(transport=transport) as bus:
        await raw_publish(transport, "late", payload.encode(), "late-1")
        await bus.publish(Ping())  # drain waits for what this bus published, in order
        await bus.drain()
        assert "late-1" in bus.dead_letters

        class Arrived(Event):
            __message_type__ = "tests.late.Arrived"
            what: str

        got: list[str] = []
        bus.on_event(Arrived, lambda e: got.append(e.what))
        result = await bus.dead_letters.replay("late-1")
        assert result.success
        assert got == ["x"]
        assert "late-1" not in bus.dead_letters


async def test_a_slow_consumer_holds_at_most_one_batch(nats_server: NatsServer) -> None:
    transport = nats_transport(nats_server, batch=4)
    depths: list[int] = []
    async with MessageBus(transport=transport) as bus:

        async def slow(e: Ping) -> None:
            depths.append(bus.stats().queue_depth)
            await asyncio.sleep(0)

        bus.on_event(Ping, slow)
        for i in range(100):
            await bus.publish(Ping(n=i))
        await bus.drain()
    assert len(depths) == 100
    assert max(depths) <= 4


async def test_a_handler_slower_than_ack_wait_keeps_its_event(nats_server: NatsServer) -> None:
    # Two buses share one consumer: an event whose ack the server stopped waiting for
    # would be sent to the other bus, idle and pulling, and handled twice.
    first = nats_transport(nats_server, durable="shared", ack_wait=1.5)
    second = peer_transport(first, durable="shared")
    handled: list[str] = []

    def slow(name: str) -> Callable[[Ping], Awaitable[None]]:
        async def handle(e: Ping) -> None:
            handled.append(name)
            await asyncio.sleep(4.5)  # the work itself: three times ack_wait

        return handle

    async with MessageBus(transport=first) as a, MessageBus(transport=second) as b:
        a.on_event(Ping, slow("a"))
        b.on_event(Ping, slow("b"))
        await a.publish(Ping(n=0))
        async with asyncio.timeout(DEADLINE):
            await a.drain()
    assert len(handled) == 1, handled
    assert first.counters()["redelivered"] == second.counters()["redelivered"] == 0


async def test_a_bus_that_stops_hands_the_rest_of_its_batch_to_its_peer_at_once(
    nats_server: NatsServer,
) -> None:
    # ack_wait is longer than the deadline: messages left in the stopped bus's hands
    # would reach its peer only after it, so without the nak at stop this test fails.
    first = nats_transport(nats_server, durable="shared", batch=8, ack_wait=DEADLINE * 2)
    second = peer_transport(first, durable="shared", batch=8, ack_wait=DEADLINE * 2)
    all_published, holding, all_handled = asyncio.Event(), asyncio.Event(), asyncio.Event()
    handled_a: list[int] = []
    handled_b: list[int] = []

    async def a_handles(e: Ping) -> None:
        if e.n == 0:  # the rest arrive meanwhile: the next fetch takes them as one batch
            await all_published.wait()
        if e.n == 3:  # holds 3..7 in hand until the stop cancels it
            holding.set()
            await asyncio.Event().wait()
        handled_a.append(e.n)

    def b_handles(e: Ping) -> None:
        handled_b.append(e.n)
        if len(handled_b) == 5:
            all_handled.set()

    a = MessageBus(transport=first)
    a.on_event(Ping, a_handles)
    await a.start()
    try:
        for n in range(8):
            await raw_publish(first, "ping", to_json(Ping(n=n)).encode(), f"ping-{n}")
        all_published.set()
        async with asyncio.timeout(DEADLINE):
            await holding.wait()
        async with MessageBus(transport=second) as b:  # joins while a holds the batch
            b.on_event(Ping, b_handles)
            async with asyncio.timeout(DEADLINE):
                await a.stop()
                await all_handled.wait()
    finally:
        await a.stop()
    assert handled_a == [0, 1, 2]
    assert sorted(handled_b) == [3, 4, 5, 6, 7]  # nothing lost, nothing handled twice
    assert second.counters()["redelivered"] == 5


def test_bus_url_chooses_the_transport(
    monkeypatch: pytest.MonkeyPatch, nats_server: NatsServer
) -> None:
    monkeypatch.setenv("LLMGINE_BUS_URL", nats_server.url)
    assert isinstance(MessageBus()._transport, NatsTransport)
    with pytest.raises(ValueError, match="queue options"):
        MessageBus(queue_capacity=10)
    monkeypatch.setenv("LLMGINE_BUS_URL", "kafka://127.0.0.1:9092")
    with pytest.raises(TransportError, match="nats://host:port"):
        MessageBus()
    monkeypatch.setenv("LLMGINE_BUS_URL", "local:")
    assert type(MessageBus()._transport).__name__ == "LocalTransport"


async def test_no_server_is_a_clear_error(nats_server: NatsServer) -> None:
    dead = NatsServer.start(timeout=DEADLINE)
    url = dead.url
    dead.stop()
    bus = MessageBus(transport=NatsTransport(url))
    with pytest.raises(TransportError, match="Is a server running there"):
        await bus.start()


CHILD = """
import asyncio, sys
from llmgine.bus import MessageBus
from llmgine.bus.nats import NatsTransport
from tests.bus.nats.test_transport import Ping

async def main(url, stream, prefix):
    transport = NatsTransport(url, stream=stream, subject_prefix=prefix, durable="child")
    got = asyncio.Event()
    async with MessageBus(transport=transport) as bus:
        bus.on_event(Ping, lambda e: (print("child got", e.n, flush=True), got.set()))
        print("ready", flush=True)
        await got.wait()

asyncio.run(main(*sys.argv[1:]))
"""


async def test_a_bus_in_another_process_receives_the_event(nats_server: NatsServer) -> None:
    transport = nats_transport(nats_server)
    root = ROOT
    env = {**os.environ, "PYTHONPATH": str(root)}
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        textwrap.dedent(CHILD),
        nats_server.url,
        transport.stream,
        transport.prefix,
        stdout=subprocess.PIPE,
        env=env,
    )
    try:
        assert child.stdout is not None
        async with MessageBus(transport=transport) as bus:  # creates the stream first
            line = await asyncio.wait_for(child.stdout.readline(), DEADLINE)
            assert line.strip() == b"ready"
            await bus.publish(Ping(n=42))
            line = await asyncio.wait_for(child.stdout.readline(), DEADLINE)
            assert line.strip() == b"child got 42"
        assert await asyncio.wait_for(child.wait(), DEADLINE) == 0
    finally:
        if child.returncode is None:
            child.kill()
            await child.wait()


async def test_stop_ends_the_consumer_while_it_waits_for_messages(
    nats_server: NatsServer,
) -> None:
    transport = nats_transport(nats_server)
    bus = MessageBus(transport=transport)
    await bus.start()
    # Another producer's message: the consumer is fetching it when the bus stops.
    await raw_publish(transport, "other", to_json(Ping()).encode(), "other-1")
    async with asyncio.timeout(DEADLINE):  # nats-py's fetch absorbed a bare cancel
        await bus.stop()
    assert transport.counters()["published"] == 0


def test_a_publish_ack_gives_its_sequence_or_raises_its_error() -> None:
    import nats.js.errors

    from llmgine.bus.nats._transport import _stored_at

    assert _stored_at(b'{"stream":"S","seq":7,"duplicate":true}') == 7
    refused = (
        b'{"error":{"code":400,"err_code":10060,"description":"expected stream does not match"}}'
    )
    with pytest.raises(nats.js.errors.BadRequestError, match="expected stream does not match"):
        _stored_at(refused)
    busy = b'{"error":{"code":503,"description":"JetStream system temporarily unavailable"}}'
    with pytest.raises(nats.js.errors.ServiceUnavailableError):  # retried by send()
        _stored_at(busy)
