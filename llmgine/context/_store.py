"""The `ContextStore` interface every store implements, and what they share."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable
from types import TracebackType
from typing import Self

from pydantic_core import PydanticSerializationError

from llmgine.bus import Session
from llmgine.errors import ContextStoreError, UnknownSessionError
from llmgine.llm import ChatMessage

__all__ = ["MAX_SESSION_ID_LENGTH", "ContextStore", "SessionRef", "encode", "session_key"]

SessionRef = str | Session
"""A session id, or a bus `Session` (its ``.id`` is used)."""

MAX_SESSION_ID_LENGTH = 255  # what a portable indexed VARCHAR column holds


def session_key(session: SessionRef) -> str:
    """The session id of ``session``: the string itself, or a bus `Session`'s ``.id``."""
    key = session.id if isinstance(session, Session) else session
    if not isinstance(key, str):
        raise TypeError(
            f"a session is a session id (str) or a llmgine.bus.Session, "
            f"not {type(session).__name__}"
        )
    if not key or len(key) > MAX_SESSION_ID_LENGTH:
        raise ValueError(
            f"a session id must be 1 to {MAX_SESSION_ID_LENGTH} characters, got {len(key)}"
        )
    return key


def encode(session_id: str, messages: Iterable[ChatMessage]) -> list[str]:
    """The messages as JSON text, checked before anything is written: all or nothing."""
    encoded: list[str] = []
    for index, message in enumerate(messages):
        if not isinstance(message, ChatMessage):
            raise TypeError(
                f"context stores hold llmgine.llm.ChatMessage objects; item {index} for "
                f"session {session_id!r} is a {type(message).__name__} (wrap text with "
                f"ChatMessage.user(...), a model answer with response.message)"
            )
        try:
            encoded.append(message.model_dump_json())
        except PydanticSerializationError as exc:
            raise ContextStoreError(
                f"message {index} for session {session_id!r} cannot be stored as JSON: "
                f"{exc}; tool results must hold JSON-able content (str, numbers, lists, "
                f"dicts)"
            ) from exc
    return encoded


class ContextStore(ABC):
    """Conversation histories, one list of `ChatMessage` per session id.

    A session exists while it holds at least one message. Every method takes a session id
    or a bus `Session`. Stores are async context managers; ``aclose()`` releases them.

    Example:
        async with open_store("chats.db") as store:
            await store.append("chat-1", [ChatMessage.user("hi")])
            history = await store.load("chat-1")
    """

    @abstractmethod
    async def append(self, session: SessionRef, messages: Iterable[ChatMessage]) -> None:
        """Add ``messages`` after the session's last one, all or none, kept together even
        when other writers append to the same session at the same time."""

    @abstractmethod
    async def load(self, session: SessionRef) -> list[ChatMessage]:
        """The session's messages, oldest first; ``[]`` for a session with none.

        Raises:
            CorruptMessageError: a stored message cannot be read (SQL stores).
        """

    async def get(self, session: SessionRef) -> list[ChatMessage]:
        """Like `load`, but a session with no messages is an error.

        Raises:
            UnknownSessionError: the store holds no messages for the session.
        """
        messages = await self.load(session)
        if not messages:
            key = session_key(session)
            raise UnknownSessionError(
                f"no conversation is stored for session {key!r}; check the id against "
                f"`await store.sessions()`, or use `load()`, which returns [] for new sessions",
                session_id=key,
            )
        return messages

    @abstractmethod
    async def replace(self, session: SessionRef, messages: Iterable[ChatMessage]) -> None:
        """Make ``messages`` the session's whole history, atomically (used to persist a
        trimmed history). The last writer wins over appends made at the same time."""

    @abstractmethod
    async def sessions(self) -> list[str]:
        """The ids of the sessions holding messages, sorted."""

    @abstractmethod
    async def delete(self, session: SessionRef) -> bool:
        """Remove the session's messages; whether there were any."""

    @abstractmethod
    async def aclose(self) -> None:
        """Release connections. Using the store afterwards is an error; closing twice is not."""

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
