"""The sweep's wiring to the rest of llmgine: a store per repeat, span ids per command,
and the session's `Generate` handler for the sweep's models."""

from __future__ import annotations

from typing import Any

from llmgine._tracing import CallTracer, LLMCallSpan
from llmgine.bus import MessageBus
from llmgine.llm import LLMService, Model
from llmgine.recording import RecordingStore
from llmgine.recording._store import Recording

__all__ = ["RepeatStore", "Service", "SpanCatcher"]

_COMMAND_ID = "llmgine.command.id"


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


class Service(LLMService):
    """Answers the sweep's `Generate` commands with its registered models, by key."""

    def __init__(self, bus: MessageBus, models: dict[str, Model], **options: Any) -> None:
        super().__init__(bus, **options)
        self.registered = models

    def model(self, spec: str | None) -> Model:
        return self.registered[spec] if spec in self.registered else super().model(spec)
