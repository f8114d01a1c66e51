"""summarize() and paired_comparison() on hand-built results DataFrames with the contract's
columns; every random draw is seeded, so each number here is reproducible."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import pytest

from llmgine.sweep import _stats
from llmgine.sweep._stats import PairedComparison, paired_comparison, summarize


def results(
    scores: dict[str, list[float | None]],
    *,
    repeats: int = 1,
    params: str = "{}",
    extra: dict[str, dict[str, list[Any]]] | None = None,
) -> pd.DataFrame:
    """Results rows: for each model, its scores in prompt order (then repeat order)."""
    rows = []
    for model, values in scores.items():
        for i, value in enumerate(values):
            rows.append(
                {
                    "prompt_id": i // repeats,
                    "prompt": f"q{i // repeats}",
                    "model": model,
                    "params": params,
                    "repeat": i % repeats,
                    "text": "a",
                    "cost_usd": 0.001,
                    "latency_ms": 100.0 + i,
                    "ttft_ms": 10.0 + i,
                    "error_type": None,
                    "error": None,
                    "score.s": value,
                }
            )
    df = pd.DataFrame(rows)
    for name, per_model in (extra or {}).items():
        df[name] = [v for model in scores for v in per_model[model]]
    return df


def test_summary_columns_and_numbers() -> None:
    df = results({"m:a": [1.0, 0.0, 1.0, 1.0], "m:b": [0.0, 0.0, None, 1.0]})
    df.loc[1, ["error_type", "error"]] = ["RateLimitedError", "429"]
    df.loc[1, "cost_usd"] = math.nan
    summary = summarize(df)
    assert list(summary["model"]) == ["m:a", "m:b"]
    a, b = summary.iloc[0], summary.iloc[1]
    assert a["calls"] == 4
    assert a["errors"] == 1
    assert a["error_rate"] == 0.25
    assert a["score.s.mean"] == 0.75
    assert b["score.s.mean"] == pytest.approx(1 / 3)  # the missing score is left out
    assert a["cost_usd"] == pytest.approx(0.003)  # the unknown cost is not counted as 0
    assert a["cost_per_call"] == pytest.approx(0.001)
    assert a["latency_p50"] == pytest.approx(101.5)
    assert a["latency_p95"] == pytest.approx(np.percentile([100, 101, 102, 103], 95))
    assert a["ttft_p50"] == pytest.approx(11.5)
    assert a["score.s.ci_low"] <= a["score.s.mean"] <= a["score.s.ci_high"]
    assert set(summary.columns) >= {"params", "score.s.ci_low", "score.s.ci_high"}


def test_summary_is_seeded_and_groups_as_asked() -> None:
    rng = np.random.default_rng(1)
    df = results({"m:a": list(rng.random(30)), "m:b": list(rng.random(30))})
    first, again = summarize(df, seed=3), summarize(df, seed=3)
    pd.testing.assert_frame_equal(first, again)
    assert summarize(df, seed=4)["score.s.ci_low"].iloc[0] != first["score.s.ci_low"].iloc[0]
    overall = summarize(df, by="params")
    assert list(overall["calls"]) == [60]
    with pytest.raises(ValueError, match="not columns of the results"):
        summarize(df, by="temperature")


def test_ci_covers_the_true_mean_and_narrows_with_more_data() -> None:
    rng = np.random.default_rng(7)
    true_mean = 0.7  # Bernoulli(0.7) scores: correct 70% of the time
    covered, widths = 0, {}
    for trial in range(40):
        df = results({"m": list((rng.random(100) < true_mean).astype(float))})
        row = summarize(df, resamples=500, seed=trial).iloc[0]
        covered += row["score.s.ci_low"] <= true_mean <= row["score.s.ci_high"]
    assert covered >= 34  # a 95% interval: about 38 of 40; far fewer would be a bug
    for n in (50, 5000):
        df = results({"m": list((rng.random(n) < true_mean).astype(float))})
        row = summarize(df, seed=0).iloc[0]
        widths[n] = row["score.s.ci_high"] - row["score.s.ci_low"]
    assert widths[5000] < widths[50] / 5  # 100x the data: about a tenth of the width


def test_repeats_resample_prompts_not_rows() -> None:
    # Five prompts asked 20 times each, always scored the same: five independent values,
    # not a hundred. Resampling rows would give a far narrower (overconfident) interval.
    per_prompt = [0.0, 1.0, 1.0, 0.0, 1.0]
    df = results({"m": [v for v in per_prompt for _ in range(20)]}, repeats=20)
    clustered = summarize(df).iloc[0]
    as_rows = summarize(df.assign(repeat=0, prompt_id=range(len(df)))).iloc[0]
    assert clustered["score.s.mean"] == as_rows["score.s.mean"] == 0.6
    clustered_width = clustered["score.s.ci_high"] - clustered["score.s.ci_low"]
    rows_width = as_rows["score.s.ci_high"] - as_rows["score.s.ci_low"]
    assert clustered_width > 2 * rows_width


def test_no_rows_give_an_empty_summary_with_the_columns() -> None:
    empty = summarize(results({"m": [1.0]}).iloc[:0])
    assert len(empty) == 0
    assert {"model", "params", "calls", "score.s.mean", "latency_p95"} <= set(empty.columns)


def test_one_score_has_no_interval() -> None:
    row = summarize(results({"m": [1.0, None]})).iloc[0]
    assert row["score.s.mean"] == 1.0
    assert math.isnan(row["score.s.ci_low"])
    assert math.isnan(row["score.s.ci_high"])


def test_judge_cost_is_summed_and_its_reason_left_out() -> None:
    df = results(
        {"m": [1.0, 0.0]},
        extra={"score.s.cost_usd": {"m": [0.01, 0.02]}, "score.s.reason": {"m": ["ok", "no"]}},
    )
    summary = summarize(df)
    assert summary["score.s.cost_usd"].iloc[0] == pytest.approx(0.03)
    assert not any("reason" in c for c in summary.columns)
    assert "score.s.cost_usd.mean" not in summary.columns


def test_bootstrap_draws_in_chunks_match_one_draw(monkeypatch: pytest.MonkeyPatch) -> None:
    sums, counts = np.arange(50, dtype=float), np.ones(50)
    whole = _stats._bootstrap_ci(sums, counts, confidence=0.9, resamples=300, seed=1)
    monkeypatch.setattr(_stats, "_CHUNK_CELLS", 120)  # two resamples a chunk
    chunked = _stats._bootstrap_ci(sums, counts, confidence=0.9, resamples=300, seed=1)
    assert whole[0] < 24.5 < whole[1]
    assert chunked[0] < 24.5 < chunked[1]
    assert chunked == pytest.approx(whole, abs=3.0)


# Paired comparison


def paired(a: list[float], b: list[float], **kw: Any) -> PairedComparison:
    return paired_comparison(results({"A": list(a), "B": list(b)}), "A", "B", "s", **kw)


def test_a_real_difference_is_significant() -> None:
    rng = np.random.default_rng(11)
    base = rng.random(50)
    result = paired(list(base + 0.12 + rng.normal(0, 0.1, 50)), list(base))
    assert result.n == 50
    assert result.mean_difference == pytest.approx(0.12, abs=0.04)
    assert result.ci_low < result.mean_difference < result.ci_high
    assert result.ci_low > 0
    assert result.p_value < 0.001
    assert result.significant
    assert "Monte Carlo" in result.test
    text = str(result)
    assert text.startswith("A scores 0.1")
    assert "higher than B on score.s over 50 paired rows (95% CI" in text
    assert text.endswith("p < 0.001: significant at 0.05")


def test_no_difference_is_not_significant() -> None:
    rng = np.random.default_rng(12)
    base = rng.random(60)
    result = paired(list(base + rng.normal(0, 0.1, 60)), list(base + rng.normal(0, 0.1, 60)))
    assert result.p_value > 0.05
    assert not result.significant
    assert result.ci_low < 0 < result.ci_high
    assert "not significant at 0.05" in str(result)


def test_exact_enumeration_gives_the_known_p_value() -> None:
    # Six pairs all favour A by 1 (0/1 scores): of the 2^6 sign patterns only "all +" and
    # "all -" are as extreme, so p = 2/64. The two ties do not change sign.
    result = paired([1, 1, 1, 1, 1, 1, 0, 1], [0, 0, 0, 0, 0, 0, 0, 1])
    assert result.test == "paired sign-flip permutation test (exact, all 64 sign patterns)"
    assert result.p_value == 2 / 64
    assert result.n == 8
    assert result.mean_difference == 6 / 8
    assert result.significant
    five = paired([1, 1, 1, 1, 1, 0], [0, 0, 0, 0, 0, 0])  # 2/32 = 0.0625: not quite
    assert five.p_value == 2 / 32
    assert not five.significant
    two = paired([1, 1, 0], [0, 0, 0])  # two wins: 2 of 4 patterns as extreme
    assert two.p_value == 0.5
    assert not two.significant


def test_exact_and_monte_carlo_agree() -> None:
    rng = np.random.default_rng(5)
    a, b = list(rng.random(16) + 0.3), list(rng.random(16))
    exact = paired(a, b)
    assert "exact" in exact.test
    monkey = pytest.MonkeyPatch()
    monkey.setattr(_stats, "EXACT_LIMIT", 10)  # the same data by random flips,
    monkey.setattr(_stats, "_CHUNK_CELLS", 1000)  # drawn in many chunks
    try:
        sampled = paired(a, b)
    finally:
        monkey.undo()
    assert "Monte Carlo" in sampled.test
    assert sampled.p_value == pytest.approx(exact.p_value, abs=0.01)
    assert sampled.mean_difference == exact.mean_difference


def test_all_ties_give_p_one() -> None:
    result = paired([1, 0, 1], [1, 0, 1])
    assert result.p_value == 1.0
    assert result.mean_difference == 0
    assert not result.significant
    assert str(result).startswith("A scores the same as B")


def test_too_little_data_says_so() -> None:
    result = paired([1.0, None], [0.0, 1.0])  # type: ignore[list-item]
    assert result.n == 1
    assert result.test == "too little data"
    assert math.isnan(result.p_value)
    assert not result.significant
    assert "too little data" in str(result)
    assert "1 paired row " in str(result)


def test_repeats_of_one_prompt_are_too_little_data() -> None:
    df = results({"A": [1.0] * 5, "B": [0.0] * 5}, repeats=5)
    result = paired_comparison(df, "A", "B", "s")
    assert result.n == 5
    assert result.mean_difference == 1.0
    assert result.test == "too little data"
    assert math.isnan(result.p_value)
    assert "all repeats of one prompt" in str(result)


def test_pairs_are_matched_by_prompt_not_by_position() -> None:
    df = results({"A": [1.0, 0.0, 1.0], "B": [1.0, 0.0, 1.0]})
    df = pd.concat([df[df.model == "A"], df[df.model == "B"].iloc[::-1]])  # B reversed
    result = paired_comparison(df, "A", "B", "score.s")
    assert result.mean_difference == 0.0
    only_two = df.drop(index=df[(df.model == "B") & (df.prompt_id == 2)].index)
    assert paired_comparison(only_two, "A", "B", "s").n == 2


def test_repeats_flip_per_prompt() -> None:
    # 3 prompts x 10 repeats, A always 1 point better: 30 pairs but 3 independent units,
    # so the exact test has 2^3 patterns and p = 2/8, not a tiny p from 30 "pairs".
    df = results({"A": [1.0] * 30, "B": [0.0] * 30}, repeats=10)
    result = paired_comparison(df, "A", "B", "s")
    assert result.n == 30
    assert result.p_value == 0.25
    assert "8 sign patterns" in result.test


def test_by_params_pairs_within_each_model() -> None:
    df = pd.concat(
        [
            results({"m": [1.0, 1.0, 1.0]}, params='{"temperature": 0}'),
            results({"m": [0.0, 1.0, 0.0]}, params='{"temperature": 1}'),
        ]
    )
    result = paired_comparison(df, '{"temperature": 0}', '{"temperature": 1}', "s", by="params")
    assert result.n == 3
    assert result.mean_difference == pytest.approx(2 / 3)


def test_bad_arguments_say_what_works() -> None:
    df = results({"A": [1.0, 0.0], "B": [0.0, 0.0]})
    with pytest.raises(ValueError, match=r"'score.nope'.*\['score.s'\]"):
        paired_comparison(df, "A", "B", "nope")
    with pytest.raises(ValueError, match=r"'C' is not a value of 'model'.*\['A', 'B'\]"):
        paired_comparison(df, "A", "C", "s")
    with pytest.raises(ValueError, match="two different"):
        paired_comparison(df, "A", "A", "s")
    doubled = pd.concat([df, df])
    with pytest.raises(ValueError, match="more than one row"):
        paired_comparison(doubled, "A", "B", "s")
