"""The one private access llmgine makes: sending wire JSON through ``google-genai``.

``google-genai`` has no public raw call: ``client.aio.models.generate_content`` takes SDK
types, converts them to the wire JSON and the answer back to SDK types. Its own models
module sends the converted body with ``client.aio._api_client.async_request(method, path,
body, http_options)`` (and ``async_request_streamed``): that call keeps what matters of the
SDK (the key header, base URL and API version, timeouts, ``extra_body``, its
``errors.APIError`` for every error status and error chunk). llmgine's Gemini translator
already builds the wire JSON, so it sends through that call, here and nowhere else.

``tests/llm/test_gemini.py::test_the_private_genai_call_llmgine_uses_is_still_there``
fails loudly, naming this module, if a new SDK version changes it.
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from typing import TYPE_CHECKING, Any, cast

from llmgine.llm._provider import read_events, reading

if TYPE_CHECKING:
    from google.genai import Client

__all__ = ["post_events", "post_json"]


def _api_client(client: Client) -> Any:
    return client.aio._api_client  # the private access (see the module docstring)


async def post_json(
    client: Client, path: str, body: Mapping[str, Any], http_options: dict[str, Any] | None
) -> dict[str, Any]:
    """A non-streamed call: the answer's JSON object, as the API sent it."""
    response = await _api_client(client).async_request("post", path, dict(body), http_options)
    text = response.body or ""
    with reading(text):
        answer = json.loads(text)
        if not isinstance(answer, dict):
            raise TypeError(f"the body is a JSON {type(answer).__name__}, not an object")
    return answer


async def post_events(
    client: Client, path: str, body: Mapping[str, Any], http_options: dict[str, Any] | None
) -> AsyncIterator[dict[str, Any]]:
    """A streamed call (``path`` ends in ``?alt=sse``): each chunk's JSON object. The
    connection is released when the stream ends, fails, or its reader stops early."""
    chunks = await _api_client(client).async_request_streamed(
        "post", path, dict(body), http_options
    )
    try:
        async for chunk in read_events(chunks):
            with reading(chunk.body):
                event = json.loads(chunk.body or "{}")
            yield cast("dict[str, Any]", event)
    finally:
        await cast("AsyncGenerator[Any, None]", chunks).aclose()
