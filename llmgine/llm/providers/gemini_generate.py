"""Gemini's ``generateContent`` as a translator: an `LLMRequest` to the wire JSON of
``POST models/{model}:generateContent`` (and ``:streamGenerateContent?alt=sse``), and the
answer's JSON (one streamed chunk, or a whole response: both are a
``GenerateContentResponse``) to `StreamItem`s. Plain functions of JSON: no client, no SDK
type. The mapping itself is described in ``providers/gemini.py``.
"""

from __future__ import annotations

import base64
import json
import mimetypes
from collections.abc import Iterable, Iterator
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
from llmgine.llm._request import LLMRequest, ToolChoice, ToolName, ToolSpec
from llmgine.llm._response import FinishReason, Usage
from llmgine.llm._schema_rules import gemini_json_schema
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
    from llmgine.llm.providers.gemini import GeminiOptions

__all__ = ["GeminiEvents", "gemini_answer_items", "gemini_body", "gemini_path"]

# Reasoning effort as a thinking budget (tokens), for models that take a budget (2.5).
_EFFORT_BUDGETS = {"minimal": 512, "low": 1024, "medium": 8192, "high": 24576}
# Marks the empty ReasoningPart that carries the thought signature of the text before it.
TEXT_SIGNATURE = {"gemini": "text_signature"}

_FILTERED = frozenset(
    {
        "SAFETY",
        "RECITATION",
        "BLOCKLIST",
        "PROHIBITED_CONTENT",
        "SPII",
        "IMAGE_SAFETY",
        "IMAGE_PROHIBITED_CONTENT",
        "IMAGE_RECITATION",
        "MODEL_ARMOR",
    }
)
_FAILED = frozenset(
    {
        "MALFORMED_FUNCTION_CALL",
        "MALFORMED_RESPONSE",
        "UNEXPECTED_TOOL_CALL",
        "MISSING_THOUGHT_SIGNATURE",
    }
)


def gemini_path(model: str, *, stream: bool) -> str:
    """The path of the call, relative to ``{base_url}/v1beta/``."""
    name = model if model.startswith(("models/", "tunedModels/")) else f"models/{model}"
    return f"{name}:streamGenerateContent?alt=sse" if stream else f"{name}:generateContent"


# -- signatures: standard base64 in llmgine, what the API answers ---------------------------


def _bytes(text: str | None) -> bytes | None:
    # Accept both alphabets: the API answers in standard base64, the SDK echoes url-safe.
    if not text:
        return None
    text = text.replace("-", "+").replace("_", "/")
    return base64.b64decode(text + "=" * (-len(text) % 4))


def _standard(text: str | None) -> str | None:
    data = _bytes(text)
    return None if data is None else base64.b64encode(data).decode()


def _wire(data: bytes | None) -> str | None:
    # Bytes go out url-safe, padded: what the SDK sends (the API reads both).
    return None if data is None else base64.urlsafe_b64encode(data).decode()


# -- the request out ----------------------------------------------------------------------------


def gemini_body(request: LLMRequest, options: GeminiOptions) -> dict[str, Any]:
    """The JSON body of a ``generateContent`` call (``extra_body`` not merged: the sender
    does, as the SDK's ``HttpOptions.extra_body``)."""
    body: dict[str, Any] = {"contents": _contents(request.messages)}
    if (system := request.system_text) is not None:
        body["systemInstruction"] = {"parts": [{"text": system}], "role": "user"}
    if options.safety_settings:
        body["safetySettings"] = [dict(setting) for setting in options.safety_settings]
    if request.tools:
        body["tools"] = [{"functionDeclarations": [_declaration(t) for t in request.tools]}]
    if (
        tool_config := _tool_config(request.tool_choice, options.allowed_function_names)
    ) is not None:
        body["toolConfig"] = tool_config
    if options.cached_content is not None:
        body["cachedContent"] = options.cached_content
    fmt = request.response_format
    generation = {
        "temperature": request.temperature,
        "topP": request.top_p,
        "topK": options.top_k,
        "maxOutputTokens": request.max_tokens,
        "stopSequences": request.stop,
        "seed": request.seed,
        "candidateCount": options.candidate_count,
        "presencePenalty": options.presence_penalty,
        "frequencyPenalty": options.frequency_penalty,
        "responseModalities": options.response_modalities,
        "responseMimeType": "application/json" if fmt else None,
        "responseJsonSchema": fmt.json_schema if fmt else None,
        "thinkingConfig": _thinking(request, options),
    }
    body["generationConfig"] = {k: v for k, v in generation.items() if v is not None}
    return body


