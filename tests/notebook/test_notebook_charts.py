"""Notebook 03's charts say something offline: its committed outputs come from a run on
the free demo model (``nb_refresh`` runs offline), where a chart of what was billed is all
zeros, so the cost chart also prices the same tokens at a named real model's rates."""

from __future__ import annotations

import base64
from typing import Any

import numpy as np

from tests.notebook.nb_support import NOTEBOOKS, read_notebook

PLOTLY = "application/vnd.plotly.v1+json"


def charts(name: str) -> dict[str, dict[str, Any]]:
    """The plotly figures a notebook's committed outputs hold, by title."""
    found: dict[str, dict[str, Any]] = {}
    for cell in read_notebook(NOTEBOOKS / f"{name}.ipynb")["cells"]:
        for output in cell.get("outputs", []):
            spec = output.get("data", {}).get(PLOTLY)
            if spec is not None:
                found[spec["layout"]["title"]["text"]] = spec
    return found


def values(array: Any) -> list[float]:
    """A plotly data array: a list, or plotly's typed-array form (base64 ``bdata``)."""
    if isinstance(array, dict):
        raw = base64.b64decode(array["bdata"])
        return [float(v) for v in np.frombuffer(raw, dtype=np.dtype(array["dtype"]))]
    return [float(v) for v in array]


def test_the_cost_chart_shows_an_estimate_at_a_named_models_prices() -> None:
    figures = charts("03-traces-and-dataframes")
    [title] = [t for t in figures if t.startswith("Cost per model")]
    assert "estimate at gpt-4o-mini's prices" in title
    traces = {trace["name"]: trace for trace in figures[title]["data"]}
    assert set(traces) == {"cost (billed)", "estimate at gpt-4o-mini's prices"}
    assert values(traces["cost (billed)"]["y"]) == [0.0, 0.0]  # the demo is free
    estimate = values(traces["estimate at gpt-4o-mini's prices"]["y"])
    assert len(estimate) == 2  # one bar per demo model
    assert all(0 < usd < 0.01 for usd in estimate)  # a few hundred tokens at cents per 1M


def test_tokens_per_call_are_charted() -> None:
    figures = charts("03-traces-and-dataframes")
    traces = {trace["name"]: trace for trace in figures["Tokens per call"]["data"]}
    assert set(traces) == {"input_tokens", "output_tokens"}
    assert len(values(traces["output_tokens"]["y"])) == 9  # the magic's call and eight more
    assert all(tokens > 0 for tokens in values(traces["output_tokens"]["y"]))
