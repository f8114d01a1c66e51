"""The one exception tree of llmgine.

Every error llmgine raises on purpose is an ``LLMgineError``; catch that to catch them all.

    LLMgineError
    ├── MissingExtraError             an optional package is not installed: names the extra
    ├── BusError                      the message bus refused or could not do something
    │   ├── BusStoppedError           publish/execute on a bus that was stopped
    │   ├── EventLoopMismatchError    one bus used from two running event loops
    │   ├── HandlerRegistrationError  a second handler for one command type in one scope, ...
    │   ├── NoHandlerError            a command with no handler to run it
    │   │   └── NoWorkerError         no worker process serves it: says what to start
    │   ├── CommandFailedError        unwrap() of a failed result whose exception is not at hand
    │   ├── CommandTimeoutError       a command's handler ran past its timeout
    │   ├── RemoteCommandError        a command's handler in another process failed: its error
    │   ├── HandlerCancelledError     a handler raised CancelledError though nothing cancelled it
    │   ├── CircuitOpenError          a command type's circuit breaker is open: failing fast
    │   ├── BackpressureError         the event queue is full and the strategy is "reject"
    │   ├── SessionClosedError        using a session after its `async with` block ended
    │   ├── TransportError            a transport's engine (a NATS server) cannot be used
    │   ├── WorkerError               a worker process did not start or stop: its log's tail
    │   └── MessageSerializationError a message could not be turned into or read from JSON
    │       └── UnknownMessageTypeError  JSON names a message type no class is registered for
    ├── ObservabilityError            observability is misconfigured or was switched off
    │   └── SpanWaitTimeoutError      spans waited for did not all arrive: what did
    ├── ToolError                     a tool could not be defined, found or run
    │   ├── ToolDefinitionError       a function cannot become a tool (says why and the fix)
    │   │   └── DuplicateToolError    a second tool under a name a manager already holds
    │   ├── UnknownToolError          no tool of that name (lists the known ones)
    │   ├── ToolArgumentsError        the arguments failed validation (``errors`` per field)
    │   ├── ToolTimeoutError          a tool ran past its timeout
    │   ├── ToolLoopLimitError        the model still called tools after ``max_rounds``
    │   └── McpError                  an MCP server could not be used
    │       ├── McpNotInstalledError  the ``mcp`` SDK (2.x) is missing: names the extra
    │       ├── McpConnectionError    no connection, or it was lost: what to check
    │       └── McpToolError          the server's tool answered isError: its text
    ├── ContextError                  conversation history could not be kept or trimmed
    │   ├── UnknownSessionError       a strict lookup of a session with no messages
    │   ├── BudgetTooSmallError       the system instructions and the newest turn exceed it
    │   └── ContextStoreError         a store cannot be opened or used
    │       ├── CorruptMessageError   a stored row is not a valid ChatMessage
    │       └── SchemaVersionError    the database was written by another schema version
    ├── WorkbenchError                a notebook magic could not do what it was asked
    │   ├── MagicUsageError           arguments the magic cannot use: says what works
    │   └── CellFailedError           the cell's model call failed (the original on ``error``)
    ├── ScorerError                   a sweep's scorer failed on a row: names it (``scorer``)
    └── LLMError                      a model call could not be made or failed
        ├── LLMConfigurationError     before any call: what to change is on our side
        │   ├── MissingCredentialsError   no API key: names the variable to set
        │   ├── UnknownProviderError      "provider:model" names no registered provider
        │   ├── ProviderNotInstalledError the provider's SDK is missing: names the extra
        │   ├── InvalidRequestError       a request field or override is invalid: names it
        │   └── LocalModelError           a local model's file is missing or damaged: the fix
        ├── ProviderError             the provider answered with an error (status first)
        │   ├── AuthenticationError       401: the key is wrong or revoked
        │   ├── PermissionDeniedError     403: the key may not use this model or feature
        │   ├── ModelNotFoundError        404: no such model (or no access to it)
        │   ├── EndpointNotFoundError     404 from no API at all: base_url is wrong
        │   ├── BadRequestError           400/422: the request is invalid
        │   │   ├── ContextTooLongError   the prompt is longer than the model's context
        │   │   └── ContentFilteredError  refused by the provider's content filter
        │   ├── RateLimitedError          429: slow down; ``retry_after`` when the API says
        │   ├── ServerUnavailableError    5xx / overloaded: try again later
        │   ├── MalformedResponseError    an answer that is not the API's: a redacted snippet
        │   └── IncompleteResponseError   a stream cut before its end marker: ``partial``
        ├── LLMTimeoutError           no answer within the timeout
        ├── RecordingMissError        replay mode: no recording of this request (nearest, diff)
        ├── LLMConnectionError        the provider could not be reached
        │   └── LocalServerError          the local model's server did not start, or stopped
        └── StructuredOutputError     the answer did not validate against the schema

Messages say what happened and what to do next.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from llmgine.llm._response import LLMResponse
    from llmgine.tools._loop import ToolLoopResult

__all__ = [
    "AuthenticationError",
    "BackpressureError",
    "BadRequestError",
    "BudgetTooSmallError",
    "BusError",
    "BusStoppedError",
    "CellFailedError",
    "CircuitOpenError",
    "CommandFailedError",
    "CommandTimeoutError",
    "ContentFilteredError",
    "ContextError",
    "ContextStoreError",
    "ContextTooLongError",
    "CorruptMessageError",
    "DuplicateToolError",
    "EndpointNotFoundError",
    "EventLoopMismatchError",
    "HandlerCancelledError",
    "HandlerRegistrationError",
    "IncompleteResponseError",
    "InvalidRequestError",
    "LLMConfigurationError",
    "LLMConnectionError",
    "LLMError",
    "LLMTimeoutError",
    "LLMgineError",
    "LocalModelError",
    "LocalServerError",
    "MagicUsageError",
    "MalformedResponseError",
    "McpConnectionError",
    "McpError",
    "McpNotInstalledError",
    "McpToolError",
    "MessageSerializationError",
    "MissingCredentialsError",
    "MissingExtraError",
    "ModelNotFoundError",
    "NoHandlerError",
    "NoWorkerError",
    "ObservabilityError",
    "PermissionDeniedError",
    "ProviderError",
    "ProviderNotInstalledError",
    "RateLimitedError",
    "RecordingMissError",
    "RemoteCommandError",
    "SchemaVersionError",
    "ScorerError",
    "ServerUnavailableError",
    "SessionClosedError",
    "SpanWaitTimeoutError",
    "StructuredOutputError",
    "ToolArgumentsError",
    "ToolDefinitionError",
    "ToolError",
    "ToolLoopLimitError",
    "ToolTimeoutError",
    "TransportError",
    "UnknownMessageTypeError",
    "UnknownProviderError",
    "UnknownSessionError",
    "UnknownToolError",
    "WorkbenchError",
    "WorkerError",
]


class LLMgineError(Exception):
    """Base of every error llmgine raises on purpose."""


class MissingExtraError(LLMgineError, ImportError):
    """A feature needs an optional package that is not installed; the message names the
    extra that installs it (``pip install "llmgine[observability]"``). Also an
    ``ImportError``, so code guarding an optional import still catches it."""

    def __init__(self, message: str, *, extra: str, module: str) -> None:
        super().__init__(message)
        self.extra = extra
        self.module = module
        self.name = module  # ImportError's own field for the missing module


class BusError(LLMgineError):
    """The message bus refused a request or could not carry it out."""


class BusStoppedError(BusError):
    """The bus was stopped; start it again (``await bus.start()``) or use a new bus."""


class EventLoopMismatchError(BusError):
    """The bus is bound to a different, still running event loop."""


class HandlerRegistrationError(BusError):
    """A handler could not be registered (e.g. a second handler for one command type)."""


class NoHandlerError(BusError):
    """A command was executed but no handler is registered for its type."""


class NoWorkerError(NoHandlerError):
    """A command meant for a worker process found none serving it on the bus's transport
    (as a distributed `llmgine.sweep.Sweep`'s model calls do); the message says what to
    start."""


class CommandFailedError(BusError):
    """A failed command's result was unwrapped where its original exception is not at hand.

    (For example after the result crossed a process boundary as JSON.)
    """


class CommandTimeoutError(BusError):
    """A command's handler did not finish within its timeout.

    ``retryable``: a worker that died or hangs mid-command never answers, and asked again,
    another worker (or the same, recovered) answers.
    """

    retryable = True


class RemoteCommandError(BusError):
    """A command's handler ran in another process (over NATS) and failed there.

    ``remote_type`` is the qualified name of the exception it raised there, and
    ``remote_message`` / ``remote_traceback`` what it said (redacted); the caller's
    `CommandResult.error` carries the same.
    """

    def __init__(
        self, message: str, *, remote_type: str, remote_message: str, remote_traceback: str = ""
    ) -> None:
        super().__init__(message)
        self.remote_type = remote_type
        self.remote_message = remote_message
        self.remote_traceback = remote_traceback


class HandlerCancelledError(BusError):
    """A handler, filter, middleware or observer raised `asyncio.CancelledError` on its own.

    Nothing had cancelled the bus or its caller (the ``CancelledError`` is ``__cause__``),
    so it is reported as that code's failure instead of stopping the bus's worker.
    """


class CircuitOpenError(BusError):
    """The circuit breaker for a command type is open, so the command failed fast."""

    def __init__(self, message: str, *, command_type: str, retry_after: float) -> None:
        super().__init__(message)
        self.command_type = command_type
        self.retry_after = retry_after


class BackpressureError(BusError):
    """The event queue is full and its strategy is ``reject``."""


class SessionClosedError(BusError):
    """The session's ``async with`` block has ended; open a new session."""


class TransportError(BusError):
    """A transport's engine cannot be used: a NATS server that will not start, cannot be
    reached, or an unknown ``LLMGINE_BUS_URL`` scheme. The message says what to check."""


class WorkerError(BusError):
    """An `llmgine worker` process started from Python (`WorkerProcess`) exited before it
    was ready, was not ready in time, or did not stop when asked; the message ends with
    the tail of its log."""


class MessageSerializationError(BusError):
    """A message could not be serialised to JSON or read back from it."""


class UnknownMessageTypeError(MessageSerializationError):
    """The JSON names a message type that no imported class registered."""


class ObservabilityError(LLMgineError):
    """Observability cannot do what was asked (misconfigured, or disabled meanwhile)."""


class SpanWaitTimeoutError(ObservabilityError, TimeoutError):
    """`Observability.wait_for_spans` timed out: fewer spans than ``wanted`` matched.

    ``seen`` holds the finished spans that did match (a `SpanRecord` each), ``timeout``
    the seconds waited; the message names them and what to check.
    """

    def __init__(self, message: str, *, wanted: int, seen: list[Any], timeout: float) -> None:
        super().__init__(message)
        self.wanted = wanted
        self.seen = seen
        self.timeout = timeout


class LLMError(LLMgineError):
    """A model call could not be made, or the provider answered with an error.

    ``provider`` and ``model`` say where; ``retryable`` whether trying again may help.
    """

    retryable = False

    def __init__(
        self,
        message: str,
        *,
        provider: str | None = None,
        model: str | None = None,
        status_code: int | None = None,
        retry_after: float | None = None,
        body: object = None,
    ) -> None:
        super().__init__(message)
        self.provider = provider
        self.model = model
        self.status_code = status_code
        self.retry_after = retry_after
        self.body = body


class LLMConfigurationError(LLMError):
    """Something on our side must change before a call can be made."""


class MissingCredentialsError(LLMConfigurationError):
    """No API key was passed and the conventional environment variable is not set."""


class UnknownProviderError(LLMConfigurationError):
    """A model string names a provider that is not registered."""


class ProviderNotInstalledError(LLMConfigurationError):
    """The provider's SDK is not installed; the message names the extra to install."""


class InvalidRequestError(LLMConfigurationError, ValueError):
    """A request field, a call's override of one or a model's default failed validation.

    ``errors`` lists each wrong field as ``{"loc": [...], "msg": ..., "type": ...}``; the
    message names them and what is wrong. A ``ValueError`` too, as pydantic's own
    validation error is.
    """

    def __init__(
        self,
        message: str,
        *,
        errors: list[dict[str, Any]],
        provider: str | None = None,
        model: str | None = None,
    ) -> None:
        super().__init__(message, provider=provider, model=model)
        self.errors = errors


class ProviderError(LLMError):
    """The provider answered with an error; subclasses say which, status first."""


class AuthenticationError(ProviderError):
    """401: the API key is missing, wrong or revoked."""


class PermissionDeniedError(ProviderError):
    """403: the key may not use this model or feature."""


class ModelNotFoundError(ProviderError):
    """404: no such model, or the key has no access to it."""


class EndpointNotFoundError(ProviderError):
    """404 that names no model: nothing answers at that path, so ``base_url`` is wrong."""


class BadRequestError(ProviderError):
    """400/422: the provider rejected the request as invalid."""


class ContextTooLongError(BadRequestError):
    """The prompt (with the requested output) exceeds the model's context window."""


class ContentFilteredError(BadRequestError):
    """The provider's content filter refused the request or the answer."""


class RateLimitedError(ProviderError):
    """429: too many requests or tokens; ``retry_after`` is the wait the API asked for."""

    retryable = True


class ServerUnavailableError(ProviderError):
    """5xx or "overloaded": the provider cannot serve the request now."""

    retryable = True


class MalformedResponseError(ProviderError):
    """The answer could not be read: not JSON, or not shaped as the API documents.

    ``snippet`` is the start of what arrived, with secrets redacted.
    """

    def __init__(self, message: str, *, snippet: str = "", **where: Any) -> None:
        super().__init__(message, **where)
        self.snippet = snippet


class IncompleteResponseError(ProviderError):
    """A stream ended without the API's end marker: the answer may be cut short.

    ``partial`` is the response assembled from what did arrive (never a whole answer).
    Retryable: the same request usually completes when sent again.
    """

    retryable = True

    def __init__(self, message: str, *, partial: LLMResponse | None = None, **where: Any) -> None:
        super().__init__(message, **where)
        self.partial = partial


class LLMTimeoutError(LLMError):
    """The provider did not answer within the timeout."""

    retryable = True


class LLMConnectionError(LLMError):
    """The provider could not be reached (DNS, refused connection, TLS, ...)."""

    retryable = True


class RecordingMissError(LLMError):
    """Replay mode found no recording of the request (`llmgine.recording`): no model was
    called. ``key`` is the request's key, ``store`` the store's label, ``nearest`` the
    nearest recorded request (canonical JSON data, or None when the store is empty) and
    ``differences`` each field where it differs, as the message lists them."""

    def __init__(
        self,
        message: str,
        *,
        key: str,
        store: str,
        nearest: dict[str, Any] | None = None,
        differences: list[str] | None = None,
        **where: Any,
    ) -> None:
        super().__init__(message, **where)
        self.key = key
        self.store = store
        self.nearest = nearest
        self.differences = differences or []


class LocalModelError(LLMConfigurationError):
    """A local model cannot be served: its file is missing, unreadable or not a GGUF, or
    the name is unknown. ``path`` is the file, when there is one."""

    def __init__(self, message: str, *, path: str | None = None) -> None:
        super().__init__(message, provider="local")
        self.path = path


class LocalServerError(LLMConnectionError):
    """The local model's server could not start (the port is taken, the model failed to
    load) or stopped while answering. Only the second is ``retryable``: the next call
    starts a new server, while a start that failed would fail again. ``log`` is the end
    of the server's log, when it said why."""

    def __init__(
        self, message: str, *, model: str | None = None, log: str = "", retryable: bool = True
    ) -> None:
        super().__init__(message, provider="local", model=model)
        self.log = log
        self.retryable = retryable


class StructuredOutputError(LLMError):
    """The model's answer did not validate against the requested schema, after re-asking."""


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
    """A tool did not finish within its timeout.

    ``may_still_run`` is True when the run could not be stopped (a sync tool's thread, a
    remote server's work): it may finish later, and its effects may still happen.
    """

    def __init__(
        self, message: str, *, tool: str, timeout: float, may_still_run: bool = False
    ) -> None:
        super().__init__(message)
        self.tool = tool
        self.timeout = timeout
        self.may_still_run = may_still_run


class ToolLoopLimitError(ToolError):
    """The model was still calling tools after the loop's ``max_rounds`` model calls.

    ``result`` is the loop so far (its conversation is complete and valid: the last
    round's tool calls were run, so the loop can be continued from ``result.messages``).
    """

    def __init__(self, message: str, *, result: ToolLoopResult) -> None:
        super().__init__(message)
        self.result = result


class McpError(ToolError):
    """An MCP server could not be used; ``server`` names it."""

    def __init__(self, message: str, *, server: str | None = None) -> None:
        super().__init__(message)
        self.server = server


class McpNotInstalledError(McpError, ImportError):
    """The ``mcp`` SDK (2.x) is not installed; the message names the extra to install."""


class McpConnectionError(McpError):
    """The MCP server could not be reached or started, or the connection was lost."""


class McpToolError(McpError):
    """An MCP tool failed: the server answered ``isError`` (or a protocol error).

    The message is the server's own text, so the model reads what the server said;
    ``server`` and ``tool`` say where it came from.
    """

    def __init__(self, message: str, *, server: str | None = None, tool: str) -> None:
        super().__init__(message, server=server)
        self.tool = tool


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


class WorkbenchError(LLMgineError):
    """A magic could not do what it was asked; IPython shows the message, no traceback."""

    def render(self) -> str:
        return f"{type(self).__name__}: {self}"

    def _render_traceback_(self) -> list[str]:
        return self.render().splitlines()


class MagicUsageError(WorkbenchError):
    """The magic was given arguments it cannot use; the message says what works."""


class CellFailedError(WorkbenchError):
    """The cell's model call failed; ``error`` is the original exception (also the
    ``__cause__``), the message its short, redacted description."""

    def __init__(self, message: str, error: BaseException) -> None:
        super().__init__(message)
        self.error = error

    def render(self) -> str:
        return str(self)


class ScorerError(LLMgineError):
    """A sweep's scorer could not score a row: a user's scoring function raised (the
    original is ``__cause__``) or returned something that is not a score, or the row lacks
    a column the scorer reads. ``scorer`` names it. A sweep records it as that row's score
    error (the score is empty) and goes on: one bad row does not stop the sweep."""

    def __init__(self, message: str, *, scorer: str) -> None:
        super().__init__(message)
        self.scorer = scorer
