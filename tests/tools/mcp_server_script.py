"""A small MCP server written with the SDK's own `MCPServer` (FastMCP in mcp 1.x), that the
tests launch over stdio: llmgine's client must work with servers it did not write.

Run: python tests/tools/mcp_server_script.py
"""

from __future__ import annotations

import os

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError

server = MCPServer("script-server", log_level="WARNING")


@server.tool()
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


@server.tool()
def echo(text: str, times: int = 1) -> str:
    """Repeat a text, separated by spaces."""
    return " ".join([text] * times)


@server.tool()
def stats(numbers: list[float]) -> dict[str, float]:
    """The count, sum and mean of some numbers."""
    return {"count": len(numbers), "sum": sum(numbers), "mean": sum(numbers) / len(numbers)}


@server.tool(structured_output=False)
def shout(text: str) -> str:
    """The text in capitals (a tool without an output schema: text content only)."""
    return text.upper()


@server.tool()
def fail(reason: str) -> str:
    """Always fails, with the reason in the error."""
    raise ToolError(f"failed on purpose: {reason}")


@server.tool()
def pid() -> int:
    """This server's process id (so a test can check that the process has ended)."""
    return os.getpid()


@server.tool()
def crash() -> str:
    """Ends the server process at once, as a crashing server would."""
    os._exit(3)


if __name__ == "__main__":
    server.run()
