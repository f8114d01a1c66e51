"""Google Gemini (Developer API) adapter, over the official ``google-genai`` SDK.

Requests go to ``generateContent`` / ``streamGenerateContent`` of the ``v1beta`` API (the
version with structured output, thinking and function calling). The SDK talks through an
httpx client this adapter owns (or the one passed in), so it never tries aiohttp, and its
own retries are off: llmgine's retry wrapper decides, and retries must not stack.

How the unified contract maps onto Gemini:

* system messages become ``system_instruction``; assistant turns are role ``model``; tool
  results are ``function_response`` parts of a user turn (``{"result": ...}``, or
  ``{"error": ...}`` when the tool failed).
* Thought signatures (opaque bytes in the SDK) are kept as standard base64 text in
  ``signature`` and decoded when sent back. A signature on a function call lives on its
  `ToolCallPart`; one on a thought on its `ReasoningPart`. Gemini also signs plain text
  parts: such a signature is kept in an empty `ReasoningPart` placed right after the text
  (``provider_data={"gemini": "text_signature"}``) and re-attached to that text next turn.
* ``Reasoning(effort=...)`` becomes a thinking budget: minimal 512, low 1024, medium 8192,
  high 24576 tokens (``budget_tokens`` wins when given; Gemini 3 models take
  ``GeminiOptions(thinking_level=...)`` instead, and no budget is derived then).
* Only the first candidate is read (``candidate_count`` > 1 still returns one answer), and
  response parts llmgine has no type for (inline images, executable code) are skipped.
"""

from __future__ import annotations

import base64
import json
import math
import mimetypes
import os
from collections.abc import AsyncGenerator, AsyncIterator, Iterable, Iterator
from typing import TYPE_CHECKING, Any, cast

from pydantic import Field

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
    find_api_key,
    import_sdk,
    read_events,
    reading,
    whole_answer,
)
from llmgine.llm._request import LLMRequest, ProviderOptions, ToolChoice, ToolName, ToolSpec
from llmgine.llm._response import FinishReason, LLMResponse, Usage
from llmgine.llm._schema_rules import gemini_json_schema
from llmgine.llm._send import transport_failure
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
    from google.genai import Client
    from google.genai import types as gt

__all__ = ["GeminiOptions", "GeminiProvider", "gemini_json_schema"]

_API_VERSION = "v1beta"
_DEFAULT_TIMEOUT = 600.0  # seconds; the SDK sends no timeout at all unless given one
# Reasoning effort as a thinking budget (tokens), for models that take a budget (2.5).
_EFFORT_BUDGETS = {"minimal": 512, "low": 1024, "medium": 8192, "high": 24576}
# Marks the empty ReasoningPart that carries the thought signature of the text before it.
_TEXT_SIGNATURE = {"gemini": "text_signature"}

_FILTERED = frozenset(
    [
        "SAFETY",
        "RECITATION",
        "BLOCKLIST",
        "PROHIBITED_CONTENT",
        "SPII",
        "IMAGE_SAFETY",
        "IMAGE_PROHIBITED_CONTENT",
        "IMAGE_RECITATION",
        "MODEL_ARMOR",
    ]
)
_FAILED = frozenset(
    [
        "MALFORMED_FUNCTION_CALL",
        "MALFORMED_RESPONSE",
        "UNEXPECTED_TOOL_CALL",
        "MISSING_THOUGHT_SIGNATURE",
    ]
)
_DEFAULT_BASE_URL = "https://generativelanguage.googleapis.com/"


class GeminiOptions(ProviderOptions):
    """Gemini-only request settings: ``LLMRequest(options=[GeminiOptions(top_k=40)])``.

    ``thinking_budget`` / ``include_thoughts`` override what ``LLMRequest.reasoning``
    implies; ``thinking_level`` ("low", "high", ...) is for Gemini 3 models.
    ``safety_settings`` are ``{"category": ..., "threshold": ...}`` dicts.
    ``allowed_function_names`` restricts which tools may be called (forces mode ANY).
    ``extra_body`` is merged into the JSON request body as it is.
    """

    provider: str = "gemini"
    top_k: int | None = None
    candidate_count: int | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    thinking_budget: int | None = None
    thinking_level: str | None = None
    include_thoughts: bool | None = None
    safety_settings: list[dict[str, str]] = Field(default_factory=list)
    response_modalities: list[str] | None = None
    cached_content: str | None = None
    allowed_function_names: list[str] | None = None


def _b64(data: bytes | None) -> str | None:
    return None if data is None else base64.b64encode(data).decode()


def _unb64(text: str | None) -> bytes | None:
    # Accept both alphabets: the API answers in standard base64, the SDK echoes url-safe.
    if not text:
        return None
    text = text.replace("-", "+").replace("_", "/")
    return base64.b64decode(text + "=" * (-len(text) % 4))


