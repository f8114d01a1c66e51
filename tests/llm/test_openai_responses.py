"""The OpenAI adapter, Responses API side: every ``cassettes/openai/responses_*`` recording
replayed through the real SDK, then the mapping the recordings do not reach (reasoning sent
back, tool choice, files, finish reasons, streamed vs non-streamed equality).

No network: recordings replay through `CassetteTransport`, the rest through
``httpx.MockTransport``.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import openai
import pytest

from llmgine.errors import (
    BadRequestError,
    LLMConfigurationError,
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
    TextDelta,
    TextPart,
    ToolCallDelta,
    ToolCallPart,
    ToolName,
    ToolResultPart,
    ToolSpec,
)
from llmgine.llm.providers.openai import OpenAIOptions, OpenAIProvider
from tests.llm.replay import CassetteTransport, collect

RESPONSES = OpenAIOptions(api="responses")


def replay(name: str) -> tuple[OpenAIProvider, CassetteTransport]:
    transport = CassetteTransport.of(f"openai/{name}")
    return OpenAIProvider(api_key="sk-test", http_client=transport.client()), transport


def canon(items: list[Any]) -> list[Any]:
    """Input items compared by meaning: null fields and empty assistant turns (which the
    recorder sent and llmgine does not) dropped."""
    out = [{k: v for k, v in item.items() if v is not None} for item in items]
    return [item for item in out if item != {"role": "assistant", "content": ""}]


def location_tool() -> ToolSpec:
    return ToolSpec(
        name="get_location",
        parameters={
            "additionalProperties": False,
            "properties": {"loc_name": {"type": "string"}},
            "required": ["loc_name"],
            "type": "object",
        },
        strict=True,
    )


def capital_tool(description: str = "") -> ToolSpec:
    return ToolSpec(
        name="get_capital",
        description=description,
        parameters={
            "additionalProperties": False,
            "properties": {"country": {"type": "string"}},
            "required": ["country"],
            "type": "object",
        },
        strict=True,
    )


def recorded_events(transport: CassetteTransport, index: int) -> list[dict[str, Any]]:
    body = transport.interactions[index].body.decode()
    return [json.loads(line[6:]) for line in body.splitlines() if line.startswith("data: ")]


# -- the recordings ------------------------------------------------------------------------


async def test_responses_system_instructions() -> None:
    provider, transport = replay("responses_system_instructions.yaml")
    request = LLMRequest(
        messages=[
            ChatMessage.system("You are a helpful assistant."),
            ChatMessage.user("What is the capital of France?"),
        ],
        options=[RESPONSES],
    )

    response = await provider.generate(request.model_copy(update={"model": "gpt-4o"}))

    sent, recorded = transport.sent_json(0), transport.recorded_json(0)
    assert transport.sent[0].url.path == "/v1/responses"
    assert sent["instructions"] == recorded["instructions"] == "You are a helpful assistant."
    assert sent["input"] == recorded["input"]
    assert "include" not in sent  # gpt-4o does not reason: no encrypted reasoning asked for
    assert response.text == "The capital of France is Paris."
    assert (response.finish_reason, response.raw_finish_reason) == ("stop", "completed")
    assert response.usage.model_dump() == {
        "input_tokens": 42,
        "output_tokens": 8,
        "cache_read_tokens": 0,
        "cache_write_tokens": None,
        "reasoning_tokens": 0,
    }
    assert response.model == "gpt-4o-2024-08-06"
    assert response.response_id == "resp_67e53937459c8191bfbe53cfca6a5d3e056b30c8cbeecd7b"
    assert response.raw["object"] == "response"


async def test_responses_tool_call_then_result() -> None:
    provider, transport = replay("responses_tool_call_then_result.yaml")
    tools = [capital_tool()]
    messages = [ChatMessage.user("What is the capital of PotatoLand?")]

    first = await provider.generate(
        LLMRequest(
            messages=messages, tools=tools, tool_choice="auto", options=[RESPONSES], model="gpt-4o"
        ),
    )
    sent, recorded = transport.sent_json(0), transport.recorded_json(0)
    assert sent["input"] == recorded["input"]
    assert sent["tool_choice"] == "auto"
    assert [{**tool, "description": None} for tool in sent["tools"]] == recorded["tools"]
    [call] = first.tool_calls
    assert (call.id, call.name, call.arguments) == (
        "call_YfwRsW8sUxDKipwyhWTzOXCA",
        "get_capital",
        {"country": "PotatoLand"},
    )
    assert call.provider_data == {
        "item_id": "fc_04907f5d3de791830068fbaa1b310c81958dc9c508e878c632"
    }
    assert (first.finish_reason, first.raw_finish_reason) == ("tool_calls", "completed")

    messages += [
        first.message,
        ChatMessage.tool_results([ToolResultPart(call_id=call.id, content="Potato City")]),
    ]
    second = await provider.generate(
        LLMRequest(
            messages=messages, tools=tools, tool_choice="auto", options=[RESPONSES], model="gpt-4o"
        ),
    )
    assert canon(transport.sent_json(1)["input"]) == canon(transport.recorded_json(1)["input"])
    assert second.text == "The capital of PotatoLand is Potato City."
    assert (second.usage.input_tokens, second.usage.output_tokens) == (67, 11)


async def test_responses_parallel_function_calls_with_results() -> None:
    provider, transport = replay("responses_parallel_function_calls_with_results.yaml")
    messages = [ChatMessage.user("What is the location of Londos and London?")]
    request = LLMRequest(
        messages=messages, tools=[location_tool()], tool_choice="auto", options=[RESPONSES]
    )

    first = await provider.generate(request.model_copy(update={"model": "gpt-4o"}))

    assert transport.sent_json(0)["tools"] == transport.recorded_json(0)["tools"]
    assert [(c.id, c.arguments) for c in first.tool_calls] == [
        ("call_LWVp74L5HaH2KNvgVz9PJsrj", {"loc_name": "Londos"}),
        ("call_YnRAWeTyxI91m5uNa5bxXwVO", {"loc_name": "London"}),
    ]
    assert first.text == ""
    assert first.finish_reason == "tool_calls"
    assert (first.usage.input_tokens, first.usage.output_tokens) == (0, 0)  # as recorded

    wrong, right = first.tool_calls
    messages += [
        first.message,
        ChatMessage.tool_results(
            [
                ToolResultPart(
                    call_id=wrong.id,
                    content='Wrong location, I only know about "London".\n\n'
                    "Fix the errors and try again.",
                    is_error=True,
                ),
                ToolResultPart(call_id=right.id, content={"lat": 51, "lng": 0}),
            ]
        ),
    ]
    second = await provider.generate(
        request.model_copy(update={"messages": messages}).model_copy(update={"model": "gpt-4o"})
    )

    sent_input = transport.sent_json(1)["input"]
    assert canon(sent_input) == canon(transport.recorded_json(1)["input"])
    assert [item["type"] for item in sent_input[1:]] == ["function_call"] * 2 + [
        "function_call_output"
    ] * 2
    assert second.text.startswith('It seems "Londos" might be incorrect')
    assert "latitude 51\u00b0 N" in second.text


async def test_responses_stream_tool_call_then_text() -> None:
    provider, transport = replay("responses_stream_tool_call_then_text.yaml")
    tools = [capital_tool()]
    messages = [ChatMessage.user("What is the capital of France?")]
    request = LLMRequest(
        messages=messages, tools=tools, tool_choice="auto", stream=True, options=[RESPONSES]
    )

    items, first = await collect(provider, request, "gpt-4o")

    sent, recorded = transport.sent_json(0), transport.recorded_json(0)
    assert sent["stream"] is True
    assert "stream_options" not in sent  # Responses streams report usage anyway
    assert (sent["input"], sent["tools"]) == (recorded["input"], recorded["tools"])
    deltas = [item for item in items if isinstance(item, ToolCallDelta)]
    assert len(deltas) == 6
    assert (deltas[0].id, deltas[0].name) == ("call_kL0PCQV7M2WMoVX8V8OtYSAL", "get_capital")
    assert "".join(d.arguments for d in deltas) == '{"country":"France"}'
    [call] = first.tool_calls
    assert (call.name, call.arguments) == ("get_capital", {"country": "France"})
    assert first.finish_reason == "tool_calls"
    assert (first.usage.input_tokens, first.usage.output_tokens) == (255, 16)
    assert first.response_id == "resp_67e554a155508191900ee113293c4c830794405d35281ae2"

    messages += [
        first.message,
        ChatMessage.tool_results([ToolResultPart(call_id=call.id, content="Paris")]),
    ]
    items, second = await collect(
        provider, request.model_copy(update={"messages": messages}), "gpt-4o"
    )

    sent_input, recorded_input = (
        transport.sent_json(1)["input"],
        transport.recorded_json(1)["input"],
    )
    # The recorder (an old pydantic-ai) sent the item id (fc_...) as call_id; the call_id
    # is what the API documents and returned, so llmgine sends that.
    assert recorded_input[1]["call_id"] == "fc_67e554a1de488191af0831d35cbe082e0794405d35281ae2"
    assert [item["call_id"] for item in sent_input[1:]] == ["call_kL0PCQV7M2WMoVX8V8OtYSAL"] * 2
    assert sent_input[2]["output"] == recorded_input[2]["output"] == "Paris"
    texts = [item.text for item in items if isinstance(item, TextDelta)]
    assert len(texts) == 7
    assert second.text == "The capital of France is Paris."
    assert (second.finish_reason, second.raw_finish_reason) == ("stop", "completed")
    assert (second.usage.input_tokens, second.usage.output_tokens) == (278, 9)


async def test_responses_structured_output_json_schema_with_tool() -> None:
    provider, transport = replay("responses_structured_output_json_schema_with_tool.yaml")
    schema = {
        "additionalProperties": False,
        "properties": {"city": {"type": "string"}, "country": {"type": "string"}},
        "required": ["city", "country"],
        "type": "object",
    }
    tools = [
        ToolSpec(
            name="get_user_country",
            parameters={"additionalProperties": False, "properties": {}, "type": "object"},
        )
    ]
    messages = [ChatMessage.user("What is the largest city in the user country?")]
    request = LLMRequest(
        messages=messages,
        tools=tools,
        tool_choice="auto",
        response_format=ResponseFormat(name="CityLocation", json_schema=schema),
        options=[RESPONSES],
    )

    first = await provider.generate(request.model_copy(update={"model": "gpt-4o"}))

    sent, recorded = transport.sent_json(0), transport.recorded_json(0)
    assert sent["text"] == recorded["text"]  # strict, and the strict transform kept it equal
    assert sent["tools"] == recorded["tools"]  # strict unset goes as false, schema unchanged
    [call] = first.tool_calls
    assert (call.name, call.arguments) == ("get_user_country", {})

    messages += [
        first.message,
        ChatMessage.tool_results([ToolResultPart(call_id=call.id, content="Mexico")]),
    ]
    second = await provider.generate(
        request.model_copy(update={"messages": messages}).model_copy(update={"model": "gpt-4o"})
    )

    assert canon(transport.sent_json(1)["input"]) == canon(transport.recorded_json(1)["input"])
    assert json.loads(second.text) == {"city": "Mexico City", "country": "Mexico"}
    assert second.finish_reason == "stop"


async def test_responses_stream_reasoning_tool_call_usage() -> None:
    provider, transport = replay("responses_stream_reasoning_tool_call_usage.yaml")
    request = LLMRequest(
        messages=[ChatMessage.user("Calculate 100 * 200 / 3")],
        tools=[
            ToolSpec(
                name="final_result",
                description="The final response which ends this conversation",
                parameters={
                    "additionalProperties": False,
                    "properties": {"result": {"type": "integer"}},
                    "required": ["result"],
                    "type": "object",
                },
                strict=True,
            )
        ],
        tool_choice="required",
        reasoning=Reasoning(effort="low", include_thoughts=False),
        stream=True,
        options=[OpenAIOptions(service_tier="flex")],
    )

    # No api= given: a reasoning model asked to reason goes to Responses by itself.
    items, response = await collect(provider, request, "gpt-5")

    sent, recorded = transport.sent_json(0), transport.recorded_json(0)
    assert transport.sent[0].url.path == "/v1/responses"
    for key in ("include", "input", "service_tier", "stream", "tool_choice", "tools"):
        assert sent[key] == recorded[key], key
    assert sent["reasoning"] == {"effort": "low"}  # recorded as {"effort": "low", "summary": null}
    [reasoning] = response.reasoning
    # Each event re-encrypts the reasoning; the SDK says the .done item's is the one to keep.
    events = recorded_events(transport, 0)
    added = next(e["item"] for e in events if e["type"] == "response.output_item.added")
    done = next(e["item"] for e in events if e["type"] == "response.output_item.done")
    assert added["type"] == done["type"] == "reasoning"
    assert added["encrypted_content"] != done["encrypted_content"]
    encrypted = done["encrypted_content"]
    assert reasoning.signature == encrypted
    assert reasoning.provider_data == {
        "item_id": "rs_0050471a34b36ae60068c97bac4dcc819595fd0f80d6b3c405"
    }
    assert (reasoning.text, reasoning.redacted, reasoning.provider) == ("", True, "openai")
    assert [type(part).__name__ for part in response.parts] == ["ReasoningPart", "ToolCallPart"]
    [call] = response.tool_calls
    assert (call.id, call.name, call.arguments) == (
        "call_CWXgs68YprAjp6t0371hiPOI",
        "final_result",
        {"result": 6666},
    )
    assert sum(isinstance(item, ToolCallDelta) for item in items) == 7
    assert sum(isinstance(item, ReasoningDelta) for item in items) == 2
    assert response.usage.model_dump() == {
        "input_tokens": 53,
        "output_tokens": 469,
        "cache_read_tokens": 0,
        "cache_write_tokens": None,
        "reasoning_tokens": 448,
    }
    assert (response.finish_reason, response.raw_finish_reason) == ("tool_calls", "completed")
    assert response.model == "gpt-5-2025-08-07"

    # The next turn carries the encrypted reasoning back, paired with its function call.
    server = Server()
    follow_up = request.model_copy(
        update={
            "stream": False,
            "messages": [
                *request.messages,
                response.message,
                ChatMessage.tool_results([ToolResultPart(call_id=call.id, content="ok")]),
            ],
        }
    )
    await server.provider().generate(follow_up.model_copy(update={"model": "gpt-5"}))
    sent_input = server.body()["input"]
    assert server.requests[0].url.path == "/v1/responses"
    assert sent_input[1] == {
        "type": "reasoning",
        "id": "rs_0050471a34b36ae60068c97bac4dcc819595fd0f80d6b3c405",
        "summary": [],
        "encrypted_content": encrypted,
    }
    assert sent_input[2] == {
        "type": "function_call",
        "call_id": "call_CWXgs68YprAjp6t0371hiPOI",
        "name": "final_result",
        "arguments": '{"result":6666}',
        "id": "fc_0050471a34b36ae60068c97bf19d9c819590eaf42c0edc1042",
    }
    assert sent_input[3] == {"type": "function_call_output", "call_id": call.id, "output": "ok"}


async def test_responses_error_400_invalid_param() -> None:
    provider, transport = replay("responses_error_400_invalid_param.yaml")
    request = LLMRequest(
        messages=[ChatMessage.user("What is the capital of France?")],
        temperature=-1,
        stream=True,
        options=[RESPONSES],
    )

    with pytest.raises(BadRequestError) as caught:
        await collect(provider, request, "gpt-4o")

    error = caught.value
    assert type(error) is BadRequestError
    assert error.status_code == 400
    assert isinstance(error.__cause__, openai.BadRequestError)
    assert "decimal below minimum value" in str(error)
    assert "'temperature'" in str(error)
    sent, recorded = transport.sent_json(0), transport.recorded_json(0)
    assert (sent["temperature"], sent["stream"], sent["input"]) == (-1, True, recorded["input"])


# -- unit tests through a mock server ------------------------------------------------------

USAGE = {
    "input_tokens": 50,
    "input_tokens_details": {"cached_tokens": 10},
    "output_tokens": 40,
    "output_tokens_details": {"reasoning_tokens": 20},
    "total_tokens": 90,
}
REASONING_ITEM = {
    "id": "rs_1",
    "type": "reasoning",
    "summary": [
        {"type": "summary_text", "text": "First part"},
        {"type": "summary_text", "text": "Second"},
    ],
    "encrypted_content": "enc-final",
}
MESSAGE_ITEM = {
    "id": "msg_1",
    "type": "message",
    "role": "assistant",
    "status": "completed",
    "content": [{"type": "output_text", "text": "Answer", "annotations": []}],
}
CALL_ITEM = {
    "id": "fc_1",
    "type": "function_call",
    "call_id": "call_1",
    "name": "lookup",
    "arguments": '{"q": "x"}',
    "status": "completed",
}


def response_json(*output: dict[str, Any], **more: Any) -> dict[str, Any]:
    return {
        "id": "resp_unit",
        "object": "response",
        "created_at": 1,
        "model": "gpt-5-2025-08-07",
        "status": "completed",
        "output": list(output),
        "usage": USAGE,
        **more,
    }


class Server:
    """A fake Responses endpoint: keeps what was sent and answers with ``answer``."""

    def __init__(self, answer: dict[str, Any] | None = None, stream: bytes = b"") -> None:
        self.requests: list[httpx.Request] = []
        self.answer = answer or response_json(MESSAGE_ITEM)
        self.events = stream

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if json.loads(request.content).get("stream"):
            return httpx.Response(
                200, content=self.events, headers={"content-type": "text/event-stream"}
            )
        return httpx.Response(200, json=self.answer)

    def provider(self) -> OpenAIProvider:
        client = httpx.AsyncClient(transport=httpx.MockTransport(self.handle))
        return OpenAIProvider(api_key="sk-test", http_client=client, api="responses")

    def body(self) -> Any:
        return json.loads(self.requests[-1].content)


async def sent_body(request: LLMRequest, model: str = "gpt-4o") -> Any:
    server = Server()
    await server.provider().generate(request.model_copy(update={"model": model}))
    return server.body()


def sse(*events: dict[str, Any]) -> bytes:
    return "".join(f"event: {e['type']}\ndata: {json.dumps(e)}\n\n" for e in events).encode()


async def test_streamed_and_non_streamed_responses_are_equal() -> None:
    whole = response_json(REASONING_ITEM, MESSAGE_ITEM, CALL_ITEM)
    started = {**whole, "status": "in_progress", "output": [], "usage": None}
    partial_reasoning = {**REASONING_ITEM, "summary": [], "encrypted_content": "enc-partial"}
    events = sse(
        {"type": "response.created", "sequence_number": 0, "response": started},
        {"type": "response.output_item.added", "output_index": 0, "item": partial_reasoning},
        *(
            {
                "type": "response.reasoning_summary_text.delta",
                "item_id": "rs_1",
                "output_index": 0,
                "summary_index": index,
                "delta": delta,
            }
            for index, delta in [(0, "First"), (0, " part"), (1, "Second")]
        ),
        {"type": "response.output_item.done", "output_index": 0, "item": REASONING_ITEM},
        {
            "type": "response.output_item.added",
            "output_index": 1,
            "item": {**MESSAGE_ITEM, "content": []},
        },
        *(
            {
                "type": "response.output_text.delta",
                "item_id": "msg_1",
                "output_index": 1,
                "content_index": 0,
                "delta": delta,
            }
            for delta in ["Ans", "wer"]
        ),
        {"type": "response.output_item.done", "output_index": 1, "item": MESSAGE_ITEM},
        {
            "type": "response.output_item.added",
            "output_index": 2,
            "item": {**CALL_ITEM, "arguments": ""},
        },
        *(
            {
                "type": "response.function_call_arguments.delta",
                "item_id": "fc_1",
                "output_index": 2,
                "delta": delta,
            }
            for delta in ['{"q": ', '"x"}']
        ),
        {"type": "response.output_item.done", "output_index": 2, "item": CALL_ITEM},
        {"type": "response.completed", "response": whole},
    )
    provider = Server(whole, events).provider()
    request = LLMRequest(messages=[ChatMessage.user("look up x")], tools=[ToolSpec(name="lookup")])

    plain = await provider.generate(request.model_copy(update={"model": "gpt-5"}))
    items, streamed = await collect(provider, request, "gpt-5")

    assert streamed.same_content(plain)
    reasoning, text, call = plain.parts
    assert isinstance(reasoning, ReasoningPart)
    assert (reasoning.text, reasoning.signature, reasoning.redacted) == (
        "First part\n\nSecond",
        "enc-final",
        False,
    )
    assert text == TextPart(text="Answer")
    assert isinstance(call, ToolCallPart)
    assert (call.id, call.arguments, call.provider_data) == (
        "call_1",
        {"q": "x"},
        {"item_id": "fc_1"},
    )
    assert plain.usage.model_dump() == {
        "input_tokens": 50,
        "output_tokens": 40,
        "cache_read_tokens": 10,
        "cache_write_tokens": None,
        "reasoning_tokens": 20,
    }
    assert plain.finish_reason == "tool_calls"
    assert sum(isinstance(item, TextDelta) for item in items) == 2


@pytest.mark.parametrize(
    ("status", "details", "reason", "raw"),
    [
        ("incomplete", {"reason": "max_output_tokens"}, "length", "max_output_tokens"),
        ("incomplete", {"reason": "content_filter"}, "content_filter", "content_filter"),
        ("cancelled", None, "other", "cancelled"),
    ],
)
async def test_responses_finish_reasons(
    status: str, details: dict[str, str] | None, reason: str, raw: str
) -> None:
    server = Server(response_json(MESSAGE_ITEM, status=status, incomplete_details=details))

    response = await server.provider().generate(
        LLMRequest(messages=[ChatMessage.user("hi")], model="gpt-4o")
    )

    assert (response.finish_reason, response.raw_finish_reason) == (reason, raw)
    assert response.text == "Answer"


async def test_a_failed_response_raises() -> None:
    failed = response_json(status="failed", error={"code": "server_error", "message": "boom"})

    with pytest.raises(ServerUnavailableError, match="boom"):
        await (
            Server(failed)
            .provider()
            .generate(LLMRequest(messages=[ChatMessage.user("hi")], model="gpt-4o"))
        )


@pytest.mark.parametrize(
    ("choice", "wire"),
    [
        ("auto", "auto"),
        ("none", "none"),
        ("required", "required"),
        (ToolName(name="weather"), {"type": "function", "name": "weather"}),
    ],
)
async def test_tool_choice_maps_to_responses(choice: Any, wire: Any) -> None:
    request = LLMRequest(
        messages=[ChatMessage.user("hi")],
        tools=[
            ToolSpec(
                name="weather", parameters={"type": "object", "properties": {"c": {}}}, strict=True
            )
        ],
        tool_choice=choice,
        parallel_tool_calls=True,
    )

    body = await sent_body(request)

    assert body["tool_choice"] == wire
    assert body["parallel_tool_calls"] is True
    [tool] = body["tools"]
    assert (tool["type"], tool["name"], tool["strict"]) == ("function", "weather", True)
    assert tool["parameters"]["required"] == ["c"]  # made strict-compatible


async def test_images_and_files_map_to_responses_input() -> None:
    request = LLMRequest(
        messages=[
            ChatMessage.user(
                [
                    TextPart(text="Compare"),
                    ImagePart(data=b"\x89PNG", media_type="image/png"),
                    FilePart(url="https://example.com/a.pdf"),
                    FilePart(data=b"%PDF", media_type="application/pdf", name="b.pdf"),
                ]
            )
        ]
    )

    [item] = (await sent_body(request))["input"]

    assert item == {
        "role": "user",
        "content": [
            {"type": "input_text", "text": "Compare"},
            {
                "type": "input_image",
                "image_url": "data:image/png;base64,iVBORw==",
                "detail": "auto",
            },
            {"type": "input_file", "file_url": "https://example.com/a.pdf"},
            {
                "type": "input_file",
                "filename": "b.pdf",
                "file_data": "data:application/pdf;base64,JVBERg==",
            },
        ],
    }


async def test_only_openai_reasoning_with_an_item_id_goes_back() -> None:
    call = ToolCallPart(id="call_1", name="f", provider="anthropic", provider_data={"item_id": "x"})
    request = LLMRequest(
        messages=[
            ChatMessage.user("hi"),
            ChatMessage.assistant(
                [
                    ReasoningPart(text="mine", signature="s", provider="anthropic"),
                    ReasoningPart(text="no id", signature="enc", provider="openai"),
                    TextPart(text="Hello"),
                    call,
                ]
            ),
        ]
    )

    items = (await sent_body(request))["input"]

    assert items[1:] == [
        {"role": "assistant", "content": "Hello"},
        {"type": "function_call", "call_id": "call_1", "name": "f", "arguments": "{}"},
    ]


async def test_reasoning_options_and_sampling_reach_responses() -> None:
    request = LLMRequest(
        messages=[ChatMessage.user("hi")],
        max_tokens=300,
        temperature=0.5,
        top_p=0.8,
        reasoning=Reasoning(effort="high"),
        response_format=ResponseFormat(
            json_schema={"type": "object", "properties": {"a": {"type": "string"}}}, strict=False
        ),
        options=[
            OpenAIOptions(
                store=False, previous_response_id="resp_0", verbosity="low", extra_body={"x": 1}
            )
        ],
    )

    body = await sent_body(request, "o4-mini")

    assert body["reasoning"] == {"effort": "high", "summary": "auto"}
    assert body["include"] == ["reasoning.encrypted_content"]
    assert body["text"] == {
        "format": {
            "type": "json_schema",
            "name": "output",
            "schema": {"type": "object", "properties": {"a": {"type": "string"}}},
            "strict": False,
        },
        "verbosity": "low",
    }
    expected = {
        "max_output_tokens": 300,
        "temperature": 0.5,
        "top_p": 0.8,
        "store": False,
        "previous_response_id": "resp_0",
        "x": 1,
    }
    assert {key: body.get(key) for key in expected} == expected


async def test_chat_only_parameters_are_refused_on_responses() -> None:
    server = Server()
    request = LLMRequest(messages=[ChatMessage.user("hi")], stop=["END"], seed=3)

    with pytest.raises(LLMConfigurationError, match="stop, seed") as caught:
        await server.provider().generate(request.model_copy(update={"model": "gpt-4o"}))
    assert "api='chat'" in str(caught.value)
    assert server.requests == []


async def read_texts(provider: OpenAIProvider, request: LLMRequest, texts: list[str]) -> None:
    async for item in provider.stream(request.model_copy(update={"model": "gpt-4o"})):
        if isinstance(item, TextDelta):
            texts.append(item.text)


async def test_errors_inside_a_stream_raise() -> None:
    started = {**response_json(), "status": "in_progress", "output": [], "usage": None}
    delta = {"type": "response.output_text.delta", "item_id": "msg_1", "output_index": 0}
    failed = {
        **response_json(),
        "status": "failed",
        "error": {"code": "rate_limit_exceeded", "message": "too fast"},
    }
    request = LLMRequest(messages=[ChatMessage.user("hi")])
    error_event = {
        "type": "error",
        "code": "server_error",
        "message": "stream broke",
        "param": None,
    }
    cases: list[tuple[dict[str, Any], type[ProviderError], str]] = [
        (error_event, ProviderError, "stream broke"),
        ({"type": "response.failed", "response": failed}, RateLimitedError, "too fast"),
    ]
    for event, kind, said in cases:
        stream = sse(
            {"type": "response.created", "response": started},
            {**delta, "content_index": 0, "delta": "Hel"},
            event,
        )
        texts: list[str] = []
        with pytest.raises(kind, match=said) as caught:
            await read_texts(Server(stream=stream).provider(), request, texts)
        assert texts == ["Hel"]  # what came before the error was delivered
        assert (caught.value.provider, caught.value.model) == ("openai", "gpt-4o")
