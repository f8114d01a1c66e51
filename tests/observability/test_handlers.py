"""The JSONL file handler (off the loop, rotating, counting drops) and the console handler."""

from __future__ import annotations

import io
import json
import threading
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import TracerProvider

from llmgine import observability
from llmgine.bus import Command, Event, MessageBus, from_json
from llmgine.observability import ConsoleHandler, JsonlHandler


class Said(Event):
    text: str


class Ask(Command[str]):
    pass


def read_lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


async def test_jsonl_has_spans_and_events_that_read_back(bus: MessageBus, tmp_path: Path) -> None:
    path = tmp_path / "trace.jsonl"
    obs = observability.enable(bus, jsonl=path, jsonl_events=True)
    bus.on_command(Ask, lambda c: "ok")
    async with bus.session("chat") as session:
        await session.execute(Ask())
        await session.publish(Said(text="hello"))
    obs.flush()
    lines = read_lines(path)
    spans = [line for line in lines if line["kind"] == "span"]
    events = [line for line in lines if line["kind"] == "event"]
    assert {s["name"] for s in spans} == {"session chat", "command Ask"}
    command = next(s for s in spans if s["name"] == "command Ask")
    assert command["status"] == "ok"
    assert command["attributes"]["llmgine.session.id"] == session.id  # type: ignore[index]
    said = next(e for e in events if str(e["type"]).endswith("Said"))
    del said["kind"]
    back = from_json(json.dumps(said))
    assert isinstance(back, Said)
    assert back.text == "hello"


async def test_jsonl_writes_on_its_own_thread(bus: MessageBus, tmp_path: Path) -> None:
    handler = JsonlHandler(tmp_path / "t.jsonl", events=True)
    writers: set[int] = set()
    original = handler._write

    def spy(chunk: str) -> None:
        writers.add(threading.get_ident())
        original(chunk)

    handler._write = spy  # type: ignore[method-assign]
    for i in range(100):
        handler.on_event(Said(text=str(i)))
    assert handler.force_flush()
    handler.shutdown()
    assert writers == {handler._thread.ident}
    assert threading.get_ident() not in writers
    assert len(read_lines(tmp_path / "t.jsonl")) == 100
    assert handler.written == 100


def test_jsonl_rotates_and_keeps_a_bounded_number_of_backups(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    handler = JsonlHandler(path, events=True, max_bytes=2_000, backups=2)
    for round_ in range(6):
        for i in range(20):
            handler.on_event(Said(text=f"{round_}-{i}-" + "x" * 40))
        handler.force_flush()
    handler.shutdown()
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["t.jsonl", "t.jsonl.1", "t.jsonl.2"]
    for name in files:
        assert (tmp_path / name).stat().st_size <= 2_000 + 3_000  # at most one batch over
    newest = read_lines(path)[-1]
    assert "5-19-" in json.dumps(newest)


def test_jsonl_counts_what_it_drops_when_the_writer_falls_behind(tmp_path: Path) -> None:
    handler = JsonlHandler(tmp_path / "t.jsonl", events=True, max_pending=10)
    entered, gate = threading.Event(), threading.Event()
    original = handler._write

    def slow(chunk: str) -> None:
        entered.set()
        gate.wait()
        original(chunk)

    handler._write = slow  # type: ignore[method-assign]
    handler.on_event(Said(text="first"))
    handler._wake.set()
    assert entered.wait(timeout=10)  # the writer took "first" and is stuck on the gate
    for i in range(25):
        handler.on_event(Said(text=str(i)))
    assert handler.dropped == 15  # 10 pending fit; 15 were refused and counted
    gate.set()
    assert handler.force_flush()
    handler.shutdown()
    assert len(read_lines(tmp_path / "t.jsonl")) == 11


def test_jsonl_refuses_bad_settings(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="max_bytes"):
        JsonlHandler(tmp_path / "x", max_bytes=10)
    with pytest.raises(ValueError, match="backups"):
        JsonlHandler(tmp_path / "x", backups=-1)


async def test_console_prints_readable_spans_and_events(bus: MessageBus) -> None:
    out = io.StringIO()
    observability.enable(bus, console=out)
    bus.on_command(Ask, lambda c: "ok")
    async with bus.session("chat") as session:
        await session.execute(Ask())
        await session.publish(Said(text="hello there"), wait=True)
    obs = observability.current()
    assert obs is not None
    obs.flush()  # spans reach the console once the loop is next free, or on flush
    text = out.getvalue()
    assert "command Ask" in text
    assert "session chat" in text
    assert "Said" in text
    assert "hello there" in text
    assert "\x1b[" not in text  # not a terminal: no colour codes


def test_console_colours_a_terminal() -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    out = Tty()
    provider = TracerProvider()
    provider.add_span_processor(ConsoleHandler(out))
    provider.get_tracer("t").start_span("x", attributes={"llmgine.span.kind": "llm"}).end()
    assert "\x1b[" in out.getvalue()


async def test_jsonl_writes_spans_only_unless_events_are_asked_for(
    bus: MessageBus, tmp_path: Path
) -> None:
    path = tmp_path / "spans.jsonl"
    obs = observability.enable(bus, jsonl=path)
    async with bus.session("chat") as session:
        await session.publish(Said(text="not in the file"), wait=True)
    obs.flush()
    assert [line["kind"] for line in read_lines(path)] == ["span"]
    assert len(obs.events_df()) == 3  # still recorded in memory
