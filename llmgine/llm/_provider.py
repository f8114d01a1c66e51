"""`Provider`: the one shape every adapter has, and the one place errors are translated.

An adapter is a translator between llmgine's contracts and one provider's wire JSON (see
``providers/README.md``) plus a small `Provider` subclass that sends what it builds:

* ``_generate(request, model)`` (``model`` is ``request.model``): build the body, send it
  (`llmgine.llm._send`), parse the whole answer into the `StreamItem`s its stream would
  have carried and assemble them with `whole_response`;
* ``_stream(request, model)``: the same call streamed, each event parsed into items,
  ending with a `Finish` only when the API's end marker arrived;
* ``_failure(exc)``: an SDK exception described as a `Failure` (status, codes, message).

`Provider.generate` and `Provider.stream` wrap those so that every failure leaves as an
`LLMError` made by the one table in `_error_table` (the same status means the same error
whoever sent it), with the original as ``__cause__``. What an adapter reads from an answer
it reads inside `reading`, so an answer that is not what the API documents (not JSON, an
unexpected shape) is a `MalformedResponseError` quoting it, never a raw ``KeyError``. A
stream that stops without its end marker is an `IncompleteResponseError` carrying what
did arrive: a truncated answer never passes for a whole one.
"""

from __future__ import annotations

import json
import os
import time
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from typing import Any, ClassVar, TypeVar
from urllib.parse import urlsplit

from llmgine._redact import add_credential
from llmgine.errors import (
    LLMConfigurationError,
    LLMError,
    MissingCredentialsError,
    ProviderNotInstalledError,
)
from llmgine.llm._error_table import (
    Caller,
    Failure,
    ProviderFailed,
    error_for,
    retry_after_seconds,
)
from llmgine.llm._request import LLMRequest
from llmgine.llm._response import LLMResponse
from llmgine.llm._stream import ResponseMeta, ResponseStream, StreamAssembler, StreamItem

__all__ = [
    "Caller",
    "Failure",
    "Provider",
    "ProviderFailed",
    "find_api_key",
    "import_sdk",
    "incomplete",
    "read_events",
    "reading",
    "released",
    "resolve_api_key",
    "retry_after_seconds",
    "stream_items",
    "whole_response",
]


# What reading an answer of the wrong shape raises: JSON that does not parse (ValueError),
# a field missing or of another type (KeyError, AttributeError, TypeError, IndexError), an
# SDK model refusing it (pydantic's ValidationError is a ValueError).
_SHAPE_ERRORS = (ValueError, KeyError, AttributeError, TypeError, IndexError)


def _snippet(value: Any) -> str:
    if isinstance(value, bytes | bytearray):
        return bytes(value[:400]).decode("utf-8", "replace")
    if isinstance(value, str):
        return value[:400]
    dump = getattr(value, "model_dump", None)  # an SDK model: show its JSON
    if callable(dump):
        # As it arrived: a field of the wrong type is what is worth seeing, not a warning.
        value = dump(mode="json", warnings=False)
    try:
        return json.dumps(value, ensure_ascii=False, default=repr)[:400]
    except (TypeError, ValueError):
        return repr(value)[:400]


T = TypeVar("T")


@asynccontextmanager
async def released(items: AsyncIterator[T]) -> AsyncIterator[AsyncIterator[T]]:
    """``items`` (a stream's events or items), closed when the block ends however it ends:
    a reader that stops early releases the connection at once, not when the abandoned
    generators are collected (a local server would go on writing the answer meanwhile)."""
    try:
        yield items
    finally:
        close = getattr(items, "aclose", None)
        if close is not None:
            await close()


async def stream_items(
    sent: AsyncIterator[Any],
    parse: Callable[[Any], Iterable[StreamItem]],
    *,
    end: Callable[[], Iterable[StreamItem]] | None = None,
) -> AsyncIterator[StreamItem]:
    """A provider's stream: each event of ``sent`` read into items by ``parse`` (a failure
    to read one is a `MalformedResponseError` quoting it, see `reading`), the `ResponseMeta`
    the headers gave passed on as it is, then ``end()``'s items (a stream whose end marker
    comes only once all is known). ``sent`` is released however the reader stops."""
    async with released(sent):  # a reader that stops early releases the connection
        async for event in sent:
            if isinstance(event, ResponseMeta):  # the rate limits the headers reported
                yield event
                continue
            with reading(event):
                items = list(parse(event))
            for item in items:
                yield item
    if end is not None:
        for item in end():
            yield item


@contextmanager
def reading(
    what: Any,
    *,
    status: int | None = None,
    errors: tuple[type[Exception], ...] = _SHAPE_ERRORS,
) -> Iterator[None]:
    """Read an answer (``what``: its body, one stream event) inside this block: a failure
    to read it becomes a `MalformedResponseError` quoting it (translated by `Provider`).

    Only the reading belongs inside: a bug in building a request must stay a bug. Around
    an SDK call that also sends, pass ``errors=(json.JSONDecodeError,)``: only an answer
    is ever parsed as JSON.
    """
    try:
        yield
    except (LLMError, ProviderFailed):
        raise
    except errors as exc:
        doc = getattr(exc, "doc", None)  # json.JSONDecodeError keeps the text it read
        shown = doc if isinstance(doc, str) else what
        reason = f"{type(exc).__name__}: {exc}"[:200]
        failure = Failure(kind="malformed", status=status, message=reason, snippet=_snippet(shown))
        raise ProviderFailed(failure) from exc


