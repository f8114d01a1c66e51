"""Conversation history per session: stores (memory, SQLite, PostgreSQL) and trimming.

A `ContextStore` keeps one list of `llmgine.llm.ChatMessage` per session id; pick one with
`open_store` ("memory:", a SQLite file path, or any SQLAlchemy async URL). Trimming to a
token budget keeps every system message and drops the oldest turns whole, so a tool call
never loses its result.

Example:
    from llmgine.context import ConversationContext, open_store
    from llmgine.llm import ChatMessage

    async with open_store("chats.db") as store:
        ctx = ConversationContext(store, "chat-1", budget=8_000)
        await ctx.add(ChatMessage.system("Be brief."), ChatMessage.user("Hi!"))
        request_messages = await ctx.messages()
"""

from typing import TYPE_CHECKING, Any

from llmgine.context import _open
from llmgine.context._context import ConversationContext
from llmgine.context._memory import MemoryContextStore
from llmgine.context._open import open_store
from llmgine.context._store import ContextStore, SessionRef
from llmgine.context._tokens import TokenCounter, estimate_tokens
from llmgine.context._trim import Overflow, trim_to_budget
from llmgine.errors import (
    BudgetTooSmallError,
    ContextError,
    ContextStoreError,
    CorruptMessageError,
    SchemaVersionError,
    UnknownSessionError,
)

if TYPE_CHECKING:
    from llmgine.context._sql import SQLContextStore

__all__ = [
    "BudgetTooSmallError",
    "ContextError",
    "ContextStore",
    "ContextStoreError",
    "ConversationContext",
    "CorruptMessageError",
    "MemoryContextStore",
    "Overflow",
    "SQLContextStore",
    "SchemaVersionError",
    "SessionRef",
    "TokenCounter",
    "UnknownSessionError",
    "estimate_tokens",
    "open_store",
    "trim_to_budget",
]


def __getattr__(name: str) -> Any:
    # SQLAlchemy is an optional dependency: import it only when a SQL store is asked for.
    if name == "SQLContextStore":
        return _open.load_sql().SQLContextStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
