"""Statistics on a sweep's results: a per-group summary with bootstrap confidence
intervals, and a paired comparison of two models on the same rows. Pure functions of the
results DataFrame (one row per prompt x model x parameter set x repeat); numpy and pandas
only.

Score columns are ``score.<name>`` with no further dot; ``score.<name>.cost_usd`` (a
judge's own cost) is summed, and other ``score.<name>.*`` columns (a judge's reason) are
left out.

**Why a bootstrap, and why by prompt.** The mean of a score says little without how sure
it is: on 50 prompts, 0.70 could well be 0.58 or 0.82. The percentile bootstrap resamples
the rows with replacement (``resamples`` times, seeded, so the numbers are reproducible),
takes the mean of each resample, and reads the interval off their percentiles. It assumes
no distribution, so it fits 0/1 scores and continuous ones alike. With repeats (the same
prompt asked more than once) the rows of one prompt are not independent: a hard prompt is
hard every time. Resampling rows would count the repeats as new evidence and give too
narrow an interval, so the bootstrap then resamples *prompts* (all the repeats of a drawn
prompt come along), the unit that really was sampled.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = ["PairedComparison", "paired_comparison", "score_columns", "summarize"]

EXACT_LIMIT = 16  # up to this many non-zero pairs, the permutation test enumerates all 2^n
MONTE_CARLO_FLIPS = 10_000
_CHUNK_CELLS = 2_000_000  # resamples x clusters drawn at once: bounds the memory (16 MB)


def score_columns(df: pd.DataFrame) -> list[str]:
    """The ``score.<name>`` columns of ``df`` (not the ``score.<name>.*`` extras)."""
    return [
        c
        for c in df.columns
        if isinstance(c, str) and c.startswith("score.") and "." not in c[len("score.") :]
    ]


def _as_by(by: str | Sequence[str]) -> list[str]:
    return [by] if isinstance(by, str) else list(by)


def _cluster_keys(df: pd.DataFrame, exclude: Sequence[str] = ()) -> list[str]:
    """What identifies one independent unit: the prompt (and the parameter set, model when
    they are not what is compared); every repeat of it belongs to the unit."""
    return [k for k in ("prompt_id", "params", "model") if k in df.columns and k not in exclude]


def _has_repeats(df: pd.DataFrame) -> bool:
    return "repeat" in df.columns and bool((pd.to_numeric(df["repeat"]) > 0).any())


def _bootstrap_ci(
    sums: np.ndarray, counts: np.ndarray, *, confidence: float, resamples: int, seed: int
) -> tuple[float, float]:
    """Percentile bootstrap of sum(sums)/sum(counts), resampling the clusters."""
    k = len(sums)
    if k < 2:
        return math.nan, math.nan
    rng = np.random.default_rng(seed)
    means = np.empty(resamples)
    chunk = max(1, _CHUNK_CELLS // k)
    for start in range(0, resamples, chunk):
        stop = min(resamples, start + chunk)
        idx = rng.integers(0, k, size=(stop - start, k))
        means[start:stop] = sums[idx].sum(axis=1) / counts[idx].sum(axis=1)
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return float(low), float(high)


def _clustered(
    values: pd.Series, df: pd.DataFrame, keys: list[str]
) -> tuple[np.ndarray, np.ndarray]:
    """Per-cluster sums and counts of the non-null ``values`` (each row its own cluster
    when there are no repeats)."""
    known = values.notna()
    numbers = pd.to_numeric(values[known]).astype(float)
    if not keys or not _has_repeats(df):
        return numbers.to_numpy(), np.ones(len(numbers))
    grouped = numbers.groupby([df.loc[known, k] for k in keys], dropna=False, sort=False)
    return grouped.sum().to_numpy(), grouped.count().to_numpy().astype(float)


def _floats(df: pd.DataFrame, column: str) -> pd.Series[float]:
    """``column`` as floats (NaN where unknown); all NaN when there is no such column."""
    if column not in df.columns:
        return pd.Series(math.nan, index=df.index, dtype=float)
    return pd.to_numeric(df[column], errors="coerce").astype(float)


def _quantile(df: pd.DataFrame, column: str, q: float) -> float:
    values = _floats(df, column).dropna()
    return float(values.quantile(q)) if len(values) else math.nan


def summarize(
    df: pd.DataFrame,
    *,
    by: str | Sequence[str] = ("model", "params"),
    confidence: float = 0.95,
    resamples: int = 2000,
    seed: int = 0,
) -> pd.DataFrame:
    """One row per group (``by``: by default each model and parameter set) with:

    ``calls``, ``errors`` (rows with an ``error_type``), ``error_rate``; for each
    ``score.<name>`` column ``score.<name>.mean`` and its ``.ci_low`` / ``.ci_high`` (a
    ``confidence`` percentile bootstrap over the rows with a score, ``resamples`` draws,
    seeded by ``seed``; over prompts when there are repeats, see the module docstring;
    NaN with fewer than two), ``score.<name>.cost_usd`` for a judge's own cost (summed);
    ``cost_usd`` (the known costs summed, NaN when none is known), ``cost_per_call`` (their
    mean), ``latency_p50``, ``latency_p95`` and ``ttft_p50`` (milliseconds, over the rows
    that have them).
    """
    keys = _as_by(by)
    missing = [k for k in keys if k not in df.columns]
    if missing:
        raise ValueError(
            f"summarize(by=...) names {missing}, which are not columns of the results; "
            f"the columns are {list(df.columns)}"
        )
    if not 0 < confidence < 1:
        raise ValueError(f"confidence is a fraction between 0 and 1 (0.95), got {confidence}")
    if resamples < 1:
        raise ValueError(f"resamples must be at least 1, got {resamples}")
    scores = score_columns(df)
    judge_costs = [
        c
        for c in df.columns
        if isinstance(c, str) and c.startswith("score.") and c.endswith(".cost_usd")
    ]
    cluster = _cluster_keys(df, exclude=keys)
    records = []
    for group_key, group in df.groupby(keys, dropna=False, sort=True):
        values = group_key if isinstance(group_key, tuple) else (group_key,)
        record: dict[str, object] = dict(zip(keys, values, strict=True))
        calls = len(group)
        errors = int(group["error_type"].notna().sum()) if "error_type" in group else 0
        record.update(calls=calls, errors=errors, error_rate=errors / calls if calls else math.nan)
        for column in scores:
            sums, counts = _clustered(group[column], group, cluster)
            total = counts.sum()
            record[f"{column}.mean"] = float(sums.sum() / total) if total else math.nan
            low, high = _bootstrap_ci(
                sums, counts, confidence=confidence, resamples=resamples, seed=seed
            )
            record[f"{column}.ci_low"], record[f"{column}.ci_high"] = low, high
        for column in judge_costs:
            record[column] = float(_floats(group, column).sum(min_count=1))
        cost = _floats(group, "cost_usd")
        record["cost_usd"] = float(cost.sum(min_count=1))
        record["cost_per_call"] = float(cost.mean()) if cost.notna().any() else math.nan
        record["latency_p50"] = _quantile(group, "latency_ms", 0.5)
        record["latency_p95"] = _quantile(group, "latency_ms", 0.95)
        record["ttft_p50"] = _quantile(group, "ttft_ms", 0.5)
        records.append(record)
    if not records:  # no rows: the same columns, no groups
        columns = [*keys, "calls", "errors", "error_rate"]
        columns += [f"{c}.{stat}" for c in scores for stat in ("mean", "ci_low", "ci_high")]
        columns += [*judge_costs, "cost_usd", "cost_per_call"]
        return pd.DataFrame(columns=[*columns, "latency_p50", "latency_p95", "ttft_p50"])
    return pd.DataFrame.from_records(records)


@dataclass(frozen=True)
class PairedComparison:
    """The result of `paired_comparison`: ``str()`` of it is one sentence saying it all.

    ``mean_difference`` is mean(a - b) over the ``n`` pairs, with its bootstrap interval
    ``ci_low``..``ci_high`` at ``confidence``; ``p_value`` is the two-sided p-value of the
    ``test``; ``significant`` is ``p_value < alpha``. With fewer than two pairs, every
    number but ``n`` (and the means) is NaN, ``test`` is ``"too little data"`` and nothing
    is significant; so too when every pair is a repeat of one prompt.
    """

    a: str
    b: str
    score: str
    n: int
    mean_a: float
    mean_b: float
    mean_difference: float
    ci_low: float
    ci_high: float
    confidence: float
    p_value: float
    test: str
    significant: bool
    alpha: float = 0.05

    @property
    def sentence(self) -> str:
        rows = f"{self.n} paired row{'s' if self.n != 1 else ''}"
        if self.test == "too little data":
            one_prompt = ", all repeats of one prompt," if self.n >= 2 else ""
            return (
                f"{self.a} and {self.b} have {rows} with a {self.score}{one_prompt}: too "
                "little data to compare them (a paired comparison needs at least 2 prompts)"
            )
        d = self.mean_difference
        if d == 0:
            how = f"{self.a} scores the same as {self.b}"
        else:
            how = f"{self.a} scores {abs(d):.3g} {'higher' if d > 0 else 'lower'} than {self.b}"
        ci = f"{self.confidence:.0%} CI {self.ci_low:.3g} to {self.ci_high:.3g}"
        p = "p < 0.001" if self.p_value < 0.001 else f"p = {self.p_value:.3g}"
        verdict = (
            f"significant at {self.alpha:g}"
            if self.significant
            else f"not significant at {self.alpha:g} (the difference may be chance)"
        )
        return f"{how} on {self.score} over {rows} ({ci}), {p}: {verdict}"

    def __str__(self) -> str:
        return self.sentence


def _sign_flip_p(sums: np.ndarray, *, seed: int) -> tuple[float, str]:
    """Two-sided p-value of the paired sign-flip permutation test on per-unit sums of
    differences (the statistic: |sum of the signed sums|, i.e. |mean difference|)."""
    nonzero = sums[sums != 0]  # a zero's sign flips nothing: leaving it out changes no count
    m = len(nonzero)
    if m == 0:
        return 1.0, "paired sign-flip permutation test (every difference is zero)"
    observed = abs(nonzero.sum())
    slack = 1e-9 * np.abs(nonzero).sum()  # equal sums in floating point count as ties
    if m <= EXACT_LIMIT:
        signs = np.array(list(itertools.product((1.0, -1.0), repeat=m)))
        flipped = np.abs(signs @ nonzero)
        return float(np.mean(flipped >= observed - slack)), (
            f"paired sign-flip permutation test (exact, all {2**m} sign patterns)"
        )
    rng = np.random.default_rng(seed)
    hits = 0
    step = max(1, _CHUNK_CELLS // m)  # flips drawn at once: bounds the memory
    for start in range(0, MONTE_CARLO_FLIPS, step):
        count = min(step, MONTE_CARLO_FLIPS - start)
        signs = rng.choice((1.0, -1.0), size=(count, m))
        hits += int(np.sum(np.abs(signs @ nonzero) >= observed - slack))
    # (hits + 1) / (flips + 1): the observed pattern counts as one, so p is never 0.
    return (hits + 1) / (MONTE_CARLO_FLIPS + 1), (
        f"paired sign-flip permutation test (Monte Carlo, {MONTE_CARLO_FLIPS:,} seeded flips)"
    )


def paired_comparison(
    df: pd.DataFrame,
    a: str,
    b: str,
    score: str,
    *,
    by: str = "model",
    confidence: float = 0.95,
    resamples: int = 2000,
    alpha: float = 0.05,
    seed: int = 0,
) -> PairedComparison:
    """Is ``a`` better than ``b`` on ``score`` (``"exact"`` or ``"score.exact"``), on the
    same rows? ``a`` and ``b`` are values of the column ``by`` (two models, or two
    parameter sets with ``by="params"``).

    Rows of ``a`` and ``b`` are paired on the same ``prompt_id``, ``params`` (or ``model``
    when ``by="params"``) and ``repeat``; a pair where either score is missing is left
    out. The difference is a - b per pair; ``mean_difference`` is its mean, with a
    percentile bootstrap interval over the pairs (over prompts when there are repeats, as
    `summarize` does).

    **The test: a paired sign-flip permutation test.** If a and b were equally good, each
    pair's difference would be as likely to come out +d as -d. The test flips the signs of
    the differences in every way (exactly, all 2^n patterns, when at most 16 pairs differ
    from zero; else 10,000 seeded random flips) and asks how often the mean difference is
    at least as far from zero as the one observed: that fraction is the two-sided p-value
    (by random flips, (hits + 1) / (flips + 1), so it is never 0). Why this one: it
    assumes no normal distribution (a t-test does, and 0/1 scores on a few dozen prompts
    are far from normal), it serves 0/1 scores (where it is an exact McNemar-like test:
    only the pairs where one was right and the other wrong count) and continuous ones
    alike, and it needs only numpy. Pairs with a zero difference cannot change sign:
    they count in ``n`` and the mean but not in the number of patterns. With repeats the
    signs are flipped per prompt (its repeats' differences together), for the reason in
    the module docstring. Fewer than two pairs: a result that says there is too little
    data, not an error.
    """
    column = score if score.startswith("score.") else f"score.{score}"
    for needed in (by, column):
        if needed not in df.columns:
            raise ValueError(
                f"paired_comparison() needs the column {needed!r}, which the results do not "
                f"have; the score columns are {score_columns(df)}"
            )
    known = set(df[by].dropna().unique())
    for name in (a, b):
        if name not in known:
            raise ValueError(
                f"paired_comparison(): {name!r} is not a value of {by!r}; the values are "
                f"{sorted(map(str, known))}"
            )
    if a == b:
        raise ValueError(f"paired_comparison() compares two different {by} values, got {a!r} twice")
    keys = [k for k in ("prompt_id", "params", "model", "repeat") if k in df.columns and k != by]
    if "prompt_id" not in keys:
        raise ValueError("paired_comparison() pairs rows on 'prompt_id', which the results lack")
    sides = []
    for name in (a, b):
        side = df.loc[df[by] == name, [*keys, column]]
        if side.duplicated(keys).any():
            raise ValueError(
                f"paired_comparison(): {name!r} has more than one row for the same {keys}; "
                "pass by= a column that separates them, or filter the results first"
            )
        sides.append(side)
    pairs = sides[0].merge(sides[1], on=keys, suffixes=(".a", ".b"))
    pairs = pairs.dropna(subset=[f"{column}.a", f"{column}.b"])
    n = len(pairs)
    score_a = pd.to_numeric(pairs[f"{column}.a"]).astype(float)
    score_b = pd.to_numeric(pairs[f"{column}.b"]).astype(float)
    nan = math.nan
    diff = score_a - score_b
    sums, counts = _clustered(diff, pairs, [k for k in keys if k != "repeat"])
    if len(sums) < 2:  # under two pairs, or the repeats of a single prompt
        return PairedComparison(
            a, b, column, n,
            float(score_a.mean()) if n else nan, float(score_b.mean()) if n else nan,
            float(diff.mean()) if n else nan, nan, nan, confidence, nan,
            "too little data", False, alpha,
        )  # fmt: skip
    low, high = _bootstrap_ci(sums, counts, confidence=confidence, resamples=resamples, seed=seed)
    p_value, test = _sign_flip_p(sums, seed=seed)
    return PairedComparison(
        a=a,
        b=b,
        score=column,
        n=n,
        mean_a=float(score_a.mean()),
        mean_b=float(score_b.mean()),
        mean_difference=float(diff.mean()),
        ci_low=low,
        ci_high=high,
        confidence=confidence,
        p_value=p_value,
        test=test,
        significant=p_value < alpha,
        alpha=alpha,
    )
