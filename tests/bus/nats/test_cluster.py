"""A 3-node JetStream cluster with a replicated stream: the stream leader's node is
killed (a crash, or a partition from the rest), publishing goes on through the new
leader, and a consuming bus handles every event exactly once."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import nats
import pytest

from llmgine.bus import Event, MessageBus
from llmgine.bus.nats import NatsCluster, NatsServer, NatsTransport
from llmgine.errors import TransportError
from tests.bus.conftest import nats_transport
from tests.deadline import DEADLINE


class Tick(Event):
    n: int


async def _stream_leader(url: str, stream: str) -> tuple[str, int]:
    """The server name of the stream's leader and how many replicas it has."""
    nc = await nats.connect(url.split(","))
    try:
        info = await nc.jetstream().stream_info(stream)
    finally:
        await nc.close()
    assert info.cluster is not None
    assert info.cluster.leader is not None
    return info.cluster.leader, info.config.num_replicas or 0


def test_a_cluster_starts_routed_and_stops_by_its_processes(tmp_path: Path) -> None:
    cluster = NatsCluster.start(3, store_dir=tmp_path, timeout=DEADLINE)
    try:
        assert [node.server_name for node in cluster.nodes] == ["n1", "n2", "n3"]
        assert all(node.running for node in cluster.nodes)
        assert len(set(cluster.url.split(","))) == 3
        assert {node.store_dir for node in cluster.nodes} == {tmp_path / f"n{i}" for i in (1, 2, 3)}
        with pytest.raises(KeyError, match="its nodes: n1, n2, n3"):
            cluster.node("n9")
    finally:
        cluster.stop()
    for node in cluster.nodes:
        assert node.process is not None
        assert node.process.returncode is not None


async def test_the_stream_leader_lost_publishing_goes_on_and_nothing_is_lost_or_doubled(
    tmp_path: Path,
) -> None:
    cluster = await asyncio.to_thread(NatsCluster.start, 3, store_dir=tmp_path, timeout=DEADLINE)
    try:
        stream = f"C{uuid.uuid4().hex[:10]}"
        transport = NatsTransport(
            cluster.url,
            stream=stream,
            replicas=3,
            durable="survivor",
            backoff=(0.01,),
            ack_wait=2.0,  # an ack lost with the node is redelivered soon, then deduped
            publish_timeout=DEADLINE,
        )
        seen: list[int] = []
        async with MessageBus(transport=transport) as bus:
            bus.on_event(Tick, lambda e: seen.append(e.n))
            for i in range(100):
                await bus.publish(Tick(n=i))
            leader, replicas = await _stream_leader(cluster.url, stream)
            assert replicas == 3
            lost = cluster.node(leader)
            lost.kill()  # by its process: SIGKILL, no goodbye to the others
            for i in range(100, 200):  # each publish returns once the new leader stored it
                await bus.publish(Tick(n=i))
            survivors = ",".join(node.url for node in cluster.nodes if node.running)
            new_leader, _ = await _stream_leader(survivors, stream)
            assert new_leader != leader
            await bus.drain()
            assert sorted(seen) == list(range(200)), "an event was lost or handled twice"

            await asyncio.to_thread(lost.restart, timeout=DEADLINE)  # same ports and store
            await asyncio.to_thread(lost.wait_for_meta_leader, DEADLINE)
            for i in range(200, 250):
                await bus.publish(Tick(n=i))
            await bus.drain()
        assert sorted(seen) == list(range(250)), "an event was lost or handled twice"
        assert transport.counters()["published"] == 250
    finally:
        await asyncio.to_thread(cluster.stop)
    assert not any(node.running for node in cluster.nodes)


async def test_replicas_a_single_server_cannot_keep_is_a_clear_error(
    nats_server: NatsServer,
) -> None:
    with pytest.raises(ValueError, match="replicas must be 1 to 5"):
        NatsTransport(nats_server.url, replicas=0)
    transport = nats_transport(nats_server, replicas=3, publish_timeout=0.5)
    with pytest.raises(
        TransportError, match=r"refused the stream .*not supported in non-clustered mode"
    ):
        await MessageBus(transport=transport).start()
