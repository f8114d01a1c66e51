"""`Observability.collect`: an OTLP/HTTP trace receiver, fed by the official exporter."""

from __future__ import annotations

import gzip
import http.client
import json
import threading
import zlib
from collections.abc import Iterator

import pytest
from google.rpc.status_pb2 import Status  # type: ignore[import-untyped]
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from llmgine import observability
from llmgine.errors import ObservabilityError
from llmgine.observability import REDACTED, Observability, SpanCollector, SpanRecord
from llmgine.observability._export import otlp_exporters
from llmgine.observability._otlp_file import otlp_json_line
from tests.deadline import DEADLINE

SECRET_KEY = "sk-proj-" + "Qw3eRt6yUi9oPa2sDf5gHj8kLz1xCv4b"


@pytest.fixture
def obs() -> Iterator[Observability]:
    obs = observability.enable()
    yield obs
    observability.disable()


def worker_provider(
    endpoint: str, compression: Compression = Compression.NoCompression
) -> TracerProvider:
    """Another process's tracer, as `llmgine worker` would have it: the official exporter."""
    provider = TracerProvider(resource=Resource.create({"service.name": "worker-7"}))
    exporter = OTLPSpanExporter(
        endpoint=f"{endpoint}/v1/traces", compression=compression, timeout=DEADLINE
    )
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider


def post(url: str, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, str, bytes]:
    host, port = url.removeprefix("http://").rsplit(":", 1)
    connection = http.client.HTTPConnection(host, int(port), timeout=DEADLINE)
    try:
        connection.request("POST", path, body=body, headers=headers)
        response = connection.getresponse()
        return response.status, response.getheader("Content-Type", ""), response.read()
    finally:
        connection.close()


def reason(body: bytes) -> str:
    return str(Status.FromString(body).message)


@pytest.mark.parametrize(
    "compression", [Compression.NoCompression, Compression.Gzip, Compression.Deflate]
)
def test_the_official_exporters_spans_join_the_buffer(
    obs: Observability, compression: Compression
) -> None:
    endpoint = obs.collect()
    assert endpoint.startswith("http://127.0.0.1:")
    tracer = worker_provider(endpoint, compression).get_tracer("worker")
    with (
        tracer.start_as_current_span("command Work") as parent,
        tracer.start_as_current_span("chat model") as child,
    ):
        child.set_attribute("gen_ai.operation.name", "chat")
    spans = obs.spans_df().set_index("name")
    assert set(spans.index) == {"command Work", "chat model"}
    work, chat = spans.loc["command Work"], spans.loc["chat model"]
    assert chat["parent_id"] == work["span_id"]
    assert chat["trace_id"] == work["trace_id"] == f"{parent.get_span_context().trace_id:032x}"
    assert chat["attributes.llmgine.span.kind"] == "llm"  # as load() adds it
    assert set(spans["attributes.service.name"]) == {"worker-7"}
    assert obs.collector is not None
    assert (obs.collector.spans, obs.collector.requests, obs.collector.rejected) == (2, 2, 0)


def test_listeners_hear_of_spans_as_they_arrive(obs: Observability) -> None:
    arrived = threading.Event()
    heard: list[SpanRecord] = []

    def listener(what: str, record: SpanRecord) -> None:
        heard.append(record)
        arrived.set()

    obs.buffer.subscribe(listener)
    tracer = worker_provider(obs.collect()).get_tracer("worker")
    with tracer.start_as_current_span("remote"):
        pass
    assert arrived.wait(DEADLINE)
    assert [r.name for r in heard] == ["remote"]


def test_secrets_in_a_workers_spans_are_redacted_on_arrival(obs: Observability) -> None:
    provider = TracerProvider(resource=Resource.create({"service.name": f"w {SECRET_KEY}"}))
    exporter = OTLPSpanExporter(endpoint=f"{obs.collect()}/v1/traces", timeout=DEADLINE)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    with provider.get_tracer("worker").start_as_current_span(f"call {SECRET_KEY}") as span:
        span.set_attribute("http.request.header.authorization", f"Bearer {SECRET_KEY}")
        span.set_attribute("note", f"key={SECRET_KEY}")
        span.add_event("retry", {"detail": SECRET_KEY})
    (record,) = obs.buffer.finished()
    assert SECRET_KEY not in repr(record)
    assert REDACTED in record.name
    assert REDACTED in record.attributes["note"]
    assert REDACTED in record.attributes["service.name"]
    assert record.events[0][2]["detail"] == REDACTED


def test_a_json_request_is_read_and_answered_in_json(obs: Observability) -> None:
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "json-worker"}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    with provider.get_tracer("t").start_as_current_span("from json"):
        pass
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

    line = otlp_json_line(encode_spans(memory.get_finished_spans())).encode()
    status, content_type, body = post(
        obs.collect(),
        "/v1/traces",
        gzip.compress(line),
        {"Content-Type": "application/json", "Content-Encoding": "gzip"},
    )
    assert (status, content_type) == (200, "application/json")
    assert json.loads(body) == {}
    (record,) = obs.buffer.finished()
    assert (record.name, record.attributes["service.name"]) == ("from json", "json-worker")


