"""The state behind `SweepView`'s grid, without widgets: prompts x columns of cells.

A column is one model with one parameter set; a cell holds the rows of one prompt in one
column (a row per repeat). Taking a row in is O(1) (an append and a running min/max of
each score), so a sweep of 10,000 rows costs the view nothing per row; what is drawn is a
*page* of prompts (`GridState.page`), whose cells are summarised (mean score, n, errors)
and coloured only when drawn, so a refresh costs the page, never the sweep.

`pareto_front` is the cost-vs-score chart's front: the points no other point beats on
both cost and score.
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from llmgine._redact import redact_text

__all__ = [
    "ERROR_COLOUR",
    "PENDING_COLOUR",
    "Cell",
    "CellView",
    "Column",
    "GridState",
    "ScoreScale",
    "pareto_front",
    "score_colour",
]

# Red (0) -> yellow (0.5) -> green (1): ColorBrewer's RdYlGn ends, readable with black
# text across the whole range. Errors are grey and struck through, never on the scale.
_STOPS = ((0.0, (0xD7, 0x30, 0x27)), (0.5, (0xFE, 0xE0, 0x8B)), (1.0, (0x1A, 0x98, 0x50)))
ERROR_COLOUR = "#5f5f5f"
PENDING_COLOUR = "transparent"
UNSCORED_COLOUR = "#e8e8e8"
PROMPT_CHARS = 120  # a prompt's text in the grid (the detail panel has all of it)

Kind = Literal["pending", "done", "partial", "error", "unscored"]


def score_colour(value: float, low: float = 0.0, high: float = 1.0) -> str:
    """The colour of ``value`` on the scale from ``low`` (red) to ``high`` (green)."""
    t = 0.5 if high <= low else min(1.0, max(0.0, (value - low) / (high - low)))
    for (t0, c0), (t1, c1) in itertools.pairwise(_STOPS):
        if t <= t1:
            f = (t - t0) / (t1 - t0)
            r, g, b = (round(a + (b - a) * f) for a, b in zip(c0, c1, strict=True))
            return f"#{r:02x}{g:02x}{b:02x}"
    return "#{:02x}{:02x}{:02x}".format(*_STOPS[-1][1])  # pragma: no cover - t <= 1


@dataclass
class ScoreScale:
    """The range a score is coloured over: 0 to 1 while every value seen is in it (what
    the built-in scorers give), else the lowest to the highest value seen."""

    low: float = math.inf
    high: float = -math.inf

    def add(self, value: float) -> None:
        self.low, self.high = min(self.low, value), max(self.high, value)

    @property
    def bounds(self) -> tuple[float, float]:
        if (self.low >= 0.0 and self.high <= 1.0) or self.low > self.high:
            return 0.0, 1.0
        return self.low, self.high


@dataclass(frozen=True)
class Column:
    """One model with one parameter set (``params``: its JSON, as the ``params`` column)."""

    model: str
    params: str

    def label(self, several_params: bool) -> str:
        if not several_params:
            return self.model
        values = json.loads(self.params)
        shown = ", ".join(f"{k}={v}" for k, v in values.items()) or "defaults"
        return f"{self.model} · {shown}"


@dataclass
class Cell:
    """The rows of one prompt in one column (one per repeat), as the sweep gave them."""

    rows: list[dict[str, Any]] = field(default_factory=list)

    @property
    def errors(self) -> int:
        return sum(1 for r in self.rows if _text(r.get("error_type")))

    def scores(self, score: str) -> list[float]:
        return [v for r in self.rows if (v := _number(r.get(f"score.{score}"))) is not None]

    def mean(self, score: str) -> float | None:
        values = self.scores(score)
        return sum(values) / len(values) if values else None


@dataclass(frozen=True)
class CellView:
    """A cell as drawn: its text, colours, kind and tooltip."""

    text: str
    background: str
    kind: Kind
    title: str

    def as_list(self) -> list[str]:
        return [self.text, self.background, self.kind, self.title]


class GridState:
    """Prompts x columns of cells, filled a row at a time (see the module docstring)."""

    def __init__(self, prompts: Iterable[tuple[int, str]], columns: Iterable[Column]) -> None:
        self.prompts: list[tuple[int, str]] = []
        self.columns: list[Column] = []
        self._prompt_at: dict[int, int] = {}
        self._column_at: dict[Column, int] = {}
        self.cells: dict[tuple[int, int], Cell] = {}
        self.scales: dict[str, ScoreScale] = {}
        self.rows = 0
        self.errors = 0
        for prompt_id, prompt in prompts:
            self._prompt(prompt_id, prompt)
        for column in columns:
            self._column(column)

    def _prompt(self, prompt_id: int, prompt: str) -> int:
        at = self._prompt_at.get(prompt_id)
        if at is None:
            at = self._prompt_at[prompt_id] = len(self.prompts)
            self.prompts.append((prompt_id, prompt))
        return at

    def _column(self, column: Column) -> int:
        at = self._column_at.get(column)
        if at is None:
            at = self._column_at[column] = len(self.columns)
            self.columns.append(column)
        return at

    @property
    def score_names(self) -> list[str]:
        return list(self.scales)

    def position(self, prompt_id: int) -> int | None:
        """Where prompt ``prompt_id`` is in the grid (its row, from 0)."""
        return self._prompt_at.get(prompt_id)

    def add(self, row: dict[str, Any]) -> tuple[int, int]:
        """Take one row of the sweep in; returns its cell's (grid row, column)."""
        at = self._prompt(int(row["prompt_id"]), str(row.get("prompt", "")))
        column = self._column(Column(str(row["model"]), str(row.get("params") or "{}")))
        self.cells.setdefault((at, column), Cell()).rows.append(row)
        self.rows += 1
        self.errors += bool(_text(row.get("error_type")))
        for key, value in row.items():
            if isinstance(key, str) and key.startswith("score.") and "." not in key[6:]:
                scale = self.scales.setdefault(key[6:], ScoreScale())
                number = _number(value)
                if number is not None:
                    scale.add(number)
        return at, column

    def cell(self, at: int, column: int) -> Cell | None:
        return self.cells.get((at, column))

    def labels(self) -> list[str]:
        several = len({c.params for c in self.columns}) > 1
        return [c.label(several) for c in self.columns]

    def view(self, at: int, column: int, score: str | None) -> CellView:
        """How the cell at grid row ``at`` and ``column`` is drawn for ``score``."""
        cell = self.cells.get((at, column))
        if cell is None or not cell.rows:
            return CellView("", PENDING_COLOUR, "pending", "waiting for its calls")
        n, errors = len(cell.rows), cell.errors
        if errors == n:
            first = next(r for r in cell.rows if _text(r.get("error_type")))
            why = redact_text(f"{first.get('error_type')}: {_text(first.get('error')) or ''}")
            text = "✕ error" if n == 1 else f"✕ {errors} errors"
            return CellView(text, ERROR_COLOUR, "error", _clip(why, 300))
        count = f"n={n}" + (f", {errors} failed" if errors else "")
        mean = None if score is None else cell.mean(score)
        if score is None or mean is None:
            text = "no score" if n == 1 else f"no score ({count})"
            return CellView(text, UNSCORED_COLOUR, "unscored", "no score")
        low, high = self.scales[score].bounds if score in self.scales else (0.0, 1.0)
        text = f"{mean:.2f}" if n == 1 else f"{mean:.2f} ({count})"
        kind: Kind = "partial" if errors else "done"
        title = f"{score}: mean {mean:.3f} over {len(cell.scores(score))} of {n}"
        if errors:
            title += f"; {errors} failed"
        return CellView(text, score_colour(mean, low, high), kind, title)

    def page(self, offset: int, size: int, score: str | None) -> list[dict[str, Any]]:
        """Grid rows ``offset`` to ``offset + size``: each prompt with its cells drawn."""
        shown = []
        for at in range(max(0, offset), min(len(self.prompts), offset + size)):
            prompt_id, prompt = self.prompts[at]
            cells = [self.view(at, c, score).as_list() for c in range(len(self.columns))]
            shown.append({"id": prompt_id, "prompt": _clip(prompt, PROMPT_CHARS), "cells": cells})
        return shown


