"""Faults over NATS: nothing lost, nothing handled twice."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

from llmgine.bus import Event, MessageBus
from llmgine.bus.nats import NatsServer, NatsTransport
from tests.deadline import DEADLINE


class Tick(Event):
    n: int


async def test_the_server_killed_and_restarted_mid_stream_loses_nothing(tmp_path: Path) -> None:
    server = NatsServer.start(store_dir=tmp_path / "jetstream", timeout=DEADLINE)
    try:
        transport = NatsTransport(
            server.url,
            stream=f"F{uuid.uuid4().hex[:10]}",
            durable="survivor",  # a named consumer: kept in the store across the restart
            backoff=(0.01,),
            ack_wait=2.0,  # an ack lost with the server is redelivered soon, then deduped
            publish_timeout=DEADLINE,
        )
        seen: list[int] = []
        async with MessageBus(transport=transport) as bus:
            bus.on_event(Tick, lambda e: seen.append(e.n))
            for i in range(100):
                await bus.publish(Tick(n=i))
            server.kill()  # SIGKILL: no clean shutdown, JetStream recovers from its files
            restarted = asyncio.create_task(asyncio.to_thread(server.restart, timeout=DEADLINE))
            for i in range(100, 200):  # retried until the server is back
                await bus.publish(Tick(n=i))
            await restarted
            await bus.drain()
        assert sorted(seen) == list(range(200)), "an event was lost or handled twice"
    finally:
        server.stop()
