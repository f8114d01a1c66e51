"""Saved notebooks show their charts without a kernel: every chart output (a plotly figure,
a trace waterfall, a comparison) carries a PNG beside its interactive view, and the PNG
shows something (it is not one flat colour). GitHub and nbviewer render that PNG (or the
HTML, which embeds the same PNG), since they can run neither plotly.js nor a widget."""

from __future__ import annotations

import asyncio
import base64
import importlib.util
import io
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from llmgine.notebook import CompareView, chart
from tests.deadline import DEADLINE
from tests.notebook.nb_support import ROOT, notebook_paths, offline_env, outputs, read_notebook

PLOTLY = "application/vnd.plotly.v1+json"
PNG = "image/png"
EMBEDDED = 'src="data:image/png;base64,'

# The notebooks that show charts, and how many each shows at least.
CHARTS_AT_LEAST = {
    "01-quickstart": 2,  # %llmgine trace, and a comparison of two models
    "02-compare-providers": 3,  # comparisons: the magic's, %llmgine compare, CompareView
    "03-traces-and-dataframes": 4,  # four DataFrame plots
    "04-tools": 1,  # %llmgine trace
    "07-sweeps": 5,  # two SweepViews, cost vs score, latencies, a clicked cell's trace
    "08-scale-out": 1,  # one trace across the notebook and a worker
}


def chart_kind(output: dict[str, Any]) -> str | None:
    """What chart a saved output is: a plotly figure, a trace, a comparison or a sweep (or
    None)."""
    data = output.get("data", {})
    plain = "".join(data.get("text/plain", ""))
    if PLOTLY in data:
        return "plotly"
    if plain.startswith("<TraceView") and "no spans yet" not in "".join(data["text/html"]):
        return "trace"
    if plain.startswith("CompareView:"):
        return "compare"
    if plain.startswith("SweepView:"):
        return "sweep"
    return None


def not_blank(png: bytes) -> list[str]:
    """What makes ``png`` look blank: a flat image, or one whose pixels are nearly all of
    one colour (a chart has axes, labels and bars in other colours)."""
    image = Image.open(io.BytesIO(png))
    image.load()
    pixels = image.convert("RGB")
    colours = pixels.getcolors(maxcolors=pixels.width * pixels.height) or []
    wrong = []
    if image.width < 300 or image.height < 150:
        wrong.append(f"too small to read: {image.width}x{image.height}")
    if len(colours) < 8:
        wrong.append(f"only {len(colours)} colours")
    background = max(count for count, _ in colours) if colours else 0
    drawn = pixels.width * pixels.height - background
    if drawn < 0.02 * pixels.width * pixels.height:
        wrong.append(f"only {drawn} pixels differ from the background")
    return wrong


def saved_charts() -> list[tuple[str, int, str, dict[str, Any]]]:
    found = []
    for path in notebook_paths():
        for index, output in enumerate(outputs(read_notebook(path))):
            kind = chart_kind(output)
            if kind is not None:
                found.append((path.stem, index, kind, output["data"]))
    return found


def test_the_notebooks_show_their_charts() -> None:
    counts: dict[str, int] = {}
    for name, _, _, _ in saved_charts():
        counts[name] = counts.get(name, 0) + 1
    for name, least in CHARTS_AT_LEAST.items():
        assert counts.get(name, 0) >= least, f"{name}: {counts.get(name, 0)} charts found"


@pytest.mark.parametrize(
    ("notebook", "index", "kind", "data"),
    saved_charts(),
    ids=[f"{name}-output{index}-{kind}" for name, index, kind, _ in saved_charts()],
)
def test_each_saved_chart_carries_an_image_that_is_not_blank(
    notebook: str, index: int, kind: str, data: dict[str, Any]
) -> None:
    assert PNG in data, (
        f"{notebook}: output {index} ({kind}) has no static image: show plotly figures with "
        "llmgine.notebook.chart(fig), and refresh the notebook (python -m "
        "tests.notebook.nb_refresh) where kaleido and chromium are installed"
    )
    png = base64.b64decode("".join(data[PNG]))
    assert not_blank(png) == []
    if kind != "plotly":  # the widgets' HTML (what nbviewer prefers) shows the same image
        html = "".join(data["text/html"])
        assert EMBEDDED + "".join(data[PNG]) in html


def test_the_blank_check_can_fail() -> None:
    flat = io.BytesIO()
    Image.new("RGB", (700, 400), "white").save(flat, "PNG")
    wrong = not_blank(flat.getvalue())
    assert wrong == ["only 1 colours", "only 0 pixels differ from the background"]


def _renders() -> bool:
    return importlib.util.find_spec("kaleido") is not None


async def test_a_comparison_gets_its_image_once_it_has_run() -> None:
    if not _renders():
        pytest.skip('kaleido is not installed: pip install -e ".[notebook]"')
    view = CompareView(["demo:a", "demo:b"], "Hi")
    before = view._repr_mimebundle_()
    assert PNG not in before  # not per update: the chart is not final yet
    assert EMBEDDED not in before["text/html"]
    await asyncio.wait_for(view.run(), DEADLINE)
    after = view._repr_mimebundle_()
    assert PNG in after, "no image: is chromium installed (or BROWSER_PATH set)?"
    assert not_blank(base64.b64decode(after[PNG])) == []
    assert EMBEDDED + after[PNG] in after["text/html"]
    assert view._repr_mimebundle_()[PNG] == after[PNG]  # made once, not per display
    view.close()


def test_a_plotly_figure_keeps_its_interactive_view_beside_its_image() -> None:
    import plotly.express as px  # type: ignore[import-untyped]

    bundle = chart(px.bar(x=["a", "b"], y=[1, 3], title="Bars"))._repr_mimebundle_()
    assert bundle[PLOTLY]["layout"]["title"]["text"] == "Bars"
    assert bundle["text/plain"] == "<Chart: Bars>"
    if _renders():
        assert not_blank(base64.b64decode(bundle[PNG])) == []


def test_without_a_browser_charts_stay_interactive_and_one_line_says_why(tmp_path: Path) -> None:
    script = (
        "import plotly.express as px\n"
        "from llmgine.notebook import chart\n"
        "for title in ('one', 'two'):\n"
        "    bundle = chart(px.bar(x=['a'], y=[1], title=title))._repr_mimebundle_()\n"
        "    print(sorted(bundle))\n"
    )
    env = offline_env({"BROWSER_PATH": str(tmp_path / "no-browser-here")})
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    ran = subprocess.run(
        [sys.executable, "-c", script],
        env=env,
        capture_output=True,
        text=True,
        timeout=DEADLINE,
        check=False,
    )
    assert ran.returncode == 0, ran.stderr
    shown = f"['{PLOTLY}', 'text/plain']"
    assert ran.stdout.splitlines() == [shown, shown]
    [line] = ran.stderr.splitlines()  # once, not per chart
    assert line.startswith("llmgine: charts stay interactive but get no static image")
    assert "BROWSER_PATH" in line or "kaleido is not installed" in line
