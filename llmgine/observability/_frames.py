"""Spans and events as pandas DataFrames: one row each, attributes flattened to columns."""

from __future__ import annotations

import fnmatch
import itertools
import json
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from llmgine._redact import Redactor
from llmgine._semconv import CONVERSATION_ID, SESSION_ID
from llmgine.bus import Event, message_type_name
from llmgine.observability._buffer import SpanRecord

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


def name_matcher(name: str | None) -> Any:
    if name is None:
        return None
    if any(c in name for c in "*?["):
        return lambda n: fnmatch.fnmatchcase(n, name)
    return lambda n: n == name


SpanFilter = Callable[[SpanRecord], bool]


def span_filter(
    *,
    name: str | None = None,
    session: str | None = None,
    since: Time = None,
    until: Time = None,
    where: SpanFilter | None = None,
) -> SpanFilter | None:
    """One predicate for the filters `spans_df` and `wait_for_spans` take (a span must
    pass them all); None when none is given."""
    lo, hi, match = _ns(since), _ns(until), name_matcher(name)
    if lo is None and hi is None and match is None and session is None and where is None:
        return None

    def matches(r: SpanRecord) -> bool:
        return (
            (lo is None or r.start_time >= lo)
            and (hi is None or r.start_time <= hi)
            and (match is None or match(r.name))
            and (session is None or r.session_id == session)
            and (where is None or where(r))
        )

    return matches


def _timestamps(ns: np.ndarray[Any, np.dtype[np.int64]]) -> pd.Series:
    stamps = pd.to_datetime(ns, unit="ns", utc=True)
    return pd.Series(stamps).where(ns >= 0)


def _attribute_columns(attrs: list[dict[str, Any]]) -> dict[str, np.ndarray[Any, Any]]:
    """One object column per attribute key; rows without the key hold None.

    Spans of one kind share their key set, so rows are grouped by it and each group is
    transposed in C (``zip(*rows)``) instead of visiting every cell from Python.
    """
    n = len(attrs)
    groups: dict[tuple[str, ...], list[int]] = {}
    for i, a in enumerate(attrs):
        keys = tuple(a)
        group = groups.get(keys)
        if group is None:
            groups[keys] = [i]
        else:
            group.append(i)
    columns: dict[str, np.ndarray[Any, Any]] = {}
    for keys, index in groups.items():
        if not keys:
            continue
        values = zip(*(tuple(attrs[i].values()) for i in index), strict=True)
        for key, column_values in zip(keys, values, strict=True):
            column = columns.get(key)
            if column is None:
                column = columns[key] = np.full(n, None, dtype=object)
            if len(index) == n:
                column[:] = _object_array(column_values)
            else:
                column[index] = _object_array(column_values)
    return columns


# An attribute column's dtype, by what pandas infers of its values: one that a Parquet file
# keeps (`to_parquet` then `pd.read_parquet` gives the same dtypes back).
# Text: pandas 3's "str" (missing values NaN); before pandas 3, "str" would write None as
# "None", so text stays an object column there.
_TEXT: Any = "str" if int(pd.__version__.split(".")[0]) >= 3 else object
_DTYPES = {
    "string": _TEXT,
    "integer": "Int64",
    "floating": "float64",
    "mixed-integer-float": "float64",
    "boolean": "boolean",
}


def _typed(column: np.ndarray[Any, Any]) -> Any:
    """An attribute column as a typed array: whole numbers ``Int64``, other numbers
    ``float64``, text ``str``, yes/no ``boolean`` (missing values NA or NaN). Lists of one
    type stay Python lists (an object column); a column whose values differ in type
    (a number in one span, text in another) becomes text, non-text values as JSON."""
    inferred = pd.api.types.infer_dtype(column, skipna=True)
    dtype = _DTYPES.get(inferred)
    if dtype is not None:
        return pd.array(column, dtype=dtype)
    if inferred in ("empty", "bytes") or _one_list_type(column):
        return column
    texts = [v if v is None or isinstance(v, str) else json.dumps(v) for v in column]
    return pd.array(texts, dtype=_TEXT)


def _one_list_type(column: np.ndarray[Any, Any]) -> bool:
    """Whether every value is None or a list, and all the lists' items of one type."""
    lists = [v for v in column if v is not None]
    if not all(type(v) is list for v in lists):
        return False
    return len(set(map(type, itertools.chain.from_iterable(lists)))) <= 1


def _object_array(values: tuple[Any, ...]) -> np.ndarray[Any, Any]:
    # Not np.array(values): it would turn a tuple of lists into a 2-D array.
    return np.fromiter(values, dtype=object, count=len(values))


def spans_frame(
    records: Iterable[SpanRecord],
    *,
    session: str | None = None,
    since: Time = None,
    until: Time = None,
    name: str | None = None,
) -> pd.DataFrame:
    """One row per span; see `Observability.spans_df` for the columns and filters."""
    keep = span_filter(name=name, session=session, since=since, until=until)
    rows = records if isinstance(records, list) else list(records)
    if keep is not None:
        rows = [r for r in rows if keep(r)]
    n = len(rows)
    attrs = [r.attributes for r in rows]
    starts = np.fromiter((r.start_time for r in rows), dtype="int64", count=n)
    ends = np.fromiter(
        (-1 if r.end_time is None else r.end_time for r in rows), dtype="int64", count=n
    )
    data: dict[str, Any] = {
        "trace_id": [f"{r.trace_id:032x}" for r in rows],
        "span_id": [f"{r.span_id:016x}" for r in rows],
        "parent_id": [None if r.parent_id is None else f"{r.parent_id:016x}" for r in rows],
        "name": [r.name for r in rows],
        "kind": [r.kind for r in rows],
        "start_time": _timestamps(starts),
        "end_time": _timestamps(ends),
        "duration_ms": np.where(ends >= 0, (ends - starts) / 1e6, np.nan),
        "status": [r.status for r in rows],
        "status_message": [r.status_message for r in rows],
        "session_id": [a.get(SESSION_ID) or a.get(CONVERSATION_ID) for a in attrs],
    }
    columns = _attribute_columns(attrs)
    for key in sorted(columns):
        data[f"attributes.{key}"] = _typed(columns[key])
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
    lo, hi, match = _ns(since), _ns(until), name_matcher(name)
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
        try:
            dumped = event.model_dump(mode="json", exclude=set(_BASE))
        except Exception:  # a field pydantic cannot make JSON: show the Python values
            dumped = event.model_dump(exclude=set(_BASE))
        payload = redactor.value(dumped)
        for key, value in payload.items():
            _flatten(f"data.{key}", value, row)
        rows.append(row)
    frame = pd.DataFrame(rows, columns=None if rows else list(EVENT_COLUMNS))
    if rows:
        frame["timestamp"] = pd.to_datetime(frame["timestamp"], utc=True)
    return frame
