"""The OpenAI adapter: Chat Completions and the Responses API, and OpenAI-compatible servers.

`OpenAIProvider` picks the endpoint, lets its translator (``openai_chat.py``,
``openai_responses.py``) build the wire JSON, sends it with the official ``openai`` SDK
client's own ``post`` (llmgine/llm/_send.py), and has the answer's JSON translated back to
`StreamItem`s; streamed or not, they go through the shared `StreamAssembler`, so a streamed
call and the same call without streaming give equal responses. Which endpoint a call uses:

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

import os
from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING, Any, Literal

from llmgine.errors import LLMError
from llmgine.llm._parts import ReasoningPart
from llmgine.llm._provider import (
    Failure,
    Provider,
    find_api_key,
    import_sdk,
    reading,
    stream_items,
    whole_response,
)
from llmgine.llm._request import LLMRequest, ProviderOptions
from llmgine.llm._response import LLMResponse
from llmgine.llm._schema_rules import strict_json_schema
from llmgine.llm._send import httpx2_client, post_events, post_json, stainless_failure
from llmgine.llm._stream import StreamAssembler, StreamItem
from llmgine.llm.providers._openai_shared import (
    config_error,
    is_reasoning_model,
    responses_only_model,
)
from llmgine.llm.providers.openai_chat import ChatEvents, chat_answer_items, chat_body
from llmgine.llm.providers.openai_responses import (
    ResponsesEvents,
    responses_answer_items,
    responses_body,
)

if TYPE_CHECKING:
    import httpx
    import httpx2
    from openai import AsyncOpenAI

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
            self.name = name
        sdk = import_sdk("openai", "openai")
        extra: dict[str, Any] = {} if timeout is None else {"timeout": timeout}
        self.api = api
        self.key_variables = tuple(key_variables)
        if api_key == _NO_KEY:
            key, self.key_source = _NO_KEY, None  # a local server that needs none
        else:
            key, self.key_source = find_api_key(self.name, api_key, key_variables)
        self._sdk = sdk
        self._client: AsyncOpenAI = sdk.AsyncOpenAI(
            api_key=key,
            # The SDK reads OPENAI_BASE_URL itself; read here too so it is plain to see.
            base_url=base_url or os.environ.get("OPENAI_BASE_URL") or None,
            organization=organization,
            max_retries=0,
            http_client=httpx2_client(http_client) if http_client is not None else None,
            **extra,
        )

    @property
    def label(self) -> str:
        return "OpenAI" if self.name == "openai" else self.name

    @property
    def base_url(self) -> str | None:
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

    # -- the calls: translate, send, translate back ----------------------------------------

    def _body(self, request: LLMRequest, model: str, *, stream: bool) -> tuple[Api, str, Any]:
        """Which API, its path, and the body and request options of this call."""
        options, own = self._options(request)
        api = self._api_for(request, model, options, own)
        if api == "responses":
            body = responses_body(request, model, options, provider=self.name, stream=stream)
            path = "/responses"
        else:
            body = chat_body(
                request,
                model,
                options,
                provider=self.name,
                max_tokens_param=self._max_tokens_param,
                stream=stream,
            )
            path = "/chat/completions"
        return api, path, {**body, **self._call_args(request, options)}

    async def _generate(self, request: LLMRequest, model: str) -> LLMResponse:
        api, path, arguments = self._body(request, model, stream=False)
        answer, meta = await post_json(self._client, path, arguments, options=_BEARER)
        assembler = StreamAssembler(self.name, model)
        assembler.add(meta)  # the rate limits the headers reported
        with reading(answer):
            if api == "responses":
                items = responses_answer_items(answer)
                return whole_response(assembler, items, raw=answer, marker="status")
            items = chat_answer_items(answer)
            return whole_response(assembler, items, raw=answer, marker="choices[0].finish_reason")

    def _stream(self, request: LLMRequest, model: str) -> AsyncIterator[StreamItem]:
        api, path, arguments = self._body(request, model, stream=True)
        sent = post_events(self._client, self._sdk, path, arguments, options=_BEARER)
        if api == "responses":
            return stream_items(sent, ResponsesEvents().items)
        # Chat's end marker: a chunk with a finish_reason; sent last, once all is known.
        chat = ChatEvents()
        return stream_items(sent, chat.items, end=chat.end)

    # -- errors ------------------------------------------------------------------------

    def _failure(self, exc: Exception) -> Failure | None:
        return stainless_failure(self._sdk, exc)


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
