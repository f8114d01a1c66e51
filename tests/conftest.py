"""Fixtures shared by the whole suite."""

from __future__ import annotations

import signal
from collections.abc import AsyncIterator

import pytest

from llmgine.bus import MessageBus


def pytest_configure(config: pytest.Config) -> None:
    # A suite started in the background of a non-interactive shell (`.ci/run &`, as CI
    # harnesses do) inherits SIGINT *ignored*, and an ignored signal stays ignored across
    # exec: every server the tests start would then shrug off the Ctrl-C the CLI tests
    # send, as no person's terminal ever does. Handled signals reset to the default at
    # exec, so handling it here gives the children a real Ctrl-C.
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        print("conftest: SIGINT was ignored (a background job); restored for child processes")
        signal.signal(signal.SIGINT, signal.default_int_handler)


class FakeClock:
    """A monotonic clock that moves only when a test says so."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class FakeTime:
    """A clock that moves only when its `sleep` is awaited, and the sleeps asked for: what
    code that takes ``sleep=`` and ``clock=`` (the sweep, the recorder's pacing) is given."""

    def __init__(self, start: float = 0.0) -> None:
        self.now = start
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def bus() -> AsyncIterator[MessageBus]:
    """A fresh bus per test, stopped (and so drained) afterwards."""
    bus = MessageBus()
    await bus.start()
    yield bus
    await bus.stop()
