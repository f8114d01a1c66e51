"""The OpenAI adapter: Chat Completions and the Responses API, and OpenAI-compatible servers.

`OpenAIProvider` maps an `LLMRequest` to the official ``openai`` SDK and its answer back to
an `LLMResponse`, streamed or not; both go through the shared `StreamAssembler`, so a
streamed call and the same call without streaming give equal responses. Which endpoint a
call uses:

* ``OpenAIOptions(api="chat" | "responses")`` on the request decides for that call;
* else the provider's ``api=`` (``"chat"``, ``"responses"``), if it is not ``"auto"``;
* else (``"auto"``) the **Responses API** when the model is served only there (``*-pro``,
  ``*deep-research*``, ``*codex*``, ``computer-use*``), when the conversation carries
  OpenAI reasoning items from an earlier Responses call (so they can go back), or when a
  reasoning model (o-series, gpt-5) is asked for reasoning (``request.reasoning``) and no
  Chat-only parameter (``stop``, ``seed``, penalties) is set: only Responses returns
  reasoning summaries and the encrypted reasoning that keeps a tool loop's thinking.
  Otherwise **Chat Completions**, which every model and every compatible server speaks.

`OpenAICompatibleProvider` talks to servers with an OpenAI-style API (Ollama, vLLM, the
llama.cpp server; `COMPATIBLE_SERVERS` has their usual addresses) under their own name.

The SDK retries nothing here (``max_retries=0``): llmgine's retry wrapper does, and two
layers of retries would multiply. SDK errors are described in `_failure` and become
`llmgine.errors` errors through the one table every provider shares (`_error_table`).
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING, Any, Literal, cast

from llmgine.errors import LLMError
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
    post_json,
    read_events,
    reading,
    whole_answer,
)
from llmgine.llm._request import LLMRequest, ProviderOptions, ToolName, ToolSpec
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
from llmgine.llm.providers._openai_responses import (
    config_error,
    data_url,
    effort_for,
    is_reasoning_model,
    responses_only_model,
    responses_params,
    responses_response,
    responses_stream_items,
    strict_json_schema,
)

if TYPE_CHECKING:
    import httpx
    import httpx2
    from openai import AsyncOpenAI, AsyncStream
    from openai.types.chat import ChatCompletionChunk
    from openai.types.responses import Response, ResponseStreamEvent

__all__ = [
    "COMPATIBLE_SERVERS",
    "OpenAICompatibleProvider",
    "OpenAIOptions",
    "OpenAIProvider",
    "strict_json_schema",
]

COMPATIBLE_SERVERS: dict[str, str] = {
    "ollama": "http://localhost:11434/v1",
    "vllm": "http://localhost:8000/v1",
    "llamacpp": "http://localhost:8080/v1",
}
"""Where OpenAI-compatible servers listen by default: name -> base URL."""

Api = Literal["chat", "responses"]
_NO_KEY = "not-needed"  # what a server that needs no key is sent (the SDK wants one)
_BEARER = {"security": {"bearer_auth": True}}  # the auth `create` asks of the client


class OpenAIOptions(ProviderOptions):
    """OpenAI-only settings for one request (``LLMRequest(options=[OpenAIOptions(...)])``).

    ``api`` picks the endpoint for this call (see the module docstring for the default).
    Fields left ``None`` are not sent. Some exist on one endpoint only: ``frequency_penalty``
    and ``presence_penalty`` on Chat; ``reasoning_summary``, ``previous_response_id``,
    ``include`` and ``truncation`` on Responses; setting one on the other is an error.
    ``extra_body`` is merged into the request body verbatim (for fields the SDK lacks).
    """

    provider: str = "openai"
    api: Api | None = None
    reasoning_effort: Literal["none", "minimal", "low", "medium", "high", "xhigh"] | None = None
    reasoning_summary: Literal["auto", "concise", "detailed"] | None = None
    service_tier: Literal["auto", "default", "flex", "scale", "priority"] | None = None
    store: bool | None = None
    user: str | None = None
    logprobs: bool | None = None
    top_logprobs: int | None = None
    frequency_penalty: float | None = None
    presence_penalty: float | None = None
    metadata: dict[str, str] | None = None
    prompt_cache_key: str | None = None
    safety_identifier: str | None = None
    verbosity: Literal["low", "medium", "high"] | None = None
    system_role: Literal["system", "developer"] | None = None
    previous_response_id: str | None = None
    include: list[str] | None = None
    truncation: Literal["auto", "disabled"] | None = None


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


def _finish(raw: str | None, refused: bool) -> Finish:
    if refused and raw in (None, "stop"):
        return Finish(reason="content_filter", raw=raw)  # the model declined: say so
    if raw is None:
        return Finish(reason="stop")
    return Finish(reason=_FINISH.get(raw, "other"), raw=raw)


def _chat_usage(usage: dict[str, Any] | None) -> Usage:
    """Usage from its JSON (a streamed chunk's usage is dumped to JSON first); a count
    the server did not report stays None."""
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


def _extra_text(fields: dict[str, Any]) -> str | None:
    for name in _REASONING_FIELDS:
        value = fields.get(name)
        if isinstance(value, str) and value:
            return value
    return None


def _chat_response(assembler: StreamAssembler, completion: dict[str, Any]) -> LLMResponse:
    """A whole Chat completion (its JSON) as the response its stream would assemble to."""
    parts: list[Part] = []
    raw_finish: str | None = None
    refused = False
    if choices := completion.get("choices"):
        choice = choices[0]
        message, raw_finish = choice.get("message") or {}, choice.get("finish_reason")
        if (reasoning := _extra_text(message)) is not None:
            parts.append(ReasoningPart(text=reasoning))
        if content := message.get("content"):
            parts.append(TextPart(text=content))
        if refusal := message.get("refusal"):
            refused = True
            parts.append(TextPart(text=refusal))
        for call in message.get("tool_calls") or ():
            if call.get("type", "function") == "function":
                function = call["function"]
                parts.append(
                    ToolCallPart.from_json_arguments(
                        call["id"], function["name"], function.get("arguments") or ""
                    )
                )
    return assembler.whole(
        parts,
        usage=_chat_usage(completion.get("usage")),
        finish=whole_answer(
            _finish(raw_finish, refused) if raw_finish else None, "choices[0].finish_reason"
        ),
        model=completion.get("model"),
        response_id=completion.get("id"),
        raw=completion,
    )


class OpenAIProvider(Provider):
    """OpenAI through the official SDK: Chat Completions and the Responses API.

    Example:
        provider = OpenAIProvider()  # the key from OPENAI_API_KEY
        response = await provider.generate(LLMRequest(model="gpt-4o-mini", messages=[...]))
    """

    name = "openai"
    _max_tokens_param = "max_completion_tokens"  # what OpenAI wants; "max_tokens" is legacy
    _own_options_only = False  # compatible servers ignore the api= of OpenAI's options

    def __init__(
        self,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        organization: str | None = None,
        timeout: float | None = None,
        http_client: httpx.AsyncClient | httpx2.AsyncClient | None = None,
        api: Literal["chat", "responses", "auto"] = "auto",
        name: str | None = None,
        key_variables: Sequence[str] = ("OPENAI_API_KEY",),
    ) -> None:
        if name is not None:
            # `name` is a ClassVar on Provider; an instance may still answer to its own name.
            self.__dict__["name"] = name
        sdk = import_sdk("openai", "openai")
        extra: dict[str, Any] = {} if timeout is None else {"timeout": timeout}
        self.api = api
        self.key_variables = tuple(key_variables)
        if api_key == _NO_KEY:
            key, self.key_source = _NO_KEY, None  # a local server that needs none
        else:
            key, self.key_source = find_api_key(self.name, api_key, key_variables)
        self._client: AsyncOpenAI = sdk.AsyncOpenAI(
            api_key=key,
            # The SDK reads OPENAI_BASE_URL itself; read here too so it is plain to see.
            base_url=base_url or os.environ.get("OPENAI_BASE_URL") or None,
            organization=organization,
            max_retries=0,
            # The SDK takes an httpx2 client and, at run time, a plain httpx one too.
            http_client=cast("httpx2.AsyncClient | None", http_client),
            **extra,
        )

    @property
    def label(self) -> str:
        return "OpenAI" if self.name == "openai" else self.name

    @property
    def base_url(self) -> str:
        return str(self._client.base_url)

    # -- choosing the endpoint ---------------------------------------------------------

    def _options(self, request: LLMRequest) -> tuple[OpenAIOptions, bool]:
        """This provider's options, falling back to OpenAI's; and whether they are its own."""
        if any(item.provider == self.name for item in request.options):
            return request.options_for(self.name, OpenAIOptions), True
        return request.options_for("openai", OpenAIOptions), self.name == "openai"

    def _api_for(self, request: LLMRequest, model: str, options: OpenAIOptions, own: bool) -> Api:
        if options.api is not None and (own or not self._own_options_only):
            return options.api
        if self.api != "auto":
            return self.api
        if responses_only_model(model) or any(
            isinstance(part, ReasoningPart)
            and part.provider == self.name
            and (part.provider_data or {}).get("item_id")
            for message in request.messages
            for part in message.parts
        ):
            return "responses"
        chat_only = (
            request.stop,
            request.seed,
            options.frequency_penalty,
            options.presence_penalty,
        )
        wants_reasoning = request.reasoning is not None and is_reasoning_model(model)
        if wants_reasoning and all(value is None for value in chat_only):
            return "responses"
        return "chat"

    def _call_args(self, request: LLMRequest, options: OpenAIOptions) -> dict[str, Any]:
        args: dict[str, Any] = {}
        if options.extra_body:
            args["extra_body"] = options.extra_body
        if request.timeout is not None:
            args["timeout"] = request.timeout
        return args

    # -- the calls ---------------------------------------------------------------------

    async def _generate(self, request: LLMRequest, model: str) -> LLMResponse:
        options, own = self._options(request)
        assembler = StreamAssembler(self.name, model)
        args = self._call_args(request, options)
        if self._api_for(request, model, options, own) == "responses":
            params = responses_params(request, model, options, provider=self.name, stream=False)
            # **params makes the overloads unresolvable (Any): name the type they return.
            with reading(None, errors=(json.JSONDecodeError,)):  # a body that is not JSON
                response: Response = await self._client.responses.create(**params, **args)
            with reading(response):  # a non-JSON body of another type arrives as a str
                return responses_response(assembler, response)
        params = self._chat_params(request, model, options, stream=False)
        completion = await post_json(  # the wire JSON as it is: see post_json
            self._client,
            "/chat/completions",
            {**params, **args},
            provider=self.name,
            model=model,
            options=_BEARER,
        )
        with reading(completion):
            return _chat_response(assembler, completion)

    async def _stream(self, request: LLMRequest, model: str) -> AsyncIterator[StreamItem]:
        options, own = self._options(request)
        args = self._call_args(request, options)
        if self._api_for(request, model, options, own) == "responses":
            params = responses_params(request, model, options, provider=self.name, stream=True)
            events: AsyncStream[ResponseStreamEvent] = await self._client.responses.create(
                **params, **args
            )
            try:
                async for item in responses_stream_items(read_events(events)):
                    yield item
            finally:
                await events.close()  # release the connection even if the caller stops early
            return
        params = self._chat_params(request, model, options, stream=True)
        chunks: AsyncStream[ChatCompletionChunk] = await self._client.chat.completions.create(
            **params, **args
        )
        try:
            async for item in self._chat_stream_items(read_events(chunks)):
                yield item
        finally:
            await chunks.close()

    # -- Chat Completions: the request out -----------------------------------------------

    def _chat_params(
        self, request: LLMRequest, model: str, options: OpenAIOptions, *, stream: bool
    ) -> dict[str, Any]:
        responses_only = {
            "reasoning_summary": options.reasoning_summary,
            "previous_response_id": options.previous_response_id,
            "include": options.include,
            "truncation": options.truncation,
        }
        given = [key for key, value in responses_only.items() if value is not None]
        if given:
            raise config_error(
                f"Chat Completions has no {', '.join(given)}; leave them unset, or send this "
                f"request with OpenAIOptions(api='responses')",
                self.name,
                model,
            )
        params: dict[str, Any] = {
            "model": model,
            "messages": self._chat_messages(request, model, options.system_role or "system"),
            "stream": stream,
        }
        if stream:
            params["stream_options"] = {"include_usage": True}  # else no usage when streaming
        if request.tools:
            params["tools"] = [self._chat_tool(spec) for spec in request.tools]
            choice = request.tool_choice
            if isinstance(choice, ToolName):
                params["tool_choice"] = {"type": "function", "function": {"name": choice.name}}
            elif choice is not None:
                params["tool_choice"] = choice
            if request.parallel_tool_calls is not None:
                params["parallel_tool_calls"] = request.parallel_tool_calls
        if (fmt := request.response_format) is not None:
            schema: dict[str, Any] = {
                "name": fmt.name,
                "schema": strict_json_schema(fmt.json_schema) if fmt.strict else fmt.json_schema,
                "strict": fmt.strict,
            }
            if fmt.description:
                schema["description"] = fmt.description
            params["response_format"] = {"type": "json_schema", "json_schema": schema}
        plain = {
            "temperature": request.temperature,
            self._max_tokens_param: request.max_tokens,
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
        params.update({key: value for key, value in plain.items() if value is not None})
        return params

    @staticmethod
    def _chat_tool(spec: ToolSpec) -> dict[str, Any]:
        function: dict[str, Any] = {
            "name": spec.name,
            "description": spec.description,
            "parameters": strict_json_schema(spec.parameters) if spec.strict else spec.parameters,
        }
        if spec.strict is not None:
            function["strict"] = spec.strict
        return {"type": "function", "function": function}

    def _chat_messages(
        self, request: LLMRequest, model: str, system_role: str
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
                if (assistant := self._chat_assistant(message)) is not None:
                    out.append(assistant)
                continue
            others = [p for p in message.parts if not isinstance(p, ToolResultPart)]
            if others:
                out.append({"role": "user", "content": self._chat_user(others, model)})
        return out

    @staticmethod
    def _chat_assistant(message: ChatMessage) -> dict[str, Any] | None:
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

    def _chat_user(self, parts: Sequence[Part], model: str) -> str | list[dict[str, Any]]:
        content: list[dict[str, Any]] = []
        for part in parts:
            if isinstance(part, TextPart):
                content.append({"type": "text", "text": part.text})
            elif isinstance(part, ImagePart):
                content.append({"type": "image_url", "image_url": {"url": data_url(part)}})
            elif isinstance(part, FilePart):
                content.append(self._chat_file(part, model))
            elif isinstance(part, ToolCallPart):
                raise config_error(
                    "a user message cannot hold a ToolCallPart; put tool calls in the "
                    "assistant message that made them",
                    self.name,
                    model,
                )
        if len(content) == 1 and content[0]["type"] == "text":
            return str(content[0]["text"])  # plain text, as every compatible server takes it
        return content

    def _chat_file(self, part: FilePart, model: str) -> dict[str, Any]:
        if part.data is None:
            raise config_error(
                "Chat Completions takes files as bytes only, not by URL: pass "
                "FilePart(data=..., media_type=...), or use OpenAIOptions(api='responses'), "
                "which takes file URLs",
                self.name,
                model,
            )
        audio = _AUDIO_FORMATS.get(part.media_type or "")
        if audio is not None:
            return {"type": "input_audio", "input_audio": {"data": part.base64(), "format": audio}}
        return {
            "type": "file",
            "file": {"filename": part.name or "file", "file_data": data_url(part)},
        }

    # -- Chat Completions: the response back ---------------------------------------------

    async def _chat_stream_items(
        self, chunks: AsyncIterator[ChatCompletionChunk]
    ) -> AsyncIterator[StreamItem]:
        state = _ChatState()
        async for chunk in chunks:
            with reading(chunk):
                items = state.items(chunk)
            for item in items:
                yield item
        # The end marker: a chunk with a finish_reason (a stream cut before it has none,
        # and then no Finish is sent: the stream is reported incomplete, not whole).
        if state.raw_finish is not None:
            yield _finish(state.raw_finish, state.refused)

    # -- errors ------------------------------------------------------------------------

    def _failure(self, exc: Exception) -> Failure | None:
        import openai

        if isinstance(exc, openai.APITimeoutError):  # before APIConnectionError, its base
            return Failure(kind="timeout")
        if isinstance(exc, openai.APIConnectionError):
            return Failure(kind="connection", detail=str(exc.__cause__ or exc))
        if isinstance(exc, openai.APIError):  # a status error, or an error event mid-stream
            body = exc.body
            error = body.get("error", body) if isinstance(body, dict) else None
            error = error if isinstance(error, dict) else {}
            said = error.get("message")
            status = getattr(exc, "status_code", None)
            response = getattr(exc, "response", None)
            return Failure(
                status=status,
                codes=tuple(str(c) for c in (exc.code, exc.type, error.get("type")) if c),
                message=str(said or exc.message),
                headers=response.headers if response is not None else None,
                body=body,
                param=exc.param,
            )
        return None


class _ChatState:
    """What a Chat stream's chunks have said so far; `items` maps one chunk."""

    def __init__(self) -> None:
        self.raw_finish: str | None = None
        self.refused = False
        self._meta = False

    def items(self, chunk: ChatCompletionChunk) -> list[StreamItem]:
        out: list[StreamItem] = []
        if not self._meta:
            self._meta = True
            out.append(ResponseMeta(model=chunk.model, response_id=chunk.id))
        if chunk.usage is not None:  # the last chunk, with choices: []
            out.append(UsageUpdate(usage=_chat_usage(chunk.usage.model_dump())))
        if not chunk.choices:
            return out
        choice = chunk.choices[0]
        delta = choice.delta
        self.raw_finish = choice.finish_reason or self.raw_finish
        # Keys match the part order of a non-streamed answer: reasoning, text, refusal.
        if (reasoning := _extra_text(delta.model_extra or {})) is not None:
            out.append(ReasoningDelta(key="reasoning", text=reasoning))
        if delta.content:
            out.append(TextDelta(key="text", text=delta.content))
        if delta.refusal:
            self.refused = True
            out.append(TextDelta(key="refusal", text=delta.refusal))
        for call in delta.tool_calls or []:
            function = call.function
            out.append(
                ToolCallDelta(
                    key=call.index,
                    id=call.id,
                    name=function.name if function is not None else None,
                    arguments=(function.arguments or "") if function is not None else "",
                )
            )
        return out


class OpenAICompatibleProvider(OpenAIProvider):
    """A server with an OpenAI-style Chat Completions API (Ollama, vLLM, llama.cpp, ...),
    under its own provider ``name``.

    ``base_url`` defaults to ``COMPATIBLE_SERVERS[name]``. The key comes from ``api_key``, or
    the first set variable of ``key_variables`` (default ``<NAME>_API_KEY``); local servers
    need none, so a placeholder is sent unless ``key_required=True``. Options are read from
    ``OpenAIOptions(provider=name)``, else from ``OpenAIOptions()`` (whose ``api`` is then
    ignored: it was meant for OpenAI).

    Example:
        ollama = OpenAICompatibleProvider("ollama")
        response = await ollama.generate(request.model_copy(update={"model": "llama3.2"}))
    """

    _max_tokens_param = "max_tokens"  # the one field every compatible server knows
    _own_options_only = True

    def __init__(
        self,
        name: str,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        key_variables: Sequence[str] | None = None,
        key_required: bool = False,
        timeout: float | None = None,
        http_client: httpx.AsyncClient | httpx2.AsyncClient | None = None,
        api: Literal["chat", "responses", "auto"] = "chat",
    ) -> None:
        url_variable = f"{name.upper()}_BASE_URL"
        url = base_url or os.environ.get(url_variable) or COMPATIBLE_SERVERS.get(name)
        if not url:
            known = ", ".join(sorted(COMPATIBLE_SERVERS))
            raise config_error(
                f"no base_url for the OpenAI-compatible server {name!r}: pass base_url= "
                f"(e.g. 'http://localhost:8000/v1') or set {url_variable}; known without "
                f"one: {known}",
                name,
                "",
            )
        variables = tuple(key_variables or (f"{name.upper()}_API_KEY",))
        if not key_required:
            try:
                find_api_key(name, api_key, variables)
            except LLMError:
                api_key = _NO_KEY  # local servers ignore it, but the SDK wants one
        super().__init__(
            api_key=api_key,
            base_url=url,
            timeout=timeout,
            http_client=http_client,
            api=api,
            name=name,
            key_variables=variables,
        )
