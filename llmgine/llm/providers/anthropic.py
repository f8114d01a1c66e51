"""The Anthropic adapter: `LLMRequest` to the Messages API and back, streamed or not.

The translator (``anthropic_messages.py``) maps requests out to the wire JSON of
``POST /v1/messages`` (system messages become the top-level
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
* The body is sent with the SDK client's own ``post`` (llmgine/llm/_send.py). The SDK speaks
  ``httpx2``: a plain ``httpx.AsyncClient`` passed as ``http_client`` is bridged to it.
* The SDK refuses a non-streamed call whose ``max_tokens`` may take over 10 minutes unless
  a timeout is given; `generate` then streams and assembles (the same response, no ``raw``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from llmgine._redact import redacting_logger
from llmgine.llm._provider import (
    Failure,
    Provider,
    ProviderFailed,
    find_api_key,
    import_sdk,
    incomplete,
    reading,
    stream_items,
    whole_response,
)
from llmgine.llm._request import LLMRequest, ProviderOptions
from llmgine.llm._response import LLMResponse
from llmgine.llm._schema_rules import anthropic_json_schema
from llmgine.llm._send import httpx2_client, post_events, post_json, stainless_failure
from llmgine.llm._stream import StreamAssembler, StreamItem

if TYPE_CHECKING:
    import httpx
    import httpx2

from llmgine.llm.providers.anthropic_messages import MessageEvents, message_items, messages_body

__all__ = ["AnthropicOptions", "AnthropicProvider", "anthropic_json_schema"]

_log = redacting_logger("llmgine.llm")

# The largest max_tokens the SDK sends without streaming (it expects 128k tokens to take an
# hour and refuses calls expected to pass 10 minutes unless given a timeout).
_NONSTREAMING_MAX_TOKENS = 128_000 * 10 // 60


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

    def _arguments(self, request: LLMRequest, model: str) -> dict[str, Any]:
        """The body, and what ``post`` takes besides: extra_body, headers, timeout."""
        options: AnthropicOptions = request.options_for(self.name, AnthropicOptions)
        body = messages_body(request, model, options, default_max_tokens=self.default_max_tokens)
        if request.seed is not None and not self._warned_seed:
            self._warned_seed = True
            _log.warning("Anthropic has no seed parameter: seed=%s is ignored", request.seed)
        if options.betas:
            body["extra_headers"] = {"anthropic-beta": ",".join(options.betas)}
        if options.extra_body:
            body["extra_body"] = dict(options.extra_body)  # merged last: the caller's word wins
        if request.timeout is not None:
            body["timeout"] = request.timeout
        return body

    # -- calls ------------------------------------------------------------------------------

    async def _generate(self, request: LLMRequest, model: str) -> LLMResponse:
        params = self._arguments(request, model)
        assembler = StreamAssembler(self.name, model)
        if "timeout" not in params and params["max_tokens"] > _NONSTREAMING_MAX_TOKENS:
            # The SDK refuses a non-streamed call that may outlast 10 minutes (networks drop
            # idle connections): stream it instead, which assembles to the same response.
            async for item in self._events(params):
                assembler.add(item)
            if not assembler.finished:
                raise ProviderFailed(incomplete(assembler))
            return assembler.response()
        message, meta = await post_json(self._client, "/v1/messages", {**params, "stream": False})
        assembler.add(meta)  # the rate limits the headers reported
        with reading(message):
            items = message_items(message)
            return whole_response(assembler, items, raw=message, marker="stop_reason")

    def _stream(self, request: LLMRequest, model: str) -> AsyncIterator[StreamItem]:
        return self._events(self._arguments(request, model))

    def _events(self, params: dict[str, Any]) -> AsyncIterator[StreamItem]:
        arguments = {**params, "stream": True}
        sent = post_events(self._client, self._sdk, "/v1/messages", arguments)
        return stream_items(sent, MessageEvents().items)

    # -- errors -----------------------------------------------------------------------------

    def _failure(self, exc: Exception) -> Failure | None:
        sdk = self._sdk
        failure = stainless_failure(sdk, exc)
        if failure is not None:
            return failure
        if isinstance(exc, sdk.AnthropicError):
            return Failure(message=f"the Anthropic SDK failed: {exc}")
        return None
