"""Model calls as bus commands, for the workbench: every call a `Generate` on the bus.

`WorkbenchService` is an `LLMService` that also answers for `Model` objects registered
with it, so a model made with options (``get_model("demo:x", latency=0)``, a scripted test
model) is called through the bus like one named by a spec. `BusModel` is a `WrapperModel`
of the target model whose calls are `Generate` commands executed in a bus session: wrapped
in a `Model`, it goes wherever a model goes (the tool loop included), and every round
publishes `LLMCallStarted`, `LLMStreamDelta`s and `LLMCallCompleted` in that session.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from llmgine.bus import MessageBus, Session
from llmgine.llm import (
    Finish,
    Generate,
    LLMRequest,
    LLMResponse,
    LLMService,
    Model,
    ResponseStream,
    StreamAssembler,
    StreamItem,
    WrapperModel,
    items_from_parts,
)

__all__ = ["BusModel", "WorkbenchService"]


class WorkbenchService(LLMService):
    """An `LLMService` that also answers for registered `Model` objects (by their key)."""

    def __init__(self, bus: MessageBus, *, session: Session | None = None, **options: Any) -> None:
        super().__init__(bus, session=session, **options)
        self._registered: dict[str, Model] = {}

    def register(self, model: Model) -> str:
        """The key `Generate.model` names ``model`` by (the same model, the same key)."""
        key = f"{model.spec}#{id(model):x}"
        self._registered[key] = model
        return key

    def model(self, spec: str | None) -> Model:
        registered = self._registered.get(spec) if spec is not None else None
        return registered if registered is not None else super().model(spec)


class BusModel(WrapperModel):
    """The ``target`` model, called through streamed `Generate` commands in ``session``.

    Always streamed, so the session's `LLMStreamDelta` events carry the answer as it
    arrives, whichever way the caller asked for it. It wraps ``target``, so its name,
    provider and adapter (``Model(bus_model).adapter``) are the target's.
    """

    def __init__(self, session: Session, key: str, target: Model) -> None:
        super().__init__(target)
        self.session = session
        self.key = key
        self.target = target

    async def generate(self, request: LLMRequest, /) -> LLMResponse:
        command = Generate(request=request, model=self.key, stream=True)
        result = await self.session.execute(command)
        return result.unwrap()

    def stream(self, request: LLMRequest, /) -> ResponseStream:
        answered: LLMResponse | None = None

        async def items() -> AsyncIterator[StreamItem]:
            nonlocal answered
            answered = await self.generate(request)
            for item in items_from_parts(answered.parts):
                yield item
            yield Finish(reason=answered.finish_reason, raw=answered.raw_finish_reason)

        def command_response(assembled: LLMResponse) -> LLMResponse:
            # The command's own response (usage, cost, timings), not the re-assembly.
            return answered if answered is not None else assembled

        stream = ResponseStream(items(), StreamAssembler(self.provider, self.name))
        return stream.then(command_response)
