"""The one exception tree of llmgine.

Every error llmgine raises on purpose is an ``LLMgineError``; catch that to catch them all.

    LLMgineError
    ├── BusError                      the message bus refused or could not do something
    │   ├── BusStoppedError           publish/execute on a bus that was stopped
    │   ├── EventLoopMismatchError    one bus used from two running event loops
    │   ├── HandlerRegistrationError  a second handler for one command type in one scope, ...
    │   ├── NoHandlerError            a command with no handler to run it
    │   ├── CommandFailedError        unwrap() of a failed result whose exception is not at hand
    │   ├── CommandTimeoutError       a command's handler ran past its timeout
    │   ├── CircuitOpenError          a command type's circuit breaker is open: failing fast
    │   ├── BackpressureError         the event queue is full and the strategy is "reject"
    │   ├── SessionClosedError        using a session after its `async with` block ended
    │   └── MessageSerializationError a message could not be turned into or read from JSON
    │       └── UnknownMessageTypeError  JSON names a message type no class is registered for
    └── ObservabilityError            observability is misconfigured or was switched off

Messages say what happened and what to do next.
"""

from __future__ import annotations

__all__ = [
    "BackpressureError",
    "BusError",
    "BusStoppedError",
    "CircuitOpenError",
    "CommandFailedError",
    "CommandTimeoutError",
    "EventLoopMismatchError",
    "HandlerRegistrationError",
    "LLMgineError",
    "MessageSerializationError",
    "NoHandlerError",
    "ObservabilityError",
    "SessionClosedError",
    "UnknownMessageTypeError",
]


class LLMgineError(Exception):
    """Base of every error llmgine raises on purpose."""


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


class CommandFailedError(BusError):
    """A failed command's result was unwrapped where its original exception is not at hand.

    (For example after the result crossed a process boundary as JSON.)
    """


class CommandTimeoutError(BusError):
    """A command's handler did not finish within its timeout."""


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


class MessageSerializationError(BusError):
    """A message could not be serialised to JSON or read back from it."""


class UnknownMessageTypeError(MessageSerializationError):
    """The JSON names a message type that no imported class registered."""


class ObservabilityError(LLMgineError):
    """Observability cannot do what was asked (misconfigured, or disabled meanwhile)."""
