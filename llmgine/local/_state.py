"""Where running local model servers are recorded, so other processes of the same user
(another kernel, ``llmgine local status``) find and reuse them instead of starting more.

One JSON file per server (``<pid>.json``) in a folder only its user may read
(``$LLMGINE_LOCAL_DIR``, else ``$XDG_CACHE_HOME/llmgine/local``, else
``~/.cache/llmgine/local``). A record whose process is gone is stale: readers delete it.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

__all__ = ["ServerRecord", "StateDir", "default_state_dir", "pid_alive"]


def default_state_dir() -> Path:
    """The folder for server records and logs of this user."""
    given = os.environ.get("LLMGINE_LOCAL_DIR")
    if given:
        return Path(given).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "llmgine" / "local"


def pid_alive(pid: int) -> bool:
    """Whether a process ``pid`` exists (and is not a zombie of ours)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, but another user's: not ours to reuse
        return False
    try:  # a zombie still answers kill(0); on Linux its state says so
        status = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return status.rsplit(")", 1)[-1].split()[0] != "Z"


@dataclass(frozen=True)
class ServerRecord:
    """A running server: its process, address, what it serves and with which settings."""

    pid: int
    url: str
    key: str  # model file and settings: a server is reused only for the same key
    model: str
    model_path: str
    threads: int
    context: int
    started_at: float
    log: str = ""

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1].split("/")[0])


class StateDir:
    """The records folder (made on first write, readable by its user only)."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or default_state_dir()

    @property
    def servers(self) -> Path:
        return self.path / "servers"

    def _ensure(self) -> None:
        self.servers.mkdir(parents=True, exist_ok=True, mode=0o700)

    def write(self, record: ServerRecord) -> None:
        self._ensure()
        target = self.servers / f"{record.pid}.json"
        temporary = target.with_suffix(".tmp")
        temporary.write_text(json.dumps(asdict(record)), "utf-8")
        temporary.replace(target)  # atomic: a reader never sees half a record

    def remove(self, pid: int) -> None:
        (self.servers / f"{pid}.json").unlink(missing_ok=True)

    def records(self) -> list[ServerRecord]:
        """The servers whose process is alive, oldest first; stale records are deleted."""
        if not self.servers.is_dir():
            return []
        found: list[ServerRecord] = []
        for file in sorted(self.servers.glob("*.json")):
            try:
                record = ServerRecord(**json.loads(file.read_text("utf-8")))
            except (OSError, ValueError, TypeError):
                file.unlink(missing_ok=True)  # half-written by a killed writer, or foreign
                continue
            if pid_alive(record.pid):
                found.append(record)
            else:
                file.unlink(missing_ok=True)
        return sorted(found, key=lambda r: r.started_at)
