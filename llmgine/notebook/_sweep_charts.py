"""`SweepView`'s parts below the grid, as plain functions of the results: the summary
table (`llmgine.sweep.summarize`), the cost-vs-score scatter with its Pareto front, the
latency distributions, and the grid as static HTML for saved notebooks."""

from __future__ import annotations

import math
from html import escape
from typing import Any

import plotly.graph_objects as go  # type: ignore[import-untyped]

from llmgine.notebook._sweep_grid import (
    ERROR_COLOUR,
    Column,
    GridState,
    pareto_front,
    score_colour,
)

__all__ = [
    "FRONT_COLOUR",
    "grid_html",
    "latency_figure",
    "scatter_figure",
    "summary_html",
    "summary_text",
]

FRONT_COLOUR = "#d62728"
_POINT_COLOUR = "#4c78a8"
_CHART_LAYOUT: dict[str, Any] = {
    "height": 340,
    "margin": {"l": 60, "r": 140, "t": 40, "b": 50},  # room on the right for labels
    "title": {"font": {"size": 13}},
}


def _label(row: Any, several_params: bool) -> str:
    return Column(str(row["model"]), str(row["params"])).label(several_params)


def _several(summary: Any) -> bool:
    return bool(summary["params"].nunique() > 1) if len(summary) else False


def _money(value: float) -> str:
    return "unknown" if math.isnan(value) else f"${value:.4f}"


def _ms(value: float) -> str:
    return "" if math.isnan(value) else f"{value:,.0f}"


def _score_cell(row: Any, score: str) -> str:
    mean = float(row.get(f"score.{score}.mean", math.nan))
    if math.isnan(mean):
        return ""
    low = float(row.get(f"score.{score}.ci_low", math.nan))
    high = float(row.get(f"score.{score}.ci_high", math.nan))
    interval = "" if math.isnan(low) else f" [{low:.2f}, {high:.2f}]"
    return f"{mean:.2f}{interval}"


def _summary_rows(summary: Any, scores: list[str]) -> tuple[list[str], list[list[str]]]:
    several = _several(summary)
    head = ["model", "calls", "errors"]
    head += [f"{s} (95% CI)" for s in scores]
    head += ["cost", "cost/call", "latency p50 ms", "p95 ms"]
    rows = []
    for _, row in summary.iterrows():
        cells = [_label(row, several), str(row["calls"]), str(row["errors"])]
        cells += [_score_cell(row, s) for s in scores]
        cells += [
            _money(float(row["cost_usd"])),
            _money(float(row["cost_per_call"])),
            _ms(float(row["latency_p50"])),
            _ms(float(row["latency_p95"])),
        ]
        rows.append(cells)
    return head, rows


def summary_html(summary: Any, scores: list[str]) -> str:
    """The per-model summary (``summarize``'s frame) as an HTML table."""
    head, rows = _summary_rows(summary, scores)
    th = "".join(f"<th>{escape(h)}</th>" for h in head)
    body = "".join(
        "<tr>" + "".join(f"<td>{escape(c)}</td>" for c in cells) + "</tr>" for cells in rows
    )
    return (
        '<table class="llmgine-sweep-summary"><caption style="text-align:left"><b>Summary'
        "</b> (mean score with a 95% bootstrap interval)</caption>"
        f"<thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>"
    )


def summary_text(summary: Any, scores: list[str]) -> str:
    """The summary as aligned text columns, for ``text/plain``."""
    head, rows = _summary_rows(summary, scores)
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
        for r in [head, *rows]
    )


def _padded(values: list[float], low: float, high: float) -> list[float]:
    """An axis range holding ``values`` and [low, high], with room for the labels."""
    lo, hi = min([low, *values]), max([high, *values])
    span = (hi - lo) or 1.0
    return [lo - 0.08 * span, hi + 0.15 * span]


