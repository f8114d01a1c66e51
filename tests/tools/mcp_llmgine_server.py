"""Serve the tools of `tests.tools.mcp_tools` with llmgine's MCP server, in its own process.

Run from the repository root:
    python -m tests.tools.mcp_llmgine_server stdio
    python -m tests.tools.mcp_llmgine_server http PORT
"""

from __future__ import annotations

import asyncio
import sys

from llmgine.tools._mcp_server import serve_http, serve_stdio
from tests.tools.mcp_tools import build_manager


def main(argv: list[str]) -> None:
    match argv:
        case ["stdio"]:
            asyncio.run(serve_stdio(build_manager(), name="llmgine-test"))
        case ["http", port]:
            asyncio.run(serve_http(build_manager(), port=int(port), name="llmgine-test"))
        case _:
            sys.exit("usage: python -m tests.tools.mcp_llmgine_server stdio | http PORT")


if __name__ == "__main__":
    main(sys.argv[1:])
