"""The Anthropic adapter against recorded traffic, replayed through the real SDK.

Every recording in ``cassettes/anthropic/`` is replayed: the request the adapter builds is
compared with the one that was recorded (the SDK's own JSON body), and the unified response
with what the recording says came back. Unit tests below cover the mappings no recording
shows (images, files, tool choice, usage arithmetic, error translation) and that a streamed
answer and the same answer without streaming assemble to equal responses.

The SDK speaks ``httpx2`` while the cassette transport (and ``httpx.MockTransport``) are
``httpx``: the adapter bridges an ``httpx.AsyncClient``, so these tests also cover that.
"""

from __future__ import annotations

import email.utils
import json
import logging
import re
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import anthropic
import httpx
import httpx2
import pytest

from llmgine.errors import (
    AuthenticationError,
    BadRequestError,
    ContextTooLongError,
    LLMConfigurationError,
    LLMConnectionError,
    LLMError,
    LLMTimeoutError,
    MissingCredentialsError,
    ModelNotFoundError,
    PermissionDeniedError,
    ProviderError,
    RateLimitedError,
    ServerUnavailableError,
)
from llmgine.llm import (
    ChatMessage,
    FilePart,
    ImagePart,
    LLMRequest,
    Reasoning,
    ReasoningDelta,
    ReasoningPart,
    ResponseFormat,
    ResponseMeta,
    StreamItem,
    TextDelta,
    TextPart,
    ToolCallDelta,
    ToolCallPart,
    ToolName,
    ToolResultPart,
    ToolSpec,
    UsageUpdate,
)
from llmgine.llm.providers.anthropic import (
    AnthropicOptions,
    AnthropicProvider,
    anthropic_json_schema,
)
from tests.llm.replay import CASSETTES, CassetteTransport, collect

MODEL_SONNET = "claude-sonnet-4-5"


def test_every_recording_is_replayed() -> None:
    """A recording added to cassettes/anthropic/ must get a test here."""
    recorded = {path.stem for path in (CASSETTES / "anthropic").glob("*.yaml")}
    replayed = set(re.findall(r'replay\("([^"]+)"\)', Path(__file__).read_text()))
    assert len(recorded) == 13
    assert replayed == recorded


def replay(cassette: str) -> tuple[AnthropicProvider, CassetteTransport]:
    transport = CassetteTransport.of(f"anthropic/{cassette}.yaml")
    provider = AnthropicProvider(api_key="sk-ant-test", http_client=transport.client())
    return provider, transport


def user_text(body: dict[str, Any], index: int = 0) -> str:
    """The text of the first block of recorded message ``index``."""
    text: str = body["messages"][index]["content"][0]["text"]
    return text


def tools_of(body: dict[str, Any]) -> list[ToolSpec]:
    return [
        ToolSpec(name=t["name"], description=t["description"], parameters=t["input_schema"])
        for t in body["tools"]
    ]


def count(items: list[StreamItem], kind: type[Any]) -> int:
    return sum(isinstance(item, kind) for item in items)


# -- recordings: plain answers --------------------------------------------------------------


async def test_plain_text_with_sampling_params() -> None:
    provider, transport = replay("messages_plain_text_sampling_params")
    recorded = transport.recorded_json(0)
    request = LLMRequest(
        messages=[ChatMessage.user(user_text(recorded))],
        temperature=0.2,
        options=[AnthropicOptions(top_k=40)],
    )
    response = await provider.generate(request.model_copy(update={"model": recorded["model"]}))

    # temperature and top_k have no SDK argument: they must still reach the wire.
    assert transport.sent_json(0) == recorded
    assert response.text == "Hello! \U0001f44b How can I help you today?"
    assert response.finish_reason == "stop"
    assert response.raw_finish_reason == "end_turn"
    assert response.usage.input_tokens == 8
    assert response.usage.output_tokens == 16
    assert response.usage.cache_read_tokens == 0
    assert response.usage.cache_write_tokens == 0
    assert response.usage.reasoning_tokens is None
    assert response.model == "claude-haiku-4-5-20251001"
    assert response.response_id == "msg_011CeEgv4QcC6bo2wwJgepD6"
    assert response.provider == "anthropic"
    assert isinstance(response.raw, dict)  # plain JSON data, not an SDK object
    assert response.raw["usage"]["inference_geo"] == "not_available"
    assert response.latency_ms is not None
    transport.assert_all_used()


async def test_system_prompt_goes_top_level() -> None:
    provider, transport = replay("messages_system_prompt")
    recorded = transport.recorded_json(0)
    request = LLMRequest(
        messages=[ChatMessage.system(recorded["system"]), ChatMessage.user(user_text(recorded))]
    )
    response = await provider.generate(request.model_copy(update={"model": recorded["model"]}))

    sent = transport.sent_json(0)
    assert sent == recorded
    assert all(m["role"] != "system" for m in sent["messages"])
    assert response.text == "The capital of France is Paris."
    assert (response.usage.input_tokens, response.usage.output_tokens) == (20, 10)
    assert response.model == "claude-3-opus-20240229"


async def test_structured_output_json_schema() -> None:
    provider, transport = replay("messages_structured_output_json_schema")
    recorded = transport.recorded_json(0)
    wire_schema = recorded["output_config"]["format"]["schema"]
    # As a pydantic model would give it: no additionalProperties, which Anthropic requires.
    schema = {k: v for k, v in wire_schema.items() if k != "additionalProperties"}
    request = LLMRequest(
        messages=[ChatMessage.user(user_text(recorded))],
        response_format=ResponseFormat(name="City", json_schema=schema),
    )
    response = await provider.generate(request.model_copy(update={"model": MODEL_SONNET}))

    sent = transport.sent_json(0)
    assert sent == recorded
    assert sent["output_config"]["format"]["type"] == "json_schema"
    assert json.loads(response.text) == {
        "city": "London",
        "country": "United Kingdom",
        "population": 9002488,
    }
    assert response.usage.input_tokens == 196


