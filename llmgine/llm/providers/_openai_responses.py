"""The OpenAI Responses API half of the OpenAI adapter, and the helpers both halves share.

`llmgine.llm.providers.openai` calls in here; nothing else should. It maps an `LLMRequest`
to ``client.responses.create(...)`` keyword arguments, a `Response` back to `StreamItem`s,
and the Responses event stream to `StreamItem`s, so that a streamed and a non-streamed call
assemble to equal `LLMResponse`s. SDK objects are only read here, never handed out.
"""

from __future__ import annotations

import copy
import functools
import re
from collections.abc import AsyncIterator, Mapping, Sequence
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
from llmgine.llm._provider import Failure, ProviderFailed, reading
from llmgine.llm._request import LLMRequest, ResponseFormat, ToolName, ToolSpec
from llmgine.llm._response import FinishReason, LLMResponse, Usage
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
    from openai.types.responses import Response, ResponseStreamEvent, ResponseUsage

    from llmgine.llm.providers.openai import OpenAIOptions

__all__ = [
    "config_error",
    "data_url",
    "effort_for",
    "is_reasoning_model",
    "responses_input",
    "responses_only_model",
    "responses_params",
    "responses_response",
    "responses_stream_items",
    "strict_json_schema",
]

# -- shared by both halves -------------------------------------------------------------


