"""The model wrappers as one family: `WrapperModel` forwards, subclasses override what
they change, `Fallback` takes the models users hold, and tracing uses the tracer it holds."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AbstractContextManager, nullcontext
from typing import Any, cast

import pytest

from llmgine.errors import RateLimitedError, ServerUnavailableError
from llmgine.llm import (
    NO_TRACER,
    CallTracer,
    ChatMessage,
    Fallback,
    LanguageModel,
    LLMCallSpan,
    LLMRequest,
    LLMResponse,
    Model,
    ProviderModel,
    ResponseStream,
    Retrying,
    ScriptedProvider,
    StreamItem,
    TextDelta,
    ToolCallSpan,
    Traced,
    TracerSlot,
    WrapperModel,
    get_model,
    tracer_for,
)


def scripted(spec: str, *responses: Any, **options: Any) -> tuple[Model, ScriptedProvider]:
    model = get_model(spec, responses=list(responses), retry=False, **options)
    return model, cast(ScriptedProvider, model.adapter)


def request(text: str = "hi") -> LLMRequest:
    return LLMRequest(messages=[ChatMessage.user(text)])


# -- the base ------------------------------------------------------------------------------


class CountsGenerate(WrapperModel):
    """A wrapper that overrides only `generate`."""

    def __init__(self, wrapped: LanguageModel) -> None:
        super().__init__(wrapped)
        self.generated = 0

    async def generate(self, request: LLMRequest, /) -> LLMResponse:
        self.generated += 1
        return await self.wrapped.generate(request)


async def test_a_wrapper_that_overrides_only_generate_still_streams_through() -> None:
    target, provider = scripted("test:under", "first answer", "streamed answer")
    wrapper = CountsGenerate(target)
    model = Model(wrapper)
    assert (model.provider, model.name, model.spec) == ("test", "under", "test:under")
    assert (await model.generate("one")).text == "first answer"
    async with model.stream("two") as stream:
        texts = [item.text async for item in stream if isinstance(item, TextDelta)]
    assert "".join(texts) == "streamed answer"
    assert len(texts) > 1  # really streamed, item by item, not one assembled answer
    assert stream.response is not None
    assert stream.response.text == "streamed answer"
    assert wrapper.generated == 1  # the stream went past its generate, to the model under
    assert [r.stream for r in provider.requests] == [False, True]


async def test_get_models_chain_is_typed_layers_down_to_the_providers_model() -> None:
    model = get_model("test:chain", responses=["hi"])  # with retry, as by default
    kinds = [type(layer) for layer in model.layers()]
    assert kinds == [Model, Retrying, Traced, ProviderModel]
    assert isinstance(model.innermost, ProviderModel)
    assert model.find(Traced) is model.wrapped.wrapped  # type: ignore[attr-defined]
    assert model.find(Fallback) is None
    assert model.adapter is model.innermost.adapter
    assert repr(model.find(Retrying)) == "<Retrying test:chain>"


class Echo:
    """A `LanguageModel` that is not llmgine's: no provider's model underneath."""

    provider = "echo"
    name = "echo"

    async def generate(self, request: LLMRequest, /) -> LLMResponse:
        raise NotImplementedError

    def stream(self, request: LLMRequest, /) -> ResponseStream:
        raise NotImplementedError


def test_a_chain_without_a_providers_model_says_so_when_asked_for_an_adapter() -> None:
    model = Model(Echo())
    assert isinstance(Echo(), LanguageModel)
    assert model.innermost.__class__ is Echo
    with pytest.raises(TypeError, match="no provider's model underneath"):
        _ = model.adapter


# -- a stream left early ---------------------------------------------------------------------


class Watched(ScriptedProvider):
    """Counts the closings of its streams' generators: where a real adapter releases its
    connection (and a local server stops writing the answer)."""

    def __init__(self, responses: list[str]) -> None:
        super().__init__(responses, chunk=2)
        self.closed = 0

    async def _stream(self, request: LLMRequest, model: str) -> AsyncIterator[StreamItem]:
        try:
            async for item in super()._stream(request, model):
                yield item
        finally:
            self.closed += 1


async def test_a_stream_left_early_is_closed_down_to_the_provider_at_once() -> None:
    provider = Watched(["a long answer that its reader stops reading", "the next answer"])
    tracer = RecordingTracer()
    # The layers get_model builds: retries over tracing over the provider's model.
    model = Model(Retrying(Traced(ProviderModel(provider, "m"), tracer=tracer)))
    async with model.stream("one") as stream:
        async for item in stream:
            if isinstance(item, TextDelta):
                break
    # At once, not when the abandoned generators are garbage-collected: until then a
    # connection stays open and a local server goes on generating the answer nobody reads.
    assert provider.closed == 1
    (ended,) = tracer.calls[0].ended  # and its span ends, saying the stream was left
    assert isinstance(ended, asyncio.CancelledError)
    assert (await model.stream("two").get_response()).text == "the next answer"
    assert provider.closed == 2  # read to the end: closed too, once
    assert tracer.calls[1].ended == [None]


# -- fallback over the models users hold ----------------------------------------------------


async def test_fallback_takes_the_models_users_hold_each_with_its_own_defaults() -> None:
    big, big_provider = scripted("test:big", RateLimitedError("busy"), temperature=0.1)
    small, small_provider = scripted("test:small", "from small", temperature=0.7)
    model = Model(Fallback([big, small]), defaults={"max_tokens": 20})
    assert model.spec == "test:big"  # named after the first
    reply = await model.generate("hi")
    assert reply.text == "from small"
    [asked_big] = big_provider.requests
    [asked_small] = small_provider.requests
    assert (asked_big.model, asked_big.temperature, asked_big.max_tokens) == ("big", 0.1, 20)
    assert (asked_small.model, asked_small.temperature, asked_small.max_tokens) == (
        "small",
        0.7,
        20,
    )
    assert model.adapter is big.adapter  # the first model's, as the name


async def test_fallback_of_held_models_streams_from_the_next_before_the_first_item() -> None:
    first, _ = scripted("test:first", ServerUnavailableError("down"))
    second, provider = scripted("test:second", "streamed fallback")
    async with Model(Fallback([first, second])).stream("hi") as stream:
        items = [item async for item in stream]
    assert any(isinstance(item, TextDelta) for item in items)
    assert stream.response is not None
    assert stream.response.text == "streamed fallback"
    assert provider.requests[0].stream


class Closing(ScriptedProvider):
    def __init__(self) -> None:
        super().__init__(["unused"])
        self.closed = 0

    async def aclose(self) -> None:
        self.closed += 1


async def test_closing_a_fallback_closes_every_model() -> None:
    providers = [Closing(), Closing()]
    fallback = Fallback([Model(ProviderModel(p, f"m{i}")) for i, p in enumerate(providers)])
    await Model(fallback).aclose()
    assert [p.closed for p in providers] == [1, 1]


# -- tracing holds the tracer it is given --------------------------------------------------


class Recorded:
    """An `LLMCallSpan` and `ToolCallSpan` that records what it was told."""

    capture = False

    def __init__(self, args: dict[str, Any]) -> None:
        self.args = args
        self.figures: dict[str, Any] = {}
        self.ended: list[BaseException | None] = []

    def input(self, messages: Any, *, system: Any = None) -> None: ...

    def first_token(self, ms: float | None = None) -> None: ...

    def response(self, **figures: Any) -> None:
        self.figures = figures

    def end(self, error: BaseException | None = None) -> None:
        self.ended.append(error)

    def result(self, value: Any) -> None: ...


class RecordingTracer:
    """A `CallTracer` of a test's own: no observability anywhere."""

    capture_content = False

    def __init__(self) -> None:
        self.calls: list[Recorded] = []

    def start_llm_call(self, **args: Any) -> LLMCallSpan:
        self.calls.append(Recorded(args))
        return self.calls[-1]

    def tool_span(self, name: str, **args: Any) -> AbstractContextManager[ToolCallSpan]:
        return nullcontext(Recorded({"name": name, **args}))