async def test_prompt_cache_usage_over_two_turns() -> None:
    provider, transport = replay("messages_prompt_cache_usage_multiturn")
    first, second = transport.recorded_json(0), transport.recorded_json(1)
    options = [AnthropicOptions(cache_control="5m")]
    history = [ChatMessage.system(first["system"]), ChatMessage.user(user_text(first))]
    response = await provider.generate(
        LLMRequest(messages=history, options=options, model=MODEL_SONNET)
    )

    assert transport.sent_json(0) == first
    assert transport.sent_json(0)["cache_control"] == {"type": "ephemeral", "ttl": "5m"}
    # input_tokens 3 + 1111 read from the cache.
    assert response.usage.input_tokens == 1114
    assert response.usage.cache_read_tokens == 1111
    assert response.usage.cache_write_tokens == 0

    history += [response.message, ChatMessage.user(user_text(second, 2))]
    again = await provider.generate(
        LLMRequest(messages=history, options=options, model=MODEL_SONNET)
    )
    assert transport.sent_json(1) == second
    # 3 uncached + 1111 read + 418 written.
    assert again.usage.input_tokens == 3 + 1111 + 418
    assert again.usage.cache_read_tokens == 1111
    assert again.usage.cache_write_tokens == 418
    assert again.usage.output_tokens == 33
    assert again.text.startswith("Python is a beginner-friendly")


# -- recordings: thinking and tools ---------------------------------------------------------


async def test_multiturn_thinking_sends_the_signed_block_back() -> None:
    provider, transport = replay("messages_multiturn_thinking")
    first, second = transport.recorded_json(0), transport.recorded_json(1)
    reasoning = Reasoning(budget_tokens=1024)
    history = [ChatMessage.user(user_text(first))]
    response = await provider.generate(
        LLMRequest(messages=history, reasoning=reasoning, model=MODEL_SONNET)
    )

    assert transport.sent_json(0) == first
    [thinking] = response.reasoning
    recorded_block = second["messages"][1]["content"][0]
    assert thinking.text == recorded_block["thinking"]
    assert thinking.signature == recorded_block["signature"]
    assert thinking.provider == "anthropic"
    assert response.parts[0] == thinking  # thinking first, then the answer
    assert response.text.startswith("Here's how to cross the street safely")

    history += [response.message, ChatMessage.user(user_text(second, 2))]
    again = await provider.generate(
        LLMRequest(messages=history, reasoning=reasoning, model=MODEL_SONNET)
    )
    sent = transport.sent_json(1)
    assert sent == second
    assert sent["messages"][1]["content"][0]["signature"] == thinking.signature
    assert again.reasoning[0].signature is not None
    assert again.reasoning[0].signature.startswith("EvgHCkYICxgCKkBWep44")
    assert again.text.startswith("# How to Cross a River")
    assert (again.usage.input_tokens, again.usage.output_tokens) == (354, 525)


async def test_tool_use_then_tool_result() -> None:
    provider, transport = replay("messages_tool_use_then_tool_result")
    first, second = transport.recorded_json(0), transport.recorded_json(1)
    tools = tools_of(first)
    history = [ChatMessage.user(user_text(first))]
    response = await provider.generate(
        LLMRequest(messages=history, tools=tools, tool_choice="required", model=MODEL_SONNET)
    )

    assert transport.sent_json(0) == first
    assert transport.sent_json(0)["tool_choice"] == {"type": "any"}
    [call] = response.tool_calls
    assert (call.id, call.name, call.arguments) == (
        "toolu_01X9wcHKKAZD9tBC711xipPa",
        "get_user_country",
        {},
    )
    assert (response.finish_reason, response.raw_finish_reason) == ("tool_calls", "tool_use")

    result = ToolResultPart(call_id=call.id, name=call.name, content="Mexico")
    history += [response.message, ChatMessage.tool_results([result])]
    again = await provider.generate(
        LLMRequest(messages=history, tools=tools, tool_choice="required", model=MODEL_SONNET)
    )
    assert transport.sent_json(1) == second
    [final] = again.tool_calls
    assert final.name == "final_result"
    assert final.arguments == {"city": "Mexico City", "country": "Mexico"}
    transport.assert_all_used()


async def test_four_parallel_tool_calls_and_their_results() -> None:
    provider, transport = replay("messages_parallel_tool_use_with_results")
    first, second = transport.recorded_json(0), transport.recorded_json(1)
    tools = tools_of(first)
    history = [ChatMessage.system(first["system"]), ChatMessage.user(user_text(first))]
    response = await provider.generate(
        LLMRequest(messages=history, tools=tools, tool_choice="auto", model="claude-haiku-4-5")
    )

    assert transport.sent_json(0) == first
    assert isinstance(response.parts[0], TextPart)  # the text block came before the calls
    calls = response.tool_calls
    assert [c.id for c in calls] == [
        "toolu_0167cfEnoQaPviGdVXA95zcu",
        "toolu_01EEe2V5HD1Ac4rKiUR4HD2T",
        "toolu_01XFyAjstT3966qvRynZyVPo",
        "toolu_013mnQZbgtK2oe3Mo3XKJsx3",
    ]
    assert [c.arguments["name"] for c in calls] == ["Alice", "Bob", "Charlie", "Daisy"]
    assert response.usage.output_tokens == 202

    answers = [b["content"] for b in second["messages"][2]["content"]]
    results = [ToolResultPart(call_id=c.id, content=a) for c, a in zip(calls, answers, strict=True)]
    history += [response.message, ChatMessage.tool_results(results)]
    again = await provider.generate(
        LLMRequest(messages=history, tools=tools, tool_choice="auto", model="claude-haiku-4-5")
    )
    assert transport.sent_json(1) == second
    assert "Daisy is the youngest" in again.text
    assert again.finish_reason == "stop"


