"""The quickstart notebook in a real JupyterLab, in headless chromium: run all cells and
see the streamed answer, the live event stream, the trace waterfall and the comparison.

JupyterLab is started by ``python -m llmgine lab`` on 127.0.0.1 (a free port, a token)
over a copy of ``notebooks/`` with the outputs removed, so whatever the page shows was
made by this run, and the repository is left alone. Screenshots go to
``tests/browser/artifacts/jupyterlab-quickstart/``.
"""

from __future__ import annotations

import json
import secrets
import shutil
import signal
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Locator, Page, expect

from tests.browser.browser_support import (
    DEADLINE,
    Server,
    artifacts_dir,
    free_port,
    http_ok,
    new_page,
    require_chromium,
    unexpected,
)
from tests.notebook.nb_support import (
    NOTEBOOKS,
    isolated_dirs,
    notebook_paths,
    offline_env,
    read_notebook,
    without_outputs,
    write_notebook,
)

QUICKSTART = "01-quickstart.ipynb"
# JupyterLab settings for the test: every cell attached to the page (the default,
# "contentVisibility", skips laying out cells off screen, where plotly cannot size a
# chart), and no news or update checks (they would go to the internet).
SETTINGS = {
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
        "fetchNews": "false",
        "checkForUpdates": False,
    },
}
# `window.jupyterapp` is exposed by --LabApp.expose_app_in_browser.
KERNEL_IDLE = """() => {
    const panel = window.jupyterapp?.shell?.currentWidget;
    return panel?.sessionContext?.session?.kernel?.status === "idle";
}"""
ALL_RAN = """() => {
    const panel = window.jupyterapp.shell.currentWidget;
    const code = panel.content.widgets.filter((cell) => cell.model.type === "code");
    return panel.sessionContext.session.kernel.status === "idle"
        && code.every((cell) => cell.model.executionCount !== null);
}"""
# Remembers every partial answer shown while it streams (the magic's preview ends in a
# cursor, which the final answer does not have).
WATCH_STREAMING = """() => {
    const seen = (window.llmgineStreamed = []);
    new MutationObserver(() => {
        for (const node of document.querySelectorAll(".jp-OutputArea-output")) {
            const text = node.textContent || "";
            if (text.includes("\u258d") && !seen.includes(text)) seen.push(text);
        }
    }).observe(document.body, { subtree: true, childList: true, characterData: true });
}"""
CELL_SOURCES = """() => window.jupyterapp.shell.currentWidget.content.widgets
    .map((cell) => cell.model.sharedModel.getSource())"""


@dataclass(frozen=True)
class Lab:
    url: str
    token: str
    root: Path
    server: Server


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    require_chromium()  # before starting anything
    root = tmp_path / "notebooks"
    root.mkdir()
    for path in notebook_paths():
        write_notebook(root / path.name, without_outputs(read_notebook(path)))
    shutil.copytree(NOTEBOOKS / "data", root / "data")  # 07-sweeps' dataset
    state = tmp_path / "state"
    settings = state / "lab-settings"
    for name, values in SETTINGS.items():
        (settings / name).parent.mkdir(parents=True, exist_ok=True)
        (settings / name).write_text(json.dumps(values))
    env = offline_env(
        {
            **isolated_dirs(state),
            # The demo model: this test is about what JupyterLab shows, and the demo's
            # answers are known (the local model's are sampled; nbval runs it).
            "LLMGINE_MODEL": "demo:llmgine-demo",
            "JUPYTERLAB_SETTINGS_DIR": str(settings),
            "JUPYTERLAB_WORKSPACES_DIR": str(state / "lab-workspaces"),
        }
    )
    port, token = free_port(), secrets.token_urlsafe(24)
    server = Server(
        [
            sys.executable,
            "-m",
            "llmgine",
            "lab",
            str(root),
            "--port",
            str(port),
            f"--ServerApp.token={token}",
            "--ServerApp.allow_root=True",  # containers often run as root
            "--LabApp.expose_app_in_browser=True",
            "--LabApp.news_url=None",
            "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
            "--LabApp.extension_manager=readonly",
        ],
        env=env,
        cwd=tmp_path,
        log=tmp_path / "jupyterlab.log",
    )
    url = f"http://127.0.0.1:{port}/"
    try:
        server.wait_until(lambda: http_ok(f"{url}api/status?token={token}"), "JupyterLab")
        yield Lab(url, token, root, server)
    finally:
        server.stop(signal.SIGTERM)  # JupyterLab's clean shutdown; its kernels go with it


def watch_errors(page: Page) -> list[str]:
    """The page's uncaught errors, as they happen (`unexpected` leaves out known ones)."""
    failures: list[str] = []
    page.on("pageerror", lambda error: failures.append(str(error)))
    return failures


