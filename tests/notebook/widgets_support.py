"""What the widget tests share: events and commands, a comm that records what a front end
would receive, and the observability switch."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any, ClassVar

import comm
import pytest
from comm.base_comm import BaseComm

from llmgine import observability
from llmgine.bus import Command, Event
from llmgine.observability import semconv

# Shaped like a real key, so the redactor's patterns catch it though nobody registered it.
PLANTED_KEY = "sk-proj-" + "Wid9etTe5tK3yAb3dEf6hIj9kLm2nOp5"


class Ping(Event):
    n: int


class Pong(Event):
    n: int


class Leaky(Event):
    """An event carrying a key three ways: by value, under a sensitive name, nested."""

    note: str
    api_key: str
    headers: dict[str, str]


class Plan(Command[str]):
    """A command whose handler makes an LLM call and runs a tool."""

    topic: str


class Gate(Command[str]):
    """A command that runs until the test opens its gate."""


class RecordingComm(BaseComm):
    """A comm with no front end that keeps, as JSON, every message it would send."""

    sent: ClassVar[list[str]] = []

    def publish_msg(self, msg_type: str, data: Any = None, metadata: Any = None,
                    buffers: Any = None, **keys: Any) -> None:  # fmt: skip
        RecordingComm.sent.append(json.dumps(data, default=str))


@pytest.fixture
def front_end() -> Iterator[list[str]]:
    """Every message widgets send from now on (as JSON text), as a front end sees them."""
    previous = comm.create_comm
    RecordingComm.sent = []
    comm.create_comm = RecordingComm
    try:
        yield RecordingComm.sent
    finally:
        comm.create_comm = previous


@pytest.fixture
def observability_off(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Observability off before and after, and the environment unable to switch on
    content capture or export behind the test's back."""
    for name in (
        semconv.CAPTURE_CONTENT_ENV,
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    ):
        monkeypatch.delenv(name, raising=False)
    observability.disable()
    yield
    observability.disable()
