"""SQL stores: other processes, concurrent writers, damaged rows, schema versions, URLs."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
import sqlalchemy as sa

import llmgine.context
from llmgine.context import (
    ContextStore,
    ContextStoreError,
    CorruptMessageError,
    SchemaVersionError,
    SQLContextStore,
    open_store,
)
from llmgine.context._sql import database_url
from llmgine.llm import ChatMessage, Conversation
from tests.context.conftest import Backend
from tests.context.samples import check_numbered, every_part_kind, numbered_turn

ROOT = Path(__file__).resolve().parents[2]


async def _spawn(backend: Backend, *args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.context.worker",
        args[0],
        backend.target,
        backend.table_prefix or "-",
        *args[1:],
        cwd=ROOT,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def _finish(process: asyncio.subprocess.Process) -> str:
    out, err = await process.communicate()
    assert process.returncode == 0, err.decode()
    return out.decode()


async def test_another_process_reads_back_exactly_what_was_written(sql_backend: Backend) -> None:
    # A process writes; this one reads equal models. Then this one writes; a new process
    # reads that back equal too.
    await _finish(await _spawn(sql_backend, "write", "theirs"))
    async with sql_backend.open() as store:
        assert await store.load("theirs") == every_part_kind()
        await store.append("ours", every_part_kind())
    out = await _finish(await _spawn(sql_backend, "read", "ours"))
    assert Conversation.from_json(out).messages == every_part_kind()


async def test_concurrent_processes_and_tasks_append_whole_turns_once(
    sql_backend: Backend,
) -> None:
    # Two processes open a new database at the same moment (racing to create the
    # tables) and append to one session, while tasks in this process append too.
    turns = 12
    writers = {f"p{i}": turns for i in range(2)} | {"t0": turns, "t1": turns}
    processes = [
        await _spawn(sql_backend, "append", "shared", name, str(turns))
        for name in writers
        if name.startswith("p")
    ]
    for process in processes:
        assert process.stdout is not None
        assert await process.stdout.readline() == b"ready\n"
    for process in processes:
        assert process.stdin is not None
        process.stdin.write(b"go\n")
        await process.stdin.drain()
    async with sql_backend.open() as store:

        async def task_writer(name: str) -> None:
            for index in range(turns):
                await store.append("shared", numbered_turn(name, index))

        await asyncio.gather(task_writer("t0"), task_writer("t1"))
        for process in processes:
            await _finish(process)
        check_numbered(await store.load("shared"), writers)


async def test_a_corrupted_row_names_session_and_position_and_others_still_load(
    sql_backend: Backend,
) -> None:
    messages_table, _ = sql_backend.tables
    async with sql_backend.open() as store:
        first = [ChatMessage.user("zero"), ChatMessage.assistant("one"), ChatMessage.user("two")]
        await store.append("damaged", first)
        await store.append("healthy", [ChatMessage.user("fine")])
    await sql_backend.execute(
        f'UPDATE {messages_table} SET message = \'{{"role": "user", "parts": [\' '
        f"WHERE session_id = 'damaged' AND seq = 1"
    )
    async with sql_backend.open() as store:
        with pytest.raises(CorruptMessageError) as caught:
            await store.load("damaged")
        error = caught.value
        assert (error.session_id, error.position) == ("damaged", 1)
        assert "session 'damaged'" in str(error)
        assert "seq 1 (message 2 of 3)" in str(error)
        assert await store.load("healthy") == [ChatMessage.user("fine")]
        assert await store.sessions() == ["damaged", "healthy"]
        # The message carries the statement that removes the row; it works as given.
        fix = str(error).split("remove it with: ")[1]
        await sql_backend.execute(fix)
        assert await store.load("damaged") == [first[0], first[2]]
        await store.append("damaged", [ChatMessage.user("three")])
        assert [m.text for m in await store.load("damaged")] == ["zero", "two", "three"]


async def test_valid_json_of_the_wrong_shape_is_a_corrupt_row_too(sql_backend: Backend) -> None:
    messages_table, _ = sql_backend.tables
    async with sql_backend.open() as store:
        await store.append("o'brien", [ChatMessage.user("hi")])
    await sql_backend.execute(
        f'UPDATE {messages_table} SET message = \'{{"role": "wizard", "parts": []}}\''
    )
    async with sql_backend.open() as store:
        with pytest.raises(CorruptMessageError, match=r"role: Input should be") as caught:
            await store.load("o'brien")
        assert "WHERE session_id = 'o''brien' AND seq = 0" in str(caught.value)


@pytest.mark.parametrize(
    ("stored", "found", "advice"),
    [("0", 0, "no migration"), ("7", 7, "newer llmgine"), ("one", None, "no migration")],
)
async def test_another_schema_version_is_refused_and_nothing_changes(
    sql_backend: Backend, stored: str, found: int | None, advice: str
) -> None:
    _, meta_table = sql_backend.tables
    async with sql_backend.open() as store:
        await store.append("kept", every_part_kind())
    await sql_backend.execute(f"UPDATE {meta_table} SET value = '{stored}'")
    with pytest.raises(SchemaVersionError, match=advice) as caught:
        async with sql_backend.open():
            pass
    assert (caught.value.found, caught.value.expected) == (found, SQLContextStore.schema_version)
    assert f"schema version {stored!r}; this llmgine reads version 1" in str(caught.value)
    # Nothing was lost: with the version restored, the history is all there.
    await sql_backend.execute(f"UPDATE {meta_table} SET value = '1'")
    async with sql_backend.open() as store:
        assert await store.load("kept") == every_part_kind()


async def test_rows_without_a_schema_version_are_refused_with_the_fix(sql_backend: Backend) -> None:
    _, meta_table = sql_backend.tables
    async with sql_backend.open() as store:
        await store.append("kept", [ChatMessage.user("hi")])
    await sql_backend.execute(f"DELETE FROM {meta_table}")
    store = sql_backend.open()
    with pytest.raises(SchemaVersionError, match="has no schema version") as caught:
        await store.load("kept")  # the check also runs on first use, without `async with`
    await store.aclose()
    assert caught.value.found is None
    fix = str(caught.value).split("restore it: ")[1]
    await sql_backend.execute(fix)
    async with sql_backend.open() as store:
        assert await store.load("kept") == [ChatMessage.user("hi")]


async def test_write_collisions_are_retried_then_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Collisions on the unique (session, seq) key only happen on servers such as
    # PostgreSQL, and only under a race; force them to check both outcomes.
    collision = sa.exc.IntegrityError("INSERT", {}, Exception("duplicate key"))
    async with SQLContextStore(tmp_path / "c.db") as store:
        attempts: list[int] = []

        async def flaky(conn: object) -> str:
            attempts.append(1)
            if len(attempts) < 3:
                raise collision
            return "done"

        assert await store._write("test", flaky) == "done"
        assert len(attempts) == 3

        class Deadlock(Exception):
            sqlstate = "40P01"

        aborted = sa.exc.OperationalError("UPDATE", {}, Deadlock("deadlock detected"))
        outcomes: list[Exception | None] = [aborted, None]

        async def aborted_once(conn: object) -> None:
            outcome = outcomes.pop(0)
            if outcome is not None:
                raise outcome

        await store._write("test", aborted_once)
        assert outcomes == []

        async def broken(conn: object) -> None:
            raise sa.exc.OperationalError("SELECT", {}, Exception("disk I/O error"))

        with pytest.raises(sa.exc.OperationalError, match="disk I/O error"):
            await store._write("test", broken)  # not a collision: not retried, not hidden

        async def always(conn: object) -> None:
            raise collision

        monkeypatch.setattr("llmgine.context._sql._MAX_ATTEMPTS", 4)
        with pytest.raises(ContextStoreError, match=r"after 4 attempts.*fewer processes"):
            await store._write("append to session 's'", always)


async def test_a_table_creation_race_that_never_settles_is_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def always_collides(conn: object) -> None:
        raise sa.exc.IntegrityError("CREATE TABLE", {}, Exception("duplicate key"))

    store = SQLContextStore(tmp_path / "race.db")
    monkeypatch.setattr(store, "_prepare", always_collides)
    monkeypatch.setattr("llmgine.context._sql._MAX_ATTEMPTS", 2)
    with pytest.raises(ContextStoreError, match="could not create the tables"):
        async with store:
            pass


def test_targets_become_async_urls(tmp_path: Path) -> None:
    assert database_url(tmp_path / "a.db").render_as_string() == (
        f"sqlite+aiosqlite:///{tmp_path / 'a.db'}"
    )
    assert database_url("sqlite:///rel.db").drivername == "sqlite+aiosqlite"
    assert database_url("postgresql://u@h/db").drivername == "postgresql+asyncpg"
    assert database_url("postgres://u@h/db").drivername == "postgresql+asyncpg"
    assert database_url("postgresql+asyncpg://u@h/db").drivername == "postgresql+asyncpg"
    # SQLite URI filenames are SQLite's business; no directory check applies to them.
    uri = "sqlite+aiosqlite:///file:chats.db?mode=rwc&uri=true"
    assert database_url(uri).database == "file:chats.db"


async def test_sqlite_runs_in_wal_mode_with_a_busy_timeout(tmp_path: Path) -> None:
    async with SQLContextStore(tmp_path / "w.db") as store:
        await store.append("s", [ChatMessage.user("hi")])
        async with store._engine.connect() as conn:
            assert await conn.scalar(sa.text("PRAGMA journal_mode")) == "wal"
            assert await conn.scalar(sa.text("PRAGMA busy_timeout")) == 20_000


@pytest.mark.parametrize(
    ("target", "message"),
    [
        (":memory:", r"open_store\('memory:'\)"),
        ("sqlite+aiosqlite://", r"open_store\('memory:'\)"),
        ("sqlite+aiosqlite:///:memory:", r"open_store\('memory:'\)"),
        ("sqlite+aiosqlite:///file:x?mode=memory&uri=true", r"open_store\('memory:'\)"),
        ("://nothing", "cannot parse the database URL"),
        ("postgresql+asyncpg://u@h:port/db", "cannot parse the database URL"),
        ("nosuchdb://u@h/db", "use an async driver"),
        ("sqlite+pysqlite:///x.db", "without asyncio support"),
        ("postgresql+nosuchdriver://u@h/db", "use an async driver"),
        ("mysql+aiomysql://u@h/db", "'aiomysql' driver, which is not installed.*pip install"),
    ],
)
def test_bad_targets_say_what_to_do(target: str, message: str) -> None:
    with pytest.raises(ContextStoreError, match=message):
        SQLContextStore(target)


def test_a_missing_directory_is_an_error_not_a_surprise(tmp_path: Path) -> None:
    with pytest.raises(ContextStoreError, match=r"directory .* does not exist; create it"):
        open_store(str(tmp_path / "missing" / "chats.db"))


def test_table_prefix_must_be_an_identifier(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="table_prefix must be a SQL identifier"):
        SQLContextStore(tmp_path / "x.db", table_prefix="bad; DROP TABLE x")
    with pytest.raises(ValueError, match="a memory store has no tables"):
        open_store("memory:", table_prefix="x")


async def test_open_store_picks_the_store_and_its_tables(tmp_path: Path) -> None:
    async with open_store(tmp_path / "a.db", table_prefix="app") as store:
        assert isinstance(store, SQLContextStore)
        assert (store.messages_table, store.meta_table) == ("app_messages", "app_meta")
        assert store.url == f"sqlite+aiosqlite:///{tmp_path / 'a.db'}"
        assert repr(store) == f"<SQLContextStore {store.url} tables 'app_messages'>"
    secret = SQLContextStore("postgresql+asyncpg://user:hunter2@127.0.0.1/db")
    assert "hunter2" not in secret.url + repr(secret)
    await secret.aclose()


async def test_an_unreachable_server_is_a_clear_error() -> None:
    store = open_store("postgresql+asyncpg://postgres@127.0.0.1:1/none")
    with pytest.raises(ContextStoreError, match=r"cannot open the context database.*running"):
        async with store:
            pass
    await store.aclose()


def test_without_sqlalchemy_sql_stores_name_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "sqlalchemy", None)  # an import of it now fails
    monkeypatch.delitem(sys.modules, "llmgine.context._sql")
    monkeypatch.delattr(llmgine.context, "_sql")
    with pytest.raises(ContextStoreError, match=r'pip install "llmgine\[context\]"'):
        open_store("chats.db")
    with pytest.raises(ContextStoreError, match="need SQLAlchemy"):
        _ = llmgine.context.SQLContextStore
    assert isinstance(open_store("memory:"), llmgine.context.MemoryContextStore)
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        _ = llmgine.context.nothing


# -- damaged databases and driver errors: one translation, naming the file and the fix --


def _check_translated(error: ContextStoreError, path: Path) -> None:
    message = str(error)
    assert repr(str(path)) in message, message
    assert "damaged or is not a SQLite database" in message
    assert "restore it from a backup, or move it aside" in message
    assert isinstance(error.__cause__, sa.exc.DatabaseError)
    assert not isinstance(error, sa.exc.SQLAlchemyError)


# Each operation on session "s1", and how its error begins once the store is open.
_OPERATIONS: dict[str, tuple[Callable[[ContextStore], Awaitable[object]], str]] = {
    "load": (lambda store: store.load("s1"), "cannot load session 's1' from"),
    "sessions": (lambda store: store.sessions(), "cannot list the sessions of"),
    "append": (
        lambda store: store.append("s1", [ChatMessage.user("more")]),
        "cannot append to session 's1' in",
    ),
    "replace": (
        lambda store: store.replace("s1", [ChatMessage.user("new")]),
        "cannot replace session 's1' in",
    ),
    "delete": (lambda store: store.delete("s1"), "cannot delete session 's1' from"),
}


async def test_a_file_of_garbage_is_a_context_store_error_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "garbage.db"
    path.write_bytes(bytes(range(256)) * 16)
    store = open_store(path)
    with pytest.raises(ContextStoreError) as caught:
        async with store:
            pass
    _check_translated(caught.value, path)
    assert str(caught.value).startswith(f"cannot open the context database '{path}'")
    for call, _ in _OPERATIONS.values():  # without `async with` too
        store = open_store(path)
        with pytest.raises(ContextStoreError, match=r"cannot open.*damaged"):
            await call(store)
        await store.aclose()


async def test_a_truncated_file_is_a_context_store_error_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "truncated.db"
    async with open_store(path) as store:
        for i in range(60):
            await store.append(f"s{i % 3}", [ChatMessage.user(f"{i} " + "words " * 300)])
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])
    with pytest.raises(ContextStoreError) as caught:
        async with open_store(path) as store:
            await store.load("s1")
    _check_translated(caught.value, path)


# Listing sessions reads only the key index, whose few pages this damage leaves intact.
@pytest.mark.parametrize("operation", [op for op in _OPERATIONS if op != "sessions"])
async def test_damaged_pages_fail_each_operation_with_a_context_store_error(
    tmp_path: Path, operation: str
) -> None:
    # The schema and the tables' first pages survive, the rows' pages do not: the store
    # opens, then the read or write itself meets the damage.
    path = tmp_path / "damaged.db"
    async with open_store(path) as store:
        for i in range(60):
            await store.append(f"s{i % 3}", [ChatMessage.user(f"{i} " + "words " * 300)])
    data = bytearray(path.read_bytes())
    page = int.from_bytes(data[16:18], "big")
    data[8 * page :] = bytes(range(256)) * ((len(data) - 8 * page) // 256)
    path.write_bytes(bytes(data))
    call, what = _OPERATIONS[operation]
    async with open_store(path) as store:
        with pytest.raises(ContextStoreError) as caught:
            await call(store)
    _check_translated(caught.value, path)
    assert str(caught.value).startswith(f"{what} the context database '{path}'")


async def test_tables_of_another_layout_are_a_context_store_error(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    backend = Backend("sqlite", str(path))
    await backend.execute("CREATE TABLE llmgine_context_meta (key TEXT PRIMARY KEY)")
    with pytest.raises(ContextStoreError) as caught:
        async with open_store(path):
            pass
    message = str(caught.value)
    assert f"cannot open the context database '{path}'" in message
    assert "no such column" in message
    assert "tables llmgine_context_messages and llmgine_context_meta" in message
    assert "table_prefix=" in message
    assert isinstance(caught.value.__cause__, sa.exc.SQLAlchemyError)


async def test_a_server_error_names_the_database_without_its_password() -> None:
    store = open_store("postgresql+asyncpg://app:hunter2-pass@127.0.0.1:1/none")
    with pytest.raises(ContextStoreError) as caught:
        await store.sessions()
    message = str(caught.value)
    assert "hunter2-pass" not in message
    assert "postgresql+asyncpg://app:***@127.0.0.1:1/none" in message
    assert "check that the server is running" in message
    await store.aclose()
