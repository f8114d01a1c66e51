"""Bus events of tool executions and of the tool loop's rounds.

Each tool execution publishes `ToolCallStarted`, then `ToolCallFailed` if it failed, then
`ToolCallFinished` (every execution, ok or not: the one to count and time). A sync tool's
thread that outlived its timeout (or a cancelled call) publishes `ToolCallLateFinished`
when it finally ends: Python cannot stop a thread, so its effects happened after all. The loop
publishes `ToolLoopRoundStarted` / `ToolLoopRoundFinished` around each model call and its
tool calls, and `ToolLoopFinished` at the end. Every event carries the session id of the
session the manager or loop runs for, when there is one. ``loop_id`` ties a loop's events
together; ``round`` is the 0-based round a tool call belongs to (None outside a loop).
"""

from __future__ import annotations

from typing import Literal

from llmgine.bus import ErrorInfo, Event
from llmgine.llm import FinishReason, Usage

__all__ = [
    "StopReason",
    "ToolCallFailed",
    "ToolCallFinished",
    "ToolCallLateFinished",
    "ToolCallStarted",
    "ToolErrorKind",
    "ToolLoopFinished",
    "ToolLoopRoundFinished",
    "ToolLoopRoundStarted",
]

# Why a call failed: the model named no such tool, sent arguments that are not a JSON
# object or fail validation, the tool ran out of time, raised, or returned a value that is
# not JSON-able.
ToolErrorKind = Literal["unknown_tool", "invalid_arguments", "timeout", "exception", "bad_result"]

# Why a loop ended: the model answered without tool calls, an `ends_loop` tool succeeded,
# or the round limit was reached (`ToolLoopLimitError`).
StopReason = Literal["answered", "final_tool", "max_rounds"]


class ToolCallStarted(Event):
    """A tool began to run (it had a concurrency slot)."""

    call_id: str
    tool_name: str
    round: int | None = None
    loop_id: str | None = None


class ToolCallFailed(Event):
    """A tool call failed; the model was sent ``message`` as an error result."""

    call_id: str
    tool_name: str
    error_kind: ToolErrorKind
    error_type: str  # the exception's class, e.g. "ValueError", "ToolTimeoutError"
    message: str
    error: ErrorInfo | None = None
    round: int | None = None
    loop_id: str | None = None


class ToolCallFinished(Event):
    """A tool call ended, ok or not (``error_type`` None when ok)."""

    call_id: str
    tool_name: str
    duration_ms: float
    ok: bool
    error_type: str | None = None
    round: int | None = None
    loop_id: str | None = None


class ToolCallLateFinished(Event):
    """A sync tool's thread ended after its call was given up (``reason``: it timed out,
    or the call was cancelled): ``ok`` if the function returned (its result was not
    used), else ``error_type``/``error`` say what it raised. ``duration_ms`` counts from
    the call's start."""

    call_id: str
    tool_name: str
    reason: Literal["timeout", "cancelled"]
    ok: bool
    duration_ms: float
    error_type: str | None = None
    error: ErrorInfo | None = None
    round: int | None = None
    loop_id: str | None = None


class ToolLoopRoundStarted(Event):
    """The loop asks the model again (round 0 is the first call)."""

    loop_id: str
    round: int
    provider: str
    model: str


class ToolLoopRoundFinished(Event):
    """A round ended: the model answered with ``tool_calls`` calls, which have run."""

    loop_id: str
    round: int
    tool_calls: int
    failed_tool_calls: int
    finish_reason: FinishReason


class ToolLoopFinished(Event):
    """The loop ended after ``rounds`` model calls, for ``stop_reason``."""

    loop_id: str
    rounds: int
    stop_reason: StopReason
    usage: Usage
