"""The Gemini adapter, through the real google-genai SDK and recorded traffic only.

Every recording in ``cassettes/gemini/`` is replayed: the test builds the `LLMRequest`
that reproduces the recorded request, checks that what the SDK sent matches what was
recorded, and checks the unified response. Multi-step recordings feed each answer (and
the tool results) back, which proves the round trip, thought signatures included. Unit
tests use a tiny `httpx.MockTransport` for what no recording shows (errors, mappings).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from google.genai import errors as genai_errors

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
    RateLimitedError,
    ServerUnavailableError,
)
from llmgine.llm import (
    ChatMessage,
    FilePart,
    ImagePart,
    LLMRequest,
    LLMResponse,
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
    UsageUpdate,
)
from llmgine.llm.providers.gemini import GeminiOptions, GeminiProvider, gemini_json_schema
from tests.llm.replay import CassetteTransport

TEXT = GeminiOptions(response_modalities=["TEXT"])  # what pydantic-ai sent by default


# -- helpers ------------------------------------------------------------------------------


def replay(name: str) -> tuple[GeminiProvider, CassetteTransport]:
    transport = CassetteTransport.of(f"gemini/{name}.yaml")
    return GeminiProvider(api_key="test-key", http_client=transport.client()), transport


def _camel(key: str) -> str:
    head, *rest = key.split("_")
    return head + "".join(word[:1].upper() + word[1:] for word in rest)


def norm(value: Any) -> Any:
    """Keys in camelCase: the API takes both, and the SDK sends some snake_case ones."""
    if isinstance(value, dict):
        return {_camel(k): norm(v) for k, v in value.items()}
    if isinstance(value, list):
        return [norm(v) for v in value]
    return value


def _lower_types(schema: Any) -> Any:
    # The older recordings declare tools in OpenAPI form (type: OBJECT); we send JSON schema.
    if isinstance(schema, dict):
        return {
            k: v.lower() if k == "type" and isinstance(v, str) else _lower_types(v)
            for k, v in schema.items()
        }
    if isinstance(schema, list):
        return [_lower_types(v) for v in schema]
    return schema


def canon_tools(tools: list[dict[str, Any]] | None) -> list[dict[str, Any]] | None:
    if tools is None:
        return None
    out = []
    for tool in tools:
        declarations = []
        for d in tool["functionDeclarations"]:
            d = dict(d)
            schema = d.pop("parametersJsonSchema", None) or _lower_types(d.pop("parameters"))
            declarations.append({**d, "schema": schema})
        out.append({"functionDeclarations": declarations})
    return out


def canon_contents(contents: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Contents without call ids (each client makes its own) and with the tool result under
    one key (pydantic-ai sends ``return_value``, llmgine ``result``)."""
    out = []
    for content in contents:
        parts = []
        for part in content["parts"]:
            part = json.loads(json.dumps(part))
            if "functionCall" in part:
                part["functionCall"].pop("id", None)
            if "functionResponse" in part:
                response = part["functionResponse"]
                response.pop("id", None)
                (value,) = response["response"].values()
                response["response"] = {"value": value}
            parts.append(part)
        out.append({"role": content["role"], "parts": parts})
    return out


def assert_sent_as_recorded(transport: CassetteTransport, index: int) -> dict[str, Any]:
    sent: dict[str, Any] = norm(transport.sent_json(index))
    recorded: dict[str, Any] = norm(transport.recorded_json(index))
    assert canon_contents(sent["contents"]) == canon_contents(recorded["contents"])
    assert sent.get("systemInstruction") == recorded.get("systemInstruction")
    assert canon_tools(sent.get("tools")) == canon_tools(recorded.get("tools"))
    assert sent.get("toolConfig") == recorded.get("toolConfig")
    assert sent.get("generationConfig", {}) == recorded.get("generationConfig", {})
    assert set(sent) <= {"contents", "systemInstruction", "tools", "toolConfig", "generationConfig"}
    return sent


def recorded_chunks(transport: CassetteTransport, index: int) -> list[dict[str, Any]]:
    body = transport.interactions[index].body.decode()
    return [json.loads(line[6:]) for line in body.splitlines() if line.startswith("data: ")]


def recorded_response(transport: CassetteTransport, index: int) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(transport.interactions[index].body)
    return body


def sent_call_ids(sent: dict[str, Any]) -> tuple[list[str], list[str]]:
    calls, results = [], []
    for content in sent["contents"]:
        for part in content["parts"]:
            if "functionCall" in part:
                calls.append(part["functionCall"]["id"])
            if "functionResponse" in part:
                results.append(part["functionResponse"]["id"])
    return calls, results


def results_for(response: LLMResponse, values: list[Any]) -> ChatMessage:
    # No name: the adapter must find it from the tool call's id earlier in the conversation.
    calls = response.tool_calls
    assert len(calls) == len(values)
    return ChatMessage.tool_results(
        [ToolResultPart(call_id=c.id, content=v) for c, v in zip(calls, values, strict=True)]
    )


# -- the recordings -----------------------------------------------------------------------


async def test_generate_plain_text_keeps_the_text_signature() -> None:
    provider, transport = replay("generate_plain_text")
    question = "What is 2 + 2? Reply with just the number."
    request = LLMRequest(messages=[ChatMessage.user(question)], options=[TEXT])
    response = await provider.generate(request.model_copy(update={"model": "gemini-3.5-flash"}))

    assert transport.sent_json(0) == transport.recorded_json(0)
    recorded_part = recorded_response(transport, 0)["candidates"][0]["content"]["parts"][0]
    assert response.text == "4"
    # The text's thought signature rides in an empty ReasoningPart right after the text.
    assert response.parts == [
        TextPart(text="4"),
        ReasoningPart(
            signature=recorded_part["thoughtSignature"],
            provider="gemini",
            provider_data={"gemini": "text_signature"},
        ),
    ]
    assert response.usage.input_tokens == 15
    assert response.usage.output_tokens == 1 + 72  # candidates + thoughts
    assert response.usage.reasoning_tokens == 72
    assert response.usage.cache_read_tokens is None
    assert response.usage.cache_write_tokens is None
    assert (response.finish_reason, response.raw_finish_reason) == ("stop", "STOP")
    assert response.model == "gemini-3.5-flash"
    assert response.response_id == "4q8MarKdCf2Fz7IP2PffmQk"
    assert response.provider == "gemini"
    assert isinstance(response.raw, dict)
    assert response.raw == recorded_response(transport, 0)  # the wire JSON, as sent
    json.dumps(response.raw)  # plain JSON data, no SDK object
    transport.assert_all_used()


