"""The Anthropic adapter: `LLMRequest` to the Messages API and back, streamed or not.

Requests map out to ``client.messages.create`` (system messages become the top-level
``system``, tool results a ``user`` turn of ``tool_result`` blocks, consecutive same-role
turns are merged because the API requires alternation). Responses come back through the
shared `StreamAssembler`: a non-streamed message is turned into the items a stream of it
would have carried, so both assemble to equal `LLMResponse`s. No SDK type leaves this file.

Choices worth knowing:

* ``seed`` does not exist on Anthropic. Raising would break switching providers by
  configuration (the point of a neutral request) and dropping it silently would hide it, so
  it is ignored with one logged warning per provider.
* ``Reasoning(effort=...)`` without a budget becomes a thinking budget of 1024 (minimal,
  low), 4096 (medium) or 16384 (high) tokens. When ``max_tokens`` is not set and the budget
  does not fit under ``default_max_tokens``, ``max_tokens`` is the budget plus that default,
  since the API counts thinking inside ``max_tokens``.
* ``Reasoning.include_thoughts`` is not sent: Anthropic returns the (summarised) thinking
  whenever thinking is on, and it must be sent back with tool results anyway.
* The SDK (2.x) has no ``temperature``/``top_p``/``top_k`` arguments and speaks ``httpx2``:
  sampling parameters go in the JSON body (``extra_body``), and a plain
  ``httpx.AsyncClient`` passed as ``http_client`` is bridged to ``httpx2``.
* The SDK refuses a non-streamed call whose ``max_tokens`` may take over 10 minutes unless
  a timeout is given; `generate` then streams and assembles (the same response, no ``raw``).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from llmgine._redact import redacting_logger
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
from llmgine.llm._provider import (
    Failure,
    Provider,
    ProviderFailed,
    find_api_key,
    import_sdk,
    incomplete,
    reading,
    whole_response,
)
from llmgine.llm._request import LLMRequest, ProviderOptions, ToolName, ToolSpec
from llmgine.llm._response import FinishReason, LLMResponse, Usage
from llmgine.llm._schema_rules import anthropic_json_schema
from llmgine.llm._send import httpx2_client, post_events, post_json, stainless_failure
from llmgine.llm._stream import (
    Finish,
    ReasoningDelta,
    ResponseMeta,
    StreamAssembler,
    StreamItem,
    TextDelta,
    ToolCallDelta,
    UsageUpdate,
)

if TYPE_CHECKING:
    import httpx
    import httpx2

__all__ = ["AnthropicOptions", "AnthropicProvider", "anthropic_json_schema"]

_log = redacting_logger("llmgine.llm")

# Thinking budget for a `Reasoning(effort=...)` that names no budget (the API minimum is 1024).
_EFFORT_BUDGETS: dict[str, int] = {"minimal": 1024, "low": 1024, "medium": 4096, "high": 16384}

# The largest max_tokens the SDK sends without streaming (it expects 128k tokens to take an
# hour and refuses calls expected to pass 10 minutes unless given a timeout).
_NONSTREAMING_MAX_TOKENS = 128_000 * 10 // 60

_FINISH: dict[str, FinishReason] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
    "pause_turn": "other",
}


class AnthropicOptions(ProviderOptions):
    """Anthropic-only settings; put one in ``LLMRequest.options``.

    ``cache_control`` turns on automatic prompt caching (the API marks the longest cacheable
    prefix): ``True`` for the default 5-minute cache, or a TTL ``"5m"``/``"1h"``.
    ``cache_system`` marks the system prompt itself as a cache breakpoint. ``effort`` is the
    API's ``output_config.effort`` (``"low"`` ... ``"max"``, model dependent).
    ``thinking_budget_tokens`` turns on extended thinking with that budget (it wins over
    ``LLMRequest.reasoning``). ``betas`` go out as the ``anthropic-beta`` header.
    """

    provider: str = "anthropic"
    top_k: int | None = None
    thinking_budget_tokens: int | None = None
    effort: str | None = None
    cache_control: bool | Literal["5m", "1h"] = False
    cache_system: bool = False
    metadata_user_id: str | None = None
    service_tier: Literal["auto", "standard_only"] | None = None
    betas: list[str] = Field(default_factory=list)


# -- the provider ---------------------------------------------------------------------------


class AnthropicProvider(Provider):
    """Claude through the official ``anthropic`` SDK (Messages API).

    ``api_key`` defaults to ``ANTHROPIC_API_KEY``; ``http_client`` may be an
    ``httpx.AsyncClient`` or an ``httpx2.AsyncClient``; ``default_max_tokens`` is sent when a
    request sets no ``max_tokens`` (the API requires one). The SDK never retries
    (``max_retries=0``): llmgine's retry wrapper does, so retries do not stack.

    Example:
        provider = AnthropicProvider()  # reads ANTHROPIC_API_KEY
        response = await provider.generate(LLMRequest(model="claude-sonnet-4-5", messages=[...]))
    """

    name = "anthropic"
    label = "Anthropic"
    key_variables = ("ANTHROPIC_API_KEY",)

    def __init__(
        self,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        timeout: float | None = None,
        http_client: httpx.AsyncClient | httpx2.AsyncClient | None = None,
        default_max_tokens: int = 4096,
    ) -> None:
        self._sdk = import_sdk("anthropic", "anthropic")
        key, self.key_source = find_api_key(self.name, api_key, self.key_variables)
        kwargs: dict[str, Any] = {"api_key": key, "max_retries": 0}  # llmgine retries
        if base_url is not None:
            kwargs["base_url"] = base_url
        if timeout is not None:
            kwargs["timeout"] = timeout
        if http_client is not None:
            kwargs["http_client"] = httpx2_client(http_client)
        self._client: Any = self._sdk.AsyncAnthropic(**kwargs)
        self.default_max_tokens = default_max_tokens
        self._warned_seed = False

    @property
    def base_url(self) -> str:
        return str(self._client.base_url)

    # -- request out ------------------------------------------------------------------------

    def _params(self, request: LLMRequest, model: str) -> dict[str, Any]:
        options: AnthropicOptions = request.options_for(self.name, AnthropicOptions)
        params: dict[str, Any] = {"model": model, "messages": _messages(request.messages)}
        body: dict[str, Any] = {}  # JSON fields the SDK has no argument for
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
            max_tokens = self.default_max_tokens
            if budget is not None and budget >= max_tokens:
                max_tokens = budget + self.default_max_tokens
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
                body[field] = value
        if request.stop:
            params["stop_sequences"] = list(request.stop)
        if request.seed is not None and not self._warned_seed:
            self._warned_seed = True
            _log.warning("Anthropic has no seed parameter: seed=%s is ignored", request.seed)
        if options.metadata_user_id is not None:
            params["metadata"] = {"user_id": options.metadata_user_id}
        if options.service_tier is not None:
            params["service_tier"] = options.service_tier
        if options.betas:
            params["extra_headers"] = {"anthropic-beta": ",".join(options.betas)}
        body.update(options.extra_body)  # verbatim, and last: the caller's word wins
        if body:
            params["extra_body"] = body
        if request.timeout is not None:
            params["timeout"] = request.timeout
        return params

    # -- calls ------------------------------------------------------------------------------

    async def _generate(self, request: LLMRequest, model: str) -> LLMResponse:
        params = self._params(request, model)
        assembler = StreamAssembler(self.name, model)
        if "timeout" not in params and params["max_tokens"] > _NONSTREAMING_MAX_TOKENS:
            # The SDK refuses a non-streamed call that may outlast 10 minutes (networks drop
            # idle connections): stream it instead, which assembles to the same response.
            async for item in self._events(params):
                assembler.add(item)
            if not assembler.finished:
                raise ProviderFailed(incomplete(assembler))
            return assembler.response()
        message = await post_json(self._client, "/v1/messages", {**params, "stream": False})
        with reading(message):
            items = message_items(message)
            return whole_response(assembler, items, raw=message, marker="stop_reason")

    def _stream(self, request: LLMRequest, model: str) -> AsyncIterator[StreamItem]:
        return self._events(self._params(request, model))

    async def _events(self, params: dict[str, Any]) -> AsyncIterator[StreamItem]:
        events = MessageEvents()
        arguments = {**params, "stream": True}
        async for event in post_events(self._client, self._sdk, "/v1/messages", arguments):
            with reading(event):
                items = list(events.items(event))
            for item in items:
                yield item

    # -- errors -----------------------------------------------------------------------------

    def _failure(self, exc: Exception) -> Failure | None:
        sdk = self._sdk
        failure = stainless_failure(sdk, exc)
        if failure is not None:
            return failure
        if isinstance(exc, sdk.AnthropicError):
            return Failure(message=f"the Anthropic SDK failed: {exc}")
        return None


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
    if part.provider != AnthropicProvider.name:
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
            provider=AnthropicProvider.name,
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
