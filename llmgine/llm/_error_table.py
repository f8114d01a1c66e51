"""The one table that turns a provider's failure into an `llmgine.errors` error.

Every adapter describes what went wrong in neutral terms, a `Failure`: the HTTP status
(None for an error event inside a stream), the error codes the body carried (OpenAI's
``code`` and ``type``, Anthropic's ``type``, Gemini's ``status`` and detail reasons, a
local server's own words), the message, the headers. `error_for` reads it against one table,
the same for every provider, so a 408 is a retried timeout and a context-too-long 400 a
`ContextTooLongError` whoever sent it. The hint names what was actually used: the
variable the key came from, the address that was called.

Order of reading: body codes that say more than a status (a bad key sent as 400, a context
overflow, a content filter, an exhausted quota) come first; then the status; an error with
no status (mid-stream) falls back to its codes.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any, Literal

from llmgine._redact import redact_text
from llmgine.errors import (
    AuthenticationError,
    BadRequestError,
    ContentFilteredError,
    ContextTooLongError,
    EndpointNotFoundError,
    IncompleteResponseError,
    LLMConnectionError,
    LLMError,
    LLMTimeoutError,
    MalformedResponseError,
    ModelNotFoundError,
    PermissionDeniedError,
    ProviderError,
    RateLimitedError,
    ServerUnavailableError,
)

__all__ = ["Caller", "Failure", "ProviderFailed", "error_for", "retry_after_seconds"]

FailureKind = Literal["answer", "timeout", "connection", "malformed", "incomplete"]


@dataclass(frozen=True, slots=True)
class Caller:
    """Who made the failed call, for the message and its hint."""

    provider: str  # the registered name ("openai", "llamacpp", ...)
    label: str  # how people call it ("OpenAI", "Anthropic", "llamacpp")
    model: str
    base_url: str | None = None
    key_source: str | None = None  # "OPENAI_API_KEY", "api_key=", or None: no key was sent
    key_variables: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Failure:
    """A provider's failure in neutral terms (what every SDK error carries).

    ``kind``: ``answer`` (the provider answered with an error), ``timeout`` and
    ``connection`` (no answer), ``malformed`` (an answer that could not be read:
    ``snippet`` is the start of it), ``incomplete`` (a stream cut short: ``partial``).
    """

    kind: FailureKind = "answer"
    status: int | None = None
    codes: tuple[str, ...] = ()
    message: str = ""
    headers: Mapping[str, str] | None = None
    body: Any = None
    param: str | None = None
    snippet: str = ""
    partial: Any = None
    detail: str = ""  # for timeouts and connections: what the HTTP library said
    extra: dict[str, Any] = field(default_factory=dict)


class ProviderFailed(Exception):
    """Raised inside an adapter (e.g. for an error event in a stream) so that the failure
    is translated at the one boundary, `Provider`, with the rest."""

    def __init__(self, failure: Failure) -> None:
        super().__init__(failure.message or failure.kind)
        self.failure = failure


# -- what body codes and messages mean -------------------------------------------------------

_AUTH_CODES = frozenset(
    {"invalid_api_key", "authentication_error", "api_key_invalid", "unauthenticated"}
)
_CONTEXT_CODES = frozenset(
    {"context_length_exceeded", "exceed_context_size_error", "string_above_max_length"}
)
# How servers word "too long" (OpenAI, Anthropic, Gemini, vLLM, llama.cpp, Ollama).
_CONTEXT_WORDS = re.compile(
    r"maximum context length|context (?:length|limit|window|size)|prompt is too long|"
    r"input token count.*exceeds|exceeds the (?:available )?context|maximum number of tokens",
    re.IGNORECASE,
)
_FILTER_CODES = frozenset({"content_filter", "content_policy_violation", "safety"})
_QUOTA_CODES = frozenset({"insufficient_quota", "billing_hard_limit_reached"})
_RATE_CODES = frozenset({"rate_limit_exceeded", "rate_limit_error", "resource_exhausted"})
_BUSY_CODES = frozenset(
    {"server_error", "overloaded_error", "api_error", "internal", "unavailable", "internal_error"}
)
_TIMEOUT_CODES = frozenset({"deadline_exceeded", "timeout", "request_timeout"})
_PERMISSION_CODES = frozenset({"permission_error", "permission_denied"})
_MODEL_CODES = frozenset({"model_not_found"})

_STATUS: dict[int, type[LLMError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: ModelNotFoundError,  # or EndpointNotFoundError: see _not_found
    408: LLMTimeoutError,
    409: ServerUnavailableError,  # a conflict on the provider's side (e.g. a busy resource)
    413: BadRequestError,
    422: BadRequestError,
    429: RateLimitedError,
}


def _kind(failure: Failure) -> type[LLMError]:
    codes = {code.lower() for code in failure.codes}
    status = failure.status
    client_side = status in (None, 400, 413, 422)  # where an invalid request is reported
    if codes & _AUTH_CODES or (status == 400 and "api key not valid" in failure.message.lower()):
        return AuthenticationError  # Gemini sends a bad key as 400 INVALID_ARGUMENT
    if client_side and (codes & _CONTEXT_CODES or _CONTEXT_WORDS.search(failure.message)):
        return ContextTooLongError
    if client_side and codes & _FILTER_CODES:
        return ContentFilteredError
    if codes & _QUOTA_CODES:
        return RateLimitedError
    if status is not None:
        if status in _STATUS:
            return _STATUS[status]
        if status >= 500:
            return ServerUnavailableError
        if status >= 400:
            return ProviderError
    for group, kind in (
        (_RATE_CODES, RateLimitedError),
        (_BUSY_CODES, ServerUnavailableError),
        (_TIMEOUT_CODES, LLMTimeoutError),
        (_PERMISSION_CODES, PermissionDeniedError),
        (_MODEL_CODES, ModelNotFoundError),
    ):
        if codes & group:
            return kind
    return ProviderError


def _not_found(failure: Failure) -> type[LLMError]:
    """A 404 about a model (most APIs name it) or from a path where no API is."""
    if {c.lower() for c in failure.codes} & _MODEL_CODES or "model" in failure.message.lower():
        return ModelNotFoundError
    return EndpointNotFoundError


# -- retry-after, in all the forms providers use ----------------------------------------------

_IN_SECONDS = re.compile(r"(?:try again|retry) in ([\d.]+)\s*(ms|s)\b", re.IGNORECASE)
_DELAY = re.compile(r"([\d.]+)s")


def retry_after_seconds(headers: Any, body: Any = None, message: str = "") -> float | None:
    """Seconds a provider asked us to wait, or None when it did not say.

    Read from ``retry-after-ms``; ``retry-after`` as seconds or an HTTP date; Google's
    ``RetryInfo.retryDelay`` ("12s") in the error body; and "try again in 1.5s" in the
    message, in that order.
    """
    if headers is not None:
        for name, scale in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
            value = headers.get(name)
            if value:
                try:
                    return max(float(value) / scale, 0.0)
                except ValueError:
                    pass
        try:
            when = parsedate_to_datetime(headers.get("retry-after") or "")
        except (TypeError, ValueError):
            pass
        else:
            return max(when.timestamp() - time.time(), 0.0)
    delay = _retry_delay(body)
    if delay is not None:
        return delay
    match = _IN_SECONDS.search(message)
    if match:
        value = float(match.group(1))
        return value / 1000.0 if match.group(2).lower() == "ms" else value
    return None


def _retry_delay(body: Any) -> float | None:
    error = body.get("error", body) if isinstance(body, dict) else None
    details = error.get("details") if isinstance(error, dict) else None
    for detail in details if isinstance(details, list) else ():
        delay = detail.get("retryDelay") if isinstance(detail, dict) else None
        match = _DELAY.fullmatch(str(delay or ""))
        if match:
            return float(match.group(1))
    return None


# -- messages ---------------------------------------------------------------------------------


def _key_hint(caller: Caller) -> str:
    if caller.key_source is None:
        names = " or ".join(caller.key_variables) or "an API key variable"
        return f"No key was sent, and this server wants one: set {names}, or pass api_key=."
    if caller.key_source == "api_key=":
        return "Check the key passed as api_key= is valid and not revoked."
    return f"Check the key in {caller.key_source} (the one llmgine read) is valid and not revoked."


def _wait(seconds: float | None) -> str:
    return f"Wait {seconds:g} s and retry" if seconds is not None else "Wait a moment and retry"


def _hint(kind: type[LLMError], failure: Failure, caller: Caller, retry: float | None) -> str:
    model, where = caller.model, caller.base_url or caller.label
    if kind is AuthenticationError:
        return _key_hint(caller)
    if kind is PermissionDeniedError:
        return f"The key may not use {model!r} or this feature: check its permissions."
    if kind is ModelNotFoundError:
        return f"Check the model name {model!r}, and that {where} serves it to this key."
    if kind is EndpointNotFoundError:
        return (
            f"Nothing answers at that path of {where}: check base_url (OpenAI-style servers "
            "usually end in /v1)."
        )
    if kind is ContextTooLongError:
        return "Shorten the conversation, or lower max_tokens."
    if kind is ContentFilteredError:
        return "The provider's content filter refused it: rephrase the request."
    if kind is BadRequestError:
        param = f" (parameter {failure.param!r})" if failure.param else ""
        return f"Fix the request{param}; sending it unchanged will fail again."
    if kind is RateLimitedError:
        if {c.lower() for c in failure.codes} & _QUOTA_CODES:
            return "The account is out of quota: add credit or raise its limits."
        return f"{_wait(retry)}, or send fewer requests or tokens per minute."
    if kind is ServerUnavailableError:
        return "This is on the provider's side: try again shortly, or fall back to another model."
    if kind is LLMTimeoutError:
        return "Try again, or allow longer with timeout= on the request or the provider."
    return "Try again; if it persists, check the request."


def _said(failure: Failure) -> str:
    text = " ".join((failure.message or "no message").split()).rstrip(" .")
    return redact_text(text)


def _headline(failure: Failure, caller: Caller) -> str:
    status = failure.status if failure.status is not None and failure.status >= 400 else None
    codes = [c for c in failure.codes if c and c != str(status)]
    code = codes[0] if codes else ""
    if status is not None:
        what = f"{status} {code}".rstrip()
        return f"{caller.label} answered {what}"
    return f"{caller.label} reported an error" + (f" ({code})" if code else "") + " mid-answer"


def error_for(failure: Failure, caller: Caller) -> LLMError:
    """The `llmgine.errors` error for ``failure``: the same for every provider."""
    where: dict[str, Any] = {"provider": caller.provider, "model": caller.model}
    address = caller.base_url or caller.label
    if failure.kind == "timeout":
        detail = f" ({failure.detail})" if failure.detail else ""
        return LLMTimeoutError(
            f"{caller.label} did not answer within the timeout{detail} (model "
            f"{caller.model!r}). Try again, or allow longer with timeout= on the request or "
            "the provider.",
            **where,
        )
    if failure.kind == "connection":
        detail = f": {redact_text(failure.detail)}" if failure.detail else ""
        local = caller.provider not in ("openai", "anthropic", "gemini")
        return LLMConnectionError(
            f"could not reach {caller.label} at {address}{detail}. Check the network and "
            "base_url" + (f"; is the {caller.label} server running?" if local else "."),
            **where,
        )
    if failure.kind == "malformed":
        snippet = redact_text(failure.snippet[:200])
        return MalformedResponseError(
            f"{caller.label} sent an answer that could not be read "
            f"({redact_text(failure.message)}): "
            f"{snippet!r}. Check that base_url ({address}) points at the API itself, not a web "
            "page or a proxy; if it does, report it.",
            snippet=snippet,
            status_code=failure.status,
            **where,
        )
    if failure.kind == "incomplete":
        return IncompleteResponseError(
            f"the {caller.label} stream ended before its end marker ({failure.message}): the "
            "answer may be cut short, so it is not passed off as whole. Try again; what did "
            "arrive is on .partial.",
            partial=failure.partial,
            **where,
        )
    kind = _kind(failure)
    if kind is ModelNotFoundError:
        kind = _not_found(failure)
    retry = retry_after_seconds(failure.headers, failure.body, failure.message)
    hint = _hint(kind, failure, caller, retry)
    message = f"{_headline(failure, caller)}: {_said(failure)}. {hint}"
    if issubclass(kind, ProviderError):
        error: LLMError = kind(
            message,
            status_code=failure.status,
            body=failure.body,
            retry_after=retry if kind in (RateLimitedError, ServerUnavailableError) else None,
            **where,
        )
    else:  # a timeout the provider reported (408, DEADLINE_EXCEEDED)
        error = kind(message, status_code=failure.status, body=failure.body, **where)
    if {c.lower() for c in failure.codes} & _QUOTA_CODES:
        error.retryable = False  # waiting does not add credit
    return error
