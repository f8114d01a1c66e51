"""The tool loop on the offline models: rounds until the model answers, the exact parts
sent back, the round limit, an ``ends_loop`` tool, streaming, bus events and spans."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Iterator
from typing import Any, cast

import pytest

from llmgine import observability
from llmgine.bus import Event, MessageBus
from llmgine.errors import LLMConfigurationError
from llmgine.llm import (
    ChatMessage,
    LLMRequest,
    LLMResponse,
    Model,
    ReasoningPart,
    ScriptedProvider,
    TextDelta,
    TextPart,
    ToolCallDelta,
    ToolCallPart,
    ToolName,
    ToolResultPart,
    Usage,
    get_model,
)
from llmgine.tools import (
    RoundStart,
    ToolCallFinished,
    ToolCallStarted,
    ToolLoopFinished,
    ToolLoopLimitError,
    ToolLoopResult,
    ToolLoopRoundFinished,
    ToolLoopRoundStarted,
    ToolManager,
    ToolResultItem,
    run_tool_loop,
    stream_tool_loop,
    tool,
)
from tests.deadline import DEADLINE


@tool
def get_weather(city: str) -> str:
    """The current weather in a city.

    Args:
        city: The city's name.
    """
    return f"sunny in {city}"


@tool
async def add(a: int, b: int) -> int:
    """Add two numbers."""
    return a + b


def asks(*calls: ToolCallPart, parts: list[Any] | None = None) -> LLMResponse:
    """A scripted answer that calls tools."""
    return LLMResponse(
        parts=[*(parts or []), *calls],
        finish_reason="tool_calls",
        usage=Usage(input_tokens=10, output_tokens=5),
    )


def scripted(*answers: Any) -> tuple[Model, ScriptedProvider]:
    model = get_model("test:scripted", responses=list(answers))
    return model, cast(ScriptedProvider, model.adapter)


@pytest.fixture
def observed() -> Iterator[observability.Observability]:
    obs = observability.enable()
    yield obs
    observability.disable()


# -- the offline models --------------------------------------------------------------------


async def test_the_demo_model_calls_the_tool_and_answers_with_its_result() -> None:
    result = await run_tool_loop(
        get_model("demo:llmgine-demo", latency=0),
        "What is the get_weather in Paris?",
        [get_weather],
    )
    assert (result.rounds, result.stop_reason) == (2, "answered")
    assert [m.role for m in result.messages] == ["user", "assistant", "tool", "assistant"]
    [outcome] = result.tool_results
    assert (outcome.name, outcome.content, outcome.is_error) == (
        "get_weather",
        "sunny in Paris",
        False,
    )
    assert "get_weather returned sunny in Paris" in result.text
    assert result.response is result.responses[-1]
    assert result.usage.output_tokens == sum(r.usage.output_tokens or 0 for r in result.responses)
    assert result.cost_usd == 0.0


async def test_the_assistant_turn_goes_back_with_its_parts_exactly() -> None:
    reasoning = ReasoningPart(text="think", signature="sig-r", provider="test")
    first = asks(
        ToolCallPart(id="c1", name="add", arguments={"a": 1, "b": 2}, signature="sig-1"),
        ToolCallPart(id="c2", name="get_weather", arguments={"city": "Oslo"}),
        parts=[reasoning, TextPart(text="Let me check.")],
    )
    model, provider = scripted(first, "3, and sunny in Oslo.")
    result = await run_tool_loop(model, "Add 1 and 2; weather in Oslo?", [add, get_weather])

    assert result.text == "3, and sunny in Oslo."
    second = provider.requests[1]
    user, assistant, results = second.messages
    assert user == ChatMessage.user("Add 1 and 2; weather in Oslo?")
    assert assistant.parts[0] == reasoning
    assert assistant.parts[1] == TextPart(text="Let me check.")
    calls = assistant.tool_calls
    assert [(c.id, c.signature, c.provider) for c in calls] == [
        ("c1", "sig-1", "test"),
        ("c2", None, "test"),
    ]
    assert results == ChatMessage.tool_results(
        [
            ToolResultPart(call_id="c1", name="add", content=3),
            ToolResultPart(call_id="c2", name="get_weather", content="sunny in Oslo"),
        ]
    )
    assert [s.name for s in second.tools] == ["add", "get_weather"]
    assert result.messages == [*second.messages, result.response.message]


async def test_a_failed_call_goes_back_to_the_model_which_corrects_itself() -> None:
    model, provider = scripted(
        asks(ToolCallPart(id="c1", name="add", arguments={"a": "one", "b": 2})),
        asks(ToolCallPart(id="c2", name="add", arguments={"a": 1, "b": 2})),
        "It is 3.",
    )
    result = await run_tool_loop(model, "1 + 2?", [add])
    assert result.rounds == 3
    failed, ok = result.tool_results
    assert failed.is_error
    assert "a: Input should be a valid integer" in failed.text
    assert not ok.is_error
    sent = provider.requests[1].messages[-1].parts[0]
    assert sent == failed


async def test_an_ends_loop_tool_ends_the_loop_without_asking_again() -> None:
    @tool(ends_loop=True)
    def final_answer(city: str, country: str) -> dict[str, str]:
        return {"city": city, "country": country}

    model, provider = scripted(
        asks(ToolCallPart(id="c1", name="final_answer", arguments={"city": "Oslo"})),
        asks(
            ToolCallPart(id="c2", name="final_answer", arguments={"city": "Oslo", "country": "NO"})
        ),
    )
    result = await run_tool_loop(model, "Where?", [final_answer])
    assert (result.rounds, result.stop_reason) == (2, "final_tool")  # a failed call does not end it
    assert result.tool_results[-1].content == {"city": "Oslo", "country": "NO"}
    assert provider.pending == 0


async def test_the_round_limit_raises_with_a_conversation_that_can_continue() -> None:
    loops = [
        asks(ToolCallPart(id=f"c{n}", name="add", arguments={"a": n, "b": 1})) for n in range(3)
    ]
    model, provider = scripted(*loops, "Done: 3.")
    with pytest.raises(ToolLoopLimitError, match=r"max_rounds=3 model calls") as caught:
        await run_tool_loop(model, "Count up.", [add], max_rounds=3)
    partial = caught.value.result
    assert (partial.rounds, partial.stop_reason) == (3, "max_rounds")
    assert partial.messages[-1].role == "tool"  # the last round's calls were run
    assert [r.content for r in partial.tool_results] == [1, 2, 3]

    resumed = await run_tool_loop(model, partial.messages, [add])
    assert resumed.text == "Done: 3."
    assert len(provider.requests[-1].messages) == 7


async def test_a_request_keeps_its_fields_and_params_apply_to_every_round() -> None:
    model, provider = scripted(
        asks(ToolCallPart(id="c1", name="add", arguments={"a": 1, "b": 1})), "2"
    )
    request = LLMRequest(messages=[ChatMessage.user("1+1")], tool_choice="none", seed=7)
    await run_tool_loop(model, request, ToolManager([add]), temperature=0.1)
    assert [(r.tool_choice, r.temperature, r.seed) for r in provider.requests] == [
        ("none", 0.1, 7)
    ] * 2


def obeys_tool_choice(request: LLMRequest) -> LLMResponse | str:
    """A model that does what ``tool_choice`` says: a forced choice gets a tool call."""
    if request.tool_choice == "required" or isinstance(request.tool_choice, ToolName):
        number = len(request.messages)
        return asks(ToolCallPart(id=f"c{number}", name="add", arguments={"a": number, "b": 1}))
    return "The sum is ready."


@pytest.mark.parametrize("choice", ["required", ToolName(name="add")])
@pytest.mark.parametrize("streaming", [False, True])
async def test_a_forced_tool_choice_applies_to_the_first_round_only(
    choice: Any, streaming: bool
) -> None:
    model, provider = scripted(*[obeys_tool_choice] * 4)
    request = LLMRequest(messages=[ChatMessage.user("add")], tool_choice=choice, seed=3)
    if streaming:
        async with stream_tool_loop(model, request, [add], max_rounds=4) as loop:
            result = await loop.get_result()
    else:
        result = await run_tool_loop(model, request, [add], max_rounds=4)
    assert (result.stop_reason, result.text) == ("answered", "The sum is ready.")
    assert [r.content for r in result.tool_results] == [2]
    assert [(r.tool_choice, r.seed) for r in provider.requests] == [(choice, 3), ("auto", 3)]

    model, provider = scripted(*[obeys_tool_choice] * 4)  # as a parameter, as most pass it
    result = await run_tool_loop(model, "add", [add], tool_choice=choice, max_rounds=4)
    assert result.stop_reason == "answered"
    assert [r.tool_choice for r in provider.requests] == [choice, "auto"]


async def test_a_forced_choice_that_can_end_the_loop_is_kept_every_round() -> None:
    @tool(ends_loop=True)
    def final_answer(total: int) -> int:
        """Give the final answer."""
        return total

    def answer_tool_when_asked_twice(request: LLMRequest) -> LLMResponse:
        if len(request.messages) < 3:  # first round: a working tool, then the answer tool
            return asks(ToolCallPart(id="c1", name="add", arguments={"a": 1, "b": 1}))
        return asks(ToolCallPart(id="c2", name="final_answer", arguments={"total": 2}))

    model, provider = scripted(answer_tool_when_asked_twice, answer_tool_when_asked_twice)
    result = await run_tool_loop(model, "1+1", [add, final_answer], tool_choice="required")
    assert result.stop_reason == "final_tool"
    assert [r.tool_choice for r in provider.requests] == ["required", "required"]

    model, provider = scripted(
        asks(ToolCallPart(id="c1", name="final_answer", arguments={"total": "x"})),  # invalid
        asks(ToolCallPart(id="c2", name="final_answer", arguments={"total": 2})),
    )
    forced = ToolName(name="final_answer")
    result = await run_tool_loop(model, "1+1", [add, final_answer], tool_choice=forced)
    assert (result.stop_reason, result.tool_results[-1].content) == ("final_tool", 2)
    assert [r.tool_choice for r in provider.requests] == [forced, forced]


async def test_bad_input_and_model_errors_are_raised_as_they_are() -> None:
    with pytest.raises(ValueError, match="max_rounds must be at least 1"):
        await run_tool_loop("test:x", "hi", [add], max_rounds=0)
    with pytest.raises(ValueError, match="max_rounds must be at least 1"):
        stream_tool_loop("test:x", "hi", [add], max_rounds=0)
    with pytest.raises(LLMConfigurationError, match="no scripted answer left"):
        await run_tool_loop("test:empty", "hi", [add])  # a spec: made, used, closed


# -- streaming -----------------------------------------------------------------------------


async def test_streaming_yields_each_round_tool_results_and_the_result_last() -> None:
    call = ToolCallPart(id="c1", name="get_weather", arguments={"city": "Lima"})
    model, _ = scripted(asks(call), "It is sunny in Lima.")
    async with stream_tool_loop(model, "Weather in Lima?", [get_weather]) as loop:
        items = [item async for item in loop]

    kinds = [type(i).__name__ for i in items]
    assert kinds[0] == "RoundStart"
    assert isinstance(items[-1], ToolLoopResult)
    assert loop.result is items[-1]
    assert [i.round for i in items if isinstance(i, RoundStart)] == [0, 1]
    fragments = "".join(i.arguments for i in items if isinstance(i, ToolCallDelta))
    assert fragments == '{"city":"Lima"}'
    [done] = [i for i in items if isinstance(i, ToolResultItem)]
    assert (done.round, done.index, done.call.id) == (0, 0, "c1")
    assert done.call.arguments == call.arguments
    assert done.result.content == "sunny in Lima"
    text = "".join(i.text for i in items if isinstance(i, TextDelta))
    assert text == loop.result.text == "It is sunny in Lima."
    second_round = kinds.index("RoundStart", 1)
    assert kinds.index("ToolResultItem") < second_round

    again, _ = scripted(asks(call), "It is sunny in Lima.")
    plain = await run_tool_loop(again, "Weather in Lima?", [get_weather])
    assert plain.messages == loop.result.messages


async def test_closing_the_stream_early_cancels_the_tools_still_running() -> None:
    cancelled = asyncio.Event()

    async def slow() -> str:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return "never"  # pragma: no cover

    async def quick() -> str:
        return "quick"

    model, _ = scripted(
        asks(ToolCallPart(id="c1", name="slow"), ToolCallPart(id="c2", name="quick"))
    )
    loop = stream_tool_loop(model, "go", [slow, quick])
    async for item in loop:
        if isinstance(item, ToolResultItem):
            assert item.result.content == "quick"
            break
    await loop.aclose()
    assert cancelled.is_set()
    assert loop.result is None


async def test_get_result_runs_the_stream_to_its_end() -> None:
    model, _ = scripted("No tools needed.")
    assert (await stream_tool_loop(model, "hi", []).get_result()).rounds == 1


# -- the bus and the trace -----------------------------------------------------------------


async def test_rounds_and_tool_calls_are_on_the_bus_in_the_session(bus: MessageBus) -> None:
    seen: list[Event] = []
    bus.on_event(Event, seen.append)
    model, _ = scripted(asks(ToolCallPart(id="c1", name="add", arguments={"a": 2, "b": 2})), "4")
    async with bus.session("maths") as session:
        result = await run_tool_loop(model, "2+2?", [add], session=session)
        await bus.drain()
    ours = [
        e
        for e in seen
        if isinstance(
            e,
            ToolLoopRoundStarted
            | ToolLoopRoundFinished
            | ToolLoopFinished
            | ToolCallStarted
            | ToolCallFinished,
        )
    ]
    assert [type(e).__name__ for e in ours] == [
        "ToolLoopRoundStarted",
        "ToolCallStarted",
        "ToolCallFinished",
        "ToolLoopRoundFinished",
        "ToolLoopRoundStarted",
        "ToolLoopRoundFinished",
        "ToolLoopFinished",
    ]
    assert {e.session_id for e in ours} == {session.id}
    assert {getattr(e, "loop_id", None) for e in ours} == {result.loop_id}
    started, call_started, _, first_round, _, last_round, finished = ours
    assert isinstance(started, ToolLoopRoundStarted)
    assert (started.round, started.provider, started.model) == (0, "test", "scripted")
    assert isinstance(call_started, ToolCallStarted)
    assert call_started.round == 0
    assert isinstance(first_round, ToolLoopRoundFinished)
    assert (first_round.tool_calls, first_round.failed_tool_calls) == (1, 0)
    assert first_round.finish_reason == "tool_calls"
    assert isinstance(last_round, ToolLoopRoundFinished)
    assert (last_round.round, last_round.tool_calls) == (1, 0)
    assert isinstance(finished, ToolLoopFinished)
    assert (finished.rounds, finished.stop_reason) == (2, "answered")
    assert finished.usage == result.usage


async def test_the_loop_on_a_bus_without_a_session(bus: MessageBus) -> None:
    seen: list[Event] = []
    bus.on_event(ToolLoopFinished, seen.append)
    model, _ = scripted("hello")
    await run_tool_loop(model, "hi", [add], bus=bus)
    await bus.drain()
    assert [(e.session_id, e.rounds) for e in seen if isinstance(e, ToolLoopFinished)] == [
        (None, 1)
    ]


async def test_model_calls_and_tool_executions_are_in_the_trace(
    observed: observability.Observability,
) -> None:
    model, _ = scripted(asks(ToolCallPart(id="c1", name="add", arguments={"a": 1, "b": 1})), "2")
    await run_tool_loop(model, "1+1?", [add])
    names = [s.name for s in observed.buffer.finished()]
    assert names.count("chat scripted") == 2
    assert names.count("execute_tool add") == 1


def test_importing_tools_loads_neither_pandas_nor_opentelemetry() -> None:
    code = (
        "import asyncio, sys\n"
        "from llmgine.llm import get_model\n"
        "from llmgine.tools import run_tool_loop, tool\n"
        "@tool\n"
        "def get_weather(city: str) -> str:\n"
        "    return 'sunny in ' + city\n"
        "model = get_model('demo:x', latency=0)\n"
        "result = asyncio.run(run_tool_loop(model, 'get_weather in Paris?', [get_weather]))\n"
        "assert result.tool_results[0].content == 'sunny in Paris', result\n"
        "print([m for m in ('pandas', 'opentelemetry') if m in sys.modules])\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=DEADLINE
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
