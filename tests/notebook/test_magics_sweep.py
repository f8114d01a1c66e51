"""``%llmgine sweep`` and ``%%llmgine sweep``: a sweep from a cell, its grid filled live."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from IPython.utils.capture import capture_output

from llmgine.errors import MagicUsageError
from llmgine.notebook._sweep_view import SweepView
from llmgine.sweep import SweepResult
from tests.notebook.magics_helpers import Shell, output_data, scripted, updates

pytestmark = pytest.mark.usefixtures("magics")  # the shell's magics, reset after each test

WIDGET = "application/vnd.jupyter.widget-view+json"


@pytest.fixture(autouse=True)
def own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The sweep's default store (the user's SQLite cache) in this test's folder."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


def test_the_line_form_sweeps_a_dataframe_with_scorers(shell: Shell) -> None:
    shell.user_ns["questions"] = pd.DataFrame(
        {"question": ["Capital of France?", "Capital of Italy?"], "expected": ["Paris", "Rome"]}
    )
    scripted(shell, "oracle", "Paris", "Rome")
    with capture_output() as captured:
        shell.line(
            "sweep questions --models oracle,demo:llmgine-demo --score exact --score contains:a "
            "-o res"
        )
    result = shell.user_ns["res"]
    assert isinstance(result, SweepResult)
    assert result.done == 4
    assert sorted(result.df["model"].unique()) == ["demo:llmgine-demo", "test:oracle"]
    oracle = result.df[result.df["model"] == "test:oracle"]
    assert list(oracle["score.exact"]) == [1.0, 1.0]
    assert list(oracle["score.contains"]) == [1.0, 0.0]  # "Rome" has no "a"
    assert list(output_data(captured, WIDGET))  # the live view was displayed
    last = updates(captured)[-1]  # ... and replaced by the finished one for saving
    assert last.data["text/plain"].startswith("SweepView: sweep: 4 of 4 rows")
    assert "llmgine-sweep-summary" in last.data["text/html"]
    assert last.metadata["llmgine"]["sweep"]["rows"] == 4
    # the demo's calls went through the magics' bus, observed: their rows have spans
    demo = result.df[result.df["model"] == "demo:llmgine-demo"]
    assert demo["span_id"].notna().all()


def test_the_cell_form_sweeps_one_prompt_a_line(shell: Shell) -> None:
    scripted(shell, "echo", "four", "Paris")
    with capture_output() as captured:
        shell.cell(
            "sweep --models echo --score contains:Paris -o res",
            "What is 2+2?\n\nCapital of France?\n",
        )
    result = shell.user_ns["res"]
    assert list(result.df["prompt"]) == ["What is 2+2?", "Capital of France?"]
    assert list(result.df["score.contains"]) == [0.0, 1.0]
    assert "0.00" in updates(captured)[-1].data["text/plain"]


def test_the_cell_is_a_template_with_data(shell: Shell) -> None:
    shell.user_ns["rows"] = [{"country": "France"}, {"country": "Peru"}]
    scripted(shell, "echo", "Paris", "Lima")
    with capture_output():
        shell.cell("sweep --data rows --models echo -o res", "Capital of {country}?")
    assert list(shell.user_ns["res"].df["prompt"]) == ["Capital of France?", "Capital of Peru?"]


def test_the_grid_fills_while_the_sweep_runs(shell: Shell, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[int] = []
    refresh = SweepView.refresh

    def counting(view: SweepView) -> None:
        refresh(view)
        seen.append(view.state.rows)

    monkeypatch.setattr(SweepView, "refresh", counting)
    scripted(shell, "echo", "a", "b", "c")
    with capture_output():
        shell.cell("sweep --models echo", "one\ntwo\nthree")
    # On the cell's thread, the grid was redrawn as rows arrived (interval 0 in the tests)
    assert [n for n in seen if 0 < n < 3]
    assert seen[-1] == 3


@pytest.mark.parametrize(
    ("line", "body", "message"),
    [
        ("sweep questions", None, "the following arguments are required: --models"),
        ("sweep nothing_here --models demo:a", None, "no 'nothing_here' in your namespace"),
        ("sweep --models demo:a", "\n  \n", "the cell is empty"),
        ("sweep --models demo:a --score bogus", "hi", "unknown scorer 'bogus'"),
        ("sweep --models nomodel", "hi", "'nomodel' is neither a model spec"),
        ("sweep --models demo:a --temperature hot", "hi", "give numbers joined by commas"),
        ("sweep table --models demo:a", None, "which column holds the prompts?"),
    ],
)
def test_bad_input_says_what_to_do(shell: Shell, line: str, body: str | None, message: str) -> None:
    shell.user_ns["questions"] = ["a"]
    shell.user_ns["table"] = pd.DataFrame({"q": ["x"]})

    def run() -> object:
        return shell.line(line) if body is None else shell.cell(line, body)

    with pytest.raises(MagicUsageError, match=message):
        run()


def test_help_lists_sweep(shell: Shell) -> None:
    with capture_output() as captured:
        shell.line("help")
    assert "%llmgine sweep DATA --models M,M" in captured.stdout
    assert "%%llmgine sweep --models" in captured.stdout


def test_trace_after_a_sweep_shows_its_calls(shell: Shell) -> None:
    with capture_output():
        shell.cell("sweep --models demo:llmgine-demo -o res", "one\ntwo")
        trace = shell.line("trace")
    result = shell.user_ns["res"]
    drawn = {bar.span_id for bar in trace.bars}
    assert set(result.df["span_id"]) <= drawn  # each call's span, in the sweep's session
    trace.close()
