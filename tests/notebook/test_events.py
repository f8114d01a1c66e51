"""EventStream: a real bus's events as rows, filters, pause, the bound, the throttle,
redacted payloads, closing, and the shipped front end."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import logging
from pathlib import Path

import pytest

from llmgine.bus import MessageBus, SessionStarted, message_type_name
from llmgine.notebook import EventStream
from llmgine.notebook._event_feed import EventFeed
from llmgine.notebook._static_html import asset
from llmgine.notebook._ticker import Ticker

from .widgets_support import PLANTED_KEY, Leaky, Ping, Pong, front_end

__all__ = ["front_end"]  # a fixture, imported to be used here

ROOT = Path(__file__).resolve().parents[2]


async def publish(
    bus: MessageBus, cls: type[Ping] | type[Pong], count: int, start: int = 0
) -> None:
    for n in range(start, start + count):
        await bus.publish(cls(n=n))
    await bus.drain()


async def test_events_published_on_a_bus_appear_as_rows_after_a_flush(bus: MessageBus) -> None:
    stream = EventStream(bus, interval=3600)  # the ticker will not fire: flush by hand
    try:
        async with bus.session("chat") as session:
            await session.publish(Ping(n=7))
        await bus.publish(Pong(n=8))
        await bus.drain()
        assert stream.rows == []  # nothing is rendered until a flush
        renders = stream.renders
        assert stream.flush()
        types = [r["type"] for r in stream.rows]
        assert types == ["SessionStarted", "Ping", "SessionEnded", "Pong"]
        ping = stream.rows[1]
        assert ping["session"] == session.id
        assert ping["summary"] == "n=7"
        assert stream.type_names["Ping"].endswith("widgets_support.Ping")
        assert len(ping["time"]) == len("12:34:56.789")
        assert stream.rows[3]["session"] == ""
        assert stream.counts == {"seen": 4, "kept": 4, "shown": 4, "dropped": 0}
        assert json.loads(stream.rows_json) == stream.rows  # what the front end draws
        assert stream.types == ["Ping", "Pong", "SessionEnded", "SessionStarted"]
        assert stream.sessions == [session.id]
        assert not stream.flush()  # nothing new: no render
        assert stream.renders == renders + 1
    finally:
        stream.close()


async def test_filters_by_type_and_session(bus: MessageBus) -> None:
    stream = EventStream(bus, types=[Ping], interval=3600)
    try:
        async with bus.session("a") as a:
            await a.publish(Ping(n=1))
            await a.publish(Pong(n=2))
        async with bus.session("b") as b:
            await b.publish(Ping(n=3))
        await bus.drain()
        stream.flush()
        assert [r["summary"] for r in stream.rows] == ["n=1", "n=3"]
        stream.filter(types=["Ping", "Pong"], session=a)
        assert [r["summary"] for r in stream.rows] == ["n=1", "n=2"]
        assert stream.session_filter == a.id
        # What the front end does: set the traits; the rows are rebuilt from those kept.
        stream.type_filter = []
        stream.session_filter = b.id
        assert [r["type"] for r in stream.rows] == ["SessionStarted", "Ping", "SessionEnded"]
        stream.session_filter = ""
        stream.type_filter = [message_type_name(SessionStarted)]  # full names work too
        assert [r["session"] for r in stream.rows] == [a.id, b.id]
        # A type first seen after the filter was set still passes it.
        stream.filter(types=["Pong"])
        await bus.publish(Pong(n=4))
        await bus.drain()
        stream.flush()
        assert [r["summary"] for r in stream.rows] == ["n=2", "n=4"]
    finally:
        stream.close()


async def test_pause_stops_rows_and_resume_catches_up(bus: MessageBus) -> None:
    stream = EventStream(bus, interval=3600)
    try:
        await publish(bus, Ping, 3)
        stream.flush()
        stream.pause()
        await publish(bus, Ping, 5, start=3)
        assert not stream.flush()
        assert len(stream.rows) == 3
        assert stream.counts["seen"] == 8  # still counted while paused
        stream.resume()  # renders at once, with what arrived meanwhile
        assert [r["summary"] for r in stream.rows][-1] == "n=7"
        assert len(stream.rows) == 8
        # The front end's pause button sets the trait.
        stream.paused = True
        assert stream.feed.paused
        stream.paused = False
        assert not stream.feed.paused
    finally:
        stream.close()


async def test_the_buffer_bound_holds_and_drops_are_counted(bus: MessageBus) -> None:
    stream = EventStream(bus, max_rows=10, capacity=20, interval=3600)
    try:
        await publish(bus, Ping, 100)
        stream.flush()
        assert len(stream.rows) == 10
        assert stream.rows[-1]["summary"] == "n=99"
        assert stream.counts == {"seen": 100, "kept": 20, "shown": 10, "dropped": 80}
        assert stream.seen == 100
        assert stream.dropped == 80
        # Filtering looks only at the events kept.
        stream.filter(types=["Pong"])
        assert stream.rows == []
    finally:
        stream.close()


async def test_events_not_yet_flushed_are_not_counted_as_dropped(bus: MessageBus) -> None:
    stream = EventStream(bus, max_rows=10, capacity=20, interval=3600)
    try:
        await publish(bus, Ping, 5)
        # On their way in (no flush yet): seen, not kept, and not dropped either.
        assert stream.counts == {"seen": 0, "kept": 0, "shown": 0, "dropped": 0}  # as sent
        assert stream.feed.counts() == {"seen": 5, "kept": 0, "shown": 0, "dropped": 0}
        assert stream.dropped == 0
        assert "dropped 0" in repr(stream)
        # Past the intake's bound, events are lost before any flush: those are dropped.
        await publish(bus, Ping, 95, start=5)
        assert stream.feed.counts() == {"seen": 100, "kept": 0, "shown": 0, "dropped": 80}
        stream.flush()
        assert stream.feed.counts() == {"seen": 100, "kept": 20, "shown": 10, "dropped": 80}
    finally:
        stream.close()


async def test_text_and_html_come_from_one_flush(bus: MessageBus) -> None:
    stream = EventStream(bus, interval=3600)
    try:
        await publish(bus, Ping, 7)
        bundle, _ = stream._repr_mimebundle_()
        assert "application/vnd.jupyter.widget-view+json" in bundle  # the live view too
        line = "seen 7 · kept 7 · shown 7 · dropped 0"
        assert line in bundle["text/plain"], bundle["text/plain"]
        assert line in bundle["text/html"]
        assert bundle["text/html"].count('class="llmgine-event-row"') == 7
    finally:
        stream.close()


async def test_closing_removes_the_observer(bus: MessageBus) -> None:
    stream = EventStream(bus)
    await publish(bus, Ping, 2)
    observed = bus.stats().observed
    assert observed == 2
    stream.close()
    await publish(bus, Ping, 5)
    # A bus counts observed events only while it has an observer: none is left.
    assert bus.stats().observed == observed
    assert stream.feed.closed
    assert stream.seen == 2
    assert not stream._ticker.running
    assert "closed" in repr(stream)


async def test_a_flood_of_50000_events_takes_a_handful_of_renders(bus: MessageBus) -> None:
    stream = EventStream(bus)  # the throttled flusher runs, ten times a second at most
    try:
        for n in range(50_000):
            await bus.publish(Ping(n=n))
        await bus.drain()
        await stream.next_flush()
        assert stream.seen == 50_000
        assert stream.rows[-1]["summary"] == "n=49999"
        assert len(stream.rows) == 500
        # Renders come from ticks, never from events: one when made, then one per tick.
        assert 2 <= stream.renders <= stream.ticks + 1
        assert stream.renders <= 20
    finally:
        stream.close()


async def test_payloads_show_the_json_and_never_a_secret(
    bus: MessageBus, front_end: list[str]
) -> None:
    stream = EventStream(bus, interval=3600)
    try:
        await bus.publish(
            Leaky(
                note=f"calling with {PLANTED_KEY}",
                api_key=PLANTED_KEY,
                headers={"Authorization": f"Bearer {PLANTED_KEY}", "accept": "json"},
            )
        )
        await bus.drain()
        stream.flush()
        [row] = stream.rows
        stream.expanded = [row["id"]]  # a click on the row, from the front end
        payload = json.loads(stream.payloads[row["id"]])
        assert payload["type"].endswith("widgets_support.Leaky")
        assert payload["headers"]["accept"] == "json"
        assert payload["api_key"] == "[REDACTED]"
        assert payload["headers"]["Authorization"] == "[REDACTED]"
        assert "[REDACTED]" in payload["note"]
        assert json.loads(stream.payload(row["id"])) == payload
        rendered = [*front_end, stream._repr_html_(), repr(stream), stream.rows_json]
        assert any(row["id"] in text for text in front_end)  # the front end got the row
        assert not any(PLANTED_KEY in text for text in rendered)
        assert "[REDACTED]" in row["summary"]
        stream.expanded = []
        assert stream.payloads == {}
        assert "no longer kept" in stream.payload("not-an-id")
    finally:
        stream.close()


async def test_the_html_shows_the_newest_events_for_saved_notebooks(bus: MessageBus) -> None:
    stream = EventStream(bus, interval=3600)
    try:
        assert "no events yet" in stream._repr_html_()
        await publish(bus, Ping, 60)
        html = stream._repr_html_()  # flushes first, so it shows what happened
        assert html.count('class="llmgine-event-row"') == 50
        assert html.index("n=59") < html.index("n=58")  # newest first
        assert "seen 60" in html
        assert "seen 60" in repr(stream)
        stream.pause()
        assert "(paused)" in stream._repr_html_()
        assert "paused" in repr(stream)
    finally:
        stream.close()


async def test_bad_arguments_say_what_to_do(bus: MessageBus) -> None:
    with pytest.raises(ValueError, match="max_rows must be at least 1"):
        EventStream(bus, max_rows=0)
    with pytest.raises(ValueError, match=r"capacity \(5\) must be at least max_rows"):
        EventStream(bus, max_rows=10, capacity=5)
    with pytest.raises(ValueError, match="refresh interval must be positive"):
        EventStream(bus, interval=0)
    with pytest.raises(TypeError, match="watches a MessageBus"):
        EventFeed("bus")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="types=\\[LLMCallCompleted\\]"):
        EventStream(bus, types=[42])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="non-empty type name"):
        EventStream(bus, types=[" "])
    with pytest.raises(TypeError, match="a Session or a session id"):
        EventStream(bus, session=3)  # type: ignore[arg-type]
    assert bus.stats().observed == 0  # nothing was left observing


async def test_the_ticker_survives_a_failing_tick_and_stops_cleanly(
    caplog: pytest.LogCaptureFixture,
) -> None:
    calls: list[int] = []

    def tick() -> None:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("render failed")

    ticker = Ticker(tick, 0.001)
    assert ticker.start()
    assert ticker.start()  # already running: nothing changes
    with caplog.at_level(logging.ERROR, "llmgine.notebook"):
        await ticker.next_tick()
        await ticker.next_tick()
    assert ticker.failures == 1
    assert ticker.ticks == 2
    assert "failed to refresh" in caplog.text
    ticker.stop()
    await ticker.next_tick()  # stopped: returns at once
    assert ticker.ticks == 2
    with pytest.raises(ValueError, match="duty"):
        Ticker(tick, 1, duty=0)


def test_without_a_running_loop_nothing_ticks_and_flush_works() -> None:
    bus = MessageBus()
    stream = EventStream(bus)  # made outside any event loop, as in a plain script
    try:
        assert not stream._ticker.running
        assert not Ticker(stream.flush, 1).start()

        async def traffic() -> None:
            await bus.publish(Ping(n=1), wait=True)
            await bus.stop()

        asyncio.run(traffic())
        assert stream.flush()
        assert stream.rows[0]["summary"] == "n=1"
    finally:
        stream.close()


def test_the_shipped_front_end_is_the_source() -> None:
    # extension/sync.py: the copy step, and its check (a script, not a package module)
    spec = importlib.util.spec_from_file_location("llmgine_sync", ROOT / "extension" / "sync.py")
    assert spec is not None
    assert spec.loader is not None
    sync = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(sync)
    assert sync.differences() == []
    source = (ROOT / "extension" / "src" / "event_stream.js").read_text("utf-8")
    assert asset("event_stream.js") == source
    assert EventStream._esm == source
    assert "llmgine-event-row" in source
    assert "://" not in source  # no CDN: no URL at all
    assert "import " not in source  # no imports: nothing to fetch, nothing to bundle
