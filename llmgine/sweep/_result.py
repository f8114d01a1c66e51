"""`SweepResult`: the rows of a sweep as a DataFrame, what it cost, and why it stopped."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "CALL_COLUMNS",
    "TEXT",
    "SweepResult",
    "param_names",
    "rows_frame",
    "score_columns",
]


def _text_dtype() -> Any:
    # pandas 3's "str" (missing values NaN); before pandas 3, "str" would write None as
    # "None", so text stays an object column there (as llmgine.observability's frames).
    import pandas as pd

    return "str" if int(pd.__version__.split(".")[0]) >= 3 else object


TEXT: Any = _text_dtype()
# An input, parameter or score-extra column's dtype, by what pandas infers of its values.
_INFERRED: dict[str, Any] = {
    "string": TEXT,
    "integer": "Int64",
    "floating": "float64",
    "mixed-integer-float": "float64",
    "boolean": "boolean",
}

# After prompt_id, prompt, input.*, model, params, param.*, repeat (see rows_frame).
# "text": TEXT; the others are pandas dtypes.
CALL_COLUMNS: dict[str, str] = {
    "text": "text",
    "tool_calls": "text",
    "finish_reason": "text",
    "input_tokens": "Int64",
    "output_tokens": "Int64",
    "cached_tokens": "Int64",
    "reasoning_tokens": "Int64",
    "cost_usd": "float64",
    "latency_ms": "float64",
    "ttft_ms": "float64",
    "error_type": "text",
    "error": "text",
    "cache_hit": "boolean",
    "original_cost_usd": "float64",
    "trace_id": "text",
    "span_id": "text",
}


def rows_frame(
    rows: list[dict[str, Any]],
    input_names: list[str],
    param_names: list[str],
    score_columns: list[tuple[str, bool]],
) -> Any:
    """The rows as a DataFrame with the contract's columns, in order, and dtypes.

    ``score_columns``: each scorer's columns in order, ``(name, True)`` for its score
    (float64) and ``(name, False)`` for each of its extra columns (dtype inferred)."""
    import pandas as pd

    columns: dict[str, str] = {"prompt_id": "int64", "prompt": "text"}
    columns.update({f"input.{n}": "infer" for n in input_names})
    columns.update({"model": "text", "params": "text"})
    columns.update({f"param.{n}": "infer" for n in param_names})
    columns["repeat"] = "int64"
    columns.update(CALL_COLUMNS)
    columns.update({c: "float64" if score else "infer" for c, score in score_columns})
    frame = pd.DataFrame(rows, columns=list(columns))
    for name, dtype in columns.items():
        if dtype == "infer":
            inferred = pd.api.types.infer_dtype(frame[name], skipna=True)
            typed = _INFERRED.get(inferred)
            if typed is not None:
                frame[name] = frame[name].astype(typed)
        elif dtype == "text":
            frame[name] = frame[name].astype(TEXT)
        elif dtype == "float64":
            frame[name] = pd.to_numeric(frame[name], errors="coerce").astype("float64")
        else:
            frame[name] = frame[name].astype(pd.api.types.pandas_dtype(dtype))
    return frame


@dataclass
class SweepResult:
    """What a sweep did.

    ``df``: one row per prompt x model x parameter set x repeat that was run (see
    `llmgine.sweep` for the columns). ``total``: how many rows the sweep had;
    ``stopped``: None when every row ran, else why it stopped early (``"budget"``);
    ``reason``: that in a sentence; ``spent_usd``: what the live calls cost (cache hits
    are free; calls of unknown price count 0), ``cached``: how many rows came from the
    store; ``scorer_errors``: each scorer failure (the row's score is then NaN).
    """

    df: Any
    total: int
    spent_usd: float
    stopped: str | None = None
    reason: str = ""
    cached: int = 0
    session_id: str = ""
    scorer_errors: list[str] = field(default_factory=list)

    @property
    def done(self) -> int:
        return len(self.df)

    def to_parquet(self, path: str | os.PathLike[str]) -> None:
        """Write ``df`` as Parquet (``pd.read_parquet`` gives the same dtypes back)."""
        self.df.to_parquet(path, index=False)

    def to_csv(self, path: str | os.PathLike[str]) -> None:
        """Write ``df`` as CSV."""
        self.df.to_csv(path, index=False)

    def __str__(self) -> str:
        errors = int(self.df["error_type"].notna().sum()) if len(self.df) else 0
        line = (
            f"sweep: {self.done} of {self.total} rows, {errors} errors, {self.cached} from "
            f"the cache, ${self.spent_usd:.4f} spent"
        )
        return f"{line}; stopped: {self.reason}" if self.stopped else line


def param_names(param_sets: list[dict[str, Any]]) -> list[str]:
    """The parameter names of a grid's parameter sets, in first-seen order."""
    return list(dict.fromkeys(k for p in param_sets for k in p))


def score_columns(scorer: Any) -> list[tuple[str, bool]]:
    """A scorer's columns: ``score.<name>`` (True: a score), then its extra columns."""
    extras = getattr(scorer, "extra_columns", ())
    return [(f"score.{scorer.name}", True), *((c, False) for c in extras)]
