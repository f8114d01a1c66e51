"""Every wait of the browser tests uses the suite's one deadline (`DEADLINE`), so a busy
machine makes them slower, not red."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from playwright.sync_api import Browser, expect

from tests.browser.browser_support import DEADLINE, new_page

HERE = Path(__file__).parent
LATE_MS = 6_000  # past Playwright's own 5 s default for expect
# A timeout given as an argument, a keyword or a default, and the page's own sleep.
WAIT = re.compile(
    r"(?:timeout(?:\s*:\s*\w+)?\s*[=(]|set_default(?:_navigation)?_timeout\(|\.wait\()\s*([^,)]*)"
)
SLEEP_IN_PAGE = re.compile(r"\bwait_for_timeout\(")


# Slow by design: about 6 s, the shortest wait that Playwright's own default would fail.
@pytest.mark.timeout(DEADLINE)
def test_expect_waits_past_playwrights_own_five_seconds(browser: Browser) -> None:
    page, _ = new_page(browser)
    try:
        page.set_content(
            "<script>setTimeout(() => document.body.insertAdjacentHTML("
            f"'beforeend', '<p id=late>late</p>'), {LATE_MS});</script>"
        )
        started = time.monotonic()
        expect(page.locator("#late")).to_be_visible()  # no timeout given: the suite's
        assert time.monotonic() - started >= LATE_MS / 1000 - 1  # it did wait that long
    finally:
        page.close()


def test_no_browser_test_waits_on_a_number_of_its_own() -> None:
    """A number of seconds in a test is a guess about the machine; `DEADLINE` is the one
    guess, made generous in one place."""
    found: list[str] = []
    for path in sorted(HERE.glob("*.py")):
        if path.name == Path(__file__).name:
            continue
        for number, line in enumerate(path.read_text("utf-8").splitlines(), 1):
            code = line.split("#", 1)[0]
            for argument in WAIT.findall(code):
                if argument.strip() and "DEADLINE" not in argument:
                    found.append(f"{path.name}:{number}: {line.strip()}")
            if SLEEP_IN_PAGE.search(code):
                found.append(f"{path.name}:{number}: a sleep in the page: {line.strip()}")
    assert found == [], "waits without the suite's DEADLINE:\n" + "\n".join(found)
