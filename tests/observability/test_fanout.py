"""The redacting fan-out hands spans to consumers off the caller's path, in order, and
never loses one: readers catch up, flush and close hand over, a loop-less thread at once."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor

from llmgine._idle import when_idle
from llmgine._redact import Redactor
from llmgine.observability import SpanBuffer
from llmgine.observability._buffer import HOLD_LIMIT, RedactingFanout
from llmgine.observability._tracer import LiteTracer
from tests.deadline import DEADLINE


class Recorder(SpanProcessor):
    """Keeps what it was told, in order: ("start" | "end", span name, thread name)."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str, str]] = []

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        self.seen.append(("start", span.name, threading.current_thread().name))

    def on_end(self, span: ReadableSpan) -> None:
        self.seen.append(("end", span.name, threading.current_thread().name))


async def loop_idle() -> None:
    """Return once the loop has had an idle turn (work held for one has run by then)."""
    done = asyncio.get_running_loop().create_future()
    when_idle(asyncio.get_running_loop(), lambda: done.set_result(None))
    await done


def tracer_for(*processors: SpanProcessor, secret: str = "sk-fanout-secret-123") -> Any:
    redactor = Redactor()
    redactor.add_secret(secret)
    fanout = RedactingFanout(redactor, processors)
    return LiteTracer(fanout, Resource.create({})), fanout


async def test_spans_of_a_loop_are_handed_over_when_the_loop_is_next_idle() -> None:
    recorder = Recorder()
    tracer, _ = tracer_for(recorder)
    tracer.start_span("a").end()
    tracer.start_span("b").end()
    assert recorder.seen == []  # nothing yet: the caller has not waited
    await asyncio.sleep(0)  # a turn, but this task is ready again: not idle
    assert recorder.seen == []
    await loop_idle()
    assert [(what, name) for what, name, _ in recorder.seen] == [
        ("start", "a"),
        ("end", "a"),
        ("start", "b"),
        ("end", "b"),
    ]


async def test_reading_the_buffer_catches_up_first() -> None:
    buffer = SpanBuffer()
    tracer, _ = tracer_for(buffer)
    running = tracer.start_span("running")
    tracer.start_span("done").end()
    assert [s.name for s in buffer.finished()] == ["done"]
    assert [s.name for s in buffer.running()] == ["running"]
    running.end()
    assert len(buffer) == 2
    assert [r.name for r in buffer.records(Redactor())] == ["done", "running"]


async def test_flush_and_close_hand_over_what_is_held() -> None:
    recorder = Recorder()
    tracer, fanout = tracer_for(recorder)
    tracer.start_span("a").end()
    assert fanout.force_flush()
    assert len(recorder.seen) == 2
    tracer.start_span("b").end()
    fanout.close()
    assert [name for _, name, _ in recorder.seen] == ["a", "a", "b", "b"]
    tracer.start_span("after").end()  # closed: forwards nothing more
    fanout.hand_over()
    assert len(recorder.seen) == 4


def test_a_thread_without_a_loop_hands_over_at_once() -> None:
    recorder = Recorder()
    tracer, _ = tracer_for(recorder)
    tracer.start_span("sync").end()
    assert [(what, name) for what, name, _ in recorder.seen] == [("start", "sync"), ("end", "sync")]


async def test_a_long_burst_without_waiting_is_handed_over_in_bounded_batches() -> None:
    recorder = Recorder()
    tracer, _ = tracer_for(recorder)
    for i in range(HOLD_LIMIT):  # 2 * HOLD_LIMIT start/end items: at least one hand-over
        tracer.start_span(f"s{i}").end()
    assert len(recorder.seen) >= HOLD_LIMIT
    assert recorder.seen[0][:2] == ("start", "s0")


async def test_secrets_are_redacted_before_any_consumer_sees_the_span() -> None:
    buffer = SpanBuffer()
    tracer, _ = tracer_for(buffer, secret="sk-fanout-secret-123")
    span = tracer.start_span("call")
    span.set_attribute("note", "key sk-fanout-secret-123 leaked")
    span.end()
    (record,) = buffer.finished()
    assert "sk-fanout-secret-123" not in str(record.attributes)


async def test_a_broken_consumer_is_logged_and_the_others_still_get_every_span(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class Broken(SpanProcessor):
        def on_end(self, span: ReadableSpan) -> None:
            raise RuntimeError("consumer bug")

    recorder = Recorder()
    tracer, fanout = tracer_for(Broken(), recorder)
    with caplog.at_level(logging.ERROR, logger="llmgine.observability"):
        tracer.start_span("a").end()
        tracer.start_span("b").end()
        fanout.hand_over()
    assert [name for what, name, _ in recorder.seen if what == "end"] == ["a", "b"]
    failures = [r for r in caplog.records if "failed on a span" in r.getMessage()]
    assert len(failures) == 2
    assert all(r.exc_info and "consumer bug" in str(r.exc_info[1]) for r in failures)


def test_spans_held_for_a_loop_that_closed_go_with_the_next_loops_hand_over() -> None:
    recorder = Recorder()
    tracer, _ = tracer_for(recorder)

    async def end_one(name: str) -> None:
        tracer.start_span(name).end()

    loop = asyncio.new_event_loop()
    loop.run_until_complete(end_one("first"))  # held; the loop may close before its turn
    loop.close()

    async def second() -> None:
        await end_one("second")
        await loop_idle()

    asyncio.run(second())
    assert [name for what, name, _ in recorder.seen if what == "end"] == ["first", "second"]


def test_spans_ended_as_asyncio_run_ends_reach_the_console_by_exit(tmp_path: Path) -> None:
    # The program's last span, ended as its loop closes, is still printed: at exit.
    script = tmp_path / "last_span.py"
    script.write_text(
        "import asyncio, sys\n"
        "from llmgine import observability\n"
        "from llmgine.bus import MessageBus\n"
        "async def main():\n"
        "    observability.enable(MessageBus(), console=sys.stdout)\n"
        "    observability.current().tracer.start_span('the-last-span').end()\n"
        "asyncio.run(main())\n"
    )
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=DEADLINE, check=True
    )
    assert "the-last-span" in done.stdout, done.stderr


def test_the_buffer_of_a_closed_loop_still_shows_its_last_spans() -> None:
    buffer = SpanBuffer()
    tracer, _ = tracer_for(buffer)

    async def main() -> None:
        tracer.start_span("last").end()

    asyncio.run(main())
    assert [s.name for s in buffer.finished()] == ["last"]
