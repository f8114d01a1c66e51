"""`SQLContextStore`: histories in a SQLite file (the default) or any SQLAlchemy async
database, such as PostgreSQL, with the same code.

Two tables: ``<prefix>_messages`` holds one row per message (session id, sequence number,
the message's pydantic JSON, creation time) under a unique (session id, seq) key, and
``<prefix>_meta`` holds the schema version, checked before anything is read or written.

Every error of SQLAlchemy or the driver (a damaged file, a lost server, a locked or
read-only database, tables of another layout) is translated in one place, `_errors`, into
a `ContextStoreError` that names the database (never its password), what failed and what
to do next, with the original as ``__cause__``.
"""

from __future__ import annotations

import asyncio
import os
import re
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar, Self

import sqlalchemy as sa
from pydantic import ValidationError
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine
from sqlalchemy.schema import CreateTable

from llmgine._redact import add_credential
from llmgine._sqlite_wal import use_wal
from llmgine.context._store import (
    MAX_SESSION_ID_LENGTH,
    ContextStore,
    SessionRef,
    encode,
    session_key,
)
from llmgine.errors import ContextStoreError, CorruptMessageError, SchemaVersionError
from llmgine.llm import ChatMessage

__all__ = ["SCHEMA_VERSION", "SQLContextStore", "database_url"]

SCHEMA_VERSION = 1
_VERSION_KEY = "schema_version"

# Sync driver names people type, mapped to the async driver this store runs on.
_ASYNC_DRIVERS = {
    "sqlite": "sqlite+aiosqlite",
    "postgresql": "postgresql+asyncpg",
    "postgres": "postgresql+asyncpg",
}
_DRIVER_EXTRAS = {"aiosqlite": "context", "asyncpg": "postgres"}

# Writers that read the same last seq collide on the unique key; the loser retries. Each
# round has a winner, so this bounds pathological contention, not normal use.
_MAX_ATTEMPTS = 100
_SQLITE_BUSY_TIMEOUT_MS = 20_000
_WRITE_OPTION = "llmgine_context_write"
_PREFIX = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,39}")  # + "_messages" fits PostgreSQL's 63


def database_url(target: str | os.PathLike[str]) -> URL:
    """The async SQLAlchemy URL for ``target``: a file path (SQLite) or a database URL.

    ``sqlite://`` and ``postgresql://`` URLs get their async drivers (aiosqlite, asyncpg).

    Raises:
        ContextStoreError: the URL cannot be parsed, names in-memory SQLite, or a SQLite
            file whose directory does not exist.
    """
    text = os.fspath(target)
    if "://" not in text:
        if text in ("", ":memory:"):
            raise ContextStoreError(_IN_MEMORY_SQLITE)
        url = URL.create("sqlite+aiosqlite", database=str(Path(text).expanduser().resolve()))
    else:
        try:
            url = make_url(text)
        except (sa.exc.ArgumentError, ValueError) as exc:  # ValueError: e.g. a bad port
            raise ContextStoreError(
                f"cannot parse the database URL {text!r}: {exc}; write it like "
                f"'sqlite+aiosqlite:///path/to/file.db' or "
                f"'postgresql+asyncpg://user@host:5432/dbname', or pass a file path"
            ) from exc
        url = url.set(drivername=_ASYNC_DRIVERS.get(url.drivername, url.drivername))
    if url.get_backend_name() == "sqlite":
        database = url.database or ""
        if database in ("", ":memory:") or url.query.get("mode") == "memory":
            raise ContextStoreError(_IN_MEMORY_SQLITE)
        if not database.startswith("file:"):
            folder = Path(database).expanduser().parent
            if not folder.is_dir():
                raise ContextStoreError(
                    f"cannot create the SQLite file {database!r}: its directory {str(folder)!r} "
                    f"does not exist; create it first (mkdir -p) or choose another path"
                )
    return url


