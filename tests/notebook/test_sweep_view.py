"""SweepView: the grid fills live, cells are coloured and clickable, the Pareto front is
right, and a 10,000-row sweep costs a bounded page per refresh."""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import random
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, cast

import pandas as pd
import pytest
from IPython.core.interactiveshell import InteractiveShell

from llmgine import observability
from llmgine.bus import MessageBus
from llmgine.errors import LLMTimeoutError, MalformedResponseError
from llmgine.llm import get_model
from llmgine.notebook import SweepView
from llmgine.notebook._static_html import asset
from llmgine.notebook._sweep_charts import scatter_figure
from llmgine.notebook._sweep_detail import NO_OBSERVABILITY
from llmgine.notebook._sweep_grid import (
    ERROR_COLOUR,
    PENDING_COLOUR,
    GridState,
    pareto_front,
    score_colour,
)
from llmgine.notebook._sweep_view import SweepUpdate
from llmgine.notebook._trace_view import TraceView
from llmgine.sweep import Sweep, SweepResult, contains, exact_match
from tests.deadline import DEADLINE
from tests.notebook.magics_helpers import make_shell

QUESTIONS = [
    {"q": "Capital of France?", "expected": "Paris"},
    {"q": "Capital of Italy?", "expected": "Rome"},
    {"q": "Capital of Spain?", "expected": "Madrid"},
]


@pytest.fixture(scope="module", autouse=True)
def shell() -> Iterator[InteractiveShell]:
    """Displays need a shell (its formatters make the text and HTML of a saved output)."""
    ip, made = make_shell()
    yield ip
    if made:
        InteractiveShell.clear_instance()


def _sweep(tmp_path: Path, answers: list[Any], **options: Any) -> Sweep:
    scripted = get_model("test:script", responses=answers, retry=False)
    return Sweep(
        QUESTIONS,
        [scripted],
        template="{q}",
        scorers=[contains(), exact_match()],
        store=tmp_path / "store.sqlite3",
        progress=False,
        stream=False,
        retries=0,  # a timeout is data at once, not retried from the script
        **options,
    )


def _page(view: SweepView) -> list[dict[str, Any]]:
    page: list[dict[str, Any]] = json.loads(view.grid.page_json)
    return page


def _kinds(view: SweepView) -> list[str]:
    return [cell[2] for row in _page(view) for cell in row["cells"]]


async def test_the_grid_fills_live_as_rows_complete(tmp_path: Path) -> None:
    view = SweepView(_sweep(tmp_path, ["Paris", "Rome!", "Barcelona"]), refresh_interval=0)
    assert _kinds(view) == ["pending"] * 3  # the whole grid is there before any call
    filled: list[int] = []

    def emit(update: SweepUpdate) -> None:
        view.apply_update(update)
        view.refresh()
        filled.append(sum(kind != "pending" for kind in _kinds(view)))

    result = await view.run_emitting(emit)
    assert filled == [1, 2, 3, 3]  # a cell per row as it completed, then the end
    assert isinstance(result, SweepResult)
    assert view.result is result
    by_prompt = {row["id"]: row["cells"][0] for row in _page(view)}
    assert by_prompt[0][0] == "1.00"
    assert by_prompt[0][1] == score_colour(1.0)
    assert by_prompt[2][0] == "0.00"
    assert by_prompt[2][1] == score_colour(0.0)
    assert "3 of 3 rows" in view.grid.status


async def test_run_returns_the_result_and_draws_the_summary_and_charts(tmp_path: Path) -> None:
    view = SweepView(_sweep(tmp_path, ["Paris", "Rome", "no idea"]))
    result = await view.run()
    assert view.result is result
    assert len(result.df) == 3
    assert "contains (95% CI)" in view.summary_box.value
    assert "test:script" in view.summary_box.value
    names = [trace.name for trace in view.scatter.data]
    assert "cost unknown (drawn at 0)" in names  # a test: model has no price
    assert [trace.type for trace in view.latency.data] == ["box"]
    text = repr(view)
    assert "SweepView: sweep: 3 of 3 rows" in text
    assert "contains (95% CI)" in text


