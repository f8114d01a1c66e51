"""The OpenAI adapter, Chat Completions side: every ``cassettes/openai/chat_*`` recording
replayed through the real SDK, and unit tests of the mapping (strict schemas, media, tool
choice, credentials, errors and ``retry-after``, streamed vs non-streamed equality).

The Responses API recordings are in ``test_openai_responses.py``. Nothing here touches the
network: recordings replay through `CassetteTransport`, the rest through
``httpx.MockTransport``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any, cast

import httpx
import httpx2
import openai
import pytest

from llmgine.errors import (
    AuthenticationError,
    BadRequestError,
    ContentFilteredError,
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
from llmgine.llm.providers.openai import (
    COMPATIBLE_SERVERS,
    OpenAICompatibleProvider,
    OpenAIOptions,
    OpenAIProvider,
    strict_json_schema,
)
from tests.llm.replay import CassetteTransport, collect

Handler = Callable[[httpx.Request], httpx.Response]


def replay(name: str) -> tuple[OpenAIProvider, CassetteTransport]:
    transport = CassetteTransport.of(f"openai/{name}")
    return OpenAIProvider(api_key="sk-test", http_client=transport.client()), transport


def canon(value: Any) -> Any:
    """Wire JSON compared by meaning: null fields dropped, tool arguments parsed (the
    recorders serialised them with and without spaces)."""
    if isinstance(value, dict):
        out = {k: canon(v) for k, v in value.items() if v is not None}
        if isinstance(out.get("arguments"), str):
            out["arguments"] = json.loads(out["arguments"])
        return out
    if isinstance(value, list):
        return [canon(item) for item in value]
    return value


def strict_tool(name: str, prop: str, description: str = "") -> ToolSpec:
    return ToolSpec(
        name=name,
        description=description,
        parameters={
            "additionalProperties": False,
            "properties": {prop: {"type": "string"}},
            "required": [prop],
            "type": "object",
        },
        strict=True,
    )


# -- the recordings ------------------------------------------------------------------------


async def test_chat_plain_text() -> None:
    provider, transport = replay("chat_plain_text.yaml")
    request = LLMRequest(messages=[ChatMessage.user("What is the capital of France?")])

    response = await provider.generate(request.model_copy(update={"model": "gpt-4o"}))

    sent, recorded = transport.sent_json(0), transport.recorded_json(0)
    assert sent["messages"] == recorded["messages"]
    assert (sent["model"], sent["stream"]) == ("gpt-4o", False)
    assert set(sent) == {"model", "messages", "stream"}  # nothing unasked for
    assert response.text == "The capital of France is Paris."
    assert (response.finish_reason, response.raw_finish_reason) == ("stop", "stop")
    assert response.usage.model_dump() == {
        "input_tokens": 14,
        "output_tokens": 7,
        "cache_read_tokens": 0,
        "cache_write_tokens": None,
        "reasoning_tokens": 0,
    }
    assert response.model == "gpt-4o-2024-08-06"
    assert response.response_id == "chatcmpl-Bu8vBIrB8kIWKRyTcpEEPncjhHtMU"
    assert response.provider == "openai"
    assert response.raw["system_fingerprint"] == "fp_a288987b44"  # plain JSON data
    json.dumps(response.raw)
    assert transport.sent[0].headers["authorization"] == "Bearer sk-test"


async def test_chat_system_prompt() -> None:
    provider, transport = replay("chat_system_prompt.yaml")
    request = LLMRequest(
        messages=[
            ChatMessage.system("You are a helpful assistant."),
            ChatMessage.user("What is the capital of France?"),
        ]
    )

    response = await provider.generate(request.model_copy(update={"model": "gpt-4o"}))

    assert transport.sent_json(0)["messages"] == transport.recorded_json(0)["messages"]
    assert response.text == "The capital of France is Paris."
    assert (response.usage.input_tokens, response.usage.output_tokens) == (24, 8)


async def test_chat_tool_call_result_then_multiturn() -> None:
    provider, transport = replay("chat_tool_call_result_then_multiturn.yaml")
    tools = [strict_tool("get_weather", "city")]
    messages = [ChatMessage.user("What is the weather in Paris? Use the tool.")]

    first = await provider.generate(
        LLMRequest(messages=messages, tools=tools, tool_choice="auto", model="gpt-4o")
    )
    sent = transport.sent_json(0)
    assert sent["tools"] == transport.recorded_json(0)["tools"]
    assert sent["tool_choice"] == "auto"
    assert first.text == ""
    [call] = first.tool_calls
    assert (call.id, call.name, call.arguments) == (
        "call_i8bNJ8oVFq9EVr3dZvYC0tiJ",
        "get_weather",
        {"city": "Paris"},
    )
    assert (first.finish_reason, first.raw_finish_reason) == ("tool_calls", "tool_calls")

    messages += [
        first.message,
        ChatMessage.tool_results([ToolResultPart(call_id=call.id, content="sunny in Paris")]),
    ]
    second = await provider.generate(
        LLMRequest(messages=messages, tools=tools, tool_choice="auto", model="gpt-4o")
    )
    assert canon(transport.sent_json(1)["messages"]) == canon(
        transport.recorded_json(1)["messages"]
    )
    assert second.text == "The weather in Paris is sunny."
    assert second.finish_reason == "stop"

    messages += [second.message, ChatMessage.user("Reply with exactly: OK")]
    for index in (2, 3):  # the follow-up, without tools, was recorded twice
        third = await provider.generate(LLMRequest(messages=messages, model="gpt-4o"))
        sent = transport.sent_json(index)
        assert canon(sent["messages"]) == canon(transport.recorded_json(index)["messages"])
        assert "tools" not in sent
        assert "tool_choice" not in sent
        assert third.text == "OK"
    transport.assert_all_used()


async def test_chat_parallel_tool_calls_with_results() -> None:
    provider, transport = replay("chat_parallel_tool_calls_with_results.yaml")
    tools = [strict_tool("create_file", "path"), strict_tool("delete_file", "path")]
    messages = [
        ChatMessage.system("Just call tools without asking for confirmation."),
        ChatMessage.user("Delete the file `.env` and create `test.txt`"),
    ]

    first = await provider.generate(
        LLMRequest(messages=messages, tools=tools, tool_choice="auto", model="gpt-4o")
    )
    assert transport.sent_json(0)["tools"] == transport.recorded_json(0)["tools"]
    assert transport.sent_json(0)["messages"] == transport.recorded_json(0)["messages"]
    assert [(c.name, c.arguments) for c in first.tool_calls] == [
        ("delete_file", {"path": ".env"}),
        ("create_file", {"path": "test.txt"}),
    ]
    assert first.finish_reason == "tool_calls"
    assert (first.usage.input_tokens, first.usage.output_tokens) == (71, 46)

    delete, create = first.tool_calls
    messages += [
        first.message,
        ChatMessage.tool_results(
            [
                ToolResultPart(call_id=delete.id, content=True),  # JSON data goes as JSON
                ToolResultPart(call_id=create.id, content="Success"),
            ]
        ),
    ]
    second = await provider.generate(
        LLMRequest(messages=messages, tools=tools, tool_choice="auto", model="gpt-4o")
    )
    sent_messages = transport.sent_json(1)["messages"]
    assert canon(sent_messages) == canon(transport.recorded_json(1)["messages"])
    assert [m["tool_call_id"] for m in sent_messages if m["role"] == "tool"] == [
        "call_jYdIdRZHxZTn5bWCq5jlMrJi",
        "call_TmlTVWQbzrXCZ4jNsCVNbNqu",
    ]
    assert second.text.startswith("The file `.env` has been deleted")


async def test_chat_stream_tool_call_then_text_usage() -> None:
    provider, transport = replay("chat_stream_tool_call_then_text_usage.yaml")
    tools = [strict_tool("get_capital", "country")]
    messages = [ChatMessage.user("What is the capital of the UK? Use the tool, then answer.")]
    request = LLMRequest(messages=messages, tools=tools, tool_choice="auto", stream=True)

    items, first = await collect(provider, request, "gpt-4o-mini")

    sent, recorded = transport.sent_json(0), transport.recorded_json(0)
    assert (sent["stream"], sent["stream_options"]) == (True, {"include_usage": True})
    assert sent["tools"] == recorded["tools"]
    assert sent["messages"] == recorded["messages"]
    deltas = [item for item in items if isinstance(item, ToolCallDelta)]
    assert len(deltas) == 6  # the arguments arrived in fragments
    assert (deltas[0].id, deltas[0].name) == ("call_ZR5UUuTt3pf61kjwAJIYdVMj", "get_capital")
    assert all(d.id is None for d in deltas[1:])
    assert "".join(d.arguments for d in deltas) == '{"country":"UK"}'
    [call] = first.tool_calls
    assert (call.name, call.arguments) == ("get_capital", {"country": "UK"})
    assert (first.finish_reason, first.raw_finish_reason) == ("tool_calls", "tool_calls")
    assert (first.usage.input_tokens, first.usage.output_tokens) == (53, 15)  # usage-only chunk
    assert first.response_id == "chatcmpl-Dx0XpqH8w09uBXwq1zFGYdETjtnEl"
    assert first.model == "gpt-4o-mini-2024-07-18"

    messages += [
        first.message,
        ChatMessage.tool_results([ToolResultPart(call_id=call.id, content="London")]),
    ]
    request = LLMRequest(messages=messages, tools=tools, tool_choice="auto", stream=True)
    items, second = await collect(provider, request, "gpt-4o-mini")

    assert canon(transport.sent_json(1)["messages"]) == canon(
        transport.recorded_json(1)["messages"]
    )
    texts = [item.text for item in items if isinstance(item, TextDelta)]
    assert len(texts) == 8
    assert texts[:2] == ["The", " capital"]
    assert second.text == "The capital of the UK is London."
    assert (second.finish_reason, second.raw_finish_reason) == ("stop", "stop")
    assert (second.usage.input_tokens, second.usage.output_tokens) == (78, 9)
    assert second.time_to_first_token_ms is not None


async def test_chat_structured_output_json_schema_with_tool() -> None:
    provider, transport = replay("chat_structured_output_json_schema_with_tool.yaml")
    schema = {
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
    fmt = ResponseFormat(name="result", json_schema=schema, strict=False)
    messages = [ChatMessage.user("What is the largest city in the user country?")]

    first = await provider.generate(
        LLMRequest(
            messages=messages, tools=tools, tool_choice="auto", response_format=fmt, model="gpt-4o"
        ),
    )
    sent, recorded = transport.sent_json(0), transport.recorded_json(0)
    assert sent["response_format"] == recorded["response_format"]
    assert sent["tools"] == recorded["tools"]  # not strict: the schema goes as it is
    [call] = first.tool_calls
    assert (call.name, call.arguments, call.invalid_arguments) == ("get_user_country", {}, None)

    messages += [
        first.message,
        ChatMessage.tool_results([ToolResultPart(call_id=call.id, content="Mexico")]),
    ]
    second = await provider.generate(
        LLMRequest(
            messages=messages, tools=tools, tool_choice="auto", response_format=fmt, model="gpt-4o"
        ),
    )
    assert canon(transport.sent_json(1)["messages"]) == canon(
        transport.recorded_json(1)["messages"]
    )
    assert json.loads(second.text) == {"city": "Mexico City", "country": "Mexico"}
    assert second.finish_reason == "stop"


async def test_chat_two_step_tool_chain_gzip_recording() -> None:
    provider, transport = replay("chat_two_step_tool_chain__stdvcr_gzip.yaml")
    tools = [
        ToolSpec(
            name="lookup_population",
            description="Returns the current population of the specified fictional country",
            parameters={
                "properties": {"country": {"type": "string"}},
                "required": ["country"],
                "type": "object",
            },
        ),
        ToolSpec(
            name="can_have_dragons",
            description="Returns True if the specified population can have dragons, False "
            "otherwise",
            parameters={
                "properties": {"population": {"type": "integer"}},
                "required": ["population"],
                "type": "object",
            },
        ),
    ]
    messages = [
        ChatMessage.user("Can the country of Crumpet have dragons? Answer with only YES or NO")
    ]
    results = {"lookup_population": "123124", "can_have_dragons": "true"}

    expected_calls: list[tuple[str, dict[str, Any]]] = [
        ("lookup_population", {"country": "Crumpet"}),
        ("can_have_dragons", {"population": 123124}),
    ]
    for index, (name, arguments) in enumerate(expected_calls):
        response = await provider.generate(
            LLMRequest(messages=messages, tools=tools, model="gpt-4o-mini")
        )
        sent, recorded = transport.sent_json(index), transport.recorded_json(index)
        assert sent["tools"] == recorded["tools"]
        assert "tool_choice" not in sent
        assert canon(sent["messages"]) == canon(recorded["messages"])
        [call] = response.tool_calls
        assert (call.name, call.arguments) == (name, arguments)
        messages += [
            response.message,
            ChatMessage.tool_results([ToolResultPart(call_id=call.id, content=results[name])]),
        ]
    final = await provider.generate(LLMRequest(messages=messages, tools=tools, model="gpt-4o-mini"))
    assert canon(transport.sent_json(2)["messages"]) == canon(
        transport.recorded_json(2)["messages"]
    )
    assert final.text == "YES"
    assert (final.usage.input_tokens, final.usage.output_tokens) == (146, 3)
    transport.assert_all_used()


async def test_chat_error_400_invalid_request() -> None:
    provider, transport = replay("chat_error_400_invalid_request.yaml")
    request = LLMRequest(
        messages=[
            ChatMessage.system("You are a helpful assistant."),
            ChatMessage.user("What day is today?"),
        ],
        # A field the unified request lacks, passed verbatim.
        options=[OpenAIOptions(extra_body={"web_search_options": {"search_context_size": "low"}})],
    )

    with pytest.raises(BadRequestError) as caught:
        await provider.generate(request.model_copy(update={"model": "gpt-4o"}))

    error = caught.value
    assert type(error) is BadRequestError
    assert error.status_code == 400
    assert isinstance(error.__cause__, openai.BadRequestError)
    assert (error.provider, error.model) == ("openai", "gpt-4o")
    assert isinstance(error.body, dict)
    assert error.body["param"] == "web_search_options"
    assert "Web search options not supported with this model." in str(error)
    assert "'web_search_options'" in str(error)
    assert "Fix the request" in str(error)
    assert transport.sent_json(0)["web_search_options"] == {"search_context_size": "low"}


async def test_chat_error_404_model_not_found() -> None:
    provider, _ = replay("chat_error_404_model_not_found.yaml")

    with pytest.raises(ModelNotFoundError) as caught:
        await provider.generate(
            LLMRequest(messages=[ChatMessage.user("hello")], model="gpt-5.2-proo")
        )

    error = caught.value
    assert error.status_code == 404
    assert isinstance(error.__cause__, openai.NotFoundError)
    assert error.model == "gpt-5.2-proo"
    assert "does not exist or you do not have access to it" in str(error)
    assert "model_not_found" in str(error)
    assert "Check the model name" in str(error)


# -- unit tests through a mock server ------------------------------------------------------


def completion_json(**message: Any) -> dict[str, Any]:
    return {
        "id": "chatcmpl-unit",
        "object": "chat.completion",
        "created": 1,
        "model": "gpt-4o-mini-2024-07-18",
        "choices": [
            {
                "index": 0,
                "finish_reason": message.pop("finish_reason", "stop"),
                "logprobs": None,
                "message": {"role": "assistant", "content": None, "refusal": None, **message},
            }
        ],
        "usage": {
            "prompt_tokens": 120,
            "completion_tokens": 30,
            "total_tokens": 150,
            "prompt_tokens_details": {"cached_tokens": 64},
            "completion_tokens_details": {"reasoning_tokens": 12},
        },
    }


class Server:
    """A fake endpoint: keeps what was sent and answers with ``respond``."""

    def __init__(self, respond: Handler | None = None) -> None:
        self.requests: list[httpx.Request] = []
        self.respond = respond or (lambda _: httpx.Response(200, json=completion_json()))

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.respond(request)

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.MockTransport(self.handle))

    def provider(self, **kwargs: Any) -> OpenAIProvider:
        return OpenAIProvider(api_key="sk-test", http_client=self.client(), **kwargs)

    def body(self, index: int = -1) -> Any:
        return json.loads(self.requests[index].content)


async def sent_body(request: LLMRequest, model: str = "gpt-4o-mini", **kwargs: Any) -> Any:
    server = Server()
    await server.provider(**kwargs).generate(request.model_copy(update={"model": model}))
    return server.body()


def test_strict_schema_closes_every_object_and_requires_every_property() -> None:
    schema = {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "tags": {"type": "array", "items": {"type": "object", "properties": {"k": {}}}},
            "owner": {"$ref": "#/$defs/Person"},
            "either": {"anyOf": [{"type": "object", "properties": {"a": {}}}, {"type": "null"}]},
            "properties": {"type": "object", "properties": {"x": {"type": "integer"}}},
        },
        "required": ["name"],
        "$defs": {"Person": {"type": "object", "properties": {"age": {"type": "integer"}}}},
    }
    before = json.dumps(schema)

    strict = strict_json_schema(schema)

    assert json.dumps(schema) == before  # the input is left alone
    assert strict["additionalProperties"] is False
    assert strict["required"] == ["name", "tags", "owner", "either", "properties"]
    tag = strict["properties"]["tags"]["items"]
    assert (tag["additionalProperties"], tag["required"]) == (False, ["k"])
    assert strict["$defs"]["Person"]["required"] == ["age"]
    assert strict["properties"]["either"]["anyOf"][0]["required"] == ["a"]
    assert strict["properties"]["either"]["anyOf"][1] == {"type": "null"}
    assert strict["properties"]["properties"]["required"] == ["x"]  # a property named so
    assert "additionalProperties" not in strict["properties"]["name"]
    assert strict_json_schema(strict) == strict  # already strict: unchanged


async def test_strict_tools_and_output_are_sent_strict_compatible() -> None:
    loose = {"type": "object", "properties": {"a": {"type": "string"}, "b": {"type": "integer"}}}
    request = LLMRequest(
        messages=[ChatMessage.user("hi")],
        tools=[
            ToolSpec(name="strict", parameters=loose, strict=True),
            ToolSpec(name="loose", parameters=loose),
        ],
        response_format=ResponseFormat(name="out", json_schema=loose, description="the answer"),
    )

    body = await sent_body(request)

    strict_fn, loose_fn = (tool["function"] for tool in body["tools"])
    assert strict_fn["strict"] is True
    assert strict_fn["parameters"]["required"] == ["a", "b"]
    assert strict_fn["parameters"]["additionalProperties"] is False
    assert loose_fn["parameters"] == loose
    assert "strict" not in loose_fn
    fmt = body["response_format"]
    assert fmt["type"] == "json_schema"
    assert fmt["json_schema"]["strict"] is True
    assert fmt["json_schema"]["name"] == "out"
    assert fmt["json_schema"]["description"] == "the answer"
    assert fmt["json_schema"]["schema"]["required"] == ["a", "b"]


async def test_images_and_files_map_to_chat_content_parts() -> None:
    request = LLMRequest(
        messages=[
            ChatMessage.user(
                [
                    TextPart(text="What are these?"),
                    ImagePart(data=b"\x89PNG", media_type="image/png"),
                    ImagePart(url="https://example.com/cat.jpg"),
                    FilePart(data=b"%PDF-1.7", media_type="application/pdf", name="a.pdf"),
                    FilePart(data=b"RIFF", media_type="audio/wav"),
                ]
            )
        ]
    )

    [message] = (await sent_body(request))["messages"]

    assert message["content"] == [
        {"type": "text", "text": "What are these?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw=="}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}},
        {
            "type": "file",
            "file": {"filename": "a.pdf", "file_data": "data:application/pdf;base64,JVBERi0xLjc="},
        },
        {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}},
    ]


async def test_a_file_by_url_is_refused_by_chat_with_what_to_do() -> None:
    server = Server()
    request = LLMRequest(messages=[ChatMessage.user([FilePart(url="https://example.com/a.pdf")])])

    with pytest.raises(LLMConfigurationError, match="api='responses'"):
        await server.provider().generate(request.model_copy(update={"model": "gpt-4o-mini"}))
    assert server.requests == []  # refused before anything was sent


@pytest.mark.parametrize(
    ("choice", "wire"),
    [
        ("auto", "auto"),
        ("none", "none"),
        ("required", "required"),
        (ToolName(name="weather"), {"type": "function", "function": {"name": "weather"}}),
    ],
)
async def test_tool_choice_maps_to_chat(choice: Any, wire: Any) -> None:
    request = LLMRequest(
        messages=[ChatMessage.user("hi")],
        tools=[ToolSpec(name="weather")],
        tool_choice=choice,
        parallel_tool_calls=False,
    )

    body = await sent_body(request)

    assert body["tool_choice"] == wire
    assert body["parallel_tool_calls"] is False


async def test_no_tools_means_no_tool_fields() -> None:
    body = await sent_body(
        LLMRequest(
            messages=[ChatMessage.user("hi")], tool_choice="required", parallel_tool_calls=True
        )
    )
    assert not {"tools", "tool_choice", "parallel_tool_calls"} & set(body)


async def test_sampling_reasoning_and_options_reach_the_wire() -> None:
    server = Server()
    request = LLMRequest(
        messages=[ChatMessage.system("Be brief."), ChatMessage.user("hi")],
        temperature=0.2,
        max_tokens=50,
        top_p=0.9,
        stop=["\n\n"],
        seed=7,
        reasoning=Reasoning(budget_tokens=1000),  # no effort given: derived from the budget
        timeout=12.5,
        options=[
            OpenAIOptions(
                service_tier="flex",
                store=False,
                user="u-1",
                system_role="developer",
                extra_body={"custom_field": [1, 2]},
            )
        ],
    )

    await server.provider().generate(request.model_copy(update={"model": "o4-mini"}))

    body = server.body()
    assert server.requests[0].url.path == "/v1/chat/completions"  # stop/seed keep it on Chat
    assert body["messages"][0] == {"role": "developer", "content": "Be brief."}
    expected = {
        "temperature": 0.2,
        "max_completion_tokens": 50,
        "top_p": 0.9,
        "stop": ["\n\n"],
        "seed": 7,
        "reasoning_effort": "low",
        "service_tier": "flex",
        "store": False,
        "user": "u-1",
        "custom_field": [1, 2],
    }
    assert {key: body.get(key) for key in expected} == expected
    assert "max_tokens" not in body
    assert server.requests[0].extensions["timeout"]["read"] == 12.5  # the per-call timeout


async def test_reasoning_parts_are_dropped_on_chat_and_tool_results_follow_calls() -> None:
    call = ToolCallPart(id="call_1", name="weather", arguments={"city": "Paris"})
    request = LLMRequest(
        messages=[
            ChatMessage.user("weather?"),
            ChatMessage.assistant(
                [ReasoningPart(text="thinking", signature="sig", provider="anthropic"), call]
            ),
            ChatMessage.tool_results(
                [ToolResultPart(call_id="call_1", content={"temp": 21}, is_error=False)]
            ),
        ]
    )

    messages = (await sent_body(request))["messages"]

    assert messages[1] == {
        "role": "assistant",
        "tool_calls": [
            {
                "type": "function",
                "id": "call_1",
                "function": {"name": "weather", "arguments": '{"city":"Paris"}'},
            }
        ],
    }
    assert messages[2] == {"role": "tool", "tool_call_id": "call_1", "content": '{"temp": 21}'}


def test_missing_key_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)

    with pytest.raises(MissingCredentialsError, match="OPENAI_API_KEY") as caught:
        OpenAIProvider()
    assert caught.value.provider == "openai"


def test_the_key_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-env")
    assert OpenAIProvider()._client.api_key == "sk-from-env"


async def test_compatible_server_has_its_own_name_and_needs_no_key(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("OLLAMA_API_KEY", raising=False)
    server = Server()
    ollama = OpenAICompatibleProvider("ollama", http_client=server.client())
    request = LLMRequest(
        messages=[ChatMessage.user("hi")],
        max_tokens=20,
        # Meant for OpenAI: its fields apply, but not its api=, and ollama's own win.
        options=[OpenAIOptions(api="responses", store=True)],
    )

    response = await ollama.generate(request.model_copy(update={"model": "llama3.2"}))

    sent = server.requests[0]
    assert ollama.name == "ollama"
    assert OpenAIProvider.name == "openai"
    assert response.provider == "ollama"
    assert str(sent.url) == "http://localhost:11434/v1/chat/completions"
    assert sent.headers["authorization"] == "Bearer not-needed"
    assert (server.body()["max_tokens"], server.body()["store"]) == (20, True)
    assert "max_completion_tokens" not in server.body()

    own = request.model_copy(update={"options": [OpenAIOptions(provider="ollama", user="me")]})
    await ollama.generate(own.model_copy(update={"model": "llama3.2"}))
    assert server.body()["user"] == "me"
    assert "store" not in server.body()
    assert COMPATIBLE_SERVERS == {
        "ollama": "http://localhost:11434/v1",
        "vllm": "http://localhost:8000/v1",
        "llamacpp": "http://localhost:8080/v1",
    }


def test_compatible_server_key_from_its_variable_or_required(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("VLLM_API_KEY", "vllm-key")
    assert OpenAICompatibleProvider("vllm")._client.api_key == "vllm-key"
    monkeypatch.delenv("MYHOST_API_KEY", raising=False)
    with pytest.raises(MissingCredentialsError, match="MYHOST_API_KEY"):
        OpenAICompatibleProvider("myhost", base_url="https://example.com/v1", key_required=True)
    with pytest.raises(LLMConfigurationError, match="base_url="):
        OpenAICompatibleProvider("unknown-server")


async def test_compatible_server_reasoning_content_is_read() -> None:
    server = Server(
        lambda _: httpx.Response(
            200, json=completion_json(content="42", reasoning_content="6 times 7")
        )
    )
    vllm = OpenAICompatibleProvider("vllm", http_client=server.client())

    response = await vllm.generate(LLMRequest(messages=[ChatMessage.user("?")], model="qwen3"))

    [reasoning] = response.reasoning
    assert (reasoning.text, reasoning.provider, response.text) == ("6 times 7", "vllm", "42")


@pytest.mark.parametrize(
    ("model", "request_kwargs", "path"),
    [
        ("gpt-4o", {}, "/v1/chat/completions"),
        ("gpt-4o", {"reasoning": Reasoning(effort="low")}, "/v1/chat/completions"),
        ("gpt-5", {}, "/v1/chat/completions"),
        ("gpt-5", {"reasoning": Reasoning(effort="low")}, "/v1/responses"),
        ("gpt-5", {"reasoning": Reasoning(effort="low"), "seed": 1}, "/v1/chat/completions"),
        ("o3-pro", {}, "/v1/responses"),
        ("gpt-4o", {"options": [OpenAIOptions(api="responses")]}, "/v1/responses"),
        ("o3-pro", {"options": [OpenAIOptions(api="chat")]}, "/v1/chat/completions"),
    ],
)
async def test_auto_picks_the_endpoint(
    model: str, request_kwargs: dict[str, Any], path: str
) -> None:
    def respond(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/responses":
            return httpx.Response(
                200, json={"id": "resp_1", "model": model, "status": "completed", "output": []}
            )
        return httpx.Response(200, json=completion_json())

    server = Server(respond)
    request = LLMRequest(messages=[ChatMessage.user("hi")], **request_kwargs)

    await server.provider().generate(request.model_copy(update={"model": model}))

    assert server.requests[0].url.path == path


async def test_a_fixed_api_wins_over_auto() -> None:
    server = Server()
    request = LLMRequest(messages=[ChatMessage.user("hi")], reasoning=Reasoning(effort="high"))
    await server.provider(api="chat").generate(request.model_copy(update={"model": "gpt-5"}))
    assert server.requests[0].url.path == "/v1/chat/completions"
    assert server.body()["reasoning_effort"] == "high"


async def test_responses_only_options_are_refused_on_chat() -> None:
    request = LLMRequest(
        messages=[ChatMessage.user("hi")], options=[OpenAIOptions(previous_response_id="resp_1")]
    )
    with pytest.raises(LLMConfigurationError, match="previous_response_id"):
        await Server().provider().generate(request.model_copy(update={"model": "gpt-4o"}))


# -- errors --------------------------------------------------------------------------------


def sdk_error(
    status: int, body: dict[str, Any], headers: dict[str, str] | None = None
) -> Exception:
    response = httpx.Response(
        status,
        headers=headers,
        json={"error": body},
        request=httpx.Request("POST", "https://api.openai.com/v1/chat/completions"),
    )
    # The SDK types its responses as httpx2 ones; with a plain httpx client (as here) they
    # are httpx responses at run time, which is what the adapter must read.
    sdk_response = cast(httpx2.Response, response)
    kinds: dict[int, type[openai.APIStatusError]] = {
        400: openai.BadRequestError,
        401: openai.AuthenticationError,
        403: openai.PermissionDeniedError,
        404: openai.NotFoundError,
        422: openai.UnprocessableEntityError,
        429: openai.RateLimitError,
    }
    kind = kinds.get(status, openai.InternalServerError)
    return kind(f"Error code: {status}", response=sdk_response, body=body)


def translate(exc: Exception, model: str = "gpt-4o") -> LLMError | None:
    mapped = OpenAIProvider(api_key="sk-test")._translated(exc, model)
    return mapped if isinstance(mapped, LLMError) else None


@pytest.mark.parametrize(
    ("status", "code", "kind"),
    [
        (401, "invalid_api_key", AuthenticationError),
        (403, None, PermissionDeniedError),
        (404, "model_not_found", ModelNotFoundError),
        (400, "context_length_exceeded", ContextTooLongError),
        (400, "content_policy_violation", ContentFilteredError),
        (400, "content_filter", ContentFilteredError),
        (400, None, BadRequestError),
        (422, None, BadRequestError),
        (500, None, ServerUnavailableError),
        (503, None, ServerUnavailableError),
        (429, "rate_limit_exceeded", RateLimitedError),
    ],
)
def test_status_errors_map_status_first(
    status: int, code: str | None, kind: type[LLMError]
) -> None:
    error = translate(sdk_error(status, {"message": "the provider says why", "code": code}))

    assert type(error) is kind
    assert error.status_code == status
    assert error.provider == "openai"
    assert error.model == "gpt-4o"
    assert "the provider says why" in str(error)
    assert isinstance(error.body, dict)
    assert error.body["code"] == code


@pytest.mark.parametrize(
    ("headers", "wait"),
    [
        ({"retry-after": "7"}, 7.0),
        ({"retry-after": "0.5"}, 0.5),
        ({"retry-after-ms": "1500", "retry-after": "9"}, 1.5),  # the finer one wins
        ({"retry-after": "soon"}, None),
        ({}, None),
    ],
)
def test_rate_limit_retry_after(headers: dict[str, str], wait: float | None) -> None:
    error = translate(sdk_error(429, {"message": "slow down"}, headers))

    assert isinstance(error, RateLimitedError)
    assert error.retry_after == wait
    assert error.retryable


def test_rate_limit_retry_after_as_http_date() -> None:
    when = datetime.now(UTC) + timedelta(seconds=30)
    error = translate(
        sdk_error(
            429, {"message": "slow down"}, {"retry-after": format_datetime(when, usegmt=True)}
        )
    )

    assert isinstance(error, RateLimitedError)
    assert error.retry_after is not None
    assert 25 <= error.retry_after <= 30


def test_out_of_quota_is_not_worth_retrying() -> None:
    error = translate(
        sdk_error(429, {"message": "You exceeded your quota", "code": "insufficient_quota"})
    )

    assert isinstance(error, RateLimitedError)
    assert error.retryable is False
    assert "add credit" in str(error)


def test_non_sdk_exceptions_are_not_translated() -> None:
    assert translate(ValueError("a bug")) is None


async def test_server_errors_are_not_retried_by_the_sdk() -> None:
    server = Server(lambda _: httpx.Response(503, json={"error": {"message": "overloaded"}}))

    with pytest.raises(ServerUnavailableError) as caught:
        await server.provider().generate(
            LLMRequest(messages=[ChatMessage.user("hi")], model="gpt-4o")
        )

    assert len(server.requests) == 1  # max_retries=0: llmgine's own retries take over
    assert isinstance(caught.value.__cause__, openai.InternalServerError)
    assert caught.value.retryable


async def test_timeouts_and_connection_failures() -> None:
    def time_out(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("too slow", request=request)

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    request = LLMRequest(messages=[ChatMessage.user("hi")])
    with pytest.raises(LLMTimeoutError, match="timeout=") as timed_out:
        await Server(time_out).provider().generate(request.model_copy(update={"model": "gpt-4o"}))
    assert isinstance(timed_out.value.__cause__, openai.APITimeoutError)

    with pytest.raises(LLMConnectionError, match="could not reach OpenAI") as refused:
        await Server(refuse).provider().generate(request.model_copy(update={"model": "gpt-4o"}))
    assert isinstance(refused.value.__cause__, openai.APIConnectionError)
    assert not isinstance(refused.value, ProviderError)


# -- a stream and the same answer without streaming are equal -----------------------------


def sse(chunks: list[dict[str, Any]]) -> bytes:
    events = "".join(f"data: {json.dumps(chunk)}\n\n" for chunk in chunks)
    return (events + "data: [DONE]\n\n").encode()


def chunk(
    delta: dict[str, Any] | None = None, finish: str | None = None, **more: Any
) -> dict[str, Any]:
    choices = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish}]
    return {
        "id": "chatcmpl-unit",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "gpt-4o-mini-2024-07-18",
        "choices": choices,
        **more,
    }


def tool_delta(index: int, arguments: str, **first: str) -> dict[str, Any]:
    call: dict[str, Any] = {"index": index, "function": {"arguments": arguments}}
    if first:
        call.update(id=first["id"], type="function")
        call["function"]["name"] = first["name"]
    return {"tool_calls": [call]}


async def test_streamed_and_non_streamed_chat_answers_are_equal() -> None:
    calls = [
        {
            "id": "call_a",
            "type": "function",
            "function": {"name": "weather", "arguments": '{"city": "Paris"}'},
        },
        {
            "id": "call_b",
            "type": "function",
            "function": {"name": "weather", "arguments": '{"city":"Rome"}'},
        },
    ]
    whole = completion_json(content="Let me check.", tool_calls=calls, finish_reason="tool_calls")
    usage = whole["usage"]
    chunks = [
        chunk({"role": "assistant", "content": "Let"}),
        chunk({"content": " me check."}),
        chunk(tool_delta(0, "", id="call_a", name="weather")),
        chunk(tool_delta(0, '{"city": ')),
        chunk(tool_delta(0, '"Paris"}')),
        chunk(tool_delta(1, '{"city":"Rome"}', id="call_b", name="weather")),
        chunk({}, "tool_calls"),
        chunk(None, usage=usage),
    ]

    def respond(request: httpx.Request) -> httpx.Response:
        if json.loads(request.content)["stream"]:
            return httpx.Response(
                200, content=sse(chunks), headers={"content-type": "text/event-stream"}
            )
        return httpx.Response(200, json=whole)

    provider = Server(respond).provider()
    request = LLMRequest(
        messages=[ChatMessage.user("Weather in Paris and Rome?")], tools=[ToolSpec(name="weather")]
    )

    plain = await provider.generate(request.model_copy(update={"model": "gpt-4o-mini"}))
    items, streamed = await collect(provider, request, "gpt-4o-mini")

    assert streamed.same_content(plain)
    assert plain.text == "Let me check."
    assert [(c.id, c.arguments) for c in plain.tool_calls] == [
        ("call_a", {"city": "Paris"}),
        ("call_b", {"city": "Rome"}),
    ]
    assert plain.usage.model_dump() == {
        "input_tokens": 120,
        "output_tokens": 30,
        "cache_read_tokens": 64,
        "cache_write_tokens": None,
        "reasoning_tokens": 12,
    }
    assert (plain.finish_reason, plain.response_id) == ("tool_calls", "chatcmpl-unit")
    assert sum(isinstance(item, TextDelta) for item in items) == 2
    assert plain.raw is not None
    assert streamed.raw is None


async def test_a_refusal_is_text_with_a_content_filter_finish() -> None:
    refusal = "I can't help with that."
    chunks = [
        chunk({"role": "assistant", "refusal": "I can't"}),
        chunk({"refusal": " help with that."}),
        chunk({}, "stop"),
    ]

    def respond(request: httpx.Request) -> httpx.Response:
        if json.loads(request.content)["stream"]:
            return httpx.Response(
                200, content=sse(chunks), headers={"content-type": "text/event-stream"}
            )
        whole = completion_json(refusal=refusal)
        del whole["usage"]
        return httpx.Response(200, json=whole)

    provider = Server(respond).provider()
    request = LLMRequest(messages=[ChatMessage.user("something bad")])

    plain = await provider.generate(request.model_copy(update={"model": "gpt-4o-mini"}))
    _, streamed = await collect(provider, request, "gpt-4o-mini")

    assert plain.text == refusal
    assert (plain.finish_reason, plain.raw_finish_reason) == ("content_filter", "stop")
    assert streamed.same_content(plain)


@pytest.mark.parametrize(
    "body", [b"<html>Welcome to nginx</html>", b"[1, 2]", b""], ids=["html", "array", "empty"]
)
async def test_a_success_whose_body_is_not_a_json_object_is_a_clear_provider_error(
    body: bytes,
) -> None:
    # E.g. a base_url that points at a web server or a proxy's landing page.
    provider = Server(lambda _: httpx.Response(200, content=body)).provider()
    with pytest.raises(ProviderError, match=r"could not be read.*Check that base_url") as info:
        await provider.generate(LLMRequest(messages=[ChatMessage.user("hi")], model="gpt-4o-mini"))
    assert (info.value.provider, info.value.model, info.value.status_code) == (
        "openai",
        "gpt-4o-mini",
        200,
    )
    assert body[:20].decode() in str(info.value)


async def test_the_raw_response_is_the_json_the_server_sent() -> None:
    sent = completion_json(content="hi")
    sent["vendor_field"] = {"kept": True}  # not in the SDK's models: still in `raw`
    provider = Server(lambda _: httpx.Response(200, json=sent)).provider()
    response = await provider.generate(
        LLMRequest(messages=[ChatMessage.user("hi")], model="gpt-4o-mini")
    )
    assert response.raw == sent
    assert response.text == "hi"