async def test_tool_use_with_thinking_round_trip() -> None:
    provider, transport = replay("messages_tool_use_with_thinking")
    first, second = transport.recorded_json(0), transport.recorded_json(1)
    tools = tools_of(first)
    reasoning = Reasoning(budget_tokens=3000)
    history = [ChatMessage.user(user_text(first))]
    request = LLMRequest(messages=history, tools=tools, tool_choice="auto", reasoning=reasoning)
    response = await provider.generate(request.model_copy(update={"model": "claude-sonnet-4-0"}))

    assert transport.sent_json(0) == first
    assert [type(p).__name__ for p in response.parts] == [
        "ReasoningPart",
        "TextPart",
        "ToolCallPart",
    ]
    assert response.reasoning[0].signature == second["messages"][1]["content"][0]["signature"]
    [call] = response.tool_calls
    assert call.id == "toolu_01YGzqpRE16Vricda3Aqcejo"

    result = ToolResultPart(call_id=call.id, content="Mexico")
    history += [response.message, ChatMessage.tool_results([result])]
    request = LLMRequest(messages=history, tools=tools, tool_choice="auto", reasoning=reasoning)
    again = await provider.generate(request.model_copy(update={"model": "claude-sonnet-4-0"}))
    sent = transport.sent_json(1)
    assert sent == second
    assert sent["messages"][1]["content"][0]["type"] == "thinking"
    assert "Mexico City" in again.text


# -- recordings: streams --------------------------------------------------------------------


async def test_stream_thinking_arrives_in_deltas() -> None:
    provider, transport = replay("messages_stream_thinking")
    recorded = transport.recorded_json(0)
    request = LLMRequest(
        messages=[ChatMessage.user(user_text(recorded))],
        reasoning=Reasoning(budget_tokens=1024),
        stream=True,
    )
    items, response = await collect(provider, request, "claude-sonnet-4-0")

    assert transport.sent_json(0) == recorded
    assert transport.sent_json(0)["stream"] is True
    assert count(items, ReasoningDelta) >= 10
    assert count(items, TextDelta) >= 10
    assert next(i for i in items if isinstance(i, ReasoningDelta) and i.signature).signature
    [thinking] = response.reasoning
    assert thinking.text.startswith("This is a straightforward question about pedestrian safety")
    assert thinking.text.endswith("help prevent accidents.")
    assert thinking.signature is not None
    assert thinking.signature.startswith("EvMCCkYICxgCKkCHP2cS")
    assert response.text.startswith("Here are the basic steps for safely crossing the street:")
    assert response.text.endswith("when crossing streets.")
    assert (response.usage.input_tokens, response.usage.output_tokens) == (43, 282)
    assert (response.finish_reason, response.raw_finish_reason) == ("stop", "end_turn")
    assert response.model == "claude-sonnet-4-20250514"
    assert response.response_id == "msg_01ALwQ87pTS7hH1PjSdC9wJD"
    assert response.time_to_first_token_ms is not None


async def test_stream_text_stdvcr() -> None:
    provider, transport = replay("messages_stream_text__stdvcr")
    recorded = transport.recorded_json(0)
    request = LLMRequest(
        messages=[ChatMessage.user(user_text(recorded))], temperature=1.0, max_tokens=8192
    )
    items, response = await collect(provider, request, recorded["model"])

    assert transport.sent_json(0) == recorded
    assert isinstance(items[0], ResponseMeta)
    assert response.text == "Hello"
    assert (response.usage.input_tokens, response.usage.output_tokens) == (10, 4)
    assert response.response_id == "msg_01T8kTq7cYyYJeQ5DxcVUc6D"


async def test_stream_parallel_tool_use_gzip_then_result() -> None:
    provider, transport = replay("messages_stream_tool_use_then_result__stdvcr_gzip")
    assert transport.interactions[0].headers["Content-Encoding"] == "gzip"
    first, second = transport.recorded_json(0), transport.recorded_json(1)
    tools = tools_of(first)
    history = [ChatMessage.user(user_text(first))]
    request = LLMRequest(messages=history, tools=tools, temperature=1.0, max_tokens=8192)
    items, response = await collect(provider, request, first["model"])

    assert transport.sent_json(0) == first
    # Each call: its start (id and name) and one (empty) arguments fragment.
    assert count(items, ToolCallDelta) == 4
    calls = response.tool_calls
    assert [c.id for c in calls] == [
        "toolu_01LtHJmixrs9NcWQkK8hu8hj",
        "toolu_01N8a4jWyf116qKTMqKKmjyt",
    ]
    assert all(c.name == "pelican_name_generator" and c.arguments == {} for c in calls)
    assert (response.finish_reason, response.raw_finish_reason) == ("tool_calls", "tool_use")
    assert (response.usage.input_tokens, response.usage.output_tokens) == (542, 62)

    results = [ToolResultPart(call_id=calls[0].id, content="Charles")]
    results.append(ToolResultPart(call_id=calls[1].id, content="Sammy"))
    history += [response.message, ChatMessage.tool_results(results)]
    request = LLMRequest(messages=history, tools=tools, temperature=1.0, max_tokens=8192)
    items, again = await collect(provider, request, first["model"])

    sent = transport.sent_json(1)
    # The recording's client also sent a " " text block and no is_error; the rest must match.
    assert [b for b in sent["messages"][1]["content"] if b["type"] == "tool_use"] == [
        b for b in second["messages"][1]["content"] if b["type"] == "tool_use"
    ]
    assert [(b["tool_use_id"], b["content"]) for b in sent["messages"][2]["content"]] == [
        (b["tool_use_id"], b["content"]) for b in second["messages"][2]["content"]
    ]
    assert {k: v for k, v in sent.items() if k != "messages"} == {
        k: v for k, v in second.items() if k != "messages"
    }
    assert count(items, TextDelta) == 4
    assert again.text.startswith("Here are two great names for your pet pelican")
    assert "**Sammy**" in again.text
    assert again.usage.output_tokens == 82
    transport.assert_all_used()


