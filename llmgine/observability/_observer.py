"""`TracingObserver`: turns what a bus does into spans and recorded events.

A session is a root span, opened when its `SessionStarted` is delivered (which happens
inline, before the session's body runs) and ended by its `SessionEnded`. Each command is a
child span of the span current in the caller (a command inside a handler nests), else of
its session's span. Every event goes to the event log and to the event sinks (files,
console); that is a deque append each, so observing stays off the publisher's path.
"""

from __future__ import annotations

import threading
import typing
from collections.abc import Callable, Sequence
from contextvars import Token
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Span, Status, StatusCode, Tracer

from llmgine._redact import Redactor
from llmgine.bus import (
    BusObserver,
    Command,
    CommandResult,
    Event,
    SessionEnded,
    SessionStarted,
    message_type_name,
)
from llmgine.observability import _semconv as sc

__all__ = ["EventSink", "TracingObserver"]

EventSink = Callable[[Event], None]


class TracingObserver(BusObserver):
    """Watches one bus for an `Observability`; shares its tracer and session spans."""

    def __init__(
        self,
        tracer: Tracer,
        redactor: Redactor,
        sinks: Sequence[EventSink],
        session_spans: dict[str, Span],
        lock: threading.Lock,
    ) -> None:
        self._tracer = tracer
        self._redactor = redactor
        self._sinks = tuple(sinks)
        self._sessions = session_spans
        self._lock = lock

    def on_event(self, event: Event) -> None:
        cls = type(event)
        if cls is SessionStarted:
            self._session_started(event)  # type: ignore[arg-type]
        elif cls is SessionEnded:
            self._session_ended(event)  # type: ignore[arg-type]
        for sink in self._sinks:
            sink(event)

    def _session_started(self, event: SessionStarted) -> None:
        sid = event.session_id or ""
        span = self._tracer.start_span(
            f"session {event.name}",
            context=otel_context.Context(),  # a session is a root span
            attributes={
                sc.SESSION_ID: sid,
                sc.SESSION_NAME: event.name,
                sc.CONVERSATION_ID: sid,
                sc.SPAN_KIND: "session",
            },
        )
        with self._lock:
            self._sessions[sid] = span

    def _session_ended(self, event: SessionEnded) -> None:
        with self._lock:
            span = self._sessions.pop(event.session_id or "", None)
        if span is None:
            return  # the session opened before observing began
        if event.error is not None:
            span.set_attribute(sc.ERROR_TYPE, event.error.type)
            span.set_status(Status(StatusCode.ERROR, self._redactor.text(event.error.message)))
        else:
            span.set_status(Status(StatusCode.OK))
        span.end()

    def on_command_start(self, command: Command[Any]) -> object:
        cls = type(command)
        attrs: dict[str, Any] = {
            sc.COMMAND_TYPE: message_type_name(cls),
            sc.COMMAND_ID: command.id,
            sc.SPAN_KIND: "command",
        }
        parent = None
        sid = command.session_id
        if sid is not None:
            attrs[sc.SESSION_ID] = sid
            if not trace.get_current_span().get_span_context().is_valid:
                session_span = self._sessions.get(sid)
                if session_span is not None:
                    parent = trace.set_span_in_context(session_span)
        span = self._tracer.start_span(f"command {cls.__name__}", context=parent, attributes=attrs)
        token = otel_context.attach(trace.set_span_in_context(span))
        return span, token

    def on_command_end(
        self, command: Command[Any], result: CommandResult[Any], token: object
    ) -> None:
        span, context_token = typing.cast(tuple[Span, "Token[Context]"], token)
        otel_context.detach(context_token)
        span.set_attribute(sc.COMMAND_SUCCESS, result.success)
        span.set_attribute(sc.COMMAND_ATTEMPTS, result.attempts)
        if result.success:
            span.set_status(Status(StatusCode.OK))
        elif result.error is not None:
            message = self._redactor.text(result.error.message)
            span.set_attribute(sc.ERROR_TYPE, result.error.type)
            span.set_status(Status(StatusCode.ERROR, message))
            span.add_event(
                "exception",
                {"exception.type": result.error.type, "exception.message": message},
            )
        span.end()
