"""Observability hands its tracer to what traces: the default slot while enabled, a bus's
slot while that bus is observed. Nothing in the LLM layer or the tools looks for it."""

from __future__ import annotations

from llmgine import observability
from llmgine.bus import MessageBus
from llmgine.llm import (
    NO_TRACER,
    ChatMessage,
    Generate,
    LLMRequest,
    LLMService,
    ToolCallPart,
    get_model,
    tracer_for,
)
from llmgine.tools import ToolManager, run_tool_loop, tool


@tool
def add(a: int, b: int) -> int:
    """Add two numbers."""
    return a + b


def names(obs: observability.Observability) -> list[str]:
    return sorted(s.name for s in obs.buffer.finished())


def ask() -> Generate:
    return Generate(request=LLMRequest(messages=[ChatMessage.user("hi")]))


async def test_enabling_plugs_the_tracer_in_and_disabling_unplugs_it() -> None:
    bus = MessageBus()
    obs = observability.enable(bus)
    assert tracer_for().plugged is obs.call_tracer
    assert tracer_for(bus).plugged is obs.call_tracer
    observability.disable()
    assert tracer_for().plugged is None
    assert tracer_for(bus).plugged is None


async def test_two_buses_observed_one_only_trace_only_its_calls() -> None:
    watched, unwatched = MessageBus(), MessageBus()
    await watched.start()
    await unwatched.start()
    try:
        obs = observability.enable(watched)
        for bus in (watched, unwatched):
            LLMService(bus, "test:model", responses=["one", "two"], retry=False).install()
            assert (await bus.execute(ask())).success
            manager = ToolManager([add], bus=bus)
            [result] = await manager.execute_all([ToolCallPart(id="c", name="add", arguments={})])
            assert result.is_error  # missing arguments: a failed execution is traced too
            outcome = await run_tool_loop("demo:llmgine-demo", "the add of 1 and 2", [add], bus=bus)
            assert outcome.rounds == 2
        # Once each from the watched bus: its service's call, its manager's execution, the
        # loop's two model calls and its tool call. The other bus added nothing.
        assert names(obs) == [
            "chat llmgine-demo",
            "chat llmgine-demo",
            "chat model",
            "execute_tool add",
            "execute_tool add",
        ]
        obs.observe(unwatched)  # observed from now on: its calls are traced too
        assert (await unwatched.execute(ask())).success
        assert names(obs).count("chat model") == 2
        obs.unobserve(unwatched)
        assert tracer_for(unwatched).plugged is None
    finally:
        observability.disable()
        await watched.stop()
        await unwatched.stop()


async def test_a_model_made_before_enable_is_traced_while_enabled_only() -> None:
    model = get_model("test:early", responses=["a", "b", "c"])
    await model.generate("before")
    obs = observability.enable()
    await model.generate("during")
    observability.disable()
    await model.generate("after")
    assert names(obs) == ["chat early"]


async def test_a_model_given_no_tracer_is_never_traced() -> None:
    obs = observability.enable()
    try:
        await get_model("test:quiet", responses=["x"], tracer=NO_TRACER).generate("hi")
        await ToolManager([add], tracer=NO_TRACER).execute(
            ToolCallPart(id="c", name="add", arguments={"a": 1, "b": 2})
        )
        assert names(obs) == []
    finally:
        observability.disable()
