"""MCP tools in: connect to a Model Context Protocol server and use its tools as llmgine
`Tool`\\ s, over stdio (a command llmgine launches) or streamable HTTP (a URL).

Each remote tool becomes ``Tool.from_schema(...)`` whose call is the server's
``tools/call``. A result maps to the tool's return value (see `McpServer.call_tool`); a
result the server marks ``isError`` raises `McpToolError` with the server's text, which a
`ToolManager` turns into an error `ToolResultPart` for the model.

Lifetimes. The SDK's transports are anyio task groups and cancel scopes, which must be
entered and exited by one and the same task. Callers often cannot promise that: a notebook
runs each cell in a new task, and a pytest fixture sets up and tears down in different
tasks. So `McpServer` enters the connection (the SDK ``Client`` and its transport, in an
``AsyncExitStack`` the object owns) inside one *owner task* it starts in ``connect()``, and
that task exits the stack when ``aclose()`` asks it to. Calls may come from any task on the
same event loop; ``connect()`` and ``aclose()`` may be called from different tasks.

The ``mcp`` SDK (mcp 2.x) is an optional extra, imported only when a connection is opened.
"""

from __future__ import annotations

import asyncio
import os
import re
import shlex
import sys
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import AsyncExitStack
from types import ModuleType
from typing import TYPE_CHECKING, Any, Literal, Self, TextIO, TypeVar
from urllib.parse import urlsplit

from llmgine._redact import add_credential, add_credentials_in, redacting_logger
from llmgine.errors import (
    McpConnectionError,
    McpError,
    McpNotInstalledError,
    McpToolError,
)

if TYPE_CHECKING:
    from mcp import Client
    from mcp.server import Server
    from mcp.server.mcpserver import MCPServer
    from mcp_types import CallToolResult, ContentBlock, ListToolsResult
    from mcp_types import Tool as McpToolInfo

    from llmgine.tools._manager import ToolManager
    from llmgine.tools._tool import Tool

__all__ = ["McpServer", "import_mcp"]

logger = redacting_logger("llmgine.tools.mcp")

# --- the SDK --------------------------------------------------------------------------

_INSTALL = "pip install 'llmgine[mcp]'"


def import_mcp() -> ModuleType:
    """Import the ``mcp`` SDK lazily, with an error naming the extra that installs it."""
    try:
        import mcp
    except ImportError as exc:
        raise McpNotInstalledError(f"MCP support needs the official 'mcp' SDK: {_INSTALL}") from exc
    if not hasattr(mcp, "Client"):  # mcp 1.x: a different API (FastMCP, ClientSession)
        raise McpNotInstalledError(f"llmgine's MCP support needs mcp>=2: {_INSTALL} --upgrade")
    return mcp


# SDK's defaults for its own HTTP client: requests 30 s, a response stream may idle 300 s.
_HTTP_TIMEOUT = 30.0
_HTTP_READ_TIMEOUT = 300.0

# The protocol's "connection closed" error code (mcp_types.CONNECTION_CLOSED).
_CONNECTION_CLOSED = -32000

# What `MCPServer` (and llmgine's own `mcp_server`) declare for a tool whose structured
# result is any JSON value: an object with one "result" field that wraps it.
_WRAPPED_KEY = "result"

# Tool names llmgine accepts (see `Tool`): other characters of an MCP name become "_".
_NOT_IN_NAME = re.compile(r"[^A-Za-z0-9_-]")

# Owner tasks are referenced here while they run: the event loop keeps only weak
# references to tasks, and a connection must not be collected while it is open.
_OWNER_TASKS: set[asyncio.Task[None]] = set()

# How a connection starts: enter what it needs on the stack, return what `mcp.Client`
# connects to (a transport, stdio parameters, a server object).
_Target = Callable[[AsyncExitStack], Awaitable[Any]]

Transport = Literal["stdio", "http", "in-process"]

_T = TypeVar("_T")


def _root_cause(exc: BaseException) -> BaseException:
    """The first real error inside the SDK's (nested) task groups' exception groups."""
    while isinstance(exc, BaseExceptionGroup):
        inner = exc.exceptions  # cancellations are only echoes of the error
        exc = next((e for e in inner if not isinstance(e, asyncio.CancelledError)), inner[0])
    return exc


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _is_connection_closed(exc: BaseException) -> bool:
    return getattr(exc, "code", None) == _CONNECTION_CLOSED


