"""The sweep's wiring to the rest of llmgine: a store per repeat, span ids per command,
and the session's `Generate` handler for the sweep's models."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from llmgine import _semconv as sc
from llmgine._tracing import CallTracer, LLMCallSpan
from llmgine.bus import MessageBus, message_type_name
from llmgine.llm import Generate, LLMService, Model
from llmgine.llm._wrappers import call_scope
from llmgine.recording import RecordingStore
from llmgine.recording._store import Recording

__all__ = ["RepeatStore", "Service", "SpanCatcher"]

_COMMAND_ID = sc.COMMAND_ID


class RepeatStore(RecordingStore):
    """``store`` seen by repeat ``repeat``: repeat 0 uses the request's own key (shared
    with every other use of the store); repeat r > 0 keys it ``key#repeat=r``, so each
    repeat is a call of its own and is resumed on its own."""

    def __init__(self, store: RecordingStore, repeat: int) -> None:
        self.store = store
        self.repeat = repeat
        self.label = store.label

    def _key(self, key: str) -> str:
        return key if self.repeat == 0 else f"{key}#repeat={self.repeat}"

    async def get(self, key: str) -> Recording | None:
        return await self.store.get(self._key(key))

    async def contains(self, key: str) -> bool:
        return await self.store.contains(self._key(key))

    async def put(self, recording: Recording) -> None:
        recording.key = self._key(recording.key)
        await self.store.put(recording)

    async def recordings(self) -> list[Recording]:
        return await self.store.recordings()

    async def clear(self) -> None:
        raise NotImplementedError("a sweep never clears its store")


class SpanCatcher:
    """A `CallTracer` that forwards to ``inner`` and keeps each call's span ids by the id
    of the `Generate` command it answers."""

    def __init__(self, inner: CallTracer) -> None:
        self.inner = inner
        self.ids: dict[str, tuple[str, str]] = {}

    @property
    def capture_content(self) -> bool:
        return self.inner.capture_content

    def start_llm_call(self, **args: Any) -> LLMCallSpan:
        call = self.inner.start_llm_call(**args)
        span = getattr(call, "span", None)
        command = (args.get("attributes") or {}).get(_COMMAND_ID)
        if span is not None and command is not None:
            context = span.get_span_context()
            self.ids[command] = (f"{context.trace_id:032x}", f"{context.span_id:016x}")
        return call

    def tool_span(self, name: str, **args: Any) -> Any:
        return self.inner.tool_span(name, **args)

    @contextmanager
    def worker_call(self, command: Generate) -> Iterator[None]:
        """A span around ``command``, sent to a worker for the session command being
        answered (`RemoteModel`'s ``around``), kept by that command's id: current while
        the worker runs it, so the worker's spans (its GenAI span) are its children, and
        not a GenAI span itself, so one call is one GenAI span. Nothing while this
        sweep's calls are not traced."""
        scope = call_scope.get()
        obs = _observability() if getattr(self.inner, "plugged", None) is not None else None
        if obs is None or scope is None:
            yield
            return
        from opentelemetry import trace
        from opentelemetry.trace import Status, StatusCode

        session_id = scope.session_id
        parent = None
        if session_id is not None and not trace.get_current_span().get_span_context().is_valid:
            session_span = obs.session_span(session_id)
            if session_span is not None:
                parent = trace.set_span_in_context(session_span)
        attributes: dict[str, Any] = {
            sc.COMMAND_TYPE: message_type_name(Generate),
            sc.COMMAND_ID: command.id,
            sc.SPAN_KIND: "command",
            "llmgine.command.worker_model": command.model,
        }
        if session_id is not None:
            attributes[sc.SESSION_ID] = session_id
        span = obs.tracer.start_span("command Generate", context=parent, attributes=attributes)
        local = scope.attributes.get(_COMMAND_ID)
        if local is not None:
            context = span.get_span_context()
            self.ids[local] = (f"{context.trace_id:032x}", f"{context.span_id:016x}")
        with trace.use_span(
            span, end_on_exit=True, record_exception=False, set_status_on_exception=False
        ):
            try:
                yield
            except BaseException as exc:
                span.set_attribute(sc.ERROR_TYPE, type(exc).__name__)
                span.set_status(Status(StatusCode.ERROR, obs.redactor.text(str(exc))))
                raise
            span.set_status(Status(StatusCode.OK))


def _observability() -> Any:
    """The enabled `Observability`, if its module was ever imported (the bus's and the
    sweep's code never import it: it needs the ``observability`` extra)."""
    module = sys.modules.get("llmgine.observability")
    return None if module is None else module.current()


class Service(LLMService):
    """Answers the sweep's `Generate` commands with its registered models, by key."""

    def __init__(self, bus: MessageBus, models: dict[str, Model], **options: Any) -> None:
        super().__init__(bus, **options)
        self.registered = models

    def model(self, spec: str | None) -> Model:
        return self.registered[spec] if spec in self.registered else super().model(spec)
