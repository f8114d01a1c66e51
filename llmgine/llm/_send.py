"""Sending, shared by every adapter: wire JSON out through an SDK client, wire JSON back.

Adapters translate; this module sends. The OpenAI and Anthropic SDKs (both Stainless)
document a raw call on their clients, ``client.post(path, body=..., cast_to=...,
stream=..., stream_cls=...)``: it sends a body as it is, with the client's own
authentication, headers, timeouts and error classes, and skips ``create``'s transform of
its arguments and its response models (work thrown away when the adapter already built
the wire JSON and reads the answer as JSON). `post_json` makes the non-streamed call and
returns the answer's JSON object; `post_events` the streamed one, yielding each event's
JSON object (the SDK's own SSE decoder, which also raises the API's error events as its
errors). `stainless_failure` describes those errors for the one error table.

This is the one place an answer's HTTP headers are seen, so it is where the rate limits
they report are read (`llmgine.llm._rate_limit`): both calls hand them over as a
`ResponseMeta` item for the adapter to pass on, and nothing else of the headers leaves.

`httpx2_client` is the one bridge from a plain ``httpx.AsyncClient`` (what users and test
transports often hold) to ``httpx2``, the HTTP library the SDKs are built on.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING, Any, cast

from llmgine.llm._error_table import Failure
from llmgine.llm._provider import read_events, reading
from llmgine.llm._rate_limit import rate_limit_from_headers
from llmgine.llm._stream import ResponseMeta

if TYPE_CHECKING:
    import httpx
    import httpx2

__all__ = [
    "httpx2_client",
    "post_events",
    "post_json",
    "split_arguments",
    "stainless_failure",
    "transport_failure",
]

# `create` keyword arguments that are request options of the SDK client's `post`.
_CREATE_OPTIONS = {"extra_body": "extra_json", "extra_headers": "headers", "timeout": "timeout"}


def split_arguments(
    arguments: Mapping[str, Any], options: Mapping[str, Any] | None = None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """``create``-style ``arguments`` as the body and the request options of ``post``:
    ``extra_body`` (merged into the body by the SDK, winning), ``extra_headers`` and
    ``timeout`` are options; everything else is a body field."""
    body: dict[str, Any] = {}
    request_options = dict(options or {})
    for key, value in arguments.items():
        if key in _CREATE_OPTIONS:
            request_options[_CREATE_OPTIONS[key]] = value
        else:
            body[key] = value
    return body, request_options


def _json_object(http: Any) -> dict[str, Any]:
    """The JSON object of a successful answer, exactly as the provider sent it (what
    ``LLMResponse.raw`` keeps); anything else is a `MalformedResponseError` quoting it."""
    with reading(http.content, status=http.status_code):
        body = json.loads(http.content)
        if not isinstance(body, dict):
            raise TypeError(f"the body is a JSON {type(body).__name__}, not an object")
    return body


async def post_json(
    client: Any,
    path: str,
    arguments: Mapping[str, Any],
    *,
    options: Mapping[str, Any] | None = None,
) -> tuple[dict[str, Any], ResponseMeta]:
    """A non-streamed call with the SDK client's ``post``: the answer's JSON object, and a
    `ResponseMeta` with the rate limits its headers reported (``rate_limit`` None if none),
    to assemble with the answer's own items.

    ``arguments`` are what the SDK's ``create`` would take (see `split_arguments`);
    ``options`` are more request options (e.g. the auth OpenAI's ``create`` asks for).
    """
    import httpx2  # the openai and anthropic SDKs' HTTP client (declared with their extras)

    body, request_options = split_arguments(arguments, options)
    http = await client.post(path, cast_to=httpx2.Response, body=body, options=request_options)
    return _json_object(http), ResponseMeta(rate_limit=rate_limit_from_headers(http.headers))


async def post_events(
    client: Any,
    sdk: Any,
    path: str,
    arguments: Mapping[str, Any],
    *,
    options: Mapping[str, Any] | None = None,
) -> AsyncIterator[dict[str, Any] | ResponseMeta]:
    """A streamed call with the SDK client's ``post``: each server-sent event's JSON object,
    after a `ResponseMeta` with the rate limits the headers reported (only if they did),
    which the adapter passes on as it is.

    ``sdk`` is the SDK's module: its ``AsyncStream[object]`` decodes the events and hands
    them over as plain JSON (``cast_to=object`` builds no model). The connection is released
    when the stream ends, fails, or its reader stops early.
    """
    body, request_options = split_arguments(arguments, options)
    stream = await client.post(
        path,
        cast_to=object,
        body=body,
        options=request_options,
        stream=True,
        stream_cls=sdk.AsyncStream[object],
    )
    try:
        rate_limit = rate_limit_from_headers(stream.response.headers)
        if rate_limit is not None:
            yield ResponseMeta(rate_limit=rate_limit)
        async for event in read_events(stream):
            yield cast("dict[str, Any]", event)
    finally:
        await stream.close()


# -- errors ----------------------------------------------------------------------------------


def stainless_failure(sdk: Any, exc: Exception) -> Failure | None:
    """An OpenAI or Anthropic SDK error (``sdk`` is its module) as a `Failure`; None if it
    is not the SDK's. Both SDKs share one error tree: timeout, connection, status, and an
    error event inside a stream (which arrives with the stream's own 2xx status)."""
    if isinstance(exc, sdk.APITimeoutError):  # before APIConnectionError, its base
        return Failure(kind="timeout")
    if isinstance(exc, sdk.APIConnectionError):
        return Failure(kind="connection", detail=str(exc.__cause__ or exc))
    if isinstance(exc, sdk.APIError):
        body = exc.body
        error = body.get("error", body) if isinstance(body, dict) else None
        error = error if isinstance(error, dict) else {}
        codes = (getattr(exc, "code", None), getattr(exc, "type", None), error.get("type"))
        status = getattr(exc, "status_code", None)
        response = getattr(exc, "response", None)
        said = error.get("message")
        return Failure(
            status=status if status is not None and status >= 400 else None,
            codes=tuple(dict.fromkeys(str(code) for code in codes if code)),
            message=str(said or exc.message),
            headers=response.headers if response is not None else None,
            body=body,
            param=getattr(exc, "param", None),
        )
    return transport_failure(exc)


def transport_failure(exc: Exception) -> Failure | None:
    """A timeout or broken connection of the HTTP library itself (``httpx2``, or ``httpx``
    when a client of it was passed in), e.g. a stream that breaks mid-way."""
    import httpx2

    timeouts: tuple[type[Exception], ...] = (httpx2.TimeoutException,)
    transport: tuple[type[Exception], ...] = (httpx2.TransportError,)
    try:
        import httpx
    except ImportError:
        pass
    else:
        timeouts += (httpx.TimeoutException,)
        transport += (httpx.TransportError,)
    if isinstance(exc, timeouts):
        return Failure(kind="timeout", detail=f"{type(exc).__name__}: {exc}")
    if isinstance(exc, transport):
        return Failure(kind="connection", detail=f"{type(exc).__name__}: {exc}")
    return None


# -- httpx -> httpx2 -------------------------------------------------------------------------


def httpx2_client(client: httpx.AsyncClient | httpx2.AsyncClient) -> httpx2.AsyncClient:
    """``client`` as an ``httpx2`` client: as it is if it is one, else one that sends
    through it. Told apart by module name, so that httpx need not be installed to use
    httpx2. Bodies come back decoded by httpx, so the encoding headers are dropped; httpx
    timeouts are raised as httpx2's so the SDKs report them as timeouts."""
    if type(client).__module__.partition(".")[0] != "httpx":
        return cast("httpx2.AsyncClient", client)
    return _bridge(cast("httpx.AsyncClient", client))


def _bridge(client: httpx.AsyncClient) -> httpx2.AsyncClient:
    import httpx
    import httpx2

    def as_httpx2(exc: httpx.TransportError) -> httpx2.TransportError:
        kind = httpx2.ReadTimeout if isinstance(exc, httpx.TimeoutException) else httpx2.ReadError
        return kind(str(exc) or type(exc).__name__)

    class Body(httpx2.AsyncByteStream):
        def __init__(self, response: httpx.Response) -> None:
            self._response = response

        async def __aiter__(self) -> AsyncIterator[bytes]:
            try:
                async for chunk in self._response.aiter_bytes():
                    yield chunk
            except httpx.TransportError as exc:
                raise as_httpx2(exc) from exc

        async def aclose(self) -> None:
            await self._response.aclose()

    class Bridge(httpx2.AsyncBaseTransport):
        async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
            timeout = request.extensions.get("timeout")  # the SDK's per-request timeout
            sent = client.build_request(
                request.method,
                str(request.url),
                headers=list(request.headers.multi_items()),
                content=await request.aread(),
                timeout=httpx.Timeout(**timeout)
                if isinstance(timeout, dict)
                else httpx.USE_CLIENT_DEFAULT,
            )
            try:
                response = await client.send(sent, stream=True)
            except httpx.TransportError as exc:
                raise as_httpx2(exc) from exc
            skip = {"content-encoding", "content-length"}
            headers = [(k, v) for k, v in response.headers.multi_items() if k.lower() not in skip]
            return httpx2.Response(
                response.status_code, headers=headers, stream=Body(response), request=request
            )

    return httpx2.AsyncClient(
        transport=Bridge(), timeout=httpx2.Timeout(**client.timeout.as_dict())
    )
