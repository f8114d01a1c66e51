"""Where spans and events go besides memory: a rotating JSONL file, and the console.

Both are span processors (they receive finished, redacted spans) and event sinks (the
observer hands them each bus event). The JSONL handler only appends to a deque on the
caller's thread; a writer thread serialises, redacts and writes in batches, so a slow disk
never stalls the bus. If the writer falls behind by ``max_pending`` records, further ones
are dropped and counted (``dropped``), never silently.
"""

from __future__ import annotations

import json
import os
import sys
import threading
from collections import deque
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.trace import StatusCode

from llmgine import _semconv as sc
from llmgine._redact import Redactor, default_redactor, redacting_logger
from llmgine.bus import Event, message_type_name, to_json
from llmgine.errors import LLMgineError
from llmgine.observability._buffer import SpanRecord, span_record

__all__ = ["ConsoleHandler", "JsonlHandler", "span_json"]

log = redacting_logger("llmgine.observability")


def _iso(ns: int | None) -> str | None:
    if ns is None:
        return None
    return datetime.fromtimestamp(ns / 1e9, UTC).isoformat().replace("+00:00", "Z")


def span_json(record: SpanRecord) -> dict[str, Any]:
    """A span as a JSON-ready dict: the shape of a JSONL ``"span"`` line."""
    return {
        "kind": "span",
        "name": record.name,
        "trace_id": f"{record.trace_id:032x}",
        "span_id": f"{record.span_id:016x}",
        "parent_id": None if record.parent_id is None else f"{record.parent_id:016x}",
        "span_kind": record.kind,
        "start_time": _iso(record.start_time),
        "end_time": _iso(record.end_time),
        "duration_ms": record.duration_ms,
        "status": record.status,
        "status_message": record.status_message,
        "attributes": record.attributes,
        "events": [
            {"name": name, "time": _iso(ns), "attributes": attrs}
            for name, ns, attrs in record.events
        ],
    }


