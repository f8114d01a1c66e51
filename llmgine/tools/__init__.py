"""Tools for models: ``@tool`` from Python functions, a `ToolManager`, and the tool loop.

Example:
    from llmgine.tools import ToolManager, tool

    @tool
    def get_weather(city: str) -> str:
        \"\"\"The current weather in a city.\"\"\"
        return f"sunny in {city}"

    result = await run_tool_loop("openai:gpt-4o-mini", "Weather in Paris?", [get_weather])
    print(result.text)       # model -> get_weather -> model, every step on the bus and traced

    manager = ToolManager([get_weather], bus=bus, timeout=10)
    results = await manager.execute_all(response.tool_calls)   # concurrent, in call order

    async with McpServer.stdio("uvx", ["mcp-server-fetch"]) as fetch:   # MCP tools
        tools = await fetch.load_tools(prefix="fetch")

MCP needs the ``mcp`` extra (the SDK is imported only when a connection opens).
"""

from llmgine.errors import (
    DuplicateToolError,
    McpConnectionError,
    McpError,
    McpNotInstalledError,
    McpToolError,
    ToolArgumentsError,
    ToolDefinitionError,
    ToolError,
    ToolLoopLimitError,
    ToolTimeoutError,
    UnknownToolError,
)
from llmgine.tools._events import (
    StopReason,
    ToolCallFailed,
    ToolCallFinished,
    ToolCallLateFinished,
    ToolCallStarted,
    ToolErrorKind,
    ToolLoopFinished,
    ToolLoopRoundFinished,
    ToolLoopRoundStarted,
)
from llmgine.tools._loop import (
    RoundStart,
    ToolLoopItem,
    ToolLoopResult,
    ToolLoopStream,
    ToolResultItem,
    run_tool_loop,
    stream_tool_loop,
)
from llmgine.tools._manager import ExecuteTool, ToolManager
from llmgine.tools._mcp import McpServer, import_mcp
from llmgine.tools._mcp_server import mcp_http_app, mcp_server, serve_http, serve_stdio
from llmgine.tools._schema import clean_schema
from llmgine.tools._tool import Tool, tool

__all__ = [  # plainly sorted, as tests/test_public_api.py checks
    "DuplicateToolError",
    "ExecuteTool",
    "McpConnectionError",
    "McpError",
    "McpNotInstalledError",
    "McpServer",
    "McpToolError",
    "RoundStart",
    "StopReason",
    "Tool",
    "ToolArgumentsError",
    "ToolCallFailed",
    "ToolCallFinished",
    "ToolCallLateFinished",
    "ToolCallStarted",
    "ToolDefinitionError",
    "ToolError",
    "ToolErrorKind",
    "ToolLoopFinished",
    "ToolLoopItem",
    "ToolLoopLimitError",
    "ToolLoopResult",
    "ToolLoopRoundFinished",
    "ToolLoopRoundStarted",
    "ToolLoopStream",
    "ToolManager",
    "ToolResultItem",
    "ToolTimeoutError",
    "UnknownToolError",
    "clean_schema",
    "import_mcp",
    "mcp_http_app",
    "mcp_server",
    "run_tool_loop",
    "serve_http",
    "serve_stdio",
    "stream_tool_loop",
    "tool",
]
