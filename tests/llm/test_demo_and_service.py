"""The offline demo model, and LLM calls on the bus with events and spans."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest
from pydantic import BaseModel

from llmgine import observability
from llmgine.bus import Event, MessageBus
from llmgine.errors import RateLimitedError
from llmgine.llm import (
    ChatMessage,
    Generate,
    LLMCallCompleted,
    LLMCallFailed,
    LLMCallStarted,
    LLMRequest,
    LLMResponse,
    LLMService,
    LLMStreamDelta,
    Model,
    Reasoning,
    ResponseStream,
    StreamAssembler,
    StreamItem,
    TextDelta,
    ToolName,
    ToolResultPart,
    ToolSpec,
    get_model,
)

WEATHER = ToolSpec(
    name="get_weather",
    description="The weather in a city",
    parameters={
        "type": "object",
        "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
        "required": ["city"],
    },
)


async def test_the_demo_is_deterministic_labelled_and_free() -> None:
    model = get_model("demo:llmgine-demo", latency=0)
    a = await model.generate("Explain event loops in Python")
    b = await model.generate("Explain event loops in Python")
    assert a.same_content(b)
    assert a.text
    assert a.demo
    assert a.cost_usd == 0.0
    assert (a.usage.input_tokens or 0) > 0
    assert (a.usage.output_tokens or 0) > 0
    other = await model.generate("Something else entirely")
    assert other.text != a.text


async def test_the_demo_streams_exactly_what_it_answers() -> None:
    model = get_model("demo:x", latency=0)
    streamed = model.stream("How do tides work?")
    deltas = [item async for item in streamed if isinstance(item, TextDelta)]
    response = streamed.response
    assert response is not None
    assert len(deltas) > 5
    assert response.demo
    assert response.time_to_first_token_ms is not None
    assert response.same_content(await model.generate("How do tides work?"))


async def test_the_demo_calls_tools_then_uses_their_results() -> None:
    model = get_model("demo:x", latency=0)
    question = ChatMessage.user("What is the weather in Paris for 3 days?")
    first = await model.generate([question], tools=[WEATHER])
    assert first.finish_reason == "tool_calls"
    [call] = first.tool_calls
    assert call.name == "get_weather"
    assert call.arguments == {"city": "Paris", "days": 3}
    result = ToolResultPart(call_id=call.id, name=call.name, content={"temp_c": 18})
    second = await model.generate(
        [question, first.message, ChatMessage.tool_results([result])], tools=[WEATHER]
    )
    assert second.finish_reason == "stop"
    assert "18" in second.text
    none = await model.generate([question], tools=[WEATHER], tool_choice="none")
    assert none.tool_calls == []


async def test_the_demo_says_it_is_a_simulation_and_echoes_what_it_received() -> None:
    model = get_model("demo:llmgine-demo", latency=0)
    reply = await model.generate("Name three primes.")
    text = reply.text
    first = text.splitlines()[0]
    assert first.startswith("Offline demo: no language model is behind this reply")
    assert "“Name three primes.”" in first  # the question, quoted, is not answered
    assert "OPENAI_API_KEY" in text  # how to get real answers
    assert "LLMGINE_MODEL" in text
    assert f"- 1 message (user), about {reply.usage.input_tokens} input tokens" in text
    assert "- no system prompt" in text
    assert "- no tools" in text
    assert len(text.splitlines()) <= 8  # a few lines, not filler
    assert len(text) / 6 < (reply.usage.output_tokens or 0) < len(text) / 2  # plausible
    conversation = [
        ChatMessage.system("Be brief."),
        ChatMessage.user("hi"),
        ChatMessage.assistant("hello"),
        ChatMessage.user("What time is it?"),
    ]
    shaped = await model.generate(conversation, tools=[WEATHER], temperature=0.2, seed=7)
    assert shaped.tool_calls == []  # no word of "get_weather" in the prompt
    assert "- 4 messages (1 system, 2 user, 1 assistant), about " in shaped.text
    assert "- a system prompt (9 characters)" in shaped.text
    assert "- 1 tool (get_weather), none called: " in shaped.text
    assert "like “weather”" in shaped.text  # how to make the demo call it
    assert "- settings: temperature 0.2, seed 7" in shaped.text
    refused = await model.generate(conversation, tools=[WEATHER], tool_choice="none")
    assert "none called: tool_choice is none" in refused.text


async def test_the_demo_labels_tool_results_and_reasoning_as_simulated() -> None:
    model = get_model("demo:x", latency=0)
    question = ChatMessage.user("What is the weather in Paris?")
    call = (await model.generate([question], tools=[WEATHER])).tool_calls[0]
    result = ToolResultPart(call_id=call.id, name=call.name, content={"temp_c": 18})
    reply = await model.generate(
        [question, ChatMessage.assistant([call]), ChatMessage.tool_results([result])]
    )
    assert reply.text.startswith('Offline demo: get_weather returned {"temp_c": 18}.')
    thinking = await model.generate("Why is the sky blue?", reasoning=Reasoning(effort="low"))
    assert thinking.reasoning[0].text.startswith("Offline demo: ")
    assert "“Why is the sky blue?”" in thinking.reasoning[0].text


async def test_the_demo_honours_a_named_tool_choice_and_max_tokens() -> None:
    model = get_model("demo:x", latency=0)
    forced = await model.generate(
        "Anything at all, in Lisbon", tools=[WEATHER], tool_choice=ToolName(name="get_weather")
    )
    [call] = forced.tool_calls
    assert call.name == "get_weather"
    assert call.arguments == {"city": "Lisbon", "days": 1}  # valid against the schema
    short = await model.generate("Name three primes.", max_tokens=10)
    assert short.finish_reason == "length"
    assert short.usage.output_tokens == 10
    assert short.text.startswith("Offline demo: ")
    long = await model.generate("Name three primes.", max_tokens=1000)
    assert long.finish_reason == "stop"


class Recipe(BaseModel):
    title: str
    servings: int
    steps: list[str]


async def test_the_demo_honours_structured_output_and_reasoning() -> None:
    model = get_model("demo:x", latency=0)
    reply = await model.generate_structured("A recipe for 4 people, please", Recipe)
    assert isinstance(reply.parsed, Recipe)
    assert reply.parsed.servings == 4  # the number in the prompt
    assert json.loads(reply.text)["title"]
    thinking = await model.generate("Why is the sky blue?", reasoning=Reasoning(effort="low"))
    assert thinking.reasoning[0].text
    assert thinking.reasoning[0].signature
    assert thinking.usage.reasoning_tokens


def collect(bus: MessageBus) -> list[Event]:
    seen: list[Event] = []
    for cls in (LLMCallStarted, LLMStreamDelta, LLMCallCompleted, LLMCallFailed):
        bus.on_event(cls, seen.append)
    return seen


async def test_generate_on_the_bus_publishes_its_life_and_is_traced_by_one_genai_span(
    bus: MessageBus,
) -> None:
    obs = observability.enable(bus)
    try:
        LLMService(bus, "demo:llmgine-demo", latency=0).install()
        seen = collect(bus)
        async with bus.session("chat") as session:
            request = LLMRequest(messages=[ChatMessage.user("Tell me about volcanoes")])
            result = await session.execute(Generate(request=request, stream=True))
        await bus.drain()
        assert result.success
        response = result.unwrap()
        kinds = [type(e).__name__ for e in seen]
        assert kinds[0] == "LLMCallStarted"
        assert kinds[-1] == "LLMCallCompleted"
        deltas = [e for e in seen if isinstance(e, LLMStreamDelta)]
        assert deltas
        assert "".join(d.text for d in deltas) == response.text
        assert sum(d.deltas for d in deltas) > len(deltas)  # batched: fewer events than deltas
        done = seen[-1]
        assert isinstance(done, LLMCallCompleted)
        assert done.usage == response.usage
        assert done.demo
        assert {e.session_id for e in seen} == {session.id}
        spans = {s.name: s for s in obs.buffer.finished()}
        llm = spans["chat llmgine-demo"]
        assert "command Generate" not in spans  # the GenAI span is the command's span
        assert llm.parent_id == spans["session chat"].span_id
        assert llm.attributes["llmgine.command.id"] == result.command_id
        assert llm.attributes["llmgine.command.type"].endswith("Generate")
        assert llm.kind == "client"
        assert llm.attributes["gen_ai.provider.name"] == "demo"
        assert llm.attributes["gen_ai.conversation.id"] == session.id
        assert llm.attributes["gen_ai.usage.output_tokens"] == response.usage.output_tokens
        assert llm.attributes["llmgine.llm.time_to_first_token_ms"] >= 0
    finally:
        observability.disable()


async def test_a_failed_call_is_a_failed_command_and_an_event(bus: MessageBus) -> None:
    model = get_model("test:m", responses=[RateLimitedError("busy", retry_after=1)], retry=False)
    LLMService(bus, model).install()
    seen = collect(bus)
    result = await bus.execute(Generate(request=LLMRequest(messages=[ChatMessage.user("x")])))
    await bus.drain()
    assert not result.success
    assert isinstance(result.exception, RateLimitedError)
    failed = seen[-1]
    assert isinstance(failed, LLMCallFailed)
    assert failed.error_type == "RateLimitedError"
    assert failed.provider == "test"


async def test_text_that_streamed_before_a_failure_is_published_before_the_failure(
    bus: MessageBus,
) -> None:
    class CutShort:
        """A model whose stream sends some text, then fails."""

        provider, name = "test", "cut"

        async def generate(self, request: LLMRequest) -> LLMResponse:
            raise AssertionError("only streamed here")

        def stream(self, request: LLMRequest) -> ResponseStream:
            async def items() -> AsyncIterator[StreamItem]:
                yield TextDelta(key=0, text="the partial ")
                yield TextDelta(key=0, text="answer")
                raise RateLimitedError("busy", retry_after=1)

            return ResponseStream(items(), StreamAssembler("test", "cut"))

    # A long interval: without a flush on failure nothing would be published.
    LLMService(bus, Model(CutShort()), delta_interval=3600).install()
    seen = collect(bus)
    request = LLMRequest(messages=[ChatMessage.user("x")])
    result = await bus.execute(Generate(request=request, stream=True))
    await bus.drain()
    assert isinstance(result.exception, RateLimitedError)
    kinds = [type(e).__name__ for e in seen]
    assert kinds[-2:] == ["LLMStreamDelta", "LLMCallFailed"]
    delta = seen[-2]
    assert isinstance(delta, LLMStreamDelta)
    assert delta.text == "the partial answer"


async def test_small_delta_batches_flush_by_size(bus: MessageBus) -> None:
    long_answer = "word " * 200
    LLMService(bus, get_model("test:m", responses=[long_answer]), delta_chars=100).install()
    seen = collect(bus)
    request = LLMRequest(messages=[ChatMessage.user("x")])
    result = await bus.execute(Generate(request=request, stream=True))
    await bus.drain()
    deltas = [e for e in seen if isinstance(e, LLMStreamDelta)]
    assert len(deltas) >= 10  # 1,000 characters in batches of about 100
    assert all(len(d.text) <= 104 for d in deltas)
    assert "".join(d.text for d in deltas) == long_answer == result.unwrap().text


@pytest.mark.parametrize("spec", ["test:a", "demo:b"])
async def test_offline_models_need_no_key(spec: str, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY", "GOOGLE_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    model = get_model(spec, responses=["fine"]) if spec.startswith("test") else get_model(spec)
    assert model.provider in {"test", "demo"}


async def test_span_operation_follows_the_provider() -> None:
    from llmgine.llm import ProviderModel, ScriptedProvider, Traced

    class FakeGemini(ScriptedProvider):
        name = "gemini"

    obs = observability.enable()
    try:
        traced = Traced(ProviderModel(FakeGemini(["hi"]), "gemini-2.5-flash"))
        await traced.generate(LLMRequest(messages=[ChatMessage.user("x")]))
        [span] = obs.buffer.finished()
        assert span.name == "generate_content gemini-2.5-flash"
        assert span.attributes["gen_ai.operation.name"] == "generate_content"
    finally:
        observability.disable()


async def test_the_command_scope_reaches_only_the_call_that_answers_the_command(
    bus: MessageBus,
) -> None:
    obs = observability.enable(bus)
    try:
        model = get_model("demo:llmgine-demo", latency=0)
        LLMService(bus, model).install()
        result = await bus.execute(Generate(request=LLMRequest(messages=[ChatMessage.user("hi")])))
        await model.generate("hi again")  # outside any command
        first, second = [s for s in obs.buffer.finished() if s.name == "chat llmgine-demo"]
        assert first.attributes["llmgine.command.id"] == result.command_id
        assert "llmgine.command.id" not in second.attributes
        assert not [s for s in obs.buffer.finished() if s.name.startswith("command ")]
    finally:
        observability.disable()