@pytest.mark.parametrize(
    ("path", "body", "headers", "status", "says"),
    [
        ("/v1/traces", b"not a protobuf", {}, 400, "not a protobuf ExportTraceServiceRequest"),
        ("/v1/traces", b"{nope", {"Content-Type": "application/json"}, 400, "is not JSON"),
        (
            "/v1/traces",
            b'{"resourceMetrics": []}',
            {"Content-Type": "application/json"},
            400,
            "holds metrics, not traces",
        ),
        ("/v1/traces", b"\x00", {"Content-Encoding": "gzip"}, 400, "not valid gzip"),
        ("/v1/traces", b"x", {"Content-Encoding": "br"}, 415, "'br' is not read"),
        ("/v1/traces", b"x", {"Content-Type": "text/plain"}, 415, "'text/plain'"),
        ("/v2/spans", b"x", {}, 404, "receives traces at POST /v1/traces"),
    ],
)
def test_a_bad_request_is_refused_with_a_reason_and_the_receiver_goes_on(
    obs: Observability, path: str, body: bytes, headers: dict[str, str], status: int, says: str
) -> None:
    endpoint = obs.collect()
    sent = {"Content-Type": "application/x-protobuf", **headers}
    got, content_type, answer = post(endpoint, path, body, sent)
    assert got == status
    text = json.loads(answer)["message"] if content_type == "application/json" else reason(answer)
    assert says in text
    assert obs.collector is not None
    assert obs.collector.rejected == 1
    tracer = worker_provider(endpoint).get_tracer("worker")
    with tracer.start_as_current_span("after"):
        pass
    assert [r.name for r in obs.buffer.finished()] == ["after"]


def test_a_body_over_the_limit_is_413_compressed_or_not(obs: Observability) -> None:
    collector = SpanCollector(obs.buffer, obs.redactor, max_body=1000)
    try:
        protobuf = {"Content-Type": "application/x-protobuf"}
        status, _, answer = post(collector.url, "/v1/traces", b"x" * 1001, protobuf)
        assert status == 413
        assert "over the limit of 1000" in reason(answer)
        bomb = zlib.compress(b"\x00" * 100_000)
        assert len(bomb) < 1000
        status, _, answer = post(
            collector.url, "/v1/traces", bomb, {**protobuf, "Content-Encoding": "deflate"}
        )
        assert status == 413
        assert "inflates to more than 1000 bytes" in reason(answer)
        assert collector.rejected == 2
    finally:
        collector.close()


def test_metrics_and_logs_are_answered_and_dropped(obs: Observability) -> None:
    endpoint = obs.collect()
    for path in ("/v1/metrics", "/v1/logs"):
        status, _, _ = post(endpoint, path, b"", {"Content-Type": "application/x-protobuf"})
        assert status == 200
    assert obs.collector is not None
    assert obs.collector.ignored == 2
    assert len(obs.buffer) == 0


def test_collect_is_idempotent_and_close_stops_it() -> None:
    obs = observability.enable()
    endpoint = obs.collect()
    assert observability.collect() == endpoint  # the module-level one: the same receiver
    collector = obs.collector
    assert collector is not None
    with pytest.raises(ObservabilityError, match="already collecting spans at"):
        obs.collect(port=collector.port + 1 if collector.port < 65535 else 1)
    observability.disable()
    assert obs.collector is None
    assert collector.closed
    assert not collector._thread.is_alive()
    with pytest.raises(ConnectionRefusedError):
        post(endpoint, "/v1/traces", b"", {"Content-Type": "application/x-protobuf"})
    with pytest.raises(ObservabilityError, match="enable"):
        obs.collect()


def test_stop_collecting_frees_the_port_and_keeps_the_spans(obs: Observability) -> None:
    endpoint = obs.collect()
    tracer = worker_provider(endpoint).get_tracer("worker")
    with tracer.start_as_current_span("kept"):
        pass
    port = int(endpoint.rsplit(":", 1)[1])
    obs.stop_collecting()
    assert obs.collect(port=port) == endpoint  # the same port again: it was let go
    assert [r.name for r in obs.buffer.finished()] == ["kept"]


def test_a_taken_port_is_a_clear_error(obs: Observability) -> None:
    other = SpanCollector(obs.buffer, obs.redactor)
    try:
        with pytest.raises(ObservabilityError, match="pick another port, or port=0"):
            obs.collect(port=other.port)
    finally:
        other.close()


def test_collect_needs_observability_on() -> None:
    with pytest.raises(ObservabilityError, match="enable"):
        observability.collect()


def test_the_exporter_reports_success(obs: Observability) -> None:
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    with provider.get_tracer("t").start_as_current_span("one"):
        pass
    exporter = OTLPSpanExporter(endpoint=f"{obs.collect()}/v1/traces", timeout=DEADLINE)
    assert exporter.export(memory.get_finished_spans()) is SpanExportResult.SUCCESS
    exporter.shutdown()  # type: ignore[no-untyped-call]


def test_a_traces_endpoint_alone_exports_spans_and_no_metrics(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    collecting = Observability(observability.Settings())
    try:
        endpoint = collecting.collect()
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", f"{endpoint}/v1/traces")
        obs = observability.enable()
        assert obs.settings.otlp
        with obs.tracer.start_as_current_span("sent"):
            pass
        observability.disable()  # flushes
        assert [r.name for r in collecting.buffer.finished()] == ["sent"]
        assert otlp_exporters()[1] is None
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", f"{endpoint}/v1/metrics")
        assert otlp_exporters()[1] is not None
    finally:
        collecting.close()
