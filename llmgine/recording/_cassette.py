"""`Cassette`: recordings in a JSON-lines file beside the notebook, to commit with it.

One interaction per line, each line one JSON object with its keys sorted. Lines are in
the order of their keys (the SHA-256 of the canonical request), not the order the calls
were made: so the file is the same whatever order, or concurrency, the calls ran in, and
recording again changes only the lines of the requests whose answers changed. A review
sees one changed line per changed interaction.

The file is read when first used, and read again whenever it changed on disk (another
process, a ``git checkout``); each write rewrites it whole, through a temporary file
renamed over it, so a reader never sees half a file. For several processes recording at
once, use `SQLiteCache`: two processes writing one cassette at the same moment may lose
one of the two new lines.
"""

from __future__ import annotations

import os
import tempfile
import threading
from pathlib import Path

from llmgine.recording._store import Recording, RecordingStore

__all__ = ["Cassette"]


class Cassette(RecordingStore):
    """Recordings in the JSON-lines file ``path`` (made when the first one is written).

    Example:
        model = get_model("openai:gpt-4o-mini", recording=Cassette("answers.jsonl"))
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path).expanduser()
        self.label = str(path)
        self._by_key: dict[str, Recording] = {}
        self._seen: tuple[int, int] | None = None  # (mtime_ns, size) of what was read
        self._lock = threading.Lock()  # no await inside: one event loop or many

    def _stat(self) -> tuple[int, int] | None:
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            return None
        return stat.st_mtime_ns, stat.st_size

    def _load(self) -> None:
        """Read the file again if it changed since it was read."""
        seen = self._stat()
        if seen == self._seen:
            return
        by_key: dict[str, Recording] = {}
        if seen is not None:
            text = self.path.read_text(encoding="utf-8")
            for number, line in enumerate(text.splitlines(), 1):
                if not line.strip():
                    continue
                try:
                    recording = Recording.from_line(line)
                except (ValueError, KeyError, TypeError) as exc:
                    raise ValueError(
                        f"{self.path}, line {number}, is not a recording ({exc}); fix or "
                        f"remove that line, or record the cassette again"
                    ) from exc
                by_key[recording.key] = recording
        self._by_key, self._seen = by_key, seen

    def _write(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        lines = [self._by_key[key].to_line() + "\n" for key in sorted(self._by_key)]
        fd, temporary = tempfile.mkstemp(
            prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent
        )
        try:
            with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as file:
                file.writelines(lines)
            os.replace(temporary, self.path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        self._seen = self._stat()

    async def get(self, key: str) -> Recording | None:
        with self._lock:
            self._load()
            return self._by_key.get(key)

    async def put(self, recording: Recording) -> None:
        with self._lock:
            self._load()
            self._by_key[recording.key] = recording
            self._write()

    async def recordings(self) -> list[Recording]:
        with self._lock:
            self._load()
            return [self._by_key[key] for key in sorted(self._by_key)]

    async def clear(self) -> None:
        with self._lock:
            self._by_key = {}
            self._write()
