"""Cost in USD from `genai-prices`' maintained price table; ``None`` when it does not know
the model (a local server, a new model), never a made-up number.

The table lookup finds the model's prices once per model; each call then applies them
here. (`genai_prices.calc_price` takes about 100 µs a call, more than the rest of
llmgine's per-call work; a test checks that both agree to the last digit.)
"""

from __future__ import annotations

import functools
from decimal import Decimal
from typing import Any

from llmgine.llm._response import Usage

__all__ = ["cost_usd", "reference_cost_usd"]

# llmgine provider names that genai-prices knows under another id.
_PRICE_PROVIDER = {"gemini": "google", "openai": "openai", "anthropic": "anthropic"}
_MILLION = Decimal(1_000_000)
_ZERO = Decimal(0)


@functools.lru_cache(maxsize=512)
def _prices(provider: str, model: str) -> Any:
    from genai_prices import Usage as PriceUsage
    from genai_prices import calc_price

    try:
        return calc_price(
            PriceUsage(input_tokens=1), model_ref=model, provider_id=provider
        ).model_price
    except LookupError:
        return None


Rates = tuple[Any, Any, Any, Any]  # input, cache read, cache write, output: Decimal or tiered


@functools.lru_cache(maxsize=512)
def _rates(provider: str, model: str) -> Rates | None:
    # Read off the price model once: attribute access on genai-prices' models is not free.
    prices = _prices(provider, model)
    if prices is None:
        return None
    return (
        prices.input_mtok,
        getattr(prices, "cache_read_mtok", None) or prices.input_mtok,
        getattr(prices, "cache_write_mtok", None) or prices.input_mtok,
        prices.output_mtok,
    )


def _rate(price: Any, total_input: int) -> Decimal:
    """Dollars per million tokens; tiered prices apply by the prompt's total size."""
    if isinstance(price, Decimal):
        return price
    if price is None:
        return _ZERO
    rate: Decimal = price.base
    for tier in price.tiers:
        if total_input > tier.start:
            rate = tier.price
    return rate


def cost_usd(provider: str, model: str, usage: Usage) -> float | None:
    """What ``usage`` on ``model`` costs at the table's current prices, or None if unknown.

    As in `Usage`, ``input_tokens`` includes the cached ones, priced at the cache rates.
    A call whose token counts were not reported has no known cost (None, never 0).
    """
    if usage.input_tokens is None or usage.output_tokens is None:
        return None
    price_provider = _PRICE_PROVIDER.get(provider)
    rates = _rates(price_provider, model) if price_provider and model else None
    if rates is None:
        return None
    input_rate, read_rate, write_rate, output_rate = rates
    total = usage.input_tokens
    read, write = usage.cache_read_tokens or 0, usage.cache_write_tokens or 0
    dollars = usage.output_tokens * _rate(output_rate, total) + (total - read - write) * _rate(
        input_rate, total
    )
    if read:
        dollars += read * _rate(read_rate, total)
    if write:
        dollars += write * _rate(write_rate, total)
    return float(dollars / _MILLION)


def reference_cost_usd(provider: str, model: str, usage: Usage) -> float | None:
    """The same price computed by `genai_prices.calc_price` itself (slow; for checking)."""
    price_provider = _PRICE_PROVIDER.get(provider)
    if price_provider is None or _prices(price_provider, model) is None:
        return None
    from genai_prices import Usage as PriceUsage
    from genai_prices import calc_price

    result = calc_price(
        PriceUsage(
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            cache_read_tokens=usage.cache_read_tokens or None,
            cache_write_tokens=usage.cache_write_tokens or None,
        ),
        model_ref=model,
        provider_id=price_provider,
    )
    return float(result.total_price)
