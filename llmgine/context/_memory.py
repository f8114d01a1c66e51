"""`MemoryContextStore`: the in-process fake every test and notebook can use."""

from __future__ import annotations

from collections.abc import Iterable

from llmgine.context._store import ContextStore, SessionRef, encode, session_key
from llmgine.errors import ContextStoreError
from llmgine.llm import ChatMessage

__all__ = ["MemoryContextStore"]


class MemoryContextStore(ContextStore):
    """Histories in a dict, gone when the process ends.

    Messages are kept as the same JSON the SQL stores write, so what works here works
    there: content that cannot be stored fails on `append`, and `load` returns fresh
    copies that later changes to the caller's objects do not affect.

    Example:
        async with MemoryContextStore() as store:
            await store.append("chat", [ChatMessage.user("hi")])
    """

    def __init__(self) -> None:
        self._rows: dict[str, list[str]] = {}
        self._closed = False

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"{len(self._rows)} sessions"
        return f"<MemoryContextStore {state}>"

    def _check_open(self) -> None:
        if self._closed:
            raise ContextStoreError(
                "this MemoryContextStore was closed (and its histories dropped); create a new one"
            )

    # Each method runs without awaiting in between, so concurrent tasks on one event loop
    # see every append whole and in one order; no lock is needed.

    async def append(self, session: SessionRef, messages: Iterable[ChatMessage]) -> None:
        self._check_open()
        key = session_key(session)
        rows = encode(key, messages)
        if rows:
            self._rows.setdefault(key, []).extend(rows)

    async def load(self, session: SessionRef) -> list[ChatMessage]:
        self._check_open()
        rows = self._rows.get(session_key(session), [])
        return [ChatMessage.model_validate_json(row) for row in rows]

    async def replace(self, session: SessionRef, messages: Iterable[ChatMessage]) -> None:
        self._check_open()
        key = session_key(session)
        rows = encode(key, messages)
        if rows:
            self._rows[key] = rows
        else:
            self._rows.pop(key, None)

    async def sessions(self) -> list[str]:
        self._check_open()
        return sorted(self._rows)

    async def delete(self, session: SessionRef) -> bool:
        self._check_open()
        return self._rows.pop(session_key(session), None) is not None

    async def aclose(self) -> None:
        self._closed = True
        self._rows.clear()