def test_colours_run_red_to_green_and_errors_pending_stand_apart() -> None:
    assert score_colour(0.0) == "#d73027"
    assert score_colour(1.0) == "#1a9850"
    assert score_colour(0.5) == "#fee08b"
    assert score_colour(5.0, 0.0, 10.0) == score_colour(0.5)  # scaled to what was seen
    state = GridState([(0, "a"), (1, "b"), (2, "c")], [])
    row = {"model": "m:x", "params": "{}", "repeat": 0}
    state.add({**row, "prompt_id": 0, "prompt": "a", "score.s": 1.0, "error_type": None})
    state.add({**row, "prompt_id": 1, "prompt": "b", "error_type": "Boom", "error": "it broke"})
    state.add({**row, "prompt_id": 2, "prompt": "c", "score.s": 0.0, "error_type": None})
    state.add({**row, "prompt_id": 2, "prompt": "c", "error_type": "Boom", "repeat": 1})
    done, failed, partial = (state.view(at, 0, "s") for at in range(3))
    assert (done.kind, done.background) == ("done", score_colour(1.0))
    assert (failed.kind, failed.background) == ("error", ERROR_COLOUR)
    assert "✕" in failed.text
    assert "Boom: it broke" in failed.title
    assert partial.kind == "partial"
    assert "1 failed" in partial.text
    state.add({**row, "model": "m:y", "prompt_id": 0, "prompt": "a", "score.s": 1.0})
    pending = state.view(1, 1, "s")  # m:y has not answered prompt b yet
    assert (pending.kind, pending.text, pending.background) == ("pending", "", PENDING_COLOUR)
    assert state.scales["s"].bounds == (0.0, 1.0)
    state.add({**row, "model": "m:y", "prompt_id": 1, "prompt": "b", "score.s": 4.0})
    assert state.scales["s"].bounds == (0.0, 4.0)  # past 1: the range seen
    assert state.view(1, 1, "s").background == score_colour(1.0)  # 4 is the top of it


async def test_clicking_a_cell_shows_its_calls_in_full(tmp_path: Path) -> None:
    answer = "Paris, on the Seine. " * 40  # longer than any grid cell shows
    failure = LLMTimeoutError("no answer within 30 s")
    view = SweepView(_sweep(tmp_path, [answer, failure, "Madrid"]))
    await view.run()
    view.grid.selected = [0, 0]  # what a click on the first cell sends from the front end
    detail = view.detail.value
    assert answer.strip() in detail
    assert "<b>contains</b> 1.000" in detail
    assert "<b>exact</b> 0.000" in detail
    assert "tokens in:" in detail
    assert "latency:" in detail
    assert view.selected_rows()[0]["text"] == answer
    notes = [child.value for child in view.trace_box.children]
    assert notes
    assert NO_OBSERVABILITY.split(":")[0] in notes[0]
    view.grid.selected = [1, 0]
    assert "LLMTimeoutError: no answer within 30 s" in view.detail.value
    with pytest.raises(ValueError, match="no cell for prompt 7"):
        view.select(7, 0)


async def test_a_clicked_cell_shows_its_own_trace(tmp_path: Path) -> None:
    bus = MessageBus()
    await bus.start()
    obs = observability.enable(bus)
    try:
        sweep = Sweep(
            QUESTIONS,
            ["demo:llmgine-demo"],
            template="{q}",
            scorers=[contains()],
            store=tmp_path / "store.sqlite3",
            progress=False,
            bus=bus,
            model_options={"latency": 0},
        )
        view = SweepView(sweep)
        result = await view.run()
        view.select(1, 0)
        traces = [c for c in view.trace_box.children if isinstance(c, TraceView)]
        assert len(traces) == 1
        span_id = result.df.loc[result.df["prompt_id"] == 1, "span_id"].iloc[0]
        assert traces[0].bars
        assert traces[0].bars[0].span_id == span_id
        assert all(b.record.trace_id == traces[0].bars[0].record.trace_id for b in traces[0].bars)
        others = set(result.df["span_id"]) - {span_id}
        assert not {b.span_id for b in traces[0].bars} & others  # no other call's span
    finally:
        observability.disable()
        await bus.stop()
    assert obs is not None


def _dominated(i: int, costs: list[float], scores: list[float]) -> bool:
    return any(
        costs[j] <= costs[i]
        and scores[j] >= scores[i]
        and (costs[j] < costs[i] or scores[j] > scores[i])
        for j in range(len(costs))
    )


