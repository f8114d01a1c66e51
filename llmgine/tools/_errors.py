"""The errors of `llmgine.tools`, until they move into `llmgine.errors`.

    LLMgineError
    └── ToolError                     a tool could not be defined, found or run
        ├── ToolDefinitionError       a function cannot become a tool (says why and the fix)
        │   └── DuplicateToolError    a second tool under a name a manager already holds
        ├── UnknownToolError          no tool of that name (lists the known ones)
        ├── ToolArgumentsError        the arguments failed validation (``errors`` per field)
        ├── ToolTimeoutError          a tool ran past its timeout
        └── ToolLoopLimitError        the model still called tools after ``max_rounds``

Inside the tool loop these never reach the caller for a single tool: a failed call becomes
a `ToolResultPart` with ``is_error=True`` that tells the model what went wrong.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from llmgine.errors import LLMgineError

if TYPE_CHECKING:
    from llmgine.tools._loop import ToolLoopResult

__all__ = [
    "DuplicateToolError",
    "ToolArgumentsError",
    "ToolDefinitionError",
    "ToolError",
    "ToolLoopLimitError",
    "ToolTimeoutError",
    "UnknownToolError",
]


class ToolError(LLMgineError):
    """A tool could not be defined, found or run."""


class ToolDefinitionError(ToolError):
    """A function (or schema) cannot become a tool; the message says why and what to do."""


class DuplicateToolError(ToolDefinitionError):
    """A tool manager already holds a tool of that name."""


class UnknownToolError(ToolError, LookupError):
    """No tool has that name; the message lists the tools there are."""


class ToolArgumentsError(ToolError, ValueError):
    """The arguments for a tool failed validation.

    ``errors`` lists each problem as ``{"loc": [...], "msg": ..., "type": ...}``, with
    locations in the tool's parameter names, so the model can correct itself.
    """

    def __init__(self, message: str, *, tool: str, errors: list[dict[str, Any]]) -> None:
        super().__init__(message)
        self.tool = tool
        self.errors = errors


class ToolTimeoutError(ToolError, TimeoutError):
    """A tool did not finish within its timeout."""

    def __init__(self, message: str, *, tool: str, timeout: float) -> None:
        super().__init__(message)
        self.tool = tool
        self.timeout = timeout


class ToolLoopLimitError(ToolError):
    """The model was still calling tools after the loop's ``max_rounds`` model calls.

    ``result`` is the loop so far (its conversation is complete and valid: the last
    round's tool calls were run, so the loop can be continued from ``result.messages``).
    """

    def __init__(self, message: str, *, result: ToolLoopResult) -> None:
        super().__init__(message)
        self.result = result
