"""Fixtures shared by the whole suite."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from llmgine.bus import MessageBus


class FakeClock:
    """A monotonic clock that moves only when a test says so."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
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
