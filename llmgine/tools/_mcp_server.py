"""MCP tools out: serve a `ToolManager`'s tools as a Model Context Protocol server, over
stdio or streamable HTTP, so any MCP client (Claude Desktop, an IDE, another llmgine) can
call them.

Every call runs through ``manager.execute(...)``, so the manager's argument validation,
timeouts, concurrency limit, bus events and spans apply as they do for a model's calls. A
failed call (whatever the reason) is an MCP result with ``isError`` set and the manager's
explanation as its text. The tools are read from the manager at each listing, so tools
registered later are served too.

The ``mcp`` SDK (mcp 2.x) is an optional extra, imported only when a server is made.
"""

from __future__ import annotations

import asyncio
import socket
import uuid
from typing import TYPE_CHECKING, Any

from llmgine.llm import ToolCallPart, ToolResultPart
from llmgine.tools._mcp import import_mcp

if TYPE_CHECKING:
    from collections.abc import Mapping

    from mcp.server import Server, ServerRequestContext
    from mcp_types import (
        CallToolRequestParams,
        CallToolResult,
        ListToolsResult,
        PaginatedRequestParams,
    )
    from starlette.applications import Starlette

    from llmgine.tools._manager import ToolManager

__all__ = ["mcp_http_app", "mcp_server", "serve_http", "serve_stdio"]

# Every served tool declares this output schema and sends its value as
# ``{"result": value}``: structured content must be an object in MCP before 2026-07-28,
# and a tool may return any JSON value. It is `MCPServer`'s convention too, and
# `McpServer.call_tool` unwraps it, so values come back exactly as the tool returned them.
_OUTPUT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"result": {"description": "what the tool returned: text or JSON data"}},
    "required": ["result"],
}


def _call_result(result: ToolResultPart) -> CallToolResult:
    from mcp_types import CallToolResult, TextContent

    text = [TextContent(type="text", text=result.text)]
    if result.is_error:
        return CallToolResult(content=text, is_error=True)
    return CallToolResult(content=text, structured_content={"result": result.content})


def mcp_server(
    manager: ToolManager,
    *,
    name: str = "llmgine",
    version: str = "",
    instructions: str | None = None,
) -> Server[Any]:
    """An MCP server (the SDK's low-level ``Server``) that lists ``manager``'s tools with
    their JSON schemas and runs calls through ``manager.execute``.

    Serve it with `serve_stdio` / `serve_http` (which make one), or with any SDK
    transport; connect to it in-process with ``McpServer.in_process(server)``.

    Args:
        manager: the tools to serve.
        name: the server's name, as clients show it.
        version: the server's version, as clients show it.
        instructions: told to the client's model about using these tools.
    """
    import_mcp()
    from mcp.server import Server
    from mcp_types import ListToolsResult
    from mcp_types import Tool as McpToolInfo

    async def list_tools(
        ctx: ServerRequestContext[Any], params: PaginatedRequestParams | None
    ) -> ListToolsResult:
        return ListToolsResult(
            tools=[
                McpToolInfo(
                    name=spec.name,
                    description=spec.description or None,
                    input_schema=spec.parameters,
                    output_schema=_OUTPUT_SCHEMA,
                )
                for spec in manager.specs()
            ]
        )

    async def call_tool(
        ctx: ServerRequestContext[Any], params: CallToolRequestParams
    ) -> CallToolResult:
        call = ToolCallPart(
            id=f"mcp_{uuid.uuid4().hex}", name=params.name, arguments=params.arguments or {}
        )
        return _call_result(await manager.execute(call))

    def input_schema(tool_name: str) -> Mapping[str, Any] | None:
        # What the 2026-07-28 HTTP transport checks request headers against.
        return manager.get(tool_name).parameters if tool_name in manager else None

    return Server(
        name,
        version=version,
        instructions=instructions,
        get_tool_input_schema=input_schema,
        on_list_tools=list_tools,
        on_call_tool=call_tool,
    )


async def serve_stdio(manager: ToolManager, *, name: str = "llmgine") -> None:
    """Serve ``manager``'s tools over this process's stdin and stdout until stdin closes.

    stdout then carries MCP messages only: log to stderr (as `logging` does by default),
    never ``print``.
    """
    import_mcp()
    from mcp.server.stdio import stdio_server

    server = mcp_server(manager, name=name)
    async with stdio_server() as (read_stream, write_stream):
        await server.run(read_stream, write_stream, server.create_initialization_options())


def mcp_http_app(
    manager: ToolManager,
    *,
    name: str = "llmgine",
    path: str = "/mcp",
    host: str = "127.0.0.1",
    json_response: bool = False,
    stateless: bool = False,
) -> Starlette:
    """An ASGI app (Starlette) serving ``manager``'s tools over streamable HTTP at
    ``path``; run it with any ASGI server, or use `serve_http`. Its lifespan runs the MCP
    sessions: mounted inside another app, enter it from that app's lifespan.

    Args:
        host: the host it is served on; for 127.0.0.1 / localhost the SDK turns on DNS
            rebinding protection (only local Host and Origin headers are accepted).
        json_response: answer with plain JSON instead of an event stream.
        stateless: no MCP session between requests (for load-balanced replicas).
    """
    server = mcp_server(manager, name=name)
    return server.streamable_http_app(
        streamable_http_path=path,
        host=host,
        json_response=json_response,
        stateless_http=stateless,
    )


async def serve_http(
    manager: ToolManager,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    path: str = "/mcp",
    name: str = "llmgine",
    log_level: str = "warning",
) -> None:
    """Serve ``manager``'s tools over streamable HTTP at ``http://{host}:{port}{path}``
    (with uvicorn) until cancelled; cancelling shuts the server down gracefully.

    Example:
        asyncio.run(serve_http(ToolManager([get_weather]), port=8765))
    """
    import_mcp()
    import uvicorn

    app = mcp_http_app(manager, name=name, path=path, host=host)
    # log_config=None: leave the application's logging configuration alone.
    config = uvicorn.Config(app, log_level=log_level, log_config=None)
    server = uvicorn.Server(config)
    # Bound here, not by uvicorn, whose bind failure is a SystemExit (that would end the
    # caller's event loop): a port in use is then a plain OSError naming the address.
    try:
        listener = socket.create_server((host, port))
    except OSError as exc:
        raise OSError(
            exc.errno, f"cannot serve MCP on {host}:{port}: {exc.strerror}; choose another port="
        ) from exc
    with listener:
        serving = asyncio.ensure_future(server.serve(sockets=[listener]))
        try:
            await asyncio.shield(serving)
        except asyncio.CancelledError:
            # uvicorn stops at its own pace: ask it to, and let it close its connections
            # and sockets instead of abandoning them half-open.
            server.should_exit = True
            await asyncio.wait({serving})
            raise
