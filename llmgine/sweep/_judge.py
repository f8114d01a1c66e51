"""`llm_judge`: a model grades each answer against a rubric, with structured output.

The judge is asked for a verdict as JSON matching a pydantic model (``JudgeVerdict``: a
reason, then a score in [0, 1]; or ``PassFailVerdict``: a reason, then passed), sent as the
provider's native structured output. Its cost is its own: the ``score.<name>.cost_usd``
column, counted apart from the sweep's ``cost_usd``; its reason is ``score.<name>.reason``.

A judge that fails (the call raises, or it never answers with a valid verdict) gives the
row a score of None and says why in the reason column: a judge's bad day is not a crash.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError

from llmgine.llm._model import Model
from llmgine.llm._parts import ChatMessage
from llmgine.llm._request import ResponseFormat
from llmgine.llm._response import LLMResponse
from llmgine.sweep._scorers import Scored, is_missing

__all__ = ["JudgeScorer", "JudgeVerdict", "PassFailVerdict", "llm_judge"]


class JudgeVerdict(BaseModel):
    """The judge's verdict: why, then how good the answer is from 0 (wrong) to 1 (right)."""

    reason: str = Field(description="One or two sentences: why this score, per the rubric.")
    score: float = Field(ge=0.0, le=1.0, description="0 = fails the rubric, 1 = fully meets it")


class PassFailVerdict(BaseModel):
    """The judge's verdict: why, then whether the answer passes the rubric."""

    reason: str = Field(description="One or two sentences: why it passes or fails the rubric.")
    passed: bool = Field(description="true when the answer meets the rubric")


_INSTRUCTIONS = (
    "You grade one answer of an AI assistant. Apply the rubric strictly and only the "
    "rubric. Reply with only a JSON object matching the schema."
)


class JudgeScorer:
    """A `Scorer` asking ``model`` to grade each answer by ``rubric`` (see `llm_judge`)."""

    def __init__(
        self,
        model: Model,
        rubric: str,
        *,
        name: str = "judge",
        scale: Literal["score", "pass_fail"] = "score",
        max_attempts: int = 2,
    ) -> None:
        if not rubric.strip():
            raise ValueError("llm_judge() needs a rubric: what a good answer is")
        if scale not in ("score", "pass_fail"):
            raise ValueError(f"llm_judge(scale=...) is 'score' or 'pass_fail', got {scale!r}")
        if max_attempts < 1:
            raise ValueError(f"llm_judge(max_attempts=...) must be at least 1, got {max_attempts}")
        self.model = model
        self.rubric = rubric
        self.name = name
        self.verdict_type: type[JudgeVerdict] | type[PassFailVerdict] = (
            JudgeVerdict if scale == "score" else PassFailVerdict
        )
        self.max_attempts = max_attempts
        self.extra_columns: tuple[str, ...] = (f"score.{name}.cost_usd", f"score.{name}.reason")

    def __repr__(self) -> str:
        return f"<Scorer {self.name}: llm_judge({self.model.spec})>"

    def messages(self, row: Mapping[str, Any], response: LLMResponse) -> list[ChatMessage]:
        """What the judge is sent for one row: the rubric, the prompt, the expected answer
        (when the row has one) and the answer to grade."""
        parts = [f"Rubric:\n{self.rubric.strip()}", f"Prompt:\n{row.get('prompt', '')}"]
        expected = row.get("expected")
        if not is_missing(expected):
            parts.append(f"Reference answer:\n{expected}")
        parts.append(f"Answer to grade:\n{response.text}")
        return [ChatMessage.system(_INSTRUCTIONS), ChatMessage.user("\n\n".join(parts))]

    async def score(self, row: Mapping[str, Any], response: LLMResponse) -> Scored:
        verdict_type = self.verdict_type
        response_format = ResponseFormat(
            name=verdict_type.__name__,
            json_schema=verdict_type.model_json_schema(),
            description=(verdict_type.__doc__ or "").strip() or None,
        )
        messages = self.messages(row, response)
        costs: list[float | None] = []
        problem = ""
        for _ in range(self.max_attempts):
            try:
                answer = await self.model.generate(messages, response_format=response_format)
            except Exception as exc:  # any failure of the judge is the row's reason, not a crash
                problem = f"the judge {self.model.spec} failed: {type(exc).__name__}: {exc}"
                break
            costs.append(answer.cost_usd)
            try:
                verdict = verdict_type.model_validate_json(answer.text)
            except ValidationError as exc:
                problem = (
                    f"the judge {self.model.spec} did not answer with a valid verdict: "
                    f"{_short(exc)}; its answer began {answer.text[:120]!r}"
                )
                messages = [
                    *messages,
                    answer.message,
                    ChatMessage.user(
                        f"That is not a valid verdict ({_short(exc)}). Answer again with only "
                        "the JSON object."
                    ),
                ]
                continue
            value = (
                verdict.score
                if isinstance(verdict, JudgeVerdict)
                else (1.0 if verdict.passed else 0.0)
            )
            return self._scored(value, verdict.reason, costs)
        return self._scored(None, problem, costs)

    def _scored(self, value: float | None, reason: str, costs: list[float | None]) -> Scored:
        # Unknown if any call's cost is unknown: a partial sum would under-report it.
        cost = None if not costs or any(c is None for c in costs) else math.fsum(costs)  # type: ignore[arg-type]
        return Scored(
            value,
            {f"score.{self.name}.cost_usd": cost, f"score.{self.name}.reason": reason},
        )


def _short(exc: ValidationError) -> str:
    return json.dumps(
        [{"loc": list(e["loc"]), "msg": e["msg"]} for e in exc.errors()[:5]], ensure_ascii=False
    )


def llm_judge(
    model: str | Model,
    rubric: str,
    *,
    name: str = "judge",
    scale: Literal["score", "pass_fail"] = "score",
    max_attempts: int = 2,
) -> JudgeScorer:
    """A scorer where ``model`` (a spec such as ``"openai:gpt-4o-mini"``, or a `Model`)
    grades each answer by ``rubric``.

    The judge sees the rubric, the row's prompt, its ``expected`` value when there is one,
    and the answer. It answers with structured output: a reason and a score in [0, 1]
    (``scale="score"``) or pass/fail (``scale="pass_fail"``: 1.0 or 0.0). An answer that is
    not a valid verdict is sent back once more with what was wrong (``max_attempts``
    calls in all). Columns: ``score.<name>`` (the score; None when the judge failed),
    ``score.<name>.reason`` (its reason, or why it failed) and ``score.<name>.cost_usd``
    (what judging cost, every attempt included; None when a price is unknown). That cost
    is not in the sweep's ``cost_usd``.

    Example:
        llm_judge("openai:gpt-4o-mini", "The answer names the right capital and nothing false.")
    """
    if isinstance(model, str):
        from llmgine.llm import get_model

        model = get_model(model)
    return JudgeScorer(model, rubric, name=name, scale=scale, max_attempts=max_attempts)
