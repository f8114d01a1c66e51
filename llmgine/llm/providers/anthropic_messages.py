"""The Anthropic Messages API as a translator: an `LLMRequest` to the wire JSON of
``POST /v1/messages``, and the answer's JSON (one stream event, or a whole message) to
`StreamItem`s. Plain functions of JSON: no client, no SDK type. The mapping itself is
described in ``providers/anthropic.py``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from llmgine.errors import LLMConfigurationError
from llmgine.llm._parts import (
    ChatMessage,
    FilePart,
    ImagePart,
    Part,
    ReasoningPart,
    TextPart,
    ToolCallPart,
    ToolResultPart,
)
from llmgine.llm._request import LLMRequest, ToolName, ToolSpec
from llmgine.llm._response import FinishReason, Usage
from llmgine.llm._schema_rules import anthropic_json_schema
from llmgine.llm._stream import (
    Finish,
    ReasoningDelta,
    ResponseMeta,
    StreamItem,
    TextDelta,
    ToolCallDelta,
    UsageUpdate,
)

if TYPE_CHECKING:
    from llmgine.llm.providers.anthropic import AnthropicOptions

__all__ = ["MessageEvents", "message_items", "messages_body"]

_PROVIDER = "anthropic"
# Thinking budget for a `Reasoning(effort=...)` that names no budget (the API minimum is 1024).
_EFFORT_BUDGETS: dict[str, int] = {"minimal": 1024, "low": 1024, "medium": 4096, "high": 16384}

_FINISH: dict[str, FinishReason] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
    "pause_turn": "other",
}


def messages_body(
    request: LLMRequest, model: str, options: AnthropicOptions, *, default_max_tokens: int
) -> dict[str, Any]:
    """The JSON body of a Messages call (``extra_body`` not merged: the sender does).
    ``default_max_tokens`` is sent when the request sets none (the API requires one)."""
    params: dict[str, Any] = {"model": model, "messages": _messages(request.messages)}
    cache_ttl = options.cache_control if isinstance(options.cache_control, str) else None
    cache: dict[str, Any] = {"type": "ephemeral"} | ({"ttl": cache_ttl} if cache_ttl else {})

    system = request.system_text
    if system is not None:
        params["system"] = (
            [{"type": "text", "text": system, "cache_control": cache}]
            if options.cache_system
            else system
        )
    if options.cache_control:
        params["cache_control"] = cache

    budget = options.thinking_budget_tokens
    if budget is None and request.reasoning is not None:
        reasoning = request.reasoning
        budget = reasoning.budget_tokens or _EFFORT_BUDGETS.get(reasoning.effort or "", 4096)
    max_tokens = request.max_tokens
    if max_tokens is None:
        max_tokens = default_max_tokens
        if budget is not None and budget >= max_tokens:
            max_tokens = budget + default_max_tokens
    params["max_tokens"] = max_tokens
    if budget is not None:
        params["thinking"] = {"type": "enabled", "budget_tokens": budget}

    if request.tools:
        params["tools"] = [_tool(spec) for spec in request.tools]
        choice = _tool_choice(request)
        if choice is not None:
            params["tool_choice"] = choice

    output_config: dict[str, Any] = {}
    if request.response_format is not None:
        schema = anthropic_json_schema(request.response_format.json_schema)
        output_config["format"] = {"type": "json_schema", "schema": schema}
    if options.effort is not None:
        output_config["effort"] = options.effort
    if output_config:
        params["output_config"] = output_config

    for field, value in (
        ("temperature", request.temperature),
        ("top_p", request.top_p),
        ("top_k", options.top_k),
    ):
        if value is not None:
            params[field] = value
    if request.stop:
        params["stop_sequences"] = list(request.stop)
    if options.metadata_user_id is not None:
        params["metadata"] = {"user_id": options.metadata_user_id}
    if options.service_tier is not None:
        params["service_tier"] = options.service_tier
    return params


# -- request mapping ------------------------------------------------------------------------


def _messages(messages: list[ChatMessage]) -> list[dict[str, Any]]:
    """Chat messages as Messages API turns: system dropped (it is top-level), tool results in
    user turns, empty turns skipped, and consecutive same-role turns merged."""
    out: list[dict[str, Any]] = []
    for message in messages:
        if message.role == "system":
            continue
        role = "assistant" if message.role == "assistant" else "user"
        blocks = [block for part in message.parts if (block := _block(part)) is not None]
        if not blocks:
            continue  # e.g. only another provider's reasoning: the API rejects empty turns
        if out and out[-1]["role"] == role:
            out[-1]["content"].extend(blocks)
        else:
            out.append({"role": role, "content": blocks})
    for turn in out:
        if turn["role"] == "user":
            # The API wants a turn's tool_result blocks before anything else in it.
            turn["content"].sort(key=lambda block: block["type"] != "tool_result")
    return out


def _block(part: Part) -> dict[str, Any] | None:
    if isinstance(part, TextPart):
        # The API rejects empty text blocks.
        return {"type": "text", "text": part.text} if part.text else None
    if isinstance(part, ToolCallPart):
        return {"type": "tool_use", "id": part.id, "name": part.name, "input": part.arguments}
    if isinstance(part, ToolResultPart):
        return {
            "type": "tool_result",
            "tool_use_id": part.call_id,
            "content": part.text,
            "is_error": part.is_error,
        }
    if isinstance(part, ReasoningPart):
        return _thinking(part)
    if isinstance(part, ImagePart):
        return {"type": "image", "source": _source(part)}
    return _document(part)


def _thinking(part: ReasoningPart) -> dict[str, Any] | None:
    # Only Anthropic's own signed thinking can go back; other providers' reasoning is dropped.
    if part.provider != _PROVIDER:
        return None
    if part.redacted:
        data = (part.provider_data or {}).get("data")
        return {"type": "redacted_thinking", "data": data} if data else None
    if not part.signature:
        return None
    return {"type": "thinking", "thinking": part.text, "signature": part.signature}


def _source(part: ImagePart | FilePart) -> dict[str, Any]:
    if part.url is not None:
        return {"type": "url", "url": part.url}
    return {"type": "base64", "media_type": part.media_type, "data": part.base64()}


def _document(part: FilePart) -> dict[str, Any]:
    media = part.media_type or ""
    if media == "application/pdf" or (part.url is not None and not media):
        block: dict[str, Any] = {"type": "document", "source": _source(part)}
    elif media == "text/plain" and part.data is not None:
        text = part.data.decode("utf-8", errors="replace")
        source = {"type": "text", "media_type": "text/plain", "data": text}
        block = {"type": "document", "source": source}
    else:
        raise LLMConfigurationError(
            f"Anthropic takes PDF (application/pdf) and plain-text (text/plain) files, not "
            f"{media or 'this file'}: convert it, or send it as an ImagePart if it is an image",
            provider=_PROVIDER,
        )
    if part.name:
        block["title"] = part.name
    return block


def _tool(spec: ToolSpec) -> dict[str, Any]:
    tool: dict[str, Any] = {
        "name": spec.name,
        "description": spec.description,
        "input_schema": anthropic_json_schema(spec.parameters) if spec.strict else spec.parameters,
    }
    if spec.strict:
        tool["strict"] = True
    return tool


def _tool_choice(request: LLMRequest) -> dict[str, Any] | None:
    choice = request.tool_choice
    if choice == "none":
        return {"type": "none"}
    if isinstance(choice, ToolName):
        out: dict[str, Any] = {"type": "tool", "name": choice.name}
    elif choice == "required":
        out = {"type": "any"}
    elif choice == "auto" or request.parallel_tool_calls is False:
        out = {"type": "auto"}
    else:
        return None
    if request.parallel_tool_calls is False:
        out["disable_parallel_tool_use"] = True
    return out


# -- response mapping -----------------------------------------------------------------------


_USAGE_FIELDS = (
    "input_tokens",
    "output_tokens",
    "cache_read_input_tokens",
    "cache_creation_input_tokens",
)


def _usage(usage: dict[str, Any] | None, counts: dict[str, int | None] | None = None) -> Usage:
    """Usage from its JSON. Anthropic's ``input_tokens`` excludes cached tokens; llmgine's
    counts every prompt token, so the cache reads and writes are added back. ``counts``
    (streaming) collects the latest non-null value of each field across events."""
    counts = {} if counts is None else counts
    for field in _USAGE_FIELDS:
        value = (usage or {}).get(field)
        if value is not None:
            counts[field] = value
    read = counts.get("cache_read_input_tokens")
    write = counts.get("cache_creation_input_tokens")
    inputs = [n for n in (counts.get("input_tokens"), read, write) if n is not None]
    return Usage(
        input_tokens=sum(inputs) if inputs else None,  # unknown stays unknown
        output_tokens=counts.get("output_tokens"),
        cache_read_tokens=read,
        cache_write_tokens=write,
    )


def _finish(stop_reason: str) -> Finish:
    return Finish(reason=_FINISH.get(stop_reason, "other"), raw=stop_reason)


def message_items(message: dict[str, Any]) -> list[StreamItem]:
    """A whole message (its JSON) as the items its stream would have carried, block index
    as the key; the `Finish` only if it says why it ended (``stop_reason``)."""
    items: list[StreamItem] = [
        ResponseMeta(model=message.get("model"), response_id=message.get("id")),
        UsageUpdate(usage=_usage(message.get("usage"))),
    ]
    for index, block in enumerate(message.get("content") or ()):
        kind = block.get("type")
        if kind == "text" and block.get("text"):
            items.append(TextDelta(key=index, text=block["text"]))
        elif kind == "thinking":
            signature = block.get("signature") or None
            items.append(
                ReasoningDelta(key=index, text=block.get("thinking", ""), signature=signature)
            )
        elif kind == "redacted_thinking":
            data = {"data": block.get("data")}
            items.append(ReasoningDelta(key=index, redacted=True, provider_data=data))
        elif kind == "tool_use":
            arguments = json.dumps(block.get("input") or {}, ensure_ascii=False)
            items.append(
                ToolCallDelta(key=index, id=block["id"], name=block["name"], arguments=arguments)
            )
        # Server-side tool blocks (web search, code execution, ...) stay in `raw` only.
    if stop_reason := message.get("stop_reason"):
        items.append(_finish(stop_reason))
    return items


class MessageEvents:
    """Reads the Messages event stream (each event's JSON) into items, block index as the
    part key; the `Finish` comes with ``message_stop``, the end marker."""

    def __init__(self) -> None:
        self._counts: dict[str, int | None] = {}
        # A tool_use block whose start already carried its input (no deltas will follow).
        self._pending: dict[int, dict[str, Any]] = {}
        self._finish: Finish | None = None  # from message_delta, sent at message_stop

    def items(self, event: dict[str, Any]) -> Iterator[StreamItem]:
        kind = event["type"]
        if kind == "message_start":
            message = event["message"]
            yield ResponseMeta(model=message.get("model"), response_id=message.get("id"))
            yield UsageUpdate(usage=_usage(message.get("usage"), self._counts))
        elif kind == "content_block_start":
            yield from self._start(event["index"], event["content_block"])
        elif kind == "content_block_delta":
            yield from self._delta(event["index"], event["delta"])
        elif kind == "content_block_stop":
            pending = self._pending.pop(event["index"], None)
            if pending is not None:
                yield ToolCallDelta(key=event["index"], arguments=json.dumps(pending))
        elif kind == "message_delta":
            yield UsageUpdate(usage=_usage(event.get("usage"), self._counts))
            if stop_reason := (event.get("delta") or {}).get("stop_reason"):
                self._finish = _finish(stop_reason)
        elif kind == "message_stop":
            # The end marker: only now is the answer known to be whole.
            yield self._finish or Finish(reason="other")
        # ping carries nothing.

    def _start(self, index: int, block: dict[str, Any]) -> Iterator[StreamItem]:
        kind = block["type"]
        if kind == "text" and block.get("text"):
            yield TextDelta(key=index, text=block["text"])
        elif kind == "thinking":
            signature = block.get("signature") or None
            yield ReasoningDelta(key=index, text=block.get("thinking", ""), signature=signature)
        elif kind == "redacted_thinking":
            yield ReasoningDelta(
                key=index, redacted=True, provider_data={"data": block.get("data")}
            )
        elif kind == "tool_use":
            yield ToolCallDelta(key=index, id=block["id"], name=block["name"])
            if block.get("input"):
                self._pending[index] = dict(block["input"])

    def _delta(self, index: int, delta: dict[str, Any]) -> Iterator[StreamItem]:
        kind = delta["type"]
        if kind == "text_delta":
            yield TextDelta(key=index, text=delta["text"])
        elif kind == "thinking_delta":
            yield ReasoningDelta(key=index, text=delta["thinking"])
        elif kind == "signature_delta":
            yield ReasoningDelta(key=index, signature=delta["signature"])
        elif kind == "input_json_delta":
            if delta.get("partial_json"):
                self._pending.pop(index, None)  # the arguments arrive as deltas after all
            yield ToolCallDelta(key=index, arguments=delta.get("partial_json") or "")
