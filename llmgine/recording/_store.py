"""`Recording`, one recorded call, and `RecordingStore`, what keeps them.

A recording is plain JSON data: the key, the canonical request (for a miss's "nearest"
and for reviewing a cassette), the `LLMResponse` and the stream items it came as, each
with the milliseconds since the call started (for ``pace="recorded"``). Everything in
it has passed the redactor before a store sees it: the content of the request, the
answer and its items. Headers are never part of it (a recording is made from the
`LLMRequest` and the `LLMResponse`, never from HTTP), and ``raw`` is not kept; nor is
``rate_limit`` (the response's and its `ResponseMeta` item's): what was left of the
caller's limits when it was recorded says nothing about them when it is replayed, and
would change a cassette at every re-recording. Recordings without it load as before.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import MISSING, dataclass, fields, replace
from typing import Any

from llmgine._redact import Redactor
from llmgine.llm import (
    Finish,
    LLMResponse,
    ReasoningDelta,
    ResponseMeta,
    StreamAssembler,
    StreamItem,
    TextDelta,
    ToolCallDelta,
    Usage,
    UsageUpdate,
)
from llmgine.llm._testing import response_items
from llmgine.recording._key import canonical_json

__all__ = ["FORMAT_VERSION", "Recording", "RecordingStore", "decode_item", "encode_item"]

FORMAT_VERSION = 1

_KINDS: dict[str, type[Any]] = {
    "text": TextDelta,
    "reasoning": ReasoningDelta,
    "tool_call": ToolCallDelta,
    "usage": UsageUpdate,
    "finish": Finish,
    "meta": ResponseMeta,
}
_NAMES = {cls: name for name, cls in _KINDS.items()}
_NOT_KEPT = {"rate_limit"}  # of a response and of its items (see the module docstring)
_DEFAULTS = {
    cls: {f.name: f.default for f in fields(cls) if f.default is not MISSING}
    for cls in _KINDS.values()
}


def _hashable(value: Any) -> Any:
    """JSON gives lists where an item's ``key`` was a tuple: the assembler needs it
    hashable again."""
    if isinstance(value, list):
        return tuple(_hashable(v) for v in value)
    return value


def _kept(item: StreamItem) -> bool:
    """Whether anything of ``item`` is kept: not of a `ResponseMeta` that carried only the
    rate limits (the first item of a stream whose headers reported them)."""
    return not isinstance(item, ResponseMeta) or replace(item, rate_limit=None) != ResponseMeta()


def encode_item(item: StreamItem, at_ms: float) -> dict[str, Any]:
    """One stream item as JSON data: its kind, ``t`` (ms since the call started) and its
    fields that differ from their defaults (``t`` in whole ms: a re-recording of the same
    answer rarely changes it)."""
    cls = type(item)
    out: dict[str, Any] = {"kind": _NAMES[cls], "t": round(at_ms)}
    defaults = _DEFAULTS[cls]
    for f in fields(item):
        if f.name in _NOT_KEPT:
            continue
        value = getattr(item, f.name)
        if isinstance(value, Usage):
            value = value.model_dump(exclude_none=True)
        elif f.name in defaults and value == defaults[f.name]:
            continue
        out[f.name] = value
    return out


def decode_item(data: dict[str, Any]) -> tuple[float, StreamItem]:
    """``(ms since the call started, item)`` from `encode_item`'s JSON."""
    values = dict(data)
    kind = values.pop("kind")
    at = float(values.pop("t", 0.0))
    cls = _KINDS.get(kind)
    if cls is None:
        raise ValueError(f"unknown stream item kind {kind!r}; known: {', '.join(_KINDS)}")
    if "usage" in values:
        values["usage"] = Usage.model_validate(values["usage"])
    if "key" in values:
        values["key"] = _hashable(values["key"])
    item: StreamItem = cls(**values)
    return at, item


