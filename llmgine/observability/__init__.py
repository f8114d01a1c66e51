"""Observability for llmgine on OpenTelemetry: traces, events and metrics, as DataFrames.

Standalone: the bus does not import this package; an `Observability` watches buses through
`llmgine.bus.BusObserver`. A session is a root span, each command a child span, each LLM
call a CLIENT span named by the GenAI semantic conventions (`llm_span`), each tool
execution a span (`tool_span`). Everything recorded is redacted of secrets.

Example:
    from llmgine import observability

    obs = observability.enable(bus, jsonl="trace.jsonl")   # idempotent
    async with bus.session("chat") as session:
        await session.execute(Ask(question="hi"))
    obs.spans_df(session=session.id)        # one row per span, attributes flattened
    obs.events_df()                         # one row per bus event
    obs.collect()                           # workers' spans too: their OTLP endpoint
    observability.disable()                 # flushes, and leaves nothing global behind

Reference
=========

Observability
-------------

```python
from llmgine import observability

obs = observability.enable(bus)            # in memory; add console=True, jsonl="trace.jsonl"
async with bus.session("chat") as session:
    await session.execute(Ask(question="hi"))
obs.spans_df(session=session.id)           # pandas: one row per span
obs.events_df(name="Answered")             # one row per bus event, payload flattened
obs.metrics_df()                           # bus counters and GenAI histograms
observability.disable()                    # flushes, and leaves nothing global behind
```

`llmgine.observability` is standalone: the bus never imports it. It watches a bus through
`bus.add_observer(...)` (a `BusObserver` is not a handler: it is not counted in a
`Delivery`, cannot be filtered away, and its failures are logged and counted in
`stats().observer_failures` without touching delivery).

**Traces** (OpenTelemetry). A session is a root span (`session chat`); each command is
a child span (`command Ask`, status and `error.type` from its result); a command executed
by a handler nests under that handler's command. A `Generate` command is traced by its
call's GenAI span alone (it carries `llmgine.command.id`), not by a command span with the
GenAI span inside: one span per model call. LLM calls and tool executions are spans
by the OpenTelemetry GenAI semantic conventions. The LLM layer and the tools never look
for observability: they hold a `llmgine.llm.CallTracer` they were given, by default a slot
(`llmgine.llm.tracer_for`) that `enable()` plugs `obs.call_tracer` into. The default slot
is plugged while observability is on (what is made outside any bus: `get_model()`,
`ToolManager([...])`); a bus's slot while `obs` observes that bus (what `LLMService`, a
`ToolManager` on the bus and the tool loop make for it), so with two buses and one
observed, the other's calls are not traced. `disable()` and `unobserve()` unplug. Code
of yours traces the same way with two helpers, on the enabled observability:

```python
from llmgine.observability import llm_span, tool_span

with llm_span(provider="openai", model="gpt-4o-mini", server_address="api.openai.com") as call:
    call.input(messages)                       # recorded only when content capture is on
    call.first_token()                         # time to first token, when streaming
    call.response(model=..., response_id=..., finish_reasons=["stop"],
                  input_tokens=12, output_tokens=40, cache_read_tokens=0, cost_usd=0.0001)
with tool_span("get_weather", call_id="call_1", arguments={"city": "Paris"}) as tool:
    tool.result({"temp_c": 18})
```

An LLM span is kind CLIENT, named `"{operation} {model}"`, with `gen_ai.operation.name`,
`gen_ai.provider.name`, `gen_ai.request.model` (and temperature, max tokens, ...),
`gen_ai.response.model`, `gen_ai.response.id`, `gen_ai.response.finish_reasons`,
`gen_ai.usage.input_tokens` / `output_tokens` / `cache_read.input_tokens` /
`cache_creation.input_tokens` / `reasoning.output_tokens` (unknown counts stay unset, never
a made-up zero), `gen_ai.conversation.id` (the session id), `server.address`, `error.type`,
and our own `llmgine.cost.usd`. A tool span has `gen_ai.tool.name` and `gen_ai.tool.call.id`.
Every attribute name lives in `llmgine.observability.semconv` (`llmgine/_semconv.py`), so a
spec rename is a
one-file change. With observability off the helpers record nothing.

**Content** (prompts, completions, tool arguments and results, and the argument values a
tool's validation error would quote) is recorded only when
`OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true` or `enable(capture_content=True)`.

**Secrets never leak.** API keys and tokens are redacted from everything recorded: span
attributes, status messages and exception events (once, in front of every consumer),
event rows, JSONL lines, console output, `ErrorInfo` (what `CommandFailed` and results
carry) and llmgine's own log records. The redactor knows the values of environment
variables named like credentials (`*_API_KEY`, `*_TOKEN`, ...), anything passed to
`observability.add_secret(...)`, and the shapes of common keys (`sk-...`, `sk-ant-...`,
`AIza...`, bearer tokens, `api_key=...`, `"x-api-key": "..."`); values under keys such as
`authorization` are replaced whole. A test puts keys in a request, headers, a tool
argument and exception messages and checks every output, the OTLP payload included.

**In memory.** Spans go to a thread-safe ring buffer (`obs.buffer`, default 50,000
finished spans, about 1 KB each, so about 50 MB full; the oldest make room and are counted
in `evicted`) that also holds running spans, and tells listeners of each span as it starts
and ends, for live views. Events go to a window of the latest 10,000 (`event_capacity`;
`obs.events_evicted` says how many fell out).

**DataFrames.** `spans_df()` has `trace_id, span_id, parent_id, name, kind, start_time,
end_time, duration_ms, status, status_message, session_id` and one `attributes.<name>`
column per attribute; running spans have `end_time` NaT. Attribute columns are typed:
whole numbers `Int64` (missing values `<NA>`), other numbers `float64`, text `str`, yes/no
`boolean`; lists of one type stay Python lists; a column whose values differ in type
between spans becomes text (non-text values as JSON). `events_df()` has `type, id,
session_id, timestamp` and the payload as `data.<field>` (nested models as
`data.<field>.<inner>`). Both filter by `session=`, `since=`/`until=` (aware datetimes)
and `name=` (exact, or a glob such as `"chat *"`).

**Parquet.** `obs.spans_df().to_parquet("spans.parquet")` (pyarrow comes with the
observability extra) and `pd.read_parquet` give back the same columns with the same
dtypes, times with their UTC zone, `<NA>`/NaN/NaT where values were missing; list values
come back as numpy arrays of the same items (how pandas reads Parquet lists).

**Traces that travel.** `obs.save("trace.otlp.jsonl")` (or `observability.save(...)` for
the enabled one; `session=` keeps one session's traces) writes the finished spans as OTLP
JSON in the OpenTelemetry Collector file exporter's format: JSON lines, each an
`ExportTraceServiceRequest` (`resourceSpans` → `scopeSpans` → `spans`) in the OTLP/JSON
mapping (hex ids, times as strings of nanoseconds, typed attribute values), encoded by the
OTLP exporter's own encoder. Spans were redacted when recorded and the resource is
redacted on the way out, so a saved file holds no key. The Collector's `otlpjsonfile`
receiver, and anything else that reads OTLP JSON, reads it.

```python
obs.save("chat.otlp.jsonl")
seen = observability.load("chat.otlp.jsonl")    # a new Observability, not enabled
seen.spans_df(); TraceView(obs=seen)            # dashboard(bus, obs=seen) too
observability.load("other.jsonl", into=obs)     # or join the spans you are recording
```

`load` reads files from llmgine or from any OpenTelemetry instrumentation (the
Collector's file exporter with `format: json`, gzip-compressed or not; the SDKs'
`FileSpanExporter`), a few thousand spans a second. It keeps each span's ids, parent,
name, kind, times, status, attributes and events; links, resources and scopes are not
kept (`save` writes the saving `Observability`'s resource). Spans of other
instrumentations get what llmgine's views read, added and never overwritten:
`llmgine.span.kind` ("llm" for a model call, "tool" for `execute_tool`, from
`gen_ai.operation.name` or OpenInference's `openinference.span.kind`), and today's GenAI
names beside older ones (`gen_ai.system` → `gen_ai.provider.name`,
`gen_ai.usage.prompt_tokens`/`completion_tokens` → `input_tokens`/`output_tokens`,
OpenInference's `llm.model_name`, `llm.token_count.*`, `tool.name`). Maps and mixed lists
are kept as JSON text, bytes as hex. Everything read is redacted; a span already in the
buffer is not added twice. A test loads the spans OpenTelemetry's own OpenAI
instrumentation (`opentelemetry-instrumentation-openai-v2`) made of the real `openai` SDK
calling a loopback server, written by the SDK's file exporter
(`tests/observability/make_openai_v2_fixture.py` regenerates it).

**Handlers.** `enable(console=True)` prints a readable line per span and per event (colour
on a terminal, via `rich`). `enable(jsonl="trace.jsonl")` writes a JSON line per finished
span from a writer thread, rotating at 50 MB and keeping 5 older files; the caller only
appends to a deque, so a slow disk never stalls the bus, and if the writer falls 100,000
records behind the rest are dropped **and counted** (`obs.jsonl.dropped`). With
`jsonl_events=True` it also writes every bus event (`{"kind": "event", "type", "data"}`,
readable back with `llmgine.bus.from_json`); that serialises every event, which at the bus's
top speed is far more than the 5% budget, so it is opt-in.

**OTLP export** to any backend (an OpenTelemetry Collector, Jaeger, Phoenix, Langfuse, ...)
is configured by the standard variables: set `OTEL_EXPORTER_OTLP_ENDPOINT` (and
`OTEL_EXPORTER_OTLP_HEADERS`, `OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES` as usual)
and `enable()` exports spans and metrics over OTLP/HTTP with no code change
(`enable(otlp=False)` to refuse; `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` alone exports spans
only). The test starts a real OTLP/HTTP receiver on 127.0.0.1
and decodes what arrives with `opentelemetry-proto`. The resource is redacted before it
is exported (`OTEL_RESOURCE_ATTRIBUTES` may hold a credential).

**Traces across processes.** `obs.collect()` (or `observability.collect()`) is that
receiver, built in: an OTLP/HTTP endpoint on 127.0.0.1 (a free port; `host=` and `port=`
to choose, and it has no authentication, so bind elsewhere only on purpose) whose URL it
returns for other processes' `OTEL_EXPORTER_OTLP_ENDPOINT`. What they post to
`/v1/traces` (protobuf as the official exporters send it, or OTLP JSON; gzip or deflate)
joins the buffer as finished spans as it arrives, redacted as `load` does and each with
its process's `service.name` as an attribute, so `spans_df()`, `TraceView`, the dashboard
and span listeners show one trace across processes; `await obs.wait_for_spans(count,
name=, session=, where=, timeout=)` returns the matching finished spans once there are
`count`, woken by each one as it ends or arrives (from any thread), or raises
`SpanWaitTimeoutError` (a `TimeoutError`) naming those that did. `llmgine worker` exports its spans
when the variable is set, and a command it runs for a traced caller is a child of the
caller's span (the bus carries the `traceparent`). A body that is not a trace request is
answered 400 with the reason (a `google.rpc.Status`), one over 20 MB 413 (inflated size
counted too), and the receiver goes on; `/v1/metrics` and `/v1/logs` are answered and
dropped. `obs.stop_collecting()` or `disable()` closes its port. It runs on a thread of
its own, not on the notebook's loop, which a blocking cell would hold up.

**Metrics** (OpenTelemetry metrics SDK, readable with `obs.metrics_df()`): per observed bus
`llmgine.bus.events.published`, `.events.handled`, `.handler.failures`, `.events.dropped`,
`.events.rejected`, `.commands.executed`, `.commands.failed`, `.queue.depth` and
`.handler.latency` (p50/p99), read from `bus.stats()` at collection time, so they cost the
bus nothing per event; and the GenAI histograms `gen_ai.client.token.usage` and
`gen_ai.client.operation.duration` with the spec's bucket boundaries.

**Switching on and off.** `enable()` is idempotent (the same settings return the same
`Observability`; new settings replace it and keep observing the same buses). llmgine never
installs a global OpenTelemetry provider: it uses its own tracer, or adds one processor to
`enable(tracer_provider=yours)`, which `disable()` switches off. Its own tracer
(`observability/_tracer.py`) makes OpenTelemetry API spans that read like the SDK's
`ReadableSpan` while they run and reach processors as genuine ones when they end (made
with its public constructor), so context propagation, nesting, the SDK's exporters (OTLP)
and its span processors work unchanged; it skips what llmgine does not use (sampling, span limits, a
lock per attribute), which takes a span from about 32 µs to 10 µs: that matters inside a
model call's budget. With your provider, spans are your SDK's, with all its settings. `disable()`
ends open session spans (marked `llmgine.session.unfinished`), flushes files and exporters
and shuts down what `enable()` started.
"""

