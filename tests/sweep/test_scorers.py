"""The sweep's scorers, on hand-built responses (no model, no bus), and the LLM judge on a
scripted test model."""

from __future__ import annotations

import math
import sys
from typing import Any

import pandas as pd
import pytest
from pydantic import BaseModel

from llmgine.errors import MissingExtraError, ScorerError
from llmgine.llm import LLMRequest, LLMResponse, Model, TextPart, WrapperModel, get_model
from llmgine.sweep._judge import JudgeScorer, llm_judge
from llmgine.sweep._scorers import (
    Scored,
    Scorer,
    contains,
    exact_match,
    first_number,
    json_valid,
    numeric_close,
    parse_scorer,
    regex,
    scorer,
)


def answer(text: str) -> LLMResponse:
    return LLMResponse(parts=[TextPart(text=text)])


async def score(s: Scorer, text: str, **row: Any) -> float | Scored | None:
    return await s.score({"prompt": "q", **row}, answer(text))


async def test_exact_match_ignores_case_and_outer_spaces_unless_asked() -> None:
    s = exact_match()
    assert s.name == "exact"
    assert s.extra_columns == ()
    assert isinstance(s, Scorer)
    assert await score(s, "  Paris\n", expected="paris") == 1.0
    assert await score(s, "Paris.", expected="Paris") == 0.0
    assert await score(s, "x", expected=None) is None
    assert await score(s, "x", expected=math.nan) is None
    assert await score(s, "x", expected=pd.NA) is None
    assert await score(exact_match(case=True), "paris", expected="Paris") == 0.0
    assert await score(exact_match(strip=False), "Paris ", expected="Paris") == 0.0
    assert await score(exact_match("gold"), "4", gold=4) == 1.0


async def test_a_missing_column_is_a_scorer_error_naming_it() -> None:
    with pytest.raises(ScorerError, match=r"'expected'.*'prompt'") as caught:
        await score(exact_match(), "Paris")
    assert caught.value.scorer == "exact"


async def test_contains_a_text_or_a_column() -> None:
    assert await score(contains("paris"), "It is PARIS.") == 1.0
    assert await score(contains("paris", case=True), "It is PARIS.") == 0.0
    assert await score(contains("Lyon"), "It is Paris.") == 0.0
    assert await score(contains(), "It is Paris.", expected="paris") == 1.0
    assert await score(contains(column="city"), "It is Rome.", city="Paris") == 0.0
    assert await score(contains(), "anything", expected=None) is None
    with pytest.raises(ValueError, match="not both"):
        contains("a", column="b")
    with pytest.raises(ValueError, match="non-empty"):
        contains("")


async def test_regex_searches_the_answer_and_refuses_a_bad_pattern() -> None:
    assert await score(regex(r"\b\d{4}\b"), "in 1969, I think") == 1.0
    assert await score(regex(r"^\d+$"), "42 apples") == 0.0
    with pytest.raises(ValueError, match="invalid regular expression"):
        regex("(unclosed")


class City(BaseModel):
    name: str
    population: int


async def test_json_valid_any_json_a_pydantic_model_and_a_schema() -> None:
    assert await score(json_valid(), '{"a": 1}') == 1.0
    assert await score(json_valid(), "```json\n[1, 2]\n```") == 1.0  # one fence is fine
    assert await score(json_valid(), "{'a': 1}") == 0.0
    model = json_valid(City)
    assert await score(model, '{"name": "Paris", "population": 2100000}') == 1.0
    assert await score(model, '{"name": "Paris"}') == 0.0
    assert await score(model, "not json") == 0.0
    schema = json_valid(
        {"type": "object", "required": ["ok"], "properties": {"ok": {"type": "boolean"}}}
    )
    assert await score(schema, '{"ok": true}') == 1.0
    assert await score(schema, '{"ok": "yes"}') == 0.0
    assert await score(schema, "nope") == 0.0
    with pytest.raises(ValueError, match="schema is invalid"):
        json_valid({"type": 12})
    with pytest.raises(TypeError, match="pydantic model class"):
        json_valid(42)  # type: ignore[arg-type]


def test_a_json_schema_without_jsonschema_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "jsonschema", None)  # None there: import fails
    with pytest.raises(MissingExtraError, match=r"pip install jsonschema.*pydantic model"):
        json_valid({"type": "object"})
    assert json_valid(City).name == "json"  # a pydantic model needs nothing more


def test_first_number_reads_numbers_as_written() -> None:
    assert first_number("about 1,234.5 metres") == 1234.5
    assert first_number("it is -3 degrees") == -3.0
    assert first_number("6.02e23 atoms") == 6.02e23
    assert first_number("roughly .5") == 0.5
    assert first_number("no number here") is None