def cell(page: Page, sources: list[str], first_line: str) -> Locator:
    """The notebook cell whose source starts with ``first_line``."""
    index = next((i for i, source in enumerate(sources) if source.startswith(first_line)), None)
    assert index is not None, f"no cell starts with {first_line!r} in the notebook"
    return page.locator(".jp-Notebook .jp-Cell").nth(index)


# About 20 s, with a CPU-bound process beside it: JupyterLab starts, a kernel starts, and
# the quickstart runs every cell (LLM calls to the demo model, a comparison, plotly
# charts). The limit covers the server's start, the kernel's and the whole run each at the
# deadline.
@pytest.mark.timeout(4 * DEADLINE)
def test_quickstart_runs_in_jupyterlab_and_shows_every_view(lab: Lab, browser: Browser) -> None:
    shots = artifacts_dir("jupyterlab-quickstart")
    page, network = new_page(browser)
    failures = watch_errors(page)
    page.goto(f"{lab.url}lab/tree/{QUICKSTART}?token={lab.token}")
    page.wait_for_function(KERNEL_IDLE)  # the page's default timeout: the deadline
    page.evaluate(WATCH_STREAMING)
    page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
    page.wait_for_function(ALL_RAN, polling=250)
    sources: list[str] = page.evaluate(CELL_SOURCES)

    try:
        stderr = page.locator('.jp-OutputArea-output[data-mime-type*="stderr"]')
        assert stderr.count() == 0, f"errors or warnings in the outputs: {stderr.all_inner_texts()}"

        # The streamed answer: partial answers were shown, then the final one and its footer.
        answer = cell(page, sources, "%%llmgine -o answer")
        final = answer.locator(".jp-RenderedMarkdown").first
        expect(final).to_contain_text("volcanoes")
        expect(answer).to_contain_text("demo:llmgine-demo · demo, simulated")
        final_text = final.inner_text()
        assert "\u258d" not in final_text
        streamed: list[str] = page.evaluate("() => window.llmgineStreamed")
        partial = [text for text in streamed if "volcanoes" in text]
        assert partial, f"no partial answer was shown while it streamed; saw {streamed}"
        assert min(len(text) for text in partial) < len(final_text)
        answer.screenshot(path=shots / "answer.png")

        # The event stream: live rows for the calls made after it was shown.
        events = cell(page, sources, "events = %llmgine events")
        rows = events.locator(".llmgine-events .llmgine-event-row")
        expect(rows.first).to_be_visible()
        expect(events.locator('.llmgine-event-row[data-type="LLMCallCompleted"]')).to_have_count(
            3  # the answer, and the two models of the comparison
        )
        assert events.locator('.llmgine-event-row[data-type="LLMStreamDelta"]').count() > 0
        expect(events.locator(".llmgine-events-counts")).not_to_contain_text("seen 0 ")
        events.screenshot(path=shots / "event-stream.png")

        # The trace waterfall: the cell's session and its LLM call, as plotly bars.
        trace = cell(page, sources, "%llmgine trace")
        expect(trace.locator(".llmgine-trace .js-plotly-plot")).to_be_visible()
        expect(trace.locator(".llmgine-trace-counts")).to_contain_text("2 spans")
        bars = trace.locator(".llmgine-trace .js-plotly-plot .barlayer .point")
        expect(bars).to_have_count(2)
        trace.screenshot(path=shots / "trace.png")

        # The comparison: two columns, both answered, and the timings chart.
        compare = cell(page, sources, "%%llmgine {MODEL},demo:llmgine-demo-2")
        columns = compare.locator(".widget-gridbox > .widget-vbox")
        expect(columns).to_have_count(2)
        expect(columns.nth(0)).to_contain_text("demo:llmgine-demo · done")
        expect(columns.nth(1)).to_contain_text("demo:llmgine-demo-2 · done")
        expect(compare.locator(".js-plotly-plot")).to_be_visible()
        compare.screenshot(path=shots / "compare.png")

        assert network.blocked == [], f"the page tried to leave 127.0.0.1: {network.blocked}"
        assert unexpected(failures) == [], f"uncaught errors in the page: {failures}"
    finally:
        page.screenshot(path=shots / "page.png")
        (shots / "jupyterlab.log").write_text(lab.server.output())
        print(f"screenshots in {shots}")
        page.close()


COMPARE = "02-compare-providers.ipynb"


