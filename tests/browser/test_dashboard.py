"""The Panel dashboard in headless chromium: the Events, Trace and Compare tabs render
and update, served by ``python -m llmgine dashboard`` (`main_dashboard`) on 127.0.0.1
with demo traffic. Screenshots go to ``tests/browser/artifacts/dashboard/``.

The soak (minutes of traffic with a page open) is ``test_dashboard_soak.py``."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, expect

from tests.browser.browser_support import (
    DEADLINE,
    Server,
    artifacts_dir,
    dashboard_process,
    new_page,
    unexpected,
)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, Server]]:
    # A short session with a demo LLM call every 0.3 s, for the views to show.
    with dashboard_process(tmp_path, demo=0.3) as (url, server):
        yield url, server


# About 8 s, with a CPU-bound process beside it: a server and a page start, and the
# compare tab waits for two streamed answers. The limit is the server's start and a few
# waits at the deadline, for a CI machine busy with other work.
@pytest.mark.timeout(4 * DEADLINE)
def test_dashboard_shows_events_trace_and_a_comparison(
    served: tuple[str, Server], browser: Browser
) -> None:
    url, server = served
    shots = artifacts_dir("dashboard")
    page, network = new_page(browser)
    failures: list[str] = []
    page.on("pageerror", lambda error: failures.append(str(error)))
    page.goto(url)
    try:
        # Events: the bus's events arrive in the table as the demo sessions run.
        rows = page.locator(".llmgine-dashboard-events .tabulator-row")
        expect(rows.first).to_be_visible()
        expect(rows.nth(3)).to_be_attached()
        expect(page.locator(".llmgine-dashboard-events")).to_contain_text("LLMCallStarted")
        expect(page.locator(".llmgine-dashboard-counts")).to_contain_text("seen")
        page.screenshot(path=shots / "events.png")

        # Trace: the sessions and their LLM calls as a plotly waterfall.
        page.locator(".bk-tab", has_text="Trace").click()
        bars = page.locator(".llmgine-dashboard-trace .js-plotly-plot .barlayer .point")
        expect(bars.first).to_be_visible()
        expect(bars.nth(1)).to_be_attached()
        expect(page.locator(".llmgine-dashboard-trace-summary")).to_contain_text("spans")
        page.screenshot(path=shots / "trace.png")

        # Compare: one prompt to the two demo models, both columns answered.
        page.locator(".bk-tab", has_text="Compare").click()
        page.locator(".llmgine-dashboard-prompt textarea").fill("Why is the sky blue?")
        page.locator(".llmgine-dashboard-compare button").click()
        result = page.locator(".llmgine-dashboard-compare-result")
        expect(result).to_contain_text("2 models, done in")
        expect(result).to_contain_text("demo:llmgine-demo · done")
        expect(result).to_contain_text("demo:llmgine-demo-2 · done")
        expect(result).to_contain_text("sky blue")
        # Its timings chart (the trace tab's chart is hidden now).
        expect(page.locator(".js-plotly-plot >> visible=true").first).to_be_visible()
        page.screenshot(path=shots / "compare.png")

        assert network.blocked == [], f"the page tried to leave 127.0.0.1: {network.blocked}"
        others = unexpected(failures)  # less Panel's known Plotly TypeError
        assert others == [], f"uncaught errors in the page: {others}"
    finally:
        page.close()
        (shots / "dashboard.log").write_text(server.output())
        print(f"screenshots in {shots}")
        if len(unexpected(failures)) < len(failures):
            print("tolerated Panel's known Plotly.relayout TypeError (browser_support.py)")


@pytest.mark.timeout(3 * DEADLINE)  # the server's start, and its shutdown, at the deadline
def test_dashboard_stops_cleanly_on_ctrl_c(served: tuple[str, Server]) -> None:
    _, server = served
    server.stop(signal.SIGINT)
    assert "llmgine dashboard stopped" in server.output()
    assert server.process.returncode == 0, server.output()
