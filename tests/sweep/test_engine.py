"""The sweep engine, on offline models: rows, grid, errors, AIMD, budget, resume."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from llmgine.errors import InvalidRequestError, RateLimitedError
from llmgine.llm import LLMRequest, LLMResponse, Model, WrapperModel, get_model
from llmgine.sweep import Sweep
from tests.conftest import FakeTime


class HasA:
    """A scorer written against the contract's protocol."""

    name = "has_a"
    extra_columns: tuple[str, ...] = ()

    async def score(self, row: Mapping[str, Any], response: LLMResponse) -> float | None:
        return 1.0 if "a" in response.text else 0.0


def echo(request: LLMRequest) -> str:
    return "echo " + request.messages[-1].text


def scripted(*entries: Any) -> Model:
    return get_model("test:s", responses=list(entries), retry=False)


class Priced(WrapperModel):
    """Each answer costs ``price`` (the test provider has no price of its own)."""

    def __init__(self, wrapped: Model, price: float) -> None:
        super().__init__(wrapped)
        self.price = price
        self.calls = 0

    async def generate(self, request: LLMRequest, /) -> LLMResponse:
        self.calls += 1
        response = await self.wrapped.generate(request)
        response.cost_usd = self.price
        return response


def priced(price: float, answers: int) -> tuple[Model, Priced]:
    inner = Priced(scripted(*[echo] * answers), price)
    return Model(inner), inner


async def test_grid_times_repeats_rows_columns_and_scores(tmp_path: Path) -> None:
    result = await Sweep(
        [{"text": "cat", "lang": "fr"}, {"text": "dog", "lang": "de"}],
        ["demo:llmgine-demo", scripted(*[echo] * 8)],
        template="Translate {text} to {lang}",
        grid={"temperature": [0.0, 1.0], "system": ["Be brief."]},
        repeats=2,
        scorers=[HasA()],
        store=tmp_path / "c.sqlite3",
        progress=False,
        model_options={"latency": 0},
    ).run()
    df = result.df
    assert len(df) == 2 * 2 * 2 * 2
    assert result.stopped is None
    assert df["prompt"].iloc[0] == "Translate cat to fr"
    assert df.columns[:5].tolist() == ["prompt_id", "prompt", "input.text", "input.lang", "model"]
    assert df["input_tokens"].dtype == "Int64"
    assert df["cache_hit"].dtype == "boolean"
    assert df["cost_usd"].dtype == "float64"
    assert df["score.has_a"].dtype == "float64"
    assert set(df["param.system"]) == {"Be brief."}
    test_rows = df[df["model"] == "test:s"]
    assert (test_rows["score.has_a"] == 1.0).all()  # "echo Translate ..." has an "a"
    assert test_rows["text"].iloc[0] == "echo Translate cat to fr"
    path = tmp_path / "r.parquet"
    result.to_parquet(path)
    back = pd.read_parquet(path)
    assert back.dtypes.to_dict() == df.dtypes.to_dict()


async def test_errors_are_rows_and_rate_limits_slow_down(tmp_path: Path) -> None:
    time = FakeTime()

    model = scripted(
        RateLimitedError("slow down", retry_after=3.0),
        "a1",
        InvalidRequestError("bad request", errors=[]),
        "a3",
    )
    result = await Sweep(
        ["p0", "p1", "p2"],
        [model],
        store=tmp_path / "c.sqlite3",
        concurrency=1,
        progress=False,
        sleep=time.sleep,
        clock=time.clock,
    ).run()
    df = result.df
    assert len(df) == 3
    assert time.sleeps == [3.0]  # waited out retry_after once, then retried the row
    assert df["error_type"].isna().tolist() == [True, False, True]
    assert df["error_type"].iloc[1] == "InvalidRequestError"
    assert "bad request" in df["error"].iloc[1]
    assert df["text"].tolist()[0] == "a1"


async def test_resume_calls_only_what_is_missing_and_costs_nothing(tmp_path: Path) -> None:
    store = tmp_path / "c.sqlite3"
    model, counter = priced(0.5, 3)
    first = await Sweep(["a", "b", "c"], [model], store=store, stream=False, progress=False).run()
    assert counter.calls == 3
    assert first.spent_usd == 1.5
    assert first.cached == 0
    assert (first.df["cost_usd"] == 0.5).all()
    assert not first.df["cache_hit"].any()

    model, counter = priced(0.5, 0)  # nothing scripted: a live call would fail
    again = await Sweep(["a", "b", "c"], [model], store=store, stream=False, progress=False).run()
    assert counter.calls == 0
    assert again.spent_usd == 0.0
    assert again.cached == 3
    assert again.df["cache_hit"].all()
    assert (again.df["original_cost_usd"] == 0.5).all()
    assert again.df["error_type"].isna().all()
    assert (again.df["cost_usd"] == 0.0).all()


