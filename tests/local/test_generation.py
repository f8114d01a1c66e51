"""A real local model answers as any provider's does: whole and streamed alike, with the
system prompt, the history, stop sequences, max_tokens, a seed, structured output and
tools, each call traced with the server's real address."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from typing import Literal

import pytest
from pydantic import BaseModel

from llmgine import observability
from llmgine._semconv import (
    CAPTURE_CONTENT_ENV,
    INPUT_MESSAGES,
    OUTPUT_MESSAGES,
    PROVIDER_NAME,
    REQUEST_MODEL,
    REQUEST_TEMPERATURE,
    RESPONSE_FINISH_REASONS,
    SERVER_ADDRESS,
    SERVER_PORT,
    SYSTEM_INSTRUCTIONS,
    USAGE_INPUT_TOKENS,
    USAGE_OUTPUT_TOKENS,
)
from llmgine.llm import ChatMessage, LLMResponse, Model, TextDelta
from llmgine.local import LocalServer, LocalServers
from llmgine.tools import run_tool_loop, tool
from tests.local.conftest import local_model


def same_answer(one: LLMResponse, other: LLMResponse) -> None:
    """What a call streamed and the same call whole must agree on: all of the response
    (`LLMResponse.same_content`) but its id and the prompt tokens read from the cache
    (the second call finds the first one's prompt in the server's cache)."""
    assert one.text == other.text  # the difference first, if there is one
    assert inputs(one) == inputs(other)
    assert outputs(one) == outputs(other)
    cached = one.usage.model_copy(update={"cache_read_tokens": other.usage.cache_read_tokens})
    aligned = one.model_copy(update={"response_id": other.response_id, "usage": cached})
    assert aligned.same_content(other)


def tokens(server: LocalServer, text: str) -> int:
    """How many tokens the server's own tokenizer makes of ``text``."""
    request = urllib.request.Request(
        f"{server.url}/tokenize",
        data=json.dumps({"content": text}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as answer:
        return len(json.loads(answer.read())["tokens"])


def inputs(response: LLMResponse) -> int:
    """The prompt tokens the server counted (it always reports them)."""
    value = response.usage.input_tokens
    assert value is not None, "the local server reports the prompt's tokens"
    return value


def outputs(response: LLMResponse) -> int:
    """The answer's tokens the server counted (it always reports them)."""
    value = response.usage.output_tokens
    assert value is not None, "the local server reports the answer's tokens"
    return value


async def test_a_plain_answer_has_text_usage_and_the_models_name(model: Model) -> None:
    response = await model.generate("Name three colours.", max_tokens=40)
    assert response.text.strip()
    assert (response.provider, response.model) == ("local", "smollm2")
    assert inputs(response) > 5
    assert 0 < outputs(response) <= 40
    assert response.finish_reason in ("stop", "length")


async def test_a_stream_assembles_to_the_whole_answer_of_the_same_prompt(model: Model) -> None:
    prompt = "Write two sentences about the sea."
    whole = await model.generate(prompt, max_tokens=48)
    async with model.stream(prompt, max_tokens=48) as stream:
        deltas = [item.text async for item in stream if isinstance(item, TextDelta)]
    assert stream.response is not None
    assert len(deltas) > 3  # really streamed, token by token
    assert "".join(deltas) == stream.response.text
    same_answer(stream.response, whole)


async def test_the_system_prompt_reaches_the_model(model: Model, local_server: LocalServer) -> None:
    question = ChatMessage.user("Who are you?")
    short, long = "Be brief.", "You are Captain Hook, a pirate who answers every question in rhyme."
    plain = await model.generate([question], max_tokens=8)
    with_short = await model.generate([ChatMessage.system(short), question], max_tokens=8)
    with_long = await model.generate([ChatMessage.system(long), question], max_tokens=8)
    # The system turn's own tokens, plus the same few of its ChatML wrapping each time.
    grown = inputs(with_short) - inputs(plain)
    wrapping = grown - tokens(local_server, short)
    assert 0 < wrapping <= 8
    assert inputs(with_long) == (inputs(plain) + tokens(local_server, long) + wrapping)
    assert with_long.text != plain.text  # and the model reads it


async def test_the_history_of_a_conversation_reaches_the_model(model: Model) -> None:
    history = [
        ChatMessage.user("My name is Zorblax and my favourite colour is teal."),
        ChatMessage.assistant("Nice to meet you, Zorblax! Teal is a lovely colour."),
    ]
    question = ChatMessage.user("What is my name?")
    alone = await model.generate([question], max_tokens=16)
    remembered = await model.generate([*history, question], max_tokens=16)
    assert inputs(remembered) > inputs(alone) + 20
    # Continuing from the answer: the assistant's own turn goes back too.
    follow_up = [*history, question, remembered.message, ChatMessage.user("And my colour?")]
    later = await model.generate(follow_up, max_tokens=16)
    assert inputs(later) > (inputs(remembered) + outputs(remembered))


async def test_a_stop_sequence_ends_the_answer_before_it(model: Model) -> None:
    prompt = "Count from one to twenty in words, separated by commas."
    full = await model.generate(prompt, max_tokens=40)
    words = full.text.split()
    assert len(words) > 4, full.text
    stop = " " + words[3]  # a string the model produces at temperature 0, mid-answer
    cut = await model.generate(prompt, max_tokens=40, stop=[stop])
    assert cut.text == full.text[: full.text.index(stop)]
    assert cut.finish_reason == "stop"
    assert outputs(cut) < outputs(full)


async def test_max_tokens_cuts_the_answer_with_finish_reason_length(model: Model) -> None:
    response = await model.generate("Tell me a long story about a dragon.", max_tokens=5)
    assert 0 < outputs(response) <= 5
    assert response.finish_reason == "length"
    async with model.stream("Tell me a long story about a dragon.", max_tokens=5) as stream:
        async for _ in stream:
            pass
    assert stream.response is not None
    same_answer(stream.response, response)


class Pet(BaseModel):
    """A pet."""

    name: str
    species: Literal["cat", "dog", "fish"]
    age: int


async def test_structured_output_validates_into_the_pydantic_model(model: Model) -> None:
    response = await model.generate_structured(
        "Make up a pet: a dog called Rex, aged 3. Answer in JSON.", Pet, max_tokens=60
    )
    assert isinstance(response.parsed, Pet)
    assert json.loads(response.text) == response.parsed.model_dump()
    assert response.finish_reason == "stop"


WEATHER_CALLS: list[str] = []


@tool
def get_weather(city: str) -> str:
    """Get the current weather for a city.

    Args:
        city: The city, e.g. "Oslo".
    """
    WEATHER_CALLS.append(city)
    return f"18 C and sunny in {city}"


async def test_a_tool_loop_calls_the_tool_then_answers_in_words(model: Model) -> None:
    WEATHER_CALLS.clear()
    result = await run_tool_loop(
        model,
        "What is the weather in Paris?",
        [get_weather],
        tool_choice="required",
        max_rounds=3,
        max_tokens=60,
    )
    first = result.responses[0]
    assert [call.name for call in first.tool_calls] == ["get_weather"]
    assert first.finish_reason == "tool_calls"
    assert [first.tool_calls[0].arguments["city"]] == WEATHER_CALLS
    assert "sunny" in result.tool_results[0].text
    assert result.stop_reason == "answered"
    assert result.rounds == 2
    assert result.text.strip()
    assert not result.response.tool_calls


async def test_the_same_seed_gives_the_same_answer_at_a_high_temperature(model: Model) -> None:
    prompt = "Tell a very short story."
    one = await model.generate(prompt, temperature=0.9, seed=5, max_tokens=30)
    two = await model.generate(prompt, temperature=0.9, seed=5, max_tokens=30)
    assert one.text == two.text
    assert outputs(one) == outputs(two)


def texts(content: object) -> list[str]:
    """Every string in a span's captured messages (parsed from their JSON)."""
    if isinstance(content, str):
        return [content]
    if isinstance(content, dict):
        content = list(content.values())
    if isinstance(content, list):
        return [text for item in content for text in texts(item)]
    return []


@pytest.fixture
def spans(monkeypatch: pytest.MonkeyPatch) -> Iterator[observability.Observability]:
    monkeypatch.delenv(CAPTURE_CONTENT_ENV, raising=False)
    observability.disable()
    try:
        yield observability.enable(capture_content=True)
    finally:
        observability.disable()


async def test_each_call_is_a_span_with_the_servers_real_address_and_tokens(
    local_servers: LocalServers,
    local_server: LocalServer,
    spans: observability.Observability,
) -> None:
    model = local_model(local_servers, max_tokens=12)  # new: it knows no address yet
    try:
        whole = await model.generate(
            [ChatMessage.system("Be brief."), ChatMessage.user("Say hi.")], temperature=0.5
        )
        async with model.stream("Say bye.") as stream:
            async for _ in stream:
                pass
    finally:
        await model.aclose()
    assert stream.response is not None
    finished = spans.buffer.finished()
    assert [span.name for span in finished] == ["chat smollm2", "chat smollm2"]
    for span, response in zip(finished, [whole, stream.response], strict=True):
        attributes = span.attributes
        assert span.status != "error"
        assert attributes[PROVIDER_NAME] == "local"
        assert attributes[REQUEST_MODEL] == "smollm2"
        assert attributes[SERVER_ADDRESS] == "127.0.0.1"
        assert attributes[SERVER_PORT] == local_server.port
        assert attributes[USAGE_INPUT_TOKENS] == inputs(response)
        assert attributes[USAGE_OUTPUT_TOKENS] == outputs(response)
        assert list(attributes[RESPONSE_FINISH_REASONS]) == [response.finish_reason]
        assert response.text in texts(json.loads(attributes[OUTPUT_MESSAGES]))
    first = finished[0].attributes
    assert first[REQUEST_TEMPERATURE] == 0.5
    assert first[SYSTEM_INSTRUCTIONS] == "Be brief."
    assert "Say hi." in texts(json.loads(first[INPUT_MESSAGES]))
