"""Rate limits read from answers' headers: the parser on the recorded headers, and the
OpenAI and Anthropic adapters filling ``LLMResponse.rate_limit`` when cassettes replay.

The header values come from the standard VCR.py recordings in ``cassettes/`` (simonw/llm
and simonw/llm-anthropic, see ``cassettes/SOURCES.md``), the only ones that kept them.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from llmgine.llm import ChatMessage, LLMRequest, RateLimit, ResponseMeta, ToolSpec
from llmgine.llm._rate_limit import duration_seconds, rate_limit_from_headers
from llmgine.llm.providers.anthropic import AnthropicProvider
from llmgine.llm.providers.gemini import GeminiProvider
from llmgine.llm.providers.openai import OpenAIOptions, OpenAIProvider
from tests.llm.replay import CassetteTransport, collect, load

OPENAI = "openai/chat_two_step_tool_chain__stdvcr_gzip.yaml"
ANTHROPIC = "anthropic/messages_stream_text__stdvcr.yaml"


def recorded_headers(path: str, index: int = 0) -> dict[str, str]:
    return load(path)[index].headers


def rate_limit_headers(path: str) -> dict[str, str]:
    """Only the rate-limit headers (and the date) of a recording's first answer."""
    return {
        k: v
        for k, v in recorded_headers(path).items()
        if "ratelimit" in k.lower() or k.lower() == "date"
    }


def with_headers(path: str, headers: dict[str, str]) -> CassetteTransport:
    """A recording whose answers carry ``headers`` too: for the paths (OpenAI streamed,
    Anthropic not) whose recordings lost theirs."""
    transport = CassetteTransport.of(path)
    for interaction in transport.interactions:
        interaction.headers.update(headers)
    return transport


# -- the parser --------------------------------------------------------------------------


def test_durations_as_openai_writes_them() -> None:
    assert duration_seconds("2ms") == pytest.approx(0.002)  # as recorded
    assert duration_seconds("0s") == 0.0  # as recorded
    assert duration_seconds("6m0s") == 360.0
    assert duration_seconds("1h2m3.5s") == pytest.approx(3723.5)
    assert duration_seconds("7.66s") == pytest.approx(7.66)
    assert duration_seconds("1.5") == 1.5  # a bare number is seconds
    for bad in ("", "soon", "5x", "-1s", "-1", "m5", "inf", "nan"):
        assert duration_seconds(bad) is None, bad


def test_openai_headers_as_recorded() -> None:
    headers = recorded_headers(OPENAI)
    assert headers["x-ratelimit-remaining-tokens"] == "149999981"  # what the test reads
    parsed = rate_limit_from_headers(headers)
    assert parsed is not None
    assert parsed.model_dump() == {
        "requests_limit": 30000,
        "requests_remaining": 29999,
        "requests_reset_s": pytest.approx(0.002),  # "2ms"
        "tokens_limit": 150000000,
        "tokens_remaining": 149999981,
        "tokens_reset_s": 0.0,  # "0s"
    }


def test_anthropic_headers_as_recorded_resets_measured_from_their_date() -> None:
    headers = recorded_headers(ANTHROPIC)
    assert headers["anthropic-ratelimit-requests-reset"] == "2026-04-05T14:28:37Z"
    # Measured from an arrival 30 s before the reset.
    early = datetime(2026, 4, 5, 14, 28, 7, tzinfo=UTC)
    assert rate_limit_from_headers(headers, now=early) == RateLimit(
        requests_limit=20000,
        requests_remaining=19999,
        requests_reset_s=30.0,
        # The combined budget: every budget is whole, and on a tie it is the one kept.
        tokens_limit=4800000,
        tokens_remaining=4800000,
        tokens_reset_s=30.0,
    )
    # By default from the answer's own date (14:28:38, a second after the reset), so a
    # skewed local clock does not move it.
    assert headers["Date"] == "Sun, 05 Apr 2026 14:28:38 GMT"
    parsed = rate_limit_from_headers(headers)
    assert parsed is not None
    assert (parsed.requests_reset_s, parsed.tokens_reset_s) == (0.0, 0.0)


def test_the_tightest_anthropic_token_budget_is_kept() -> None:
    headers = rate_limit_headers(ANTHROPIC)
    headers["anthropic-ratelimit-output-tokens-remaining"] = "8000"  # 1% of 800000 left
    headers["anthropic-ratelimit-output-tokens-reset"] = "2026-04-05T14:28:50Z"
    parsed = rate_limit_from_headers(headers)
    assert parsed is not None
    assert (parsed.tokens_limit, parsed.tokens_remaining) == (800000, 8000)
    assert parsed.tokens_reset_s == 12.0  # 14:28:50 from the answer's date, 14:28:38
    assert parsed.requests_remaining == 19999  # the request budget is its own


