"""`enable()` / `disable()` and the `Observability` they manage.

llmgine never installs a global OpenTelemetry provider: it uses a tracer provider of its
own (or adds one switchable processor to a provider you pass in), so `disable()` leaves
the process exactly as it found it.
"""

from __future__ import annotations

import itertools
import os
import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING

import pandas as pd
from opentelemetry.sdk.metrics.export import MetricReader
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import Span, Tracer

from llmgine import _semconv as sc
from llmgine._redact import Redactor, default_redactor, redacting_logger
from llmgine._tracing import tracer_for
from llmgine.bus import Event, MessageBus, Subscription
from llmgine.errors import ObservabilityError
from llmgine.observability import _state
from llmgine.observability._buffer import (
    DEFAULT_SPAN_CAPACITY,
    RedactingFanout,
    SpanBuffer,
    SpanRecord,
)
from llmgine.observability._events import DEFAULT_EVENT_CAPACITY, EventLog
from llmgine.observability._export import env_flag, otlp_configured, otlp_exporters, resource_for
from llmgine.observability._frames import Time, events_frame, spans_frame
from llmgine.observability._handlers import ConsoleHandler, JsonlHandler
from llmgine.observability._metrics import Metrics
from llmgine.observability._observer import TracingObserver
from llmgine.observability._otlp_file import read_spans, safe_resource, write_spans
from llmgine.observability._spans import CallSpans
from llmgine.observability._tracer import LiteTracer
from llmgine.observability._waiting import SpanFilter, wait_for_spans

if TYPE_CHECKING:
    from llmgine.observability._collector import SpanCollector

__all__ = ["Observability", "Settings", "current", "disable", "enable", "load"]

log = redacting_logger("llmgine.observability")

_bus_names = itertools.count(1)


@dataclass(frozen=True)
class Settings:
    """What `enable()` was asked for; two calls with equal settings share one setup."""

    console: bool | IO[str] = False
    console_events: bool = True
    jsonl: str | None = None
    jsonl_events: bool = False
    otlp: bool = False
    capture_content: bool = False
    span_capacity: int = DEFAULT_SPAN_CAPACITY
    event_capacity: int = DEFAULT_EVENT_CAPACITY
    service_name: str | None = None
    tracer_provider: TracerProvider | None = field(default=None, compare=False)
    tracer_provider_id: int | None = None


