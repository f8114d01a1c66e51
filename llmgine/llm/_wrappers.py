"""Cross-cutting concerns as `LanguageModel`s around another: tracing, retry, fallback.

A stream can be retried or handed to the next model only until its first item arrived:
after that the reader has seen part of an answer, and the error is theirs to handle.
"""

from __future__ import annotations

import asyncio
import random
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from llmgine import _semconv as sc
from llmgine._redact import redacting_logger
from llmgine.errors import (
    IncompleteResponseError,
    LLMConnectionError,
    LLMError,
    LLMTimeoutError,
    RateLimitedError,
    ServerUnavailableError,
)
from llmgine.llm._model import LanguageModel
from llmgine.llm._request import LLMRequest
from llmgine.llm._response import LLMResponse
from llmgine.llm._stream import ResponseStream, StreamAssembler, StreamItem

__all__ = ["CallScope", "Fallback", "LLMRetryPolicy", "Retrying", "Traced", "call_scope"]

log = redacting_logger("llmgine.llm")

TRANSIENT: tuple[type[LLMError], ...] = (
    RateLimitedError,
    ServerUnavailableError,
    LLMTimeoutError,
    LLMConnectionError,
    IncompleteResponseError,  # a stream cut short usually completes when asked again
)


if TYPE_CHECKING:
    from llmgine.observability import LLMCall


class _Untraced:
    """What `Traced` holds when observability was never imported (so cannot be on)."""

    capture = False

    def input(self, messages: Any, *, system: Any = None) -> None: ...
    def first_token(self, ms: float | None = None) -> None: ...
    def response(self, **figures: Any) -> None: ...
    def end(self, error: BaseException | None = None) -> None: ...


_UNTRACED = _Untraced()


def _start_llm_call(**args: Any) -> LLMCall | _Untraced:
    # Looked up, not imported: the LLM layer must not need (or load at import) pandas and
    # the OpenTelemetry SDK. Observability can only be on once its module was imported.
    spans = sys.modules.get("llmgine.observability._spans")
    if spans is None:
        return _UNTRACED
    call: LLMCall = spans.start_llm_call(**args)
    return call


@dataclass(frozen=True)
class CallScope:
    """What a call's span takes from whoever asked for the call: its session, and
    attributes such as the id of the `Generate` command it answers."""

    session_id: str | None
    attributes: dict[str, Any]


# Set by `LLMService` around the model call that answers a command (a contextvar, so it
# follows the call through the wrappers in the same task and never leaks into others).
call_scope: ContextVar[CallScope | None] = ContextVar("llmgine_llm_call_scope", default=None)


# The GenAI conventions name Gemini's operation after its API method; the others are chat.
_OPERATIONS = {"gemini": sc.OP_GENERATE_CONTENT}


class Traced:
    """Each call is a GenAI CLIENT span (see `llmgine.observability.llm_span`)."""

    def __init__(
        self,
        inner: LanguageModel,
        *,
        server_address: str | None = None,
        server_port: int | None = None,
    ) -> None:
        self.inner = inner
        self.server_address = server_address
        self.server_port = server_port

    @property
    def provider(self) -> str:
        return self.inner.provider

    @property
    def name(self) -> str:
        return self.inner.name

    def _start(self, request: LLMRequest) -> LLMCall | _Untraced:
        scope = call_scope.get()
        call = _start_llm_call(
            provider=self.provider,
            model=self.name,
            operation=_OPERATIONS.get(self.provider, sc.OP_CHAT),
            server_address=self.server_address,
            server_port=self.server_port,
            temperature=request.temperature,
            max_tokens=request.max_tokens,
            top_p=request.top_p,
            seed=request.seed,
            stop=request.stop,
            output_type="json" if request.response_format else None,
            session_id=scope.session_id if scope else None,
            attributes=scope.attributes if scope else None,
        )
        if call.capture:
            system = request.system_text
            conversation = [m for m in request.messages if m.role != "system"]
            call.input([m.model_dump(mode="json") for m in conversation], system=system)
        return call

    @staticmethod
    def _finish(call: LLMCall | _Untraced, response: LLMResponse) -> None:
        usage = response.usage
        if response.time_to_first_token_ms is not None:
            call.first_token(response.time_to_first_token_ms)
        call.response(
            model=response.model or None,
            response_id=response.response_id,
            finish_reasons=[response.raw_finish_reason or response.finish_reason],
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            cache_read_tokens=usage.cache_read_tokens,
            cache_write_tokens=usage.cache_write_tokens,
            reasoning_tokens=usage.reasoning_tokens,
            cost_usd=response.cost_usd,
            output=[response.message.model_dump(mode="json")] if call.capture else None,
        )
        call.end()

    async def generate(self, request: LLMRequest) -> LLMResponse:
        call = self._start(request)
        try:
            response = await self.inner.generate(request)
        except BaseException as exc:
            call.end(exc)
            raise
        self._finish(call, response)
        return response

    def stream(self, request: LLMRequest) -> ResponseStream:
        call = self._start(request)
        try:
            stream = self.inner.stream(request)
        except BaseException as exc:
            call.end(exc)
            raise

        def finished(response: LLMResponse) -> None:
            self._finish(call, response)

        return stream.then(finished).on_error(call.end)