def pareto_front(costs: Sequence[float], scores: Sequence[float]) -> list[bool]:
    """Which points are on the cost-vs-score Pareto front: those that no other point
    matches or beats on both (costs no more and scores no less, one of them strictly),
    i.e. the lowest cost for each score level. A point with an unknown (NaN) cost or
    score is never on it; equal points are on it together."""
    if len(costs) != len(scores):
        raise ValueError(f"costs and scores differ in length: {len(costs)} and {len(scores)}")
    known = [i for i in range(len(costs)) if not (math.isnan(costs[i]) or math.isnan(scores[i]))]
    known.sort(key=lambda i: (costs[i], -scores[i]))
    front = [False] * len(costs)
    best, best_cost = -math.inf, math.nan
    for i in known:
        if scores[i] > best:
            front[i], best, best_cost = True, scores[i], costs[i]
        elif scores[i] == best and costs[i] == best_cost:
            front[i] = True
    return front


def _number(value: object) -> float | None:
    if value is None or isinstance(value, bool) or not isinstance(value, int | float):
        try:
            number = float(value)  # type: ignore[arg-type]  # numpy numbers, pandas NA
        except (TypeError, ValueError):
            return None
    else:
        number = float(value)
    return None if math.isnan(number) else number


def _text(value: object) -> str | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    text = str(value)
    return text if text and text not in ("nan", "<NA>") else None


def _clip(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
