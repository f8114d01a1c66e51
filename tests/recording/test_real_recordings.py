"""Real provider traffic through a cassette: recorded from the shipped recordings
(``tests/llm/cassettes``, replayed through the official SDK), then replayed with no
provider at all. The answers are equal to the originals: text, tool calls, usage, finish.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from llmgine.llm import (
    ChatMessage,
    LLMRequest,
    LLMResponse,
    Model,
    ProviderModel,
    ToolResultPart,
    Traced,
    get_model,
)
from llmgine.llm.providers.openai import OpenAIProvider
from llmgine.recording import Cassette, Recorded
from tests.llm.replay import CassetteTransport
from tests.llm.test_openai import strict_tool

from .helpers import streamed


def recorder(recording: str, cassette: Path) -> tuple[Model, CassetteTransport]:
    """gpt-4o-mini answering from a shipped recording, recorded into ``cassette``."""
    transport = CassetteTransport.of(f"openai/{recording}")
    provider = OpenAIProvider(api_key="sk-test-0123456789abcdef", http_client=transport.client())
    chain = Traced(Recorded(ProviderModel(provider, "gpt-4o-mini"), cassette, mode="record"))
    return Model(chain), transport


def replayer(cassette: Path, monkeypatch: pytest.MonkeyPatch) -> Model:
    """The same model with no key and no provider: the cassette answers, or nothing does."""
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    model = get_model("openai:gpt-4o-mini", recording=Cassette(cassette), recording_mode="replay")
    assert model.find(ProviderModel) is None
    return model


def assert_equal(replayed: LLMResponse, original: LLMResponse, cassette: Path) -> None:
    assert replayed.text == original.text
    assert replayed.tool_calls == original.tool_calls
    assert replayed.usage == original.usage
    assert (replayed.finish_reason, replayed.raw_finish_reason) == (
        original.finish_reason,
        original.raw_finish_reason,
    )
    assert (replayed.model, replayed.response_id) == (original.model, original.response_id)
    assert replayed.same_content(original)
    assert replayed.replayed_from == str(cassette)
    assert replayed.cost_usd == 0.0
    assert replayed.original_cost_usd == original.cost_usd


async def test_a_streamed_tool_call_and_its_answer_replay_equal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cassette = tmp_path / "openai.jsonl"
    model, transport = recorder("chat_stream_tool_call_then_text_usage.yaml", cassette)
    tools = [strict_tool("get_capital", "country")]
    messages = [ChatMessage.user("What is the capital of the UK? Use the tool, then answer.")]
    first_items, first = await streamed(
        model, LLMRequest(messages=messages), tools=tools, tool_choice="auto"
    )
    [call] = first.tool_calls
    second_messages = [
        *messages,
        first.message,
        ChatMessage.tool_results([ToolResultPart(call_id=call.id, content="London")]),
    ]
    _second_items, second = await streamed(
        model, LLMRequest(messages=second_messages), tools=tools, tool_choice="auto"
    )
    transport.assert_all_used()
    assert second.text == "The capital of the UK is London."
    assert first.cost_usd is not None

    offline = replayer(cassette, monkeypatch)
    replayed_items, replayed_first = await streamed(
        offline, LLMRequest(messages=messages), tools=tools, tool_choice="auto"
    )
    assert replayed_items == first_items  # the very deltas the API sent
    assert_equal(replayed_first, first, cassette)
    replayed_second = await offline.generate(second_messages, tools=tools, tool_choice="auto")
    assert_equal(replayed_second, second, cassette)
    assert replayed_second.text == "The capital of the UK is London."
    assert (replayed_second.usage.input_tokens, replayed_second.usage.output_tokens) == (78, 9)


async def test_a_whole_answer_replays_equal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cassette = tmp_path / "openai.jsonl"
    model, transport = recorder("chat_plain_text.yaml", cassette)
    original = await model.generate("What is the capital of France?")
    transport.assert_all_used()
    assert original.text == "The capital of France is Paris."

    offline = replayer(cassette, monkeypatch)
    assert_equal(await offline.generate("What is the capital of France?"), original, cassette)
    _, streamed_hit = await streamed(offline, "What is the capital of France?")
    assert_equal(streamed_hit, original, cassette)