async def test_generate_system_instruction() -> None:
    provider, transport = replay("generate_system_instruction")
    request = LLMRequest(
        messages=[ChatMessage.system("You are a chatbot."), ChatMessage.user("Hello!")],
        options=[TEXT],
    )
    response = await provider.generate(request.model_copy(update={"model": "gemini-2.5-flash"}))

    assert transport.sent_json(0) == transport.recorded_json(0)
    assert transport.sent_json(0)["systemInstruction"]["parts"] == [{"text": "You are a chatbot."}]
    assert response.parts == [TextPart(text="Hello! How can I help you today?")]
    assert response.usage.input_tokens == 9
    assert response.usage.output_tokens == 9 + 34
    assert response.usage.reasoning_tokens == 34
    assert response.response_id == "bzlXaa_EE_aHqtsPi_zw8Ao"


async def test_generate_multiturn_with_an_empty_assistant_turn() -> None:
    provider, transport = replay("generate_multiturn")
    request = LLMRequest(
        messages=[
            ChatMessage.user("Hi"),
            ChatMessage.assistant(""),
            ChatMessage.user("Was your previous response empty?"),
        ],
        options=[TEXT],
    )
    response = await provider.generate(request.model_copy(update={"model": "gemini-2.5-flash"}))

    assert transport.sent_json(0) == transport.recorded_json(0)
    assert [c["role"] for c in transport.sent_json(0)["contents"]] == ["user", "model", "user"]
    assert response.text.startswith("As an AI, I don't retain memory")
    assert response.usage.output_tokens == 119 + 699
    assert response.finish_reason == "stop"


async def test_function_call_then_response() -> None:
    provider, transport = replay("function_call_then_response")
    tools = [
        ToolSpec(name="get_user_country"),
        ToolSpec(
            name="final_result",
            description="The final response which ends this conversation",
            parameters={
                "type": "object",
                "properties": {"city": {"type": "string"}, "country": {"type": "string"}},
                "required": ["city", "country"],
            },
        ),
    ]
    options = GeminiOptions(allowed_function_names=["get_user_country", "final_result"])
    messages = [ChatMessage.user("What is the largest city in the user country?")]
    request = LLMRequest(messages=messages, tools=tools, tool_choice="required", options=[options])

    first = await provider.generate(request.model_copy(update={"model": "gemini-2.0-flash"}))
    assert_sent_as_recorded(transport, 0)
    assert first.tool_calls == [
        ToolCallPart(id="call_0", name="get_user_country", arguments={}, provider="gemini")
    ]
    assert (first.finish_reason, first.raw_finish_reason) == ("tool_calls", "STOP")
    assert first.usage.input_tokens == 33
    assert first.usage.output_tokens == 5
    assert first.usage.reasoning_tokens is None
    assert first.response_id == "LlteaIDvD9m7nvgPz5Sb0Aw"

    messages += [first.message, results_for(first, ["Mexico"])]
    second = await provider.generate(
        request.model_copy(update={"messages": messages}).model_copy(
            update={"model": "gemini-2.0-flash"}
        )
    )
    sent = assert_sent_as_recorded(transport, 1)
    # The result found its tool's name through the call id, and the ids pair up.
    response_part = sent["contents"][2]["parts"][0]["functionResponse"]
    assert response_part == {
        "id": "call_0",
        "name": "get_user_country",
        "response": {"result": "Mexico"},
    }
    assert sent_call_ids(sent) == (["call_0"], ["call_0"])
    assert [(c.name, c.arguments) for c in second.tool_calls] == [
        ("final_result", {"city": "Mexico City", "country": "Mexico"})
    ]
    assert second.finish_reason == "tool_calls"
    transport.assert_all_used()


async def test_parallel_function_calls_multistep_round_trips_thought_signatures() -> None:
    provider, transport = replay("parallel_function_calls_multistep")
    tools = [
        ToolSpec(
            name="generate_topic",
            parameters={"additionalProperties": False, "properties": {}, "type": "object"},
        ),
        ToolSpec(
            name="final_result",
            description="The final response which ends this conversation",
            parameters={
                "properties": {"response": {"items": {"type": "string"}, "type": "array"}},
                "required": ["response"],
                "type": "object",
            },
        ),
    ]
    options = GeminiOptions(
        response_modalities=["TEXT"], allowed_function_names=["generate_topic", "final_result"]
    )
    messages = [
        ChatMessage.system("Tell three jokes. Generate topics with the generate_topic tool."),
        ChatMessage.user(""),
    ]
    request = LLMRequest(messages=messages, tools=tools, tool_choice="required", options=[options])
    model = "gemini-3-flash-preview"

    first = await provider.generate(request.model_copy(update={"model": model}))
    assert_sent_as_recorded(transport, 0)
    recorded = recorded_response(transport, 0)["candidates"][0]["content"]["parts"]
    # Three parallel calls, in order; only the first carries a thought signature.
    assert [c.name for c in first.tool_calls] == ["generate_topic"] * 3
    assert [c.id for c in first.tool_calls] == ["call_0", "call_1", "call_2"]
    assert [c.signature for c in first.tool_calls] == [recorded[0]["thoughtSignature"], None, None]
    assert first.usage.output_tokens == 30 + 190
    assert first.usage.reasoning_tokens == 190
    assert (first.finish_reason, first.raw_finish_reason) == ("tool_calls", "STOP")

    response = first
    steps: list[list[str]] = [["cars", "penguins", "cars"], ["penguins"], ["cars"], ["penguins"]]
    for step, values in enumerate(steps, start=1):
        messages = [*messages, response.message, results_for(response, values)]
        response = await provider.generate(
            request.model_copy(update={"messages": messages}).model_copy(update={"model": model})
        )
        # Every earlier signature went back exactly as recorded (url-safe, as the SDK sends).
        sent = assert_sent_as_recorded(transport, step)
        calls, results = sent_call_ids(sent)
        assert calls == results
        if step < len(steps):
            assert [c.name for c in response.tool_calls] == ["generate_topic"]
            assert response.tool_calls[0].signature is not None

    final = response.tool_calls
    assert [c.name for c in final] == ["final_result"]
    jokes = final[0].arguments["response"]
    assert len(jokes) == 3
    assert jokes[0] == "What kind of car does a sheep drive? A Lamborghini!"
    assert response.usage.input_tokens == 679
    assert response.response_id == "yud8adv2DI2Hz7IP766XuAM"
    transport.assert_all_used()