def test_the_pareto_front_is_the_lowest_cost_for_each_score_level() -> None:
    #            cheap+bad  mid+good  dear+best  dear+bad  same as mid  unknown cost
    costs = [0.001, 0.01, 0.1, 0.2, 0.01, float("nan")]
    scores = [0.2, 0.7, 0.9, 0.3, 0.7, 1.0]
    assert pareto_front(costs, scores) == [True, True, True, False, True, False]
    rng = random.Random(7)
    for _ in range(200):
        n = rng.randint(1, 12)
        costs = [rng.choice([0.0, 0.1, 0.2, 0.3]) for _ in range(n)]
        scores = [rng.choice([0.0, 0.5, 1.0]) for _ in range(n)]
        expected = [not _dominated(i, costs, scores) for i in range(n)]
        assert pareto_front(costs, scores) == expected, (costs, scores)
    with pytest.raises(ValueError, match="differ in length"):
        pareto_front([0.1], [])


def test_the_scatter_marks_the_front_and_sets_unpriced_models_apart() -> None:
    summary = pd.DataFrame(
        {
            "model": ["a:cheap", "a:good", "a:dear", "a:free"],
            "params": ["{}"] * 4,
            "score.s.mean": [0.5, 0.9, 0.6, 0.8],
            "cost_per_call": [0.001, 0.01, 0.02, float("nan")],
        }
    )
    figure = scatter_figure(summary, "s")
    traces = {trace.name: trace for trace in figure.data}
    front = traces["on the Pareto front"]
    assert list(front.text) == ["a:cheap", "a:good"]
    assert list(front.x) == [0.001, 0.01]
    assert list(traces["beaten on cost and score"].text) == ["a:dear"]
    assert list(traces["cost unknown (drawn at 0)"].y) == [0.8]
    assert list(traces["the front"].x) == [0.001, 0.01]  # joined, cheapest first


class _Spec:
    def __init__(self, spec: str) -> None:
        self.spec = spec


class _TenThousandRows:
    """What SweepView reads of a sweep, whose run hands it 10,000 rows (no model calls:
    this measures the view)."""

    def __init__(self, prompts: int, models: int, repeats: int) -> None:
        self.inputs = [{"prompt": f"question {i}"} for i in range(prompts)]
        self.models = [_Spec(f"test:m{m}") for m in range(models)]
        self.param_sets: list[dict[str, Any]] = [{}]
        self.scorers = [contains()]
        self.repeats = repeats

    async def run(self, *, on_row: Callable[[dict[str, Any]], object]) -> SweepResult:
        rows = itertools.product(range(self.repeats), range(len(self.inputs)), self.models)
        for repeat, prompt_id, model in rows:
            on_row(
                {
                    "prompt_id": prompt_id,
                    "prompt": f"question {prompt_id}",
                    "model": model.spec,
                    "params": "{}",
                    "repeat": repeat,
                    "text": "x" * 200,
                    "error_type": "Boom" if prompt_id % 97 == 0 else None,
                    "score.contains": float(prompt_id % 2),
                }
            )
        return cast(SweepResult, None)


async def test_ten_thousand_rows_cost_a_bounded_page_per_refresh() -> None:
    ticks = itertools.count()

    def clock() -> float:  # a millisecond passes per row
        return next(ticks) / 1000

    fake = _TenThousandRows(prompts=2_500, models=2, repeats=2)
    view = SweepView(cast(Sweep, fake), refresh_interval=0.1, clock=clock)
    payloads: list[int] = []
    view.grid.observe(lambda change: payloads.append(len(change["new"])), names=["page_json"])
    renders = view.renders
    await view.run()
    assert view.state.rows == 10_000
    # Ten seconds of rows at ten refreshes a second at most; and only the rows landing on
    # the page shown (the first 50 prompts) redraw it: far fewer.
    assert view.renders - renders <= 10_000 * 0.001 / 0.1 + 2
    assert view.rows_rendered == 50
    assert len(_page(view)) == 50
    assert max(payloads) < 50 * 2 * 300  # ~50 prompts x 2 columns, whatever the sweep's size
    assert "10,000 of 10,000 rows" in view.grid.status
    view.grid.offset = 2_450  # the last page: drawn on demand
    assert [row["id"] for row in _page(view)] == list(range(2_450, 2_500))
    assert _page(view)[-1]["cells"][0][0] == "1.00 (n=2)"