def strict_json_schema(schema: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``schema`` that OpenAI strict mode accepts.

    Strict mode (strict tools, ``json_schema`` output with ``strict: true``) demands that
    every object schema lists all its properties in ``required`` and sets
    ``additionalProperties: false``; this closes every object, nested ones (``properties``,
    ``items``, ``anyOf``, ``$defs``, ...) included. A schema that already complies comes
    back equal. A free-form object (no ``properties``) becomes an empty closed object,
    because strict mode has no way to express one.
    """
    strict: dict[str, Any] = _strict(copy.deepcopy(dict(schema)))
    return strict


_SCHEMA_MAPS = ("properties", "$defs", "definitions", "patternProperties")
_SCHEMA_NODES = ("items", "prefixItems", "anyOf", "allOf", "oneOf", "not", "if", "then", "else")


def _strict(node: Any) -> Any:
    if isinstance(node, list):
        return [_strict(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = dict(node)
    for key in _SCHEMA_MAPS:  # name -> schema: the names are data, not keywords
        if isinstance(out.get(key), dict):
            out[key] = {name: _strict(sub) for name, sub in out[key].items()}
    for key in _SCHEMA_NODES:
        if key in out:
            out[key] = _strict(out[key])
    kind = out.get("type")
    if kind == "object" or (isinstance(kind, list) and "object" in kind) or "properties" in out:
        out["additionalProperties"] = False
        out["required"] = list(out.get("properties") or {})
    return out


def data_url(part: ImagePart | FilePart) -> str:
    """The part's URL, or its bytes as a ``data:`` URL (what OpenAI takes for both)."""
    if part.url is not None:
        return part.url
    return f"data:{part.media_type};base64,{part.base64()}"


def _bare(model: str) -> str:
    # "ft:gpt-4o-mini:org::id" and "openai/gpt-5" name the same family as their base.
    return model.lower().removeprefix("ft:").rsplit("/", 1)[-1]


@functools.lru_cache(maxsize=512)  # asked on every call, of a handful of model names
def is_reasoning_model(model: str) -> bool:
    """o-series and gpt-5 models reason (gpt-5-chat-* does not)."""
    bare = _bare(model)
    return re.match(r"(o\d|gpt-5)", bare) is not None and "chat" not in bare


@functools.lru_cache(maxsize=512)
def responses_only_model(model: str) -> bool:
    """Models that the Chat Completions endpoint does not serve."""
    pattern = r"(^(o\d|gpt-5)[\w.-]*-pro\b|deep-research|codex|computer-use)"
    return re.search(pattern, _bare(model)) is not None


def effort_for(request: LLMRequest) -> str | None:
    """The reasoning effort asked for: the effort, or one derived from a token budget."""
    reasoning = request.reasoning
    if reasoning is None:
        return None
    if reasoning.effort is not None:
        return reasoning.effort
    if reasoning.budget_tokens is None:
        return None
    # OpenAI takes no budget; these bands match what its efforts tend to spend.
    if reasoning.budget_tokens <= 2048:
        return "low"
    return "medium" if reasoning.budget_tokens <= 8192 else "high"


def config_error(message: str, provider: str, model: str) -> LLMConfigurationError:
    return LLMConfigurationError(message, provider=provider, model=model)


# -- the request out ---------------------------------------------------------------------


def _tool(spec: ToolSpec) -> dict[str, Any]:
    return {
        "type": "function",
        "name": spec.name,
        "description": spec.description,
        "parameters": strict_json_schema(spec.parameters) if spec.strict else spec.parameters,
        # Responses treats a missing strict as true; say false so a loose schema still works.
        "strict": bool(spec.strict),
    }


def _text_format(fmt: ResponseFormat) -> dict[str, Any]:
    out: dict[str, Any] = {
        "type": "json_schema",
        "name": fmt.name,
        "schema": strict_json_schema(fmt.json_schema) if fmt.strict else fmt.json_schema,
        "strict": fmt.strict,
    }
    if fmt.description:
        out["description"] = fmt.description
    return out


def _user_content(parts: Sequence[Part], provider: str, model: str) -> str | list[dict[str, Any]]:
    content: list[dict[str, Any]] = []
    for part in parts:
        if isinstance(part, TextPart):
            content.append({"type": "input_text", "text": part.text})
        elif isinstance(part, ImagePart):
            content.append({"type": "input_image", "image_url": data_url(part), "detail": "auto"})
        elif isinstance(part, FilePart):
            if part.url is not None:
                content.append({"type": "input_file", "file_url": part.url})
            else:
                name = part.name or "file"
                content.append(
                    {"type": "input_file", "filename": name, "file_data": data_url(part)}
                )
        elif isinstance(part, ToolCallPart):
            raise config_error(
                "a user message cannot hold a ToolCallPart; put tool calls in the assistant "
                "message that made them",
                provider,
                model,
            )
        # Reasoning in a user turn means nothing to the API: left out.
    if len(content) == 1 and content[0]["type"] == "input_text":
        return str(content[0]["text"])
    return content


def _reasoning_item(part: ReasoningPart, provider: str) -> dict[str, Any] | None:
    # Only OpenAI's own reasoning can go back, and only with the item id it was given.
    item_id = (part.provider_data or {}).get("item_id")
    if part.provider != provider or not item_id:
        return None
    item: dict[str, Any] = {
        "type": "reasoning",
        "id": item_id,
        "summary": [{"type": "summary_text", "text": part.text}] if part.text else [],
    }
    if part.signature:
        item["encrypted_content"] = part.signature
    return item


def _assistant_items(message: ChatMessage, provider: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    reasoning = [
        _reasoning_item(p, provider) for p in message.parts if isinstance(p, ReasoningPart)
    ]
    sent_reasoning = any(reasoning)
    text: list[str] = []

    def flush() -> None:
        if text:
            items.append({"role": "assistant", "content": "".join(text)})
            text.clear()

    for part in message.parts:
        if isinstance(part, TextPart):
            text.append(part.text)
            continue
        flush()
        if isinstance(part, ReasoningPart):
            item = _reasoning_item(part, provider)
            if item is not None:
                items.append(item)
        elif isinstance(part, ToolCallPart):
            call: dict[str, Any] = {
                "type": "function_call",
                "call_id": part.id,
                "name": part.name,
                "arguments": part.arguments_json,
            }
            item_id = (part.provider_data or {}).get("item_id")
            # A reasoning item must be followed by the item it produced (matched by id);
            # without reasoning, an fc_ id would instead demand its reasoning item.
            if sent_reasoning and item_id and part.provider == provider:
                call["id"] = item_id
            items.append(call)
    flush()
    return items


def responses_input(
    request: LLMRequest, provider: str, model: str
) -> tuple[list[dict[str, Any]], str | None]:
    """The conversation as Responses ``input`` items, and the system text as ``instructions``."""
    items: list[dict[str, Any]] = []
    for message in request.messages:
        if message.role == "system":
            continue  # request.system_text carries them, as instructions
        results = [p for p in message.parts if isinstance(p, ToolResultPart)]
        for result in results:
            items.append(
                {"type": "function_call_output", "call_id": result.call_id, "output": result.text}
            )
        others = [p for p in message.parts if not isinstance(p, ToolResultPart)]
        if message.role == "assistant":
            items.extend(_assistant_items(message, provider))
        elif others:
            content = _user_content(others, provider, model)
            if content:
                items.append({"role": "user", "content": content})
    return items, request.system_text


def responses_params(
    request: LLMRequest,
    model: str,
    options: OpenAIOptions,
    *,
    provider: str,
    stream: bool,
) -> dict[str, Any]:
    """Keyword arguments for ``client.responses.create``."""
    chat_only = {
        "stop": request.stop,
        "seed": request.seed,
        "frequency_penalty": options.frequency_penalty,
        "presence_penalty": options.presence_penalty,
    }
    given = [name for name, value in chat_only.items() if value is not None]
    if given:
        raise config_error(
            f"the Responses API has no {', '.join(given)}; leave them unset, or send this "
            f"request with OpenAIOptions(api='chat')",
            provider,
            model,
        )
    items, instructions = responses_input(request, provider, model)
    params: dict[str, Any] = {"model": model, "input": items, "stream": stream}
    if instructions is not None:
        params["instructions"] = instructions
    if request.tools:
        params["tools"] = [_tool(spec) for spec in request.tools]
        choice = request.tool_choice
        if isinstance(choice, ToolName):
            params["tool_choice"] = {"type": "function", "name": choice.name}
        elif choice is not None:
            params["tool_choice"] = choice
        if request.parallel_tool_calls is not None:
            params["parallel_tool_calls"] = request.parallel_tool_calls
    text: dict[str, Any] = {}
    if request.response_format is not None:
        text["format"] = _text_format(request.response_format)
    if options.verbosity is not None:
        text["verbosity"] = options.verbosity
    if text:
        params["text"] = text
    effort = options.reasoning_effort or effort_for(request)
    reasoning: dict[str, Any] = {}
    if effort is not None:
        reasoning["effort"] = effort
    summary = options.reasoning_summary
    if summary is None and request.reasoning is not None and request.reasoning.include_thoughts:
        summary = "auto"
    if summary is not None:
        reasoning["summary"] = summary
    if reasoning:
        params["reasoning"] = reasoning
    include = list(options.include) if options.include is not None else []
    # Encrypted reasoning is what lets a stateless conversation keep the model's thinking.
    if options.include is None and (request.reasoning is not None or is_reasoning_model(model)):
        include.append("reasoning.encrypted_content")
    if options.logprobs:
        include.append("message.output_text.logprobs")
    if include:
        params["include"] = include
    plain = {
        "temperature": request.temperature,
        "max_output_tokens": request.max_tokens,
        "top_p": request.top_p,
        "top_logprobs": options.top_logprobs,
        "service_tier": options.service_tier,
        "store": options.store,
        "user": options.user,
        "metadata": options.metadata,
        "previous_response_id": options.previous_response_id,
        "prompt_cache_key": options.prompt_cache_key,
        "safety_identifier": options.safety_identifier,
        "truncation": options.truncation,
    }
    params.update({key: value for key, value in plain.items() if value is not None})
    return params


# -- the response back -------------------------------------------------------------------


def _usage(usage: ResponseUsage | None) -> Usage:
    if usage is None:
        return Usage()
    # Details are typed as always present; OpenAI-compatible servers may still omit them.
    inputs = getattr(usage, "input_tokens_details", None)
    outputs = getattr(usage, "output_tokens_details", None)
    return Usage(
        input_tokens=usage.input_tokens,
        output_tokens=usage.output_tokens,
        cache_read_tokens=getattr(inputs, "cached_tokens", None),
        cache_write_tokens=getattr(inputs, "cache_write_tokens", None),
        reasoning_tokens=getattr(outputs, "reasoning_tokens", None),
    )


_INCOMPLETE: dict[str, FinishReason] = {
    "max_output_tokens": "length",
    "content_filter": "content_filter",
}


def _finish(response: Response) -> Finish:
    status = response.status
    if status == "failed":
        raise _failed(response)
    if status == "completed":
        calls = any(item.type == "function_call" for item in response.output)
        return Finish(reason="tool_calls" if calls else "stop", raw="completed")
    if status == "incomplete":
        details = response.incomplete_details
        reason = details.reason if details is not None else None
        return Finish(reason=_INCOMPLETE.get(reason or "", "other"), raw=reason or status)
    if not status:
        raise ValueError("the response has no status, so it is not a whole answer")
    return Finish(reason="other", raw=status)


def _failed(response: Response) -> ProviderFailed:
    """A response that failed: its error goes through the one error table."""
    error = response.error
    return ProviderFailed(
        Failure(
            codes=(error.code,) if error is not None and error.code else (),
            message=error.message if error is not None else "no error details were given",
            body=error.model_dump(mode="json") if error is not None else None,
        )
    )


def _parts(response: Response) -> list[Part]:
    parts: list[Part] = []
    for item in response.output:
        if item.type == "message":
            for content in item.content:
                text = content.text if content.type == "output_text" else content.refusal
                if text:
                    parts.append(TextPart(text=text))
        elif item.type == "function_call":
            parts.append(
                ToolCallPart.from_json_arguments(
                    item.call_id, item.name, item.arguments, provider_data={"item_id": item.id}
                )
            )
        elif item.type == "reasoning":
            text = "\n\n".join(s.text for s in item.summary)
            parts.append(
                ReasoningPart(
                    text=text,
                    signature=item.encrypted_content,
                    redacted=bool(item.encrypted_content) and not any(s.text for s in item.summary),
                    provider_data={"item_id": item.id},
                )
            )
        # Built-in tool calls (web search, ...) are not part of the unified response.
    return parts


def _tail(response: Response) -> list[StreamItem]:
    return [
        UsageUpdate(usage=_usage(response.usage)),
        _finish(response),
        ResponseMeta(model=response.model, response_id=response.id),
    ]


def responses_response(assembler: StreamAssembler, response: Response) -> LLMResponse:
    """A non-streamed `Response` as the response its stream would assemble to."""
    return assembler.whole(
        _parts(response),
        usage=_usage(response.usage),
        finish=_finish(response),
        model=response.model,
        response_id=response.id,
        raw=response.model_dump(mode="json"),
    )


async def responses_stream_items(
    events: AsyncIterator[ResponseStreamEvent],
) -> AsyncIterator[StreamItem]:
    """The Responses event stream as `StreamItem`s; parts keyed by their output index.

    The end marker is ``response.completed`` (or ``.incomplete``/``.failed``): only it
    brings a `Finish`, so a stream cut before it is reported incomplete.
    """
    state = _EventState()
    async for event in events:
        with reading(event):
            items = state.items(event)
        for item in items:
            yield item


class _EventState:
    """What a Responses stream has said so far; `items` maps one event."""

    def __init__(self) -> None:
        self.argued: set[int] = set()  # function calls whose arguments arrived as deltas
        self.summaries: dict[int, int] = {}  # reasoning item -> last summary part seen

    def items(self, event: ResponseStreamEvent) -> list[StreamItem]:
        if event.type in ("response.created", "response.in_progress"):
            return [ResponseMeta(model=event.response.model, response_id=event.response.id)]
        if event.type == "response.output_item.added":
            item = event.item
            if item.type == "function_call":
                if item.arguments:
                    self.argued.add(event.output_index)
                call = ToolCallDelta(
                    key=event.output_index,
                    id=item.call_id,
                    name=item.name,
                    arguments=item.arguments or "",
                    provider_data={"item_id": item.id},
                )
                return [call]
            if item.type == "reasoning":
                # Announce the part now, so it keeps its place before what follows it.
                return [ReasoningDelta(key=event.output_index, provider_data={"item_id": item.id})]
            return []
        if event.type in ("response.output_text.delta", "response.refusal.delta"):
            return [TextDelta(key=(event.output_index, event.content_index), text=event.delta)]
        if event.type == "response.function_call_arguments.delta":
            self.argued.add(event.output_index)
            return [ToolCallDelta(key=event.output_index, arguments=event.delta)]
        if event.type == "response.reasoning_summary_text.delta":
            index = event.output_index
            # Summary parts are joined with a blank line, as in a non-streamed response.
            last = self.summaries.get(index, event.summary_index)
            gap = "\n\n" if last != event.summary_index else ""
            self.summaries[index] = event.summary_index
            return [ReasoningDelta(key=index, text=gap + event.delta)]
        if event.type == "response.output_item.done":
            return self._done(event.output_index, event.item)
        if event.type in ("response.completed", "response.incomplete", "response.failed"):
            return _tail(event.response)
        if event.type == "error":
            raise ProviderFailed(
                Failure(
                    codes=(event.code,) if event.code else (),
                    message=event.message,
                    body=event.model_dump(mode="json"),
                )
            )
        return []

    def _done(self, index: int, item: Any) -> list[StreamItem]:
        if item.type == "function_call" and index not in self.argued:
            return [ToolCallDelta(key=index, arguments=item.arguments)]
        if item.type == "reasoning":
            # The encrypted content of the .done item is the complete one.
            text = any(s.text for s in item.summary)
            delta = ReasoningDelta(
                key=index,
                signature=item.encrypted_content,
                redacted=bool(item.encrypted_content) and not text,
                provider_data={"item_id": item.id},
            )
            return [delta]
        return []
