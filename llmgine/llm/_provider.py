"""`Provider`: the one shape every adapter has, and the one place SDK errors are translated.

An adapter (``providers/openai.py`` and its siblings) implements three methods:

* ``_generate(request, model)``: map the request out to the SDK, call it, map the response
  back to parts and build the response with `StreamAssembler.whole` (equal to what the
  same answer streamed assembles to);
* ``_stream(request, model)``: the same call streamed, as `StreamItem`s;
* ``_translate(exc, model)``: an SDK exception as an `llmgine.errors.LLMError`.

`Provider.generate` and `Provider.stream` wrap those so that every SDK exception leaves as
an `LLMError` with the original as ``__cause__``, and no SDK type leaves the adapter.
"""

from __future__ import annotations

import json
import os
import time
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Sequence
from typing import Any, ClassVar

from llmgine.errors import (
    LLMError,
    MissingCredentialsError,
    ProviderError,
    ProviderNotInstalledError,
)
from llmgine.llm._request import LLMRequest
from llmgine.llm._response import LLMResponse
from llmgine.llm._stream import ResponseStream, StreamAssembler, StreamItem

__all__ = [
    "Provider",
    "import_sdk",
    "json_body",
    "post_json",
    "resolve_api_key",
    "retry_after_seconds",
]


def retry_after_seconds(headers: Any) -> float | None:
    """Seconds a provider asked us to wait: ``retry-after-ms``, or ``retry-after`` as
    seconds or an HTTP date; None when it did not say (or said something unreadable)."""
    from email.utils import parsedate_to_datetime

    for name, scale in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        value = headers.get(name)
        if value:
            try:
                return max(float(value) / scale, 0.0)
            except ValueError:
                pass
    try:
        when = parsedate_to_datetime(headers.get("retry-after") or "")
    except (TypeError, ValueError):
        return None
    return max(when.timestamp() - time.time(), 0.0)


def json_body(http: Any, provider: str, model: str) -> dict[str, Any]:
    """The JSON object of a successful answer (an ``httpx`` response the SDK already read):
    exactly what the provider sent, which is what ``LLMResponse.raw`` keeps for debugging."""
    try:
        body = json.loads(http.content)
    except ValueError as exc:
        raise _not_a_json_object(http, provider, model) from exc
    if not isinstance(body, dict):
        raise _not_a_json_object(http, provider, model)
    return body


# `create` keyword arguments that are request options of the SDK client's `post`.
_CREATE_OPTIONS = {"extra_body": "extra_json", "extra_headers": "headers", "timeout": "timeout"}


async def post_json(
    client: Any,
    path: str,
    arguments: dict[str, Any],
    *,
    provider: str,
    model: str,
    options: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Send a non-streamed call with the SDK client's own ``post``; its answer's JSON object.

    ``arguments`` are what the SDK's ``create`` would take: body fields, plus ``extra_body``
    (merged into the body, winning), ``extra_headers`` and ``timeout``; ``options`` are more
    request options. ``post`` is the SDKs' documented way to send a body as it is: the
    adapters already build the wire JSON, so ``create``'s transform of its arguments (about
    200 µs a call on OpenAI's) and its response models would be work thrown away. Auth,
    headers, timeouts and status errors are the SDK's, as with ``create``.
    """
    import httpx2  # the openai and anthropic SDKs' HTTP client (their dependency)

    body: dict[str, Any] = {}
    request_options = dict(options or {})
    for key, value in arguments.items():
        if key in _CREATE_OPTIONS:
            request_options[_CREATE_OPTIONS[key]] = value
        else:
            body[key] = value
    http = await client.post(path, cast_to=httpx2.Response, body=body, options=request_options)
    return json_body(http, provider, model)


def _not_a_json_object(http: Any, provider: str, model: str) -> ProviderError:
    snippet = bytes(http.content[:200]).decode("utf-8", "replace")
    return ProviderError(
        f"{provider} answered HTTP {http.status_code} with a body that is not a JSON object "
        f"({snippet!r}): check that base_url points at the API itself, not a web page or proxy",
        provider=provider,
        model=model,
        status_code=http.status_code,
    )


def import_sdk(module: str, extra: str) -> Any:
    """Import a provider SDK lazily, with an error naming the extra that installs it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ProviderNotInstalledError(
            f'this provider needs the {module!r} package: pip install "llmgine[{extra}]"'
        ) from exc


def resolve_api_key(provider: str, api_key: str | None, variables: Sequence[str]) -> str:
    """``api_key`` if given, else the first of ``variables`` that is set; else a clear error."""
    if api_key:
        return api_key
    for name in variables:
        value = os.environ.get(name)
        if value:
            return value
    names = " or ".join(variables)
    raise MissingCredentialsError(
        f"no API key for {provider}: set {names} (e.g. export {variables[0]}=...) or pass "
        f"api_key= to get_model(); or use the offline 'demo:' provider, which needs none",
        provider=provider,
    )


class Provider(ABC):
    """Base of every provider adapter. Subclasses set ``name`` and implement the three
    underscored methods; users reach providers through `llmgine.llm.get_model`."""

    name: ClassVar[str]
    offline: ClassVar[bool] = False  # needs no key and no network (test, demo)

    async def generate(self, request: LLMRequest, model: str) -> LLMResponse:
        """One call without streaming; SDK errors leave as `LLMError`s."""
        started = time.perf_counter()
        try:
            response = await self._generate(request, model)
        except LLMError:
            raise
        except Exception as exc:
            raise self._translated(exc, model) from exc
        if response.latency_ms is None:
            response.latency_ms = (time.perf_counter() - started) * 1000
        return response

    def stream(self, request: LLMRequest, model: str) -> ResponseStream:
        """One streamed call: iterate it for items; ``.response`` when done."""
        return ResponseStream(self._guarded(request, model), StreamAssembler(self.name, model))

    async def _guarded(self, request: LLMRequest, model: str) -> AsyncIterator[StreamItem]:
        try:
            async for item in self._stream(request, model):
                yield item
        except LLMError:
            raise
        except Exception as exc:
            raise self._translated(exc, model) from exc

    def _translated(self, exc: Exception, model: str) -> Exception:
        mapped = self._translate(exc, model)
        if mapped is None:
            return exc  # not an SDK error: a bug worth seeing as it is
        mapped.provider = mapped.provider or self.name
        mapped.model = mapped.model or model
        return mapped

    async def aclose(self) -> None:
        """Close the SDK client's connections (adapters keep it as ``_client``)."""
        client = getattr(self, "_client", None)
        for name in ("aclose", "close"):
            close = getattr(client, name, None)
            if close is not None:
                result = close()
                if hasattr(result, "__await__"):
                    await result
                return

    # -- what an adapter implements ------------------------------------------------------

    @abstractmethod
    async def _generate(self, request: LLMRequest, model: str) -> LLMResponse:
        """Map ``request`` out, call the SDK, map its response back."""

    @abstractmethod
    def _stream(self, request: LLMRequest, model: str) -> AsyncIterator[StreamItem]:
        """Map ``request`` out, call the SDK streaming, yield its events as items."""

    @abstractmethod
    def _translate(self, exc: Exception, model: str) -> LLMError | None:
        """An SDK exception as an `LLMError` (status first), or None if it is not one."""
