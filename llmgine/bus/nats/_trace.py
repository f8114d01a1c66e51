"""W3C trace context (``traceparent``) in NATS message headers, only while observability
is on: a command's or event's handlers in another process run under the sender's span.

Both sides look for observability without importing it (the bus never does): a sender
without it sends no header, and a receiver without it ignores one, so a worker installed
without the ``[observability]`` extra (no OpenTelemetry) still reads traced messages.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping

__all__ = ["trace_headers", "traced_context", "untraced"]


def _observing() -> bool:
    observability = sys.modules.get("llmgine.observability")
    return observability is not None and observability.current() is not None


def trace_headers() -> dict[str, str]:
    """The caller's W3C trace context (``traceparent``), only while observability is on."""
    if not _observing():
        return {}
    from opentelemetry import propagate

    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier


def traced_context(headers: Mapping[str, str] | None) -> object | None:
    """Attach the trace context a message carried, while observability is on here too;
    returns the token to detach, if any."""
    if not headers or "traceparent" not in headers or not _observing():
        return None
    from opentelemetry import context, propagate

    return context.attach(propagate.extract(dict(headers)))


def untraced(token: object | None) -> None:
    if token is not None:
        from opentelemetry import context

        context.detach(token)  # type: ignore[arg-type]
