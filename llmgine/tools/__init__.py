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

Reference
=========

Tools and the tool loop
-----------------------

```python
from typing import Literal
from llmgine.tools import ToolManager, run_tool_loop, stream_tool_loop, tool

@tool
def get_weather(city: str, unit: Literal["c", "f"] = "c") -> dict[str, float]:
    \"\"\"The current weather.

    Args:
        city: The city, e.g. "Paris".
        unit: Celsius or Fahrenheit.
    \"\"\"
    return {"temp": 18.0}

result = await run_tool_loop("openai:gpt-4o-mini", "Weather in Paris and Oslo?", [get_weather])
print(result.text, result.rounds, result.usage)          # model -> tools -> model, until done
async for item in stream_tool_loop(model, prompt, tools):   # RoundStart, stream items,
    ...                                                       # ToolResultItem, the result
```

**Schemas from functions.** `@tool` (or any plain function handed to a `ToolManager` or the
loop) builds one pydantic model from the signature: type hints (`Optional`, `Literal`,
`Enum`, nested pydantic models, lists, dicts, defaults) and the parameter descriptions of
Google, NumPy or reST docstrings (`docstring-parser`). The same model validates (and
coerces) the arguments the model sends, so schema and validation never disagree; the schema
is cleaned for providers (no `title` noise, `$defs` inlined, `additionalProperties: false`).

**`ToolManager(tools, bus=..., session=..., max_concurrency=8, timeout=30)`** runs sync tools
in a worker thread and async tools on the loop, at most `max_concurrency` at once, each
within its timeout. `execute_all(calls)` runs one turn's parallel calls concurrently and
returns the results in the order of the calls. A tool that raises, times out, is unknown
or gets invalid arguments becomes a `ToolResultPart(is_error=True)` telling the model what
went wrong (validation errors per field), is published as `ToolCallFailed`, and never
breaks the loop; cancellation still propagates. A timeout cancels an async tool, but a
sync tool's thread cannot be stopped: the model, `ToolCallFailed` and the span are told it
"timed out after N s; ... it may still be running and its effects may still happen"
(`ToolTimeoutError.may_still_run`), and when the thread ends, a warning on the
`llmgine.tools` logger and a `ToolCallLateFinished` event (ok, or the error it raised)
name the call id; a sync call that is cancelled is followed the same way. Such abandoned
threads no longer count against `max_concurrency`. Invalid arguments are described by field
and problem (`password: Input should be a valid integer`); the values sent appear in that
text, `ToolArgumentsError.errors`, events, spans, JSONL and console only when content
capture is on (a `ToolManager` asks its tracer; `Tool.run` takes ``show_values=True``),
and then redacted (whole under keys such as `password` or
`authorization`). Every execution is a `tool_span` and publishes
`ToolCallStarted`/`ToolCallFinished`.

**The loop** sends each round's assistant message back exactly as it came (reasoning
signatures, Gemini thought signatures), publishes `ToolLoopRoundStarted`/`Finished` and
`ToolLoopFinished`, and stops when the model answers without tool calls, or raises
`ToolLoopLimitError` after `max_rounds` model calls (its `.result` holds the valid
conversation so far, to continue from). A tool made with `ends_loop=True` ends the loop
with its result (an "answer" tool). A `tool_choice` that forces a tool (`"required"`,
`ToolName("x")`) applies to the first round only, and later rounds send `"auto"` so the
model can answer, unless the forced choice can itself end the loop (`"required"` with an
`ends_loop` tool among the tools, or the `ToolName` of one), which stays every round.
The same loop code is tested on the recorded OpenAI,
Anthropic and Gemini tool conversations (single, parallel and streamed, with thinking) and
on `demo:` and `test:`.

**MCP** (`pip install "llmgine[mcp]"`, the official `mcp` SDK 2.x):

```python
async with McpServer.stdio("uvx", ["mcp-server-fetch"]) as fetch:   # or McpServer.http(url)
    tools = await fetch.load_tools(prefix="fetch")                   # llmgine Tools
    result = await run_tool_loop(model, "Summarise example.com", tools)

await serve_stdio(manager)                     # a ToolManager's tools as an MCP server
app = mcp_http_app(manager)                    # or streamable HTTP (an ASGI app; serve_http)
```

An MCP tool's `isError` result reaches the model as a tool error with the server's text;
a server that cannot be started or reached, or dies, is a `McpConnectionError` naming it
and what to check. A stdio server gets only the SDK's safe environment, so pass keys in
`env=`; `serve_stdio` owns stdout, so log to stderr. Tests run a real SDK-written server
and llmgine's own served `ToolManager` in subprocesses, over stdio and HTTP on 127.0.0.1.
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
