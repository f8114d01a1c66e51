"""The errors of `llmgine.context`, until they move into `llmgine.errors`.

LLMgineError
└── ContextError                  conversation history could not be kept or trimmed
    ├── UnknownSessionError       a strict lookup of a session with no messages
    ├── BudgetTooSmallError       the system instructions and the newest turn exceed it
    └── ContextStoreError         a store cannot be opened or used
        ├── CorruptMessageError   a stored row is not a valid ChatMessage
        └── SchemaVersionError    the database was written by another schema version
"""

from __future__ import annotations

from llmgine.errors import LLMgineError

__all__ = [
    "BudgetTooSmallError",
    "ContextError",
    "ContextStoreError",
    "CorruptMessageError",
    "SchemaVersionError",
    "UnknownSessionError",
]


class ContextError(LLMgineError):
    """Conversation history could not be stored, read or trimmed as asked."""


class UnknownSessionError(ContextError, KeyError):
    """A strict lookup (`ContextStore.get`) found no messages for the session.

    Also a ``KeyError``, so code that treats a store like a mapping can catch that.
    """

    def __init__(self, message: str, *, session_id: str) -> None:
        super().__init__(message)
        self.session_id = session_id

    def __str__(self) -> str:
        # KeyError quotes its argument (repr); this message is prose, so show it as is.
        return str(self.args[0])


class BudgetTooSmallError(ContextError):
    """Even the system instructions plus the newest turn need more tokens than the budget."""

    def __init__(self, message: str, *, budget: int, needed: int) -> None:
        super().__init__(message)
        self.budget = budget
        self.needed = needed


class ContextStoreError(ContextError):
    """A context store cannot be opened or used (bad URL, closed, too much contention)."""


class CorruptMessageError(ContextStoreError):
    """A stored row does not hold a valid `ChatMessage`; the message names the session, the
    row's position and the SQL that removes it. Other sessions are unaffected."""

    def __init__(self, message: str, *, session_id: str, position: int) -> None:
        super().__init__(message)
        self.session_id = session_id
        self.position = position


class SchemaVersionError(ContextStoreError):
    """The database holds a schema version this llmgine does not read; nothing was changed."""

    def __init__(self, message: str, *, found: int | None, expected: int) -> None:
        super().__init__(message)
        self.found = found
        self.expected = expected