class JsonlHandler(SpanProcessor):
    """Writes every finished span, and with ``events=True`` every bus event, as one JSON
    line each to ``path``, off the event loop; rotates at ``max_bytes`` keeping ``backups``
    older files (``path.1`` is the newest of them).

    Lines: ``{"kind": "span", ...}`` (see `span_record`) and
    ``{"kind": "event", "type": ..., "data": {...}}``, whose ``type``/``data`` pair is what
    `llmgine.bus.from_json` reads back.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        events: bool = False,
        max_bytes: int = 50_000_000,
        backups: int = 5,
        flush_interval: float = 0.25,
        max_pending: int = 100_000,
        redactor: Redactor = default_redactor,
    ) -> None:
        if max_bytes < 1024:
            raise ValueError(f"max_bytes must be at least 1024, got {max_bytes}")
        if backups < 0:
            raise ValueError(f"backups cannot be negative, got {backups}")
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.events = events
        self.max_bytes = max_bytes
        self.backups = backups
        self.flush_interval = flush_interval
        self.max_pending = max_pending
        self.dropped = 0  # records refused because the writer was max_pending behind
        self.failed = 0  # records that could not be serialised (written as an error line)
        self.write_errors = 0  # records lost to a failing disk (each failure is logged)
        self.written = 0
        self._redactor = redactor
        self._pending: deque[ReadableSpan | Event] = deque()
        self._accepted = 0
        self._processed = 0  # written or failed to write: what force_flush waits for
        self._wake = threading.Event()
        self._done = threading.Condition()
        self._closing = False
        self._file: IO[str] | None = None
        self._size = 0
        self._thread = threading.Thread(
            target=self._run, name=f"llmgine-jsonl-{self.path.name}", daemon=True
        )
        self._thread.start()

    # -- the caller's side: an append, nothing else ------------------------------------

    def _accept(self, item: ReadableSpan | Event) -> None:
        if self._closing:
            return
        if len(self._pending) >= self.max_pending:
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 10_000 == 0:
                log.warning(
                    "JSONL writer for %s is %d records behind: %d dropped so far",
                    self.path,
                    self.max_pending,
                    self.dropped,
                )
            return
        self._pending.append(item)
        self._accepted += 1

    def on_event(self, event: Event) -> None:
        if self.events:
            self._accept(event)

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        pass

    def on_end(self, span: ReadableSpan) -> None:
        self._accept(span)

    # -- the writer thread -------------------------------------------------------------

    def _run(self) -> None:
        while True:
            self._wake.wait(self.flush_interval)
            self._wake.clear()
            self._write_pending()
            if self._closing and not self._pending:
                break
        if self._file is not None:
            self._file.close()

    def _line(self, item: ReadableSpan | Event) -> str:
        if isinstance(item, Event):
            try:
                return '{"kind": "event", ' + to_json(item)[1:]
            except LLMgineError as exc:
                self.failed += 1
                return json.dumps(
                    {"kind": "event", "type": message_type_name(type(item)), "error": str(exc)}
                )
        return json.dumps(span_json(span_record(item)), default=repr)

    def _write_pending(self) -> None:
        while self._pending:
            count = min(len(self._pending), 2_000)
            lines = [self._line(self._pending.popleft()) for _ in range(count)]
            chunk = "\n".join(lines) + "\n"
            redacted = self._redactor.text(chunk)
            if redacted != chunk:  # redact line by line, so lines stay lines
                chunk = "\n".join(self._redactor.text(line) for line in lines) + "\n"
            try:
                self._write(chunk)
                self.written += count
            except OSError:
                self.write_errors += count
                log.exception("JSONL writer could not write %d records to %s", count, self.path)
            with self._done:
                self._processed += count
                self._done.notify_all()

    def _write(self, chunk: str) -> None:
        data = chunk.encode()
        if self._file is not None and self._size and self._size + len(data) > self.max_bytes:
            self._rotate()
        if self._file is None:
            self._file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - kept open
            self._size = self._file.tell()
        self._file.write(chunk)
        self._file.flush()
        self._size += len(data)

    def _rotate(self) -> None:
        assert self._file is not None
        self._file.close()
        self._file = None
        if self.backups == 0:
            self.path.unlink(missing_ok=True)
            return
        for n in range(self.backups - 1, 0, -1):
            older = self.path.with_name(f"{self.path.name}.{n}")
            if older.exists():
                older.replace(self.path.with_name(f"{self.path.name}.{n + 1}"))
        self.path.replace(self.path.with_name(f"{self.path.name}.1"))

    # -- flushing and closing ----------------------------------------------------------

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        """Block until everything accepted so far is written (or the timeout passes)."""
        target = self._accepted
        self._wake.set()
        with self._done:
            return self._done.wait_for(
                lambda: self._processed >= target or not self._thread.is_alive(),
                timeout_millis / 1000,
            )

    def shutdown(self) -> None:
        """Write what is pending, close the file and stop the writer thread."""
        if self._closing:
            return
        self._closing = True
        self._wake.set()
        self._thread.join()


_COLOURS = {"session": "magenta", "command": "cyan", "llm": "green", "tool": "yellow"}


class ConsoleHandler(SpanProcessor):
    """Prints one readable line per finished span (and per event with ``events=True``),
    coloured when the stream is a terminal (via `rich`, which also renders in Jupyter)."""

    def __init__(
        self,
        stream: IO[str] | None = None,
        *,
        events: bool = True,
        redactor: Redactor = default_redactor,
    ) -> None:
        from rich.console import Console  # an optional dependency: imported when used

        self._console = Console(file=stream or sys.stdout, highlight=False, soft_wrap=True)
        self.events = events
        self._redactor = redactor

    def _print(self, when: int | float | None, text: str) -> None:
        stamp = datetime.fromtimestamp((when or 0) / 1e9, UTC).strftime("%H:%M:%S.%f")[:-3]
        self._console.print(f"[dim]{stamp}[/dim] {text}")

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        pass

    def on_end(self, span: ReadableSpan) -> None:
        from rich.markup import escape

        attrs = span.attributes or {}
        kind = str(attrs.get(sc.SPAN_KIND, "span"))
        colour = _COLOURS.get(kind, "white")
        took = ((span.end_time or 0) - (span.start_time or 0)) / 1e6
        status = span.status.status_code
        mark = "[red]ERROR[/red]" if status is StatusCode.ERROR else "[green]ok[/green]"
        details = [
            f"{key.rsplit('.', 1)[-1]}={attrs[key]!s}"
            for key in (sc.RESPONSE_MODEL, sc.USAGE_INPUT_TOKENS, sc.USAGE_OUTPUT_TOKENS)
            if key in attrs
        ]
        if sc.COST_USD in attrs:
            details.append(f"cost=${float(attrs[sc.COST_USD]):.6f}")  # type: ignore[arg-type]
        if status is StatusCode.ERROR and span.status.description:
            details.append(self._redactor.text(span.status.description))
        text = escape(" ".join(str(d) for d in details))
        self._print(
            span.end_time,
            f"[{colour}]{escape(span.name)}[/{colour}] {took:.1f} ms {mark} {text}".rstrip(),
        )

    def on_event(self, event: Event) -> None:
        if not self.events:
            return
        from rich.markup import escape

        fields = event.model_dump(mode="json", exclude={"id", "timestamp", "session_id"})
        fields = {k: v for k, v in fields.items() if v not in ({}, None)}
        summary = self._redactor.text(json.dumps(fields, ensure_ascii=False, default=repr))
        if len(summary) > 160:
            summary = summary[:157] + "..."
        session = f" [dim]session={event.session_id[:8]}[/dim]" if event.session_id else ""
        stamp = int(event.timestamp.timestamp() * 1e9)
        self._print(
            stamp, f"[blue]{escape(type(event).__name__)}[/blue]{session} {escape(summary)}"
        )

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return True
