"""Replay the recorded provider traffic in ``cassettes/`` through the official SDKs.

Both storage formats of the recordings are read (see ``cassettes/SOURCES.md``): the
pydantic-ai one (JSON bodies under ``parsed_body``) and standard VCR.py (raw bodies, some
gzip-compressed ``!!binary``). `CassetteTransport` is an httpx transport: hand it to the
SDK's ``http_client=httpx.AsyncClient(transport=...)`` and it answers each request with the
next unused recording of the same method, host and path (the query is ignored: Anthropic's
recordings went through ``?beta=true``). It keeps what the SDK sent, so a test can compare
it with what was recorded.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import yaml

from llmgine.llm import LLMRequest, LLMResponse, Provider, StreamItem

CASSETTES = Path(__file__).resolve().parent / "cassettes"


@dataclass
class Interaction:
    method: str
    uri: str
    request_body: str | None
    status: int
    headers: dict[str, str]
    body: bytes
    used: bool = False

    @property
    def host_path(self) -> tuple[str, str]:
        parts = urlsplit(self.uri)
        return parts.netloc, parts.path

    def request_json(self) -> Any:
        return None if not self.request_body else json.loads(self.request_body)


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        return value.decode()
    return str(value)


def _headers(raw: dict[str, Any] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in (raw or {}).items():
        out[key] = value[0] if isinstance(value, list) else str(value)
    return out


def load(path: str | Path) -> list[Interaction]:
    """The interactions of one cassette, in recorded order (path relative to cassettes/)."""
    file = CASSETTES / path
    data = yaml.load(file.read_text(), Loader=yaml.Loader)  # !!binary needs the full loader
    interactions = []
    for item in data["interactions"]:
        request, response = item["request"], item["response"]
        request_body: str | None
        if "parsed_body" in request:
            request_body = json.dumps(request["parsed_body"])
        else:
            request_body = _text(request.get("body"))
        headers = _headers(response.get("headers"))
        if "parsed_body" in response:
            body = json.dumps(response["parsed_body"]).encode()
        else:
            raw = response.get("body", {}).get("string", "")
            body = raw if isinstance(raw, bytes) else raw.encode()
        # httpx recomputes lengths; a stale one would truncate the body.
        headers = {k: v for k, v in headers.items() if k.lower() != "content-length"}
        interactions.append(
            Interaction(
                method=request["method"].upper(),
                uri=request["uri"],
                request_body=request_body,
                status=int(response["status"]["code"]),
                headers=headers,
                body=body,
            )
        )
    return interactions


@dataclass
class CassetteTransport(httpx.AsyncBaseTransport):
    """Answers requests from one cassette; fails loudly on a request it has no answer for."""

    interactions: list[Interaction]
    sent: list[httpx.Request] = field(default_factory=list)

    @classmethod
    def of(cls, path: str | Path) -> CassetteTransport:
        return cls(load(path))

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        await request.aread()
        self.sent.append(request)
        key = (request.url.netloc.decode(), request.url.path)
        for interaction in self.interactions:
            fits = interaction.method == request.method and interaction.host_path == key
            if fits and not interaction.used:
                interaction.used = True
                return httpx.Response(
                    interaction.status,
                    headers=interaction.headers,
                    content=interaction.body,
                    request=request,
                )
        raise AssertionError(
            f"no unused recording for {request.method} {key[0]}{key[1]} "
            f"({len(self.sent)} requests so far)"
        )

    def sent_json(self, index: int) -> Any:
        """The JSON body of the ``index``-th request the SDK sent."""
        return json.loads(self.sent[index].content)

    def recorded_json(self, index: int) -> Any:
        """The JSON body of the ``index``-th recorded request."""
        return self.interactions[index].request_json()

    def assert_all_used(self) -> None:
        unused = [i for i, x in enumerate(self.interactions) if not x.used]
        assert not unused, f"recordings never requested: {unused}"

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=self)


async def collect(
    provider: Provider, request: LLMRequest, model: str
) -> tuple[list[StreamItem], LLMResponse]:
    """Stream one call to the end: its items, and the response they assembled into."""
    items: list[StreamItem] = []
    async with provider.stream(request.model_copy(update={"model": model})) as stream:
        async for item in stream:
            items.append(item)
    assert stream.response is not None
    return items, stream.response
