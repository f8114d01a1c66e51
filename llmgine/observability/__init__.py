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
    observability.disable()                 # flushes, and leaves nothing global behind
"""

# ruff: noqa: E402 (the check below must run before the imports it guards)
from llmgine._extras import require as _require

_require("observability", "llmgine.observability")  # else a bare "No module named pandas"

import pandas as _pd

from llmgine import _semconv as semconv
from llmgine._redact import REDACTED, Redactor, add_credential, add_secret, redact
from llmgine.observability._buffer import SpanBuffer, SpanListener, SpanRecord, span_record
from llmgine.observability._events import EventLog
from llmgine.observability._frames import SPAN_COLUMNS, Time
from llmgine.observability._handlers import ConsoleHandler, JsonlHandler, span_json
from llmgine.observability._metrics import Metrics
from llmgine.observability._observer import TracingObserver
from llmgine.observability._setup import Observability, Settings, current, disable, enable
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
    "SpanListener",
    "SpanRecord",
    "Time",
    "ToolCall",
    "TracingObserver",
    "add_credential",
    "add_secret",
    "current",
    "disable",
    "enable",
    "error_type",
    "events_df",
    "llm_span",
    "metrics_df",
    "redact",
    "semconv",
    "span_json",
    "span_record",
    "spans_df",
    "start_llm_call",
    "tool_span",
]
