"""What the browser tests share: Debian's chromium driven by Playwright, servers started
in their own process group and stopped with it, readiness polled with a deadline, and
pages that may reach 127.0.0.1 only.

Every wait in these tests uses one deadline, `DEADLINE`: Playwright's own defaults (5 s
for ``expect``, 30 s for actions) fail on a busy 2-core CI machine that runs other work
beside the suite, while a deadline only costs time when something is really broken.
``conftest.py`` gives it to ``expect``; `new_page` to every page action and navigation;
`Server` to readiness polls and shutdowns. Pass no other number (a test checks).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import IO

import pytest
from playwright.sync_api import Browser, Page, Route, sync_playwright

from tests.deadline import DEADLINE as DEADLINE  # the suite's one deadline, re-exported
from tests.notebook.nb_support import ROOT, isolated_dirs, offline_env

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).with_name("artifacts")

DEADLINE_MS = DEADLINE * 1000  # the same, as Playwright takes it
_LOCAL = re.compile(r"^(?:https?|wss?)://(?:127\.0\.0\.1|localhost)(?::\d+)?/")


def require_chromium() -> Path:
    """Debian's chromium, or skip saying how to install it (never `playwright install`:
    the tests drive the distribution's browser)."""
    if not CHROMIUM.is_file():
        reason = (
            f"the browser tests need Debian's chromium at {CHROMIUM}: apt-get install "
            "chromium (python3 .ci/dev.py test installs it when run as root)"
        )
        print(reason)
        pytest.skip(reason)
    return CHROMIUM


@contextmanager
def chromium() -> Iterator[Browser]:
    """Headless chromium, closed on exit."""
    executable = require_chromium()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(executable),
            args=["--no-sandbox"],
            headless=True,
            timeout=DEADLINE_MS,
        )
        try:
            yield browser
        finally:
            browser.close()


class LocalOnly:
    """Lets a page load from 127.0.0.1 only; anything else is aborted and remembered
    (the widgets ship their JavaScript: nothing may come from a CDN)."""

    def __init__(self, page: Page) -> None:
        self.blocked: list[str] = []
        page.route("**/*", self._route)

    def _route(self, route: Route) -> None:
        url = route.request.url
        if _LOCAL.match(url) or url.startswith(("data:", "blob:")):
            route.continue_()
        else:
            self.blocked.append(url)
            route.abort()


def new_page(browser: Browser) -> tuple[Page, LocalOnly]:
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.set_default_timeout(DEADLINE_MS)  # actions, waits and navigation alike
    return page, LocalOnly(page)


def artifacts_dir(name: str) -> Path:
    """Where a test keeps its screenshots (``tests/browser/artifacts/``, ignored by git)."""
    ignore = ARTIFACTS / ".gitignore"
    if not ignore.exists():  # a checkout without it: still keep the screenshots out of git
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        ignore.write_text("*\n!.gitignore\n")
    folder = ARTIFACTS / name
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir()
    return folder


# Panel's Plotly pane (1.9) sometimes applies a viewport sent by the server with
# Plotly.relayout on its outer element instead of the plot (`this.el` for `this.container`
# in panel/models/plotly.ts), which throws this TypeError and changes nothing on screen.
# anywidget gives a widget's model a fixed 2 s to start (its Runtime rejects on
# ``AbortSignal.timeout(2e3)``) and reports it as an uncaught error even when the start
# then completes: on a loaded machine that fires while the front end is still loading.
# It says nothing of ours; each test's own assertions (the widget renders, fills in and
# answers a click) say whether the widget really started.
KNOWN_UPSTREAM_ERRORS = (
    "Cannot read properties of undefined (reading '_guiEditing')",
    "[anywidget] Failed to initialize model.",
)


def unexpected(page_errors: list[str]) -> list[str]:
    """The page's uncaught errors, less the known upstream ones above (matched by their
    exact words, so any other error still fails a test)."""
    return [e for e in page_errors if not any(k in e for k in KNOWN_UPSTREAM_ERRORS)]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


class Server:
    """A server process in its own process group (so its children, such as kernels, stop
    with it), its output in a log file."""

    def __init__(self, command: list[str], *, env: dict[str, str], cwd: Path, log: Path):
        self.log = log
        self._log: IO[str] = log.open("w")
        self.process = subprocess.Popen(
            command,
            env=env,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )

    def output(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log.read_text("utf-8", errors="replace")

    def wait_until(self, ready: Callable[[], bool], what: str) -> None:
        """Poll ``ready`` until it is true, failing if the process exits or `DEADLINE`
        passes."""
        deadline = time.monotonic() + DEADLINE
        while not ready():
            status = self.process.poll()
            if status is not None:
                pytest.fail(f"the server exited ({status}) before {what}:\n{self.output()[-4000:]}")
            if time.monotonic() > deadline:
                pytest.fail(f"no {what} within {DEADLINE:.0f} s:\n{self.output()[-4000:]}")
            time.sleep(0.1)  # a polling interval, not a wait for something to happen

    def rss_mb(self) -> float:
        """The server process's resident memory now, in MB (Linux's /proc)."""
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        raise RuntimeError(f"no VmRSS for process {self.process.pid}")

    def stop(self, first: signal.Signals = signal.SIGINT) -> None:
        """Signal the process group (SIGINT: a clean shutdown), then kill what is left."""
        try:
            if self.process.poll() is None:
                os.killpg(self.process.pid, first)
                try:
                    self.process.wait(DEADLINE)
                except subprocess.TimeoutExpired:
                    os.killpg(self.process.pid, signal.SIGKILL)
                    self.process.wait(DEADLINE)
            # Children (kernels) may outlive their parent: the group goes too.
            with suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
        finally:
            self._log.close()


def http_ok(url: str) -> bool:
    """Whether ``url`` answers 200 (a refused connection answers at once: not yet)."""
    try:
        with urllib.request.urlopen(url, timeout=DEADLINE) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


@contextmanager
def dashboard_process(folder: Path, *, demo: float) -> Iterator[tuple[str, Server]]:
    """``python -m llmgine dashboard`` on a free port of 127.0.0.1, running a short
    session with a demo LLM call every ``demo`` seconds; its URL and process. Stopped
    with Ctrl-C (SIGINT) on exit, as a person would."""
    require_chromium()  # before starting anything
    port = free_port()
    options = ["--port", str(port), "--demo", str(demo)]
    # This checkout's llmgine, beside these tests, wherever the environment's install
    # points (a benchmark run from another checkout's environment measures this one).
    path = os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])
    server = Server(
        [sys.executable, "-u", "-m", "llmgine", "dashboard", *options],
        env=offline_env({**isolated_dirs(folder / "state"), "PYTHONPATH": path}),
        cwd=folder,
        log=folder / "dashboard.log",
    )
    try:
        server.wait_until(lambda: "llmgine dashboard on" in server.output(), "dashboard")
        yield f"http://127.0.0.1:{port}/", server
    finally:
        server.stop(signal.SIGINT)  # main_dashboard's Ctrl-C: stops the server and the bus