async def test_numeric_close_absolute_and_relative() -> None:
    assert await score(numeric_close(), "The answer is 42.", expected=42) == 1.0
    assert await score(numeric_close(), "The answer is 42.1", expected=42) == 0.0
    assert await score(numeric_close(tolerance=0.2), "42.1", expected="42") == 1.0
    assert await score(numeric_close(relative=0.01), "1005", expected=1000) == 1.0
    assert await score(numeric_close(relative=0.01), "1011", expected=1000) == 0.0
    assert await score(numeric_close(), "I do not know", expected=3) == 0.0
    assert await score(numeric_close(), "3", expected=None) is None
    with pytest.raises(ScorerError, match="holds no number"):
        await score(numeric_close(), "3", expected="three")
    with pytest.raises(ValueError, match="tolerance >= 0"):
        numeric_close(tolerance=-1)


async def test_a_function_scorer_sync_or_async() -> None:
    def short(row: Any, response: LLMResponse) -> bool:
        return len(response.text) < 5

    async def echoes(row: Any, response: LLMResponse) -> float:
        return 0.5 if row["prompt"] in response.text else 0.0

    assert scorer(short).name == "short"
    assert await score(scorer(short), "hi") == 1.0
    assert await score(scorer(short), "a long answer") == 0.0
    assert await score(scorer(echoes, name="echo"), "q and more") == 0.5
    assert await score(scorer(lambda row, r: None, name="na"), "x") is None
    assert await score(scorer(lambda row, r: math.nan, name="nan"), "x") is None
    scored = await score(scorer(lambda row, r: Scored(True, {"score.s.why": "ok"}), name="s"), "x")
    assert scored == Scored(1.0, {"score.s.why": "ok"})


async def test_a_raising_function_is_a_scorer_error_with_the_original_as_cause() -> None:
    def broken(row: Any, response: LLMResponse) -> float:
        return 1 / 0

    async def broken_async(row: Any, response: LLMResponse) -> float:
        raise KeyError("context")

    with pytest.raises(ScorerError, match="'broken' raised ZeroDivisionError") as caught:
        await score(scorer(broken), "x")
    assert caught.value.scorer == "broken"
    assert isinstance(caught.value.__cause__, ZeroDivisionError)
    with pytest.raises(ScorerError, match="'broken_async' raised KeyError") as caught:
        await score(scorer(broken_async), "x")
    assert isinstance(caught.value.__cause__, KeyError)

    def words(row: Any, response: LLMResponse) -> Any:  # a score must be a number
        return "good"

    with pytest.raises(ScorerError, match="'words' returned 'good'"):
        await score(scorer(words), "x")


def test_parse_scorer_forms() -> None:
    assert parse_scorer("exact").name == "exact"
    assert parse_scorer("contains:Paris").name == "contains"
    assert parse_scorer("regex:^a").name == "regex"
    assert parse_scorer("json").name == "json"
    assert parse_scorer("close:0.5").name == "close"


async def test_parse_scorer_forms_score_as_they_say() -> None:
    assert await score(parse_scorer("exact:gold"), "Rome", gold="rome") == 1.0
    assert await score(parse_scorer("contains:Paris"), "Paris, surely") == 1.0
    assert await score(parse_scorer("contains"), "Paris, surely", expected="Lyon") == 0.0
    assert await score(parse_scorer("regex:^\\d+$"), "123") == 1.0
    assert await score(parse_scorer("json"), "[]") == 1.0
    assert await score(parse_scorer("close"), "7", expected=7) == 1.0
    assert await score(parse_scorer("close:0.5"), "7.4", expected=7) == 1.0
    assert await score(parse_scorer("close:1%"), "101", expected=100) == 1.0
    assert await score(parse_scorer("close:1%"), "102", expected=100) == 0.0


def test_parse_scorer_judge_takes_a_model_spec() -> None:
    judge = parse_scorer("judge:demo:x")
    assert isinstance(judge, JudgeScorer)
    assert judge.model.spec == "demo:x"
    assert "reference answer" in judge.rubric


@pytest.mark.parametrize(
    "bad", ["exactly", "regex:", "json:x", "", "close:abc", "close:-1", "judge:", "judge"]
)
def test_parse_scorer_errors_list_the_forms(bad: str) -> None:
    with pytest.raises(ValueError, match=r"the forms are:\n.*exact") as caught:
        parse_scorer(bad)
    assert "contains:TEXT" in str(caught.value)
    assert "close:1%" in str(caught.value)