async def test_a_traced_model_reports_to_the_tracer_it_was_given() -> None:
    tracer = RecordingTracer()
    assert isinstance(tracer, CallTracer)
    model = get_model("test:t", responses=["hi", "again"], tracer=tracer, temperature=0.3)
    assert model.find(Traced) is not None
    assert cast(Traced, model.find(Traced)).tracer is tracer
    await model.generate("hi")
    await model.stream("again").get_response()
    assert [c.args["model"] for c in tracer.calls] == ["t", "t"]
    assert [c.args["temperature"] for c in tracer.calls] == [0.3, 0.3]
    assert [c.ended for c in tracer.calls] == [[None], [None]]
    assert tracer.calls[0].figures["output_tokens"] is not None


async def test_a_model_holds_a_slot_that_records_only_while_plugged() -> None:
    model = get_model("test:t", responses=["hi"])
    traced = cast(Traced, model.find(Traced))
    assert traced.tracer is tracer_for()
    assert isinstance(traced.tracer, TracerSlot)
    slot = TracerSlot("a test's")
    tracer = RecordingTracer()
    held = get_model("test:t", responses=["one", "two", "three"], tracer=slot)
    await held.generate("not traced: nothing plugged in")
    slot.plug(tracer)
    await held.generate("traced")
    slot.unplug(RecordingTracer())  # not the one plugged: nothing changes
    await held.generate("traced too")
    slot.unplug(tracer)
    assert len(tracer.calls) == 2
    assert repr(NO_TRACER) == "NO_TRACER"


def test_a_bus_has_one_slot_of_its_own() -> None:
    from llmgine.bus import MessageBus

    one, other = MessageBus(), MessageBus()
    assert tracer_for(one) is tracer_for(one)
    assert tracer_for(one) is not tracer_for(other)
    assert tracer_for(one) is not tracer_for()
