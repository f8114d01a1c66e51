"""`open_store`: one string picks the store, and SQLAlchemy loads only when it is needed."""

from __future__ import annotations

import os
from types import ModuleType

from llmgine.context._memory import MemoryContextStore
from llmgine.context._store import ContextStore
from llmgine.errors import ContextStoreError

__all__ = ["MEMORY", "load_sql", "open_store"]

MEMORY = "memory:"


def load_sql() -> ModuleType:
    """The SQL store module; SQLAlchemy is an optional dependency (the ``context`` extra)."""
    try:
        from llmgine.context import _sql
    except ImportError as exc:
        raise ContextStoreError(
            f"SQL context stores need SQLAlchemy and aiosqlite ({exc}): pip install "
            f'"llmgine[context]" (add "llmgine[postgres]" for PostgreSQL); or use '
            f'open_store("memory:")'
        ) from exc
    return _sql


def open_store(target: str | os.PathLike[str], *, table_prefix: str | None = None) -> ContextStore:
    """A context store for ``target``; use it with ``async with``.

    ``"memory:"`` is a `MemoryContextStore`; a file path is a SQLite database (created if
    missing); a URL is any SQLAlchemy async database, e.g.
    ``"sqlite+aiosqlite:///chats.db"`` or ``"postgresql+asyncpg://user@host:5432/db"``.

    Args:
        target: ``"memory:"``, a path, or a database URL.
        table_prefix: for SQL stores, the tables' name prefix (see `SQLContextStore`).

    Raises:
        ContextStoreError: the URL is malformed, its driver is not installed, or a SQLite
            file's directory does not exist.

    Example:
        async with open_store("chats.db") as store:
            await store.append("chat-1", [ChatMessage.user("hi")])
    """
    if os.fspath(target) == MEMORY:
        if table_prefix is not None:
            raise ValueError("table_prefix= is for SQL stores; a memory store has no tables")
        return MemoryContextStore()
    store_class = load_sql().SQLContextStore
    store: ContextStore
    if table_prefix is None:
        store = store_class(target)
    else:
        store = store_class(target, table_prefix=table_prefix)
    return store
