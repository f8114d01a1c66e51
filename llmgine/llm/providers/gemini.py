"""Google Gemini (Developer API) adapter, over the official ``google-genai`` SDK.

Requests go to ``generateContent`` / ``streamGenerateContent`` of the ``v1beta`` API (the
version with structured output, thinking and function calling). The translator
(``gemini_generate.py``) builds the wire JSON and reads the answer's JSON; the SDK sends it
(``_genai_raw.py``: its one private call, as google-genai has no public raw one), with its
key header, timeouts and errors. It talks through an httpx client this adapter owns (or
the one passed in), so it never tries aiohttp, and its own retries are off: llmgine's retry
wrapper decides, and retries must not stack.

How the unified contract maps onto Gemini:

* system messages become ``systemInstruction``; assistant turns are role ``model``; tool
  results are ``functionResponse`` parts of a user turn (``{"result": ...}``, or
  ``{"error": ...}`` when the tool failed).
* Thought signatures (opaque bytes) are kept as standard base64 text in
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

import math
import os
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from pydantic import Field

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
from llmgine.llm._schema_rules import gemini_json_schema
from llmgine.llm._send import transport_failure
from llmgine.llm._stream import StreamAssembler, StreamItem
from llmgine.llm.providers._genai_raw import post_events, post_json
from llmgine.llm.providers.gemini_generate import (
    GeminiEvents,
    gemini_answer_items,
    gemini_body,
    gemini_path,
)

if TYPE_CHECKING:
    import httpx
    import httpx2
    from google.genai import Client

__all__ = ["GeminiOptions", "GeminiProvider", "gemini_json_schema"]

_API_VERSION = "v1beta"
_DEFAULT_TIMEOUT = 600.0  # seconds; the SDK sends no timeout at all unless given one
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
                    httpx_async_client=http,  # httpx or httpx2: the SDK takes both
                ),
            )
        return self._sdk

    # -- calls: translate, send, translate back ---------------------------------------------

    def _send_args(self, request: LLMRequest, model: str, *, stream: bool) -> tuple[Any, ...]:
        options: GeminiOptions = request.options_for(self.name, GeminiOptions)
        http: dict[str, Any] | None = None
        if request.timeout is not None or options.extra_body:
            http = {}
            if request.timeout is not None:
                http["timeout"] = _ms(request.timeout)
            if options.extra_body:
                http["extra_body"] = dict(options.extra_body)  # merged by the SDK, winning
        path = gemini_path(model, stream=stream)
        return self._client(), path, gemini_body(request, options), http

    async def _generate(self, request: LLMRequest, model: str) -> LLMResponse:
        answer = await post_json(*self._send_args(request, model, stream=False))
        with reading(answer):
            items = gemini_answer_items(answer)
            assembler = StreamAssembler(self.name, model)
            return whole_response(assembler, items, raw=answer, marker="finishReason")

    def _stream(self, request: LLMRequest, model: str) -> AsyncIterator[StreamItem]:
        events = GeminiEvents()
        sent = post_events(*self._send_args(request, model, stream=True))
        return stream_items(sent, events.items, end=events.end)

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
