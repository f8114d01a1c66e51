"""Spans and events as pandas DataFrames: one row each, attributes flattened to columns."""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind, StatusCode

from llmgine._redact import Redactor
from llmgine.bus import Event, message_type_name
from llmgine.observability import _semconv as sc
from llmgine.observability._buffer import redacted_copy

__all__ = ["SPAN_COLUMNS", "events_frame", "spans_frame"]

SPAN_COLUMNS = (
    "trace_id",
    "span_id",
    "parent_id",
    "name",
    "kind",
    "start_time",
    "end_time",
    "duration_ms",
    "status",
    "status_message",
    "session_id",
)
EVENT_COLUMNS = ("type", "id", "session_id", "timestamp")

_KINDS = {k: k.name.lower() for k in SpanKind}
_STATUS = {StatusCode.UNSET: "unset", StatusCode.OK: "ok", StatusCode.ERROR: "error"}
_BASE = frozenset({"id", "timestamp", "session_id"})

Time = datetime | pd.Timestamp | str | None


def _ns(value: Time) -> int | None:
    if value is None:
        return None
    stamp = pd.Timestamp(value)
    if stamp.tzinfo is None:
        raise ValueError(
            f"time filter {value!r} has no time zone; pass an aware datetime (e.g. "
            "datetime.now(UTC)) or a string with an offset such as '2026-01-01T12:00Z'"
        )
    return int(stamp.value)


def _name_matcher(name: str | None) -> Any:
    if name is None:
        return None
    if any(c in name for c in "*?["):
        return lambda n: fnmatch.fnmatchcase(n, name)
    return lambda n: n == name


def _timestamps(ns: Sequence[int]) -> pd.Series:
    array = np.asarray(ns, dtype="int64")
    stamps = pd.to_datetime(array, unit="ns", utc=True)
    return pd.Series(stamps).where(array >= 0)


def spans_frame(
    spans: Iterable[ReadableSpan],
    redactor: Redactor,
    *,
    session: str | None = None,
    since: Time = None,
    until: Time = None,
    name: str | None = None,
) -> pd.DataFrame:
    """One row per span; see `Observability.spans_df` for the columns and filters."""
    lo, hi, match = _ns(since), _ns(until), _name_matcher(name)
    trace_ids: list[str] = []
    span_ids: list[str] = []
    parent_ids: list[str | None] = []
    names: list[str] = []
    kinds: list[str] = []
    starts: list[int] = []
    ends: list[int] = []
    statuses: list[str] = []
    messages: list[str | None] = []
    sessions: list[str | None] = []
    columns: dict[str, dict[int, Any]] = {}
    row = 0
    for span in spans:
        start = span.start_time or 0
        if (lo is not None and start < lo) or (hi is not None and start > hi):
            continue
        if match is not None and not match(span.name):
            continue
        attrs: Mapping[str, Any] = span.attributes or {}
        sid = attrs.get(sc.SESSION_ID) or attrs.get(sc.CONVERSATION_ID)
        if session is not None and sid != session:
            continue
        if span.end_time is None:  # still running: not redacted at its end yet
            span = redacted_copy(redactor, span)
            attrs = span.attributes or {}
        context, parent = span.context, span.parent
        trace_ids.append(f"{context.trace_id:032x}" if context else "")
        span_ids.append(f"{context.span_id:016x}" if context else "")
        parent_ids.append(f"{parent.span_id:016x}" if parent else None)
        names.append(span.name)
        kinds.append(_KINDS[span.kind])
        starts.append(start)
        ends.append(span.end_time if span.end_time is not None else -1)
        statuses.append(_STATUS[span.status.status_code])
        messages.append(span.status.description or None)
        sessions.append(sid)
        for key, value in attrs.items():
            column = columns.get(key)
            if column is None:
                column = columns[key] = {}
            column[row] = list(value) if isinstance(value, tuple) else value
        row += 1
    start_s, end_s = _timestamps(starts), _timestamps(ends)
    end_arr = np.asarray(ends, dtype="int64")
    duration = np.where(end_arr >= 0, (end_arr - np.asarray(starts, dtype="int64")) / 1e6, np.nan)
    data: dict[str, Any] = {
        "trace_id": trace_ids,
        "span_id": span_ids,
        "parent_id": parent_ids,
        "name": names,
        "kind": kinds,
        "start_time": start_s,
        "end_time": end_s,
        "duration_ms": duration,
        "status": statuses,
        "status_message": messages,
        "session_id": sessions,
    }
    for key in sorted(columns):
        values = columns[key]
        data[f"attributes.{key}"] = (
            [values.get(i) for i in range(row)] if len(values) < row else list(values.values())
        )
    return pd.DataFrame(data)


def _flatten(prefix: str, value: Any, out: dict[str, Any]) -> None:
    if isinstance(value, Mapping) and value:
        for key, inner in value.items():
            _flatten(f"{prefix}.{key}", inner, out)
    else:
        out[prefix] = value


def events_frame(
    events: Iterable[Event],
    redactor: Redactor,
    *,
    session: str | None = None,
    since: Time = None,
    until: Time = None,
    name: str | None = None,
) -> pd.DataFrame:
    """One row per event; see `Observability.events_df` for the columns and filters."""
    lo, hi, match = _ns(since), _ns(until), _name_matcher(name)
    rows: list[dict[str, Any]] = []
    for event in events:
        if session is not None and event.session_id != session:
            continue
        timed = lo is not None or hi is not None
        stamp = int(pd.Timestamp(event.timestamp).value) if timed else 0
        if (lo is not None and stamp < lo) or (hi is not None and stamp > hi):
            continue
        type_name = message_type_name(type(event))
        if match is not None and not (match(type_name) or match(type(event).__name__)):
            continue
        row: dict[str, Any] = {
            "type": type_name,
            "id": event.id,
            "session_id": event.session_id,
            "timestamp": event.timestamp,
        }
        payload = redactor.value(event.model_dump(mode="json", exclude=set(_BASE)))
        for key, value in payload.items():
            _flatten(f"data.{key}", value, row)
        rows.append(row)
    frame = pd.DataFrame(rows, columns=None if rows else list(EVENT_COLUMNS))
    if rows:
        frame["timestamp"] = pd.to_datetime(frame["timestamp"], utc=True)
    return frame