def _is_unreachable(exc: BaseException) -> bool:
    """Whether the HTTP client could not reach the server at all."""
    import httpx2

    return isinstance(exc, OSError | httpx2.TransportError)


def _is_wrapped_result(output_schema: Mapping[str, Any] | None, structured: Any) -> bool:
    """Whether a structured result is the ``{"result": value}`` wrapper its schema declares."""
    if not output_schema or not isinstance(structured, dict) or set(structured) != {_WRAPPED_KEY}:
        return False
    properties = output_schema.get("properties")
    return isinstance(properties, dict) and set(properties) == {_WRAPPED_KEY}


def _content_value(content: Sequence[ContentBlock]) -> Any:
    """Unstructured content as a return value: none is None, one text block its text; else
    a list (texts as strings, images, audio and resources as their MCP JSON)."""
    from mcp_types import TextContent

    if not content:
        return None
    if len(content) == 1 and isinstance(content[0], TextContent):
        return content[0].text
    return [
        block.text
        if isinstance(block, TextContent)
        else block.model_dump(mode="json", by_alias=True, exclude_none=True)
        for block in content
    ]


def _error_text(content: Sequence[ContentBlock]) -> str:
    from mcp_types import TextContent

    text = "\n".join(block.text for block in content if isinstance(block, TextContent))
    return text or "the MCP tool reported an error without saying why"