@dataclass(frozen=True)
class LLMRetryPolicy:
    """How `Retrying` retries: up to ``attempts`` calls in all; the n-th retry waits
    ``min(initial * 2**(n-1) + uniform(0, jitter), max_delay)``, or the provider's
    ``retry_after`` when it asked for longer (up to ``max_retry_after``; a longer ask is
    not waited for: the error is raised at once)."""

    attempts: int = 3
    initial: float = 0.5
    max_delay: float = 30.0
    jitter: float = 0.25
    max_retry_after: float = 120.0
    retry_on: tuple[type[LLMError], ...] = TRANSIENT
    sleep: Callable[[float], Awaitable[None]] = field(default=asyncio.sleep, compare=False)

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError(f"attempts must be at least 1, got {self.attempts}")

    def delay(self, exc: LLMError, retry: int) -> float | None:
        """Seconds to wait before retry number ``retry`` (1-based), or None: do not."""
        if retry >= self.attempts or not isinstance(exc, self.retry_on):
            return None
        if not exc.retryable:  # e.g. a 429 for an exhausted quota: waiting will not help
            return None
        backoff = min(
            self.initial * 2.0 ** (retry - 1) + random.uniform(0, self.jitter), self.max_delay
        )
        retry_after: float | None = exc.retry_after
        if retry_after is not None:
            return None if retry_after > self.max_retry_after else max(backoff, retry_after)
        return backoff


async def _restartable(
    open_stream: Callable[[int], ResponseStream],
    delay_for: Callable[[LLMError, int], Awaitable[float | None]],
    current: list[ResponseStream],
) -> AsyncIterator[StreamItem]:
    """Items of ``open_stream(0)``; a failure before the first item opens the next one
    when ``delay_for`` says so. ``current`` holds the stream being read, whose response
    (with what its own wrappers added) becomes the outer one."""
    attempt = 0
    while True:
        stream = open_stream(attempt)
        current[:] = [stream]
        started = False
        try:
            async for item in stream:
                started = True
                yield item
            return
        except LLMError as exc:
            if started:
                raise
            attempt += 1
            delay = await delay_for(exc, attempt)
            if delay is None:
                raise


def _relay(
    first: LanguageModel, items: AsyncIterator[StreamItem], current: list[ResponseStream]
) -> ResponseStream:
    outer = ResponseStream(items, StreamAssembler(first.provider, first.name))
    # The inner stream's response carries what its own wrappers added (cost, timings).
    return outer.then(lambda response: current[0].response or response)


class Retrying:
    """Retries transient failures (rate limits, 5xx, timeouts, connection errors) with
    backoff, honouring ``retry_after``. The SDKs' own retries are off, so they never
    stack with these."""

    def __init__(self, inner: LanguageModel, policy: LLMRetryPolicy | None = None) -> None:
        self.inner = inner
        self.policy = policy or LLMRetryPolicy()

    @property
    def provider(self) -> str:
        return self.inner.provider

    @property
    def name(self) -> str:
        return self.inner.name

    async def _wait(self, exc: LLMError, retry: int) -> float | None:
        delay = self.policy.delay(exc, retry)
        if delay is not None:
            log.warning(
                "%s:%s attempt %d failed (%s: %s); retrying in %.2fs",
                self.provider,
                self.name,
                retry,
                type(exc).__name__,
                exc,
                delay,
            )
            await self.policy.sleep(delay)
        return delay

    async def generate(self, request: LLMRequest) -> LLMResponse:
        retry = 0
        while True:
            try:
                return await self.inner.generate(request)
            except LLMError as exc:
                retry += 1
                if await self._wait(exc, retry) is None:
                    raise

    def stream(self, request: LLMRequest) -> ResponseStream:
        current: list[ResponseStream] = []

        def open_stream(attempt: int) -> ResponseStream:
            return self.inner.stream(request)

        return _relay(self, _restartable(open_stream, self._wait, current), current)


class Fallback:
    """Tries each model in turn while the failure is one of ``on`` (by default the
    transient ones); the last model's error is raised. Named after the first model."""

    def __init__(
        self, models: Sequence[LanguageModel], *, on: tuple[type[LLMError], ...] = TRANSIENT
    ) -> None:
        if not models:
            raise ValueError("Fallback needs at least one model")
        self.models = list(models)
        self.on = on

    @property
    def provider(self) -> str:
        return self.models[0].provider

    @property
    def name(self) -> str:
        return self.models[0].name

    async def _next(self, exc: LLMError, index: int) -> float | None:
        if index >= len(self.models) or not isinstance(exc, self.on):
            return None
        failed, nxt = self.models[index - 1], self.models[index]
        log.warning(
            "%s:%s failed (%s: %s); falling back to %s:%s",
            failed.provider,
            failed.name,
            type(exc).__name__,
            exc,
            nxt.provider,
            nxt.name,
        )
        return 0.0

    async def generate(self, request: LLMRequest) -> LLMResponse:
        for index, model in enumerate(self.models):
            try:
                return await model.generate(request)
            except LLMError as exc:
                if await self._next(exc, index + 1) is None:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def stream(self, request: LLMRequest) -> ResponseStream:
        current: list[ResponseStream] = []

        def open_stream(attempt: int) -> ResponseStream:
            return self.models[attempt].stream(request)

        return _relay(self, _restartable(open_stream, self._next, current), current)