@dataclass
class Recording:
    """One recorded call: ``key`` (of ``request``, the canonical request), the model
    (``"provider:name"``), the response and its stream items as JSON data, and whether
    the call streamed. Made by `Recording.of`, which redacts everything."""

    key: str
    model: str
    request: dict[str, Any]
    response: dict[str, Any]
    items: list[dict[str, Any]]
    streamed: bool = False

    @classmethod
    def of(
        cls,
        key: str,
        request: dict[str, Any],
        response: LLMResponse,
        items: Sequence[tuple[float, StreamItem]],
        *,
        streamed: bool,
        redactor: Redactor | None = None,
    ) -> Recording:
        """A recording of ``response`` (and the ``(ms, item)`` pairs it came as) with
        every string passed through ``redactor`` (by default a fresh `Redactor`: the
        environment's secrets now, and every credential llmgine was handed)."""
        redactor = redactor or Redactor()
        answer = response.model_dump(
            mode="json",
            exclude={
                *_NOT_KEPT,
                *("raw", "parsed", "replayed_from", "cache_hit", "original_cost_usd", "drift"),
            },
        )
        recording = cls(
            key=key,
            model=str(request.get("model", "")),
            request=redactor.value(request),
            response=redactor.value(answer),
            items=[redactor.value(encode_item(item, at)) for at, item in items if _kept(item)],
            streamed=streamed,
        )
        # A secret cut across two deltas is redacted in the response but not in either
        # item: when the redacted items no longer assemble into the redacted response,
        # keep the response's own items instead (one per part, at the recorded end).
        if not recording._items_match():
            end = items[-1][0] if items else 0.0
            whole = recording.llm_response()
            recording.items = [encode_item(item, end) for item in response_items(whole)]
        return recording

    def _items_match(self) -> bool:
        assembler = StreamAssembler(self.response.get("provider", ""), "")
        for _, item in self.stream_items():
            assembler.add(item)
        assembled = assembler.response()
        stored = self.llm_response()
        return assembled.parts == stored.parts and assembled.usage == stored.usage

    def llm_response(self) -> LLMResponse:
        """The recorded `LLMResponse` (a new object each time)."""
        return LLMResponse.model_validate(self.response)

    def stream_items(self) -> list[tuple[float, StreamItem]]:
        """The recorded stream items, each with its milliseconds since the call started."""
        return [decode_item(data) for data in self.items]

    def to_json(self) -> dict[str, Any]:
        return {
            "v": FORMAT_VERSION,
            "key": self.key,
            "model": self.model,
            "request": self.request,
            "response": self.response,
            "items": self.items,
            "streamed": self.streamed,
        }

    def to_line(self) -> str:
        """One line of JSON, keys sorted: how a cassette and the cache store it."""
        return canonical_json(self.to_json())

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Recording:
        version = data.get("v")
        if version != FORMAT_VERSION:
            raise ValueError(
                f"a recording in format version {version!r}; this llmgine reads version "
                f"{FORMAT_VERSION}: record it again"
            )
        return cls(
            key=data["key"],
            model=data["model"],
            request=data["request"],
            response=data["response"],
            items=data["items"],
            streamed=bool(data.get("streamed", False)),
        )

    @classmethod
    def from_line(cls, line: str) -> Recording:
        return cls.from_json(json.loads(line))


class RecordingStore(ABC):
    """Where recordings are kept, by key: `SQLiteCache` or `Cassette` (or one of yours).

    ``label`` is what a replayed response's ``replayed_from`` and the errors name (the
    file's path).
    """

    label: str

    @abstractmethod
    async def get(self, key: str) -> Recording | None:
        """The recording under ``key``, or None."""

    @abstractmethod
    async def put(self, recording: Recording) -> None:
        """Keep ``recording``, replacing any under its key."""

    @abstractmethod
    async def recordings(self) -> list[Recording]:
        """Every recording (for a miss's nearest request, and for looking through)."""

    @abstractmethod
    async def clear(self) -> None:
        """Remove every recording."""

    async def count(self) -> int:
        """How many recordings there are."""
        return len(await self.recordings())

    async def contains(self, key: str) -> bool:
        """Whether there is a recording under ``key`` (a store may answer without reading
        it: a sweep's preflight asks this of every row)."""
        return await self.get(key) is not None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.label}>"