def _ms(seconds: float) -> int:
    return max(1, math.ceil(seconds * 1000))  # HttpOptions.timeout is in milliseconds


class GeminiProvider(Provider):
    """Gemini models through ``google-genai``; reach it as ``get_model("gemini:...")``.

    The key is ``api_key`` or ``GEMINI_API_KEY`` / ``GOOGLE_API_KEY``. ``http_client`` (an
    ``httpx.AsyncClient``) is used for every request, e.g. one replaying recordings.
    """

    name = "gemini"
    label = "Gemini"
    key_variables = ("GEMINI_API_KEY", "GOOGLE_API_KEY")

    def __init__(
        self,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        timeout: float | None = None,
        http_client: httpx.AsyncClient | httpx2.AsyncClient | None = None,
    ) -> None:
        import_sdk("google.genai", "gemini")  # fail now, naming the extra, if missing
        self._api_key, self.key_source = find_api_key(self.name, api_key, self.key_variables)
        # The SDK reads GOOGLE_GEMINI_BASE_URL itself; read here too so spans and errors
        # name the address actually called.
        self._base_url = base_url or os.environ.get("GOOGLE_GEMINI_BASE_URL") or None
        self._timeout = timeout or _DEFAULT_TIMEOUT
        self._http_client = http_client
        self._own_http: httpx2.AsyncClient | None = None
        self._sdk: Client | None = None

    @property
    def base_url(self) -> str:
        return self._base_url or _DEFAULT_BASE_URL

    async def aclose(self) -> None:
        """Close the connections this provider opened (a client passed in stays open)."""
        if self._sdk is not None:
            await self._sdk.aio.aclose()
        if self._own_http is not None:
            await self._own_http.aclose()

    def _client(self) -> Client:
        # Built on first use: constructing the SDK client loads TLS settings.
        if self._sdk is None:
            # The SDK's own HTTP library (httpx2) unless the caller brought a client.
            import httpx2
            from google import genai
            from google.genai import types

            if self._http_client is None:  # ours to close (the SDK closes only its own)
                self._own_http = httpx2.AsyncClient(timeout=self._timeout)
            http = self._http_client or self._own_http
            self._sdk = genai.Client(
                vertexai=False,
                api_key=self._api_key,
                http_options=types.HttpOptions(
                    base_url=self._base_url,
                    api_version=_API_VERSION,
                    timeout=_ms(self._timeout),
                    retry_options=types.HttpRetryOptions(attempts=1),
                    httpx_async_client=http,
                ),
            )
        return self._sdk

    # -- calls --------------------------------------------------------------------------

    async def _generate(self, request: LLMRequest, model: str) -> LLMResponse:
        from google.genai import errors

        contents, config = self._request_out(request)
        # Only an answer is parsed as JSON: these can only mean a body that is not.
        with reading(None, errors=(json.JSONDecodeError, errors.UnknownApiResponseError)):
            response = await self._client().aio.models.generate_content(
                model=model, contents=contents, config=config
            )
        # What the SDK read, as JSON: kept as `raw`, and quoted if it is not an answer.
        raw = response.model_dump(
            mode="json", exclude_none=True, exclude={"sdk_http_response"}, warnings=False
        )
        with reading(raw):
            return self._response(response, raw, model)

    def _response(
        self, response: gt.GenerateContentResponse, raw: dict[str, Any], model: str
    ) -> LLMResponse:
        reader = _Reader()
        candidate = response.candidates[0] if response.candidates else None
        sdk_parts = candidate.content.parts if candidate and candidate.content else None
        # The same reader as a stream, so both calls agree on where parts begin and end.
        scratch = StreamAssembler(self.name, model)
        for delta in reader.read(sdk_parts or []):
            scratch.add(delta)
        return StreamAssembler(self.name, model).whole(
            scratch.parts(),
            usage=_usage(response.usage_metadata),
            finish=whole_answer(_finish(candidate, response, reader.calls > 0), "finishReason"),
            model=response.model_version,
            response_id=response.response_id,
            raw=raw,
        )

    async def _stream(self, request: LLMRequest, model: str) -> AsyncIterator[StreamItem]:
        contents, config = self._request_out(request)
        chunks = await self._client().aio.models.generate_content_stream(
            model=model, contents=contents, config=config
        )
        state = _ChunkState()
        try:
            async for chunk in read_events(chunks):
                with reading(chunk):
                    items = state.items(chunk)
                for item in items:
                    yield item
        finally:
            # Frees the connection when the reader stops early or the stream fails.
            await cast("AsyncGenerator[Any, None]", chunks).aclose()
        # The end marker is a chunk with a finish reason (or a blocked prompt); sent last,
        # since only now is it known whether the answer held function calls. A stream cut
        # before it sends no Finish, and is reported incomplete.
        with reading(state.final):
            done = state.finish()
        if done is not None:
            yield done

    # -- request out --------------------------------------------------------------------

    def _request_out(
        self, request: LLMRequest
    ) -> tuple[list[gt.Content], gt.GenerateContentConfig]:
        from google.genai import types

        opts: GeminiOptions = request.options_for(self.name, GeminiOptions)
        http: types.HttpOptions | None = None
        if request.timeout is not None or opts.extra_body:
            http = types.HttpOptions(
                timeout=_ms(request.timeout) if request.timeout is not None else None,
                extra_body=dict(opts.extra_body) or None,
            )
        response_format = request.response_format
        config = types.GenerateContentConfig(
            system_instruction=request.system_text,
            temperature=request.temperature,
            top_p=request.top_p,
            top_k=opts.top_k,
            max_output_tokens=request.max_tokens,
            stop_sequences=request.stop,
            seed=request.seed,
            candidate_count=opts.candidate_count,
            presence_penalty=opts.presence_penalty,
            frequency_penalty=opts.frequency_penalty,
            response_modalities=opts.response_modalities,
            cached_content=opts.cached_content,
            safety_settings=[types.SafetySetting.model_validate(s) for s in opts.safety_settings]
            or None,
            response_mime_type="application/json" if response_format else None,
            response_json_schema=response_format.json_schema if response_format else None,
            tools=_tools(request.tools),
            tool_config=_tool_config(request.tool_choice, opts.allowed_function_names),
            thinking_config=_thinking(request, opts),
            # We map tool calls ourselves; the SDK must never run or answer them.
            automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True),
            http_options=http,
        )
        return _contents(request.messages), config

    # -- errors -------------------------------------------------------------------------

    def _failure(self, exc: Exception) -> Failure | None:
        from google.genai import errors

        if isinstance(exc, errors.APIError):
            details = exc.details if isinstance(exc.details, dict) else {}
            error = details.get("error", details)
            reasons = [
                str(d["reason"])
                for d in (error.get("details") or [] if isinstance(error, dict) else [])
                if isinstance(d, dict) and d.get("reason")
            ]
            return Failure(
                status=exc.code or None,
                codes=tuple(c for c in (exc.status, *reasons) if c),
                message=exc.message or str(exc),
                headers=getattr(exc.response, "headers", None),
                body=exc.details,
            )
        return transport_failure(exc)


