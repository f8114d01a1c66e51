"""`SQLiteCache`: recordings in one SQLite file, the default store.

The standard library's ``sqlite3``. Safe for several processes at once: the database is
in WAL mode (readers never wait for a writer) and a writer waits up to ``busy_timeout``
seconds for another one; a recording is one row, written in one statement (``INSERT OR
REPLACE``), so a reader sees it whole or not at all.

Writes, scans and anything that may wait run in a worker thread (``asyncio.to_thread``),
so the event loop never waits on a lock or the disk. The lookup of a hit is different: a
primary-key read that, in WAL mode, never waits, so it runs on the loop itself, on a
connection of its own whose busy timeout is 0; in the rare case it would wait (SQLite
says "busy", or another thread is using that connection) it is done in a worker thread
instead. A thread hop costs 0.1-0.3 ms on a busy two-core machine, more than the rest of
a hit; the inline read costs about 20 µs.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import threading
from pathlib import Path

from llmgine._sqlite_wal import use_wal
from llmgine.recording._store import FORMAT_VERSION, Recording, RecordingStore

__all__ = ["CACHE_FILE", "SQLiteCache", "default_cache_path"]

CACHE_FILE = "cache.sqlite3"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS recordings (
    key TEXT PRIMARY KEY,
    model TEXT NOT NULL,
    body TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


def default_cache_path() -> Path:
    """``$XDG_CACHE_HOME/llmgine/cache.sqlite3``, else ``~/.cache/llmgine/cache.sqlite3``."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "llmgine" / CACHE_FILE


class SQLiteCache(RecordingStore):
    """Recordings in a SQLite file: ``path``, by default the user's cache directory
    (`default_cache_path`). The folder is made when first used.

    Example:
        model = get_model("openai:gpt-4o-mini", recording=SQLiteCache())
    """

    def __init__(self, path: str | os.PathLike[str] | None = None, *, busy_timeout: float = 30.0):
        self.path = Path(path).expanduser() if path is not None else default_cache_path()
        self.label = str(self.path)
        self.busy_timeout = busy_timeout
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        self._read_lock = threading.Lock()
        self._reader: sqlite3.Connection | None = None

    def _connect(self) -> sqlite3.Connection:
        # Called with the lock held, in a worker thread.
        if self._conn is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(
                self.path,
                timeout=self.busy_timeout,
                isolation_level=None,  # autocommit: each statement is its own transaction
                check_same_thread=False,  # used from worker threads, one at a time (the lock)
            )
            try:
                use_wal(conn, within=self.busy_timeout)
                conn.executescript(_SCHEMA)
                conn.execute(
                    "INSERT OR IGNORE INTO meta (name, value) VALUES ('format', ?)",
                    (str(FORMAT_VERSION),),
                )
            except sqlite3.Error:
                conn.close()
                raise
            self._conn = conn
        return self._conn

    def _get_now(self, key: str) -> str | bool | None:
        """The body under ``key`` (None: there is none) read without waiting, or False
        when that would wait (another thread has the connection, or SQLite is busy)."""
        if not self._read_lock.acquire(blocking=False):
            return False
        try:
            if self._reader is None:
                if self._conn is None:
                    return False  # the worker thread opens the file first (and may wait)
                reader = sqlite3.connect(
                    self.path, timeout=0, isolation_level=None, check_same_thread=False
                )
                self._reader = reader
            row = self._reader.execute(
                "SELECT body FROM recordings WHERE key = ?", (key,)
            ).fetchone()
        except sqlite3.OperationalError:
            return False  # busy, or not made yet: ask again in a worker thread
        finally:
            self._read_lock.release()
        return None if row is None else str(row[0])

    def _get(self, key: str) -> str | None:
        with self._lock:
            row = (
                self._connect()
                .execute("SELECT body FROM recordings WHERE key = ?", (key,))
                .fetchone()
            )
        return None if row is None else str(row[0])

    def _put(self, key: str, model: str, body: str) -> None:
        with self._lock:
            self._connect().execute(
                "INSERT OR REPLACE INTO recordings (key, model, body) VALUES (?, ?, ?)",
                (key, model, body),
            )

    def _all(self) -> list[str]:
        with self._lock:
            rows = self._connect().execute("SELECT body FROM recordings ORDER BY key").fetchall()
        return [str(row[0]) for row in rows]

    def _clear(self) -> None:
        with self._lock:
            self._connect().execute("DELETE FROM recordings")

    def _count(self) -> int:
        with self._lock:
            row = self._connect().execute("SELECT COUNT(*) FROM recordings").fetchone()
        return int(row[0])

    async def get(self, key: str) -> Recording | None:
        body = self._get_now(key)
        if body is False:
            body = await asyncio.to_thread(self._get, key)
        return None if not isinstance(body, str) else Recording.from_line(body)

    async def put(self, recording: Recording) -> None:
        await asyncio.to_thread(self._put, recording.key, recording.model, recording.to_line())

    async def recordings(self) -> list[Recording]:
        return [Recording.from_line(body) for body in await asyncio.to_thread(self._all)]

    async def clear(self) -> None:
        await asyncio.to_thread(self._clear)

    async def count(self) -> int:
        return await asyncio.to_thread(self._count)

    def close(self) -> None:
        """Close the connection (it opens again when next used)."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
        with self._read_lock:
            if self._reader is not None:
                self._reader.close()
                self._reader = None
