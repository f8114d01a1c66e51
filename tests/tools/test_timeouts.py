"""Timeouts told truthfully: an async tool is cancelled, but a sync tool's thread cannot be
stopped, so the model, the events and the span hear that it may still be running, and its
late finish (or failure) is reported by a log line and a `ToolCallLateFinished` event."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from llmgine import observability
from llmgine.bus import MessageBus
from llmgine.llm import ToolCallPart
from llmgine.tools import (
    Tool,
    ToolCallFailed,
    ToolCallLateFinished,
    ToolManager,
    ToolTimeoutError,
    tool,
)
from tests.deadline import DEADLINE

MAY_STILL_RUN = "may still be running and its effects may still happen"


class Released:
    """A gate a blocked tool thread waits on; always opened at the end of a test."""

    def __init__(self) -> None:
        self.gate = threading.Event()

    def wait(self) -> None:
        assert self.gate.wait(30), "the test never released the tool"


@pytest.fixture
def released() -> Iterator[Released]:
    gate = Released()
    yield gate
    gate.gate.set()  # never leave a thread blocked behind a failed test


class LogWaiter(logging.Handler):
    """Collects llmgine.tools records; `wait_for` blocks until one contains a text."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[str] = []
        self._changed = threading.Condition()

    def emit(self, record: logging.LogRecord) -> None:
        with self._changed:
            self.records.append(record.getMessage())
            self._changed.notify_all()

    def wait_for(self, text: str) -> str:
        with self._changed:
            found = self._changed.wait_for(
                lambda: [r for r in self.records if text in r], timeout=DEADLINE
            )
        assert found, f"no log line containing {text!r}: {self.records}"
        return found[0]


@pytest.fixture
def tool_log() -> Iterator[LogWaiter]:
    waiter = LogWaiter()
    logger = logging.getLogger("llmgine.tools")
    logger.addHandler(waiter)
    yield waiter
    logger.removeHandler(waiter)


def late_events(bus: MessageBus) -> tuple[list[ToolCallLateFinished], asyncio.Event]:
    seen: list[ToolCallLateFinished] = []
    arrived = asyncio.Event()

    def record(event: ToolCallLateFinished) -> None:
        seen.append(event)
        arrived.set()

    bus.on_event(ToolCallLateFinished, record)
    return seen, arrived


async def test_a_timed_out_sync_tool_is_said_to_maybe_run_on_and_its_late_finish_reported(
    bus: MessageBus, released: Released, tool_log: LogWaiter
) -> None:
    effects: list[str] = []

    @tool(timeout=0.05)
    def send_email(to: str) -> str:
        """Send an email."""
        released.wait()
        effects.append(to)
        return "sent"

    obs = observability.enable(bus)
    try:
        failed: list[ToolCallFailed] = []
        bus.on_event(ToolCallFailed, failed.append)
        late, arrived = late_events(bus)
        call = ToolCallPart(id="call_7", name="send_email", arguments={"to": "ann"})
        result = await ToolManager([send_email], bus=bus).execute(call, round=2, loop_id="L")

        # What the model, the event and the span are told, while the thread still runs.
        assert result.is_error
        assert result.text.startswith("Error: tool 'send_email' timed out after 0.05 s; it ")
        assert MAY_STILL_RUN in result.text
        assert "Check whether it took effect before calling it again" in result.text
        await bus.drain()
        assert [f.message for f in failed] == [result.text]
        assert failed[0].error is not None
        assert MAY_STILL_RUN in failed[0].error.message
        spans = obs.spans_df(name="execute_tool send_email")
        assert MAY_STILL_RUN in spans["status_message"].item()
        assert effects == []

        released.gate.set()  # the thread goes on, and does what it was asked after all
        await asyncio.wait_for(arrived.wait(), DEADLINE)
        assert effects == ["ann"]
        [event] = late
        assert (event.call_id, event.tool_name, event.reason, event.ok) == (
            "call_7",
            "send_email",
            "timeout",
            True,
        )
        assert (event.round, event.loop_id, event.error_type) == (2, "L", None)
        assert event.duration_ms >= 50
        line = tool_log.wait_for("call_7")
        assert "tool 'send_email' (call call_7) finished" in line
        assert "timed out" in line
    finally:
        observability.disable()