class _ChunkState:
    """What a Gemini stream has said so far; `items` maps one chunk."""

    def __init__(self) -> None:
        self.reader = _Reader()
        self.meta: ResponseMeta | None = None
        self.final: gt.GenerateContentResponse | None = None  # the chunk saying why it ended

    def items(self, chunk: gt.GenerateContentResponse) -> list[StreamItem]:
        out: list[StreamItem] = []
        now = ResponseMeta(model=chunk.model_version, response_id=chunk.response_id)
        if now != self.meta and (now.model or now.response_id):
            self.meta = now
            out.append(now)
        candidate = chunk.candidates[0] if chunk.candidates else None
        if candidate is not None and candidate.content and candidate.content.parts:
            out.extend(self.reader.read(candidate.content.parts))
        if chunk.usage_metadata is not None:
            out.append(UsageUpdate(usage=_usage(chunk.usage_metadata)))
        blocked = chunk.prompt_feedback and chunk.prompt_feedback.block_reason
        if (candidate is not None and candidate.finish_reason) or blocked:
            self.final = chunk
        return out

    def finish(self) -> Finish | None:
        if self.final is None:
            return None
        last = self.final.candidates[0] if self.final.candidates else None
        return _finish(last, self.final, self.reader.calls > 0)


# -- mapping helpers (SDK types stay inside this module) -----------------------------------


def _contents(messages: list[ChatMessage]) -> list[gt.Content]:
    from google.genai import types

    names: dict[str, str] = {}  # tool call id -> tool name, for results that omit the name
    contents: list[types.Content] = []
    for message in messages:
        if message.role == "system":
            continue  # sent as system_instruction
        parts: list[types.Part] = []
        for part in message.parts:
            _part_out(part, parts, names)
        if parts:  # Gemini rejects a turn without parts (e.g. only foreign reasoning)
            role = "model" if message.role == "assistant" else "user"
            contents.append(types.Content(role=role, parts=parts))
    return contents