def _contents(messages: list[ChatMessage]) -> list[dict[str, Any]]:
    names: dict[str, str] = {}  # tool call id -> tool name, for results that omit the name
    contents: list[dict[str, Any]] = []
    for message in messages:
        if message.role == "system":
            continue  # sent as systemInstruction
        parts: list[dict[str, Any]] = []
        for part in message.parts:
            _part_out(part, parts, names)
        if parts:  # Gemini rejects a turn without parts (e.g. only foreign reasoning)
            role = "model" if message.role == "assistant" else "user"
            contents.append({"parts": parts, "role": role})
    return contents


def _signed(out: dict[str, Any], signature: str | None) -> dict[str, Any]:
    if (wire := _wire(_bytes(signature))) is not None:
        out["thoughtSignature"] = wire
    return out


def _part_out(part: Part, out: list[dict[str, Any]], names: dict[str, str]) -> None:
    if isinstance(part, TextPart):
        out.append({"text": part.text})
    elif isinstance(part, ImagePart | FilePart):
        mime = part.media_type or (mimetypes.guess_type(part.url or "")[0])
        if part.data is not None:
            blob: dict[str, Any] = {"data": _wire(part.data)}
            out.append({"inlineData": blob | ({"mimeType": mime} if mime else {})})
        else:
            file: dict[str, Any] = {"fileUri": part.url}
            out.append({"fileData": file | ({"mimeType": mime} if mime else {})})
    elif isinstance(part, ReasoningPart):
        if part.provider != "gemini":
            return  # another provider's reasoning means nothing to Gemini
        if part.provider_data == TEXT_SIGNATURE:
            last = out[-1] if out else None
            if (
                last is not None
                and "text" in last
                and not last.get("thought")
                and "thoughtSignature" not in last
            ):
                _signed(last, part.signature)
                return
            out.append(_signed({"text": ""}, part.signature))
        elif part.text or part.signature:
            out.append(_signed({"text": part.text, "thought": True}, part.signature))
    elif isinstance(part, ToolCallPart):
        names[part.id] = part.name
        call = {"functionCall": {"id": part.id, "name": part.name, "args": part.arguments}}
        out.append(_signed(call, part.signature if part.provider == "gemini" else None))
    elif isinstance(part, ToolResultPart):
        name = part.name or names.get(part.call_id)
        if name is None:
            raise LLMConfigurationError(
                f"Gemini needs the tool name of every tool result, and result "
                f"{part.call_id!r} has none: set ToolResultPart(name=...), or keep the "
                f"assistant message with that tool call earlier in the conversation",
                provider="gemini",
            )
        response = {"error": part.content} if part.is_error else {"result": part.content}
        out.append({"functionResponse": {"id": part.call_id, "name": name, "response": response}})


def _declaration(tool: ToolSpec) -> dict[str, Any]:
    out: dict[str, Any] = {"name": tool.name}
    if tool.description is not None:
        out["description"] = tool.description
    out["parametersJsonSchema"] = gemini_json_schema(tool.parameters)
    return out


def _tool_config(choice: ToolChoice | None, allowed: list[str] | None) -> dict[str, Any] | None:
    if isinstance(choice, ToolName):
        mode, allowed = "ANY", [choice.name]
    elif choice is None:
        if not allowed:
            return None
        mode = "ANY"
    else:
        mode = {"auto": "AUTO", "none": "NONE", "required": "ANY"}[choice]
        if allowed and mode != "ANY":
            raise LLMConfigurationError(
                f"GeminiOptions(allowed_function_names=...) forces a tool call, which "
                f"contradicts tool_choice={choice!r}: use tool_choice='required' or drop one",
                provider="gemini",
            )
    calling: dict[str, Any] = {"mode": mode}
    if allowed:
        calling["allowedFunctionNames"] = allowed
    return {"functionCallingConfig": calling}


def _thinking(request: LLMRequest, options: GeminiOptions) -> dict[str, Any] | None:
    budget, include, level = (
        options.thinking_budget,
        options.include_thoughts,
        options.thinking_level,
    )
    reasoning = request.reasoning
    if reasoning is not None:
        if budget is None and level is None:
            budget = reasoning.budget_tokens
            if budget is None and reasoning.effort is not None:
                budget = _EFFORT_BUDGETS[reasoning.effort]
        if include is None:
            include = reasoning.include_thoughts
    if budget is None and include is None and level is None:
        return None
    config = {
        "thinkingBudget": budget,
        "includeThoughts": include,
        "thinkingLevel": level.upper() if level else None,
    }
    return {k: v for k, v in config.items() if v is not None}


# -- the answer back ----------------------------------------------------------------------------


