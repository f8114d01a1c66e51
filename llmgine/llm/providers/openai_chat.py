"""Chat Completions as a translator: an `LLMRequest` to the wire JSON of
``POST /chat/completions``, and the answer's JSON (one streamed chunk, or a whole
completion) to `StreamItem`s. Plain functions of JSON: no client, no SDK type.

Used by `OpenAIProvider` and every OpenAI-compatible server (Ollama, vLLM, llama.cpp).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from llmgine.llm._parts import (
    ChatMessage,
    FilePart,
    ImagePart,
    Part,
    TextPart,
    ToolCallPart,
    ToolResultPart,
)
from llmgine.llm._request import LLMRequest, ToolName, ToolSpec
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
from llmgine.llm.providers._openai_shared import config_error, data_url, effort_for

if TYPE_CHECKING:
    from llmgine.llm.providers.openai import OpenAIOptions

__all__ = ["ChatEvents", "chat_answer_items", "chat_body"]

_FINISH: dict[str, FinishReason] = {
    "stop": "stop",
    "length": "length",
    "tool_calls": "tool_calls",
    "function_call": "tool_calls",
    "content_filter": "content_filter",
}
_AUDIO_FORMATS = {"audio/wav": "wav", "audio/x-wav": "wav", "audio/mpeg": "mp3", "audio/mp3": "mp3"}
# Reasoning text that some compatible servers (vLLM, Ollama, DeepSeek) add to Chat messages.
_REASONING_FIELDS = ("reasoning_content", "reasoning")
_RESPONSES_ONLY = ("reasoning_summary", "previous_response_id", "include", "truncation")


# -- the request out --------------------------------------------------------------------------


def chat_body(
    request: LLMRequest,
    model: str,
    options: OpenAIOptions,
    *,
    provider: str,
    max_tokens_param: str = "max_completion_tokens",
    stream: bool,
) -> dict[str, Any]:
    """The JSON body of a Chat Completions call (``extra_body`` not merged: the sender does)."""
    given = [key for key in _RESPONSES_ONLY if getattr(options, key) is not None]
    if given:
        raise config_error(
            f"Chat Completions has no {', '.join(given)}; leave them unset, or send this "
            f"request with OpenAIOptions(api='responses')",
            provider,
            model,
        )
    body: dict[str, Any] = {
        "model": model,
        "messages": _messages(request, model, options.system_role or "system", provider),
        "stream": stream,
    }
    if stream:
        body["stream_options"] = {"include_usage": True}  # else no usage when streaming
    if request.tools:
        body["tools"] = [_tool(spec) for spec in request.tools]
        choice = request.tool_choice
        if isinstance(choice, ToolName):
            body["tool_choice"] = {"type": "function", "function": {"name": choice.name}}
        elif choice is not None:
            body["tool_choice"] = choice
        if request.parallel_tool_calls is not None:
            body["parallel_tool_calls"] = request.parallel_tool_calls
    if (fmt := request.response_format) is not None:
        schema: dict[str, Any] = {
            "name": fmt.name,
            "schema": strict_json_schema(fmt.json_schema) if fmt.strict else fmt.json_schema,
            "strict": fmt.strict,
        }
        if fmt.description:
            schema["description"] = fmt.description
        body["response_format"] = {"type": "json_schema", "json_schema": schema}
    plain = {
        "temperature": request.temperature,
        max_tokens_param: request.max_tokens,
        "top_p": request.top_p,
        "stop": request.stop,
        "seed": request.seed,
        "reasoning_effort": options.reasoning_effort or effort_for(request),
        "service_tier": options.service_tier,
        "store": options.store,
        "user": options.user,
        "logprobs": options.logprobs,
        "top_logprobs": options.top_logprobs,
        "frequency_penalty": options.frequency_penalty,
        "presence_penalty": options.presence_penalty,
        "metadata": options.metadata,
        "prompt_cache_key": options.prompt_cache_key,
        "safety_identifier": options.safety_identifier,
        "verbosity": options.verbosity,
    }
    body.update({key: value for key, value in plain.items() if value is not None})
    return body


def _tool(spec: ToolSpec) -> dict[str, Any]:
    function: dict[str, Any] = {
        "name": spec.name,
        "description": spec.description,
        "parameters": strict_json_schema(spec.parameters) if spec.strict else spec.parameters,
    }
    if spec.strict is not None:
        function["strict"] = spec.strict
    return {"type": "function", "function": function}


def _messages(
    request: LLMRequest, model: str, system_role: str, provider: str
) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for message in request.messages:
        if message.role == "system":
            out.append({"role": system_role, "content": message.text})
            continue
        # Tool results may sit in a tool message or (Anthropic style) a user message.
        for part in message.parts:
            if isinstance(part, ToolResultPart):
                out.append({"role": "tool", "tool_call_id": part.call_id, "content": part.text})
        if message.role == "assistant":
            if (assistant := _assistant(message)) is not None:
                out.append(assistant)
            continue
        others = [p for p in message.parts if not isinstance(p, ToolResultPart)]
        if others:
            out.append({"role": "user", "content": _user(others, model, provider)})
    return out


def _assistant(message: ChatMessage) -> dict[str, Any] | None:
    # Chat Completions takes no reasoning back: reasoning parts are left out, by design.
    text = "".join(p.text for p in message.parts if isinstance(p, TextPart))
    calls = [
        {
            "type": "function",
            "id": call.id,
            "function": {"name": call.name, "arguments": call.arguments_json},
        }
        for call in message.tool_calls
    ]
    if not text and not calls:
        return None
    out: dict[str, Any] = {"role": "assistant"}
    if text:
        out["content"] = text
    if calls:
        out["tool_calls"] = calls
    return out


def _user(parts: Sequence[Part], model: str, provider: str) -> str | list[dict[str, Any]]:
    content: list[dict[str, Any]] = []
    for part in parts:
        if isinstance(part, TextPart):
            content.append({"type": "text", "text": part.text})
        elif isinstance(part, ImagePart):
            content.append({"type": "image_url", "image_url": {"url": data_url(part)}})
        elif isinstance(part, FilePart):
            content.append(_file(part, model, provider))
        elif isinstance(part, ToolCallPart):
            raise config_error(
                "a user message cannot hold a ToolCallPart; put tool calls in the "
                "assistant message that made them",
                provider,
                model,
            )
    if len(content) == 1 and content[0]["type"] == "text":
        return str(content[0]["text"])  # plain text, as every compatible server takes it
    return content


def _file(part: FilePart, model: str, provider: str) -> dict[str, Any]:
    if part.data is None:
        raise config_error(
            "Chat Completions takes files as bytes only, not by URL: pass "
            "FilePart(data=..., media_type=...), or use OpenAIOptions(api='responses'), "
            "which takes file URLs",
            provider,
            model,
        )
    audio = _AUDIO_FORMATS.get(part.media_type or "")
    if audio is not None:
        return {"type": "input_audio", "input_audio": {"data": part.base64(), "format": audio}}
    return {"type": "file", "file": {"filename": part.name or "file", "file_data": data_url(part)}}


# -- the answer back --------------------------------------------------------------------------


def _finish(raw: str | None, refused: bool) -> Finish:
    if refused and raw in (None, "stop"):
        return Finish(reason="content_filter", raw=raw)  # the model declined: say so
    if raw is None:
        return Finish(reason="stop")
    return Finish(reason=_FINISH.get(raw, "other"), raw=raw)


def _usage(usage: dict[str, Any] | None) -> Usage:
    """Usage from its JSON; a count the server did not report stays None."""
    if not usage:
        return Usage()
    prompt = usage.get("prompt_tokens_details") or {}
    completion = usage.get("completion_tokens_details") or {}
    return Usage(
        input_tokens=usage.get("prompt_tokens"),
        output_tokens=usage.get("completion_tokens"),
        cache_read_tokens=prompt.get("cached_tokens"),
        cache_write_tokens=prompt.get("cache_write_tokens"),
        reasoning_tokens=completion.get("reasoning_tokens"),
    )


def _reasoning_text(fields: dict[str, Any]) -> str | None:
    for name in _REASONING_FIELDS:
        value = fields.get(name)
        if isinstance(value, str) and value:
            return value
    return None


def chat_answer_items(completion: dict[str, Any]) -> list[StreamItem]:
    """A whole completion (its JSON) as the items its stream would have carried; the
    `Finish` only if it says why it ended (``choices[0].finish_reason``)."""
    items: list[StreamItem] = [
        ResponseMeta(model=completion.get("model"), response_id=completion.get("id"))
    ]
    raw_finish: str | None = None
    refused = False
    if choices := completion.get("choices"):
        choice = choices[0]
        message, raw_finish = choice.get("message") or {}, choice.get("finish_reason")
        # Keys as in a stream: reasoning, text, refusal; tool calls by their index.
        if (reasoning := _reasoning_text(message)) is not None:
            items.append(ReasoningDelta(key="reasoning", text=reasoning))
        if content := message.get("content"):
            items.append(TextDelta(key="text", text=content))
        if refusal := message.get("refusal"):
            refused = True
            items.append(TextDelta(key="refusal", text=refusal))
        for index, call in enumerate(message.get("tool_calls") or ()):
            if call.get("type", "function") == "function":
                function = call["function"]
                items.append(
                    ToolCallDelta(
                        key=index,
                        id=call["id"],
                        name=function["name"],
                        arguments=function.get("arguments") or "",
                    )
                )
    items.append(UsageUpdate(usage=_usage(completion.get("usage"))))
    if raw_finish:
        items.append(_finish(raw_finish, refused))
    return items


class ChatEvents:
    """Reads a Chat stream chunk by chunk (`items`); `end` gives the `Finish` once the end
    marker (a chunk with a ``finish_reason``) arrived, else nothing: a stream cut before it
    is reported incomplete, not whole."""

    def __init__(self) -> None:
        self._raw_finish: str | None = None
        self._refused = False
        self._meta = False

    def items(self, chunk: dict[str, Any]) -> list[StreamItem]:
        out: list[StreamItem] = []
        if not self._meta:
            self._meta = True
            out.append(ResponseMeta(model=chunk.get("model"), response_id=chunk.get("id")))
        if chunk.get("usage") is not None:  # the last chunk, with choices: []
            out.append(UsageUpdate(usage=_usage(chunk["usage"])))
        choices = chunk.get("choices")
        if not choices:
            return out
        choice = choices[0]
        delta = choice.get("delta") or {}
        self._raw_finish = choice.get("finish_reason") or self._raw_finish
        if (reasoning := _reasoning_text(delta)) is not None:
            out.append(ReasoningDelta(key="reasoning", text=reasoning))
        if content := delta.get("content"):
            out.append(TextDelta(key="text", text=content))
        if refusal := delta.get("refusal"):
            self._refused = True
            out.append(TextDelta(key="refusal", text=refusal))
        for call in delta.get("tool_calls") or ():
            function = call.get("function") or {}
            out.append(
                ToolCallDelta(
                    key=call["index"],
                    id=call.get("id"),
                    name=function.get("name"),
                    arguments=function.get("arguments") or "",
                )
            )
        return out

    def end(self) -> list[StreamItem]:
        if self._raw_finish is None:
            return []
        return [_finish(self._raw_finish, self._refused)]