async def test_stream_text_arrives_incrementally() -> None:
    provider, transport = replay("stream_text")
    request = LLMRequest(
        messages=[
            ChatMessage.system("You are a helpful chatbot."),
            ChatMessage.user("What is the capital of France?"),
        ],
        temperature=0.0,
    )
    stream = provider.stream(request.model_copy(update={"model": "gemini-2.0-flash-exp"}))
    items = [item async for item in stream]
    response = stream.response
    assert response is not None

    assert transport.sent_json(0) == transport.recorded_json(0)
    assert transport.sent[0].url.path.endswith(":streamGenerateContent")
    chunks = recorded_chunks(transport, 0)
    expected = [c["candidates"][0]["content"]["parts"][0]["text"] for c in chunks]
    assert [i.text for i in items if isinstance(i, TextDelta)] == expected
    assert len(expected) == 3
    assert response.parts == [TextPart(text="The capital of France is Paris.\n")]
    # usageMetadata is cumulative: the last one wins (the final chunk recounts the prompt).
    assert (response.usage.input_tokens, response.usage.output_tokens) == (13, 8)
    assert (response.finish_reason, response.raw_finish_reason) == ("stop", "STOP")
    assert response.response_id == "w1peaMz6INOvnvgPgYfPiQY"
    assert response.model == "gemini-2.0-flash-exp"
    assert response.time_to_first_token_ms is not None


async def test_stream_usage_metadata_is_live() -> None:
    provider, transport = replay("stream_usage_metadata")
    question = "Count from 1 to 30, one number per line, digits only."
    request = LLMRequest(messages=[ChatMessage.user(question)], options=[TEXT])
    stream = provider.stream(request.model_copy(update={"model": "gemini-2.5-flash"}))
    items = [item async for item in stream]
    response = stream.response
    assert response is not None

    assert transport.sent_json(0) == transport.recorded_json(0)
    updates = [i.usage for i in items if isinstance(i, UsageUpdate)]
    assert [u.output_tokens for u in updates] == [31 + 35, 79 + 35, 80 + 35]
    assert all(u.reasoning_tokens == 35 for u in updates)
    # Three chunks of text merge into one part (the number 14 is split across chunks).
    assert response.parts == [TextPart(text="\n".join(str(n) for n in range(1, 31)))]
    assert response.usage.input_tokens == 18
    assert response.usage.output_tokens == 80 + 35
    assert response.response_id == "ru1garvBEoOiqtsP2fznmQw"


async def test_stream_function_calls_multistep() -> None:
    provider, transport = replay("stream_function_calls_multistep")
    tools = [
        ToolSpec(
            name="get_capital",
            description="Get the capital of a country.",
            parameters={
                "type": "object",
                "properties": {"country": {"type": "string", "description": "The country name."}},
                "required": ["country"],
            },
        ),
        ToolSpec(
            name="get_temperature",
            description="Get the temperature in a city.",
            parameters={
                "type": "object",
                "properties": {"city": {"type": "string", "description": "The city name."}},
                "required": ["city"],
            },
        ),
    ]
    messages = [
        ChatMessage.system("You are a helpful chatbot."),
        ChatMessage.user("What is the temperature of the capital of France?"),
    ]
    model = "gemini-2.0-flash"
    responses = []
    for step, result in enumerate(["Paris", "30°C", None]):
        request = LLMRequest(messages=messages, tools=tools)
        stream = provider.stream(request.model_copy(update={"model": model}))
        items = [item async for item in stream]
        assert stream.response is not None
        responses.append(stream.response)
        assert_sent_as_recorded(transport, step)
        if result is not None:
            assert sum(isinstance(i, ToolCallDelta) for i in items) == 1  # sent whole
            messages = [*messages, stream.response.message, results_for(stream.response, [result])]

    first, second, last = responses
    assert [(c.name, c.arguments) for c in first.tool_calls] == [
        ("get_capital", {"country": "France"})
    ]
    assert first.finish_reason == "tool_calls"
    assert [(c.name, c.arguments) for c in second.tool_calls] == [
        ("get_temperature", {"city": "Paris"})
    ]
    assert last.text == "The temperature in Paris is 30°C.\n"
    assert last.finish_reason == "stop"
    assert (last.usage.input_tokens, last.usage.output_tokens) == (79, 12)
    transport.assert_all_used()


async def test_stream_thinking_with_tool() -> None:
    provider, transport = replay("stream_thinking_with_tool")
    request = LLMRequest(
        messages=[
            ChatMessage.system("You are a helpful assistant."),
            ChatMessage.user("How do I cross the street?"),
        ],
        tools=[ToolSpec(name="dummy")],
        reasoning=Reasoning(),
    )
    stream = provider.stream(request.model_copy(update={"model": "gemini-2.5-pro"}))
    items = [item async for item in stream]
    response = stream.response
    assert response is not None

    assert_sent_as_recorded(transport, 0)
    parts = [c["candidates"][0]["content"]["parts"][0] for c in recorded_chunks(transport, 0)]
    thoughts = [p["text"] for p in parts if p.get("thought")]
    texts = [p["text"] for p in parts if not p.get("thought")]
    signature = next(p["thoughtSignature"] for p in parts if "thoughtSignature" in p)
    assert len(thoughts) == 4
    thought_deltas = [i.text for i in items if isinstance(i, ReasoningDelta) and i.text]
    assert thought_deltas == thoughts
    assert [i.text for i in items if isinstance(i, TextDelta)] == texts
    assert response.parts == [
        ReasoningPart(text="".join(thoughts), provider="gemini"),
        TextPart(text="".join(texts)),
        ReasoningPart(
            signature=signature, provider="gemini", provider_data={"gemini": "text_signature"}
        ),
    ]
    assert response.usage.input_tokens == 34
    assert response.usage.output_tokens == 469 + 787
    assert response.usage.reasoning_tokens == 787
    assert response.finish_reason == "stop"


