"""`WorkerProcess`: an `llmgine worker` started from Python, for notebooks and tests.

A notebook that scales out starts workers, watches them share the commands, and kills one
to see the others take over; this is the handle for that: it starts ``python -m llmgine
worker`` with the interpreter running it, returns once the worker says it serves (its
ready line), and stops it by its process, gently (SIGTERM: running commands finish and
reply, spans are flushed) or not (SIGKILL). Its calls block (for a second or two at
most when all is well); from async code run them in a thread (``asyncio.to_thread``).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import weakref
from collections import deque
from collections.abc import Mapping
from types import TracebackType

from llmgine._redact import default_redactor
from llmgine.bus.nats._server import terminate
from llmgine.errors import WorkerError

__all__ = ["WorkerProcess"]

READY_LINE = "llmgine worker: serving"  # what `llmgine worker` prints once it serves
DEFAULT_START_TIMEOUT = 60.0  # importing the app and connecting, on a busy machine
DEFAULT_STOP_TIMEOUT = 60.0  # the running commands finish first
LOG_LINES = 200
EXIT_STOP_TIMEOUT = 10.0  # at the interpreter's exit, before SIGKILL: a kernel shutting down


class WorkerProcess:
    """An `llmgine worker` process: started, ready, and stopped by its process.

    Attributes:
        spec: the ``module:setup`` it serves.
        name: what it is called (by default ``worker-<pid>``).
        pid: its process id.

    Example:
        from llmgine.bus.nats import NatsServer, WorkerProcess

        server = NatsServer.start()
        endpoint = observability.enable(bus).collect()     # its spans join this trace
        a = WorkerProcess.start("app:setup", url=server.url, name="worker-a",
                                env={"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint})
        ...
        a.kill()                # SIGKILL: the others take over its commands
        a.log_tail()            # what it printed, redacted
    """

    def __init__(self, spec: str, name: str | None, process: subprocess.Popen[str]) -> None:
        self.spec = spec
        self.pid = process.pid
        self.name = name or f"worker-{process.pid}"
        self._process = process
        self._log: deque[str] = deque(maxlen=LOG_LINES)
        self._ready = threading.Event()
        self._settled = threading.Event()  # ready, or its output ended
        self._reader = threading.Thread(
            target=self._read, name=f"llmgine-{self.name}-log", daemon=True
        )
        self._reader.start()
        # A worker must not outlive the interpreter that started it (a notebook's kernel).
        self._finalizer = weakref.finalize(self, terminate, process, EXIT_STOP_TIMEOUT)

    @classmethod
    def start(
        cls,
        spec: str,
        *,
        url: str,
        env: Mapping[str, str] | None = None,
        name: str | None = None,
        durable: str | None = None,
        stream: str | None = None,
        subject_prefix: str | None = None,
        timeout: float = DEFAULT_START_TIMEOUT,
    ) -> WorkerProcess:
        """Start ``llmgine worker spec --url url`` and wait until it serves.

        Args:
            spec: ``module:setup``, importable from the current directory or PYTHONPATH.
            url: the NATS server (``nats://127.0.0.1:4222``).
            env: variables on top of this process's environment, e.g.
                ``OTEL_EXPORTER_OTLP_ENDPOINT`` (from `Observability.collect`) to trace it.
            name: its name; unless ``env`` sets ``OTEL_SERVICE_NAME``, also its
                ``service.name`` in traces, so a waterfall says which worker ran what.
            durable / stream / subject_prefix: ``llmgine worker``'s options of those names.
            timeout: seconds to wait for it to serve.

        Raises:
            WorkerError: it exited before serving, or did not serve within ``timeout``
                (it is killed then); the message ends with its output.
        """
        given = dict(env or {})
        environment = {**os.environ, **given}
        environment.setdefault("PYTHONUNBUFFERED", "1")  # its lines as they are printed
        if name is not None and "OTEL_SERVICE_NAME" not in given:
            # Over one this process has: the notebook's own name would label its spans.
            environment["OTEL_SERVICE_NAME"] = name
        command = [sys.executable, "-m", "llmgine", "worker", spec, "--url", url]
        for option, value in (
            ("--durable", durable),
            ("--stream", stream),
            ("--subject-prefix", subject_prefix),
        ):
            if value is not None:
                command += [option, value]
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=environment,
            text=True,
            encoding="utf-8",
            errors="replace",
        )
        worker = cls(spec, name, process)
        worker._wait_ready(timeout)
        return worker

    def _read(self) -> None:
        stdout = self._process.stdout
        assert stdout is not None  # opened with stdout=PIPE
        with stdout:
            for line in stdout:
                self._log.append(line.rstrip("\n"))
                if line.startswith(READY_LINE):
                    self._ready.set()
                    self._settled.set()
        self._settled.set()

    def _wait_ready(self, timeout: float) -> None:
        if self._settled.wait(timeout) and self._ready.is_set():
            return
        if self._settled.is_set():  # its output ended: it exited, or is exiting
            code = self._process.wait(timeout)
            raise WorkerError(f"{self} exited with code {code} before serving{self._tail()}")
        self.kill()
        raise WorkerError(
            f"{self} did not say it serves within {timeout:g} s, so it was killed; is the "
            f"NATS server up?{self._tail()}"
        )

    def __repr__(self) -> str:
        state = "running" if self.alive else f"exited {self._process.returncode}"
        text = f"<WorkerProcess {self.name} ({self.spec}, pid {self.pid}) {state}>"
        return default_redactor.text(text)  # it appears in errors, logs and outputs

    @property
    def alive(self) -> bool:
        """Whether the process is still running."""
        return self._process.poll() is None

    @property
    def returncode(self) -> int | None:
        """Its exit code (negative: the signal that ended it), or None while it runs."""
        return self._process.poll()

    def log_tail(self, lines: int = 20) -> list[str]:
        """The last ``lines`` lines it printed (stdout and stderr), redacted."""
        kept = list(self._log)[-lines:] if lines > 0 else []
        return [default_redactor.text(line) for line in kept]

    def _tail(self) -> str:
        tail = self.log_tail()
        return ":\n" + "\n".join(tail) if tail else " (it printed nothing)"

    def stop(self, timeout: float = DEFAULT_STOP_TIMEOUT) -> int:
        """SIGTERM, and wait for it to exit: it takes no new commands, finishes the
        running ones, flushes its spans. Returns its exit code (0 when all went well).

        Raises:
            WorkerError: it had not exited after ``timeout`` seconds (it is killed then).
        """
        if self.alive:
            self._process.send_signal(signal.SIGTERM)
        try:
            code = self._process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise WorkerError(
                f"{self} did not stop within {timeout:g} s of "
                f"SIGTERM, so it was killed{self._tail()}"
            ) from None
        self._reader.join(timeout)
        return code

    def kill(self) -> int:
        """SIGKILL, and wait for it to exit: what it was running is lost (the bus's
        retries and the other workers take over). Returns its exit code."""
        if self.alive:
            self._process.kill()
        code = self._process.wait()
        self._reader.join(DEFAULT_STOP_TIMEOUT)
        return code

    def __enter__(self) -> WorkerProcess:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self.alive:
            self.stop()
