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
    ├── ObservabilityError            observability is misconfigured or was switched off
    └── LLMError                      a model call could not be made or failed
        ├── LLMConfigurationError     before any call: what to change is on our side
        │   ├── MissingCredentialsError   no API key: names the variable to set
        │   ├── UnknownProviderError      "provider:model" names no registered provider
        │   └── ProviderNotInstalledError the provider's SDK is missing: names the extra
        ├── ProviderError             the provider answered with an error (status first)
        │   ├── AuthenticationError       401: the key is wrong or revoked
        │   ├── PermissionDeniedError     403: the key may not use this model or feature
        │   ├── ModelNotFoundError        404: no such model (or no access to it)
        │   ├── BadRequestError           400/422: the request is invalid
        │   │   ├── ContextTooLongError   the prompt is longer than the model's context
        │   │   └── ContentFilteredError  refused by the provider's content filter
        │   ├── RateLimitedError          429: slow down; ``retry_after`` when the API says
        │   └── ServerUnavailableError    5xx / overloaded: try again later
        ├── LLMTimeoutError           no answer within the timeout
        ├── LLMConnectionError        the provider could not be reached
        └── StructuredOutputError     the answer did not validate against the schema

Messages say what happened and what to do next.
"""

from __future__ import annotations

__all__ = [
    "AuthenticationError",
    "BackpressureError",
    "BadRequestError",
    "BusError",
    "BusStoppedError",
    "CircuitOpenError",
    "CommandFailedError",
    "CommandTimeoutError",
    "ContentFilteredError",
    "ContextTooLongError",
    "EventLoopMismatchError",
    "HandlerRegistrationError",
    "LLMConfigurationError",
    "LLMConnectionError",
    "LLMError",
    "LLMTimeoutError",
    "LLMgineError",
    "MessageSerializationError",
    "MissingCredentialsError",
    "ModelNotFoundError",
    "NoHandlerError",
    "ObservabilityError",
    "PermissionDeniedError",
    "ProviderError",
    "ProviderNotInstalledError",
    "RateLimitedError",
    "ServerUnavailableError",
    "SessionClosedError",
    "StructuredOutputError",
    "UnknownMessageTypeError",
    "UnknownProviderError",
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


class ProviderError(LLMError):
    """The provider answered with an error; subclasses say which, status first."""


class AuthenticationError(ProviderError):
    """401: the API key is missing, wrong or revoked."""


class PermissionDeniedError(ProviderError):
    """403: the key may not use this model or feature."""


class ModelNotFoundError(ProviderError):
    """404: no such model, or the key has no access to it."""


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


class LLMTimeoutError(LLMError):
    """The provider did not answer within the timeout."""

    retryable = True


class LLMConnectionError(LLMError):
    """The provider could not be reached (DNS, refused connection, TLS, ...)."""

    retryable = True


class StructuredOutputError(LLMError):
    """The model's answer did not validate against the requested schema, after re-asking."""