# -- recordings: errors ---------------------------------------------------------------------


async def test_error_400_is_bad_request() -> None:
    provider, transport = replay("messages_error_400_invalid_request")
    recorded = transport.recorded_json(0)
    request = LLMRequest(
        messages=[ChatMessage.user(user_text(recorded))],
        options=[AnthropicOptions(effort="xhigh")],
    )
    with pytest.raises(BadRequestError) as caught:
        await provider.generate(request.model_copy(update={"model": recorded["model"]}))

    assert transport.sent_json(0) == recorded
    assert type(caught.value) is BadRequestError
    assert caught.value.status_code == 400
    assert isinstance(caught.value.__cause__, anthropic.BadRequestError)
    assert "does not support effort level 'xhigh'" in str(caught.value)
    assert isinstance(caught.value.body, dict)
    assert (caught.value.provider, caught.value.model) == ("anthropic", "claude-opus-4-6")
    assert caught.value.retryable is False


async def test_error_404_is_model_not_found() -> None:
    provider, transport = replay("messages_error_404_model_not_found")
    request = LLMRequest(messages=[ChatMessage.user("hello")])
    with pytest.raises(ModelNotFoundError) as caught:
        await provider.generate(request.model_copy(update={"model": "claude-sonet-4-5"}))

    assert transport.sent_json(0) == transport.recorded_json(0)
    assert type(caught.value) is ModelNotFoundError
    assert caught.value.status_code == 404
    assert isinstance(caught.value.__cause__, anthropic.NotFoundError)
    assert "claude-sonet-4-5" in str(caught.value)


# -- request mapping ------------------------------------------------------------------------

Handler = Callable[[httpx.Request], httpx.Response]

MESSAGE: dict[str, Any] = {
    "id": "msg_test",
    "type": "message",
    "role": "assistant",
    "model": "claude-test-1",
    "content": [{"type": "text", "text": "ok"}],
    "stop_reason": "end_turn",
    "stop_sequence": None,
    "usage": {"input_tokens": 1, "output_tokens": 1},
}


def mock(handler: Handler) -> tuple[AnthropicProvider, list[httpx.Request]]:
    seen: list[httpx.Request] = []

    def record(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return handler(request)

    client = httpx.AsyncClient(transport=httpx.MockTransport(record))
    return AnthropicProvider(api_key="sk-ant-test", http_client=client), seen


def answer(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, json=MESSAGE)


async def sent_body(request: LLMRequest, model: str = "claude-test") -> dict[str, Any]:
    provider, seen = mock(answer)
    await provider.generate(request.model_copy(update={"model": model}))
    body: dict[str, Any] = json.loads(seen[0].content)
    return body


async def test_same_role_turns_are_merged_and_tool_results_lead() -> None:
    call = ToolCallPart(id="t1", name="f", arguments={"x": 1})
    body = await sent_body(
        LLMRequest(
            messages=[
                ChatMessage.system("be brief"),
                ChatMessage.user("one"),
                ChatMessage.user("two"),
                ChatMessage.assistant([TextPart(text="calling"), call]),
                ChatMessage.assistant(""),  # empty: skipped, not sent as an empty turn
                ChatMessage.tool_results([ToolResultPart(call_id="t1", content={"y": 2})]),
                ChatMessage.user("thanks"),
                ChatMessage.system("and polite"),
            ]
        )
    )
    assert body["system"] == "be brief\n\nand polite"
    assert [m["role"] for m in body["messages"]] == ["user", "assistant", "user"]
    assert body["messages"][0]["content"] == [
        {"type": "text", "text": "one"},
        {"type": "text", "text": "two"},
    ]
    assert body["messages"][1]["content"][1] == {
        "type": "tool_use",
        "id": "t1",
        "name": "f",
        "input": {"x": 1},
    }
    assert body["messages"][2]["content"] == [
        {"type": "tool_result", "tool_use_id": "t1", "content": '{"y": 2}', "is_error": False},
        {"type": "text", "text": "thanks"},
    ]


async def test_results_after_text_in_one_user_turn_are_moved_first() -> None:
    failed = ToolResultPart(call_id="t1", content="boom", is_error=True)
    body = await sent_body(
        LLMRequest(
            messages=[
                ChatMessage.user("go"),
                ChatMessage.assistant([ToolCallPart(id="t1", name="f")]),
                ChatMessage.user([TextPart(text="note"), failed]),
            ]
        )
    )
    assert [b["type"] for b in body["messages"][2]["content"]] == ["tool_result", "text"]
    assert body["messages"][2]["content"][0]["is_error"] is True


async def test_images_and_pdfs() -> None:
    body = await sent_body(
        LLMRequest(
            messages=[
                ChatMessage.user(
                    [
                        ImagePart(data=b"\x89PNG", media_type="image/png"),
                        ImagePart(url="https://example.com/cat.jpg"),
                        FilePart(data=b"%PDF-1.4", media_type="application/pdf", name="a.pdf"),
                        FilePart(url="https://example.com/doc.pdf"),
                        FilePart(data=b"plain words", media_type="text/plain"),
                    ]
                )
            ]
        )
    )
    blocks = body["messages"][0]["content"]
    assert blocks[0] == {
        "type": "image",
        "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw=="},
    }
    assert blocks[1] == {
        "type": "image",
        "source": {"type": "url", "url": "https://example.com/cat.jpg"},
    }
    assert blocks[2] == {
        "type": "document",
        "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0xLjQ="},
        "title": "a.pdf",
    }
    assert blocks[3] == {
        "type": "document",
        "source": {"type": "url", "url": "https://example.com/doc.pdf"},
    }
    assert blocks[4]["source"] == {
        "type": "text",
        "media_type": "text/plain",
        "data": "plain words",
    }