# ruff: noqa: E402 (the check below must run before the imports it guards)
from llmgine._extras import require as _require

_require("observability", "llmgine.observability")  # else a bare "No module named pandas"

import os as _os
from typing import TYPE_CHECKING as _TYPE_CHECKING

import pandas as _pd

from llmgine import _semconv as semconv
from llmgine._redact import REDACTED, Redactor, add_credential, add_secret, redact
from llmgine.observability._buffer import SpanBuffer, SpanListener, SpanRecord, span_record
from llmgine.observability._events import EventLog
from llmgine.observability._frames import SPAN_COLUMNS, Time
from llmgine.observability._handlers import ConsoleHandler, JsonlHandler, span_json
from llmgine.observability._metrics import Metrics
from llmgine.observability._observer import TracingObserver
from llmgine.observability._setup import (
    Observability,
    Settings,
    current,
    disable,
    enable,
    load,
)
from llmgine.observability._spans import (
    LLMCall,
    LLMCallArgs,
    ToolCall,
    error_type,
    llm_span,
    start_llm_call,
    tool_span,
)


def _enabled() -> Observability:
    obs = current()
    if obs is None:
        from llmgine.errors import ObservabilityError

        raise ObservabilityError(
            "observability is off: call llmgine.observability.enable(bus) first"
        )
    return obs


