"""`SQLiteCache`: recordings in one SQLite file, the default store.

The standard library's ``sqlite3``. Safe for several processes at once: the database is
in WAL mode (readers never wait for a writer) and a writer waits up to ``busy_timeout``
seconds for another one; a recording is one row, written in a transaction (``INSERT OR
REPLACE``), so a reader sees it whole or not at all.

Scans and anything that may wait run in a worker thread (``asyncio.to_thread``), so the
event loop never waits on a lock or the disk. Writes are committed in groups by a writer
thread of the cache's own: ``put`` queues its recording and returns once a transaction
holding it has committed, so a sweep of many concurrent calls pays one thread hand-over
and one commit (one sync of the log to disk) for the puts that queued meanwhile, instead
of one each (a sweep's 20,000 answers took a fifth of its time to store one by one). The
writer lingers a moment when the queue is empty, so a steady trickle of puts does not
start a thread for each; it is a daemon thread, and nothing is lost when the process ends
under it: a put has returned only once its transaction committed.

The lookup of a hit is different: a primary-key read that, in WAL mode, never waits, so
it runs on the loop itself, on a connection of its own whose busy timeout is 0; in the
rare case it would wait (SQLite says "busy", or another thread is using that connection)
it is done in a worker thread instead. A thread hop costs 0.1-0.3 ms on a busy two-core
machine, more than the rest of a hit; the inline read costs about 20 µs.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import queue
import sqlite3
import threading
from pathlib import Path

from llmgine._sqlite_wal import use_wal
from llmgine.recording._store import FORMAT_VERSION, Recording, RecordingStore

__all__ = ["CACHE_FILE", "SQLiteCache", "default_cache_path"]

CACHE_FILE = "cache.sqlite3"
_BODY = "SELECT body FROM recordings WHERE key = ?"
_EXISTS = "SELECT 1 FROM recordings WHERE key = ?"
_WRITER_LINGERS = 1.0  # seconds the writer thread waits for more puts before it ends
_Queued = tuple[str, str, str, asyncio.AbstractEventLoop, "asyncio.Future[None]"]

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
        self._queued: queue.SimpleQueue[_Queued] = queue.SimpleQueue()
        self._writer_lock = threading.Lock()
        self._writer: threading.Thread | None = None

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

    def _get_now(self, key: str, query: str = _BODY) -> str | bool | None:
        """The first column ``query`` reads under ``key`` (None: there is no such row)
        read without waiting, or False when that would wait (another thread has the
        connection, or SQLite is busy)."""
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
            row = self._reader.execute(query, (key,)).fetchone()
        except sqlite3.OperationalError:
            return False  # busy, or not made yet: ask again in a worker thread
        finally:
            self._read_lock.release()
        return None if row is None else str(row[0])

    def _get(self, key: str, query: str = _BODY) -> str | None:
        with self._lock:
            row = self._connect().execute(query, (key,)).fetchone()
        return None if row is None else str(row[0])

    def _put_many(self, rows: list[tuple[str, str, str]]) -> None:
        """Write ``rows`` (key, model, body) in one transaction, in order (a later row
        with the same key wins, as separate puts would)."""
        with self._lock:
            conn = self._connect()
            conn.execute("BEGIN IMMEDIATE")  # take the write lock now: no upgrade deadlock
            try:
                conn.executemany(
                    "INSERT OR REPLACE INTO recordings (key, model, body) VALUES (?, ?, ?)", rows
                )
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def _write_queued(self) -> None:
        """The writer thread: commit what is queued, as one transaction, until nothing
        has been queued for a moment."""
        while True:
            try:
                batch = [self._queued.get(timeout=_WRITER_LINGERS)]
            except queue.Empty:
                with self._writer_lock:
                    if self._queued.empty():  # else a put came in just now: go on
                        self._writer = None
                        return
                continue
            while True:
                try:
                    batch.append(self._queued.get_nowait())
                except queue.Empty:
                    break
            error: BaseException | None = None
            try:
                self._put_many([(key, model, body) for key, model, body, _, _ in batch])
            except BaseException as exc:  # each put waiting on this batch raises it
                error = exc
            waiting: dict[asyncio.AbstractEventLoop, list[asyncio.Future[None]]] = {}
            for *_, loop, done in batch:
                waiting.setdefault(loop, []).append(done)
            for loop, futures in waiting.items():
                with contextlib.suppress(RuntimeError):  # that loop has closed: no one waits
                    loop.call_soon_threadsafe(_settle, futures, error)

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

    async def contains(self, key: str) -> bool:
        found = self._get_now(key, _EXISTS)  # the row's existence, not its JSON
        if found is False:
            found = await asyncio.to_thread(self._get, key, _EXISTS)
        return found is not None

    async def put(self, recording: Recording) -> None:
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        self._queued.put((recording.key, recording.model, recording.to_line(), loop, done))
        with self._writer_lock:
            if self._writer is None:
                self._writer = threading.Thread(
                    target=self._write_queued, name="llmgine-sqlite-writer", daemon=True
                )
                self._writer.start()
        await done

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


def _settle(futures: list[asyncio.Future[None]], error: BaseException | None) -> None:
    """On the loop of ``futures``: the batch holding their puts has committed (or failed
    with ``error``); a put cancelled meanwhile has no one to tell."""
    for done in futures:
        if done.done():
            continue
        if error is None:
            done.set_result(None)
        else:
            done.set_exception(error)
