"""`SweepView`: a sweep's grid filling live, a cell's detail and trace, the summary and charts.

The grid has a row per prompt and a column per model and parameter set; a cell is the
mean score of its calls (and n, with repeats), coloured from red (0) to green (1), grey
and struck through when every call failed, empty while pending. Clicking a cell shows
its calls in full below the grid: the answer, scores, error, tokens, cost, latency and
the call's trace (a `TraceView` of its span). Under it, once the sweep has finished: the
summary (`llmgine.sweep.summarize`), cost against score with the Pareto front marked, and
the latency of each model.

Responsive at any size: the grid is an anywidget (``static/sweep_grid.js``) that is sent
one page of prompts (``page_size``, 50) at a time, coloured in Python, as one JSON string;
taking a row in is O(1), and a refresh draws only the page, and only when a row on it
changed. Refreshes are throttled to one every ``refresh_interval`` (0.1 s).

A run comes apart as `CompareView`'s does, because widgets are not thread-safe and the
magics run the sweep on their own loop thread: `run_emitting` runs the sweep and only
*emits* `SweepUpdate`s, `apply_update` takes one into the view's state, and `refresh`
shows that state; ``await view.run()`` does all three on the awaiting loop's thread.
"""

from __future__ import annotations

import asyncio
import base64
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from html import escape
from typing import Any, Literal

import anywidget
import ipywidgets as widgets  # type: ignore[import-untyped]
import plotly.graph_objects as go  # type: ignore[import-untyped]
import traitlets

from llmgine import observability
from llmgine.notebook._static_html import asset
from llmgine.notebook._static_image import Chart, png_html
from llmgine.notebook._sweep_charts import (
    grid_html,
    latency_figure,
    scatter_figure,
    summary_html,
    summary_text,
)
from llmgine.notebook._sweep_detail import TraceViews
from llmgine.notebook._sweep_grid import Column, GridState
from llmgine.sweep import Sweep, SweepResult, summarize

__all__ = ["SweepGrid", "SweepUpdate", "SweepView"]

DEFAULT_PAGE_SIZE = 50
HTML_ROWS = 30  # prompts in the static HTML of a saved notebook
TEXT_ROWS = 20  # ... and in its text
_COMPACT = (",", ":")


@dataclass(frozen=True)
class SweepUpdate:
    """What a run emits: a completed ``row`` (the ``df``'s columns), or ``finished``."""

    kind: Literal["row", "finished"]
    row: dict[str, Any] | None = None
    result: SweepResult | None = None


class SweepGrid(anywidget.AnyWidget):
    """The grid's front end: one page of prompts, coloured (see `SweepView`)."""

    _esm = asset("sweep_grid.js")
    _css = asset("sweep_grid.css")

    columns = traitlets.List(traitlets.Unicode()).tag(sync=True)
    # One JSON string: encoded in C, not walked item by item by ipywidgets.
    page_json = traitlets.Unicode("[]").tag(sync=True)
    status = traitlets.Unicode("").tag(sync=True)
    score_names = traitlets.List(traitlets.Unicode()).tag(sync=True)
    score = traitlets.Unicode("").tag(sync=True)
    offset = traitlets.Int(0).tag(sync=True)
    page_size = traitlets.Int(DEFAULT_PAGE_SIZE).tag(sync=True)
    total = traitlets.Int(0).tag(sync=True)
    scale: traitlets.List[float] = traitlets.List([0.0, 1.0]).tag(sync=True)  # red .. green
    selected: traitlets.List[int] = traitlets.List().tag(sync=True)  # [prompt_id, column] clicked


