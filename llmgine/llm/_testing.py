"""`ScriptedProvider` ("test:"): a model that answers from a script, for tests.

It runs the real request/response paths (the shared assembler, wrappers, spans, bus
events) with no key and no network. Each call takes the next script entry: a string (the
answer's text), an `LLMResponse`, an exception to raise, or a function of the request
returning either.
"""

from __future__ import annotations

import dataclasses
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable
from typing import ClassVar

from llmgine.errors import LLMConfigurationError
from llmgine.llm._parts import TextPart
from llmgine.llm._provider import Provider
from llmgine.llm._request import LLMRequest
from llmgine.llm._response import LLMResponse, Usage
from llmgine.llm._stream import (
    Finish,
    ResponseMeta,
    StreamAssembler,
    StreamItem,
    TextDelta,
    ToolCallDelta,
    UsageUpdate,
    items_from_parts,
)

__all__ = ["Script", "ScriptedProvider", "estimate_tokens", "response_items"]

Script = str | LLMResponse | BaseException | Callable[[LLMRequest], "str | LLMResponse"]


def estimate_tokens(text: str) -> int:
    """About four characters a token, as a stand-in where no tokenizer counts them."""
    return max(1, (len(text) + 3) // 4) if text else 0


def response_items(response: LLMResponse, *, chunk: int = 0) -> list[StreamItem]:
    """The stream items of ``response``; with ``chunk`` > 0, text and tool arguments are
    cut into pieces of that many characters, as a real stream would deliver them."""
    items: list[StreamItem] = []
    for item in items_from_parts(response.parts):
        if chunk > 0 and isinstance(item, TextDelta) and len(item.text) > chunk:
            for at in range(0, len(item.text), chunk):
                items.append(TextDelta(key=item.key, text=item.text[at : at + chunk]))
        elif chunk > 0 and isinstance(item, ToolCallDelta) and len(item.arguments) > chunk:
            text = item.arguments
            items.append(dataclasses.replace(item, arguments=text[:chunk]))
            for at in range(chunk, len(text), chunk):
                items.append(ToolCallDelta(key=item.key, arguments=text[at : at + chunk]))
        else:
            items.append(item)
    items.append(UsageUpdate(usage=response.usage))
    items.append(Finish(reason=response.finish_reason, raw=response.raw_finish_reason))
    items.append(
        ResponseMeta(
            model=response.model or None,
            response_id=response.response_id,
            rate_limit=response.rate_limit,
        )
    )
    return items


class ScriptedProvider(Provider):
    """Answers each call with the next entry of its script; records every request.

    Example:
        model = get_model("test:scripted", responses=["Paris.", ValueError("boom")])
        assert (await model.generate("Capital of France?")).text == "Paris."
    """

    name = "test"
    offline: ClassVar[bool] = True

    def __init__(self, responses: Iterable[Script] = (), *, chunk: int = 4) -> None:
        self._script: deque[Script] = deque(responses)
        self.chunk = chunk
        self.requests: list[LLMRequest] = []
        self._ids = 0

    def add(self, *responses: Script) -> None:
        """Script more answers."""
        self._script.extend(responses)

    @property
    def pending(self) -> int:
        return len(self._script)

    def _next(self, request: LLMRequest, model: str) -> LLMResponse:
        self.requests.append(request)
        if not self._script:
            raise LLMConfigurationError(
                f"the test model has no scripted answer left for call {len(self.requests)}; "
                "script more with get_model('test:...', responses=[...]) or "
                "model.adapter.add(...)",
                provider=self.name,
                model=model,
            )
        entry = self._script.popleft()
        if isinstance(entry, BaseException):
            raise entry
        if callable(entry) and not isinstance(entry, LLMResponse):
            entry = entry(request)
        if isinstance(entry, str):
            prompt = " ".join(m.text for m in request.messages)
            entry = LLMResponse(
                parts=[TextPart(text=entry)],
                usage=Usage(
                    input_tokens=estimate_tokens(prompt), output_tokens=estimate_tokens(entry)
                ),
            )
        self._ids += 1
        update = {"provider": self.name, "model": entry.model or model}
        if entry.response_id is None:
            update["response_id"] = f"test-{self._ids}"
        return entry.model_copy(update=update)

    def _assembled(self, response: LLMResponse) -> LLMResponse:
        assembler = StreamAssembler(self.name, response.model)
        for item in response_items(response):
            assembler.add(item)
        return assembler.response()

    async def _generate(self, request: LLMRequest, model: str) -> LLMResponse:
        return self._assembled(self._next(request, model))

    async def _stream(self, request: LLMRequest, model: str) -> AsyncIterator[StreamItem]:
        for item in response_items(self._next(request, model), chunk=self.chunk):
            yield item
