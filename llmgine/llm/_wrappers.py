"""Cross-cutting concerns as `WrapperModel`s around another model: tracing, retry,
fallback. Each forwards what it does not change (see `WrapperModel`).

A stream can be retried or handed to the next model only until its first item arrived:
after that the reader has seen part of an answer, and the error is theirs to handle.

`Traced` holds the `CallTracer` it is given (by default the slot observability plugs its
tracer into when enabled, see `llmgine._tracing`); it never looks for observability.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from llmgine import _semconv as sc
from llmgine._redact import redacting_logger
from llmgine._tracing import CallTracer, LLMCallSpan, tracer_for
from llmgine.errors import (
    IncompleteResponseError,
    LLMConnectionError,
    LLMError,
    LLMTimeoutError,
    RateLimitedError,
    ServerUnavailableError,
)
from llmgine.llm._model import LanguageModel, WrapperModel, _aclose
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


class Traced(WrapperModel):
    """Each call is a GenAI CLIENT span (see `llmgine.observability.llm_span`), made by
    ``tracer``.

    Args:
        wrapped: the model whose calls are traced.
        tracer: what makes the spans. By default the slot observability plugs its tracer
            into while enabled (``llmgine.llm.tracer_for()``), so the calls are traced
            whenever observability is on; ``tracer_for(bus)`` traces them only while
            ``bus`` is observed; `NO_TRACER` never.
        server_address / server_port: the address the calls go to, for the spans.
        server: where the calls go, asked at each call instead (``adapter.server``), for
            a provider whose address is known only once it runs (a local model's server,
            started by the first call): a span whose address changed during the call
            records the new one when the call ends.
    """

    def __init__(
        self,
        wrapped: LanguageModel,
        *,
        tracer: CallTracer | None = None,
        server_address: str | None = None,
        server_port: int | None = None,
        server: Callable[[], tuple[str | None, int | None]] | None = None,
    ) -> None:
        super().__init__(wrapped)
        self.tracer: CallTracer = tracer if tracer is not None else tracer_for(None)
        self.server_address = server_address
        self.server_port = server_port
        self._server = server

    def _where(self) -> tuple[str | None, int | None]:
        if self._server is None:
            return self.server_address, self.server_port
        host, port = self._server()
        return host or self.server_address, port if host else self.server_port

    def _start(self, request: LLMRequest) -> tuple[LLMCallSpan, tuple[str | None, int | None]]:
        scope = call_scope.get()
        where = self._where()
        call = self.tracer.start_llm_call(
            provider=self.provider,
            model=self.name,
            operation=_OPERATIONS.get(self.provider, sc.OP_CHAT),
            server_address=where[0],
            server_port=where[1],
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
        return call, where

    def _finish(
        self, call: LLMCallSpan, where: tuple[str | None, int | None], response: LLMResponse
    ) -> None:
        usage = response.usage
        moved: dict[str, Any] = {}
        if self._server is not None and (now := self._where()) != where:
            moved = {"server_address": now[0], "server_port": now[1]}
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
            attributes=_cache_attributes(response),
            **moved,
        )
        call.end()

    async def generate(self, request: LLMRequest, /) -> LLMResponse:
        call, where = self._start(request)
        try:
            response = await self.wrapped.generate(request)
        except BaseException as exc:
            call.end(exc)
            raise
        self._finish(call, where, response)
        return response

    def stream(self, request: LLMRequest, /) -> ResponseStream:
        call, where = self._start(request)
        try:
            stream = self.wrapped.stream(request)
        except BaseException as exc:
            call.end(exc)
            raise

        def finished(response: LLMResponse) -> None:
            self._finish(call, where, response)

        return stream.then(finished).on_error(call.end)


def _cache_attributes(response: LLMResponse) -> dict[str, Any] | None:
    """``llmgine.cache.*`` of an answer a recording store was asked for (see
    `llmgine.recording`): whether it was a hit, for a hit where from and what the
    recorded call cost, and for a compared live answer whether it drifted."""
    if response.cache_hit is None:
        return None
    attributes: dict[str, Any] = {sc.CACHE_HIT: response.cache_hit}
    if response.cache_hit:
        attributes[sc.CACHE_SOURCE] = response.replayed_from
        attributes[sc.CACHE_ORIGINAL_COST_USD] = response.original_cost_usd
    attributes[sc.CACHE_DRIFT] = response.drift
    return {k: v for k, v in attributes.items() if v is not None}


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


class _Restarting:
    """The items of ``open_stream(0)``; a failure before the first item opens
    ``open_stream(1)``, and so on, while ``delay_for`` says so (after waiting)."""

    def __init__(
        self,
        open_stream: Callable[[int], ResponseStream],
        delay_for: Callable[[LLMError, int], Awaitable[float | None]],
    ) -> None:
        self._open = open_stream
        self._delay_for = delay_for
        self.current: ResponseStream | None = None  # the stream being read

    async def _items(self) -> AsyncIterator[StreamItem]:
        attempt = 0
        while True:
            stream = self.current = self._open(attempt)
            started = False
            try:
                async with stream:  # a reader that stops early closes the attempt's stream
                    async for item in stream:
                        started = True
                        yield item
                return
            except LLMError as exc:
                if started:
                    raise
                attempt += 1
                if await self._delay_for(exc, attempt) is None:
                    raise

    def _response(self, assembled: LLMResponse) -> LLMResponse:
        # The inner stream's response carries what its own wrappers added (cost, timings).
        inner = self.current.response if self.current is not None else None
        return inner or assembled

    def stream(self, model: LanguageModel) -> ResponseStream:
        """The stream the reader sees, named after ``model``."""
        outer = ResponseStream(self._items(), StreamAssembler(model.provider, model.name))
        return outer.then(self._response)


class Retrying(WrapperModel):
    """Retries transient failures (rate limits, 5xx, timeouts, connection errors) with
    backoff, honouring ``retry_after``. The SDKs' own retries are off, so they never
    stack with these."""

    def __init__(self, wrapped: LanguageModel, policy: LLMRetryPolicy | None = None) -> None:
        super().__init__(wrapped)
        self.policy = policy or LLMRetryPolicy()

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

    async def generate(self, request: LLMRequest, /) -> LLMResponse:
        retry = 0
        while True:
            try:
                return await self.wrapped.generate(request)
            except LLMError as exc:
                retry += 1
                if await self._wait(exc, retry) is None:
                    raise

    def stream(self, request: LLMRequest, /) -> ResponseStream:
        def open_stream(attempt: int) -> ResponseStream:
            return self.wrapped.stream(request)

        return _Restarting(open_stream, self._wait).stream(self)


class Fallback(WrapperModel):
    """Tries each model in turn while the failure is one of ``on`` (by default the
    transient ones); the last model's error is raised.

    ``models`` are any `LanguageModel`s, the `Model`s you hold included (each then
    applies its own defaults, retry and tracing):
    ``Model(Fallback([get_model("openai:gpt-4o-mini"), get_model("anthropic:...")]))``.
    Named after the first model, which is also what it ``wraps`` (for `find`); `aclose`
    closes every model.
    """

    def __init__(
        self, models: Sequence[LanguageModel], *, on: tuple[type[LLMError], ...] = TRANSIENT
    ) -> None:
        if not models:
            raise ValueError("Fallback needs at least one model")
        super().__init__(models[0])
        self.models = list(models)
        self.on = on

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

    async def generate(self, request: LLMRequest, /) -> LLMResponse:
        for index, model in enumerate(self.models):
            try:
                return await model.generate(request)
            except LLMError as exc:
                if await self._next(exc, index + 1) is None:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def stream(self, request: LLMRequest, /) -> ResponseStream:
        def open_stream(attempt: int) -> ResponseStream:
            return self.models[attempt].stream(request)

        return _Restarting(open_stream, self._next).stream(self)

    async def aclose(self) -> None:
        for model in self.models:
            await _aclose(model)
