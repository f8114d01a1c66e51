"""The span buffer (bounded, live, thread-safe) and the DataFrames built from it."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest
from opentelemetry.sdk.trace import TracerProvider

from llmgine import observability
from llmgine._redact import Redactor
from llmgine.bus import Event, MessageBus, Payload
from llmgine.observability import SpanBuffer, SpanRecord


def provider_with(buffer: SpanBuffer) -> TracerProvider:
    provider = TracerProvider()
    provider.add_span_processor(buffer)
    return provider


def test_buffer_is_a_bounded_ring_that_counts_evictions() -> None:
    buffer = SpanBuffer(capacity=3)
    tracer = provider_with(buffer).get_tracer("t")
    for i in range(5):
        tracer.start_span(f"s{i}").end()
    assert [s.name for s in buffer.finished()] == ["s2", "s3", "s4"]
    assert buffer.evicted == 2
    buffer.clear()
    assert len(buffer) == 0


def test_buffer_sees_running_spans_and_tells_listeners() -> None:
    buffer = SpanBuffer()
    heard: list[tuple[str, str]] = []
    unsubscribe = buffer.subscribe(lambda what, span: heard.append((what, span.name)))
    tracer = provider_with(buffer).get_tracer("t")
    span = tracer.start_span("long")
    assert [s.name for s in buffer.running()] == ["long"]
    assert buffer.finished() == []
    span.end()
    assert buffer.running() == []
    assert heard == [("start", "long"), ("end", "long")]
    unsubscribe()
    tracer.start_span("unheard").end()
    assert len(heard) == 2


def test_a_failing_listener_does_not_lose_the_span(caplog: pytest.LogCaptureFixture) -> None:
    buffer = SpanBuffer()

    def broken(what: str, span: SpanRecord) -> None:
        raise RuntimeError("listener bug")

    buffer.subscribe(broken)
    provider_with(buffer).get_tracer("t").start_span("kept").end()
    assert [s.name for s in buffer.finished()] == ["kept"]
    assert "listener bug" in caplog.text


def test_buffer_is_thread_safe() -> None:
    buffer = SpanBuffer(capacity=100_000)
    tracer = provider_with(buffer).get_tracer("t")
    barrier = threading.Barrier(4)

    def work(n: int) -> None:
        barrier.wait()
        for i in range(2_000):
            tracer.start_span(f"t{n}-{i}").end()
            if i % 100 == 0:
                buffer.records(Redactor())  # readers interleave with writers

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    names = [s.name for s in buffer.finished()]
    assert len(names) == len(set(names)) == 8_000
    assert buffer.running() == []


def test_capacity_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        SpanBuffer(capacity=0)


def test_spans_df_filters_by_session_name_and_time() -> None:
    obs = observability.enable()
    t0 = datetime(2026, 1, 1, tzinfo=UTC)

    def at(seconds: float) -> int:
        return int((t0 + timedelta(seconds=seconds)).timestamp() * 1e9)

    for i, (name, session) in enumerate(
        [("chat a", "s1"), ("chat b", "s2"), ("command X", "s1"), ("execute_tool t", None)]
    ):
        attrs = {observability.semconv.SESSION_ID: session} if session else {}
        span = obs.tracer.start_span(name, attributes=attrs, start_time=at(i))
        span.end(end_time=at(i + 0.5))
    running = obs.tracer.start_span("still running", start_time=at(10))

    df = obs.spans_df()
    assert len(df) == 5
    assert df.loc[df["name"] == "chat a", "duration_ms"].item() == pytest.approx(500)
    live = df[df["name"] == "still running"].iloc[0]
    assert pd.isna(live["end_time"])
    assert pd.isna(live["duration_ms"])
    assert list(obs.spans_df(session="s1")["name"]) == ["chat a", "command X"]
    assert list(obs.spans_df(name="chat *")["name"]) == ["chat a", "chat b"]
    assert list(obs.spans_df(name="chat a")["name"]) == ["chat a"]
    window = obs.spans_df(since=t0 + timedelta(seconds=1), until="2026-01-01T00:00:02Z")
    assert list(window["name"]) == ["chat b", "command X"]
    assert "still running" not in set(obs.spans_df(include_running=False)["name"])
    with pytest.raises(ValueError, match="no time zone"):
        obs.spans_df(since=datetime(2026, 1, 1))
    running.end()


def test_an_empty_spans_df_still_has_its_columns() -> None:
    df = observability.enable().spans_df()
    assert list(df.columns) == list(observability.SPAN_COLUMNS)
    assert df.empty


class Detail(Payload):
    level: int
    tags: list[str]


class Logged(Event):
    text: str
    detail: Detail | None = None


async def test_events_df_flattens_payloads_and_filters(bus: MessageBus) -> None:
    obs = observability.enable(bus)
    await bus.publish(Logged(text="one", detail=Detail(level=2, tags=["a"])), wait=True)
    async with bus.session("s") as session:
        await session.publish(Logged(text="two"), wait=True)
    df = obs.events_df()
    assert list(df.columns[:4]) == ["type", "id", "session_id", "timestamp"]
    assert isinstance(df["timestamp"].dtype, pd.DatetimeTZDtype)
    logged = df[df["type"].str.endswith("Logged")]
    assert list(logged["data.text"]) == ["one", "two"]
    assert logged["data.detail.level"].iloc[0] == 2
    assert logged["data.detail.tags"].iloc[0] == ["a"]
    in_session = obs.events_df(session=session.id)
    assert list(in_session["type"].str.rsplit(".", n=1).str[-1]) == [
        "SessionStarted",
        "Logged",
        "SessionEnded",
    ]
    assert list(obs.events_df(name="Logged")["data.text"]) == ["one", "two"]
    future = datetime.now(UTC) + timedelta(hours=1)
    assert obs.events_df(since=future).empty
    assert len(obs.events_df(until=future)) == len(df)


def test_an_empty_events_df_has_its_columns() -> None:
    df = observability.enable().events_df()
    assert list(df.columns) == ["type", "id", "session_id", "timestamp"]


async def test_event_log_is_bounded_and_counts_evictions(bus: MessageBus) -> None:
    obs = observability.enable(bus, event_capacity=2)
    for i in range(5):
        await bus.publish(Logged(text=str(i)), wait=True)
    assert list(obs.events_df()["data.text"]) == ["3", "4"]
    assert obs.events_evicted == 3
    assert obs.events_seen == 5
    obs.clear()
    assert obs.events_seen == 0


def _record(span_id: int) -> SpanRecord:
    return SpanRecord("s", 1, span_id, None, "internal", 0, 1, "unset", None, {}, ())


def test_adding_spans_skips_those_kept_and_forgets_those_evicted() -> None:
    buffer = SpanBuffer(capacity=3)
    tracer = provider_with(buffer).get_tracer("t")
    tracer.start_span("local").end()
    local = buffer.finished()[0]
    assert buffer.add([local, _record(1)]) == 1  # the local span is kept already
    assert buffer.add([_record(1), _record(2)]) == 1  # as is one added before
    tracer.start_span("local, after adding").end()  # full: the first local span makes room
    assert buffer.evicted == 1
    assert [r.span_id for r in buffer.finished()][:2] == [1, 2]
    assert buffer.add([local]) == 1  # evicted, so new again
    assert buffer.add([_record(2)]) == 0
    buffer.clear()
    assert buffer.add([_record(2)]) == 1  # cleared: nothing is kept