async def test_unsupported_file_says_what_is_accepted() -> None:
    audio = FilePart(data=b"RIFF", media_type="audio/wav")
    with pytest.raises(LLMConfigurationError, match="PDF"):
        await sent_body(LLMRequest(messages=[ChatMessage.user([audio])]))


async def test_only_anthropic_signed_reasoning_goes_back() -> None:
    parts: list[Any] = [
        ReasoningPart(text="theirs", signature="sig-o", provider="openai"),
        ReasoningPart(text="unsigned", provider="anthropic"),
        ReasoningPart(text="mine", signature="sig-a", provider="anthropic"),
        ReasoningPart(redacted=True, provider="anthropic", provider_data={"data": "opaque"}),
        TextPart(text="answer"),
    ]
    body = await sent_body(
        LLMRequest(
            messages=[
                ChatMessage.user("q"),
                ChatMessage.assistant(parts),
                ChatMessage.assistant([ReasoningPart(text="x", provider="gemini")]),
                ChatMessage.user("q2"),
            ]
        )
    )
    assert [m["role"] for m in body["messages"]] == ["user", "assistant", "user"]
    assert body["messages"][1]["content"] == [
        {"type": "thinking", "thinking": "mine", "signature": "sig-a"},
        {"type": "redacted_thinking", "data": "opaque"},
        {"type": "text", "text": "answer"},
    ]


TOOL = ToolSpec(name="f", description="does f")


@pytest.mark.parametrize(
    ("choice", "parallel", "expected"),
    [
        ("auto", None, {"type": "auto"}),
        ("required", None, {"type": "any"}),
        ("none", None, {"type": "none"}),
        (ToolName(name="f"), None, {"type": "tool", "name": "f"}),
        ("auto", False, {"type": "auto", "disable_parallel_tool_use": True}),
        ("required", False, {"type": "any", "disable_parallel_tool_use": True}),
        (
            ToolName(name="f"),
            False,
            {"type": "tool", "name": "f", "disable_parallel_tool_use": True},
        ),
        (None, False, {"type": "auto", "disable_parallel_tool_use": True}),
        (None, None, None),
    ],
)
async def test_tool_choice(choice: Any, parallel: bool | None, expected: Any) -> None:
    request = LLMRequest(
        messages=[ChatMessage.user("hi")],
        tools=[TOOL],
        tool_choice=choice,
        parallel_tool_calls=parallel,
    )
    body = await sent_body(request)
    assert body.get("tool_choice") == expected
    assert body["tools"] == [
        {
            "name": "f",
            "description": "does f",
            "input_schema": {"type": "object", "properties": {}},
        }
    ]


async def test_options_and_sampling_reach_the_wire(caplog: pytest.LogCaptureFixture) -> None:
    provider, seen = mock(answer)
    request = LLMRequest(
        messages=[ChatMessage.system("sys"), ChatMessage.user("hi")],
        top_p=0.9,
        stop=["END"],
        seed=7,
        timeout=12.5,
        options=[
            AnthropicOptions(
                cache_control=True,
                cache_system=True,
                metadata_user_id="u-1",
                service_tier="standard_only",
                betas=["a-2025", "b-2026"],
                extra_body={"top_p": 0.5, "custom": {"k": 1}},
            )
        ],
    )
    with caplog.at_level(logging.WARNING, logger="llmgine.llm"):
        await provider.generate(request.model_copy(update={"model": "claude-test"}))
        await provider.generate(request.model_copy(update={"model": "claude-test"}))
    body = json.loads(seen[0].content)
    assert body["system"] == [
        {"type": "text", "text": "sys", "cache_control": {"type": "ephemeral"}}
    ]
    assert body["cache_control"] == {"type": "ephemeral"}
    assert body["metadata"] == {"user_id": "u-1"}
    assert body["service_tier"] == "standard_only"
    assert body["stop_sequences"] == ["END"]
    assert body["top_p"] == 0.5  # extra_body is verbatim and wins
    assert body["custom"] == {"k": 1}
    assert "seed" not in body
    assert seen[0].headers["anthropic-beta"] == "a-2025,b-2026"
    assert seen[0].extensions["timeout"]["read"] == 12.5
    # Anthropic has no seed: said once per provider, not on every call.
    warned = [r for r in caplog.records if "seed" in r.getMessage()]
    assert len(warned) == 1


def test_schema_transform_for_anthropic_limits() -> None:
    schema = {
        "title": "Thing",
        "type": "object",
        "properties": {
            "n": {"type": "integer", "minimum": 1, "maximum": 9, "description": "a number"},
            "s": {"type": "string", "maxLength": 5, "format": "uri", "pattern": "^h"},
            "tags": {"type": "array", "items": {"type": "string"}, "minItems": 3},
            "kind": {"oneOf": [{"const": "a"}, {"type": "object", "properties": {}}]},
            "ref": {"$ref": "#/$defs/Inner"},
        },
        "required": ["n"],
        "$defs": {"Inner": {"type": "object", "properties": {"x": {"type": "number"}}}},
    }
    original = json.dumps(schema, sort_keys=True)
    out = anthropic_json_schema(schema)
    assert json.dumps(schema, sort_keys=True) == original  # input untouched
    assert out["additionalProperties"] is False
    assert out["title"] == "Thing"
    assert out["required"] == ["n"]
    props = out["properties"]
    assert props["n"] == {"type": "integer", "description": "a number\n\n{minimum: 1, maximum: 9}"}
    assert props["s"] == {
        "type": "string",
        "format": "uri",
        "pattern": "^h",
        "description": "{maxLength: 5}",
    }
    assert props["tags"] == {
        "type": "array",
        "items": {"type": "string"},
        "description": "{minItems: 3}",
    }
    assert props["kind"] == {
        "anyOf": [
            {"const": "a"},
            {"type": "object", "properties": {}, "additionalProperties": False},
        ]
    }
    assert props["ref"] == {"$ref": "#/$defs/Inner"}
    assert out["$defs"]["Inner"]["additionalProperties"] is False


