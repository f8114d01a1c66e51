"""Where spans and metrics go beyond the process: the OTLP/HTTP exporters the standard
``OTEL_EXPORTER_OTLP_*`` variables configure, and the resource that names this process."""

from __future__ import annotations

import os
from typing import Any

from opentelemetry.sdk.metrics.export import MetricReader
from opentelemetry.sdk.resources import Resource

from llmgine import _semconv as sc
from llmgine.errors import ObservabilityError

__all__ = ["env_flag", "named_by_env", "otlp_configured", "otlp_exporters", "resource_for"]

_TRUE = {"1", "true", "yes", "on"}


def env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in _TRUE


def otlp_configured() -> bool:
    return any(os.environ.get(v) for v in sc.OTLP_ENDPOINT_ENV)


def named_by_env() -> bool:
    """Whether the environment names the service (``OTEL_SERVICE_NAME``, or
    ``service.name=`` in ``OTEL_RESOURCE_ATTRIBUTES``)."""
    return "OTEL_SERVICE_NAME" in os.environ or "service.name=" in os.environ.get(
        "OTEL_RESOURCE_ATTRIBUTES", ""
    )


def resource_for(service_name: str | None) -> Resource:
    """The resource for spans and metrics: ``OTEL_SERVICE_NAME`` and
    ``OTEL_RESOURCE_ATTRIBUTES`` apply as usual; the service is "llmgine" unless named."""
    if service_name is None and named_by_env():
        return Resource.create()
    return Resource.create({sc.SERVICE_NAME: service_name or "llmgine"})


def otlp_exporters() -> tuple[Any, MetricReader | None]:
    """OTLP span exporter and metric reader, configured by the OTEL_EXPORTER_OTLP_* vars;
    no metric reader when only a traces endpoint is set (it would post to localhost:4318,
    and retry there at exit)."""
    protocol = (
        os.environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
        or os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL")
        or "http/protobuf"
    )
    if protocol != "http/protobuf":
        raise ObservabilityError(
            f"OTEL_EXPORTER_OTLP_PROTOCOL={protocol!r} is not supported; llmgine exports "
            "OTLP over HTTP ('http/protobuf'). Unset the variable or set it to http/protobuf "
            "(every collector, Jaeger, Phoenix and Langfuse accept it)."
        )
    try:
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
    except ImportError as exc:
        raise ObservabilityError(
            "OTLP export needs opentelemetry-exporter-otlp-proto-http: "
            'pip install "llmgine[observability]"'
        ) from exc
    traces_only = os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") and not any(
        os.environ.get(v)
        for v in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT")
    )
    reader = None if traces_only else PeriodicExportingMetricReader(OTLPMetricExporter())
    return OTLPSpanExporter(), reader
