"""Switching a SQLite file to WAL while another connection holds it: asked again, not failed."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from llmgine._sqlite_wal import use_wal


def mode(path: Path) -> str:
    with sqlite3.connect(path) as conn:
        return str(conn.execute("PRAGMA journal_mode").fetchone()[0])


def test_a_locked_file_is_asked_again_until_the_lock_goes(tmp_path: Path) -> None:
    path = tmp_path / "x.sqlite3"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("CREATE TABLE t (x)")
    holder.execute("BEGIN EXCLUSIVE")  # what another process's WAL switch holds, briefly
    waits: list[float] = []

    def pause(seconds: float) -> None:
        waits.append(seconds)
        if len(waits) == 3:
            holder.execute("COMMIT")  # the other process is done

    switcher = sqlite3.connect(path, timeout=0, isolation_level=None)
    use_wal(switcher, within=30, pause=pause)
    assert mode(path) == "wal"
    assert len(waits) == 3
    assert waits == sorted(waits)  # a growing backoff
    switcher.close()
    holder.close()


def test_a_file_locked_past_the_limit_raises_sqlites_own_error(tmp_path: Path) -> None:
    path = tmp_path / "x.sqlite3"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("CREATE TABLE t (x)")
    holder.execute("BEGIN EXCLUSIVE")
    switcher = sqlite3.connect(path, timeout=0, isolation_level=None)
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        use_wal(switcher, within=0.0, pause=lambda _: None)
    holder.execute("COMMIT")
    assert mode(path) != "wal"
    switcher.close()
    holder.close()


def test_a_file_already_in_wal_is_left_as_is(tmp_path: Path) -> None:
    path = tmp_path / "x.sqlite3"
    first = sqlite3.connect(path, isolation_level=None)
    use_wal(first, within=1, pause=lambda _: pytest.fail("nothing should wait"))
    second = sqlite3.connect(path, isolation_level=None)
    use_wal(second, within=1, pause=lambda _: pytest.fail("nothing should wait"))
    assert mode(path) == "wal"
    first.close()
    second.close()