_IN_MEMORY_SQLITE = (
    "an in-memory SQLite database is one connection that concurrent tasks would share; "
    "use open_store('memory:') (a MemoryContextStore) for history that need not persist, "
    "or a file path for SQLite"
)


class SQLContextStore(ContextStore):
    """Histories in a SQL database: a SQLite file by default, or any SQLAlchemy async URL.

    The tables are created on first use. Opening a database written with another schema
    version raises `SchemaVersionError` and changes nothing. Appends from many tasks and
    processes at once each land whole, in one order: on SQLite every write transaction
    takes the write lock up front (``BEGIN IMMEDIATE``); elsewhere a writer that loses the
    race for the next sequence number rolls back and tries again.

    Args:
        target: a file path (``"chats.db"``) or a URL (``"sqlite+aiosqlite:///chats.db"``,
            ``"postgresql+asyncpg://user@host/db"``; plain ``sqlite://`` and
            ``postgresql://`` get the async drivers).
        table_prefix: the tables are ``<prefix>_messages`` and ``<prefix>_meta``, so
            several applications (or test runs) can share one database.

    Example:
        async with SQLContextStore("chats.db") as store:
            await store.append("chat-1", [ChatMessage.user("hi")])
            print(await store.load("chat-1"))
    """

    schema_version: ClassVar[int] = SCHEMA_VERSION

    def __init__(
        self, target: str | os.PathLike[str], *, table_prefix: str = "llmgine_context"
    ) -> None:
        if not isinstance(table_prefix, str) or not _PREFIX.fullmatch(table_prefix):
            raise ValueError(
                f"table_prefix must be a SQL identifier of letters, digits and '_' (at most "
                f"40, not starting with a digit), got {table_prefix!r}"
            )
        self._url = database_url(target)
        if self._url.password:  # handed over: never in a span, event, log or error
            add_credential(str(self._url.password))
        metadata = sa.MetaData()
        self._messages = sa.Table(
            f"{table_prefix}_messages",
            metadata,
            sa.Column("session_id", sa.String(MAX_SESSION_ID_LENGTH), primary_key=True),
            sa.Column("seq", sa.Integer, primary_key=True, autoincrement=False),
            sa.Column("message", sa.Text, nullable=False),
            sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        )
        self._meta = sa.Table(
            f"{table_prefix}_meta",
            metadata,
            sa.Column("key", sa.String(64), primary_key=True),
            sa.Column("value", sa.Text, nullable=False),
        )
        try:
            # Statement parameters are message contents: keep them out of error text.
            self._engine = create_async_engine(self._url, hide_parameters=True)
        except ImportError as exc:
            driver = self._url.get_driver_name()
            extra = _DRIVER_EXTRAS.get(driver)
            install = f'pip install "llmgine[{extra}]"' if extra else f"pip install {driver}"
            raise ContextStoreError(
                f"the database URL {self.url} needs the {driver!r} driver, which is not "
                f"installed ({exc}): {install}"
            ) from exc
        except sa.exc.ArgumentError as exc:  # also NoSuchModuleError: an unknown dialect
            raise ContextStoreError(
                f"SQLAlchemy cannot open {self.url}: {exc}; use an async driver such as "
                f"sqlite+aiosqlite or postgresql+asyncpg"
            ) from exc
        except sa.exc.InvalidRequestError as exc:  # a sync driver, e.g. postgresql+psycopg2
            raise ContextStoreError(
                f"{self.url} names a driver without asyncio support ({exc}); use an async "
                f"driver such as sqlite+aiosqlite or postgresql+asyncpg"
            ) from exc
        if self._url.get_backend_name() == "sqlite":
            sa.event.listen(self._engine.sync_engine, "connect", _sqlite_connect)
            sa.event.listen(self._engine.sync_engine, "begin", _sqlite_begin)
        self._opening = asyncio.Lock()
        self._ready = False
        self._closed = False

    @property
    def url(self) -> str:
        """The database URL, with any password hidden."""
        return self._url.render_as_string(hide_password=True)

    @property
    def messages_table(self) -> str:
        return self._messages.name

    @property
    def meta_table(self) -> str:
        return self._meta.name

    def __repr__(self) -> str:
        return f"<SQLContextStore {self.url} tables {self._messages.name!r}>"

    async def __aenter__(self) -> Self:
        # Open now, so a wrong schema version or an unreachable server shows here; when it
        # fails, `__aexit__` will not run, so release the engine before raising.
        try:
            await self._open()
        except BaseException:
            await self.aclose()
            raise
        return self

    # -- connections and transactions --------------------------------------------------

    @asynccontextmanager
    async def _transaction(self, *, write: bool) -> AsyncIterator[AsyncConnection]:
        async with self._engine.connect() as conn:
            if write:
                await conn.execution_options(**{_WRITE_OPTION: True})
            async with conn.begin():
                yield conn

    async def _write(self, what: str, work: Callable[[AsyncConnection], Awaitable[Any]]) -> Any:
        await self._open()
        for _ in range(_MAX_ATTEMPTS):
            try:
                async with self._transaction(write=True) as conn:
                    return await work(conn)
            except sa.exc.DBAPIError as exc:
                if not _is_collision(exc):
                    raise
                # Another writer committed the sequence numbers we chose (or the server
                # aborted one of two conflicting transactions): read the new end, go again.
                collision = exc
        raise ContextStoreError(
            f"could not {what} after {_MAX_ATTEMPTS} attempts: other writers kept taking the "
            f"same sequence numbers; retry later or write the session from fewer processes"
        ) from collision

    async def _open(self) -> None:
        if self._closed:
            raise ContextStoreError(
                f"this SQLContextStore ({self.url}) was closed; open a new one with open_store(...)"
            )
        async with self._opening, self._errors("open"):
            # One task prepares the tables; the others wait for it.
            if self._ready:
                return
            for _ in range(_MAX_ATTEMPTS):
                try:
                    async with self._transaction(write=True) as conn:
                        await self._prepare(conn)
                    break
                except sa.exc.IntegrityError as exc:
                    # Two processes created the tables or the version row at once (on
                    # PostgreSQL, CREATE TABLE IF NOT EXISTS can still collide); the other
                    # one won, so the next attempt finds its work done.
                    collision = exc
            else:
                raise ContextStoreError(
                    f"could not create the tables in {self.url}: other processes kept "
                    f"creating them at the same time ({collision})"
                ) from collision
            self._ready = True

    @asynccontextmanager
    async def _errors(self, what: str) -> AsyncIterator[None]:
        """The one boundary where database and driver errors become `ContextStoreError`.

        ``what`` completes "cannot ... the context database": ``"open"``, ``"load session
        'x' from"``. Errors llmgine raised on purpose pass through unchanged.
        """
        try:
            yield
        except (sa.exc.SQLAlchemyError, sqlite3.Error, OSError, TimeoutError) as exc:
            raise ContextStoreError(self._explain(what, exc)) from exc

    def _explain(self, what: str, exc: BaseException) -> str:
        original = exc.orig if isinstance(exc, sa.exc.DBAPIError) and exc.orig else exc
        # SQLAlchemy's own text adds the SQL and a link; the driver's says what happened.
        detail = str(original).split("\n(Background on this error", 1)[0].strip()
        password = self._url.password
        if password:
            detail = detail.replace(str(password), "***")
        sqlite = self._url.get_backend_name() == "sqlite"
        where = repr(self._url.database) if sqlite else self.url
        name = getattr(original, "sqlite_errorname", None)
        if name in ("SQLITE_NOTADB", "SQLITE_CORRUPT") or (
            sqlite and type(original) is sqlite3.DatabaseError
        ):
            advice = (
                "the file is damaged or is not a SQLite database. Nothing was changed; "
                "restore it from a backup, or move it aside (with its -wal and -shm files) "
                "and open the path again for a new, empty store (the sqlite3 shell's "
                "'.recover' may save the old rows)"
            )
        elif isinstance(exc, sa.exc.ProgrammingError) or name == "SQLITE_ERROR":
            # SQL the database refused (no such column, permission denied): not a fault
            # of the file or the connection, but of what is in the database.
            advice = (
                f"check that the database user may create and use the tables "
                f"{self._messages.name} and {self._meta.name}, and that tables of those names "
                f"were made by llmgine (pass table_prefix= to use others)"
            )
        else:
            advice = (
                "check that the file and its directory are writable and no other program "
                "holds it locked, or that the server is running and the URL is right"
                if sqlite
                else "check that the server is running, the URL is right and its user may "
                "use the database"
            )
        kind = type(original).__name__
        return f"cannot {what} the context database {where}: {detail} ({kind}); {advice}"

    async def _prepare(self, conn: AsyncConnection) -> None:
        """Create the tables if missing, and check (or, on a new database, write) the
        schema version. A mismatch raises and the transaction changes nothing."""
        for table in (self._meta, self._messages):
            await conn.execute(CreateTable(table, if_not_exists=True))
        meta = self._meta
        found = await conn.scalar(sa.select(meta.c.value).where(meta.c.key == _VERSION_KEY))
        if found is None:
            if await conn.scalar(sa.select(self._messages.c.seq).limit(1)) is not None:
                raise SchemaVersionError(
                    f"the table {self._messages.name} in {self.url} holds rows, but "
                    f"{meta.name} has no schema version, so this llmgine cannot tell what "
                    f"they are. Nothing was changed. Use another database or table_prefix=; "
                    f"or, if llmgine {SCHEMA_VERSION} wrote them and only the version was "
                    f"lost, restore it: INSERT INTO {meta.name} (key, value) VALUES "
                    f"('{_VERSION_KEY}', '{SCHEMA_VERSION}')",
                    found=None,
                    expected=SCHEMA_VERSION,
                )
            await conn.execute(meta.insert().values(key=_VERSION_KEY, value=str(SCHEMA_VERSION)))
            return
        version = int(found) if found.strip().isdigit() else None
        if version == SCHEMA_VERSION:
            return
        where = f"the context database {self.url} (table {meta.name})"
        if version is not None and version > SCHEMA_VERSION:
            advice = (
                "it was written by a newer llmgine. Nothing was changed; upgrade llmgine "
                "(pip install -U llmgine) to open it, or use another database"
            )
        else:
            advice = (
                "no migration from that version exists. Nothing was changed; open it with "
                "the llmgine release that wrote it and copy its sessions (load() each of "
                "sessions()) into a store on a new database"
            )
        raise SchemaVersionError(
            f"{where} has schema version {found!r}; this llmgine reads version "
            f"{SCHEMA_VERSION}: {advice}",
            found=version,
            expected=SCHEMA_VERSION,
        )

    # -- the ContextStore interface ------------------------------------------------------

    async def append(self, session: SessionRef, messages: Iterable[ChatMessage]) -> None:
        key = session_key(session)
        rows = encode(key, messages)
        await self._open()  # a closed store says so even when there is nothing to write
        if rows:
            async with self._errors(f"append to session {key!r} in"):
                await self._write(
                    f"append to session {key!r}", lambda c: self._append(c, key, rows)
                )

    async def _append(self, conn: AsyncConnection, key: str, rows: list[str]) -> None:
        table = self._messages
        last = await conn.scalar(
            sa.select(sa.func.max(table.c.seq)).where(table.c.session_id == key)
        )
        await self._insert(conn, key, rows, start=0 if last is None else last + 1)

    async def _insert(self, conn: AsyncConnection, key: str, rows: list[str], start: int) -> None:
        if not rows:
            return
        now = datetime.now(UTC)
        values = [
            {"session_id": key, "seq": start + i, "message": row, "created_at": now}
            for i, row in enumerate(rows)
        ]
        await conn.execute(self._messages.insert(), values)

    async def load(self, session: SessionRef) -> list[ChatMessage]:
        key = session_key(session)
        await self._open()
        table = self._messages
        query = (
            sa.select(table.c.seq, table.c.message)
            .where(table.c.session_id == key)
            .order_by(table.c.seq)
        )
        what = f"load session {key!r} from"
        async with self._errors(what), self._transaction(write=False) as conn:
            rows = (await conn.execute(query)).all()
        return [self._decode(key, seq, text, i, len(rows)) for i, (seq, text) in enumerate(rows)]

    def _decode(self, key: str, seq: int, text: str, index: int, total: int) -> ChatMessage:
        try:
            return ChatMessage.model_validate_json(text)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "the JSON"
            quoted = key.replace("'", "''")
            raise CorruptMessageError(
                f"session {key!r}: the stored message at seq {seq} (message {index + 1} of "
                f"{total}) in table {self._messages.name} is not a valid ChatMessage "
                f"({where}: {first['msg']}). Nothing was changed and other sessions are "
                f"unaffected; fix that row's JSON, or remove it with: DELETE FROM "
                f"{self._messages.name} WHERE session_id = '{quoted}' AND seq = {seq}",
                session_id=key,
                position=seq,
            ) from exc

    async def replace(self, session: SessionRef, messages: Iterable[ChatMessage]) -> None:
        key = session_key(session)
        rows = encode(key, messages)

        async def work(conn: AsyncConnection) -> None:
            table = self._messages
            await conn.execute(sa.delete(table).where(table.c.session_id == key))
            await self._insert(conn, key, rows, start=0)

        await self._open()
        async with self._errors(f"replace session {key!r} in"):
            await self._write(f"replace session {key!r}", work)

    async def sessions(self) -> list[str]:
        await self._open()
        column = self._messages.c.session_id
        async with self._errors("list the sessions of"), self._transaction(write=False) as conn:
            result = await conn.scalars(sa.select(column).distinct().order_by(column))
            return list(result)

    async def delete(self, session: SessionRef) -> bool:
        key = session_key(session)

        async def work(conn: AsyncConnection) -> bool:
            table = self._messages
            result = await conn.execute(sa.delete(table).where(table.c.session_id == key))
            return bool(result.rowcount)

        await self._open()
        async with self._errors(f"delete session {key!r} from"):
            deleted: bool = await self._write(f"delete session {key!r}", work)
        return deleted

    async def aclose(self) -> None:
        self._closed = True
        async with self._errors("close"):
            await self._engine.dispose()


