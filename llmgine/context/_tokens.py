"""Counting a message's tokens: a pluggable counter and a tokenizer-free default."""

from __future__ import annotations

from collections.abc import Callable

from llmgine.llm import (
    ChatMessage,
    FilePart,
    ImagePart,
    ReasoningPart,
    TextPart,
    ToolCallPart,
    ToolResultPart,
)

__all__ = ["MEDIA_TOKENS", "MESSAGE_OVERHEAD_TOKENS", "TokenCounter", "estimate_tokens"]

TokenCounter = Callable[[ChatMessage], int]
"""How many prompt tokens one message costs. Pass a provider's tokenizer for exact numbers."""

MESSAGE_OVERHEAD_TOKENS = 4
"""Each message costs a few tokens beyond its content (role and separators, as in OpenAI's
chat format); counting them keeps many short turns from looking free."""

MEDIA_TOKENS = 258
"""A flat cost per image or file. Providers charge by resolution or pages (Gemini 258 per
image, OpenAI 85 to ~1,100), which no rule of thumb can know; the base64 length would be
far off, so a middle value stands in."""


def _chars_to_tokens(text: str) -> int:
    # About four characters a token for English text with the common BPE tokenizers.
    return (len(text) + 3) // 4


def estimate_tokens(message: ChatMessage) -> int:
    """About four characters a token, plus a small per-message overhead.

    Text, reasoning, tool-call names with their JSON arguments and tool results (as text)
    count by length; each image or file counts `MEDIA_TOKENS`.
    """
    total = MESSAGE_OVERHEAD_TOKENS
    for part in message.parts:
        if isinstance(part, TextPart | ReasoningPart):
            total += _chars_to_tokens(part.text)
        elif isinstance(part, ToolCallPart):
            total += _chars_to_tokens(part.name) + _chars_to_tokens(part.arguments_json)
        elif isinstance(part, ToolResultPart):
            total += _chars_to_tokens(part.text)
        elif isinstance(part, ImagePart | FilePart):
            total += MEDIA_TOKENS
    return total
