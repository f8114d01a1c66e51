"""Starting, finding and stopping local model servers.

`LocalServers.ensure` gives a running server for a model and settings: the one this
process already uses while its process lives; else one another process of the same user
started with the same model and settings (found through `StateDir`, checked to answer and
to serve that very file); else a new one, started in its own process on 127.0.0.1 on a
free port (or the port asked for). A server this process starts stops when this process
exits, however it exits: the server reads its standard input, and the end of that pipe is
the starter's end (`llmgine.local._serve`). Starts are serialised across processes by a
lock file, so two kernels asking at once share one server.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import hashlib
import json
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from llmgine.errors import LocalServerError
from llmgine.local._catalog import LocalModel, check_model_file
from llmgine.local._state import ServerRecord, StateDir, pid_alive

__all__ = ["LocalServer", "LocalServers", "ServerSettings", "default_servers"]

START_TIMEOUT = 120.0  # seconds a server may take to load its model and listen


def _threads_default() -> int:
    # One thread: on a busy 2-core machine two threads fell to 1-2 tokens/s, one gave 20-50.
    return int(os.environ.get("LLMGINE_LOCAL_THREADS", "1"))


@dataclass(frozen=True)
class ServerSettings:
    """How a server is run. ``port=None``: any free port."""

    threads: int = 1
    parallel: int = 1  # requests answered at once (each gets the model's full context)
    port: int | None = None

    @classmethod
    def default(cls) -> ServerSettings:
        return cls(threads=_threads_default())


@dataclass
class LocalServer:
    """A running server: where it listens, its process, and whether this process owns it."""

    url: str  # http://127.0.0.1:PORT
    pid: int
    model: LocalModel
    key: str
    process: subprocess.Popen[bytes] | None = None  # set when this process started it
    log: Path | None = None

    @property
    def base_url(self) -> str:
        """The OpenAI-compatible API's address."""
        return f"{self.url}/v1"

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    @property
    def owned(self) -> bool:
        return self.process is not None

    def alive(self) -> bool:
        """Whether its process still runs (not whether it answers)."""
        if self.process is not None:
            return self.process.poll() is None
        return pid_alive(self.pid)

    async def still_alive(self, *, grace: float = 0.0) -> bool:
        """Whether its process runs, waiting up to ``grace`` seconds for one that is
        dying: a killed server's connections close while its process still exits (seen
        running 15 ms after SIGKILL), so a caller whose connection just broke asks with
        a grace, or it would take a dying server for a live one."""
        deadline = time.monotonic() + grace
        while self.alive():
            if time.monotonic() >= deadline:
                return True
            await asyncio.sleep(0.02)
        return False

    def log_tail(self, lines: int = 12) -> str:
        """The end of its log: what llama.cpp said last."""
        if self.log is None or not self.log.is_file():
            return ""
        text = self.log.read_text("utf-8", "replace").splitlines()
        return "\n".join(text[-lines:])


def _key(model: LocalModel, settings: ServerSettings) -> str:
    digest = hashlib.sha256()
    for part in (
        str(model.path),
        model.name,
        str(model.context),
        model.template or "",
        str(settings.threads),
        str(settings.parallel),
    ):
        digest.update(part.encode())
        digest.update(b"\0")
    return digest.hexdigest()[:16]


def _get_json(url: str, timeout: float = 5.0) -> object:
    with urllib.request.urlopen(url, timeout=timeout) as answer:
        return json.loads(answer.read())


def _serves(record: ServerRecord, model: LocalModel) -> bool:
    """Whether the recorded server answers and serves ``model``'s very file."""
    try:
        health = _get_json(f"{record.url}/health", timeout=2.0)
        props = _get_json(f"{record.url}/props", timeout=2.0)
    except (OSError, ValueError):
        return False
    return (
        isinstance(health, dict)
        and health.get("status") == "ok"
        and isinstance(props, dict)
        and props.get("model_path") == str(model.path)
    )


