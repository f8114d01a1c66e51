"""llmgine's own tracer: OpenTelemetry API spans that cost a few microseconds.

The SDK's tracer does much per span that llmgine's spans do not need: a sampler (every span
is kept), span limits over a locked attribute mapping, and a chain of span processors. A
span there costs about 20 µs to start and end, which matters beside an LLM call whose
whole budget for llmgine is 100 µs. `LiteTracer` makes `LiteSpan`s instead: they implement
the OpenTelemetry API `Span` (so `trace.use_span`, context propagation and nesting work as
usual), keeping attributes in a plain dict, and read like the SDK's `ReadableSpan` while
they run; when one ends, its processor gets a genuine `ReadableSpan`, made with that
class's public constructor (so the SDK's exporters, OTLP included, and llmgine's consumers
read it unchanged). Nothing here touches the SDK's private fields: an SDK release that
renames them changes nothing (see benchmarks/bench_internals.py for what this costs).

It is used only for llmgine's own tracer provider; with ``tracer_provider=`` of yours,
llmgine's spans come from your SDK provider with all its settings.
"""

from __future__ import annotations

import random
import traceback
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from time import time_ns
from types import MappingProxyType, TracebackType
from typing import Any, cast

from opentelemetry import trace as trace_api
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan, SpanProcessor
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode, TraceFlags
from opentelemetry.util import types

__all__ = ["LiteSpan", "LiteTracer"]

_SAMPLED = TraceFlags(TraceFlags.SAMPLED)
_PLAIN = (str, bool, int, float)


def _clean(attributes: Mapping[str, Any] | None) -> dict[str, Any]:
    """Attributes as OpenTelemetry keeps them: sequences as tuples, None values dropped."""
    out: dict[str, Any] = {}
    for key, value in (attributes or {}).items():
        if type(value) in _PLAIN:
            out[key] = value
        elif isinstance(value, Sequence) and not isinstance(value, str | bytes):
            out[key] = tuple(value)
        elif value is not None:
            out[key] = value
    return out


class LiteSpan(trace_api.Span):
    """One span: an API span while it runs, readable as a `ReadableSpan` by llmgine's
    consumers meanwhile (the same read-only properties); when it ends, its processor gets
    a genuine SDK `ReadableSpan` of it, made with that class's public constructor."""

    def __init__(
        self,
        name: str,
        context: SpanContext,
        parent: SpanContext | None,
        kind: SpanKind,
        attributes: dict[str, Any],
        links: Sequence[Link],
        start_time: int,
        resource: Resource,
        scope: InstrumentationScope,
        processor: SpanProcessor,
    ) -> None:
        self._name = name
        self._context = context
        self._parent = parent
        self._kind = kind
        self._attributes = attributes
        self._events: list[Event] = []
        self._links = tuple(links)
        self._start_time = start_time
        self._end_time: int | None = None
        self._status = Status(StatusCode.UNSET)
        self._resource = resource
        self._scope = scope
        self._processor = processor

    # -- read, as a ReadableSpan is (for whoever looks at a running span) ---------------

    @property
    def name(self) -> str:
        return self._name

    @property
    def context(self) -> SpanContext:
        return self._context

    @property
    def parent(self) -> SpanContext | None:
        return self._parent

    @property
    def kind(self) -> SpanKind:
        return self._kind

    @property
    def start_time(self) -> int:
        return self._start_time

    @property
    def end_time(self) -> int | None:
        return self._end_time

    @property
    def status(self) -> Status:
        return self._status

    @property
    def attributes(self) -> Mapping[str, Any]:
        return MappingProxyType(self._attributes)

    @property
    def events(self) -> Sequence[Event]:
        return tuple(self._events)

    @property
    def links(self) -> Sequence[Link]:
        return self._links

    @property
    def resource(self) -> Resource:
        return self._resource

    @property
    def instrumentation_scope(self) -> InstrumentationScope:
        return self._scope

    # -- the API span ------------------------------------------------------------------

    def get_span_context(self) -> SpanContext:
        return self._context

    def is_recording(self) -> bool:
        return self._end_time is None

    def set_attributes(self, attributes: Mapping[str, types.AttributeValue]) -> None:
        if self._end_time is None:
            self._attributes.update(_clean(attributes))

    def set_attribute(self, key: str, value: types.AttributeValue) -> None:
        if self._end_time is None:
            self._attributes.update(_clean({key: value}))

    def add_event(
        self,
        name: str,
        attributes: types.Attributes = None,
        timestamp: int | None = None,
    ) -> None:
        if self._end_time is None:
            event = Event(name, _clean(attributes), timestamp or time_ns())
            self._events.append(event)

    def add_link(self, context: SpanContext, attributes: types.Attributes = None) -> None:
        if self._end_time is None and context.is_valid:
            self._links = (*self._links, Link(context, _clean(attributes)))

    def update_name(self, name: str) -> None:
        if self._end_time is None:
            self._name = name

    def set_status(self, status: Status | StatusCode, description: str | None = None) -> None:
        # As the SDK: OK is final, and only an error carries a description.
        if self._end_time is not None or self._status.status_code is StatusCode.OK:
            return
        if isinstance(status, Status):
            self._status = status
        else:
            self._status = Status(status, description if status is StatusCode.ERROR else None)

    def record_exception(
        self,
        exception: BaseException,
        attributes: types.Attributes = None,
        timestamp: int | None = None,
        escaped: bool = False,
    ) -> None:
        details: dict[str, Any] = {
            "exception.type": type(exception).__qualname__,
            "exception.message": str(exception),
            "exception.stacktrace": "".join(traceback.format_exception(exception)),
            "exception.escaped": str(escaped),
        }
        details.update(attributes or {})
        self.add_event("exception", details, timestamp)

    def end(self, end_time: int | None = None) -> None:
        if self._end_time is not None:
            return  # only the first end counts
        self._end_time = end_time or time_ns()
        # What exporters read: the SDK's own class, made with its public constructor.
        finished = ReadableSpan(
            name=self._name,
            context=self._context,
            parent=self._parent,
            resource=self._resource,
            attributes=self._attributes,  # not copied: an ended span changes no more
            events=tuple(self._events),
            links=self._links,
            kind=self._kind,
            status=self._status,
            start_time=self._start_time,
            end_time=self._end_time,
            instrumentation_scope=self._scope,
        )
        self._processor.on_end(finished)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_val: BaseException | None,
        exc_tb: TracebackType | None,
    ) -> None:
        if exc_val is not None and self.is_recording():
            self.record_exception(exc_val, escaped=True)
            self.set_status(Status(StatusCode.ERROR, f"{type(exc_val).__name__}: {exc_val}"))
        self.end()


