"""Spans: sessions are roots, commands their children, LLM calls and tools by GenAI names."""

from __future__ import annotations

import pandas as pd
import pytest

from llmgine import observability
from llmgine.bus import Command, MessageBus
from llmgine.observability import llm_span, semconv, tool_span


class Ask(Command[str]):
    question: str


class Outer(Command[str]):
    pass


def by_name(obs: observability.Observability) -> dict[str, observability.SpanRecord]:
    return {s.name: s for s in obs.buffer.finished()}


async def fake_model(cmd: Ask) -> str:
    with llm_span(
        provider="openai", model="gpt-4o-mini", server_address="api.openai.com", temperature=0.2
    ) as call:
        call.input([{"role": "user", "content": cmd.question}])
        call.first_token()
        call.response(
            model="gpt-4o-mini-2024-07-18",
            response_id="chatcmpl-1",
            finish_reasons=["stop"],
            input_tokens=12,
            output_tokens=3,
            cache_read_tokens=4,
            reasoning_tokens=1,
            cost_usd=0.00042,
        )
    with tool_span("lookup", call_id="call_1", arguments={"q": cmd.question}) as tool:
        tool.result({"found": True})
    return "done"


async def test_session_command_llm_and_tool_spans_nest(bus: MessageBus) -> None:
    obs = observability.enable(bus)
    bus.on_command(Ask, fake_model)
    async with bus.session("chat") as session:
        result = await session.execute(Ask(question="capital of France?"))
    assert result.success
    spans = by_name(obs)
    root = spans["session chat"]
    command = spans["command Ask"]
    llm = spans["chat gpt-4o-mini"]
    tool = spans["execute_tool lookup"]
    assert root.parent_id is None
    assert command.parent_id == root.span_id
    assert llm.parent_id == command.span_id
    assert tool.parent_id == command.span_id
    assert {s.trace_id for s in spans.values()} == {root.trace_id}

    assert llm.kind == "client"
    assert llm.status == "ok"
    attrs = llm.attributes
    assert attrs[semconv.OPERATION_NAME] == "chat"
    assert attrs[semconv.PROVIDER_NAME] == "openai"
    assert attrs[semconv.REQUEST_MODEL] == "gpt-4o-mini"
    assert attrs[semconv.RESPONSE_MODEL] == "gpt-4o-mini-2024-07-18"
    assert attrs[semconv.RESPONSE_ID] == "chatcmpl-1"
    assert attrs[semconv.RESPONSE_FINISH_REASONS] == ["stop"]
    assert attrs[semconv.USAGE_INPUT_TOKENS] == 12
    assert attrs[semconv.USAGE_OUTPUT_TOKENS] == 3
    assert attrs[semconv.USAGE_CACHE_READ_INPUT_TOKENS] == 4
    assert attrs[semconv.USAGE_REASONING_OUTPUT_TOKENS] == 1
    assert semconv.USAGE_CACHE_CREATION_INPUT_TOKENS not in attrs  # unknown stays unset
    assert attrs[semconv.CONVERSATION_ID] == session.id
    assert attrs[semconv.SERVER_ADDRESS] == "api.openai.com"
    assert attrs[semconv.REQUEST_TEMPERATURE] == 0.2
    assert attrs[semconv.COST_USD] == 0.00042
    assert attrs[semconv.TIME_TO_FIRST_TOKEN_MS] >= 0
    # Content is off by default.
    assert semconv.INPUT_MESSAGES not in attrs
    assert semconv.TOOL_CALL_ARGUMENTS not in tool.attributes

    assert tool.attributes[semconv.OPERATION_NAME] == "execute_tool"
    assert tool.attributes[semconv.TOOL_NAME] == "lookup"
    assert tool.attributes[semconv.TOOL_CALL_ID] == "call_1"
    assert command.attributes[semconv.COMMAND_SUCCESS] is True
    assert command.status == "ok"
    assert root.status == "ok"


async def test_a_failed_command_is_an_error_span(bus: MessageBus) -> None:
    obs = observability.enable(bus)

    def broken(cmd: Ask) -> str:
        raise ValueError("the model refused")

    bus.on_command(Ask, broken)
    async with bus.session("s") as session:
        result = await session.execute(Ask(question="?"))
    assert not result.success
    span = by_name(obs)["command Ask"]
    assert span.status == "error"
    assert span.status_message == "the model refused"
    assert span.attributes[semconv.ERROR_TYPE] == "builtins.ValueError"
    assert span.attributes[semconv.COMMAND_SUCCESS] is False
    assert [e[0] for e in span.events] == ["exception"]


