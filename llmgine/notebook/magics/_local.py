"""``%llmgine local [start [MODEL] | stop [PID]]``: the local model's servers, from a cell.

* ``%llmgine local`` lists this user's running servers (from any process: this kernel,
  another kernel, ``llmgine local serve``) as a DataFrame: model, address, pid, memory,
  threads, age, and whether this kernel started it;
* ``%llmgine local start [MODEL]`` makes sure one runs for ``MODEL`` (default
  ``smollm2``; ``local:NAME`` or the path of a GGUF file work too), with the settings
  ``local:`` models use, so the next call reuses it instead of waiting for it to load;
* ``%llmgine local stop [PID]`` stops them all, or the one whose process is ``PID``.

A start runs on the workbench's loop (the server loads in a worker thread there), so the
cell only waits for the server and the kernel's stop button ends the wait.
"""

from __future__ import annotations

import importlib.util
import time
from typing import TYPE_CHECKING

import pandas as pd

from llmgine.errors import CellFailedError, LocalModelError, MagicUsageError
from llmgine.local import (
    DEFAULT_LOCAL_MODEL,
    ServerSettings,
    check_model_file,
    default_servers,
    resolve_local_model,
    running_servers,
    stop_server,
)
from llmgine.local._cli import memory_mb
from llmgine.notebook.magics._display import describe_error

if TYPE_CHECKING:
    from llmgine.notebook.magics._workbench import Workbench

__all__ = ["LOCAL_USAGE", "local_command"]

LOCAL_USAGE = "%llmgine local [start [MODEL] | stop [PID]]"
_COLUMNS = ["model", "url", "pid", "memory_mb", "threads", "context", "age_s", "this_kernel"]
_INSTALL = (
    "the local model needs llama.cpp's server (the 'xllamacpp' package), which is not "
    'installed: pip install "llmgine[local]", then: llmgine local install'
)


def local_command(workbench: Workbench, rest: list[str]) -> pd.DataFrame | None:
    """``%llmgine local ...`` (``rest``: the words after ``local``)."""
    action, arguments = (rest[0], rest[1:]) if rest else ("status", [])
    if action == "status":
        _at_most(arguments, 0)
        return servers_frame()
    if action == "start":
        _at_most(arguments, 1)
        start(workbench, arguments[0] if arguments else None)
        return None
    if action == "stop":
        _at_most(arguments, 1)
        stop(_pid(arguments[0]) if arguments else None)
        return None
    raise MagicUsageError(
        f"unknown local command {action!r}; usage: {LOCAL_USAGE} (no word: list the "
        "running servers)"
    )


def _at_most(arguments: list[str], count: int) -> None:
    if len(arguments) > count:
        raise MagicUsageError(f"too many arguments ({' '.join(arguments)}); usage: {LOCAL_USAGE}")


def _pid(word: str) -> int:
    if not word.isdigit():
        raise MagicUsageError(
            f"{word!r} is not a process id; %llmgine local lists the servers and their pids, "
            "and %llmgine local stop (without a PID) stops them all"
        )
    return int(word)


def servers_frame() -> pd.DataFrame | None:
    """This user's running servers as a DataFrame; None (and a line saying so) if none."""
    records = running_servers()
    if not records:
        print(
            "llmgine: no local model server is running (one starts with the first 'local:' "
            "call, or with %llmgine local start)"
        )
        return None
    here = {server.pid for server in default_servers().running() if server.owned}
    now = time.time()
    rows = []
    for record in records:
        memory = memory_mb(record.pid)
        rows.append(
            {
                "model": f"local:{record.model}",
                "url": record.url,
                "pid": record.pid,
                "memory_mb": round(memory) if memory is not None else None,
                "threads": record.threads,
                "context": record.context,
                "age_s": round(now - record.started_at),
                "this_kernel": record.pid in here,
            }
        )
    return pd.DataFrame(rows, columns=_COLUMNS)


def start(workbench: Workbench, name: str | None) -> None:
    """Make sure a server for ``name`` runs (started, or another process's reused)."""
    given = name or DEFAULT_LOCAL_MODEL
    bare = given.removeprefix("local:")
    if not bare:
        raise MagicUsageError(f"{given!r} names no model; e.g. %llmgine local start smollm2")
    if importlib.util.find_spec("xllamacpp") is None:
        raise MagicUsageError(_INSTALL)
    try:
        model = resolve_local_model(bare)
        check_model_file(model)
    except LocalModelError as exc:  # unknown, not installed, no such file, not a GGUF
        raise MagicUsageError(str(exc)) from exc
    servers = default_servers()
    print(f"llmgine: starting local:{model.name} (or finding it running) ...", flush=True)
    try:
        server = workbench.loop.run(servers.ensure(model, ServerSettings.default()))
    except Exception as exc:  # the server did not start: the error says why
        raise CellFailedError(describe_error(exc), exc) from exc
    how = "started by this kernel" if server.owned else "already running, reused"
    print(f"llmgine: local:{model.name} runs at {server.url} (pid {server.pid}, {how})")
    spec = f"local:{bare}"
    if workbench.default_label() != spec:
        print(f"llmgine: cells use {workbench.default_label()}; %llmgine use {spec} changes that")


def stop(pid: int | None) -> None:
    """Stop this user's servers (or the one whose process is ``pid``): a server this
    kernel started through its pipe, any other by its pid (`llmgine.local.stop_server`)."""
    records = [r for r in running_servers() if pid is None or r.pid == pid]
    if not records:
        if pid is not None:
            raise MagicUsageError(
                f"no running local model server of yours has pid {pid}; %llmgine local lists them"
            )
        print("llmgine: no local model server is running")
        return
    servers = default_servers()
    owned = {server.pid: server for server in servers.running() if server.owned}
    for record in records:
        if record.pid in owned:
            servers.forget(owned[record.pid])  # closes its pipe; it stops and unrecords
        else:
            stop_server(record.pid)
        print(f"llmgine: stopped local:{record.model} (pid {record.pid})")
