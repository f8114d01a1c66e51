"""`LLMResponse` and `Usage`: what comes back, the same shape from every provider."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from llmgine.bus import Payload
from llmgine.llm._parts import ChatMessage, Part, ReasoningPart, TextPart, ToolCallPart
from llmgine.llm._rate_limit import RateLimit

__all__ = ["FinishReason", "LLMResponse", "Usage"]

# Normalised; the provider's own value is kept in `LLMResponse.raw_finish_reason`.
FinishReason = Literal["stop", "length", "tool_calls", "content_filter", "error", "other"]


class Usage(Payload):
    """Token counts, the same whether the call streamed or not.

    ``input_tokens`` counts every prompt token, cached ones included (so it compares
    across providers); ``cache_read_tokens`` and ``cache_write_tokens`` say how many of
    them were read from or written to the provider's prompt cache. ``reasoning_tokens``
    are part of ``output_tokens``. A count the provider did not report is ``None``
    (unknown, never a made-up 0): a stream that sent no usage has ``Usage()``.
    """

    input_tokens: int | None = None
    output_tokens: int | None = None
    cache_read_tokens: int | None = None
    cache_write_tokens: int | None = None
    reasoning_tokens: int | None = None

    @property
    def known(self) -> bool:
        """Whether the provider reported the input or the output count."""
        return self.input_tokens is not None or self.output_tokens is not None

    @property
    def total_tokens(self) -> int | None:
        """Input plus output tokens; None when neither is known."""
        if not self.known:
            return None
        return (self.input_tokens or 0) + (self.output_tokens or 0)

    def __add__(self, other: Usage) -> Usage:
        def add(a: int | None, b: int | None) -> int | None:
            return None if a is None and b is None else (a or 0) + (b or 0)

        return Usage(
            input_tokens=add(self.input_tokens, other.input_tokens),
            output_tokens=add(self.output_tokens, other.output_tokens),
            cache_read_tokens=add(self.cache_read_tokens, other.cache_read_tokens),
            cache_write_tokens=add(self.cache_write_tokens, other.cache_write_tokens),
            reasoning_tokens=add(self.reasoning_tokens, other.reasoning_tokens),
        )


class LLMResponse(Payload):
    """One model answer: its parts, why it stopped, usage, cost and timings.

    ``raw`` keeps the provider's response as plain JSON data for debugging; it is not
    serialised and not compared.

    ``rate_limit`` is what the provider's headers said is left of the caller's request and
    token budgets when this answer arrived (OpenAI and Anthropic send them; None from
    providers that do not, such as Gemini, and for a replayed answer: a recording does not
    keep it, as it says nothing about the limits now). It is not compared.

    Where it came from (`llmgine.recording`): ``replayed_from`` names the store an answer
    was replayed from (a cassette's path), None for a live answer; ``cache_hit`` is True
    for a replayed answer, False for a live one a recording store was asked for first,
    None when no store was; a replayed answer costs ``cost_usd == 0`` and keeps what the
    recorded call cost in ``original_cost_usd``. ``drift`` is set on a live answer compared
    with a recording (``mode="compare"``): ``"same"``, ``"changed"`` or ``"new"``.
    """

    parts: list[Part] = Field(default_factory=list)
    finish_reason: FinishReason = "stop"
    raw_finish_reason: str | None = None
    usage: Usage = Field(default_factory=Usage)
    cost_usd: float | None = None
    provider: str = ""
    model: str = ""
    response_id: str | None = None
    latency_ms: float | None = None
    time_to_first_token_ms: float | None = None
    demo: bool = False  # produced by the offline demo provider, not a real model
    replayed_from: str | None = None
    cache_hit: bool | None = None
    original_cost_usd: float | None = None
    drift: Literal["same", "changed", "new"] | None = None
    rate_limit: RateLimit | None = None
    raw: Any = Field(default=None, exclude=True, repr=False)
    parsed: Any = Field(default=None, exclude=True, repr=False)  # structured output

    @property
    def text(self) -> str:
        """The answer's text parts joined (reasoning excluded)."""
        return "".join(p.text for p in self.parts if isinstance(p, TextPart))

    @property
    def tool_calls(self) -> list[ToolCallPart]:
        return [p for p in self.parts if isinstance(p, ToolCallPart)]

    @property
    def reasoning(self) -> list[ReasoningPart]:
        return [p for p in self.parts if isinstance(p, ReasoningPart)]

    @property
    def message(self) -> ChatMessage:
        """The answer as an assistant message, to append to the conversation."""
        return ChatMessage(role="assistant", parts=list(self.parts))

    def same_content(self, other: LLMResponse) -> bool:
        """Equal apart from timings, rate limits, debugging data and where the answer came
        from: what a streamed call and the same call without streaming must agree on, and a
        replayed answer and the original (whose cost is the replayed one's
        ``original_cost_usd``)."""
        skip = {"latency_ms", "time_to_first_token_ms", "rate_limit", *_PROVENANCE, "cost_usd"}
        return (
            self.model_dump(exclude=skip) == other.model_dump(exclude=skip)
            and self._answer_cost() == other._answer_cost()
        )

    def _answer_cost(self) -> float | None:
        """What the answer cost when it was made (a replayed one's original cost)."""
        return self.original_cost_usd if self.replayed_from is not None else self.cost_usd


_PROVENANCE = ("replayed_from", "cache_hit", "original_cost_usd", "drift")