async def test_stream_function_call_thought_signature_is_sent_back() -> None:
    provider, transport = replay("stream_function_call_thought_signature")
    messages = [ChatMessage.user("What is the capital of the user country? Call the tool")]
    tool = ToolSpec(
        name="get_country",
        parameters={"additionalProperties": False, "properties": {}, "type": "object"},
    )
    request = LLMRequest(messages=messages, tools=[tool], options=[TEXT])
    model = "gemini-3-pro-preview"

    stream = provider.stream(request.model_copy(update={"model": model}))
    first = await stream.get_response()
    assert_sent_as_recorded(transport, 0)
    recorded = recorded_chunks(transport, 0)[0]["candidates"][0]["content"]["parts"][0]
    # The empty text chunk after the call does not become a part.
    assert first.parts == [
        ToolCallPart(
            id="call_0",
            name="get_country",
            arguments={},
            signature=recorded["thoughtSignature"],
            provider="gemini",
        )
    ]
    assert (first.finish_reason, first.raw_finish_reason) == ("tool_calls", "STOP")
    assert first.usage.output_tokens == 10 + 202

    messages = [*messages, first.message, results_for(first, ["Mexico"])]
    stream = provider.stream(
        request.model_copy(update={"messages": messages}).model_copy(update={"model": model})
    )
    second = await stream.get_response()
    sent = assert_sent_as_recorded(transport, 1)
    sent_signature = sent["contents"][1]["parts"][0]["thoughtSignature"]
    assert (
        sent_signature
        == norm(transport.recorded_json(1))["contents"][1]["parts"][0]["thoughtSignature"]
    )
    assert base64.urlsafe_b64decode(sent_signature) == base64.b64decode(
        recorded["thoughtSignature"]
    )
    assert second.text == "The capital of Mexico is Mexico City."
    assert second.finish_reason == "stop"
    assert second.usage.input_tokens == 257
    transport.assert_all_used()


async def test_thinking_thought_parts_multiturn() -> None:
    provider, transport = replay("thinking_thought_parts_multiturn")
    messages = [
        ChatMessage.system("You are a helpful assistant."),
        ChatMessage.user("How do I cross the street?"),
    ]
    tool = ToolSpec(
        name="dummy",
        parameters={"additionalProperties": False, "properties": {}, "type": "object"},
    )
    request = LLMRequest(
        messages=messages,
        tools=[tool],
        reasoning=Reasoning(include_thoughts=True),
        options=[TEXT],
    )
    model = "gemini-3-pro-preview"

    first = await provider.generate(request.model_copy(update={"model": model}))
    assert_sent_as_recorded(transport, 0)
    recorded = recorded_response(transport, 0)["candidates"][0]["content"]["parts"]
    assert first.parts == [
        ReasoningPart(text=recorded[0]["text"], provider="gemini"),
        TextPart(text=recorded[1]["text"]),
        ReasoningPart(
            signature=recorded[1]["thoughtSignature"],
            provider="gemini",
            provider_data={"gemini": "text_signature"},
        ),
    ]
    assert first.reasoning[0].text.startswith("**A Safe Street-Crossing Guide")
    assert first.usage.reasoning_tokens == 1001
    assert first.usage.output_tokens == 736 + 1001

    question = "Considering the way to cross the street, analogously, how do I cross the river?"
    messages = [*messages, first.message, ChatMessage.user(question)]
    second = await provider.generate(
        request.model_copy(update={"messages": messages}).model_copy(update={"model": model})
    )
    sent = assert_sent_as_recorded(transport, 1)
    # Thought sent back as a thought; the signature back on the text it signed.
    model_turn = sent["contents"][1]["parts"]
    assert [sorted(p) for p in model_turn] == [["text", "thought"], ["text", "thoughtSignature"]]
    assert second.text.startswith("Crossing a river is deceptively similar")
    assert second.reasoning[0].text.startswith("**Navigating Nature's Road")
    assert second.usage.input_tokens == 1280
    transport.assert_all_used()


async def test_structured_output_response_json_schema() -> None:
    provider, transport = replay("structured_output_response_json_schema")
    schema = {
        "description": "A city and its country.",
        "properties": {"city": {"type": "string"}, "country": {"type": "string"}},
        "required": ["city", "country"],
        "title": "CityLocation",
        "type": "object",
    }
    request = LLMRequest(
        messages=[ChatMessage.user("What is the largest city in Mexico?")],
        response_format=ResponseFormat(name="CityLocation", json_schema=schema),
        options=[TEXT],
    )
    response = await provider.generate(request.model_copy(update={"model": "gemini-2.0-flash"}))

    assert transport.sent_json(0) == transport.recorded_json(0)
    config = transport.sent_json(0)["generationConfig"]
    assert config["responseMimeType"] == "application/json"
    assert config["responseJsonSchema"] == schema  # as given: the title stays here
    assert json.loads(response.text) == {"city": "Mexico City", "country": "Mexico"}
    assert response.usage.output_tokens == 20
    assert response.finish_reason == "stop"


async def test_error_404_model_not_found() -> None:
    provider, transport = replay("error_404_model_not_found")
    request = LLMRequest(messages=[ChatMessage.user("hello")], options=[TEXT])
    with pytest.raises(ModelNotFoundError) as caught:
        await provider.generate(request.model_copy(update={"model": "gemini-3.6-flahs"}))

    error = caught.value
    assert transport.sent_json(0) == transport.recorded_json(0)
    assert error.status_code == 404
    assert isinstance(error.__cause__, genai_errors.ClientError)
    assert error.provider == "gemini"
    assert error.model == "gemini-3.6-flahs"
    assert "models/gemini-3.6-flahs is not found" in str(error)
    assert "gemini-3.6-flahs" in str(error)
    assert isinstance(error.body, dict)
    assert error.body["error"]["status"] == "NOT_FOUND"
    assert not error.retryable


