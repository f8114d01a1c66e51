"""The sweep engine: every kind of input, preflight, AIMD, span ids, interrupt and resume."""

from __future__ import annotations

import asyncio
import io
import json
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from llmgine import observability
from llmgine.bus import MessageBus
from llmgine.llm import LLMRequest, LLMResponse, Model, WrapperModel, get_model
from llmgine.recording import SQLiteCache
from llmgine.sweep import AdaptiveLimit, Sweep, contains
from llmgine.sweep._grid import expand_grid
from llmgine.sweep._inputs import load_inputs
from tests.conftest import FakeTime
from tests.deadline import DEADLINE


def echo(request: LLMRequest) -> str:
    return "echo " + request.messages[-1].text


def test_inputs_of_every_kind(tmp_path: Path) -> None:
    assert load_inputs(["a", "b"]) == [{"text": "a", "prompt": "a"}, {"text": "b", "prompt": "b"}]
    rows = load_inputs([{"text": "cat", "lang": "fr"}], template="Translate {text} to {lang}")
    assert rows == [{"text": "cat", "lang": "fr", "prompt": "Translate cat to fr"}]
    frame = pd.DataFrame({"q": ["2+2?", "3+3?"], "expected": ["4", "6"]})
    assert [r["prompt"] for r in load_inputs(frame, column="q")] == ["2+2?", "3+3?"]
    templated = load_inputs(frame, template="Q: {q}")
    assert templated[1] == {"q": "3+3?", "expected": "6", "prompt": "Q: 3+3?"}
    frame.to_csv(tmp_path / "d.csv", index=False)
    assert load_inputs(tmp_path / "d.csv", column="q")[0]["expected"] == 4  # CSV numbers
    (tmp_path / "d.jsonl").write_text(
        "\n".join(json.dumps(r) for r in frame.to_dict("records")) + "\n"
    )
    assert load_inputs(str(tmp_path / "d.jsonl"), template="{q}")[1]["prompt"] == "3+3?"


def test_bad_inputs_say_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"names \{lang\}, which input row 0 does not have"):
        load_inputs([{"text": "cat"}], template="Translate {text} to {lang}")
    with pytest.raises(ValueError, match="has no column 'x'; its columns: q"):
        load_inputs(pd.DataFrame({"q": ["a"]}), column="x")
    with pytest.raises(ValueError, match="needs column="):
        load_inputs(pd.DataFrame({"q": ["a"]}))
    with pytest.raises(ValueError, match="give template="):
        load_inputs([{"text": "a"}])
    with pytest.raises(FileNotFoundError, match="no input file"):
        load_inputs(tmp_path / "missing.csv")
    with pytest.raises(ValueError, match="the inputs are empty"):
        load_inputs([])


def test_grid_is_every_combination_and_checks_its_names() -> None:
    grid = expand_grid({"temperature": [0, 1], "system": ["a", "b", "c"], "max_tokens": 5})
    assert len(grid) == 6
    assert grid[0] == {"temperature": 0, "system": "a", "max_tokens": 5}
    assert expand_grid(None) == [{}]
    with pytest.raises(ValueError, match="not request fields"):
        expand_grid({"temprature": [0]})


async def test_aimd_halves_once_per_pause_and_climbs_back() -> None:
    time = FakeTime()
    limit = AdaptiveLimit(8, increase_every=2, sleep=time.sleep, clock=time.clock)
    limit.rate_limited(5.0)
    limit.rate_limited(5.0)  # refused in the same pause: not halved again
    assert limit.limit == 4
    await limit.acquire()  # waits out the pause
    assert time.sleeps == [5.0]
    await limit.release()
    for _ in range(4):
        await limit.succeeded()
    assert limit.limit == 6
    limit.rate_limited(1.0)
    assert limit.limit == 3


async def test_a_throttled_sweep_finishes_every_row(tmp_path: Path) -> None:
    from llmgine.errors import RateLimitedError

    time = FakeTime()
    script: list[Any] = []
    for _ in range(6):
        script += [RateLimitedError("429", retry_after=2.0), echo]
    model = get_model("test:s", responses=script, retry=False)
    result = await Sweep(
        [f"p{i}" for i in range(6)],
        [model],
        store=tmp_path / "c.sqlite3",
        concurrency=4,
        progress=False,
        sleep=time.sleep,
        clock=time.clock,
    ).run()
    assert result.df["error_type"].isna().all()
    assert sorted(result.df["text"]) == sorted(f"echo p{i}" for i in range(6))
    assert time.now >= 2.0  # the retry-after was waited (on the injected clock)