# Serialization failure and deadlock: the server rolled the transaction back because of a
# concurrent one; running it again is the documented remedy (PostgreSQL, SERIALIZABLE).
_RETRYABLE_SQLSTATES = frozenset({"40001", "40P01"})


def _is_collision(exc: sa.exc.DBAPIError) -> bool:
    if isinstance(exc, sa.exc.IntegrityError):
        return True  # only the unique (session_id, seq) key can be violated by our writes
    return getattr(exc.orig, "sqlstate", None) in _RETRYABLE_SQLSTATES


def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    # SQLAlchemy, not the sqlite3 module, decides when transactions begin (see below).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    # Wait (up to 20 s) for another connection's or process's write lock instead of failing
    # at once with "database is locked"; the WAL switch has its own retry (use_wal).
    cursor.execute(f"PRAGMA busy_timeout = {_SQLITE_BUSY_TIMEOUT_MS}")
    # Write-ahead logging: readers never block the writer and the writer never blocks
    # readers, so loads go on while another process appends. The mode sticks to the file.
    cursor.close()
    use_wal(dbapi_connection, within=_SQLITE_BUSY_TIMEOUT_MS / 1000)


def _sqlite_begin(conn: sa.Connection) -> None:
    # A write transaction takes the write lock at BEGIN (waiting per busy_timeout). With a
    # deferred BEGIN two writers could both read the last seq and one would then fail to
    # upgrade its lock with SQLITE_BUSY, which in WAL mode skips the busy timeout. Reads
    # stay deferred, so they never wait for writers.
    write = conn.get_execution_options().get(_WRITE_OPTION, False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")