# -- unit tests on a mock transport --------------------------------------------------------

OK: dict[str, Any] = {
    "candidates": [
        {"content": {"role": "model", "parts": [{"text": "ok"}]}, "finishReason": "STOP"}
    ],
    "usageMetadata": {"promptTokenCount": 3, "candidatesTokenCount": 1, "totalTokenCount": 4},
    "modelVersion": "gemini-2.5-flash",
    "responseId": "r-ok",
}

Responder = Callable[[httpx.Request], httpx.Response]


def mocked(responder: Responder | None = None) -> tuple[GeminiProvider, list[httpx.Request]]:
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return responder(request) if responder else httpx.Response(200, json=OK)

    client = httpx.AsyncClient(transport=httpx.MockTransport(handle))
    return GeminiProvider(api_key="test-key", http_client=client), seen


async def sent_body(request: LLMRequest) -> dict[str, Any]:
    provider, seen = mocked()
    await provider.generate(request.model_copy(update={"model": "gemini-2.5-flash"}))
    assert len(seen) == 1
    body: dict[str, Any] = json.loads(seen[0].content)
    return body


def test_schema_transform_keeps_names_and_drops_what_gemini_rejects() -> None:
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "Args",
        "type": "object",
        "properties": {
            "title": {"type": "string", "title": "Title", "format": "email"},
            "kind": {"const": "book", "examples": ["book"]},
            "when": {"type": "string", "format": "date", "description": "Day"},
            "count": {"type": "integer", "exclusiveMinimum": 0, "minimum": 1},
            "tags": {"type": "array", "items": {"type": "string", "title": "Tag"}},
            "either": {"anyOf": [{"type": "string", "title": "S"}, {"type": "null"}]},
        },
        "$defs": {"Inner": {"title": "Inner", "type": "object", "properties": {}}},
        "required": ["title"],
    }
    original = json.loads(json.dumps(schema))
    out = gemini_json_schema(schema)

    assert schema == original  # the input is not changed
    assert "$schema" not in out
    assert "title" not in out
    assert set(out["properties"]) == {"title", "kind", "when", "count", "tags", "either"}
    assert out["properties"]["title"] == {"type": "string", "description": "Format: email"}
    assert out["properties"]["kind"] == {"enum": ["book"]}
    assert out["properties"]["when"]["description"] == "Day (format: date)"
    assert out["properties"]["count"] == {"type": "integer", "minimum": 1}
    assert out["properties"]["tags"]["items"] == {"type": "string"}
    assert out["properties"]["either"]["anyOf"] == [{"type": "string"}, {"type": "null"}]
    assert out["$defs"]["Inner"] == {"type": "object", "properties": {}}
    assert out["required"] == ["title"]


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ("auto", {"mode": "AUTO"}),
        ("none", {"mode": "NONE"}),
        ("required", {"mode": "ANY"}),
        (ToolName(name="lookup"), {"mode": "ANY", "allowedFunctionNames": ["lookup"]}),
    ],
)
async def test_tool_choice_mapping(choice: Any, expected: dict[str, Any]) -> None:
    tools = [ToolSpec(name="lookup"), ToolSpec(name="other")]
    body = await sent_body(
        LLMRequest(messages=[ChatMessage.user("x")], tools=tools, tool_choice=choice)
    )
    assert body["toolConfig"] == {"functionCallingConfig": expected}
    names = [d["name"] for d in body["tools"][0]["functionDeclarations"]]
    assert names == ["lookup", "other"]


async def test_no_tool_choice_sends_no_tool_config_and_contradictions_fail() -> None:
    tools = [ToolSpec(name="lookup")]
    body = await sent_body(LLMRequest(messages=[ChatMessage.user("x")], tools=tools))
    assert "toolConfig" not in body

    provider, seen = mocked()
    request = LLMRequest(
        messages=[ChatMessage.user("x")],
        tools=tools,
        tool_choice="auto",
        options=[GeminiOptions(allowed_function_names=["lookup"])],
    )
    with pytest.raises(LLMConfigurationError, match="tool_choice='required'"):
        await provider.generate(request.model_copy(update={"model": "gemini-2.5-flash"}))
    assert seen == []


async def test_function_response_name_is_looked_up_from_the_call() -> None:
    messages = [
        ChatMessage.user("weather?"),
        ChatMessage.assistant(
            [
                ToolCallPart(id="a", name="weather", arguments={"city": "Oslo"}),
                ToolCallPart(id="b", name="clock", arguments={}),
            ]
        ),
        ChatMessage.tool_results(
            [
                ToolResultPart(call_id="b", content={"time": "12:00"}),
                ToolResultPart(call_id="a", content="boom", is_error=True),
                ToolResultPart(call_id="z", name="explicit", content=1),
            ]
        ),
    ]
    body = await sent_body(LLMRequest(messages=messages))
    model_turn, results = body["contents"][1], body["contents"][2]
    assert model_turn["role"] == "model"
    assert model_turn["parts"][0]["functionCall"] == {
        "id": "a",
        "name": "weather",
        "args": {"city": "Oslo"},
    }
    assert results["role"] == "user"
    assert [p["functionResponse"] for p in results["parts"]] == [
        {"id": "b", "name": "clock", "response": {"result": {"time": "12:00"}}},
        {"id": "a", "name": "weather", "response": {"error": "boom"}},
        {"id": "z", "name": "explicit", "response": {"result": 1}},
    ]


async def test_a_tool_result_whose_name_cannot_be_found_fails_clearly() -> None:
    provider, seen = mocked()
    messages = [
        ChatMessage.user("x"),
        ChatMessage.tool_results([ToolResultPart(call_id="ghost", content="?")]),
    ]
    with pytest.raises(LLMConfigurationError, match="ghost") as caught:
        await provider.generate(LLMRequest(messages=messages, model="gemini-2.5-flash"))
    assert "ToolResultPart(name=...)" in str(caught.value)
    assert seen == []


