"""Cost: our per-model fast path agrees with genai-prices itself, and unknown is None."""

from __future__ import annotations

import pytest

from llmgine.llm import Usage, cost_usd
from llmgine.llm._cost import reference_cost_usd

MODELS = [
    ("openai", "gpt-4o-mini"),
    ("openai", "gpt-5"),
    ("anthropic", "claude-sonnet-4-5"),  # tiered above 200K prompt tokens
    ("anthropic", "claude-haiku-4-5"),
    ("gemini", "gemini-2.5-flash"),
    ("gemini", "gemini-2.5-pro"),  # tiered
]
USAGES = [
    Usage(input_tokens=1000, output_tokens=500),
    Usage(input_tokens=5000, output_tokens=20, cache_read_tokens=4000),
    Usage(input_tokens=3000, output_tokens=10, cache_write_tokens=2500, cache_read_tokens=100),
    Usage(input_tokens=250_000, output_tokens=1000, cache_read_tokens=10_000),
]


@pytest.mark.parametrize(("provider", "model"), MODELS)
def test_the_fast_path_matches_genai_prices(provider: str, model: str) -> None:
    for usage in USAGES:
        ours = cost_usd(provider, model, usage)
        assert ours is not None
        assert ours == pytest.approx(reference_cost_usd(provider, model, usage), rel=1e-12)


def test_known_prices_and_unknown_models() -> None:
    # gpt-4o-mini: $0.15 per million input tokens, $0.60 output, $0.075 cached input.
    usage = Usage(input_tokens=1000, output_tokens=500, cache_read_tokens=100)
    assert cost_usd("openai", "gpt-4o-mini", usage) == pytest.approx(0.0004425)
    assert cost_usd("openai", "no-such-model", usage) is None
    assert cost_usd("ollama", "llama3", usage) is None  # a local server has no price
    assert cost_usd("openai", "", usage) is None
