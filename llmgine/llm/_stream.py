"""Streaming: typed deltas, and the one assembler every provider shares.

A provider's translator turns each stream event into `StreamItem`s: content deltas keyed
by the part they belong to (`TextDelta`, `ReasoningDelta`, `ToolCallDelta`), then
`UsageUpdate`, `Finish` and `ResponseMeta`. Items are slotted dataclasses, not pydantic
models: a stream makes one per chunk, so they must cost next to nothing. `StreamAssembler`
builds the `LLMResponse` from them. A non-streamed answer is parsed into the same items and
goes through the same assembler, so a streamed call and the same call without streaming
give equal responses.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable, Iterable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from llmgine.llm._parts import Part, ReasoningPart, TextPart, ToolCallPart
from llmgine.llm._rate_limit import RateLimit
from llmgine.llm._response import FinishReason, LLMResponse, Usage

__all__ = [
    "Finish",
    "ReasoningDelta",
    "ResponseMeta",
    "ResponseStream",
    "StreamAssembler",
    "StreamItem",
    "TextDelta",
    "ToolCallDelta",
    "UsageUpdate",
    "items_from_parts",
]


@dataclass(slots=True, kw_only=True)
class TextDelta:
    """More text for the text part ``key``."""

    key: Any = 0
    text: str


@dataclass(slots=True, kw_only=True)
class ReasoningDelta:
    """More reasoning for part ``key``; ``signature`` (whole, when it arrives) replaces any
    earlier one."""

    key: Any = 0
    text: str = ""
    signature: str | None = None
    redacted: bool = False
    provider_data: dict[str, Any] | None = None


@dataclass(slots=True, kw_only=True)
class ToolCallDelta:
    """Part of a tool call: its id and name (usually in the first delta) and a fragment of
    its JSON arguments."""

    key: Any = 0
    id: str | None = None
    name: str | None = None
    arguments: str = ""
    signature: str | None = None
    provider_data: dict[str, Any] | None = None


@dataclass(slots=True, kw_only=True)
class UsageUpdate:
    """The usage so far (each update replaces the previous one)."""

    usage: Usage


@dataclass(slots=True, kw_only=True)
class Finish:
    """Why the model stopped: normalised, and the provider's own value."""

    reason: FinishReason
    raw: str | None = None


@dataclass(slots=True, kw_only=True)
class ResponseMeta:
    """The model that answered, the response id and the rate limits its headers reported
    (send whenever known; what is None leaves what an earlier one said)."""

    model: str | None = None
    response_id: str | None = None
    rate_limit: RateLimit | None = None


StreamItem = TextDelta | ReasoningDelta | ToolCallDelta | UsageUpdate | Finish | ResponseMeta
ContentDelta = TextDelta | ReasoningDelta | ToolCallDelta
Finisher = Callable[[LLMResponse], "Awaitable[LLMResponse | None] | LLMResponse | None"]


@dataclass
class _Building:
    kind: str
    text: list[str] = field(default_factory=list)
    id: str | None = None
    name: str | None = None
    signature: str | None = None
    redacted: bool = False
    provider_data: dict[str, Any] | None = None


class StreamAssembler:
    """Builds one `LLMResponse` from stream items; parts keep their first-seen order."""

    def __init__(self, provider: str, model: str) -> None:
        self.provider = provider
        self._model = model
        self._parts: dict[Hashable, _Building] = {}
        self._usage = Usage()
        self._finish: Finish | None = None
        self._response_id: str | None = None
        self._rate_limit: RateLimit | None = None
        self.saw_tool_call = False

    def add(self, item: StreamItem) -> None:
        if isinstance(item, TextDelta):
            self._part(("text", item.key), "text").text.append(item.text)
        elif isinstance(item, ToolCallDelta):
            self.saw_tool_call = True
            part = self._part(("tool", item.key), "tool")
            part.id = item.id or part.id
            part.name = item.name or part.name
            part.text.append(item.arguments)
            part.signature = item.signature or part.signature
            self._merge(part, item.provider_data)
        elif isinstance(item, ReasoningDelta):
            part = self._part(("reasoning", item.key), "reasoning")
            part.text.append(item.text)
            part.signature = item.signature or part.signature
            part.redacted = part.redacted or item.redacted
            self._merge(part, item.provider_data)
        elif isinstance(item, UsageUpdate):
            self._usage = item.usage
        elif isinstance(item, Finish):
            self._finish = item
        elif isinstance(item, ResponseMeta):
            self._model = item.model or self._model
            self._response_id = item.response_id or self._response_id
            self._rate_limit = item.rate_limit or self._rate_limit

    @property
    def finished(self) -> bool:
        """Whether a `Finish` arrived: adapters send one only on the API's end marker."""
        return self._finish is not None

    def _part(self, key: Hashable, kind: str) -> _Building:
        part = self._parts.get(key)
        if part is None:
            part = self._parts[key] = _Building(kind)
        return part

    @staticmethod
    def _merge(part: _Building, data: dict[str, Any] | None) -> None:
        if data:
            part.provider_data = {**(part.provider_data or {}), **data}

    def parts(self) -> list[Part]:
        out: list[Part] = []
        for part in self._parts.values():
            text = "".join(part.text)
            if part.kind == "text":
                if text:
                    out.append(TextPart(text=text))
            elif part.kind == "reasoning":
                out.append(
                    ReasoningPart(
                        text=text,
                        signature=part.signature,
                        provider=self.provider,
                        redacted=part.redacted,
                        provider_data=part.provider_data,
                    )
                )
            else:
                out.append(
                    ToolCallPart.from_json_arguments(
                        part.id or "",
                        part.name or "",
                        text,
                        signature=part.signature,
                        provider=self.provider,
                        provider_data=part.provider_data,
                    )
                )
        return out

    def response(self, *, raw: Any = None) -> LLMResponse:
        finish = self._finish or Finish(reason="tool_calls" if self.saw_tool_call else "stop")
        return LLMResponse(
            parts=self.parts(),
            finish_reason=finish.reason,
            raw_finish_reason=finish.raw,
            usage=self._usage,
            provider=self.provider,
            model=self._model,
            response_id=self._response_id,
            rate_limit=self._rate_limit,
            raw=raw,
        )


