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

Reference
=========

Conversation context
--------------------

```python
from llmgine.context import ConversationContext, open_store

store = open_store("chats.db")        # SQLite by default; "memory:"; or any SQLAlchemy async
ctx = ConversationContext(store, session, budget=8_000)   # URL: "postgresql+asyncpg://..."
await ctx.add(ChatMessage.user("Hi"))
request_messages = await ctx.messages()  # trimmed to the budget for the next call
```

History is kept per session in the unified message contract. **Trimming** by a token budget
(a pluggable counter; the default estimates about 4 characters a token) keeps every system
message and drops the oldest turns first as whole groups, so a tool call never loses its
result. The view starts at a user message whenever the conversation has one to start at
(Anthropic and Gemini reject one that opens with the model's turn): turns that answer a
dropped user message keep it in front of them, so a long tool loop loses its middle
rounds, not its question. If the system messages and the newest turn alone exceed the
budget it raises
`BudgetTooSmallError` (or keeps them, with `overflow="keep_newest"`). `messages()` trims
the view only; `compact()` writes the trim back.

**Stores**: `MemoryContextStore` and `SQLContextStore` (`pip install "llmgine[context]"`,
`[postgres]` for PostgreSQL), one row per message with a schema version table, async
throughout (SQLAlchemy's asyncio engine with aiosqlite or asyncpg). Concurrent writers to
one session never corrupt it: SQLite runs in WAL mode with a busy timeout and takes its
write lock up front; PostgreSQL retries a lost race on the (session, position) key. A
conversation written by one process reads back identically in another (tested with
subprocesses). A corrupted row is a `CorruptMessageError` naming the session, the position
and the SQL that removes it, and other sessions still load; a database of another schema
version is a `SchemaVersionError` saying which it found, and nothing is changed. Every
other database or driver error (a damaged or truncated SQLite file, a file that is not a
database, a locked or read-only one, an unreachable server, tables of another layout) is a
`ContextStoreError` naming the file or URL (never its password), the operation and what to
do next (for a damaged file: restore a backup, or move it aside for a new store), with the
original as `__cause__`. The store
tests run on memory, SQLite files and a real PostgreSQL server when one is reachable
(`LLMGINE_TEST_POSTGRES_URL`, else `postgresql+asyncpg://postgres@127.0.0.1:5432/test`),
and are skipped with the connection error printed when none is.
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