async def test_media_and_foreign_parts_mapping() -> None:
    png = b"\x89PNG\r\n\x1a\n"
    messages = [
        ChatMessage.user(
            [
                TextPart(text="look"),
                ImagePart(data=png, media_type="image/png"),
                ImagePart(url="https://example.com/cat.jpg"),
                FilePart(data=b"%PDF-1.4", media_type="application/pdf", name="a.pdf"),
            ]
        ),
        ChatMessage.assistant(
            [
                ReasoningPart(text="hidden", signature="c2ln", provider="anthropic"),
                ToolCallPart(id="c1", name="f", arguments={}, signature="c2ln", provider="openai"),
            ]
        ),
        # Only another provider's reasoning: nothing left for Gemini, so no empty turn.
        ChatMessage.assistant([ReasoningPart(text="x", provider="openai")]),
        ChatMessage.tool_results([ToolResultPart(call_id="c1", content="done")]),
    ]
    body = await sent_body(LLMRequest(messages=messages))
    user, model, results = norm(body["contents"])
    assert user["parts"][0] == {"text": "look"}
    inline = user["parts"][1]["inlineData"]
    assert inline["mimeType"] == "image/png"
    assert base64.urlsafe_b64decode(inline["data"]) == png
    assert user["parts"][2] == {
        "fileData": {"fileUri": "https://example.com/cat.jpg", "mimeType": "image/jpeg"}
    }
    assert user["parts"][3]["inlineData"]["mimeType"] == "application/pdf"
    # Foreign reasoning is dropped and a foreign signature is not sent.
    assert model["parts"] == [{"functionCall": {"id": "c1", "name": "f", "args": {}}}]
    assert results["parts"][0]["functionResponse"]["name"] == "f"


