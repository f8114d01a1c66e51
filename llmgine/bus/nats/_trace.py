"""W3C trace context (``traceparent``) in NATS message headers, only while observability
is on: a command's or event's handlers in another process run under the sender's span."""

from __future__ import annotations

import sys
from collections.abc import Mapping

__all__ = ["trace_headers", "traced_context", "untraced"]


def trace_headers() -> dict[str, str]:
    """The caller's W3C trace context (``traceparent``), only while observability is on."""
    observability = sys.modules.get("llmgine.observability")
    if observability is None or observability.current() is None:
        return {}
    from opentelemetry import propagate

    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier


def traced_context(headers: Mapping[str, str] | None) -> object | None:
    """Attach the trace context a message carried; returns the token to detach, if any."""
    if not headers or "traceparent" not in headers:
        return None
    from opentelemetry import context, propagate

    return context.attach(propagate.extract(dict(headers)))


def untraced(token: object | None) -> None:
    if token is not None:
        from opentelemetry import context

        context.detach(token)  # type: ignore[arg-type]