def test_parse_scorer_bad_regex_says_so() -> None:
    with pytest.raises(ValueError, match="invalid regular expression"):
        parse_scorer("regex:(")


# The LLM judge, on the scripted test model.

ROW = {"prompt": "Capital of France?", "expected": "Paris"}


async def test_judge_scores_with_a_structured_verdict() -> None:
    model = get_model("test:judge", responses=['{"reason": "names Paris", "score": 0.9}'])
    judge: Scorer = llm_judge(model, "The answer names the right capital.")
    assert isinstance(judge, Scorer)
    assert judge.extra_columns == ("score.judge.cost_usd", "score.judge.reason")
    result = await judge.score(ROW, answer("Paris"))
    extras = {"score.judge.cost_usd": None, "score.judge.reason": "names Paris"}
    assert result == Scored(0.9, extras)
    sent = model.adapter.requests[0]  # type: ignore[attr-defined]
    assert sent.response_format is not None
    assert sent.response_format.name == "JudgeVerdict"
    text = " ".join(m.text for m in sent.messages)
    assert "right capital" in text
    assert "Capital of France?" in text
    assert "Reference answer:\nParis" in text
    assert "Answer to grade:\nParis" in text


async def test_judge_leaves_out_a_missing_reference() -> None:
    model = get_model("test:judge", responses=['{"reason": "fine", "score": 1}'])
    await llm_judge(model, "Be right.").score({"prompt": "q", "expected": pd.NA}, answer("a"))
    sent = model.adapter.requests[0]  # type: ignore[attr-defined]
    assert "Reference answer" not in " ".join(m.text for m in sent.messages)


async def test_judge_pass_fail() -> None:
    model = get_model("test:judge", responses=['{"reason": "wrong city", "passed": false}'])
    judge = llm_judge(model, "Right capital.", name="capital", scale="pass_fail")
    result = await judge.score(ROW, answer("Lyon"))
    assert isinstance(result, Scored)
    assert result.value == 0.0
    assert result.extras["score.capital.reason"] == "wrong city"


async def test_judge_garbage_then_valid_is_asked_again() -> None:
    script = ["I think it is good", '{"reason": "ok", "score": 1}']
    model = get_model("test:judge", responses=script)
    result = await llm_judge(model, "Right capital.").score(ROW, answer("Paris"))
    assert isinstance(result, Scored)
    assert result.value == 1.0
    retry = model.adapter.requests[1]  # type: ignore[attr-defined]
    assert "not a valid verdict" in retry.messages[-1].text


async def test_judge_garbage_gives_none_and_says_why() -> None:
    model = get_model("test:judge", responses=["garbage", '{"score": 7}'])
    result = await llm_judge(model, "Right capital.").score(ROW, answer("Paris"))
    assert isinstance(result, Scored)
    assert result.value is None
    reason = result.extras["score.judge.reason"]
    assert "did not answer with a valid verdict" in reason
    assert "test:judge" in reason


async def test_judge_call_failure_gives_none_and_says_why() -> None:
    model = get_model("test:judge", responses=[RuntimeError("judge server down")], retry=False)
    result = await llm_judge(model, "Right capital.").score(ROW, answer("Paris"))
    assert isinstance(result, Scored)
    assert result.value is None
    assert "RuntimeError: judge server down" in result.extras["score.judge.reason"]


class Priced(WrapperModel):
    """Puts a known price on each answer, as a hosted model's would have."""

    async def generate(self, request: LLMRequest, /) -> LLMResponse:
        response = await self.wrapped.generate(request)
        return response.model_copy(update={"cost_usd": 0.25})


async def test_judge_cost_counts_every_attempt() -> None:
    inner = get_model("test:judge", responses=["nope", '{"reason": "fine", "score": 0.5}'])
    judge = llm_judge(Model(Priced(inner)), "Right capital.")
    result = await judge.score(ROW, answer("Paris"))
    assert isinstance(result, Scored)
    assert result.value == 0.5
    assert result.extras["score.judge.cost_usd"] == 0.5  # two calls at 0.25


def test_judge_from_a_spec_and_bad_arguments() -> None:
    judge = llm_judge("demo:x", "Right capital.", name="j")
    assert isinstance(judge, JudgeScorer)
    assert judge.model.spec == "demo:x"
    with pytest.raises(ValueError, match="needs a rubric"):
        llm_judge("demo:x", "  ")
    with pytest.raises(ValueError, match="'score' or 'pass_fail'"):
        llm_judge("demo:x", "r", scale="stars")  # type: ignore[arg-type]