def spans_df(**filters: object) -> _pd.DataFrame:
    """`Observability.spans_df` of the enabled observability."""
    return _enabled().spans_df(**filters)  # type: ignore[arg-type]


def events_df(**filters: object) -> _pd.DataFrame:
    """`Observability.events_df` of the enabled observability."""
    return _enabled().events_df(**filters)  # type: ignore[arg-type]


def save(path: str | _os.PathLike[str], *, session: str | None = None) -> int:
    """`Observability.save` of the enabled observability: the finished spans as OTLP JSON."""
    return _enabled().save(path, session=session)


def collect(host: str = "127.0.0.1", port: int = 0) -> str:
    """`Observability.collect` of the enabled observability: receive other processes'
    spans over OTLP/HTTP; returns the URL for their ``OTEL_EXPORTER_OTLP_ENDPOINT``."""
    return _enabled().collect(host, port)


def metrics_df() -> _pd.DataFrame:
    """`Observability.metrics_df` of the enabled observability."""
    return _enabled().metrics_df()


__all__ = [  # noqa: RUF022 - plainly sorted, as tests/test_public_api.py checks
    "ConsoleHandler",
    "EventLog",
    "JsonlHandler",
    "LLMCall",
    "LLMCallArgs",
    "Metrics",
    "Observability",
    "REDACTED",
    "Redactor",
    "SPAN_COLUMNS",
    "Settings",
    "SpanBuffer",
    "SpanCollector",
    "SpanListener",
    "SpanRecord",
    "Time",
    "ToolCall",
    "TracingObserver",
    "add_credential",
    "add_secret",
    "collect",
    "current",
    "disable",
    "enable",
    "error_type",
    "events_df",
    "llm_span",
    "load",
    "metrics_df",
    "redact",
    "save",
    "semconv",
    "span_json",
    "span_record",
    "spans_df",
    "start_llm_call",
    "tool_span",
]


if _TYPE_CHECKING:
    from llmgine.observability._collector import SpanCollector


def __getattr__(name: str) -> object:
    # The OTLP receiver (http.server, protobuf's google.rpc.Status: about 20 ms) loads only
    # when asked for: most processes never collect().
    if name == "SpanCollector":
        from llmgine.observability._collector import SpanCollector

        return SpanCollector
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