async def test_strict_tool_schema_is_transformed() -> None:
    strict = ToolSpec(
        name="f",
        parameters={"type": "object", "properties": {"a": {"type": "string", "minLength": 2}}},
        strict=True,
    )
    body = await sent_body(LLMRequest(messages=[ChatMessage.user("hi")], tools=[strict]))
    assert body["tools"][0]["strict"] is True
    assert body["tools"][0]["input_schema"]["additionalProperties"] is False
    assert body["tools"][0]["input_schema"]["properties"]["a"]["description"] == "{minLength: 2}"


# -- response mapping -----------------------------------------------------------------------

USAGE_WITH_CACHE = {
    "input_tokens": 5,
    "output_tokens": 30,
    "cache_read_input_tokens": 100,
    "cache_creation_input_tokens": 20,
}


async def test_usage_counts_cached_tokens_as_input() -> None:
    def cached(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={**MESSAGE, "usage": USAGE_WITH_CACHE})

    provider, _ = mock(cached)
    response = await provider.generate(LLMRequest(messages=[ChatMessage.user("hi")], model="m"))
    usage = response.usage
    assert usage.input_tokens == 125  # 5 uncached + 100 read + 20 written
    assert usage.cache_read_tokens == 100
    assert usage.cache_write_tokens == 20
    assert usage.output_tokens == 30
    assert usage.reasoning_tokens is None
    assert usage.total_tokens == 155


@pytest.mark.parametrize(
    ("stop_reason", "finish"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("max_tokens", "length"),
        ("tool_use", "tool_calls"),
        ("refusal", "content_filter"),
        ("pause_turn", "other"),
        ("something_new", "other"),
    ],
)
async def test_finish_reasons(stop_reason: str, finish: str) -> None:
    def stopped(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={**MESSAGE, "stop_reason": stop_reason})

    provider, _ = mock(stopped)
    response = await provider.generate(LLMRequest(messages=[ChatMessage.user("hi")], model="m"))
    assert (response.finish_reason, response.raw_finish_reason) == (finish, stop_reason)


FULL_MESSAGE: dict[str, Any] = {
    **MESSAGE,
    "id": "msg_full",
    "content": [
        {"type": "thinking", "thinking": "Let me think. Done.", "signature": "c2lnbmF0dXJl"},
        {"type": "redacted_thinking", "data": "ZW5jcnlwdGVk"},
        {"type": "text", "text": "Calling the tool now."},
        {"type": "tool_use", "id": "toolu_1", "name": "lookup", "input": {"q": "x", "n": 2}},
        {"type": "text", "text": "A second text block."},
    ],
    "stop_reason": "tool_use",
    "usage": USAGE_WITH_CACHE,
}


def sse(events: list[dict[str, Any]]) -> bytes:
    # Padded like the real server's `data:` lines, to exercise the SDK's parser.
    return "".join(f"event: {e['type']}\ndata: {json.dumps(e)}   \n\n" for e in events).encode()


FULL_STREAM = sse(
    [
        {
            "type": "message_start",
            "message": {
                **FULL_MESSAGE,
                "content": [],
                "stop_reason": None,
                "usage": {**USAGE_WITH_CACHE, "output_tokens": 1},
            },
        },
        {
            "type": "content_block_start",
            "index": 0,
            "content_block": {"type": "thinking", "thinking": "", "signature": ""},
        },
        {"type": "ping"},
        {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "thinking_delta", "thinking": "Let me think."},
        },
        {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "thinking_delta", "thinking": " Done."},
        },
        {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "signature_delta", "signature": "c2lnbmF0dXJl"},
        },
        {"type": "content_block_stop", "index": 0},
        {
            "type": "content_block_start",
            "index": 1,
            "content_block": {"type": "redacted_thinking", "data": "ZW5jcnlwdGVk"},
        },
        {"type": "content_block_stop", "index": 1},
        {"type": "content_block_start", "index": 2, "content_block": {"type": "text", "text": ""}},
        {
            "type": "content_block_delta",
            "index": 2,
            "delta": {"type": "text_delta", "text": "Calling the"},
        },
        {
            "type": "content_block_delta",
            "index": 2,
            "delta": {"type": "text_delta", "text": " tool now."},
        },
        {"type": "content_block_stop", "index": 2},
        {
            "type": "content_block_start",
            "index": 3,
            "content_block": {"type": "tool_use", "id": "toolu_1", "name": "lookup", "input": {}},
        },
        {
            "type": "content_block_delta",
            "index": 3,
            "delta": {"type": "input_json_delta", "partial_json": '{"q": "x",'},
        },
        {
            "type": "content_block_delta",
            "index": 3,
            "delta": {"type": "input_json_delta", "partial_json": ' "n": 2}'},
        },
        {"type": "content_block_stop", "index": 3},
        {"type": "content_block_start", "index": 4, "content_block": {"type": "text", "text": ""}},
        {
            "type": "content_block_delta",
            "index": 4,
            "delta": {"type": "text_delta", "text": "A second text block."},
        },
        {"type": "content_block_stop", "index": 4},
        {
            "type": "message_delta",
            "delta": {"stop_reason": "tool_use", "stop_sequence": None},
            "usage": {"output_tokens": 30},
        },
        {"type": "message_stop"},
    ]
)


