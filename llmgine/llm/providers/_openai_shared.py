"""What both OpenAI translators (Chat Completions, Responses) share: media as URLs,
reasoning effort, which models reason or are served only by the Responses API."""

from __future__ import annotations

import functools
import re

from llmgine.errors import LLMConfigurationError
from llmgine.llm._parts import FilePart, ImagePart
from llmgine.llm._request import LLMRequest

__all__ = ["config_error", "data_url", "effort_for", "is_reasoning_model", "responses_only_model"]


def data_url(part: ImagePart | FilePart) -> str:
    """The part's URL, or its bytes as a ``data:`` URL (what OpenAI takes for both)."""
    if part.url is not None:
        return part.url
    return f"data:{part.media_type};base64,{part.base64()}"


def _bare(model: str) -> str:
    # "ft:gpt-4o-mini:org::id" and "openai/gpt-5" name the same family as their base.
    return model.lower().removeprefix("ft:").rsplit("/", 1)[-1]


@functools.lru_cache(maxsize=512)  # asked on every call, of a handful of model names
def is_reasoning_model(model: str) -> bool:
    """o-series and gpt-5 models reason (gpt-5-chat-* does not)."""
    bare = _bare(model)
    return re.match(r"(o\d|gpt-5)", bare) is not None and "chat" not in bare


@functools.lru_cache(maxsize=512)
def responses_only_model(model: str) -> bool:
    """Models that the Chat Completions endpoint does not serve."""
    pattern = r"(^(o\d|gpt-5)[\w.-]*-pro\b|deep-research|codex|computer-use)"
    return re.search(pattern, _bare(model)) is not None


def effort_for(request: LLMRequest) -> str | None:
    """The reasoning effort asked for: the effort, or one derived from a token budget."""
    reasoning = request.reasoning
    if reasoning is None:
        return None
    if reasoning.effort is not None:
        return reasoning.effort
    if reasoning.budget_tokens is None:
        return None
    # OpenAI takes no budget; these bands match what its efforts tend to spend.
    if reasoning.budget_tokens <= 2048:
        return "low"
    return "medium" if reasoning.budget_tokens <= 8192 else "high"


def config_error(message: str, provider: str, model: str) -> LLMConfigurationError:
    return LLMConfigurationError(message, provider=provider, model=model)