async def test_generation_settings_mapping() -> None:
    options = GeminiOptions(
        top_k=40,
        candidate_count=1,
        presence_penalty=0.5,
        frequency_penalty=0.25,
        cached_content="cachedContents/abc",
        safety_settings=[{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_ONLY_HIGH"}],
    )
    request = LLMRequest(
        messages=[ChatMessage.user("x")],
        temperature=0.3,
        max_tokens=256,
        top_p=0.9,
        stop=["END"],
        seed=7,
        reasoning=Reasoning(effort="medium"),
        options=[options],
    )
    body = await sent_body(request)
    config = norm(body["generationConfig"])
    assert config == {
        "temperature": 0.3,
        "topP": 0.9,
        "topK": 40,
        "maxOutputTokens": 256,
        "stopSequences": ["END"],
        "seed": 7,
        "candidateCount": 1,
        "presencePenalty": 0.5,
        "frequencyPenalty": 0.25,
        "thinkingConfig": {"thinkingBudget": 8192, "includeThoughts": True},
    }
    assert body["cachedContent"] == "cachedContents/abc"
    assert body["safetySettings"] == [
        {"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_ONLY_HIGH"}
    ]


@pytest.mark.parametrize(
    ("reasoning", "options", "expected"),
    [
        (
            Reasoning(effort="low"),
            GeminiOptions(),
            {"thinkingBudget": 1024, "includeThoughts": True},
        ),
        (
            Reasoning(effort="high", include_thoughts=False),
            GeminiOptions(),
            {"thinkingBudget": 24576, "includeThoughts": False},
        ),
        (
            Reasoning(effort="low", budget_tokens=2000),
            GeminiOptions(),
            {"thinkingBudget": 2000, "includeThoughts": True},
        ),
        (
            Reasoning(effort="low"),
            GeminiOptions(thinking_level="high"),
            {"thinkingLevel": "HIGH", "includeThoughts": True},
        ),
        (None, GeminiOptions(thinking_budget=0), {"thinkingBudget": 0}),
        (None, GeminiOptions(), None),
    ],
)
async def test_reasoning_becomes_a_thinking_config(
    reasoning: Reasoning | None, options: GeminiOptions, expected: dict[str, Any] | None
) -> None:
    request = LLMRequest(messages=[ChatMessage.user("x")], reasoning=reasoning, options=[options])
    body = await sent_body(request)
    assert norm(body.get("generationConfig", {})).get("thinkingConfig") == expected


async def test_extra_body_and_request_timeout_reach_the_wire() -> None:
    provider, seen = mocked()
    options = GeminiOptions(
        extra_body={
            "generationConfig": {"mediaResolution": "MEDIA_RESOLUTION_LOW"},
            "labels": {"team": "a"},
        }
    )
    request = LLMRequest(
        messages=[ChatMessage.user("x")], temperature=0.5, timeout=2.5, options=[options]
    )
    await provider.generate(request.model_copy(update={"model": "gemini-2.5-flash"}))
    body = json.loads(seen[0].content)
    assert body["generationConfig"] == {
        "temperature": 0.5,
        "mediaResolution": "MEDIA_RESOLUTION_LOW",
    }
    assert body["labels"] == {"team": "a"}
    assert seen[0].headers["x-server-timeout"] == "3"
    assert seen[0].extensions["timeout"]["read"] == 2.5
    assert seen[0].headers["x-goog-api-key"] == "test-key"
    assert seen[0].url.path == "/v1beta/models/gemini-2.5-flash:generateContent"


async def test_the_provider_timeout_is_the_default_for_every_request() -> None:
    client = httpx.AsyncClient(
        transport=httpx.MockTransport(lambda r: httpx.Response(200, json=OK))
    )
    seen: list[httpx.Request] = []

    async def record(request: httpx.Request) -> None:
        seen.append(request)

    client.event_hooks["request"] = [record]
    provider = GeminiProvider(
        api_key="k", timeout=12, http_client=client, base_url="https://proxy.test"
    )
    await provider.generate(LLMRequest(messages=[ChatMessage.user("x")], model="gemini-2.5-flash"))
    assert seen[0].extensions["timeout"]["read"] == 12
    assert seen[0].url.host == "proxy.test"


def test_missing_key_names_both_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GEMINI_API_KEY", raising=False)
    monkeypatch.delenv("GOOGLE_API_KEY", raising=False)
    with pytest.raises(MissingCredentialsError) as caught:
        GeminiProvider()
    assert "GEMINI_API_KEY" in str(caught.value)
    assert "GOOGLE_API_KEY" in str(caught.value)
    assert caught.value.provider == "gemini"


def test_key_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GEMINI_API_KEY", raising=False)
    monkeypatch.setenv("GOOGLE_API_KEY", "from-env")
    assert GeminiProvider()._api_key == "from-env"


def _error(code: int, status: str, message: str, **more: Any) -> Responder:
    body = {"error": {"code": code, "status": status, "message": message, **more}}

    def respond(request: httpx.Request) -> httpx.Response:
        return httpx.Response(code, json=body)

    return respond


async def test_429_with_retry_delay_is_rate_limited_and_not_retried_by_the_sdk() -> None:
    details = [
        {"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": []},
        {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "13s"},
    ]
    provider, seen = mocked(_error(429, "RESOURCE_EXHAUSTED", "Quota exceeded.", details=details))
    with pytest.raises(RateLimitedError) as caught:
        await provider.generate(
            LLMRequest(messages=[ChatMessage.user("x")], model="gemini-2.5-flash")
        )
    error = caught.value
    assert error.retry_after == 13.0
    assert error.status_code == 429
    assert error.retryable
    assert "Quota exceeded." in str(error)
    assert "13 s" in str(error)
    assert isinstance(error.__cause__, genai_errors.ClientError)
    assert len(seen) == 1  # the SDK's own retries are off


async def test_429_retry_after_header_wins() -> None:
    def respond(request: httpx.Request) -> httpx.Response:
        body = {"error": {"code": 429, "status": "RESOURCE_EXHAUSTED", "message": "slow"}}
        return httpx.Response(429, json=body, headers={"retry-after": "7"})

    provider, _ = mocked(respond)
    with pytest.raises(RateLimitedError) as caught:
        await provider.generate(
            LLMRequest(messages=[ChatMessage.user("x")], model="gemini-2.5-flash")
        )
    assert caught.value.retry_after == 7.0


@pytest.mark.parametrize(
    ("code", "status", "message", "expected"),
    [
        (
            400,
            "INVALID_ARGUMENT",
            "The input token count (2000000) exceeds the maximum number of tokens allowed "
            "(1048576).",
            ContextTooLongError,
        ),
        (
            400,
            "INVALID_ARGUMENT",
            "API key not valid. Please pass a valid API key.",
            AuthenticationError,
        ),
        (
            400,
            "INVALID_ARGUMENT",
            "Invalid value at 'generation_config.temperature'",
            BadRequestError,
        ),
        (
            401,
            "UNAUTHENTICATED",
            "Request had invalid authentication credentials.",
            AuthenticationError,
        ),
        (403, "PERMISSION_DENIED", "Permission denied.", PermissionDeniedError),
        (500, "INTERNAL", "An internal error has occurred.", ServerUnavailableError),
        (503, "UNAVAILABLE", "The model is overloaded.", ServerUnavailableError),
    ],
)
async def test_status_first_error_mapping(
    code: int, status: str, message: str, expected: type[LLMError]
) -> None:
    provider, seen = mocked(_error(code, status, message))
    with pytest.raises(expected) as caught:
        await provider.generate(
            LLMRequest(messages=[ChatMessage.user("x")], model="gemini-2.5-flash")
        )
    assert type(caught.value) is expected
    assert caught.value.status_code == code
    assert message in str(caught.value)
    assert isinstance(caught.value.__cause__, genai_errors.APIError)
    assert len(seen) == 1


async def test_errors_while_streaming_are_translated() -> None:
    provider, _ = mocked(_error(503, "UNAVAILABLE", "The model is overloaded."))
    with pytest.raises(ServerUnavailableError):
        await provider.stream(
            LLMRequest(messages=[ChatMessage.user("x")], model="gemini-2.5-flash")
        ).get_response()


@pytest.mark.parametrize(
    ("raised", "expected"),
    [
        (httpx.ReadTimeout("timed out"), LLMTimeoutError),
        (httpx.ConnectError("connection refused"), LLMConnectionError),
    ],
)
async def test_transport_errors(raised: Exception, expected: type[LLMError]) -> None:
    def respond(request: httpx.Request) -> httpx.Response:
        raise raised

    provider, seen = mocked(respond)
    with pytest.raises(expected) as caught:
        await provider.generate(
            LLMRequest(messages=[ChatMessage.user("x")], model="gemini-2.5-flash")
        )
    assert caught.value.__cause__ is raised
    assert caught.value.provider == "gemini"
    assert len(seen) == 1


def test_non_sdk_exceptions_are_not_translated() -> None:
    provider, _ = mocked()
    bug = ValueError("a bug")
    assert provider._translated(bug, "m") is bug


# -- a streamed response and the same response unstreamed --------------------------------

SIG = [base64.b64encode(bytes([0xFB, 0xEF, 0xBE, n]) * 6).decode() for n in range(3)]
FULL_PARTS: list[dict[str, Any]] = [
    {"text": "Two cities. ", "thought": True},
    {"text": "Call twice.", "thought": True, "thoughtSignature": SIG[0]},
    {"text": "Checking the weather in two cities.", "thoughtSignature": SIG[1]},
    {"functionCall": {"name": "weather", "args": {"city": "Paris"}}, "thoughtSignature": SIG[2]},
    {"functionCall": {"name": "weather", "args": {"city": "Tokyo"}}},
]
USAGE = {
    "promptTokenCount": 40,
    "cachedContentTokenCount": 12,
    "candidatesTokenCount": 25,
    "thoughtsTokenCount": 60,
    "totalTokenCount": 125,
}
FULL = {
    "candidates": [
        {"content": {"role": "model", "parts": FULL_PARTS}, "finishReason": "STOP", "index": 0}
    ],
    "usageMetadata": USAGE,
    "modelVersion": "gemini-2.5-flash",
    "responseId": "resp-1",
}
# The same answer in chunks: text split differently, the signature on a later chunk.
CHUNK_PARTS: list[list[dict[str, Any]]] = [
    [{"text": "Two cities. ", "thought": True}],
    [{"text": "Call twice.", "thought": True, "thoughtSignature": SIG[0]}],
    [{"text": "Checking the weather"}],
    [{"text": " in two cities.", "thoughtSignature": SIG[1]}],
    [FULL_PARTS[3], FULL_PARTS[4]],
]


def sse() -> bytes:
    events = []
    for n, parts in enumerate(CHUNK_PARTS):
        candidate: dict[str, Any] = {"content": {"role": "model", "parts": parts}, "index": 0}
        usage = {**USAGE, "candidatesTokenCount": 5 * (n + 1)}
        if n == len(CHUNK_PARTS) - 1:
            candidate["finishReason"] = "STOP"
        chunk = {
            "candidates": [candidate],
            "usageMetadata": usage,
            "modelVersion": "gemini-2.5-flash",
            "responseId": "resp-1",
        }
        events.append(f"data: {json.dumps(chunk)}\r\n\r\n")
    return "".join(events).encode()


def both(request: httpx.Request) -> httpx.Response:
    if request.url.path.endswith(":streamGenerateContent"):
        return httpx.Response(200, content=sse(), headers={"content-type": "text/event-stream"})
    return httpx.Response(200, json=FULL)


async def test_streamed_and_unstreamed_responses_are_equal() -> None:
    provider, seen = mocked(both)
    request = LLMRequest(messages=[ChatMessage.user("weather in Paris and Tokyo?")])
    plain = await provider.generate(request.model_copy(update={"model": "gemini-2.5-flash"}))
    stream = provider.stream(request.model_copy(update={"model": "gemini-2.5-flash"}))
    deltas = [item async for item in stream]
    streamed = stream.response
    assert streamed is not None

    assert seen[1].url.params["alt"] == "sse"
    assert sum(isinstance(d, TextDelta) for d in deltas) == 2
    assert plain.same_content(streamed)
    assert plain.parts == [
        ReasoningPart(text="Two cities. Call twice.", signature=SIG[0], provider="gemini"),
        TextPart(text="Checking the weather in two cities."),
        ReasoningPart(
            signature=SIG[1], provider="gemini", provider_data={"gemini": "text_signature"}
        ),
        ToolCallPart(
            id="call_0",
            name="weather",
            arguments={"city": "Paris"},
            signature=SIG[2],
            provider="gemini",
        ),
        ToolCallPart(id="call_1", name="weather", arguments={"city": "Tokyo"}, provider="gemini"),
    ]
    assert (plain.finish_reason, plain.raw_finish_reason) == ("tool_calls", "STOP")
    assert plain.usage.input_tokens == 40
    assert plain.usage.cache_read_tokens == 12
    assert plain.usage.output_tokens == 25 + 60
    assert plain.usage.reasoning_tokens == 60
    assert (plain.model, plain.response_id) == ("gemini-2.5-flash", "resp-1")


async def test_an_answer_goes_back_as_gemini_sent_it() -> None:
    provider, seen = mocked(both)
    messages = [ChatMessage.user("weather in Paris and Tokyo?")]
    answer = await provider.generate(LLMRequest(messages=messages, model="gemini-2.5-flash"))
    messages += [answer.message, results_for(answer, ["sunny", "rain"])]
    await provider.generate(LLMRequest(messages=messages, model="gemini-2.5-flash"))

    model_turn = json.loads(seen[1].content)["contents"][1]
    assert model_turn["role"] == "model"
    sent = model_turn["parts"]
    # Merged thoughts go back as one signed thought; each signature where it came from.
    assert [p.get("text") for p in sent[:2]] == [
        "Two cities. Call twice.",
        "Checking the weather in two cities.",
    ]
    assert sent[0]["thought"] is True
    signatures = [base64.urlsafe_b64decode(p.get("thoughtSignature", "")) for p in sent]
    assert signatures == [base64.b64decode(s) for s in SIG] + [b""]
    assert [p["functionCall"]["args"] for p in sent[2:]] == [{"city": "Paris"}, {"city": "Tokyo"}]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("MAX_TOKENS", "length"),
        ("SAFETY", "content_filter"),
        ("RECITATION", "content_filter"),
        ("PROHIBITED_CONTENT", "content_filter"),
        ("MALFORMED_FUNCTION_CALL", "error"),
        ("OTHER", "other"),
    ],
)
async def test_finish_reasons(raw: str, expected: str) -> None:
    body = {**OK, "candidates": [{**OK["candidates"][0], "finishReason": raw}]}
    provider, _ = mocked(lambda request: httpx.Response(200, json=body))
    response = await provider.generate(
        LLMRequest(messages=[ChatMessage.user("x")], model="gemini-2.5-flash")
    )
    assert (response.finish_reason, response.raw_finish_reason) == (expected, raw)


