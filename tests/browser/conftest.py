"""Fixtures of the browser tests: one headless chromium per module, and the suite's one
deadline for every Playwright ``expect`` (whose own default is 5 s)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, expect

from tests.browser.browser_support import DEADLINE_MS, chromium


@pytest.fixture(scope="session", autouse=True)
def expect_waits_until_the_deadline() -> None:
    expect.set_options(timeout=DEADLINE_MS)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as launched:
        yield launched