class LocalServers:
    """The local model servers this process uses (one per model and settings).

    Args:
        state: where server records are kept (`StateDir`; by default the user's).
        start_timeout: seconds a new server may take to load its model and listen.
        share: reuse servers other processes of this user started (and record ours).
    """

    def __init__(
        self,
        state: StateDir | None = None,
        *,
        start_timeout: float = START_TIMEOUT,
        share: bool = True,
    ) -> None:
        self.state = state or StateDir()
        self.start_timeout = start_timeout
        self.share = share
        self._servers: dict[str, LocalServer] = {}
        self._lock = threading.Lock()

    def running(self) -> list[LocalServer]:
        """The servers this process knows of that still run."""
        return [server for server in self._servers.values() if server.alive()]

    def ensure_sync(self, model: LocalModel, settings: ServerSettings) -> LocalServer:
        """A running server for ``model`` (see the module docstring). Blocks while one
        starts: call `ensure` from async code."""
        key = _key(model, settings)
        known = self._servers.get(key)
        if known is not None and known.alive():
            return known
        with self._lock:
            known = self._servers.get(key)
            if known is not None and known.alive():
                return known
            check_model_file(model)
            with self._start_lock():
                server = self._reuse(key, model, settings) or self._start(key, model, settings)
            self._servers[key] = server
            return server

    async def ensure(self, model: LocalModel, settings: ServerSettings) -> LocalServer:
        """`ensure_sync` without blocking the event loop while a server starts."""
        known = self._servers.get(_key(model, settings))
        if known is not None and known.alive():  # the common case: no thread hop
            return known
        return await asyncio.to_thread(self.ensure_sync, model, settings)

    def forget(self, server: LocalServer) -> None:
        """Stop using ``server`` (it failed): the next `ensure` finds or starts another."""
        if self._servers.get(server.key) is server:
            del self._servers[server.key]
        if server.owned:  # dead or not: its pipes are closed and its process reaped
            self._stop(server)

    def stop_all(self) -> None:
        """Stop the servers this process started (others' are left running)."""
        for server in list(self._servers.values()):
            if server.owned:
                self._stop(server)
        self._servers.clear()

    # -- internals ------------------------------------------------------------------------

    @contextmanager
    def _start_lock(self) -> Iterator[None]:
        if not self.share:
            yield
            return
        try:
            import fcntl
        except ImportError:  # Windows: no cross-process lock; a race starts two servers
            yield
            return
        self.state.path.mkdir(parents=True, exist_ok=True, mode=0o700)
        with open(self.state.path / "start.lock", "a+b") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _reuse(self, key: str, model: LocalModel, settings: ServerSettings) -> LocalServer | None:
        if not self.share:
            return None
        for record in self.state.records():
            if record.key != key or (settings.port and record.port != settings.port):
                continue
            if _serves(record, model):
                log = Path(record.log) if record.log else None
                return LocalServer(record.url, record.pid, model, key, None, log)
        return None

    def _start(self, key: str, model: LocalModel, settings: ServerSettings) -> LocalServer:
        logs = self.state.path / "logs"
        logs.mkdir(parents=True, exist_ok=True, mode=0o700)
        log = logs / f"server-{key}.log"
        command = [
            sys.executable,
            "-m",
            "llmgine.local._serve",
            "--model",
            str(model.path),
            "--alias",
            model.name,
            "--context",
            str(model.context),
            "--threads",
            str(settings.threads),
            "--parallel",
            str(settings.parallel),
            "--port",
            str(settings.port or 0),
            "--key",
            key,
            "--until-stdin-closes",
            *(["--state-dir", str(self.state.path)] if self.share else []),
        ]
        template_file = None
        if model.template:
            template_file = logs / f"template-{key}.jinja"
            template_file.write_text(model.template, "utf-8")
            command += ["--template", str(template_file)]
        with log.open("wb") as log_file:
            process = subprocess.Popen(
                command,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log_file,
                env={**os.environ, "LLMGINE_LOCAL_LOG": str(log)},
                # Its own session: Ctrl-C in a terminal, or Jupyter interrupting a cell
                # (SIGINT to the kernel's process group), must not stop a shared server.
                start_new_session=True,
            )
        server = LocalServer("", process.pid, model, key, process, log)
        answer = self._first_line(process, server)
        if "error" in answer or "url" not in answer:
            self._stop(server)  # it is exiting: reap it and close its pipes
            raise self._start_error(server, str(answer.get("error", answer)), settings)
        server.url = str(answer["url"]).rstrip("/")
        return server

    def _first_line(
        self, process: subprocess.Popen[bytes], server: LocalServer
    ) -> dict[str, object]:
        """The server's first line on stdout (it says where it listens, or why not)."""
        assert process.stdout is not None
        line: list[bytes] = []
        reader = threading.Thread(target=lambda: line.append(process.stdout.readline()))  # type: ignore[union-attr]
        reader.start()
        reader.join(self.start_timeout)
        if reader.is_alive():  # no word within the deadline: stop it, and say so
            process.kill()
            reader.join()  # its stdout ends with it
            self._stop(server)
            raise LocalServerError(
                f"the local model server for {server.model.name!r} did not start within "
                f"{self.start_timeout:.0f} s (the machine may be very busy); its log, "
                f"{server.log}, ends with:\n{server.log_tail()}",
                model=server.model.name,
                log=server.log_tail(),
                retryable=False,
            )
        text = line[0].decode("utf-8", "replace").strip() if line else ""
        if not text:  # it exited without a word: crashed while loading
            process.wait()
            return {"error": f"the server process exited with code {process.returncode}"}
        try:
            answer = json.loads(text)
        except ValueError:
            return {"error": text[:300]}
        return answer if isinstance(answer, dict) else {"error": text[:300]}

    def _start_error(
        self, server: LocalServer, reason: str, settings: ServerSettings
    ) -> LocalServerError:
        tail = server.log_tail()
        lowered = (reason + "\n" + tail).lower()
        if settings.port and ("bind" in lowered or "address already in use" in lowered):
            hint = (
                f"port {settings.port} on 127.0.0.1 is already taken; stop what uses it, "
                f"pick another port, or leave the port out to use any free one"
            )
        elif "load" in lowered and "model" in lowered:
            hint = (
                f"llama.cpp could not load the model file {server.model.path}: it is damaged "
                f"or not a model llama.cpp supports; {server.model.fix}"
            )
        else:
            hint = f"see its log, {server.log}"
        return LocalServerError(
            f"the local model server for {server.model.name!r} did not start ({reason}): "
            f"{hint}. The log ends with:\n{tail}",
            model=server.model.name,
            log=tail,
            retryable=False,  # it would fail the same way again
        )

    def _stop(self, server: LocalServer) -> None:
        process = server.process
        if process is None:
            return
        if process.stdin is not None:
            with contextlib.suppress(OSError):  # a broken pipe: it is gone already
                process.stdin.close()  # what the server waits for
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()


_DEFAULT: LocalServers | None = None


def default_servers() -> LocalServers:
    """The servers of this process that `local:` models use unless given others."""
    global _DEFAULT
    if _DEFAULT is None:
        _DEFAULT = LocalServers()
        atexit.register(_DEFAULT.stop_all)
    return _DEFAULT