async def test_a_blocked_prompt_is_a_content_filter_finish() -> None:
    body = {"promptFeedback": {"blockReason": "SAFETY"}, "modelVersion": "gemini-2.5-flash"}
    provider, _ = mocked(lambda request: httpx.Response(200, json=body))
    response = await provider.generate(
        LLMRequest(messages=[ChatMessage.user("x")], model="gemini-2.5-flash")
    )
    assert (response.finish_reason, response.raw_finish_reason) == ("content_filter", "SAFETY")
    assert response.parts == []


def test_the_private_genai_call_llmgine_uses_is_still_there() -> None:
    """llmgine/llm/providers/_genai_raw.py sends wire JSON through google-genai's private
    ``client.aio._api_client.async_request`` / ``async_request_streamed`` (the SDK has no
    public raw call). If this fails, a new google-genai changed them: adapt _genai_raw.py."""
    import inspect

    from google import genai
    from google.genai._api_client import BaseApiClient

    client = genai.Client(api_key="test-key")
    api_client = client.aio._api_client
    assert isinstance(api_client, BaseApiClient), "_genai_raw.py: client.aio._api_client moved"
    for name in ("async_request", "async_request_streamed"):
        method = getattr(api_client, name, None)
        assert inspect.iscoroutinefunction(method), f"_genai_raw.py: {name} is gone"
        params = list(inspect.signature(method).parameters)
        assert params[:4] == ["http_method", "path", "request_dict", "http_options"], (
            f"_genai_raw.py: {name} now takes {params}"
        )
