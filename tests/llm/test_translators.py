"""The translators as plain functions of JSON: no client, no loop, no network.

For each API, one answer written both ways (a whole answer, and the events of the same
answer streamed) must parse into items that the one `StreamAssembler` builds into equal
responses; what differs is only ``raw`` (kept for a whole answer).
"""

from __future__ import annotations

import json
import re
import textwrap
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pytest

import llmgine.llm.providers
from llmgine.llm import (
    ChatMessage,
    LLMRequest,
    LLMResponse,
    ReasoningPart,
    TextPart,
    ToolCallPart,
    ToolSpec,
)
from llmgine.llm._response import Usage
from llmgine.llm._stream import Finish, StreamAssembler, StreamItem, TextDelta, UsageUpdate
from llmgine.llm.providers.anthropic import AnthropicOptions
from llmgine.llm.providers.anthropic_messages import MessageEvents, message_items, messages_body
from llmgine.llm.providers.gemini import GeminiOptions
from llmgine.llm.providers.gemini_generate import GeminiEvents, gemini_answer_items, gemini_body
from llmgine.llm.providers.openai import OpenAIOptions
from llmgine.llm.providers.openai_chat import ChatEvents, chat_answer_items, chat_body
from llmgine.llm.providers.openai_responses import (
    ResponsesEvents,
    responses_answer_items,
    responses_body,
)

ARGS = {"city": "Paris"}


def assemble(provider: str, items: Iterable[StreamItem]) -> LLMResponse:
    assembler = StreamAssembler(provider, "m")
    for item in items:
        assembler.add(item)
    assert assembler.finished, "a whole answer (or a whole stream) ends with a Finish"
    return assembler.response()


def streamed(events: Any, chunks: list[dict[str, Any]]) -> list[StreamItem]:
    items: list[StreamItem] = []
    for chunk in chunks:
        items.extend(events.items(chunk))
    end: Callable[[], list[StreamItem]] | None = getattr(events, "end", None)
    return items + (end() if end is not None else [])


# -- one answer, both ways ---------------------------------------------------------------------

CHAT_WHOLE = {
    "id": "c1",
    "model": "gpt-x",
    "choices": [
        {
            "message": {
                "content": "Let me look.",
                "tool_calls": [
                    {"id": "t1", "type": "function", "function": {"name": "w", "arguments": "{}"}}
                ],
            },
            "finish_reason": "tool_calls",
        }
    ],
    "usage": {"prompt_tokens": 5, "completion_tokens": 3},
}
CHAT_CHUNKS: list[dict[str, Any]] = [
    {"id": "c1", "model": "gpt-x", "choices": [{"delta": {"content": "Let me"}}]},
    {"id": "c1", "model": "gpt-x", "choices": [{"delta": {"content": " look."}}]},
    {
        "id": "c1",
        "model": "gpt-x",
        "choices": [
            {
                "delta": {
                    "tool_calls": [
                        {"index": 0, "id": "t1", "function": {"name": "w", "arguments": "{"}}
                    ]
                }
            }
        ],
    },
    {
        "id": "c1",
        "model": "gpt-x",
        "choices": [{"delta": {"tool_calls": [{"index": 0, "function": {"arguments": "}"}}]}}],
    },
    {"id": "c1", "model": "gpt-x", "choices": [{"delta": {}, "finish_reason": "tool_calls"}]},
    {"id": "c1", "model": "gpt-x", "choices": [], "usage": CHAT_WHOLE["usage"]},
]

REASONING = {"type": "reasoning", "id": "rs1", "summary": [{"type": "summary_text", "text": "Hm."}]}
CALL = {
    "type": "function_call",
    "id": "fc1",
    "call_id": "t1",
    "name": "w",
    "arguments": '{"city":"Paris"}',
}
RESPONSES_WHOLE = {
    "id": "r1",
    "model": "gpt-5",
    "status": "completed",
    "output": [REASONING, CALL],
    "usage": {
        "input_tokens": 5,
        "output_tokens": 9,
        "output_tokens_details": {"reasoning_tokens": 4},
    },
}
RESPONSES_EVENTS: list[dict[str, Any]] = [
    {
        "type": "response.created",
        "response": {**RESPONSES_WHOLE, "status": "in_progress", "output": []},
    },
    {"type": "response.output_item.added", "output_index": 0, "item": {**REASONING, "summary": []}},
    {
        "type": "response.reasoning_summary_text.delta",
        "output_index": 0,
        "summary_index": 0,
        "delta": "Hm.",
    },
    {"type": "response.output_item.done", "output_index": 0, "item": REASONING},
    {"type": "response.output_item.added", "output_index": 1, "item": {**CALL, "arguments": ""}},
    {"type": "response.function_call_arguments.delta", "output_index": 1, "delta": '{"city":'},
    {"type": "response.function_call_arguments.delta", "output_index": 1, "delta": '"Paris"}'},
    {"type": "response.output_item.done", "output_index": 1, "item": CALL},
    {"type": "response.completed", "response": RESPONSES_WHOLE},
]