async def test_preflight_counts_calls_and_says_unknown_prices(tmp_path: Path) -> None:
    sweep = Sweep(
        ["x" * 400, "y" * 40],
        ["demo:llmgine-demo", get_model("test:s", retry=False)],
        grid={"max_tokens": [10, 20]},
        store=tmp_path / "c.sqlite3",
        progress=False,
        model_options={"latency": 0},
    )
    plan = await sweep.preflight()
    assert plan.calls == 8
    assert plan.cached == 0
    assert plan.output_tokens == 4 * (10 + 20)
    assert plan.input_tokens == 4 * 101 + 4 * 11
    assert plan.unpriced == ["test:s"]
    assert "no price known for test:s" in str(plan)
    assert "rough" in str(plan)


async def test_rows_carry_the_span_ids_of_their_calls(tmp_path: Path) -> None:
    async with MessageBus() as bus:
        obs = observability.enable(bus)
        try:
            result = await Sweep(
                ["a", "b"],
                ["demo:llmgine-demo"],
                store=tmp_path / "c.sqlite3",
                bus=bus,
                progress=False,
                model_options={"latency": 0},
            ).run()
            spans = obs.spans_df(session=result.session_id)
        finally:
            observability.disable()
    assert result.df["span_id"].notna().all()
    assert set(result.df["span_id"]) <= set(spans["span_id"])
    assert set(result.df["trace_id"]) <= set(spans["trace_id"])


async def test_without_observability_the_span_ids_are_missing(tmp_path: Path) -> None:
    result = await Sweep(
        ["a"],
        ["demo:llmgine-demo"],
        store=tmp_path / "c.sqlite3",
        progress=False,
        model_options={"latency": 0},
    ).run()
    assert result.df["span_id"].isna().all()
    assert result.df["text"].iloc[0] != ""


class Gate(WrapperModel):
    """Answers ``open`` calls, then holds every later call until cancelled."""

    def __init__(self, wrapped: Model, open: int) -> None:
        super().__init__(wrapped)
        self.open = open
        self.calls = 0

    async def generate(self, request: LLMRequest, /) -> LLMResponse:
        self.calls += 1
        if self.calls > self.open:
            await asyncio.Event().wait()
        return await self.wrapped.generate(request)


async def test_an_interrupted_sweep_resumes_with_only_the_missing_calls(tmp_path: Path) -> None:
    store = SQLiteCache(tmp_path / "c.sqlite3")
    prompts = [f"p{i}" for i in range(6)]
    gate = Gate(get_model("test:s", responses=[echo] * 6, retry=False), open=2)
    sweep = Sweep(prompts, [Model(gate)], store=store, concurrency=3, stream=False, progress=False)
    task = asyncio.create_task(sweep.run())
    deadline = time.monotonic() + DEADLINE
    while await store.count() < 2:  # the two answered calls are stored
        assert time.monotonic() < deadline, "the first two answers were never stored"
        await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    again = Gate(get_model("test:s", responses=[echo] * 6, retry=False), open=6)
    result = await Sweep(prompts, [Model(again)], store=store, stream=False, progress=False).run()
    assert again.calls == 4  # only the missing rows were called
    assert int(result.df["cache_hit"].sum()) == 2
    assert result.df["text"].tolist() == [f"echo {p}" for p in prompts]


async def test_progress_bar_shows_done_total_spend_and_errors(tmp_path: Path) -> None:
    pytest.importorskip("tqdm", reason="the progress bar needs tqdm (the sweep extra)")
    out = io.StringIO()
    import contextlib

    with contextlib.redirect_stderr(out), contextlib.redirect_stdout(out):
        await Sweep(
            ["a", "b"],
            ["demo:llmgine-demo"],
            store=tmp_path / "c.sqlite3",
            model_options={"latency": 0},
        ).run()
    text = out.getvalue()
    assert "preflight: 2 calls" in text
    assert "2/2" in text
    assert "errors=0" in text


async def test_on_row_sees_each_row_as_it_completes_with_its_scores(tmp_path: Path) -> None:
    seen: list[dict[str, Any]] = []
    result = await Sweep(
        ["a cat", "a dog", "an owl"],
        ["demo:llmgine-demo", get_model("test:s", responses=["a"] * 3, retry=False)],
        scorers=[contains("a")],
        store=tmp_path / "s.sqlite3",
        progress=False,
    ).run(on_row=seen.append)
    assert len(seen) == len(result.df) == 6
    keys = {(r["prompt_id"], r["model"]) for r in seen}
    assert keys == set(zip(result.df["prompt_id"], result.df["model"], strict=True))
    assert all("score.contains" in r for r in seen if r["error_type"] is None)
    seen[0]["text"] = "changed by the callback"
    assert "changed by the callback" not in set(result.df["text"].dropna())


async def test_an_on_row_that_raises_stops_the_sweep_with_its_error(tmp_path: Path) -> None:
    def explode(row: dict[str, Any]) -> None:
        raise RuntimeError(f"view broke on row {row['prompt_id']}")

    sweep = Sweep(["x", "y"], "demo:llmgine-demo", store=tmp_path / "s.sqlite3", progress=False)
    with pytest.raises(RuntimeError, match="view broke on row"):
        await sweep.run(on_row=explode)