class _Reader:
    """Turns Gemini parts, chunk after chunk, into keyed content deltas.

    Consecutive text (or thought) parts share one key, so streamed chunks merge into one
    part; a new key starts when the kind changes, and for every function call (Gemini sends
    each one whole). Calls without an API id get ``call_<n>``, n counting this response's
    calls, so a stream and the same response unstreamed get the same ids.
    """

    def __init__(self) -> None:
        self._key = -1
        self._kind: str | None = None
        self.calls = 0

    def _key_for(self, kind: str) -> int:
        if kind != self._kind or kind == "call":
            self._key += 1
            self._kind = kind
        return self._key

    def read(self, parts: Iterable[dict[str, Any]]) -> Iterator[StreamItem]:
        for part in parts:
            signature = _standard(part.get("thoughtSignature"))
            text = part.get("text")
            if (call := part.get("functionCall")) is not None:
                key = self._key_for("call")
                call_id = call.get("id") or f"call_{self.calls}"
                self.calls += 1
                yield ToolCallDelta(
                    key=key,
                    id=call_id,
                    name=call.get("name") or "",
                    arguments=json.dumps(call.get("args") or {}, ensure_ascii=False),
                    signature=signature,
                )
            elif part.get("thought") and text is not None:
                key = self._key_for("thought")
                yield ReasoningDelta(key=key, text=text, signature=signature)
            elif text is not None or signature is not None:
                key = self._key_for("text")
                yield TextDelta(key=key, text=text or "")
                if signature is not None:
                    # Keyed by the text it signs, so it lands right after that text.
                    yield ReasoningDelta(
                        key=("signature", key), signature=signature, provider_data=TEXT_SIGNATURE
                    )


def _usage(meta: dict[str, Any] | None) -> Usage:
    if meta is None:
        return Usage()
    thoughts = meta.get("thoughtsTokenCount")
    outputs = [n for n in (meta.get("candidatesTokenCount"), thoughts) if n is not None]
    return Usage(
        input_tokens=meta.get("promptTokenCount"),  # cached tokens included; None if unsaid
        output_tokens=sum(outputs) if outputs else None,
        cache_read_tokens=meta.get("cachedContentTokenCount"),
        reasoning_tokens=thoughts,
    )


def _finish(response: dict[str, Any], calls: bool) -> Finish | None:
    candidates = response.get("candidates")
    raw = candidates[0].get("finishReason") if candidates else None
    if raw is not None:
        reason: FinishReason = "other"
        if raw == "STOP":
            reason = "tool_calls" if calls else "stop"  # Gemini says STOP after calls too
        elif raw == "MAX_TOKENS":
            reason = "length"
        elif raw in _FILTERED:
            reason = "content_filter"
        elif raw in _FAILED:
            reason = "error"
        return Finish(reason=reason, raw=str(raw))
    blocked = (response.get("promptFeedback") or {}).get("blockReason")
    if blocked is not None:
        return Finish(reason="content_filter", raw=str(blocked))
    return None


class GeminiEvents:
    """Reads a Gemini stream chunk by chunk (`items`); `end` gives the `Finish` once a
    chunk said why the answer ended (a finish reason, or a blocked prompt). It is sent last,
    since only then is it known whether the answer held function calls; a stream cut before
    it sends none, and is reported incomplete."""

    def __init__(self) -> None:
        self._reader = _Reader()
        self._meta: ResponseMeta | None = None
        self._final: dict[str, Any] | None = None

    def items(self, chunk: dict[str, Any]) -> list[StreamItem]:
        out: list[StreamItem] = []
        now = ResponseMeta(model=chunk.get("modelVersion"), response_id=chunk.get("responseId"))
        if now != self._meta and (now.model or now.response_id):
            self._meta = now
            out.append(now)
        candidates = chunk.get("candidates")
        candidate = candidates[0] if candidates else None
        if candidate is not None:
            out.extend(self._reader.read((candidate.get("content") or {}).get("parts") or ()))
        if (usage := chunk.get("usageMetadata")) is not None:
            out.append(UsageUpdate(usage=_usage(usage)))
        blocked = (chunk.get("promptFeedback") or {}).get("blockReason")
        if (candidate is not None and candidate.get("finishReason")) or blocked:
            self._final = chunk
        return out

    def end(self) -> list[StreamItem]:
        if self._final is None:
            return []
        finish = _finish(self._final, self._reader.calls > 0)
        return [finish] if finish is not None else []


def gemini_answer_items(response: dict[str, Any]) -> list[StreamItem]:
    """A whole response (its JSON) as the items its stream would have carried (read by the
    same reader, so both agree on where parts begin and end)."""
    events = GeminiEvents()
    return events.items(response) + events.end()