async def test_a_finished_sweep_renders_as_html_and_text_for_saved_notebooks(
    tmp_path: Path,
) -> None:
    result = await _sweep(tmp_path, ["Paris", LLMTimeoutError("late"), "Madrid"]).run()
    view = SweepView.from_result(result)
    assert view.state.rows == 3
    bundle = view._repr_mimebundle_()
    html = bundle["text/html"]
    assert 'data-kind="error"' in html
    assert f"background:{score_colour(1.0)}" in html
    assert "Capital of Spain?" in html
    assert "✕ failed</span> · empty: pending" in html  # the legend of the colours
    assert view.grid.scale == [0.0, 1.0]
    assert "llmgine-sweep-summary" in html
    text = bundle["text/plain"]
    assert "Capital of France? | 1.00" in text
    assert "✕ error" in text
    charts = view.charts()
    assert [c.figure.layout.title.text for c in charts] == [
        "Cost vs contains: the Pareto front in red",
        "Latency per model",
    ]
    # Both charts' PNGs in the HTML (kaleido draws them in chromium, as for every chart),
    # the cost-vs-score one as the output's image too.
    assert html.count('<img src="data:image/png;base64,') == 2
    assert base64.b64decode(bundle["image/png"]) == charts[0].png()
    with pytest.raises(RuntimeError, match="nothing to run"):
        await view.run()


def test_the_shipped_grid_front_end_is_the_source() -> None:
    root = Path(__file__).resolve().parents[2]
    for name in ("sweep_grid.js", "sweep_grid.css"):
        assert asset(name) == (root / "extension" / "src" / name).read_text("utf-8"), (
            f"{name}: run python extension/sync.py"
        )


async def test_trace_views_of_clicked_cells_are_reused_and_bounded(tmp_path: Path) -> None:
    bus = MessageBus()
    await bus.start()
    observability.enable(bus)
    try:
        sweep = Sweep(
            QUESTIONS,
            ["demo:llmgine-demo"],
            template="{q}",
            store=tmp_path / "store.sqlite3",
            progress=False,
            bus=bus,
            model_options={"latency": 0},
        )
        view = SweepView(sweep)
        await view.run()
        view._traces.keep = 2
        view.select(0, 0)
        first = view.trace_box.children[-1]
        view.select(1, 0)
        view.select(0, 0)
        assert view.trace_box.children[-1] is first  # shown again, not made again
        assert not first.feed.closed
        view.select(1, 0)
        view.select(2, 0)  # a third span: the least recently shown (prompt 0's) is closed
        assert first.feed.closed
        assert len(view._traces.views) == 2
        view.close()
        assert not view._traces.views
    finally:
        observability.disable()
        await bus.stop()


class _ThreeRowsThenWait(_TenThousandRows):
    """Hands the view three rows at once, then waits until they are all drawn."""

    def __init__(self) -> None:
        super().__init__(prompts=3, models=1, repeats=1)
        self.drawn = asyncio.Event()

    async def run(self, *, on_row: Callable[[dict[str, Any]], object]) -> SweepResult:
        for prompt_id in range(3):
            on_row(
                {
                    "prompt_id": prompt_id,
                    "prompt": f"q{prompt_id}",
                    "model": "test:m0",
                    "params": "{}",
                    "repeat": 0,
                    "error_type": None,
                    "score.contains": 1.0,
                }
            )
        # No more rows come: only the view's deferred redraw can show the last two.
        await asyncio.wait_for(self.drawn.wait(), DEADLINE)
        return cast(SweepResult, None)


async def test_rows_are_drawn_within_the_interval_even_when_no_row_follows() -> None:
    fake = _ThreeRowsThenWait()
    view = SweepView(cast(Sweep, fake), refresh_interval=0.05)
    refresh = view.refresh

    def watched() -> None:
        refresh()
        if "pending" not in _kinds(view):
            fake.drawn.set()

    view.refresh = watched  # type: ignore[method-assign]
    await view.run()
    assert _kinds(view) == ["done"] * 3


def test_a_score_that_names_no_scorer_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="its scorers: contains, exact"):
        SweepView(_sweep(tmp_path, []), score="contain")


async def test_an_error_that_echoes_a_key_is_shown_redacted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = "sk-proj-" + "Zq7" * 12
    monkeypatch.setenv("OPENAI_API_KEY", key)
    failure = MalformedResponseError(f"bad answer for key {key}")
    view = SweepView(_sweep(tmp_path, ["Paris", failure, "Madrid"]))
    await view.run()
    view.select(1, 0)
    assert "MalformedResponseError" in view.detail.value
    assert key not in view.detail.value
    assert key not in view.grid.page_json
    assert key not in view._repr_html_()