class SweepView(widgets.VBox):  # type: ignore[misc]  # ipywidgets is untyped
    """A sweep's grid, filled live as its calls complete, with each cell's detail, the
    summary, cost against score (Pareto front marked) and latencies.

    Args:
        sweep: the `llmgine.sweep.Sweep` to run (or None, with `from_result`).
        page_size: prompts drawn at once (the grid pages through the rest).
        refresh_interval: seconds between redraws at most while the sweep runs.
        score: the score that colours the grid (default: the first scorer's).
        clock: the clock the throttle reads (injectable for tests).

    Example:
        view = SweepView(Sweep(rows, ["demo:a", "demo:b"], template="{q}",
                               scorers=[contains()]))
        display(view)
        result = await view.run()     # the SweepResult; also view.result
        SweepView.from_result(result)  # a finished sweep, shown again
    """

    def __init__(
        self,
        sweep: Sweep | None = None,
        *,
        page_size: int = DEFAULT_PAGE_SIZE,
        refresh_interval: float = 0.1,
        score: str | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if page_size < 1:
            raise ValueError(f"page_size is at least 1, got {page_size}")
        if refresh_interval < 0:
            raise ValueError(f"refresh_interval cannot be negative, got {refresh_interval}")
        self.sweep = sweep
        self.refresh_interval = refresh_interval
        self.result: SweepResult | None = None
        self._clock = clock
        self._started = False
        prompts: list[tuple[int, str]] = []
        columns: list[Column] = []
        names: list[str] = []
        if sweep is not None:
            prompts = [(i, str(row["prompt"])) for i, row in enumerate(sweep.inputs)]
            columns = [
                Column(m.spec, json.dumps(p, sort_keys=True, default=str))
                for m in sweep.models
                for p in sweep.param_sets
            ]
            names = [str(s.name) for s in sweep.scorers]
            if score is not None and score not in names:
                raise ValueError(
                    f"score={score!r} names no scorer of the sweep; its scorers: "
                    f"{', '.join(names) or 'none'}"
                )
            self.total = len(prompts) * len(columns) * sweep.repeats
        else:
            self.total = 0
        self.state = GridState(prompts, columns)
        self.renders = 0  # pages drawn
        self.rows_rendered = 0  # grid rows in the last page drawn
        self._page_dirty = True
        self._selected: tuple[int, int] | None = None
        self._detail_dirty = False
        self._drawn_result: tuple[int, str] | None = None
        self._charts: dict[str, tuple[str, Chart]] = {}
        self._summary: tuple[SweepResult, Any] | None = None
        self._traces: TraceViews = TraceViews()
        self.grid = SweepGrid(page_size=page_size, score_names=names, score=score or "")
        if score is None and names:
            self.grid.score = names[0]
        self.detail = widgets.HTML(
            '<i class="llmgine-sweep-hint">Click a cell for its answers and trace.</i>'
        )
        self.trace_box = widgets.VBox()
        self.summary_box = widgets.HTML()
        self.scatter = go.FigureWidget()
        self.latency = go.FigureWidget()
        # Side by side where they fit, one under the other where they do not.
        charts = widgets.HBox(
            [self.scatter, self.latency], layout=widgets.Layout(flex_flow="row wrap")
        )
        super().__init__([self.grid, self.detail, self.trace_box, self.summary_box, charts])
        self.add_class("llmgine-sweep")
        self.grid.observe(self._on_select, names=["selected"])
        self.grid.observe(self._on_page, names=["offset", "score"])
        self.refresh()

    @classmethod
    def from_result(cls, result: SweepResult, **options: Any) -> SweepView:
        """A view of a finished sweep (e.g. a `SweepResult` read back from Parquet)."""
        view = cls(None, **options)
        view.total = result.total
        for row in result.df.to_dict("records"):
            view.apply_update(SweepUpdate("row", row=row))
        view.apply_update(SweepUpdate("finished", result=result))
        view.refresh()
        return view

    # -- running -----------------------------------------------------------------------

    async def run(self) -> SweepResult:
        """Run the sweep, filling the grid as each call completes; returns its result."""
        loop = asyncio.get_running_loop()
        last = -math.inf
        pending: asyncio.TimerHandle | None = None

        def flush() -> None:
            nonlocal last, pending
            pending = None
            self.refresh()
            last = self._clock()

        def emit(update: SweepUpdate) -> None:
            nonlocal pending
            self.apply_update(update)
            wait = self.refresh_interval - (self._clock() - last)
            if wait <= 0:
                flush()
            elif pending is None:  # shown within the interval even if no row follows
                pending = loop.call_later(wait, flush)

        try:
            return await self.run_emitting(emit)
        finally:
            if pending is not None:
                pending.cancel()
            self.refresh()

    async def run_emitting(self, emit: Callable[[SweepUpdate], None]) -> SweepResult:
        """Run the sweep as `run` does, without touching the widgets: each completed row,
        then the end, is passed to ``emit`` (on this loop's thread) as a `SweepUpdate`,
        for the caller to hand to `apply_update` and `refresh` on the widgets' thread."""
        if self.sweep is None:
            raise RuntimeError("this SweepView shows a finished sweep; it has nothing to run")
        if self._started:
            raise RuntimeError("this SweepView has already run; make a new one to run again")
        self._started = True
        result = await self.sweep.run(on_row=lambda row: emit(SweepUpdate("row", row=row)))
        emit(SweepUpdate("finished", result=result))
        return result

    def apply_update(self, update: SweepUpdate) -> None:
        """Take one update into the view's state (shown at the next `refresh`); O(1)."""
        if update.kind == "finished":
            self.result = update.result
            self._page_dirty = True  # the status line and the charts change
            return
        if update.row is None:
            return
        at, column = self.state.add(update.row)
        offset = self.grid.offset
        if offset <= at < offset + self.grid.page_size:
            self._page_dirty = True
        prompt_id = int(update.row["prompt_id"])
        if self._selected == (prompt_id, column):
            self._detail_dirty = True

    # -- showing -----------------------------------------------------------------------

    def status(self) -> str:
        if self.result is not None:
            return str(self.result)
        state = self.state
        total = f" of {self.total:,}" if self.total else ""
        return f"{state.rows:,}{total} rows · {state.errors:,} errors"

    @property
    def score(self) -> str | None:
        """The score that colours the grid and the scatter (None before any score)."""
        return self.grid.score or None

    def refresh(self) -> None:
        """Show the current state (on the widgets' thread): the page of the grid if a row
        on it changed, the selected cell's detail, and the charts once finished."""
        names = self.state.score_names
        with self.grid.hold_sync():
            for name in names:
                if name not in self.grid.score_names:
                    self.grid.score_names = [*self.grid.score_names, name]
            if not self.grid.score and self.grid.score_names:
                self.grid.score = self.grid.score_names[0]
            labels = self.state.labels()
            if labels != self.grid.columns:
                self.grid.columns = labels
            self.grid.total = len(self.state.prompts)
            scale = self.state.scales.get(self.score or "")
            bounds = [round(b, 4) for b in (scale.bounds if scale else (0.0, 1.0))]
            if bounds != self.grid.scale:
                self.grid.scale = bounds
            self.grid.status = self.status()
            if self._page_dirty:
                page = self.state.page(self.grid.offset, self.grid.page_size, self.score)
                self.grid.page_json = json.dumps(page, ensure_ascii=False, separators=_COMPACT)
                self.renders += 1
                self.rows_rendered = len(page)
                self._page_dirty = False
        if self._detail_dirty and self._selected is not None:
            self._show_detail()
        if self.result is not None:
            self._draw_finished()

    def _on_page(self, change: dict[str, Any]) -> None:
        self._page_dirty = True
        self.refresh()

    def _on_select(self, change: dict[str, Any]) -> None:
        chosen = change["new"]
        if isinstance(chosen, list) and len(chosen) == 2:
            self.select(int(chosen[0]), int(chosen[1]))

    def select(self, prompt_id: int, column: int) -> None:
        """Show the calls of prompt ``prompt_id`` in ``column`` below the grid (what a
        click on that cell does)."""
        if self.state.position(prompt_id) is None or not 0 <= column < len(self.state.columns):
            raise ValueError(
                f"no cell for prompt {prompt_id} in column {column}: the grid has "
                f"{len(self.state.prompts)} prompts and {len(self.state.columns)} columns"
            )
        self._selected = (prompt_id, column)
        if self.grid.selected != [prompt_id, column]:
            self.grid.selected = [prompt_id, column]
        self._show_detail()

    def selected_rows(self) -> list[dict[str, Any]]:
        """The rows (one per repeat) of the selected cell; empty when none is selected."""
        if self._selected is None:
            return []
        at = self.state.position(self._selected[0])
        cell = None if at is None else self.state.cell(at, self._selected[1])
        return [] if cell is None else list(cell.rows)

    def _show_detail(self) -> None:
        from llmgine.notebook._sweep_detail import detail_html, trace_for

        self._detail_dirty = False
        if self._selected is None:
            return
        prompt_id, column = self._selected
        at = self.state.position(prompt_id)
        prompt = "" if at is None else self.state.prompts[at][1]
        label = self.state.labels()[column]
        rows = self.selected_rows()
        self.detail.value = detail_html(prompt, label, rows)
        self.trace_box.children = trace_for(rows, observability.current(), self._traces)

    def close(self) -> None:
        """Close the view's widgets and the trace views its clicks opened."""
        traces = getattr(self, "_traces", None)
        if traces is not None:
            traces.close()
        for part in ("grid", "detail", "trace_box", "summary_box", "scatter", "latency"):
            owned = getattr(self, part, None)
            if owned is not None:
                owned.close()
        super().close()

    # -- the summary and charts (once finished) -----------------------------------------

    def summary(self) -> Any:
        """`llmgine.sweep.summarize` of the rows so far (a DataFrame per model x params)."""
        if self.result is None:
            raise RuntimeError("the summary is made once the sweep has finished: run it first")
        # Made once per result: its bootstrap is the costliest thing the view does.
        if self._summary is None or self._summary[0] is not self.result:
            self._summary = (self.result, summarize(self.result.df))
        return self._summary[1]

    def figures(self) -> tuple[Any, Any]:
        """The cost-vs-score scatter (Pareto front marked) and the latency boxes, as plotly
        ``Figure``s, once the sweep has finished."""
        summary = self.summary()
        assert self.result is not None  # summary() raised otherwise
        return scatter_figure(summary, self.score), latency_figure(self.result.df, self.state)

    def charts(self) -> list[Chart]:
        """The two figures as `llmgine.notebook.chart`s: each carries a PNG of itself."""
        made = []
        for name, figure in zip(("scatter", "latency"), self.figures(), strict=True):
            key = figure.to_json()
            known = self._charts.get(name)
            if known is None or known[0] != key:
                self._charts[name] = known = (key, Chart(figure))
            made.append(known[1])
        return made

    def _draw_finished(self) -> None:
        assert self.result is not None
        key = (id(self.result), self.score or "")  # redrawn for another score
        if key == self._drawn_result:
            return
        self._drawn_result = key
        summary = self.summary()
        self.summary_box.value = summary_html(summary, self.state.score_names)
        scatter, latency = self.figures()
        for widget, figure in ((self.scatter, scatter), (self.latency, latency)):
            with widget.batch_update():
                widget.data = ()
                widget.add_traces(list(figure.data))
                widget.layout = figure.layout

    # -- text and HTML, for saved notebooks ----------------------------------------------

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any]:
        # The live widget, and for a saved notebook (GitHub, nbviewer, nbval) the grid,
        # the summary and both charts as HTML (PNGs inside, once finished), the
        # cost-vs-score chart as image/png too, and the whole as text.
        bundle: dict[str, Any] = super()._repr_mimebundle_(**kwargs) or {}
        bundle["text/plain"] = repr(self)
        bundle["text/html"] = self._repr_html_()
        png = self.charts()[0].png() if self.result is not None else None
        if png is not None:
            bundle["image/png"] = base64.b64encode(png).decode("ascii")
        return bundle

    def _repr_html_(self) -> str:
        parts = [
            f'<div class="llmgine-sweep"><p><b>Sweep</b> · {escape(self.status())}</p>',
            grid_html(self.state, self.score, HTML_ROWS),
        ]
        if self.result is not None:
            parts.append(summary_html(self.summary(), self.state.score_names))
            for chart in self.charts():
                parts.append(png_html(chart.png(), str(chart.figure.layout.title.text)))
        return "".join(parts) + "</div>"

    def __repr__(self) -> str:
        lines = [f"SweepView: {self.status()}"]
        if self.state.prompts:
            labels = self.state.labels()
            lines.append("prompt | " + " | ".join(labels))
            for row in self.state.page(0, TEXT_ROWS, self.score):
                cells = " | ".join(c[0] or "…" for c in row["cells"])
                lines.append(f"{row['prompt'][:60]} | {cells}")
            if len(self.state.prompts) > TEXT_ROWS:
                lines.append(f"(the first {TEXT_ROWS} of {len(self.state.prompts)} prompts)")
        if self.result is not None:
            lines += ["", summary_text(self.summary(), self.state.score_names)]
        return "\n".join(lines)
