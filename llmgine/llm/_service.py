"""LLM calls as bus citizens: `Generate` commands, and events for each call's life.

`LLMService(bus).install()` makes the bus answer `Generate` (on the bus or, with
``session=``, in one session). Each call publishes `LLMCallStarted`, then, when streamed,
`LLMStreamDelta`s batched by time and size (a fast stream does not flood the bus), then
`LLMCallCompleted` or `LLMCallFailed`. With observability on for the bus, the command is
traced by its call's GenAI span (one span per attempt, carrying the command's id and
session), instead of a command span with the GenAI span inside.
"""

from __future__ import annotations

import time
from typing import Any, ClassVar

from llmgine import _semconv as sc
from llmgine._tracing import tracer_for
from llmgine.bus import (
    Command,
    ErrorInfo,
    Event,
    MessageBus,
    Session,
    Subscription,
    message_type_name,
)
from llmgine.llm._model import Model
from llmgine.llm._registry import get_model
from llmgine.llm._request import LLMRequest
from llmgine.llm._response import FinishReason, LLMResponse, Usage
from llmgine.llm._stream import ReasoningDelta, TextDelta, ToolCallDelta
from llmgine.llm._wrappers import CallScope, call_scope

__all__ = [
    "Generate",
    "LLMCallCompleted",
    "LLMCallFailed",
    "LLMCallStarted",
    "LLMService",
    "LLMStreamDelta",
]


class Generate(Command[LLMResponse]):
    """Ask a model for one answer. ``model`` is a "provider:model" spec (the service's
    default when None); ``stream`` publishes the answer as it arrives."""

    traced_by_handler: ClassVar[bool] = True  # its GenAI span is its span

    request: LLMRequest
    model: str | None = None
    stream: bool = False


class LLMCallStarted(Event):
    call_id: str
    provider: str
    model: str
    streaming: bool


class LLMStreamDelta(Event):
    """What arrived since the previous delta event: ``text`` and ``reasoning`` joined,
    and the number of tool-call argument fragments; ``deltas`` counts the items batched.
    ``text`` and ``reasoning`` are content: they leave the process only where content
    capture is on (see `Event.content_fields`)."""

    content_fields = ("text", "reasoning")

    call_id: str
    text: str = ""
    reasoning: str = ""
    tool_call_fragments: int = 0
    deltas: int


class LLMCallCompleted(Event):
    call_id: str
    provider: str
    model: str
    usage: Usage
    cost_usd: float | None
    latency_ms: float | None
    time_to_first_token_ms: float | None
    finish_reason: FinishReason
    tool_calls: int
    demo: bool = False


class LLMCallFailed(Event):
    call_id: str
    provider: str
    model: str
    error: ErrorInfo
    error_type: str  # the llmgine error class, e.g. "RateLimitedError"