def scatter_figure(summary: Any, score: str | None) -> Any:
    """Mean cost per call against mean ``score``, a point per model and parameter set; the
    Pareto front (the lowest cost for each score level) red and joined. A point whose cost
    is unknown is drawn open at cost 0, labelled so, and is never on the front."""
    several = _several(summary)
    labels = [_label(r, several) for _, r in summary.iterrows()]
    column = f"score.{score}.mean"
    scores = [float(v) for v in summary[column]] if column in summary else [math.nan] * len(labels)
    costs = [float(v) for v in summary["cost_per_call"]] if len(summary) else []
    front = pareto_front(costs, scores)
    scored = [i for i in range(len(labels)) if not math.isnan(scores[i])]
    known = [i for i in scored if not math.isnan(costs[i])]
    unknown = [i for i in scored if math.isnan(costs[i])]
    hover = "%{text}<br>cost/call $%{x:.6g}<br>" + f"{score}: " + "%{y:.3f}<extra></extra>"

    def points(name: str, chosen: list[int], marker: dict[str, Any], **extra: Any) -> Any:
        return go.Scatter(
            name=name,
            x=[0.0 if math.isnan(costs[i]) else costs[i] for i in chosen],
            y=[scores[i] for i in chosen],
            text=[labels[i] for i in chosen],
            mode="markers+text",
            textposition="middle right",
            cliponaxis=False,
            marker={"size": 11, **marker},
            hovertemplate=hover,
            **extra,
        )

    on_front = sorted((i for i in known if front[i]), key=lambda i: costs[i])
    data = [
        points("on the Pareto front", on_front, {"color": FRONT_COLOUR}),
        points(
            "beaten on cost and score", [i for i in known if not front[i]], {"color": _POINT_COLOUR}
        ),
        go.Scatter(
            name="the front",
            x=[costs[i] for i in on_front],
            y=[scores[i] for i in on_front],
            mode="lines",
            line={"color": FRONT_COLOUR, "dash": "dash", "shape": "hv"},
            hoverinfo="skip",
            showlegend=len(on_front) > 1,
        ),
    ]
    if unknown:
        unpriced = points(
            "cost unknown (drawn at 0)",
            unknown,
            {"symbol": "circle-open", "color": "#7f7f7f"},
        )
        unpriced.text = [f"{labels[i]} (cost unknown)" for i in unknown]
        data.append(unpriced)
    title = f"Cost vs {score}: the Pareto front in red" if score else "Cost vs score (no scores)"
    layout = dict(_CHART_LAYOUT, title=dict(_CHART_LAYOUT["title"], text=title))
    x_values = [costs[i] for i in known] + [0.0] * len(unknown)
    return go.Figure(
        data=data,
        layout=go.Layout(
            **layout,
            xaxis={
                "title": {"text": "mean cost per call (USD)"},
                "range": _padded(x_values, 0.0, max(x_values, default=0.0)),
                "exponentformat": "e",
                "zeroline": True,
            },
            yaxis={
                "title": {"text": f"mean {score}" if score else "score"},
                "range": _padded([scores[i] for i in scored], 0.0, 1.0),
            },
            legend={"orientation": "h", "y": -0.3},
        ),
    )


def latency_figure(df: Any, grid: GridState) -> Any:
    """Each model and parameter set's latencies (ms) as a box with its points."""
    labels = grid.labels()
    data = []
    for column, label in zip(grid.columns, labels, strict=True):
        rows = df[(df["model"] == column.model) & (df["params"] == column.params)]
        values = [float(v) for v in rows["latency_ms"] if not math.isnan(float(v))]
        data.append(go.Box(name=label, y=values, boxpoints="outliers", showlegend=False))
    layout = dict(_CHART_LAYOUT, title=dict(_CHART_LAYOUT["title"], text="Latency per model"))
    return go.Figure(
        data=data, layout=go.Layout(**layout, yaxis={"title": {"text": "latency (ms)"}})
    )


def grid_html(grid: GridState, score: str | None, rows: int) -> str:
    """The grid's first ``rows`` prompts as a static, coloured HTML table."""
    head = "".join(f"<th>{escape(label)}</th>" for label in grid.labels())
    body = []
    for row in grid.page(0, rows, score):
        cells = "".join(
            f'<td class="llmgine-sweep-cell" data-kind="{kind}" title="{escape(title)}" '
            f'style="background:{background};text-align:center">{escape(text)}</td>'
            for text, background, kind, title in row["cells"]
        )
        body.append(f"<tr><td>{escape(row['prompt'])}</td>{cells}</tr>")
    scale = grid.scales.get(score or "")
    low, high = scale.bounds if scale else (0.0, 1.0)
    legend = (
        f"<p><small>{escape(score or 'score')}: {low:g} "
        f'<span style="display:inline-block;width:6em;height:0.8em;background:linear-gradient'
        f"(to right, {score_colour(low, low, high)}, {score_colour((low + high) / 2, low, high)}, "
        f'{score_colour(high, low, high)})"></span> {high:g} · '
        f'<span style="background:{ERROR_COLOUR};color:#fff;text-decoration:line-through">'
        "✕ failed</span> · empty: pending</small></p>"
    )
    more = len(grid.prompts) - rows
    note = (
        f"<p><small>the first {rows} of {len(grid.prompts)} prompts</small></p>" if more > 0 else ""
    )
    return (
        legend + '<table class="llmgine-sweep-grid llmgine-sweep-static">'
        f"<thead><tr><th>prompt</th>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
        f"{note}"
    )
