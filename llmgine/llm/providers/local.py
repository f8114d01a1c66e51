"""The ``local:`` provider: a real model on this machine, offline, no key.

``get_model("local:smollm2")`` (or ``local:/path/to/model.gguf``) starts llama.cpp's
OpenAI-compatible server in its own process on first use (`llmgine.local`), and then talks
to it exactly as to any OpenAI-compatible server: this adapter is `OpenAICompatibleProvider`
pointed at wherever the server listens, plus two things a small local model needs:

* **A forced tool call is constrained, not hoped for.** With ``tool_choice="required"`` or
  a named tool, the request asks llama.cpp for JSON matching ``{"name": ..., "arguments":
  ...}`` of the allowed tools (its grammar guarantees the shape), and the answer comes back
  as that tool call. A 135M model almost never decides to call a tool by itself, but
  fills in a call's arguments well when made to. With ``"auto"`` the tools go to the
  server as they are: larger models call them through the chat template.
* **A server that died is said so, and replaced.** If the server's process is gone when a
  call fails, the error is a retryable `LocalServerError` with the end of its log, and the
  next call (or the retry) starts a new server.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from llmgine.errors import LLMConnectionError, LocalServerError, ProviderNotInstalledError
from llmgine.llm._provider import reading, released, whole_response
from llmgine.llm._request import LLMRequest, ResponseFormat, ToolName
from llmgine.llm._response import LLMResponse
from llmgine.llm._stream import Finish, StreamAssembler, StreamItem, TextDelta, ToolCallDelta
from llmgine.llm.providers.openai import OpenAICompatibleProvider

if TYPE_CHECKING:
    import httpx
    import httpx2

    from llmgine.local import LocalServer, LocalServers

__all__ = ["LocalProvider"]

_DYING_GRACE = 3.0  # seconds a server whose connection broke may take to finish exiting
_PLACEHOLDER_URL = "http://127.0.0.1:9/v1"  # never called: each call goes to its server


class LocalProvider(OpenAICompatibleProvider):
    """Models served on this machine by llama.cpp (see the module docstring).

    Args:
        threads: CPU threads the server uses (default 1, or ``$LLMGINE_LOCAL_THREADS``).
        parallel: requests the server answers at once (each with the full context).
        context: tokens of context per request (default: the model's catalog value).
        port: the port to listen on (default: any free port).
        servers: the `LocalServers` to start and find servers with (default: this
            process's, which stops the servers it started when the process exits).
        timeout / http_client: as for any OpenAI-compatible server.
    """

    offline = True
    address_after_start = True  # the first call starts the server

    def __init__(
        self,
        *,
        threads: int | None = None,
        parallel: int = 1,
        context: int | None = None,
        port: int | None = None,
        servers: LocalServers | None = None,
        timeout: float | None = None,
        http_client: httpx.AsyncClient | httpx2.AsyncClient | None = None,
    ) -> None:
        from llmgine.local._catalog import installed

        if not installed("xllamacpp"):
            raise ProviderNotInstalledError(
                "the 'local' provider serves models with llama.cpp's server, from the "
                "'xllamacpp' package, which is not installed: pip install \"llmgine[local]\" "
                "and then the model: llmgine local install",
                provider="local",
            )
        from llmgine.local import ServerSettings, default_servers

        super().__init__(
            "local",
            base_url=_PLACEHOLDER_URL,
            api_key="not-needed",
            timeout=timeout,
            http_client=http_client,
        )
        defaults = ServerSettings.default()
        self.settings = ServerSettings(
            threads=threads or defaults.threads, parallel=parallel, port=port
        )
        self.context = context
        self.servers = servers or default_servers()
        self._server: LocalServer | None = None
        self._clients: dict[str, Any] = {}

    @property
    def label(self) -> str:
        return "local model"

    @property
    def base_url(self) -> str | None:
        """The address of the server the last call went to (None before the first)."""
        return self._server.base_url if self._server is not None else None

    async def server_for(self, model: str) -> LocalServer:
        """The running server for ``model`` (started if need be); calls use it too."""
        from llmgine.local import resolve_local_model

        local = resolve_local_model(model, context=self.context)
        server = await self.servers.ensure(local, self.settings)
        if server.base_url not in self._clients:
            self._clients[server.base_url] = self._client.with_options(base_url=server.base_url)
        self._server = server
        self._client = self._clients[server.base_url]
        return server

    # -- the calls -------------------------------------------------------------------------

    async def _generate(self, request: LLMRequest, model: str) -> LLMResponse:
        server = await self.server_for(model)
        forced = _forced_call_format(request)
        try:
            if forced is None:
                return await super()._generate(request, model)
            assembler = StreamAssembler(self.name, model)
            items = [item async for item in self._forced(request, model, forced)]
            with reading(items):
                return whole_response(assembler, items, raw=None, marker="a finish reason")
        except Exception as exc:
            if await self._alive_after(server, exc):
                raise
            raise self._stopped(server, received="") from exc

    async def _stream(self, request: LLMRequest, model: str) -> AsyncIterator[StreamItem]:
        server = await self.server_for(model)
        forced = _forced_call_format(request)
        received = 0
        finished = False
        try:
            items = (
                super()._stream(request, model)
                if forced is None
                else self._forced(request, model, forced)
            )
            async with released(items):  # a reader that stops early stops the server's answer
                async for item in items:
                    if isinstance(item, TextDelta):
                        received += len(item.text)
                    finished = finished or isinstance(item, Finish)
                    yield item
        except Exception as exc:
            if await self._alive_after(server, exc):
                raise
            raise self._stopped(server, received=f"{received} characters") from exc
        if not finished and not await server.still_alive(grace=_DYING_GRACE):
            raise self._stopped(server, received=f"{received} characters")

    async def _forced(
        self, request: LLMRequest, model: str, forced: ResponseFormat
    ) -> AsyncIterator[StreamItem]:
        """The forced tool call: asked for as constrained JSON, answered as a call."""
        constrained = request.model_copy(update={"tool_choice": None, "response_format": forced})
        text: list[str] = []
        answer = super()._stream(constrained, model)
        async with released(answer):
            async for item in answer:
                if isinstance(item, TextDelta):
                    text.append(item.text)
                elif isinstance(item, Finish):
                    yield from_json_call("".join(text))
                    yield (
                        Finish(reason="tool_calls", raw=item.raw)
                        if _parses("".join(text))
                        else item
                    )
                else:
                    yield item

    async def _alive_after(self, server: LocalServer, exc: Exception) -> bool:
        """Whether the server still runs after ``exc`` (waiting a moment for a process
        whose connection broke to finish dying)."""
        broken = isinstance(self._translated(exc, server.model.name), LLMConnectionError)
        return await server.still_alive(grace=_DYING_GRACE if broken else 0.0)

    def _stopped(self, server: LocalServer, *, received: str) -> LocalServerError:
        """The retryable error of a call whose server's process is gone; the server is
        forgotten, so the next call starts another. (While the process runs, a failure
        is the provider's own error, as for any server.)"""
        self.servers.forget(server)
        after = f" after {received}" if received else ""
        return LocalServerError(
            f"the local model server for {server.model.name!r} (pid {server.pid}) stopped "
            f"while answering{after}; the next call starts a new one (llmgine's retry does "
            f"so by itself). Its log, {server.log}, ends with:\n{server.log_tail()}",
            model=server.model.name,
            log=server.log_tail(),
        )


def _parses(text: str) -> bool:
    try:
        answer = json.loads(text)
    except ValueError:
        return False
    return isinstance(answer, dict) and isinstance(answer.get("name"), str)


def from_json_call(text: str) -> StreamItem:
    """The constrained answer as a tool call (or as text, if it was cut short)."""
    if not _parses(text):  # cut by max_tokens: what came is text, and the finish says why
        return TextDelta(text=text)
    answer = json.loads(text)
    return ToolCallDelta(
        key="forced",
        id=f"call_{uuid.uuid4().hex[:24]}",
        name=answer["name"],
        arguments=json.dumps(answer.get("arguments") or {}),
    )


def _forced_call_format(request: LLMRequest) -> ResponseFormat | None:
    """The JSON schema of the calls a forcing ``tool_choice`` allows, or None."""
    choice = request.tool_choice
    if not request.tools or choice is None or choice in ("auto", "none"):
        return None
    allowed = [
        spec
        for spec in request.tools
        if not isinstance(choice, ToolName) or spec.name == choice.name
    ]
    calls = [
        {
            "type": "object",
            "properties": {"name": {"const": spec.name}, "arguments": spec.parameters},
            "required": ["name", "arguments"],
        }
        for spec in allowed
    ]
    if not calls:  # a named tool that is not offered: the server says so
        return None
    schema = calls[0] if len(calls) == 1 else {"anyOf": calls}
    return ResponseFormat(name="tool_call", json_schema=schema, strict=False)
