"""Traces that travel: spans to and from OTLP JSON files.

The format is the OpenTelemetry Collector file exporter's (``format: json``), which is also
the specification's OTLP File Exporter and the Python SDK's ``FileSpanExporter``: JSON
lines, each an ``ExportTraceServiceRequest`` in the OTLP/JSON mapping of protobuf
(``resourceSpans`` → ``scopeSpans`` → ``spans``; ids as hex strings, not base64; 64-bit
integers and times as strings of nanoseconds; enums as integers; attribute values as typed
``AnyValue``). Writing goes through the OTLP exporter's own encoder and protobuf's
``json_format``; reading through ``json_format`` into the same message, so any producer
that follows the mapping is read (the Collector, the SDKs, llmgine).
"""

from __future__ import annotations

import base64
import contextlib
import gzip
import json
import os
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import Error as ProtobufError
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span as ProtoSpan
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event as SpanEvent
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags

from llmgine import _semconv as sc
from llmgine._redact import Redactor
from llmgine.errors import ObservabilityError
from llmgine.observability._buffer import SpanRecord

__all__ = [
    "SPANS_PER_LINE",
    "foreign_attributes",
    "json_request",
    "otlp_json_line",
    "read_spans",
    "request_records",
    "safe_resource",
    "write_spans",
]

SPANS_PER_LINE = 1000  # the Collector writes one line per batch; this keeps lines short
_SCOPE = InstrumentationScope("llmgine")
_KIND = {k.name.lower(): k for k in SpanKind}
_STATUS = {"unset": StatusCode.UNSET, "ok": StatusCode.OK, "error": StatusCode.ERROR}
# The proto's enums: SPAN_KIND_UNSPECIFIED (0) reads as internal, as the SDKs do.
_PROTO_KIND = ("internal", "internal", "server", "client", "producer", "consumer")
_PROTO_STATUS = ("unset", "ok", "error")
_ID_FIELDS = ("traceId", "spanId", "parentSpanId")


# -- writing ---------------------------------------------------------------------------------


def _readable(record: SpanRecord, resource: Resource) -> ReadableSpan:
    flags = TraceFlags(TraceFlags.SAMPLED)
    parent = None
    if record.parent_id is not None:
        parent = SpanContext(record.trace_id, record.parent_id, False, flags)
    return ReadableSpan(
        name=record.name,
        context=SpanContext(record.trace_id, record.span_id, False, flags),
        parent=parent,
        resource=resource,
        attributes=record.attributes,
        events=[SpanEvent(name, attrs, ns) for name, ns, attrs in record.events],
        kind=_KIND.get(record.kind, SpanKind.INTERNAL),
        status=Status(_STATUS.get(record.status, StatusCode.UNSET), record.status_message),
        start_time=record.start_time,
        end_time=record.end_time,
        instrumentation_scope=_SCOPE,
    )