class McpServer:
    """A connection to one MCP server, whose tools llmgine can call like local tools.

    Make one with `McpServer.stdio` (launch a command), `McpServer.http` (a streamable HTTP
    URL) or `McpServer.in_process` (an SDK server object, e.g. in tests); connect with
    ``async with`` (or ``await server.connect()`` ... ``await server.aclose()``, from any
    tasks of one event loop). Closing a stdio server ends its process.

    Example:
        async with McpServer.stdio("uvx", ["mcp-server-fetch"]) as fetch:
            tools = await fetch.load_tools(prefix="fetch")
            result = await run_tool_loop("openai:gpt-4o", "Summarise example.com", tools)
    """

    def __init__(
        self,
        target: _Target,
        *,
        name: str,
        transport: Transport,
        connect_timeout: float = 30.0,
    ) -> None:
        """Prefer the constructors `stdio`, `http` and `in_process`."""
        if not connect_timeout > 0:
            raise ValueError(f"connect_timeout must be positive seconds, got {connect_timeout}")
        self.name = name
        self.transport = transport
        self.connect_timeout = connect_timeout
        self._target = target
        self._client: Client | None = None
        self._owner: asyncio.Task[None] | None = None
        self._closing = asyncio.Event()
        self._stack_error: BaseException | None = None  # from exiting the owner's stack
        self._lost: BaseException | None = None  # why a live connection went away
        self._output_schemas: dict[str, dict[str, Any] | None] | None = None

    # --- constructors --------------------------------------------------------------------

    @classmethod
    def stdio(
        cls,
        command: str,
        args: Sequence[str] = (),
        *,
        env: Mapping[str, str] | None = None,
        cwd: str | os.PathLike[str] | None = None,
        name: str | None = None,
        connect_timeout: float = 30.0,
        errlog: TextIO | None = None,
    ) -> McpServer:
        """A server that llmgine launches as ``command args...`` and talks to over its stdin
        and stdout.

        Args:
            command: the executable (e.g. ``"uvx"``, ``"npx"``, ``sys.executable``).
            args: its arguments.
            env: environment variables for it. It does *not* inherit our whole
                environment, only the SDK's safe basics (``PATH``, ``HOME``, ...), so
                pass the API keys and settings it needs here.
            cwd: its working directory (default: ours).
            name: what errors call it (default: the command line).
            connect_timeout: seconds to start it and finish the MCP handshake.
            errlog: where its stderr goes (default: our ``sys.stderr``, so its errors show
                up); a file with a file descriptor.
        """
        command_line = shlex.join([command, *args])
        add_credentials_in(env or {})  # e.g. GITHUB_TOKEN for the server: never recorded

        async def transport(stack: AsyncExitStack) -> Any:
            from mcp.client.stdio import StdioServerParameters, stdio_client

            env_ = dict(env) if env is not None else None
            parameters = StdioServerParameters(command=command, args=list(args), env=env_, cwd=cwd)
            return stdio_client(parameters, errlog=errlog or sys.stderr)

        return cls(
            transport,
            name=name or command_line,
            transport="stdio",
            connect_timeout=connect_timeout,
        )

    @classmethod
    def http(
        cls,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        name: str | None = None,
        connect_timeout: float = 30.0,
    ) -> McpServer:
        """A server reached over streamable HTTP at ``url`` (usually ending in ``/mcp``).

        Args:
            url: the endpoint, e.g. ``"http://127.0.0.1:8000/mcp"``.
            headers: sent with every request (e.g. ``{"Authorization": "Bearer ..."}``).
            name: what errors call it (default: the URL).
            connect_timeout: seconds to connect and finish the MCP handshake.
        """
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"an MCP server URL starts with http:// or https://, got {url!r}")
        # Credentials handed over here never reach a span, event or log.
        add_credentials_in(headers or {})
        if password := urlsplit(url).password:
            add_credential(password)

        async def transport(stack: AsyncExitStack) -> Any:
            import httpx2
            from mcp.client.streamable_http import streamable_http_client

            timeout = httpx2.Timeout(_HTTP_TIMEOUT, read=_HTTP_READ_TIMEOUT)
            http_client = httpx2.AsyncClient(headers=dict(headers or {}), timeout=timeout)
            await stack.enter_async_context(http_client)
            return streamable_http_client(url, http_client=http_client)

        return cls(transport, name=name or url, transport="http", connect_timeout=connect_timeout)

    @classmethod
    def in_process(
        cls,
        server: Server[Any] | MCPServer[Any],
        *,
        name: str | None = None,
        connect_timeout: float = 30.0,
    ) -> McpServer:
        """An SDK server object (a low-level ``Server`` or an ``MCPServer``) in this
        process, e.g. `mcp_server(manager)` in a test: no subprocess, no network."""

        async def itself(stack: AsyncExitStack) -> Any:
            return server

        return cls(
            itself,
            name=name or server.name,
            transport="in-process",
            connect_timeout=connect_timeout,
        )

    # --- lifetime ------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        """Whether the connection is open (and was not lost)."""
        return self._client is not None and self._lost is None

    async def __aenter__(self) -> Self:
        return await self.connect()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def connect(self) -> Self:
        """Start (or reach) the server and finish the MCP handshake.

        Raises:
            McpConnectionError: it could not be started or reached, or did not answer
                within ``connect_timeout`` (the message says what to check).
            McpNotInstalledError: the ``mcp`` SDK is missing.
        """
        if self._owner is not None:
            raise McpConnectionError(
                f"MCP server {self.name!r} is already connected; await server.aclose() "
                f"before connecting again",
                server=self.name,
            )
        import_mcp()  # fail here, in the caller's task, with the install hint
        ready = asyncio.get_running_loop().create_future()
        self._closing = asyncio.Event()
        self._stack_error = self._lost = None
        self._output_schemas = None
        owner = asyncio.create_task(self._own_connection(ready), name=f"llmgine-mcp {self.name}")
        _OWNER_TASKS.add(owner)
        owner.add_done_callback(_OWNER_TASKS.discard)
        self._owner = owner
        try:
            done, _ = await asyncio.wait({ready}, timeout=self.connect_timeout)
        except BaseException:  # cancelled while connecting: stop it, then go on cancelling
            await self._stop_owner(cancel=True)
            raise
        if not done:
            await self._stop_owner(cancel=True)
            expected = {
                "stdio": "check that the command starts an MCP server on stdio",
                "http": "check that the URL is the server's MCP endpoint (often .../mcp)",
                "in-process": "check the server's lifespan and handlers",
            }[self.transport]
            raise McpConnectionError(
                f"MCP server {self.name!r} did not complete the MCP handshake within "
                f"{self.connect_timeout:g} s: {expected}, or pass a longer connect_timeout=",
                server=self.name,
            )
        error = ready.exception()
        if error is not None:
            await self._stop_owner(cancel=False)
            raise self._connect_error(_root_cause(error)) from error
        return self

    async def aclose(self) -> None:
        """Close the connection (a stdio server's process ends); a no-op if not connected.

        Raises:
            McpConnectionError: closing failed (unless the connection was already lost,
                which calls reported; then it is logged).
        """
        if self._owner is None:
            return
        await self._stop_owner(cancel=False)
        error, self._stack_error = self._stack_error, None
        if error is None:
            return
        if self._lost is not None:
            logger.warning(
                "closing MCP server %r after its connection was lost: %s",
                self.name,
                _describe(_root_cause(error)),
            )
            return
        raise McpConnectionError(
            f"closing MCP server {self.name!r} failed: {_describe(_root_cause(error))}",
            server=self.name,
        ) from error

    async def _own_connection(self, ready: asyncio.Future[None]) -> None:
        """The owner task: enter the connection, hold it until asked to close, exit it."""
        try:
            async with AsyncExitStack() as stack:
                target = await self._target(stack)
                self._client = await stack.enter_async_context(import_mcp().Client(target))
                ready.set_result(None)
                await self._closing.wait()
        except asyncio.CancelledError:
            if not ready.done():
                ready.cancel()
            raise
        except Exception as exc:  # reported to connect() or aclose(), in their tasks
            if not ready.done():
                ready.set_exception(exc)
            else:
                self._stack_error = exc
                if not self._closing.is_set():  # the transport failed under a live session
                    self._lost = exc
        finally:
            self._client = None

    async def _stop_owner(self, *, cancel: bool) -> None:
        owner, self._owner = self._owner, None
        if owner is None:
            return
        if cancel:
            owner.cancel()
        self._closing.set()
        # Not `await owner`: being cancelled here must not cancel the owner's teardown.
        await asyncio.wait({owner})

    def _connect_error(self, cause: BaseException) -> McpConnectionError:
        closed = _is_connection_closed(cause)
        if self.transport == "stdio" and isinstance(cause, OSError):
            hint = "check that the command exists and is executable (on PATH, or a full path)"
        elif self.transport == "stdio" and closed:
            hint = (
                "the process exited, or wrote something other than MCP messages to stdout, "
                "before the handshake finished: run the command yourself to see its errors"
            )
        elif self.transport == "http" and _is_unreachable(cause):
            hint = "check that the server is running, and the host and port of the URL"
        elif self.transport == "http":
            hint = (
                "check the URL's path (often /mcp), the headers it needs (authorization) "
                "and the server's logs"
            )
        else:
            hint = "check the server's own error output or logs"
        return McpConnectionError(
            f"could not connect to MCP server {self.name!r} ({_describe(cause)}): {hint}",
            server=self.name,
        )

    async def _request(self, action: str, send: Callable[[Client], Awaitable[_T]]) -> _T:
        """Send one request on the connection; a connection that is not there, or ends under
        the request, is an `McpConnectionError` that says what to do."""
        from mcp import MCPError

        client, owner = self._client, self._owner
        if self._lost is not None:
            raise McpConnectionError(
                f"the connection to MCP server {self.name!r} was lost "
                f"({_describe(_root_cause(self._lost))}), so it cannot {action}. Check the "
                f"server's error output or logs, then aclose() and connect() again",
                server=self.name,
            )
        if client is None or owner is None or self._closing.is_set():
            raise McpConnectionError(
                f"MCP server {self.name!r} is not connected, so it cannot {action}: use "
                f"`async with McpServer...(...) as server:` or `await server.connect()` first",
                server=self.name,
            )
        request = asyncio.ensure_future(send(client))
        try:
            # The owner task ends with the connection, and some transports (in-process)
            # would leave a request waiting forever when it does.
            await asyncio.wait({request, owner}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            if not request.done():
                request.cancel()
                await asyncio.wait({request})
        if request.cancelled():
            raise self._lost_error(action, self._lost or self._stack_error)
        try:
            return request.result()
        except MCPError as exc:
            if _is_connection_closed(exc):
                raise self._lost_error(action, exc) from exc
            raise

    def _lost_error(self, action: str, cause: BaseException | None) -> McpConnectionError:
        if self._closing.is_set():  # not lost: aclose() ended it under this request
            return McpConnectionError(
                f"MCP server {self.name!r} was closed while it was asked to {action}",
                server=self.name,
            )
        self._lost = cause or ConnectionError("the connection ended")
        return McpConnectionError(
            f"MCP server {self.name!r} closed the connection while it was asked to {action}: "
            f"the server stopped (crashed, exited or was killed) or the network dropped. "
            f"Check its error output (stderr of a stdio server, logs of an HTTP one), then "
            f"aclose() and connect() again",
            server=self.name,
        )

    # --- tools ---------------------------------------------------------------------------

    async def list_tools(self) -> list[McpToolInfo]:
        """The server's tools as the SDK describes them (every page of the listing)."""
        from mcp import MCPError

        tools: list[McpToolInfo] = []
        cursor: str | None = None
        try:
            while True:
                page = await self._list_page(cursor)
                tools.extend(page.tools)
                cursor = page.next_cursor
                if not cursor:
                    break
        except MCPError as exc:
            raise McpError(
                f"MCP server {self.name!r} refused to list its tools ({exc}): check that it "
                f"is an MCP server that offers tools",
                server=self.name,
            ) from exc
        self._output_schemas = {tool.name: tool.output_schema for tool in tools}
        return tools

    async def _list_page(self, cursor: str | None) -> ListToolsResult:
        return await self._request("list its tools", lambda c: c.list_tools(cursor=cursor))

    async def load_tools(
        self, *, prefix: str | None = None, include: Sequence[str] | None = None
    ) -> list[Tool]:
        """The server's tools as llmgine `Tool`\\ s, each calling `call_tool`.

        Args:
            prefix: names the tools ``f"{prefix}_{name}"`` (to tell servers apart); the
                server is still called with its own names.
            include: only these tools (by the server's names).

        Characters a model provider does not accept in a tool name (anything but letters,
        digits, ``_`` and ``-``) become ``_``.
        """
        tools = await self.list_tools()
        if include is not None:
            missing = sorted(set(include) - {tool.name for tool in tools})
            if missing:
                known = ", ".join(sorted(tool.name for tool in tools)) or "none"
                raise McpToolError(
                    f"MCP server {self.name!r} has no tool {', '.join(map(repr, missing))}; "
                    f"its tools are: {known}",
                    server=self.name,
                    tool=missing[0],
                )
            tools = [tool for tool in tools if tool.name in include]
        return [self._as_tool(info, prefix) for info in tools]

    async def register_tools(
        self,
        manager: ToolManager,
        *,
        prefix: str | None = None,
        include: Sequence[str] | None = None,
    ) -> list[Tool]:
        """`load_tools` and register each in ``manager``; returns the tools."""
        tools = await self.load_tools(prefix=prefix, include=include)
        for tool in tools:
            manager.register(tool)
        return tools

    def _as_tool(self, info: McpToolInfo, prefix: str | None) -> Tool:
        from llmgine.tools._tool import Tool

        remote_name = info.name

        async def call(arguments: dict[str, Any]) -> Any:
            return await self.call_tool(remote_name, arguments)

        local_name = _NOT_IN_NAME.sub("_", f"{prefix}_{remote_name}" if prefix else remote_name)
        description = info.description or info.title or ""
        return Tool.from_schema(local_name, description, dict(info.input_schema), call)

    async def call_tool(self, name: str, arguments: Mapping[str, Any] | None = None) -> Any:
        """Call the server's tool ``name`` and return its result as a tool's value:

        - structured content if the server sent some (unwrapped from ``{"result": ...}``
          when the tool's output schema declares that wrapper, as ``MCPServer`` and
          llmgine's `mcp_server` do for values that are not objects);
        - else the text of a single text block;
        - else a list of the blocks (texts as strings, other content as its MCP JSON).

        Raises:
            McpToolError: the server marked the result ``isError`` (the message is its
                text), or answered the call with a protocol error.
            McpConnectionError: not connected, or the connection was lost.
        """
        from mcp import MCPError

        if self._output_schemas is None:  # the unwrapping needs the declared schemas
            await self.list_tools()
        try:
            result = await self._request(
                f"call tool {name!r}", lambda client: client.call_tool(name, dict(arguments or {}))
            )
        except MCPError as exc:
            raise McpToolError(str(exc), server=self.name, tool=name) from exc
        return self._result_value(name, result)

    def _result_value(self, name: str, result: CallToolResult) -> Any:
        if result.is_error:
            raise McpToolError(_error_text(result.content), server=self.name, tool=name)
        structured = result.structured_content
        if structured is None:
            return _content_value(result.content)
        output_schema = (self._output_schemas or {}).get(name)
        if _is_wrapped_result(output_schema, structured):
            return structured[_WRAPPED_KEY]
        return structured

    def __repr__(self) -> str:
        state = "connected" if self.connected else "not connected"
        return f"<McpServer {self.name!r} ({state})>"