class LLMService:
    """Answers `Generate` commands on a bus (or in one session).

    Args:
        bus: the bus to answer on.
        default_model: a spec or `Model` for commands that name none (by default
            ``$LLMGINE_MODEL``, else the offline demo).
        session: answer only in this session (its handler goes when the session ends).
        delta_interval / delta_chars: publish a batched `LLMStreamDelta` at most every
            ``delta_interval`` seconds, or sooner once ``delta_chars`` have gathered.
        model_options: passed to `get_model` for models made from specs.

    The models it makes from specs are traced through the bus's tracer
    (``tracer_for(bus)``): their calls are spans while observability observes this bus
    (`observability.enable(bus)`), and not while it observes only others. A `Model` you
    hand it keeps the tracer it was made with (`get_model`'s ``tracer=``; by default
    traced whenever observability is on).

    Example:
        LLMService(bus, "openai:gpt-4o-mini").install()
        result = await bus.execute(Generate(request=LLMRequest(messages=[...])))
    """

    def __init__(
        self,
        bus: MessageBus,
        default_model: str | Model | None = None,
        *,
        session: Session | None = None,
        delta_interval: float = 0.05,
        delta_chars: int = 400,
        **model_options: Any,
    ) -> None:
        self.bus = bus
        self.session = session
        self.delta_interval = delta_interval
        self.delta_chars = delta_chars
        self._options: dict[str, Any] = {"tracer": tracer_for(bus), **model_options}
        self._models: dict[str | None, Model] = {}
        self._default_spec: str | None = None
        if isinstance(default_model, Model):
            self._models[None] = default_model
        else:
            self._default_spec = default_model

    def install(self) -> Subscription:
        """Register the `Generate` handler; ``remove()`` the result to uninstall."""
        if self.session is not None:
            return self.session.on_command(Generate, self.handle)
        return self.bus.on_command(Generate, self.handle)

    def model(self, spec: str | None) -> Model:
        """The model for a spec (made once, then reused)."""
        model = self._models.get(spec)
        if model is None:
            model = get_model(spec or self._default_spec, **self._options)
            self._models[spec] = model
        return model

    async def _publish(self, event: Event, session_id: str | None) -> None:
        event.session_id = session_id
        await self.bus.publish(event)

    async def handle(self, command: Generate) -> LLMResponse:
        model = self.model(command.model)
        sid = command.session_id
        call_id = command.id
        await self._publish(
            LLMCallStarted(
                call_id=call_id, provider=model.provider, model=model.name, streaming=command.stream
            ),
            sid,
        )
        scope = call_scope.set(
            CallScope(sid, {sc.COMMAND_TYPE: message_type_name(Generate), sc.COMMAND_ID: call_id})
        )
        try:
            if command.stream:
                response = await self._streamed(model, command.request, call_id, sid)
            else:
                response = await model.generate(command.request)
        except Exception as exc:
            await self._publish(
                LLMCallFailed(
                    call_id=call_id,
                    provider=model.provider,
                    model=model.name,
                    error=ErrorInfo.from_exception(exc),
                    error_type=type(exc).__name__,
                ),
                sid,
            )
            raise
        finally:
            call_scope.reset(scope)
        await self._publish(
            LLMCallCompleted(
                call_id=call_id,
                provider=response.provider or model.provider,
                model=response.model or model.name,
                usage=response.usage,
                cost_usd=response.cost_usd,
                latency_ms=response.latency_ms,
                time_to_first_token_ms=response.time_to_first_token_ms,
                finish_reason=response.finish_reason,
                tool_calls=len(response.tool_calls),
                demo=response.demo,
            ),
            sid,
        )
        return response

    async def _streamed(
        self, model: Model, request: LLMRequest, call_id: str, sid: str | None
    ) -> LLMResponse:
        text: list[str] = []
        reasoning: list[str] = []
        fragments = deltas = chars = 0
        last = time.monotonic()

        async def flush() -> None:
            nonlocal fragments, deltas, chars, last
            if deltas:
                await self._publish(
                    LLMStreamDelta(
                        call_id=call_id,
                        text="".join(text),
                        reasoning="".join(reasoning),
                        tool_call_fragments=fragments,
                        deltas=deltas,
                    ),
                    sid,
                )
            text.clear()
            reasoning.clear()
            fragments = deltas = chars = 0
            last = time.monotonic()

        async with model.stream(request) as stream:
            try:
                async for item in stream:
                    if isinstance(item, TextDelta):
                        text.append(item.text)
                        chars += len(item.text)
                    elif isinstance(item, ReasoningDelta):
                        reasoning.append(item.text)
                        chars += len(item.text)
                    elif isinstance(item, ToolCallDelta):
                        fragments += 1
                    else:
                        continue
                    deltas += 1
                    if chars >= self.delta_chars or time.monotonic() - last >= self.delta_interval:
                        await flush()
            finally:
                # What arrived is published even when the stream then fails: a failed
                # call's events still show the partial answer, before LLMCallFailed.
                await flush()
            assert stream.response is not None
            return stream.response
