"""Backends for the store tests: memory, a SQLite file, and PostgreSQL when one answers.

PostgreSQL: the URL in LLMGINE_TEST_POSTGRES_URL, else the local server with trust auth
(user postgres, then root). Each test gets its own table prefix and drops its tables, so
test runs can share one server.
"""

from __future__ import annotations

import asyncio
import os
import threading
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from llmgine.context import ContextStore, open_store
from llmgine.context._sql import database_url

POSTGRES_VARIABLE = "LLMGINE_TEST_POSTGRES_URL"
LOCAL_POSTGRES = [
    "postgresql+asyncpg://postgres@127.0.0.1:5432/test",
    "postgresql+asyncpg://root@127.0.0.1:5432/test",
]


@dataclass(frozen=True)
class Backend:
    """Where a test's stores live; `open()` gives a new store on the same data."""

    name: str
    target: str
    table_prefix: str | None = None

    @property
    def persistent(self) -> bool:
        return self.name != "memory"

    def open(self) -> ContextStore:
        return open_store(self.target, table_prefix=self.table_prefix)

    @property
    def tables(self) -> tuple[str, str]:
        prefix = self.table_prefix or "llmgine_context"
        return f"{prefix}_messages", f"{prefix}_meta"

    async def execute(self, *statements: str) -> list[list[tuple[object, ...]]]:
        """Run raw SQL on the backend's database, as an operator (or a bug) would."""
        engine = create_async_engine(database_url(self.target))
        try:
            async with engine.begin() as conn:
                results = []
                for statement in statements:
                    result = await conn.execute(sa.text(statement))
                    results.append([tuple(row) for row in result] if result.returns_rows else [])
                return results
        finally:
            await engine.dispose()


async def _probe(url: str) -> None:
    engine = create_async_engine(url, connect_args={"timeout": 5})
    try:
        async with engine.connect() as conn:
            await conn.execute(sa.text("SELECT 1"))
    finally:
        await engine.dispose()


def _probe_in_thread(url: str) -> str | None:
    """Why ``url`` cannot be reached, or None. A thread of its own keeps the probe's event
    loop apart from the test's (the probe runs once, from whichever test needs it first)."""
    outcome: list[str | None] = []

    def run() -> None:
        try:
            asyncio.run(_probe(url))
        except Exception as exc:  # any failure means "not reachable": report which
            outcome.append(f"{type(exc).__name__}: {exc}")
        else:
            outcome.append(None)

    thread = threading.Thread(target=run, name="postgres-probe")
    thread.start()
    thread.join()
    return outcome[0]


_postgres: tuple[str | None, str] | None = None


def postgres_url() -> str:
    """A reachable PostgreSQL URL, or skip the test saying why there is none."""
    global _postgres
    if _postgres is None:
        configured = os.environ.get(POSTGRES_VARIABLE)
        candidates = [configured] if configured else LOCAL_POSTGRES
        errors = []
        for url in candidates:
            error = _probe_in_thread(url)
            if error is None:
                _postgres = (url, "")
                break
            errors.append(f"{url}: {error}")
        else:
            _postgres = (None, "; ".join(errors))
    found, reason = _postgres
    if found is None:
        pytest.skip(f"no PostgreSQL at {reason}; set {POSTGRES_VARIABLE}")
    return found


def _backend_for(name: str, tmp_path: Path) -> Backend:
    if name == "memory":
        return Backend("memory", "memory:")
    if name == "sqlite":
        return Backend("sqlite", str(tmp_path / "context.db"))
    return Backend("postgres", postgres_url(), f"llmgine_t{uuid.uuid4().hex[:12]}")


async def _cleanup(backend: Backend) -> None:
    if backend.name == "postgres":
        messages, meta = backend.tables
        await backend.execute(f"DROP TABLE IF EXISTS {messages}", f"DROP TABLE IF EXISTS {meta}")


@pytest.fixture(params=["memory", "sqlite", "postgres"])
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    chosen = _backend_for(request.param, tmp_path)
    yield chosen
    await _cleanup(chosen)


@pytest.fixture(params=["sqlite", "postgres"])
async def sql_backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    chosen = _backend_for(request.param, tmp_path)
    yield chosen
    await _cleanup(chosen)


@pytest.fixture
async def store(backend: Backend) -> AsyncIterator[ContextStore]:
    async with backend.open() as opened:
        yield opened