async def read_events(events: AsyncIterator[Any]) -> AsyncIterator[Any]:
    """An SDK's event stream whose parse failures (an event that is not JSON) become
    `MalformedResponseError`s quoting the event; other errors pass as they are."""
    iterator = aiter(events)
    while True:
        try:
            event = await anext(iterator)
        except StopAsyncIteration:
            return
        except ValueError as exc:  # json.JSONDecodeError and SDKs' own parse errors
            doc = getattr(exc, "doc", None)
            failure = Failure(
                kind="malformed",
                message=f"an event that is not JSON: {type(exc).__name__}: {exc}"[:200],
                snippet=_snippet(doc if isinstance(doc, str) else str(exc)),
            )
            raise ProviderFailed(failure) from exc
        yield event


def whole_response(
    assembler: StreamAssembler, items: Iterable[StreamItem], *, raw: Any, marker: str
) -> LLMResponse:
    """A non-streamed answer, parsed into the items its stream would have carried, built by
    the same assembler a stream goes through (so both give equal responses), with its JSON
    as ``raw``. It must say why it ended (its ``marker``): an answer without the `Finish`
    is not a whole one. Call inside `reading`."""
    for item in items:
        assembler.add(item)
    if not assembler.finished:
        raise ValueError(f"the answer has no {marker}, so it is not a whole answer")
    return assembler.response(raw=raw)


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
    """``api_key`` if given, else the first of ``variables`` that is set; else a clear error.

    The key is made known to every redactor at once (`llmgine.observability.add_credential`),
    whatever its shape: a server that echoes it cannot put it in a span, event or log.
    """
    return find_api_key(provider, api_key, variables)[0]


def find_api_key(provider: str, api_key: str | None, variables: Sequence[str]) -> tuple[str, str]:
    """`resolve_api_key`, and where the key came from (``"api_key="`` or the variable)."""
    if api_key:
        add_credential(api_key)
        return api_key, "api_key="
    for name in variables:
        value = os.environ.get(name)
        if value:
            add_credential(value)
            return value, name
    names = " or ".join(variables)
    raise MissingCredentialsError(
        f"no API key for {provider}: set {names} (e.g. export {variables[0]}=...) or pass "
        f"api_key= to get_model(); or use the offline 'demo:' provider, which needs none",
        provider=provider,
    )


class Provider(ABC):
    """Base of every provider adapter. Subclasses set ``name`` and implement the three
    underscored methods; users reach providers through `llmgine.llm.get_model`."""

    # The provider's name: a class default an instance may replace (an OpenAI-compatible
    # server answers to its own name).
    name: str
    offline: ClassVar[bool] = False  # needs no key and no network (test, demo)
    # Its address is known only once a call has started its server (the local model):
    # spans ask `server` at each call instead of once.
    address_after_start: ClassVar[bool] = False
    # Set by adapters: where the key came from ("api_key=", a variable, None: none sent)
    # and which variables would have held one; error hints name them.
    key_source: str | None = None
    key_variables: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        """How messages name this provider."""
        return self.name

    @property
    def base_url(self) -> str | None:
        """The address calls go to (None for offline providers)."""
        return None

    @property
    def server(self) -> tuple[str | None, int | None]:
        """``(host, port)`` of `base_url`, the port defaulted from the scheme: what spans
        record as ``server.address`` and ``server.port``."""
        url = self.base_url
        if not url:
            return None, None
        parts = urlsplit(url)
        try:
            port = parts.port
        except ValueError:
            port = None
        if port is None:
            port = {"https": 443, "http": 80}.get(parts.scheme)
        return parts.hostname, port

    async def generate(self, request: LLMRequest) -> LLMResponse:
        """One call without streaming, to ``request.model``; SDK errors leave as `LLMError`s."""
        model = self._model_of(request)
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

    def stream(self, request: LLMRequest) -> ResponseStream:
        """One streamed call to ``request.model``: iterate it for items; ``.response`` when
        done."""
        model = self._model_of(request)
        assembler = StreamAssembler(self.name, model)
        return ResponseStream(self._guarded(request, model, assembler), assembler)

    def _model_of(self, request: LLMRequest) -> str:
        if not request.model:
            raise LLMConfigurationError(
                f"the request names no model: set LLMRequest(model=...), or call through "
                f"get_model('{self.name}:<model>'), which sets it",
                provider=self.name,
            )
        return request.model

    async def _guarded(
        self, request: LLMRequest, model: str, assembler: StreamAssembler
    ) -> AsyncIterator[StreamItem]:
        try:
            async with released(self._stream(request, model)) as items:
                async for item in items:
                    yield item
            if not assembler.finished:
                raise ProviderFailed(incomplete(assembler))
        except LLMError:
            raise
        except Exception as exc:
            raise self._translated(exc, model) from exc

    def _translated(self, exc: Exception, model: str) -> Exception:
        failure = exc.failure if isinstance(exc, ProviderFailed) else self._failure(exc)
        if failure is None:
            return exc  # not an SDK error: a bug worth seeing as it is
        return error_for(failure, self.caller(model))

    def caller(self, model: str) -> Caller:
        """Who is calling, as error messages name it."""
        return Caller(
            provider=self.name,
            label=self.label,
            model=model,
            base_url=self.base_url,
            key_source=self.key_source,
            key_variables=self.key_variables,
        )

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

    def _failure(self, exc: Exception) -> Failure | None:
        """An SDK exception described as a `Failure`, or None if it is not the SDK's
        (then it is a bug, and leaves as it is). Offline providers have none."""
        return None


def incomplete(assembler: StreamAssembler) -> Failure:
    """The failure of a stream that ended before its end marker: what arrived is kept."""
    partial = assembler.response()
    received = f"{len(partial.text)} characters of text" if partial.text else "no text"
    if partial.tool_calls:
        received += f" and {len(partial.tool_calls)} tool call(s)"
    return Failure(
        kind="incomplete",
        message=f"the connection closed after {received}",
        partial=partial,
    )