def items_from_parts(parts: Iterable[Part]) -> list[StreamItem]:
    """A non-streamed response's parts as the items a stream of it would have carried."""
    items: list[StreamItem] = []
    for key, part in enumerate(parts):
        if isinstance(part, TextPart):
            items.append(TextDelta(key=key, text=part.text))
        elif isinstance(part, ReasoningPart):
            items.append(
                ReasoningDelta(
                    key=key,
                    text=part.text,
                    signature=part.signature,
                    redacted=part.redacted,
                    provider_data=part.provider_data,
                )
            )
        elif isinstance(part, ToolCallPart):
            items.append(
                ToolCallDelta(
                    key=key,
                    id=part.id,
                    name=part.name,
                    arguments=part.arguments_json,
                    signature=part.signature,
                    provider_data=part.provider_data,
                )
            )
        else:
            raise TypeError(f"a model response cannot contain a {type(part).__name__}")
    return items


class ResponseStream:
    """An LLM call in progress: iterate it for `StreamItem`s as they arrive; afterwards
    (or by ``await stream.get_response()``) the assembled `LLMResponse` is ``.response``.

    Example:
        async with model.stream(request) as stream:
            async for item in stream:
                if isinstance(item, TextDelta):
                    print(item.text, end="")
        print(stream.response.usage)
    """

    def __init__(self, items: AsyncIterator[StreamItem], assembler: StreamAssembler) -> None:
        self._items = items
        self._assembler = assembler
        self._finishers: list[Finisher] = []
        self._on_error: list[Callable[[BaseException], None]] = []
        self._closed = False
        self._started = time.perf_counter()
        self._first: float | None = None
        self.response: LLMResponse | None = None

    @property
    def provider(self) -> str:
        return self._assembler.provider

    def then(self, finisher: Finisher) -> ResponseStream:
        """Run ``finisher(response)`` on the assembled response (it may return a new one):
        how wrappers add cost, spans and events to a stream."""
        self._finishers.append(finisher)
        return self

    def on_error(self, handler: Callable[[BaseException], None]) -> ResponseStream:
        """Call ``handler(exc)`` if the stream fails (it is re-raised to the reader)."""
        self._on_error.append(handler)
        return self

    def __aiter__(self) -> ResponseStream:
        return self

    async def __anext__(self) -> StreamItem:
        if self.response is not None:
            raise StopAsyncIteration
        try:
            item = await self._items.__anext__()
        except StopAsyncIteration:
            await self._finish()
            raise
        except BaseException as exc:
            self._closed = True
            for handler in self._on_error:
                handler(exc)
            raise
        if self._first is None and isinstance(item, ContentDelta):
            self._first = time.perf_counter()
        self._assembler.add(item)
        return item

    async def _finish(self) -> None:
        response = self._assembler.response()
        now = time.perf_counter()
        response.latency_ms = (now - self._started) * 1000
        if self._first is not None:
            response.time_to_first_token_ms = (self._first - self._started) * 1000
        for finisher in self._finishers:
            finished = finisher(response)
            if not isinstance(finished, LLMResponse) and finished is not None:
                finished = await finished
            response = finished or response
        self.response = response

    async def get_response(self) -> LLMResponse:
        """Read the rest of the stream and return the assembled response."""
        async for _ in self:
            pass
        assert self.response is not None
        return self.response

    async def aclose(self) -> None:
        """Stop reading (the HTTP stream is closed); a stream closed before it finished
        tells its error handlers so spans and events end too."""
        close = getattr(self._items, "aclose", None)
        if close is not None:
            await close()
        if self.response is None and not self._closed:
            self._closed = True
            closed = asyncio.CancelledError("the stream was closed before it finished")
            for handler in self._on_error:
                handler(closed)

    async def __aenter__(self) -> ResponseStream:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