async def test_a_session_that_raises_ends_with_an_error_span(bus: MessageBus) -> None:
    obs = observability.enable(bus)
    with pytest.raises(KeyError):
        async with bus.session("doomed"):
            raise KeyError("gone")
    span = by_name(obs)["session doomed"]
    assert span.status == "error"
    assert span.attributes[semconv.ERROR_TYPE] == "builtins.KeyError"


async def test_a_command_run_by_a_handler_nests_under_it(bus: MessageBus) -> None:
    obs = observability.enable(bus)
    bus.on_command(Ask, lambda c: "inner")

    async def outer(cmd: Outer) -> str:
        return (await bus.execute(Ask(question="nested"))).unwrap()

    bus.on_command(Outer, outer)
    await bus.execute(Outer())
    spans = by_name(obs)
    assert spans["command Ask"].parent_id == spans["command Outer"].span_id
    assert spans["command Outer"].parent_id is None  # no session: a root of its own


async def test_llm_call_outside_a_command_parents_to_its_session(bus: MessageBus) -> None:
    obs = observability.enable(bus)
    async with bus.session("chat") as session:
        with llm_span(provider="anthropic", model="claude-x", session_id=session.id):
            pass
    spans = by_name(obs)
    assert spans["chat claude-x"].parent_id == spans["session chat"].span_id


async def test_a_failed_llm_call_records_error_type_and_reraises() -> None:
    obs = observability.enable()

    class RateLimited(Exception):
        pass

    with (
        pytest.raises(RateLimited),
        llm_span(provider="gemini", model="gemini-2.5-flash", operation="generate_content"),
    ):
        raise RateLimited("slow down")
    span = by_name(obs)["generate_content gemini-2.5-flash"]
    assert span.status == "error"
    assert span.attributes[semconv.ERROR_TYPE].endswith("RateLimited")
    durations = obs.metrics_df().query("name == @semconv.METRIC_OPERATION_DURATION")
    assert durations["attributes.error.type"].str.endswith("RateLimited").all()


async def test_content_capture_from_the_conventional_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(semconv.CAPTURE_CONTENT_ENV, "true")
    obs = observability.enable()
    assert obs.capture_content
    with llm_span(provider="openai", model="m") as call:
        call.input([{"role": "user", "content": "hello"}], system="be brief")
        call.response(output=[{"role": "assistant", "content": "hi"}])
    with tool_span("add", arguments={"a": 1, "b": 2}) as tool:
        tool.result(3)
    spans = by_name(obs)
    llm = spans["chat m"].attributes
    assert '"hello"' in llm[semconv.INPUT_MESSAGES]
    assert llm[semconv.SYSTEM_INSTRUCTIONS] == "be brief"
    assert '"hi"' in llm[semconv.OUTPUT_MESSAGES]
    tool_attrs = spans["execute_tool add"].attributes
    assert tool_attrs[semconv.TOOL_CALL_ARGUMENTS] == '{"a": 1, "b": 2}'
    assert tool_attrs[semconv.TOOL_CALL_RESULT] == "3"


def test_helpers_do_nothing_while_observability_is_off() -> None:
    with llm_span(provider="openai", model="m") as call:
        call.input(["ignored"])
        call.response(input_tokens=1)
    assert call.span is None
    with tool_span("t") as tool:
        tool.result(1)
    assert tool.span is None


async def test_spans_df_has_the_documented_columns(bus: MessageBus) -> None:
    obs = observability.enable(bus)
    bus.on_command(Ask, fake_model)
    async with bus.session("chat") as session:
        await session.execute(Ask(question="q"))
    df = obs.spans_df()
    assert list(df.columns[:11]) == list(observability.SPAN_COLUMNS)
    assert len(df) == 4
    assert set(df["session_id"]) == {session.id}
    assert isinstance(df["start_time"].dtype, pd.DatetimeTZDtype)
    llm = df[df["name"] == "chat gpt-4o-mini"].iloc[0]
    assert llm["kind"] == "client"
    assert llm["attributes.gen_ai.usage.input_tokens"] == 12
    assert llm["duration_ms"] >= 0
