"""The Responses API as a translator: an `LLMRequest` to the wire JSON of
``POST /responses``, and the answer's JSON (one stream event, or a whole response) to
`StreamItem`s, so that a streamed and a non-streamed call assemble to equal `LLMResponse`s.
Plain functions of JSON: no client, no SDK type.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from llmgine.llm._error_table import Failure, ProviderFailed
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
from llmgine.llm._request import LLMRequest, ResponseFormat, ToolName, ToolSpec
from llmgine.llm._response import FinishReason, Usage
from llmgine.llm._schema_rules import strict_json_schema
from llmgine.llm._stream import (
    Finish,
    ReasoningDelta,
    ResponseMeta,
    StreamItem,
    TextDelta,
    ToolCallDelta,
    UsageUpdate,
)
from llmgine.llm.providers._openai_shared import (
    config_error,
    data_url,
    effort_for,
    is_reasoning_model,
)

if TYPE_CHECKING:
    from llmgine.llm.providers.openai import OpenAIOptions

__all__ = ["ResponsesEvents", "responses_answer_items", "responses_body", "responses_input"]


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


def responses_body(
    request: LLMRequest,
    model: str,
    options: OpenAIOptions,
    *,
    provider: str,
    stream: bool,
) -> dict[str, Any]:
    """The JSON body of a Responses call (``extra_body`` not merged: the sender does)."""
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


# -- the answer back ---------------------------------------------------------------------


def _usage(usage: dict[str, Any] | None) -> Usage:
    if not usage:
        return Usage()
    # Details are documented as always present; OpenAI-compatible servers may omit them.
    inputs = usage.get("input_tokens_details") or {}
    outputs = usage.get("output_tokens_details") or {}
    return Usage(
        input_tokens=usage.get("input_tokens"),
        output_tokens=usage.get("output_tokens"),
        cache_read_tokens=inputs.get("cached_tokens"),
        cache_write_tokens=inputs.get("cache_write_tokens"),
        reasoning_tokens=outputs.get("reasoning_tokens"),
    )


_INCOMPLETE: dict[str, FinishReason] = {
    "max_output_tokens": "length",
    "content_filter": "content_filter",
}


def _finish(response: dict[str, Any]) -> Finish:
    status = response.get("status")
    if status == "failed":
        raise _failed(response)
    if status == "completed":
        calls = any(item["type"] == "function_call" for item in response.get("output") or ())
        return Finish(reason="tool_calls" if calls else "stop", raw="completed")
    if status == "incomplete":
        reason = (response.get("incomplete_details") or {}).get("reason")
        return Finish(reason=_INCOMPLETE.get(reason or "", "other"), raw=reason or status)
    if not status:
        raise ValueError("the response has no status, so it is not a whole answer")
    return Finish(reason="other", raw=status)


def _failed(response: dict[str, Any]) -> ProviderFailed:
    """A response that failed: its error goes through the one error table."""
    error = response.get("error")
    return ProviderFailed(
        Failure(
            codes=(error["code"],) if error and error.get("code") else (),
            message=error.get("message", "") if error else "no error details were given",
            body=error,
        )
    )


def _reasoning(index: int, item: dict[str, Any], *, text: str) -> ReasoningDelta:
    encrypted = item.get("encrypted_content")
    summaries = item.get("summary") or ()
    return ReasoningDelta(
        key=index,
        text=text,
        signature=encrypted,
        redacted=bool(encrypted) and not any(s.get("text") for s in summaries),
        provider_data={"item_id": item["id"]},
    )


def _tail(response: dict[str, Any]) -> list[StreamItem]:
    return [
        UsageUpdate(usage=_usage(response.get("usage"))),
        _finish(response),
        ResponseMeta(model=response.get("model"), response_id=response.get("id")),
    ]


def responses_answer_items(response: dict[str, Any]) -> list[StreamItem]:
    """A whole response (its JSON) as the items its stream would have carried, keyed
    alike: message content by (output index, content index), other items by output index."""
    items: list[StreamItem] = []
    for index, item in enumerate(response.get("output") or ()):
        kind = item["type"]
        if kind == "message":
            for position, content in enumerate(item.get("content") or ()):
                field = "text" if content["type"] == "output_text" else "refusal"
                if text := content.get(field):
                    items.append(TextDelta(key=(index, position), text=text))
        elif kind == "function_call":
            items.append(
                ToolCallDelta(
                    key=index,
                    id=item["call_id"],
                    name=item["name"],
                    arguments=item["arguments"],
                    provider_data={"item_id": item.get("id")},
                )
            )
        elif kind == "reasoning":
            text = "\n\n".join(s["text"] for s in item.get("summary") or ())
            items.append(_reasoning(index, item, text=text))
        # Built-in tool calls (web search, ...) are not part of the unified response.
    return items + _tail(response)


class ResponsesEvents:
    """Reads the Responses event stream event by event (`items`). The end marker is
    ``response.completed`` (or ``.incomplete``/``.failed``): only it brings a `Finish`, so
    a stream cut before it is reported incomplete."""

    def __init__(self) -> None:
        self._argued: set[int] = set()  # function calls whose arguments arrived as deltas
        self._summaries: dict[int, int] = {}  # reasoning item -> last summary part seen

    def items(self, event: dict[str, Any]) -> list[StreamItem]:
        kind = event["type"]
        if kind in ("response.created", "response.in_progress"):
            response = event["response"]
            return [ResponseMeta(model=response.get("model"), response_id=response.get("id"))]
        if kind == "response.output_item.added":
            index, item = event["output_index"], event["item"]
            if item["type"] == "function_call":
                if item.get("arguments"):
                    self._argued.add(index)
                call = ToolCallDelta(
                    key=index,
                    id=item.get("call_id"),
                    name=item.get("name"),
                    arguments=item.get("arguments") or "",
                    provider_data={"item_id": item.get("id")},
                )
                return [call]
            if item["type"] == "reasoning":
                # Announce the part now, so it keeps its place before what follows it.
                return [ReasoningDelta(key=index, provider_data={"item_id": item.get("id")})]
            return []
        if kind in ("response.output_text.delta", "response.refusal.delta"):
            key = (event["output_index"], event["content_index"])
            return [TextDelta(key=key, text=event["delta"])]
        if kind == "response.function_call_arguments.delta":
            self._argued.add(event["output_index"])
            return [ToolCallDelta(key=event["output_index"], arguments=event["delta"])]
        if kind == "response.reasoning_summary_text.delta":
            index, summary = event["output_index"], event["summary_index"]
            # Summary parts are joined with a blank line, as in a non-streamed response.
            gap = "\n\n" if self._summaries.get(index, summary) != summary else ""
            self._summaries[index] = summary
            return [ReasoningDelta(key=index, text=gap + event["delta"])]
        if kind == "response.output_item.done":
            return self._done(event["output_index"], event["item"])
        if kind in ("response.completed", "response.incomplete", "response.failed"):
            return _tail(event["response"])
        if kind == "error":
            raise ProviderFailed(
                Failure(
                    codes=(event["code"],) if event.get("code") else (),
                    message=event.get("message") or "",
                    body=event,
                )
            )
        return []

    def _done(self, index: int, item: dict[str, Any]) -> list[StreamItem]:
        if item["type"] == "function_call" and index not in self._argued:
            return [ToolCallDelta(key=index, arguments=item["arguments"])]
        if item["type"] == "reasoning":
            # The encrypted content of the .done item is the complete one.
            return [_reasoning(index, item, text="")]
        return []