def _part_out(part: Part, out: list[gt.Part], names: dict[str, str]) -> None:
    from google.genai import types

    if isinstance(part, TextPart):
        out.append(types.Part(text=part.text))
    elif isinstance(part, ImagePart | FilePart):
        mime = part.media_type or (mimetypes.guess_type(part.url or "")[0])
        if part.data is not None:
            out.append(types.Part(inline_data=types.Blob(data=part.data, mime_type=mime)))
        else:
            out.append(types.Part(file_data=types.FileData(file_uri=part.url, mime_type=mime)))
    elif isinstance(part, ReasoningPart):
        if part.provider != "gemini":
            return  # another provider's reasoning means nothing to Gemini
        signature = _unb64(part.signature)
        if part.provider_data == _TEXT_SIGNATURE:
            last = out[-1] if out else None
            if (
                last is not None
                and last.text is not None
                and not last.thought
                and last.thought_signature is None
            ):
                last.thought_signature = signature
                return
            out.append(types.Part(text="", thought_signature=signature))
        elif part.text or signature:
            out.append(types.Part(text=part.text, thought=True, thought_signature=signature))
    elif isinstance(part, ToolCallPart):
        names[part.id] = part.name
        signature = _unb64(part.signature) if part.provider == "gemini" else None
        call = types.FunctionCall(id=part.id, name=part.name, args=part.arguments)
        out.append(types.Part(function_call=call, thought_signature=signature))
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
        result = types.FunctionResponse(id=part.call_id, name=name, response=response)
        out.append(types.Part(function_response=result))


def _tools(tools: list[ToolSpec]) -> list[gt.Tool] | None:
    from google.genai import types

    if not tools:
        return None
    declarations = [
        types.FunctionDeclaration(
            name=tool.name,
            description=tool.description,
            parameters_json_schema=gemini_json_schema(tool.parameters),
        )
        for tool in tools
    ]
    return [types.Tool(function_declarations=declarations)]


def _tool_config(choice: ToolChoice | None, allowed: list[str] | None) -> gt.ToolConfig | None:
    from google.genai import types

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
    calling = types.FunctionCallingConfig(
        mode=types.FunctionCallingConfigMode(mode), allowed_function_names=allowed or None
    )
    return types.ToolConfig(function_calling_config=calling)


def _thinking(request: LLMRequest, opts: GeminiOptions) -> gt.ThinkingConfig | None:
    from google.genai import types

    budget, include, level = opts.thinking_budget, opts.include_thoughts, opts.thinking_level
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
    return types.ThinkingConfig(
        thinking_budget=budget,
        include_thoughts=include,
        thinking_level=types.ThinkingLevel(level.upper()) if level else None,
    )


# -- response back -----------------------------------------------------------------------


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

    def read(
        self, parts: Iterable[gt.Part]
    ) -> Iterator[TextDelta | ReasoningDelta | ToolCallDelta]:
        for part in parts:
            signature = _b64(part.thought_signature)
            if part.function_call is not None:
                call = part.function_call
                key = self._key_for("call")
                call_id = call.id or f"call_{self.calls}"
                self.calls += 1
                yield ToolCallDelta(
                    key=key,
                    id=call_id,
                    name=call.name or "",
                    arguments=json.dumps(call.args or {}, ensure_ascii=False),
                    signature=signature,
                )
            elif part.thought and part.text is not None:
                key = self._key_for("thought")
                yield ReasoningDelta(key=key, text=part.text, signature=signature)
            elif part.text is not None or signature is not None:
                key = self._key_for("text")
                yield TextDelta(key=key, text=part.text or "")
                if signature is not None:
                    # Keyed by the text it signs, so it lands right after that text.
                    yield ReasoningDelta(
                        key=("signature", key), signature=signature, provider_data=_TEXT_SIGNATURE
                    )


def _usage(meta: gt.GenerateContentResponseUsageMetadata | None) -> Usage:
    if meta is None:
        return Usage()
    thoughts = meta.thoughts_token_count
    outputs = [n for n in (meta.candidates_token_count, thoughts) if n is not None]
    return Usage(
        input_tokens=meta.prompt_token_count,  # cached tokens included; None if unsaid
        output_tokens=sum(outputs) if outputs else None,
        cache_read_tokens=meta.cached_content_token_count,
        reasoning_tokens=thoughts,
    )


def _finish(
    candidate: gt.Candidate | None, response: gt.GenerateContentResponse, calls: bool
) -> Finish | None:
    if candidate is not None and candidate.finish_reason is not None:
        raw = str(candidate.finish_reason.value)
        reason: FinishReason = "other"
        if raw == "STOP":
            reason = "tool_calls" if calls else "stop"  # Gemini says STOP after calls too
        elif raw == "MAX_TOKENS":
            reason = "length"
        elif raw in _FILTERED:
            reason = "content_filter"
        elif raw in _FAILED:
            reason = "error"
        return Finish(reason=reason, raw=raw)
    feedback = response.prompt_feedback
    if feedback is not None and feedback.block_reason is not None:
        return Finish(reason="content_filter", raw=str(feedback.block_reason.value))
    return None
