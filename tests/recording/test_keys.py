"""The canonical request: what makes two requests the same recording, and what does not."""

from __future__ import annotations

from typing import Any

import pytest

from llmgine.llm import (
    ChatMessage,
    LLMRequest,
    Reasoning,
    ResponseFormat,
    ToolCallPart,
    ToolName,
    ToolSpec,
)
from llmgine.llm.providers.openai import OpenAIOptions
from llmgine.recording import canonical_request, request_differences, request_key

MODEL = "openai:gpt-4o-mini"


def conversation(arguments: dict[str, Any] | None = None, invalid: str | None = None) -> Any:
    call = ToolCallPart(
        id="c1", name="lookup", arguments=arguments or {}, invalid_arguments=invalid
    )
    return [ChatMessage.user("Weather?"), ChatMessage.assistant([call])]


def tool(properties: dict[str, Any]) -> ToolSpec:
    return ToolSpec(name="lookup", parameters={"type": "object", "properties": properties})


def test_dict_order_does_not_change_the_key() -> None:
    a = LLMRequest(
        messages=conversation({"city": "Paris", "days": 3}),
        tools=[tool({"city": {"type": "string"}, "days": {"type": "integer"}})],
    )
    b = LLMRequest(
        messages=conversation({"days": 3, "city": "Paris"}),
        tools=[tool({"days": {"type": "integer"}, "city": {"type": "string"}})],
    )
    assert request_key(a, MODEL) == request_key(b, MODEL)


def test_whitespace_inside_json_arguments_does_not_change_the_key() -> None:
    # Arguments kept as text (not a JSON object) are compared by their JSON meaning.
    spaced = LLMRequest(messages=conversation(invalid='[1, 2,  {"a" : true}]'))
    tight = LLMRequest(messages=conversation(invalid='[1,2,{"a":true}]'))
    assert request_key(spaced, MODEL) == request_key(tight, MODEL)
    other = LLMRequest(messages=conversation(invalid="[1,2,3]"))
    assert request_key(other, MODEL) != request_key(tight, MODEL)


def test_a_key_is_a_sha256_and_a_canonical_request_is_plain_json() -> None:
    request = LLMRequest(messages=[ChatMessage.user("hi")], temperature=0.2)
    key = request_key(request, MODEL)
    assert len(key) == 64
    assert int(key, 16) >= 0
    assert request_key(canonical_request(request, MODEL)) == key
    assert canonical_request(request, MODEL) == {
        "model": MODEL,
        "messages": [{"role": "user", "parts": [{"kind": "text", "text": "hi"}]}],
        "temperature": 0.2,
    }
    with pytest.raises(TypeError, match="model='provider:name'"):
        request_key(request)


BASE = LLMRequest(messages=[ChatMessage.user("Name three primes.")])


@pytest.mark.parametrize(
    "change",
    [
        {"messages": [ChatMessage.user("Name four primes.")]},
        {"messages": [ChatMessage.system("Be brief."), ChatMessage.user("Name three primes.")]},
        {"tools": [tool({"n": {"type": "integer"}})]},
        {"tool_choice": "required"},
        {"tool_choice": ToolName(name="lookup")},
        {"parallel_tool_calls": False},
        {"response_format": ResponseFormat(json_schema={"type": "object"})},
        {"temperature": 0.7},
        {"top_p": 0.5},
        {"max_tokens": 10},
        {"stop": ["\n"]},
        {"seed": 7},
        {"reasoning": Reasoning(effort="low")},
        {"options": [OpenAIOptions(frequency_penalty=0.5)]},
    ],
    ids=lambda change: next(iter(change)),
)
def test_fields_that_change_the_answer_change_the_key(change: dict[str, Any]) -> None:
    changed = BASE.model_copy(update=change)
    assert request_key(changed, MODEL) != request_key(BASE, MODEL)
    assert request_differences(canonical_request(BASE, MODEL), canonical_request(changed, MODEL))


@pytest.mark.parametrize(
    "change",
    [{"timeout": 5.0}, {"stream": True}, {"model": "another-name"}, {"tools": []}, {"stop": None}],
    ids=lambda change: f"{next(iter(change))}={next(iter(change.values()))}",
)
def test_fields_that_do_not_change_the_answer_leave_the_key(change: dict[str, Any]) -> None:
    changed = BASE.model_copy(update=change)
    assert request_key(changed, MODEL) == request_key(BASE, MODEL)


def test_the_model_the_call_goes_to_is_part_of_the_key() -> None:
    assert request_key(BASE, "openai:gpt-4o-mini") != request_key(BASE, "openai:gpt-4o")
    assert request_key(BASE, "openai:gpt-4o") != request_key(BASE, "llamacpp:gpt-4o")


def test_differences_name_each_field_and_both_values() -> None:
    a = canonical_request(BASE.model_copy(update={"temperature": 0.2}), MODEL)
    b = canonical_request(
        BASE.model_copy(update={"temperature": 0.7, "messages": [ChatMessage.user("Hi")]}), MODEL
    )
    assert request_differences(a, b) == [
        'messages[0].parts[0].text: recorded "Name three primes.", this request "Hi"',
        "temperature: recorded 0.2, this request 0.7",
    ]
    c = canonical_request(BASE.model_copy(update={"seed": 1}), MODEL)
    assert request_differences(canonical_request(BASE, MODEL), c) == [
        "seed: recorded (unset), this request 1"
    ]
    long = canonical_request(
        BASE.model_copy(update={"messages": [ChatMessage.user("x" * 500)]}), MODEL
    )
    [line] = request_differences(canonical_request(BASE, MODEL), long)
    assert "x" * 100 not in line
    assert line.endswith("...")