def test_names_in_any_case_and_bad_values_left_out() -> None:
    headers = {
        "X-RateLimit-Remaining-Requests": "0",
        "X-RateLimit-Reset-Requests": "soon",
        "x-ratelimit-remaining-tokens": "-5",
        "x-ratelimit-limit-tokens": "lots",
        "x-ratelimit-reset-tokens": "1m",
    }
    assert rate_limit_from_headers(headers) == RateLimit(requests_remaining=0, tokens_reset_s=60.0)
    # A bare time is UTC, and a time already past is no wait at all.
    now = datetime(2026, 1, 1, tzinfo=UTC)
    later = {"anthropic-ratelimit-requests-reset": "2026-01-01T00:00:05"}
    assert rate_limit_from_headers(later, now=now) == RateLimit(requests_reset_s=5.0)
    past = {"anthropic-ratelimit-requests-reset": "2025-12-31T23:59:00Z"}
    assert rate_limit_from_headers(past, now=now) == RateLimit(requests_reset_s=0.0)


def test_answers_without_rate_limit_headers_have_none() -> None:
    # A pydantic-ai recording (its serializer dropped every x-* header), and other headers.
    assert rate_limit_from_headers(recorded_headers("openai/chat_plain_text.yaml")) is None
    assert rate_limit_from_headers({"authorization": "Bearer sk-x", "x-request-id": "r"}) is None
    assert rate_limit_from_headers({"x-ratelimit-policy": "whatever"}) is None


def test_only_numbers_are_kept() -> None:
    parsed = rate_limit_from_headers(recorded_headers(ANTHROPIC))
    assert parsed is not None
    dumped = parsed.model_dump()
    assert all(v is None or isinstance(v, int | float) for v in dumped.values())
    # The organisation id, cookies and request id of the recording are not in it.
    assert "b320df16" not in parsed.model_dump_json()


# -- the adapters, replaying the recordings --------------------------------------------------

DRAGON_TOOLS = [
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
        description="Returns True if the specified population can have dragons, False otherwise",
        parameters={
            "properties": {"population": {"type": "integer"}},
            "required": ["population"],
            "type": "object",
        },
    ),
]


async def test_openai_generate_reads_each_answers_rate_limits() -> None:
    transport = CassetteTransport.of(OPENAI)
    provider = OpenAIProvider(api_key="sk-test", http_client=transport.client())
    question = "Can the country of Crumpet have dragons? Answer with only YES or NO"
    request = LLMRequest(messages=[ChatMessage.user(question)], tools=DRAGON_TOOLS)
    response = await provider.generate(request.model_copy(update={"model": "gpt-4o-mini"}))

    assert response.rate_limit is not None
    assert response.rate_limit.tokens_remaining == 149999981  # the first answer's
    assert response.rate_limit.requests_remaining == 29999
    assert response.rate_limit.requests_reset_s == pytest.approx(0.002)
    # Not compared: the same answer with other limits left is the same content.
    assert response.same_content(response.model_copy(update={"rate_limit": None}))


async def test_openai_stream_passes_the_rate_limits_first() -> None:
    transport = with_headers(
        "openai/responses_stream_tool_call_then_text.yaml", rate_limit_headers(OPENAI)
    )
    provider = OpenAIProvider(api_key="sk-test", http_client=transport.client())
    request = LLMRequest(
        messages=[ChatMessage.user("What is the capital of France?")],
        options=[OpenAIOptions(api="responses")],
    )
    items, response = await collect(provider, request, "gpt-4o")

    assert isinstance(items[0], ResponseMeta)
    assert items[0].rate_limit is not None
    assert response.rate_limit == rate_limit_from_headers(rate_limit_headers(OPENAI))
    assert response.model == "gpt-4o-2024-08-06"  # the answer's own meta still counts


async def test_anthropic_stream_reads_the_recorded_rate_limits() -> None:
    transport = CassetteTransport.of(ANTHROPIC)
    provider = AnthropicProvider(api_key="sk-ant-test", http_client=transport.client())
    request = LLMRequest(messages=[ChatMessage.user("Say hello")], max_tokens=8192)
    _, response = await collect(provider, request, "claude-sonnet-4-20250514")

    assert response.text == "Hello"
    assert response.rate_limit == RateLimit(
        requests_limit=20000,
        requests_remaining=19999,
        requests_reset_s=0.0,  # 14:28:37, answered at 14:28:38
        tokens_limit=4800000,
        tokens_remaining=4800000,
        tokens_reset_s=0.0,
    )


async def test_anthropic_generate_reads_them_too() -> None:
    headers = rate_limit_headers(ANTHROPIC)
    headers["anthropic-ratelimit-requests-remaining"] = "3"
    transport = with_headers("anthropic/messages_system_prompt.yaml", headers)
    provider = AnthropicProvider(api_key="sk-ant-test", http_client=transport.client())
    recorded = transport.recorded_json(0)
    request = LLMRequest(
        messages=[
            ChatMessage.system(recorded["system"]),
            ChatMessage.user(recorded["messages"][0]["content"][0]["text"]),
        ]
    )
    response = await provider.generate(request.model_copy(update={"model": recorded["model"]}))

    assert response.text == "The capital of France is Paris."
    assert response.rate_limit is not None
    assert response.rate_limit.requests_remaining == 3


async def test_gemini_sends_none() -> None:
    transport = CassetteTransport.of("gemini/generate_plain_text.yaml")
    provider = GeminiProvider(api_key="test-key", http_client=transport.client())
    request = LLMRequest(messages=[ChatMessage.user("What is 2 + 2? Reply with just the number.")])
    response = await provider.generate(request.model_copy(update={"model": "gemini-3.5-flash"}))
    assert response.text == "4"
    assert response.rate_limit is None