# About 20 s, with a CPU-bound process beside it, for the same reasons as the quickstart.
@pytest.mark.timeout(4 * DEADLINE)
def test_a_comparison_with_failing_models_shows_each_error_in_its_own_column(
    lab: Lab, browser: Browser
) -> None:
    shots = artifacts_dir("jupyterlab-compare")
    page, network = new_page(browser)
    failures = watch_errors(page)
    page.goto(f"{lab.url}lab/tree/{COMPARE}?token={lab.token}")
    page.wait_for_function(KERNEL_IDLE)
    page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
    page.wait_for_function(ALL_RAN, polling=250)
    sources: list[str] = page.evaluate(CELL_SOURCES)
    try:
        # No key for OpenAI, a rate-limited scripted model, and the demo: two columns say
        # why they failed and what to do, the third answers; the cell itself did not fail.
        compare = cell(page, sources, "%%llmgine openai:gpt-4o-mini flaky demo:llmgine-demo")
        columns = compare.locator(".widget-gridbox > .widget-vbox")
        expect(columns).to_have_count(3)
        expect(columns.nth(0)).to_contain_text("MissingCredentialsError")
        expect(columns.nth(0)).to_contain_text("OPENAI_API_KEY")
        expect(columns.nth(1)).to_contain_text("RateLimitedError")
        expect(columns.nth(2)).to_contain_text("demo:llmgine-demo · done")
        expect(columns.nth(2)).to_contain_text("Offline demo")
        expect(compare).to_contain_text("2 failed")
        expect(compare.locator(".js-plotly-plot")).to_be_visible()
        assert compare.locator('[data-mime-type*="error"]').count() == 0, "the cell failed"
        compare.screenshot(path=shots / "compare-failing-column.png")
        assert network.blocked == [], f"the page tried to leave 127.0.0.1: {network.blocked}"
        assert unexpected(failures) == [], f"uncaught errors in the page: {failures}"
    finally:
        page.screenshot(path=shots / "page.png")
        print(f"screenshots in {shots}")
        page.close()


SWEEPS = "07-sweeps.ipynb"


# About 30 s, with a CPU-bound process beside it: the sweeps notebook's two sweeps on the
# demo model (LLMGINE_MODEL), and its charts.
@pytest.mark.timeout(4 * DEADLINE)
def test_the_sweep_grid_fills_and_a_clicked_cell_shows_its_answer(
    lab: Lab, browser: Browser
) -> None:
    shots = artifacts_dir("jupyterlab-sweeps")
    page, network = new_page(browser)
    failures = watch_errors(page)
    page.goto(f"{lab.url}lab/tree/{SWEEPS}?token={lab.token}")
    page.wait_for_function(KERNEL_IDLE)
    page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
    page.wait_for_function(ALL_RAN, polling=250)
    sources: list[str] = page.evaluate(CELL_SOURCES)
    try:
        stderr = page.locator('.jp-OutputArea-output[data-mime-type*="stderr"]')
        assert stderr.count() == 0, f"errors or warnings in the outputs: {stderr.all_inner_texts()}"
        # The Python sweep: 20 questions x (the demo, as LLMGINE_MODEL, and atlas).
        swept = cell(page, sources, "import tempfile")
        grid = swept.locator(".llmgine-sweep-grid")
        expect(grid.locator(".llmgine-sweep-row")).to_have_count(20)
        cells = grid.locator(".llmgine-sweep-cell")
        expect(cells).to_have_count(40)
        expect(grid.locator('.llmgine-sweep-cell[data-kind="pending"]')).to_have_count(0)
        failed = grid.locator('.llmgine-sweep-cell[data-kind="error"]')
        expect(failed).to_have_count(1)  # atlas on Switzerland
        expect(failed).to_have_css("background-color", "rgb(95, 95, 95)")
        expect(grid.locator(".llmgine-sweep-status")).to_contain_text("40 of 40 rows")
        expect(grid.locator(".llmgine-sweep-legend-bar")).to_be_visible()  # the colour scale
        expect(grid.locator(".llmgine-sweep-legend-low")).to_have_text("0")
        expect(grid.locator(".llmgine-sweep-legend-high")).to_have_text("1")
        # atlas's wrong answer for Australia: red, and a click shows it in full
        australia = grid.locator('.llmgine-sweep-cell[data-prompt="10"][data-column="1"]')
        expect(australia).to_have_text("0.00")
        expect(australia).to_have_css("background-color", "rgb(215, 48, 39)")
        australia.click()
        expect(australia).to_have_class("llmgine-sweep-cell llmgine-sweep-selected")
        detail = swept.locator(".widget-html").filter(has_text="What is the capital of Australia")
        expect(detail).to_contain_text("Sydney")
        expect(detail).to_contain_text("test:atlas")
        expect(swept.locator(".js-plotly-plot").first).to_be_visible()  # the charts
        swept.screenshot(path=shots / "sweep-grid.png")
        # The magic's sweep: its own grid, filled.
        magic = cell(page, sources, "%%llmgine sweep")
        expect(magic.locator(".llmgine-sweep-cell")).to_have_count(4)
        expect(magic.locator(".llmgine-sweep-status")).to_contain_text("4 of 4 rows")
        magic.screenshot(path=shots / "magic-sweep.png")
        assert network.blocked == [], f"the page tried to leave 127.0.0.1: {network.blocked}"
        assert unexpected(failures) == [], f"uncaught errors in the page: {failures}"
    finally:
        page.screenshot(path=shots / "page.png")
        print(f"screenshots in {shots}")
        page.close()