def _spans_of(data: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every span, and every link of a span, in a request in the JSON mapping: what has
    trace and span ids."""
    for resource_spans in data.get("resourceSpans", ()):
        for scope_spans in resource_spans.get("scopeSpans", ()):
            for span in scope_spans.get("spans", ()):
                yield span
                yield from span.get("links", ())


def _hex_ids(data: dict[str, Any]) -> None:
    """protobuf's JSON mapping writes bytes as base64; OTLP/JSON wants ids in hex."""
    for span in _spans_of(data):
        for key in _ID_FIELDS:
            value = span.get(key)
            if isinstance(value, str):
                span[key] = base64.b64decode(value).hex()


def otlp_json_line(request: ExportTraceServiceRequest) -> str:
    """One line of an OTLP JSON file: ``request`` in the OTLP/JSON mapping."""
    data = json_format.MessageToDict(request, use_integers_for_enums=True)
    _hex_ids(data)
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"))


def safe_resource(resource: Resource, redactor: Redactor) -> Resource:
    """``resource`` with every value redacted (``OTEL_RESOURCE_ATTRIBUTES`` or a process
    detector may carry a credential, as a command line does)."""
    attributes = {k: redactor.value(v) for k, v in resource.attributes.items()}
    return Resource(attributes, resource.schema_url)


def write_spans(
    path: str | os.PathLike[str],
    records: Sequence[SpanRecord],
    resource: Resource,
    redactor: Redactor,
) -> int:
    """Write the finished spans of ``records`` to ``path`` as OTLP JSON lines; returns how
    many. Everything written passes ``redactor`` (spans were redacted when recorded; the
    resource was not)."""
    finished = [r for r in records if r.end_time is not None]
    safe = safe_resource(resource, redactor)
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(target.name + ".tmp")
    with temporary.open("w", encoding="utf-8") as out:
        for start in range(0, len(finished), SPANS_PER_LINE):
            batch = finished[start : start + SPANS_PER_LINE]
            spans = [_readable(redacted(r, redactor), safe) for r in batch]
            out.write(otlp_json_line(encode_spans(spans)) + "\n")
    os.replace(temporary, target)  # a reader never sees half a file
    return len(finished)


def redacted(record: SpanRecord, redactor: Redactor) -> SpanRecord:
    """``record`` with its texts redacted (the same record when nothing needs it)."""
    texts = [record.name, record.status_message or ""]
    for value in record.attributes.values():
        if isinstance(value, str):
            texts.append(value)
        elif isinstance(value, list):
            texts.extend(v for v in value if isinstance(v, str))
    nested = False  # lists in events: rare, and redacted whole
    for _, _, attributes in record.events:
        texts.extend(v for v in attributes.values() if isinstance(v, str))
        nested = nested or any(isinstance(v, list) for v in attributes.values())
    if not nested and redactor.is_clean(*texts):
        return record
    return record._replace(
        name=redactor.text(record.name),
        status_message=(
            None if record.status_message is None else redactor.text(record.status_message)
        ),
        attributes=redactor.value(record.attributes),
        events=tuple((n, t, redactor.value(a)) for n, t, a in record.events),
    )


# -- reading ---------------------------------------------------------------------------------


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    try:
        with path.open("rb") as start:
            head = start.read(4)
    except FileNotFoundError:
        raise ObservabilityError(f"no trace file at {path}: check the path") from None
    if head == b"\x28\xb5\x2f\xfd":
        raise ObservabilityError(
            f"{path} is zstd-compressed (the Collector's `compression: zstd`): decompress it "
            "first (`zstd -d FILE`), or export without compression"
        )
    gzipped = head[:2] == b"\x1f\x8b"
    with (
        gzip.open(path, "rt", encoding="utf-8") if gzipped else path.open(encoding="utf-8")
    ) as lines:
        try:
            for number, line in enumerate(lines, 1):
                if line.strip():
                    yield number, line
        except UnicodeDecodeError:
            raise ObservabilityError(
                f"{path} is not text: OTLP JSON files are UTF-8 JSON lines. Binary OTLP "
                "(the Collector's `format: proto`) is not read; export with `format: json`"
            ) from None


def _ids_to_base64(data: dict[str, Any]) -> None:
    """OTLP/JSON ids are hex; protobuf's JSON parser wants base64. Base64 ids (from a
    producer that used the plain protobuf mapping) pass unchanged."""
    for span in _spans_of(data):
        for key in _ID_FIELDS:
            value = span.get(key)
            if isinstance(value, str) and len(value) in (16, 32):
                with contextlib.suppress(ValueError):
                    span[key] = base64.b64encode(bytes.fromhex(value)).decode()


def json_request(text: str | bytes, where: str) -> ExportTraceServiceRequest:
    """One ``ExportTraceServiceRequest`` in the OTLP/JSON mapping (ids in hex, or base64
    as plain protobuf JSON has them); ``where`` names it in the error."""
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        reason = exc.msg if isinstance(exc, json.JSONDecodeError) else "not UTF-8"
        raise ObservabilityError(
            f"{where} is not JSON ({reason}): OTLP JSON is one ExportTraceServiceRequest "
            "object, as obs.save() and the Collector's file exporter write a line"
        ) from None
    if not isinstance(data, dict) or "resourceSpans" not in data:
        other = None
        if isinstance(data, dict):
            other = next((k for k in ("resourceMetrics", "resourceLogs") if k in data), None)
        what = f"holds {other[8:].lower()}, not traces" if other else "has no resourceSpans"
        raise ObservabilityError(
            f"{where} {what}: llmgine reads OTLP JSON traces (ExportTraceServiceRequest), "
            "as obs.save() and the Collector's file exporter write"
        )
    request = ExportTraceServiceRequest()
    try:
        _ids_to_base64(data)
        json_format.ParseDict(data, request, ignore_unknown_fields=True)
    except (json_format.ParseError, ProtobufError, ValueError, TypeError, AttributeError) as exc:
        raise ObservabilityError(f"{where} is not valid OTLP JSON: {exc}") from None
    return request


def _value(value: AnyValue) -> Any:
    which = value.WhichOneof("value")
    if which == "array_value":
        return [_value(v) for v in value.array_value.values]
    if which == "kvlist_value":
        return {kv.key: _value(kv.value) for kv in value.kvlist_value.values}
    return None if which is None else getattr(value, which)


def _attribute(value: AnyValue) -> Any:
    """A span attribute as llmgine keeps them: a str, bool, int or float, or a list of one
    of those; anything else (a map, a mixed list, nested lists) as JSON text, bytes as
    hex."""
    plain = _value(value)
    if isinstance(plain, bytes):
        return plain.hex()
    if isinstance(plain, list):
        kinds = {type(v) for v in plain}
        if len(kinds) <= 1 and kinds <= {str, bool, int, float}:
            return plain
    elif not isinstance(plain, dict):
        return plain
    return json.dumps(plain, default=lambda b: b.hex(), ensure_ascii=False)


def _attributes(pairs: Iterable[Any]) -> dict[str, Any]:
    return {kv.key: _attribute(kv.value) for kv in pairs}


def _record(span: ProtoSpan) -> SpanRecord:
    parent = span.parent_span_id
    status = span.status.code
    return SpanRecord(
        span.name,
        int.from_bytes(span.trace_id, "big"),
        int.from_bytes(span.span_id, "big"),
        int.from_bytes(parent, "big") if parent else None,
        _PROTO_KIND[span.kind] if span.kind < len(_PROTO_KIND) else "internal",
        span.start_time_unix_nano,
        span.end_time_unix_nano or None,
        _PROTO_STATUS[status] if status < len(_PROTO_STATUS) else "unset",
        span.status.message or None,
        foreign_attributes(_attributes(span.attributes)),
        tuple((e.name, e.time_unix_nano, _attributes(e.attributes)) for e in span.events),
    )


def request_records(
    request: ExportTraceServiceRequest, redactor: Redactor, *, service: bool = False
) -> list[SpanRecord]:
    """Every span of ``request`` as a redacted record. ``service``: each span from a
    resource with a ``service.name`` gets it as an attribute (unless it has one), so spans
    gathered from several processes say which one recorded them."""
    records: list[SpanRecord] = []
    for resource_spans in request.resource_spans:
        name = None
        if service:
            resource = _attributes(resource_spans.resource.attributes)
            name = resource.get(sc.SERVICE_NAME)
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                record = _record(span)
                if name is not None:
                    record.attributes.setdefault(sc.SERVICE_NAME, name)
                records.append(redacted(record, redactor))
    return records


def read_spans(path: str | os.PathLike[str], redactor: Redactor) -> list[SpanRecord]:
    """Every span in an OTLP JSON file, as redacted records (see `foreign_attributes` for
    what is added to spans of other instrumentations)."""
    source = Path(path)
    records: list[SpanRecord] = []
    for number, line in _lines(source):
        request = json_request(line, f"{source}, line {number}")
        records.extend(request_records(request, redactor))
    return records


# -- spans of other instrumentations ---------------------------------------------------------

# Older GenAI names and OpenInference's (Phoenix, Arize), to today's GenAI conventions.
_RENAMED = {
    "gen_ai.system": sc.PROVIDER_NAME,
    "gen_ai.usage.prompt_tokens": sc.USAGE_INPUT_TOKENS,
    "gen_ai.usage.completion_tokens": sc.USAGE_OUTPUT_TOKENS,
    "llm.model_name": sc.REQUEST_MODEL,
    "llm.provider": sc.PROVIDER_NAME,
    "llm.token_count.prompt": sc.USAGE_INPUT_TOKENS,
    "llm.token_count.completion": sc.USAGE_OUTPUT_TOKENS,
    "tool.name": sc.TOOL_NAME,
}
_LLM_OPERATIONS = frozenset(
    {sc.OP_CHAT, sc.OP_GENERATE_CONTENT, sc.OP_TEXT_COMPLETION, sc.OP_EMBEDDINGS}
)
_OPENINFERENCE_KINDS = {"LLM": "llm", "EMBEDDING": "llm", "TOOL": "tool"}


def foreign_attributes(attributes: dict[str, Any]) -> dict[str, Any]:
    """Add what llmgine's views read to a span from another instrumentation (in place;
    nothing is overwritten or removed): today's GenAI names for older and OpenInference
    ones, and ``llmgine.span.kind`` ("llm" for a model call, "tool" for a tool
    execution) from ``gen_ai.operation.name`` or ``openinference.span.kind``."""
    for old, new in _RENAMED.items():
        if old in attributes and new not in attributes:
            attributes[new] = attributes[old]
    if sc.SPAN_KIND not in attributes:
        operation = attributes.get(sc.OPERATION_NAME)
        kind = _OPENINFERENCE_KINDS.get(str(attributes.get("openinference.span.kind")))
        if operation in _LLM_OPERATIONS:
            kind = "llm"
        elif operation == sc.OP_EXECUTE_TOOL:
            kind = "tool"
        if kind is not None:
            attributes[sc.SPAN_KIND] = kind
    return attributes