def full_answer(request: httpx.Request) -> httpx.Response:
    if json.loads(request.content).get("stream"):
        return httpx.Response(
            200, content=FULL_STREAM, headers={"content-type": "text/event-stream"}
        )
    return httpx.Response(200, json=FULL_MESSAGE)


async def test_streamed_and_plain_responses_are_equal() -> None:
    provider, seen = mock(full_answer)
    request = LLMRequest(messages=[ChatMessage.user("hi")])
    plain = await provider.generate(request.model_copy(update={"model": "claude-test"}))
    items, streamed = await collect(provider, request, "claude-test")

    assert [json.loads(r.content).get("stream") for r in seen] == [False, True]
    assert streamed.same_content(plain)
    assert count(items, ReasoningDelta) == 5  # start, 2 texts, signature, redacted
    assert count(items, TextDelta) == 3
    assert [type(p).__name__ for p in streamed.parts].count("TextPart") == 2
    assert count(items, ToolCallDelta) == 3
    assert count(items, UsageUpdate) == 2
    thinking, redacted = plain.reasoning
    assert (thinking.text, thinking.signature) == ("Let me think. Done.", "c2lnbmF0dXJl")
    assert redacted.redacted
    assert redacted.provider_data == {"data": "ZW5jcnlwdGVk"}
    assert redacted.text == ""
    assert plain.tool_calls[0].arguments == {"q": "x", "n": 2}
    assert plain.usage.input_tokens == 125
    assert plain.response_id == streamed.response_id == "msg_full"
    assert plain.model == "claude-test-1"
    # The parts go back as they came: the redacted block too.
    again = await sent_body(LLMRequest(messages=[ChatMessage.user("hi"), streamed.message]))
    assert [b["type"] for b in again["messages"][1]["content"]] == [
        "thinking",
        "redacted_thinking",
        "text",
        "tool_use",
        "text",
    ]


@pytest.mark.parametrize(
    ("reasoning", "max_tokens", "budget", "sent_max"),
    [
        (Reasoning(effort="low"), None, 1024, 4096),
        (Reasoning(effort="medium"), None, 4096, 4096 + 4096),
        (Reasoning(effort="high"), None, 16384, 16384 + 4096),
        (Reasoning(effort="high"), 30000, 16384, 30000),
        (Reasoning(budget_tokens=2000, effort="high"), None, 2000, 4096),
    ],
)
async def test_reasoning_budget(
    reasoning: Reasoning, max_tokens: int | None, budget: int, sent_max: int
) -> None:
    provider, seen = mock(full_answer)
    request = LLMRequest(
        messages=[ChatMessage.user("hi")], reasoning=reasoning, max_tokens=max_tokens
    )
    response = await provider.generate(request.model_copy(update={"model": "claude-test"}))
    body = json.loads(seen[0].content)
    assert body["thinking"] == {"type": "enabled", "budget_tokens": budget}
    assert body["max_tokens"] == sent_max
    # Past ~21k tokens the SDK refuses to wait without streaming: the adapter streams.
    assert body["stream"] is (sent_max > 21_333)
    assert response.tool_calls[0].arguments == {"q": "x", "n": 2}


async def test_options_thinking_budget_wins() -> None:
    request = LLMRequest(
        messages=[ChatMessage.user("hi")],
        reasoning=Reasoning(effort="high"),
        options=[AnthropicOptions(thinking_budget_tokens=1500)],
    )
    body = await sent_body(request)
    assert body["thinking"] == {"type": "enabled", "budget_tokens": 1500}
    assert "thinking" not in await sent_body(LLMRequest(messages=[ChatMessage.user("hi")]))


# -- errors ---------------------------------------------------------------------------------


def test_missing_key_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    with pytest.raises(MissingCredentialsError, match="ANTHROPIC_API_KEY"):
        AnthropicProvider()


