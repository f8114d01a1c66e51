"""Model calls as bus commands, for the workbench: every call a `Generate` on the bus.

`WorkbenchService` is an `LLMService` that also answers for `Model` objects registered
with it, so a model made with options (``get_model("demo:x", latency=0)``, a scripted test
model) is called through the bus like one named by a spec. `BusModel` is a `LanguageModel`
whose calls are `Generate` commands executed in a bus session: wrapped in a `Model`, it
goes wherever a model goes (the tool loop included), and every round publishes
`LLMCallStarted`, `LLMStreamDelta`s and `LLMCallCompleted` in that session.
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


class BusModel:
    """A `LanguageModel` whose calls are streamed `Generate` commands in ``session``.

    Always streamed, so the session's `LLMStreamDelta` events carry the answer as it
    arrives, whichever way the caller asked for it.
    """

    def __init__(self, session: Session, key: str, target: Model) -> None:
        self.session = session
        self.key = key
        self.target = target

    @property
    def provider(self) -> str:
        return self.target.provider

    @property
    def name(self) -> str:
        return self.target.name

    @property
    def inner(self) -> Any:
        # `Model.adapter` walks `.inner` down to the provider: lead it to the target's.
        return self.target.inner

    async def generate(self, request: LLMRequest) -> LLMResponse:
        command = Generate(request=request, model=self.key, stream=True)
        result = await self.session.execute(command)
        return result.unwrap()

    def stream(self, request: LLMRequest) -> ResponseStream:
        answered: list[LLMResponse] = []

        async def items() -> AsyncIterator[StreamItem]:
            response = await self.generate(request)
            answered.append(response)
            for item in items_from_parts(response.parts):
                yield item
            yield Finish(reason=response.finish_reason, raw=response.raw_finish_reason)

        # The assembled response is replaced by the command's own (usage, cost, timings).
        stream = ResponseStream(items(), StreamAssembler(self.provider, self.name))
        return stream.then(lambda _: answered[0])
