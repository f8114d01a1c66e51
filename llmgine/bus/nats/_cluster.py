"""`NatsCluster`: a JetStream cluster of nats-server nodes on 127.0.0.1, for tests and for
trying what replication and leader failover do.

Every node routes to every other, so the route ports must be known before any node starts:
they are probed free (three sockets bound at once, so they differ) and, in the rare case
another process takes one in between, the cluster starts again on fresh ones. Client ports
are chosen by each server itself, as for `NatsServer`. Each node has its own store
directory and ``server_name`` (``n1``, ``n2``, ...). A node is stopped (or killed, and
restarted on the same ports and store) by its own process, never by name.
"""

from __future__ import annotations

import socket
import tempfile
from contextlib import ExitStack
from pathlib import Path
from types import TracebackType

from llmgine.bus.nats._server import NatsServer
from llmgine.errors import TransportError

__all__ = ["NatsCluster"]

_ATTEMPTS = 3  # fresh route ports each time, for a port taken between probe and start


def _free_ports(count: int, host: str) -> list[int]:
    with ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in sockets:
            sock.bind((host, 0))
        return [sock.getsockname()[1] for sock in sockets]


class NatsCluster:
    """``size`` clustered nats-server nodes with JetStream; ready when a meta leader is
    elected.

    Example:
        with NatsCluster.start(3) as cluster:
            transport = NatsTransport(cluster.url, replicas=3)   # every node's address
            ...
            cluster.node("n2").kill()                            # a crash, or a partition
    """

    def __init__(self, nodes: list[NatsServer]) -> None:
        self.nodes = nodes
        self._temporary: tempfile.TemporaryDirectory[str] | None = None

    @classmethod
    def start(
        cls,
        size: int = 3,
        *,
        store_dir: str | Path | None = None,
        name: str = "llmgine",
        host: str = "127.0.0.1",
        timeout: float = 30.0,
    ) -> NatsCluster:
        """Start ``size`` nodes and return once every one knows the meta leader.

        Args:
            size: nodes; 3 keeps a majority when one is lost.
            store_dir: each node stores under ``<store_dir>/<server name>``; by default a
                temporary directory, removed by `stop()`.
            timeout: seconds for each node to become ready and see a meta leader.

        Raises:
            TransportError: the cluster did not form; the message has a node's log.
        """
        if size < 1:
            raise ValueError(f"a cluster needs at least one node; got size={size}")
        temporary = None
        if store_dir is None:
            temporary = tempfile.TemporaryDirectory(prefix="llmgine-nats-cluster-")
            store_dir = temporary.name
        for attempt in range(1, _ATTEMPTS + 1):
            ports = _free_ports(size, host)
            routes = [f"nats://{host}:{port}" for port in ports]
            nodes = [
                NatsServer(
                    store_dir=Path(store_dir) / f"n{i}",
                    host=host,
                    server_name=f"n{i}",
                    cluster_name=name,
                    cluster_port=port,
                    routes=routes,
                )
                for i, port in enumerate(ports, start=1)
            ]
            cluster = cls(nodes)
            cluster._temporary = temporary
            try:
                for node in nodes:
                    node.run(timeout=timeout)
                cluster.wait_for_meta_leader(timeout=timeout)
                return cluster
            except TransportError:
                cluster.kill()
                if attempt == _ATTEMPTS:
                    if temporary is not None:
                        temporary.cleanup()
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    @property
    def url(self) -> str:
        """Every node's client address, comma-separated (what `NatsTransport` takes)."""
        return ",".join(node.url for node in self.nodes)

    def node(self, server_name: str) -> NatsServer:
        """The node named ``server_name`` (``"n1"``, ...; JetStream names leaders so)."""
        for node in self.nodes:
            if node.server_name == server_name:
                return node
        names = ", ".join(str(node.server_name) for node in self.nodes)
        raise KeyError(f"no node named {server_name!r} in this cluster; its nodes: {names}")

    def wait_for_meta_leader(self, *, timeout: float = 30.0) -> None:
        """Wait until every running node knows the JetStream meta leader."""
        for node in self.nodes:
            if node.running:
                node.wait_for_meta_leader(timeout)

    def kill(self) -> None:
        """SIGKILL every node (stores kept)."""
        for node in self.nodes:
            node.kill()

    def stop(self, *, timeout: float = 10.0) -> None:
        """Stop every node by its process and remove a temporary store."""
        for node in self.nodes:
            node.stop(timeout=timeout)
        if self._temporary is not None:
            self._temporary.cleanup()
            self._temporary = None

    def __enter__(self) -> NatsCluster:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        running = sum(node.running for node in self.nodes)
        return f"<NatsCluster {running}/{len(self.nodes)} nodes running>"