async def test_key_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-from-env")
    seen: list[httpx.Request] = []

    def record(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return answer(request)

    client = httpx.AsyncClient(transport=httpx.MockTransport(record))
    provider = AnthropicProvider(http_client=client)
    await provider.generate(LLMRequest(messages=[ChatMessage.user("hi")], model="m"))
    sent = seen[0].headers
    # The SDK decides the header (x-api-key or a bearer token); the key must be in it.
    assert "sk-ant-from-env" in sent.get("x-api-key", "") + sent.get("authorization", "")


def sdk_error(
    status: int, error_type: str, message: str, headers: dict[str, str] | None = None
) -> anthropic.APIStatusError:
    # httpx2, not httpx: the SDK's errors hold httpx2 requests and responses.
    request = httpx2.Request("POST", "https://api.anthropic.com/v1/messages")
    body = {"type": "error", "error": {"type": error_type, "message": message}}
    response = httpx2.Response(status, headers=headers, json=body, request=request)
    classes: dict[int, type[anthropic.APIStatusError]] = {
        400: anthropic.BadRequestError,
        401: anthropic.AuthenticationError,
        403: anthropic.PermissionDeniedError,
        408: anthropic.RequestTimeoutError,
        413: anthropic.ContentTooLargeError,
        429: anthropic.RateLimitError,
        500: anthropic.InternalServerError,
        529: anthropic.OverloadedError,
    }
    return classes[status](message, response=response, body=body)


@pytest.mark.parametrize(
    ("status", "error_type", "message", "expected"),
    [
        (401, "authentication_error", "invalid x-api-key", AuthenticationError),
        (403, "permission_error", "no access", PermissionDeniedError),
        (
            400,
            "invalid_request_error",
            "prompt is too long: 210000 tokens > 200000",
            ContextTooLongError,
        ),
        (
            400,
            "invalid_request_error",
            "input length and `max_tokens` exceed context limit: 197000 + 8192 > 200000",
            ContextTooLongError,
        ),
        (400, "invalid_request_error", "temperature: must be <= 1", BadRequestError),
        (408, "timeout_error", "Request timed out", LLMTimeoutError),
        (413, "request_too_large", "Request exceeds the maximum size", BadRequestError),
        (500, "api_error", "Internal server error", ServerUnavailableError),
        (529, "overloaded_error", "Overloaded", ServerUnavailableError),
    ],
)
def test_status_errors(
    status: int, error_type: str, message: str, expected: type[Exception]
) -> None:
    provider = AnthropicProvider(api_key="sk-ant-test")
    mapped = provider._translated(sdk_error(status, error_type, message), "claude-x")
    assert type(mapped) is expected
    assert isinstance(mapped, LLMError)
    assert mapped.status_code == status
    assert message in str(mapped)
    assert mapped.body == {"type": "error", "error": {"type": error_type, "message": message}}
    assert (mapped.provider, mapped.model) == ("anthropic", "claude-x")


def test_overloaded_is_retryable() -> None:
    provider = AnthropicProvider(api_key="sk-ant-test")
    mapped = provider._translated(sdk_error(529, "overloaded_error", "Overloaded"), "m")
    assert isinstance(mapped, ServerUnavailableError)
    assert mapped.retryable is True
    assert "try again" in str(mapped)


def test_rate_limit_retry_after_seconds_and_date() -> None:
    provider = AnthropicProvider(api_key="sk-ant-test")
    mapped = provider._translated(
        sdk_error(429, "rate_limit_error", "slow down", {"retry-after": "7"}), "m"
    )
    assert isinstance(mapped, RateLimitedError)
    assert mapped.retry_after == 7.0
    assert "Wait 7 s" in str(mapped)

    later = email.utils.formatdate(time.time() + 120, usegmt=True)
    mapped = provider._translated(
        sdk_error(429, "rate_limit_error", "slow down", {"retry-after": later}), "m"
    )
    assert isinstance(mapped, RateLimitedError)
    assert mapped.retry_after is not None
    assert 100 < mapped.retry_after <= 121

    mapped = provider._translated(sdk_error(429, "rate_limit_error", "slow down"), "m")
    assert isinstance(mapped, RateLimitedError)
    assert mapped.retry_after is None


def test_non_sdk_exceptions_are_not_translated() -> None:
    provider = AnthropicProvider(api_key="sk-ant-test")
    bug = ValueError("a bug")
    assert provider._translated(bug, "m") is bug


async def test_rate_limit_over_http_is_not_retried_by_the_sdk() -> None:
    def limited(request: httpx.Request) -> httpx.Response:
        body = {"type": "error", "error": {"type": "rate_limit_error", "message": "slow"}}
        return httpx.Response(429, json=body, headers={"retry-after": "3"})

    provider, seen = mock(limited)
    with pytest.raises(RateLimitedError) as caught:
        await provider.generate(LLMRequest(messages=[ChatMessage.user("hi")], model="m"))
    assert caught.value.retry_after == 3.0
    assert isinstance(caught.value.__cause__, anthropic.RateLimitError)
    assert len(seen) == 1  # max_retries=0: llmgine's retry wrapper decides, not the SDK


@pytest.mark.parametrize(
    ("failure", "expected", "cause"),
    [
        (httpx.ReadTimeout("too slow"), LLMTimeoutError, anthropic.APITimeoutError),
        (httpx.ConnectError("refused"), LLMConnectionError, anthropic.APIConnectionError),
    ],
)
async def test_transport_failures(
    failure: Exception, expected: type[Exception], cause: type[Exception]
) -> None:
    def broken(request: httpx.Request) -> httpx.Response:
        raise failure

    provider, _ = mock(broken)
    with pytest.raises(expected) as caught:
        await provider.generate(LLMRequest(messages=[ChatMessage.user("hi")], model="m"))
    assert type(caught.value.__cause__) is cause
    assert type(caught.value) is expected


async def test_stream_error_status_is_translated() -> None:
    def overloaded(request: httpx.Request) -> httpx.Response:
        body = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
        return httpx.Response(529, json=body)

    provider, _ = mock(overloaded)
    with pytest.raises(ServerUnavailableError) as caught:
        await collect(provider, LLMRequest(messages=[ChatMessage.user("hi")]), "m")
    assert caught.value.status_code == 529
    assert isinstance(caught.value.__cause__, anthropic.APIStatusError)


async def test_stream_broken_mid_way_is_a_connection_error() -> None:
    class Breaks(httpx.AsyncByteStream):
        async def __aiter__(self) -> AsyncIterator[bytes]:
            yield FULL_STREAM[: FULL_STREAM.index(b"event: content_block_stop")]
            raise httpx.ReadError("connection reset")

    def broken(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, stream=Breaks(), headers={"content-type": "text/event-stream"})

    provider, _ = mock(broken)
    items: list[StreamItem] = []
    stream = provider.stream(LLMRequest(messages=[ChatMessage.user("hi")], model="m"))

    async def read() -> None:
        async for item in stream:
            items.append(item)

    with pytest.raises(LLMConnectionError, match="connection reset") as caught:
        await read()
    assert isinstance(caught.value.__cause__, httpx2.ReadError)
    assert count(items, ReasoningDelta) >= 2  # what arrived before the break was delivered


async def test_a_success_whose_body_is_not_json_is_a_clear_provider_error() -> None:
    provider, _ = mock(lambda _: httpx.Response(200, content=b"<html>proxy login</html>"))
    with pytest.raises(ProviderError, match=r"could not be read.*base_url") as info:
        await provider.generate(LLMRequest(messages=[ChatMessage.user("hi")], model="claude-test"))
    assert (info.value.provider, info.value.status_code) == ("anthropic", 200)
    assert "proxy login" in str(info.value)
