"""OTLP/HTTP export for real: a receiver on 127.0.0.1 decodes what arrives with the proto."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from llmgine import observability
from llmgine.bus import Command, MessageBus
from llmgine.errors import ObservabilityError
from llmgine.observability import llm_span


class Receiver:
    """A minimal OTLP/HTTP collector: keeps each request's decoded body by path."""

    def __init__(self) -> None:
        self.traces: list[ExportTraceServiceRequest] = []
        self.metrics: list[ExportMetricsServiceRequest] = []
        self.raw: list[bytes] = []
        self.headers: list[dict[str, str]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.raw.append(body)
                receiver.headers.append(dict(self.headers))
                if self.path == "/v1/traces":
                    receiver.traces.append(ExportTraceServiceRequest.FromString(body))
                elif self.path == "/v1/metrics":
                    receiver.metrics.append(ExportMetricsServiceRequest.FromString(body))
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def spans(self) -> dict[str, Any]:
        return {
            span.name: span
            for request in self.traces
            for rs in request.resource_spans
            for ss in rs.scope_spans
            for span in ss.spans
        }

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver(monkeypatch: pytest.MonkeyPatch) -> Iterator[Receiver]:
    r = Receiver()
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", r.url)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", "x-team=llmgine")
    monkeypatch.setenv("OTEL_SERVICE_NAME", "otlp-test")
    yield r
    r.close()


class Ask(Command[str]):
    pass


def attributes(span: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for kv in span.attributes:
        value = kv.value
        kind = value.WhichOneof("value")
        out[kv.key] = (
            [v.string_value for v in value.array_value.values]
            if kind == "array_value"
            else getattr(value, kind)
        )
    return out


async def test_spans_and_metrics_arrive_over_otlp_http(bus: MessageBus, receiver: Receiver) -> None:
    obs = observability.enable(bus)  # the endpoint variable alone switches OTLP on
    assert obs.settings.otlp

    async def ask(cmd: Ask) -> str:
        with llm_span(provider="openai", model="gpt-4o-mini") as call:
            call.response(model="gpt-4o-mini", response_id="r-1", input_tokens=7, output_tokens=2)
        return "ok"

    bus.on_command(Ask, ask)
    async with bus.session("chat") as session:
        await session.execute(Ask())
    observability.disable()  # flushes the batch processor and the metric reader

    spans = receiver.spans()
    assert set(spans) == {"session chat", "command Ask", "chat gpt-4o-mini"}
    llm = spans["chat gpt-4o-mini"]
    assert llm.kind == llm.SPAN_KIND_CLIENT
    assert llm.parent_span_id == spans["command Ask"].span_id
    attrs = attributes(llm)
    assert attrs["gen_ai.provider.name"] == "openai"
    assert attrs["gen_ai.usage.input_tokens"] == 7
    assert attrs["gen_ai.response.id"] == "r-1"
    assert attrs["gen_ai.conversation.id"] == session.id
    resource = {
        kv.key: kv.value.string_value
        for kv in receiver.traces[0].resource_spans[0].resource.attributes
    }
    assert resource["service.name"] == "otlp-test"
    assert all(h.get("x-team") == "llmgine" for h in receiver.headers)

    metric_names = {
        m.name
        for request in receiver.metrics
        for rm in request.resource_metrics
        for sm in rm.scope_metrics
        for m in sm.metrics
    }
    assert {"gen_ai.client.token.usage", "gen_ai.client.operation.duration"} <= metric_names
    assert "llmgine.bus.events.published" in metric_names


def test_an_unsupported_otlp_protocol_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
    with pytest.raises(ObservabilityError, match="http/protobuf"):
        observability.enable(otlp=True)


async def test_the_exported_resource_is_redacted(
    bus: MessageBus, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = "sk-proj-" + "Hg5fDs8aPo1iUy4tRe7wQz0xCv3bNm6l"
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", f"deployment.note=key {key}")
    observability.enable(bus)
    bus.on_command(Ask, lambda c: "ok")
    assert (await bus.execute(Ask())).success
    observability.disable()
    assert receiver.traces
    assert all(key.encode() not in body for body in receiver.raw)
    resource = {
        kv.key: kv.value.string_value
        for kv in receiver.traces[0].resource_spans[0].resource.attributes
    }
    assert resource["deployment.note"] == f"key {observability.REDACTED}"
