"""llmgine's own tracer: API spans that SDK exporters and processors read unchanged."""

from __future__ import annotations

import pytest
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, Status, StatusCode

from llmgine.observability._buffer import plain_attributes
from llmgine.observability._tracer import LiteTracer


def tracer() -> tuple[LiteTracer, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    return LiteTracer(
        SimpleSpanProcessor(exporter), Resource.create({"service.name": "t"})
    ), exporter


def test_spans_nest_through_the_api_context_and_reach_an_sdk_exporter() -> None:
    tr, exporter = tracer()
    with tr.start_as_current_span("outer", attributes={"n": 1, "tags": ["a", "b"]}) as outer:
        inner = tr.start_span("inner", kind=SpanKind.CLIENT, attributes={"skip": None})
        inner.end()
        assert trace.get_current_span() is outer
    assert trace.get_current_span() is not outer
    finished = {s.name: s for s in exporter.get_finished_spans()}
    assert set(finished) == {"outer", "inner"}
    first, second = finished["outer"], finished["inner"]
    assert second.parent is not None
    assert second.parent.span_id == first.context.span_id
    assert second.context.trace_id == first.context.trace_id
    assert first.parent is None
    assert dict(first.attributes or {}) == {"n": 1, "tags": ("a", "b")}  # as the SDK keeps them
    assert "skip" not in (second.attributes or {})
    assert second.kind is SpanKind.CLIENT
    assert first.resource.attributes["service.name"] == "t"
    assert first.instrumentation_scope is not None
    assert first.instrumentation_scope.name == "llmgine"
    assert isinstance(first, ReadableSpan)
    assert first.to_json()  # the SDK's own serialisation reads it
    assert (first.end_time or 0) >= (first.start_time or 0) > 0


def test_an_ended_span_changes_no_more_and_ok_is_final() -> None:
    tr, exporter = tracer()
    span = tr.start_span("s")
    span.set_status(StatusCode.OK)
    span.set_status(Status(StatusCode.ERROR, "late"))  # OK is final, as in the SDK
    span.update_name("renamed")
    span.add_event("e", {"k": [1, 2]})
    span.add_link(trace.INVALID_SPAN_CONTEXT)  # an invalid link is dropped
    assert span.is_recording()
    span.end()
    span.end()  # only the first end counts
    span.set_attribute("after", 1)
    span.update_name("after")
    assert not span.is_recording()
    (done,) = exporter.get_finished_spans()
    assert done.name == "renamed"
    assert done.status.status_code is StatusCode.OK
    assert [(e.name, dict(e.attributes or {})) for e in done.events] == [("e", {"k": (1, 2)})]
    assert not done.links
    assert "after" not in (done.attributes or {})


def test_an_exception_leaving_a_span_is_recorded_with_an_error_status() -> None:
    tr, exporter = tracer()
    try:
        with tr.start_span("failing") as span:
            span.set_status(StatusCode.ERROR, "described")
            raise ValueError("boom")
    except ValueError:
        pass
    (done,) = exporter.get_finished_spans()
    assert done.status.status_code is StatusCode.ERROR
    (event,) = done.events
    assert event.name == "exception"
    assert (event.attributes or {})["exception.type"] == "ValueError"
    assert "boom" in str((event.attributes or {})["exception.stacktrace"])


class Watching(SpanProcessor):
    """Keeps what it is handed, and what a running span read as when it started."""

    def __init__(self) -> None:
        self.started: list[ReadableSpan] = []
        self.ended: list[ReadableSpan] = []

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        self.started.append(span)

    def on_end(self, span: ReadableSpan) -> None:
        self.ended.append(span)


def test_a_running_span_reads_live_and_its_end_hands_over_a_frozen_sdk_span() -> None:
    watching = Watching()
    tr = LiteTracer(watching, Resource.create({}))
    span = tr.start_span("call", attributes={"a": 1})
    (running,) = watching.started
    span.set_attribute("b", [1, 2])
    span.add_event("chunk", {"n": 3})
    span.update_name("call renamed")
    assert running.name == "call renamed"  # what a live view of running spans shows
    assert dict(running.attributes or {}) == {"a": 1, "b": (1, 2)}
    assert [e.name for e in running.events] == ["chunk"]
    assert running.end_time is None
    with pytest.raises(TypeError):
        running.attributes["c"] = 3  # type: ignore[index]  # read-only, as the SDK's

    span.end()
    (ended,) = watching.ended
    assert type(ended) is ReadableSpan  # the SDK's own class, made publicly
    assert ended.name == "call renamed"
    assert dict(ended.attributes or {}) == {"a": 1, "b": (1, 2)}
    assert ended.end_time is not None
    assert ended.context == span.get_span_context()


def test_plain_attributes_copies_sdk_and_llmgine_spans_alike() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    lite, lite_exporter = tracer()
    for source in (provider.get_tracer("t"), lite):
        source.start_span("s", attributes={"k": "v", "seq": ["a"]}).end()
    for span in (*exporter.get_finished_spans(), *lite_exporter.get_finished_spans()):
        copied = plain_attributes(span)
        assert type(copied) is dict
        assert copied == {"k": "v", "seq": ("a",)}
        copied["k"] = "changed"
        assert (span.attributes or {})["k"] == "v"  # a copy, not the span's own