MESSAGE_WHOLE = {
    "id": "m1",
    "model": "claude-x",
    "content": [
        {"type": "thinking", "thinking": "Hm.", "signature": "sig"},
        {"type": "text", "text": "Looking."},
        {"type": "tool_use", "id": "t1", "name": "w", "input": ARGS},
    ],
    "stop_reason": "tool_use",
    "usage": {"input_tokens": 5, "output_tokens": 9},
}
MESSAGE_EVENTS: list[dict[str, Any]] = [
    {"type": "message_start", "message": {**MESSAGE_WHOLE, "content": [], "stop_reason": None}},
    {
        "type": "content_block_start",
        "index": 0,
        "content_block": {"type": "thinking", "thinking": ""},
    },
    {
        "type": "content_block_delta",
        "index": 0,
        "delta": {"type": "thinking_delta", "thinking": "Hm."},
    },
    {
        "type": "content_block_delta",
        "index": 0,
        "delta": {"type": "signature_delta", "signature": "sig"},
    },
    {"type": "content_block_start", "index": 1, "content_block": {"type": "text", "text": ""}},
    {
        "type": "content_block_delta",
        "index": 1,
        "delta": {"type": "text_delta", "text": "Looking."},
    },
    {
        "type": "content_block_start",
        "index": 2,
        "content_block": {"type": "tool_use", "id": "t1", "name": "w", "input": {}},
    },
    {
        "type": "content_block_delta",
        "index": 2,
        "delta": {"type": "input_json_delta", "partial_json": json.dumps(ARGS)},
    },
    {"type": "content_block_stop", "index": 2},
    {"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 9}},
    {"type": "message_stop"},
]

GEMINI_PARTS = [
    {"text": "Looking", "thoughtSignature": "c2lnbmVk"},
    {"functionCall": {"name": "w", "args": ARGS}, "thoughtSignature": "Y2FsbA=="},
]
GEMINI_WHOLE = {
    "candidates": [{"content": {"role": "model", "parts": GEMINI_PARTS}, "finishReason": "STOP"}],
    "usageMetadata": {"promptTokenCount": 5, "candidatesTokenCount": 9},
    "modelVersion": "gemini-x",
    "responseId": "g1",
}
GEMINI_CHUNKS: list[dict[str, Any]] = [
    {
        "candidates": [{"content": {"parts": GEMINI_PARTS[:1]}}],
        "modelVersion": "gemini-x",
        "responseId": "g1",
    },
    {
        "candidates": [{"content": {"parts": GEMINI_PARTS[1:]}, "finishReason": "STOP"}],
        "usageMetadata": GEMINI_WHOLE["usageMetadata"],
        "modelVersion": "gemini-x",
        "responseId": "g1",
    },
]

Translator = tuple[
    str,
    Callable[[dict[str, Any]], list[StreamItem]],
    dict[str, Any],
    Callable[[], Any],
    list[dict[str, Any]],
]
CASES: dict[str, Translator] = {
    "chat": ("openai", chat_answer_items, CHAT_WHOLE, ChatEvents, CHAT_CHUNKS),
    "responses": (
        "openai",
        responses_answer_items,
        RESPONSES_WHOLE,
        ResponsesEvents,
        RESPONSES_EVENTS,
    ),
    "anthropic": ("anthropic", message_items, MESSAGE_WHOLE, MessageEvents, MESSAGE_EVENTS),
    "gemini": ("gemini", gemini_answer_items, GEMINI_WHOLE, GeminiEvents, GEMINI_CHUNKS),
}


@pytest.mark.parametrize("api", sorted(CASES))
def test_a_whole_answer_and_its_stream_parse_into_equal_responses(api: str) -> None:
    provider, whole_items, whole, events, chunks = CASES[api]
    whole_response = assemble(provider, whole_items(whole))
    stream_response = assemble(provider, streamed(events(), chunks))
    assert whole_response == stream_response
    calls = whole_response.tool_calls
    assert len(calls) == 1
    assert calls[0].name == "w"
    assert whole_response.finish_reason == "tool_calls"
    assert whole_response.usage.input_tokens == 5


def test_the_parts_of_a_whole_answer_keep_their_order_and_signatures() -> None:
    response = assemble("anthropic", message_items(MESSAGE_WHOLE))
    assert response.parts == [
        ReasoningPart(text="Hm.", signature="sig", provider="anthropic"),
        TextPart(text="Looking."),
        ToolCallPart(id="t1", name="w", arguments=ARGS, provider="anthropic"),
    ]
    gemini = assemble("gemini", gemini_answer_items(GEMINI_WHOLE))
    assert [type(p).__name__ for p in gemini.parts] == ["TextPart", "ReasoningPart", "ToolCallPart"]
    assert gemini.tool_calls[0].signature == "Y2FsbA=="


def test_request_bodies_are_built_without_a_client() -> None:
    tool = ToolSpec(
        name="w", description="Weather.", parameters={"type": "object", "properties": {}}
    )
    request = LLMRequest(
        messages=[ChatMessage.system("Be brief."), ChatMessage.user("Hi")], tools=[tool]
    )
    chat = chat_body(request, "gpt-x", OpenAIOptions(), provider="openai", stream=True)
    assert chat["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
    ]
    assert chat["stream_options"] == {"include_usage": True}
    responses = responses_body(request, "gpt-x", OpenAIOptions(), provider="openai", stream=False)
    assert responses["instructions"] == "Be brief."
    assert responses["input"] == [{"role": "user", "content": "Hi"}]
    messages = messages_body(request, "claude-x", AnthropicOptions(), default_max_tokens=99)
    assert (messages["system"], messages["max_tokens"]) == ("Be brief.", 99)
    gemini = gemini_body(request, GeminiOptions())
    assert gemini["systemInstruction"] == {"parts": [{"text": "Be brief."}], "role": "user"}
    assert gemini["tools"][0]["functionDeclarations"][0]["name"] == "w"


# -- the recipes of providers/README.md run as written ------------------------------------------

README = Path(llmgine.llm.providers.__file__).with_name("README.md")


def readme_blocks() -> list[str]:
    blocks = re.findall(r"^( *)```python\n(.*?)^\1```", README.read_text(), re.S | re.M)
    return [textwrap.dedent(body) for _, body in blocks]


def test_the_readme_registration_recipe_makes_a_provider() -> None:
    from llmgine.llm import _registry

    namespace: dict[str, Any] = {}
    try:
        exec(readme_blocks()[0], namespace)
        model = namespace["model"]
        assert model.provider == "lmstudio"
        assert model.adapter.base_url.startswith("http://localhost:1234/v1")
    finally:
        _registry._PROVIDERS.pop("lmstudio", None)


def test_the_readme_translator_recipe_gives_equal_whole_and_streamed_answers() -> None:
    namespace: dict[str, Any] = {
        "Any": Any,
        "LLMRequest": LLMRequest,
        "StreamItem": StreamItem,
        "TextDelta": TextDelta,
        "UsageUpdate": UsageUpdate,
        "Usage": Usage,
        "Finish": Finish,
    }
    exec(readme_blocks()[1], namespace)
    request = LLMRequest(messages=[ChatMessage.user("Hi")])
    assert namespace["acme_body"](request, "acme-1") == {"model": "acme-1", "prompt": ["Hi"]}
    events: list[dict[str, Any]] = [
        {"type": "delta", "text": "Hel"},
        {"type": "delta", "text": "lo"},
        {"type": "done", "tokens": 2, "why": "end"},
    ]
    whole = {"text": "Hello", "tokens": 2, "why": "end"}
    streamed_response = assemble("acme", streamed(namespace["AcmeEvents"](), events))
    assert streamed_response == assemble("acme", namespace["acme_answer_items"](whole))
    assert streamed_response.text == "Hello"