class Observability:
    """Traces, events and metrics for the buses it observes. Made by `enable()`.

    Attributes:
        buffer: the in-memory `SpanBuffer` (running and finished spans).
        events: the in-memory `EventLog` of delivered bus events.
        tracer: the OpenTelemetry tracer llmgine's spans come from (yours may use it too).
        call_tracer: the `llmgine.llm.CallTracer` that makes model-call and tool spans
            here. `enable()` plugs it into the default slot (``tracer_for()``) and
            `observe` into each observed bus's (``tracer_for(bus)``), which is how the
            models and tool managers that hold those slots are handed it.
        redactor: what keeps secrets out of everything recorded.
    """

    def __init__(self, settings: Settings, redactor: Redactor = default_redactor) -> None:
        self.settings = settings
        self.redactor = redactor
        self.capture_content = settings.capture_content
        self.buffer = SpanBuffer(settings.span_capacity)
        self.events = EventLog(settings.event_capacity)
        self.jsonl: JsonlHandler | None = None
        self.console: ConsoleHandler | None = None
        consumers: list[SpanProcessor] = [self.buffer]
        sinks: list[Callable[[Event], None]] = [self.events.append]
        if settings.jsonl is not None:
            self.jsonl = JsonlHandler(
                settings.jsonl, events=settings.jsonl_events, redactor=redactor
            )
            consumers.append(self.jsonl)
            if settings.jsonl_events:
                sinks.append(self.jsonl.on_event)
        if settings.console is not False:
            stream = None if settings.console is True else settings.console
            self.console = ConsoleHandler(stream, events=settings.console_events, redactor=redactor)
            consumers.append(self.console)
            if settings.console_events:
                sinks.append(self.console.on_event)
        metric_readers: list[MetricReader] = []
        if settings.otlp:
            span_exporter, metric_reader = otlp_exporters()
            consumers.append(BatchSpanProcessor(span_exporter))
            if metric_reader is not None:
                metric_readers.append(metric_reader)
        # Redacted, as everything recorded is: OTEL_RESOURCE_ATTRIBUTES may carry a
        # credential, and the resource travels with every span an exporter sends.
        resource = safe_resource(resource_for(settings.service_name), redactor)
        self._fanout = RedactingFanout(redactor, consumers)
        # What the spans say recorded them: written by save() (redacted), as OTLP does.
        self.resource = (
            resource if settings.tracer_provider is None else (settings.tracer_provider.resource)
        )
        # Your provider, with all its settings, when you pass one; else llmgine's own
        # light tracer (see _tracer.py), whose spans go straight to the fan-out.
        self.provider: TracerProvider | None = settings.tracer_provider
        self.tracer: Tracer
        if self.provider is not None:
            self.provider.add_span_processor(self._fanout)
            self.tracer = self.provider.get_tracer("llmgine")
        else:
            self.tracer = LiteTracer(self._fanout, resource)
        self.metrics = Metrics(resource, metric_readers)
        self.call_tracer = CallSpans(self)
        self._sinks = sinks
        self._sessions: dict[str, Span] = {}
        self._lock = threading.Lock()
        self._observed: weakref.WeakKeyDictionary[MessageBus, Subscription] = (
            weakref.WeakKeyDictionary()
        )
        # Events seen, from the buses' own counters: (bus -> count when observing began),
        # plus what buses no longer observed had shown; minus what clear() forgot.
        self._seen_from: weakref.WeakKeyDictionary[MessageBus, int] = weakref.WeakKeyDictionary()
        self._seen_before = 0
        self.collector: SpanCollector | None = None
        self.closed = False

    # -- buses -------------------------------------------------------------------------

    def observe(self, bus: MessageBus, *, name: str | None = None) -> None:
        """Trace ``bus``'s sessions and commands and record its events (idempotent)."""
        if self.closed:
            raise ObservabilityError(
                "this Observability was disabled; call llmgine.observability.enable() again"
            )
        if bus in self._observed:
            return
        observer = TracingObserver(
            self.tracer, self.redactor, self._sinks, self._sessions, self._lock
        )
        self._observed[bus] = bus.add_observer(observer)
        tracer_for(bus).plug(self.call_tracer)  # what works for this bus now traces here
        self._seen_from[bus] = bus.stats().observed
        self.metrics.observe_bus(bus, name or f"bus-{next(_bus_names)}")

    def unobserve(self, bus: MessageBus) -> None:
        """Stop observing ``bus`` (what was recorded stays)."""
        subscription = self._observed.pop(bus, None)
        tracer_for(bus).unplug(self.call_tracer)
        if subscription is not None:
            self._seen_before += bus.stats().observed - self._seen_from.pop(bus, 0)
            subscription.remove()
        self.metrics.forget_bus(bus)

    @property
    def buses(self) -> list[MessageBus]:
        return list(self._observed)

    @property
    def events_seen(self) -> int:
        """Events recorded since observing began (or since `clear()`)."""
        now = sum(bus.stats().observed - start for bus, start in list(self._seen_from.items()))
        return self._seen_before + now

    @property
    def events_evicted(self) -> int:
        """Events that fell out of the event log's window (``event_capacity``)."""
        return max(0, self.events_seen - len(self.events))

    def session_span(self, session_id: str) -> Span | None:
        """The span of an open session, for parenting spans started outside a command."""
        with self._lock:
            return self._sessions.get(session_id)

    # -- reading back ------------------------------------------------------------------

    def spans_df(
        self,
        *,
        session: str | None = None,
        since: Time = None,
        until: Time = None,
        name: str | None = None,
        include_running: bool = True,
    ) -> pd.DataFrame:
        """One row per span: ``trace_id, span_id, parent_id, name, kind, start_time,
        end_time, duration_ms, status, status_message, session_id`` and one
        ``attributes.<name>`` column per attribute.

        Args:
            session: only spans of this session id.
            since / until: only spans that started in this window (aware datetimes).
            name: an exact span name, or a glob such as ``"chat *"``.
            include_running: running spans too (``end_time`` NaT, ``duration_ms`` NaN).
        """
        records = self.buffer.records(self.redactor, include_running=include_running)
        return spans_frame(records, session=session, since=since, until=until, name=name)

    async def wait_for_spans(
        self,
        count: int = 1,
        *,
        name: str | None = None,
        session: str | None = None,
        where: SpanFilter | None = None,
        timeout: float = 60.0,
    ) -> list[SpanRecord]:
        """Wait until at least ``count`` finished spans match, and return those that do
        (oldest first): spans of this process, of other threads, and of other processes
        received by `collect` as they arrive. Returns at once if they are here already.

        Args:
            count: how many matching finished spans to wait for.
            name: an exact span name, or a glob such as ``"command *"``.
            session: only spans of this session id.
            where: only spans (`SpanRecord`) for which this returns True; it runs on the
                thread that ended or received the span, so keep it quick and pure.
            timeout: seconds to wait at most.

        Raises:
            SpanWaitTimeoutError: (a `TimeoutError`) fewer matched in time; it names those
                that did (``seen``).

        Example:
            async with bus.session("chat") as session:
                await session.execute(Work())   # served by a worker exporting to collect()
            await obs.wait_for_spans(2, name="command Work", session=session.id)
        """
        return await wait_for_spans(
            self.buffer, count=count, name=name, session=session, where=where, timeout=timeout
        )

    def events_df(
        self,
        *,
        session: str | None = None,
        since: Time = None,
        until: Time = None,
        name: str | None = None,
    ) -> pd.DataFrame:
        """One row per delivered event: ``type, id, session_id, timestamp`` and the payload
        flattened as ``data.<field>`` (nested models as ``data.<field>.<inner>``).

        ``name`` matches the event's type name (``module.Class`` or ``Class``, or a glob).
        """
        return events_frame(
            self.events.events(),
            self.redactor,
            session=session,
            since=since,
            until=until,
            name=name,
        )

    def metrics_df(self) -> pd.DataFrame:
        """Every metric point now (bus counters and gauges, GenAI histograms)."""
        return self.metrics.frame()

    def save(self, path: str | os.PathLike[str], *, session: str | None = None) -> int:
        """Write the finished spans kept in memory to ``path`` as OTLP JSON (the
        OpenTelemetry Collector file exporter's format: one ``ExportTraceServiceRequest``
        a line); returns how many. Running spans are left out (they have no end yet).

        ``session``: only the traces of this session id. Spans were redacted when recorded,
        and the resource (``service.name``, ``OTEL_RESOURCE_ATTRIBUTES``) is redacted here,
        so the file holds no credential. `llmgine.observability.load` reads it back, and any
        OTLP JSON reader (the Collector's ``otlpjsonfile`` receiver) reads it too.
        """
        records = self.buffer.records(self.redactor, include_running=False)
        if session is not None:
            traces = {r.trace_id for r in records if r.session_id == session}
            records = [r for r in records if r.trace_id in traces]
        return write_spans(path, records, self.resource, self.redactor)

    def load(self, path: str | os.PathLike[str]) -> int:
        """Add the spans of an OTLP JSON file (see `llmgine.observability.load`) to the
        buffer, as finished spans; returns how many were new."""
        return self.buffer.add(read_spans(path, self.redactor))

    def collect(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Receive spans from other processes over OTLP/HTTP; returns the endpoint URL
        (``http://127.0.0.1:PORT``) to give them as ``OTEL_EXPORTER_OTLP_ENDPOINT``.

        Spans posted to ``/v1/traces`` (protobuf or JSON, compressed or not, as any
        OpenTelemetry exporter sends them) join this buffer as they arrive, redacted as
        `load` does, each with its process's ``service.name`` as an attribute: so
        ``spans_df()``, `TraceView` and span listeners show one trace across processes (a
        worker's command span under the caller's, by the ``traceparent`` the bus carries).
        `llmgine worker` exports its spans there when the variable is set. Idempotent: a
        second call returns the same URL. `stop_collecting()` or `close()` stops it.

        Args:
            host: the address to listen on; loopback unless you say otherwise. The
                receiver has no authentication: whoever reaches it can add spans.
            port: the port; 0 for a free one.

        Raises:
            ObservabilityError: closed, already collecting elsewhere, or the port is taken.

        Example:
            obs = observability.enable(bus)
            endpoint = obs.collect()
            worker = WorkerProcess.start("app:setup", url=server.url,
                                         env={"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint})
        """
        if self.closed:
            raise ObservabilityError(
                "this Observability was disabled; call llmgine.observability.enable() again"
            )
        with self._lock:
            running = self.collector
            if running is None:
                # Imported here: the receiver's modules load only in a process that collects.
                from llmgine.observability._collector import SpanCollector

                self.collector = SpanCollector(self.buffer, self.redactor, host=host, port=port)
                return self.collector.url
        if port in (0, running.port) and host in (running.host, running.asked_host):
            return running.url
        raise ObservabilityError(
            f"already collecting spans at {running.url}; call stop_collecting() first to "
            f"listen on {host}:{port}"
        )

    def stop_collecting(self) -> None:
        """Stop the span receiver `collect` started (its port is closed; spans received
        stay). Does nothing when not collecting."""
        with self._lock:
            collector, self.collector = self.collector, None
        if collector is not None:
            collector.close()

    def clear(self) -> None:
        """Forget recorded spans and events (running spans and open sessions stay)."""
        self.buffer.clear()
        self.events.clear()
        self._seen_before = -sum(
            bus.stats().observed - start for bus, start in list(self._seen_from.items())
        )

    def flush(self) -> None:
        """Write and export everything recorded so far (blocks; call from a thread in
        latency-sensitive code)."""
        self._fanout.force_flush()

    def close(self) -> None:
        """Stop observing, end open session spans, flush and shut everything down."""
        if self.closed:
            return
        self.closed = True
        self.stop_collecting()  # first: no more spans arrive while the rest shuts down
        tracer_for(None).unplug(self.call_tracer)
        self.metrics.shutdown()  # first: its final export still reads the buses' stats
        for bus in list(self._observed):
            self.unobserve(bus)
        with self._lock:
            open_sessions = list(self._sessions.values())
            self._sessions.clear()
        for span in open_sessions:
            span.set_attribute("llmgine.session.unfinished", True)
            span.end()
        self._fanout.close()


def current() -> Observability | None:
    """The enabled `Observability`, or ``None`` when observability is off."""
    return _state.current


def enable(
    bus: MessageBus | None = None,
    *,
    console: bool | IO[str] = False,
    console_events: bool = True,
    jsonl: str | os.PathLike[str] | None = None,
    jsonl_events: bool = False,
    otlp: bool | None = None,
    capture_content: bool | None = None,
    span_capacity: int = DEFAULT_SPAN_CAPACITY,
    event_capacity: int = DEFAULT_EVENT_CAPACITY,
    service_name: str | None = None,
    tracer_provider: TracerProvider | None = None,
) -> Observability:
    """Switch observability on (in memory always; console, JSONL and OTLP as asked) and
    observe ``bus``. Idempotent: the same settings again return the same `Observability`
    (observing ``bus`` too); different settings replace it, keeping the buses observed.

    Model calls and tool executions are traced through the tracers they hold, which this
    plugs ``obs.call_tracer`` into: the default one, held by what was made outside any bus
    (``get_model(...)``, ``ToolManager([...])``, made before or after this call), and each
    observed bus's, held by what `LLMService`, a `ToolManager` on the bus and the tool loop
    made for it. A bus that is not observed is not traced.

    Args:
        bus: a bus to observe now (more with ``.observe(bus)``).
        console: print spans and events (True for stdout, or a stream).
        jsonl: a file path for the rotating JSONL log of spans; ``jsonl_events=True`` adds
            every bus event (costly at very high event rates: see the README).
        otlp: export spans and metrics over OTLP/HTTP, configured by the standard
            ``OTEL_EXPORTER_OTLP_*`` variables; by default on when an endpoint is set.
        capture_content: record prompts, completions and tool arguments (redacted); by
            default from ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT``.
        span_capacity / event_capacity: how many finished spans and events stay in memory.
        service_name: the ``service.name`` resource attribute; by default
            ``OTEL_SERVICE_NAME`` if set, else "llmgine".
        tracer_provider: an SDK tracer provider of yours to add llmgine's processor to.

    Example:
        obs = llmgine.observability.enable(bus, jsonl="trace.jsonl")
        ...
        obs.spans_df(session=session.id)
    """
    settings = Settings(
        console=console,
        console_events=console_events,
        jsonl=None if jsonl is None else str(Path(jsonl).resolve()),
        jsonl_events=jsonl_events,
        otlp=otlp_configured() if otlp is None else otlp,
        capture_content=(
            env_flag(sc.CAPTURE_CONTENT_ENV) if capture_content is None else capture_content
        ),
        span_capacity=span_capacity,
        event_capacity=event_capacity,
        service_name=service_name,
        tracer_provider=tracer_provider,
        tracer_provider_id=None if tracer_provider is None else id(tracer_provider),
    )
    # Keys exported since llmgine was imported (a notebook cell setting os.environ) too.
    default_redactor.add_env_secrets()
    obs = _state.current
    if obs is not None and obs.settings != settings:
        buses = obs.buses
        disable()
        obs = None
    else:
        buses = []
    if obs is None:
        obs = Observability(settings)
        _state.current = obs
        # Handed to what traces outside any bus (get_model(), ToolManager([...])).
        tracer_for(None).plug(obs.call_tracer)
    for known in buses:
        obs.observe(known)
    if bus is not None:
        obs.observe(bus)
    return obs


def disable() -> None:
    """Switch observability off: stop observing, flush and shut down what `enable()` set
    up. Nothing global stays behind. Calling it when off does nothing."""
    obs, _state.current = _state.current, None
    if obs is not None:
        obs.close()


def load(path: str | os.PathLike[str], *, into: Observability | None = None) -> Observability:
    """Read an OTLP JSON trace file, from `Observability.save` or any OpenTelemetry
    instrumentation (the Collector's file exporter, the SDKs' ``FileSpanExporter``), so
    ``spans_df()``, ``TraceView(obs=...)`` and the dashboard show it.

    Into ``into`` (an enabled `Observability`, say: the spans join its buffer, skipping
    those already there), or by default into a new `Observability` of its own that is not
    enabled and observes nothing (``.observe(bus)`` still works), with room for every span
    in the file. Returns the `Observability` the spans are in.

    Spans keep their ids, parents, names, kinds, times, status, attributes and events;
    links, resources and scopes are not kept. Spans from other instrumentations get what
    llmgine's views read, added and never overwritten: ``llmgine.span.kind`` ("llm" or
    "tool", from ``gen_ai.operation.name``) and today's GenAI names for older ones
    (``gen_ai.system`` → ``gen_ai.provider.name``, ``gen_ai.usage.prompt_tokens`` →
    ``gen_ai.usage.input_tokens``, OpenInference's ``llm.*``). Everything read is redacted.

    Raises:
        ObservabilityError: no such file, or a line that is not OTLP JSON traces (the
            message says which line and what it holds instead).
    """
    if into is not None:
        into.load(path)
        return into
    records = read_spans(path, default_redactor)
    obs = Observability(Settings(span_capacity=max(DEFAULT_SPAN_CAPACITY, len(records))))
    obs.buffer.add(records)
    return obs