async def test_budget_stops_before_the_call_that_would_pass_it(tmp_path: Path) -> None:
    model, counter = priced(0.5, 5)
    sweep = Sweep(
        [f"p{i}" for i in range(5)],
        [model],
        store=tmp_path / "c.sqlite3",
        concurrency=1,
        budget_usd=1.2,
        progress=False,
        stream=False,
    )
    # The price table does not know the test model: each next call is estimated at what
    # its calls cost so far (0.5), so the third (1.0 + 0.5 > 1.2) is never started.
    result = await sweep.run()
    assert result.stopped == "budget"
    assert "past the budget of $1.2000" in result.reason
    assert counter.calls == 2
    assert len(result.df) == 2
    assert result.total == 5
    assert result.spent_usd == 1.0
    assert "2 of 5 rows" in str(result)


class Verdict:
    """What `_scorers.Scored` is to the engine: a value and extra columns."""

    def __init__(self, value: float | None, extras: dict[str, Any]) -> None:
        self.value = value
        self.extras = extras


class Judged:
    name = "judge"
    extra_columns = ("score.judge.reason",)

    async def score(self, row: Mapping[str, Any], response: LLMResponse) -> Verdict:
        return Verdict(0.5, {"score.judge.reason": f"looked at {row['prompt']}"})


class Broken:
    name = "broken"
    extra_columns: tuple[str, ...] = ()

    async def score(self, row: Mapping[str, Any], response: LLMResponse) -> float | None:
        raise RuntimeError("a bug in the scorer")


async def test_scores_with_extras_failures_and_failed_calls(tmp_path: Path) -> None:
    model = scripted(echo, InvalidRequestError("no", errors=[]))
    result = await Sweep(
        ["p0", "p1"],
        [model],
        scorers=[HasA(), Judged(), Broken()],
        store=tmp_path / "c.sqlite3",
        concurrency=1,
        progress=False,
    ).run()
    df = result.df
    assert df.columns[-4:].tolist() == [
        "score.has_a",
        "score.judge",
        "score.judge.reason",
        "score.broken",
    ]
    assert df["score.judge"].tolist()[0] == 0.5
    assert df["score.judge.reason"].tolist()[0] == "looked at p0"
    assert df["score.has_a"].isna().tolist() == [False, True]  # the failed call: NaN
    assert df["score.broken"].isna().all()
    assert len(result.scorer_errors) == 1
    assert "a bug in the scorer" in result.scorer_errors[0]


async def test_an_exhausted_quota_is_an_error_row_at_once_not_waited_on(tmp_path: Path) -> None:
    quota = RateLimitedError("429 insufficient_quota: add credit", retry_after=None)
    quota.retryable = False  # as the error table marks an exhausted quota
    time = FakeTime()

    result = await Sweep(
        ["p0", "p1"],
        [scripted(quota, "a1")],
        store=tmp_path / "c.sqlite3",
        progress=False,
        concurrency=1,
        sleep=time.sleep,
    ).run()
    assert list(result.df["error_type"].fillna("")) == ["RateLimitedError", ""]
    assert "add credit" in result.df["error"][0]
    assert time.sleeps == []


async def test_a_row_refused_past_rate_limit_retries_is_an_error_and_the_sweep_ends(
    tmp_path: Path,
) -> None:
    time = FakeTime()
    refusals = [RateLimitedError("429 slow down", retry_after=1.0) for _ in range(4)]
    result = await Sweep(
        ["p0", "p1"],
        [scripted(*refusals, "a1")],
        store=tmp_path / "c.sqlite3",
        progress=False,
        concurrency=1,
        rate_limit_retries=3,
        sleep=time.sleep,
        clock=time.clock,
    ).run()
    assert list(result.df["error_type"].fillna("")) == ["RateLimitedError", ""]
    assert "gave up on it" in result.df["error"][0]
    assert "rate_limit_retries" in result.df["error"][0]
    assert list(result.df["text"].fillna("")) == ["", "a1"]