async def test_a_late_failure_is_reported_with_its_error(
    bus: MessageBus, released: Released, tool_log: LogWaiter
) -> None:
    @tool(timeout=0.05)
    def charge(amount: int) -> str:
        """Charge a card."""
        released.wait()
        raise ConnectionError("gateway reset")

    late, arrived = late_events(bus)
    call = ToolCallPart(id="call_9", name="charge", arguments={"amount": 5})
    result = await ToolManager([charge], bus=bus).execute(call)
    assert MAY_STILL_RUN in result.text
    released.gate.set()
    await asyncio.wait_for(arrived.wait(), DEADLINE)
    [event] = late
    assert (event.call_id, event.ok, event.error_type) == ("call_9", False, "ConnectionError")
    assert event.error is not None
    assert "gateway reset" in event.error.message
    line = tool_log.wait_for("call_9")
    assert "failed (ConnectionError: gateway reset)" in line


async def test_a_cancelled_sync_call_reports_its_thread_ending_too(
    bus: MessageBus, released: Released, tool_log: LogWaiter
) -> None:
    started = threading.Event()

    @tool
    def slow() -> str:
        """Take a while."""
        started.set()
        released.wait()
        return "done"

    late, arrived = late_events(bus)
    manager = ToolManager([slow], bus=bus)
    task = asyncio.ensure_future(manager.execute(ToolCallPart(id="c", name="slow")))
    assert await asyncio.to_thread(started.wait, 30)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    released.gate.set()
    await asyncio.wait_for(arrived.wait(), DEADLINE)
    assert [(e.call_id, e.reason, e.ok) for e in late] == [("c", "cancelled", True)]
    assert "was cancelled" in tool_log.wait_for("(call c)")


async def test_async_tools_are_cancelled_and_remote_ones_may_complete(bus: MessageBus) -> None:
    never = asyncio.Event()

    async def stuck() -> None:
        await never.wait()

    async def remote_call(arguments: dict[str, Any]) -> Any:
        await never.wait()

    remote = Tool.from_schema("remote", "A server's tool.", {"type": "object"}, remote_call)
    late, _ = late_events(bus)
    manager = ToolManager([stuck, remote], bus=bus, timeout=0.05)
    cancelled, abandoned = await manager.execute_all(
        [ToolCallPart(id="a", name="stuck"), ToolCallPart(id="b", name="remote")]
    )
    assert cancelled.text == (
        "Error: tool 'stuck' timed out after 0.05 s and was cancelled. Try again with a "
        "smaller request, or answer without it."
    )
    assert "the server may still complete it, so its effects may still happen" in abandoned.text
    await bus.drain()
    assert late == []  # nothing runs on: nothing to report


def test_a_thread_ending_after_its_loop_closed_is_still_logged(
    released: Released, tool_log: LogWaiter
) -> None:
    @tool(timeout=0.05)
    def lingering() -> str:
        """Outlive the loop."""
        released.wait()
        return "late"

    async def run() -> str:
        bus = MessageBus()
        await bus.start()
        result = await ToolManager([lingering], bus=bus).execute(
            ToolCallPart(id="gone", name="lingering")
        )
        await bus.stop()
        return result.text

    loop = asyncio.new_event_loop()
    try:
        assert MAY_STILL_RUN in loop.run_until_complete(run())
    finally:
        loop.close()  # without waiting for the default executor's thread
    released.gate.set()
    assert "finished" in tool_log.wait_for("(call gone)")
    assert "its event loop has closed" in tool_log.wait_for("call gone: its event loop")


def test_the_error_says_whether_the_run_may_go_on() -> None:
    assert ToolTimeoutError("x", tool="t", timeout=1).may_still_run is False
    assert ToolTimeoutError("x", tool="t", timeout=1, may_still_run=True).may_still_run


async def test_a_thread_that_already_ended_tells_its_listener_at_once() -> None:
    from llmgine.tools._thread import ThreadRun

    def fail() -> None:
        raise KeyError("k")

    heard: list[BaseException | None] = []
    done = ThreadRun(lambda: "x", [], {})
    assert await done.run() == "x"
    assert done.abandon(heard.append) is False  # ended: told now, not later
    failed = ThreadRun(fail, [], {})
    with pytest.raises(KeyError):
        await failed.run()
    assert failed.abandon(heard.append) is False
    assert heard[0] is None
    assert isinstance(heard[1], KeyError)