class LiteTracer(trace_api.Tracer):
    """Makes `LiteSpan`s (every one recorded and sampled) and hands them to ``processor``."""

    def __init__(self, processor: SpanProcessor, resource: Resource, name: str = "llmgine"):
        self._processor = processor
        self._resource = resource
        self._scope = InstrumentationScope(name)

    def start_span(
        self,
        name: str,
        context: Context | None = None,
        kind: SpanKind = SpanKind.INTERNAL,
        attributes: types.Attributes = None,
        links: Sequence[Link] | None = None,
        start_time: int | None = None,
        record_exception: bool = True,
        set_status_on_exception: bool = True,
    ) -> LiteSpan:
        parent = trace_api.get_current_span(context).get_span_context()
        if parent.is_valid:
            trace_id, parent_context = parent.trace_id, parent
        else:
            trace_id, parent_context = random.getrandbits(128) or 1, None
        span_context = SpanContext(
            trace_id, random.getrandbits(64) or 1, is_remote=False, trace_flags=_SAMPLED
        )
        span = LiteSpan(
            name,
            span_context,
            parent_context,
            kind,
            _clean(attributes),
            links or (),
            start_time or time_ns(),
            self._resource,
            self._scope,
            self._processor,
        )
        # Processors are typed for the SDK's span; they read only what a ReadableSpan has.
        self._processor.on_start(cast(Any, span), context)
        return span

    @contextmanager
    def start_as_current_span(  # type: ignore[override]  # the API's decorator is private
        self,
        name: str,
        context: Context | None = None,
        kind: SpanKind = SpanKind.INTERNAL,
        attributes: types.Attributes = None,
        links: Sequence[Link] | None = None,
        start_time: int | None = None,
        record_exception: bool = True,
        set_status_on_exception: bool = True,
        end_on_exit: bool = True,
    ) -> Iterator[trace_api.Span]:
        span = self.start_span(name, context, kind, attributes, links, start_time)
        with trace_api.use_span(
            span,
            end_on_exit=end_on_exit,
            record_exception=record_exception,
            set_status_on_exception=set_status_on_exception,
        ) as current:
            yield current
