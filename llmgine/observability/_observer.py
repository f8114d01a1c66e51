"""`TracingObserver`: turns what a bus does into spans and recorded events.

A session is a root span, opened as the session opens and ended as it closes; a session
joined from another process (``on_session``) gets a span too, under the context its
`SessionStarted` carried. Each command
is a child span of the span current in the caller (a command inside a handler nests), else
of its session's span; a command whose handler traces it (``traced_by_handler``, as
`Generate`: one GenAI span per call) gets no span of its own. Every event goes to the
event sinks: the event log (a deque append) and, when asked, the JSONL file and the
console.
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

from llmgine import _semconv as sc
from llmgine._redact import Redactor
from llmgine.bus import BusObserver, Command, CommandResult, Event, Session, message_type_name
from llmgine.observability._spans import error_type

__all__ = ["EventSink", "TracingObserver"]

EventSink = Callable[[Event], None]


class TracingObserver(BusObserver):
    """Watches one bus for an `Observability`; shares its tracer and session spans.

    ``on_event`` is the one sink itself when there is one (the event log's deque append:
    no Python frame per event), else a function calling each sink.
    """

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
        self._sessions = session_spans
        self._joined: dict[str, Span] = {}  # the spans of sessions this bus joined
        self._lock = lock
        if len(sinks) == 1:
            self.on_event = sinks[0]  # type: ignore[method-assign,assignment]
        else:
            chain = tuple(sinks)

            def on_event(event: Event) -> None:
                for sink in chain:
                    sink(event)

            self.on_event = on_event  # type: ignore[method-assign]

    def on_session_start(self, session: Session) -> None:
        attributes: dict[str, Any] = {
            sc.SESSION_ID: session.id,
            sc.SESSION_NAME: session.name,
            sc.CONVERSATION_ID: session.id,
            sc.SPAN_KIND: "session",
        }
        # A session opened here is a root span. A joined one (opened by another process)
        # starts under the context its SessionStarted carried, if any: the opener's trace
        # is not split. Either way commands that arrive with their caller's context
        # (the traceparent) stay children of the caller's span; the session span
        # parents only what runs here with no context of its own.
        context = None if session.joined else otel_context.Context()
        if session.joined:
            attributes[sc.SESSION_JOINED] = True
        with self._lock:
            if session.joined and session.id in self._sessions:
                return  # opened by another bus this Observability watches: it has a span
        span = self._tracer.start_span(
            f"session {session.name}", context=context, attributes=attributes
        )
        with self._lock:
            self._sessions[session.id] = span
            if session.joined:
                self._joined[session.id] = span

    def on_session_end(self, session: Session, error: BaseException | None) -> None:
        with self._lock:
            if session.joined:
                span = self._joined.pop(session.id, None)
                if span is not None and self._sessions.get(session.id) is span:
                    del self._sessions[session.id]
            else:
                span = self._sessions.pop(session.id, None)
        if span is None:
            return  # the session opened before observing began (or another bus's span)
        if error is not None:
            span.set_attribute(sc.ERROR_TYPE, error_type(error))
            span.set_status(Status(StatusCode.ERROR, self._redactor.text(str(error))))
        else:
            span.set_status(Status(StatusCode.OK))
        span.end()

    def on_command_start(self, command: Command[Any]) -> object:
        cls = type(command)
        if cls.traced_by_handler:
            return None
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
        if token is None:
            return  # traced by its handler
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
