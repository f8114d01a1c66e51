"""Switch a SQLite file to write-ahead logging, safely when several processes open it at once.

Changing the journal mode needs the file to itself for a moment. When two processes open a
new file at the same instant, SQLite may answer one of them "database is locked" at once,
without calling the busy handler (it would otherwise risk a deadlock), so the connection's
``timeout`` does not cover this one statement. We ask again, with a short backoff, until
the same time limit the caller gave its connection.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from typing import Any

_FIRST_PAUSE = 0.005
_LONGEST_PAUSE = 0.1


def use_wal(connection: Any, *, within: float, pause: Callable[[float], None] = time.sleep) -> None:
    """Put the file of ``connection`` (a sqlite3 DB-API connection) in WAL mode.

    The mode sticks to the file, so a file already in WAL mode is left as is and nothing
    waits. Raises the last ``sqlite3.OperationalError`` if the file stays locked ``within``
    seconds.
    """
    cursor = connection.cursor()
    try:
        deadline = time.monotonic() + within
        wait = _FIRST_PAUSE
        while True:
            try:
                # Not chained: a DB-API cursor's execute() need not return the cursor.
                cursor.execute("PRAGMA journal_mode")
                row = cursor.fetchone()
                if row is not None and str(row[0]).lower() == "wal":
                    return
                cursor.execute("PRAGMA journal_mode = WAL")
                cursor.fetchall()
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) and "busy" not in str(exc):
                    raise
                if time.monotonic() + wait > deadline:
                    raise
            # A backoff between attempts at a lock another process holds, not a wait for a
            # result: the other process's switch takes milliseconds.
            pause(wait)
            wait = min(wait * 2, _LONGEST_PAUSE)
    finally:
        cursor.close()
