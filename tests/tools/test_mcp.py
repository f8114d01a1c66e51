"""MCP in and out: llmgine's client against real MCP server processes this test starts
(the SDK's own `MCPServer`, and llmgine's server over stdio and streamable HTTP), and
llmgine's `ToolManager`s served as MCP servers, in-process and across processes."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import subprocess
import sys
import types
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import pytest
from mcp import MCPError
from mcp.server import Server, ServerRequestContext
from mcp_types import (
    INVALID_PARAMS,
    CallToolRequestParams,
    CallToolResult,
    ImageContent,
    ListToolsResult,
    PaginatedRequestParams,
    TextContent,
)
from mcp_types import Tool as McpToolInfo

from llmgine.bus import MessageBus
from llmgine.errors import McpConnectionError, McpError, McpNotInstalledError, McpToolError
from llmgine.llm import LLMResponse, ScriptedProvider, ToolCallPart, ToolResultPart, get_model
from llmgine.tools._events import ToolCallFinished
from llmgine.tools._loop import run_tool_loop
from llmgine.tools._manager import ToolManager
from llmgine.tools._mcp import McpServer, import_mcp
from llmgine.tools._mcp_server import mcp_server, serve_http
from tests.deadline import DEADLINE
from tests.tools import mcp_tools
from tests.tools.mcp_tools import build_manager

REPO = Path(__file__).resolve().parents[2]
SDK_SCRIPT = [str(REPO / "tests" / "tools" / "mcp_server_script.py")]
LLMGINE_STDIO = ["-m", "tests.tools.mcp_llmgine_server", "stdio"]

# Calls that succeed, and calls that fail, against the tools of `tests.tools.mcp_tools`.
GOOD_CALLS: list[tuple[str, dict[str, Any]]] = [
    ("add", {"a": 2, "b": 3}),
    ("greet", {"name": "Ada"}),
    ("greet", {"name": "Ada", "style": "loud"}),
    ("split_words", {"text": "to be or not"}),
    ("summary", {"numbers": [1.5, 2.5, 4.0]}),
    ("divide", {"a": 1, "b": 4}),
]
BAD_CALLS: list[tuple[str, dict[str, Any]]] = [
    ("divide", {"a": 1, "b": 0}),  # the tool raises
    ("add", {"a": "two", "b": 3}),  # the arguments fail validation
    ("no_such_tool", {}),
]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class ServerProcess:
    """A server in its own process: the process, its port, and the file of its output."""

    process: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/mcp"


async def wait_until_listening(
    port: int, *, server: ServerProcess | None = None, timeout: float = DEADLINE
) -> None:
    """Poll until something accepts connections on 127.0.0.1:port (the readiness signal)."""
    async with asyncio.timeout(timeout):
        while True:
            if server is not None and server.process.poll() is not None:
                output = server.log.read_text(errors="replace")
                raise AssertionError(f"the server exited ({server.process.returncode}):\n{output}")
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                await asyncio.sleep(0.02)  # the poll interval; readiness is the open port
                continue
            writer.close()
            await writer.wait_closed()
            return


@pytest.fixture
def http_process(tmp_path: Path) -> Iterator[ServerProcess]:
    """llmgine's MCP server over streamable HTTP, in its own process; stopped afterwards."""
    port, log_path = free_port(), tmp_path / "server.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "tests.tools.mcp_llmgine_server", "http", str(port)],
            cwd=REPO,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            yield ServerProcess(process, port, log_path)
        finally:
            if process.poll() is None:
                process.terminate()
            try:
                process.wait(timeout=DEADLINE)
            except subprocess.TimeoutExpired:  # a hung server
                process.kill()
                process.wait()


@pytest.fixture
async def sdk_server() -> AsyncIterator[McpServer]:
    """The SDK-written test server over stdio. pytest-asyncio sets a fixture up and tears
    it down in different tasks, which McpServer's owner task makes safe."""
    server = McpServer.stdio(sys.executable, SDK_SCRIPT, name="script-server")
    await server.connect()
    yield server
    await server.aclose()


async def assert_round_trip(server: McpServer) -> None:
    """The tools that come back through MCP are the local ones: same names, descriptions,
    schemas and results; failures come back as tool errors carrying the local message."""
    local = build_manager()
    tools = await server.load_tools()
    assert [(t.name, t.description, t.parameters) for t in tools] == [
        (s.name, s.description, s.parameters) for s in local.specs()
    ]
    remote = ToolManager(tools)
    good = [ToolCallPart(id=f"good{i}", name=n, arguments=a) for i, (n, a) in enumerate(GOOD_CALLS)]
    wanted = [await local.execute(call) for call in good]
    assert not any(want.is_error for want in wanted), wanted
    assert await remote.execute_all(good) == wanted  # concurrent calls on one connection
    for i, (name, arguments) in enumerate(BAD_CALLS):
        call = ToolCallPart(id=f"bad{i}", name=name, arguments=arguments)
        want = await local.execute(call)
        got = await remote.execute(call)
        assert want.is_error
        assert got.is_error
        if name in remote:  # an unknown name stops at the remote manager, as it should
            assert want.text in got.text


# --- the client, against a server written with the SDK --------------------------------


async def test_an_sdk_servers_tools_load_with_schemas_results_and_errors(
    sdk_server: McpServer,
) -> None:
    tools = {t.name: t for t in await sdk_server.load_tools()}
    assert set(tools) == {"add", "echo", "stats", "shout", "fail", "pid", "crash"}
    add = tools["add"]
    assert add.description == "Add two integers."
    assert add.parameters["type"] == "object"
    assert add.parameters["required"] == ["a", "b"]
    assert add.parameters["properties"]["a"]["type"] == "integer"
    assert tools["echo"].parameters["properties"]["times"]["default"] == 1

    assert await add.run({"a": 20, "b": 22}) == 42  # unwrapped from {"result": 42}
    assert await tools["echo"].run({"text": "hey", "times": 3}) == "hey hey hey"
    assert await tools["stats"].run({"numbers": [1, 2, 6]}) == {"count": 3, "sum": 9, "mean": 3}
    assert await tools["shout"].run({"text": "quiet"}) == "QUIET"  # text content only

    with pytest.raises(McpToolError, match="failed on purpose: no reason") as caught:
        await sdk_server.call_tool("fail", {"reason": "no reason"})
    assert (caught.value.server, caught.value.tool) == ("script-server", "fail")


async def test_execute_turns_a_tool_call_into_a_result(sdk_server: McpServer) -> None:
    manager = ToolManager()
    registered = await sdk_server.register_tools(manager, prefix="calc", include=["add", "fail"])
    assert [t.name for t in registered] == [t.name for t in manager] == ["calc_add", "calc_fail"]

    ok = await manager.execute(ToolCallPart(id="c1", name="calc_add", arguments={"a": 1, "b": 2}))
    assert ok == ToolResultPart(call_id="c1", name="calc_add", content=3)

    failed = await manager.execute(
        ToolCallPart(id="c2", name="calc_fail", arguments={"reason": "bad luck"})
    )
    assert (failed.is_error, failed.call_id, failed.name) == (True, "c2", "calc_fail")
    assert "McpToolError: Error executing tool fail: failed on purpose: bad luck" in failed.text

    with pytest.raises(McpToolError, match=r"no tool 'nope'; its tools are: add, crash, echo"):
        await sdk_server.load_tools(include=["add", "nope"])

    # And in the tool loop, as a model would use them.
    asks = ToolCallPart(id="l1", name="calc_add", arguments={"a": 2, "b": 2})
    model = get_model("test:scripted", responses=[LLMResponse(parts=[asks]), "4."])
    result = await run_tool_loop(model, "What is 2 + 2?", manager)
    assert result.text == "4."
    assert result.tool_results == [ToolResultPart(call_id="l1", name="calc_add", content=4)]
    first_request = cast(ScriptedProvider, model.adapter).requests[0]
    assert [t.name for t in first_request.tools] == ["calc_add", "calc_fail"]


async def test_a_dying_server_is_a_connection_error(sdk_server: McpServer) -> None:
    with pytest.raises(McpConnectionError, match="'script-server' closed the connection") as died:
        await sdk_server.call_tool("crash")
    assert died.value.server == "script-server"
    assert not sdk_server.connected
    with pytest.raises(McpConnectionError, match="connection to MCP server 'script-server' was"):
        await sdk_server.call_tool("add", {"a": 1, "b": 2})


async def test_connect_and_close_in_different_tasks_end_the_process() -> None:
    server = McpServer.stdio(sys.executable, SDK_SCRIPT)
    assert "mcp_server_script.py" in server.name  # named by its command line
    await asyncio.create_task(server.connect())
    assert repr(server).endswith("(connected)>")
    pid = await server.call_tool("pid")
    await asyncio.create_task(server.aclose())
    assert repr(server).endswith("(not connected)>")
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    await server.aclose()  # closing twice is a no-op

    async with server:  # and it can connect again: a new process
        assert await server.call_tool("pid") != pid


async def test_misuse_says_what_to_do() -> None:
    server = McpServer.in_process(mcp_server(build_manager()), name="idle")
    with pytest.raises(McpConnectionError, match=r"'idle' is not connected.*connect"):
        await server.call_tool("add")
    async with server:
        with pytest.raises(McpConnectionError, match="already connected"):
            await server.connect()
    with pytest.raises(ValueError, match="connect_timeout must be positive"):
        McpServer.stdio("x", connect_timeout=0)
    with pytest.raises(ValueError, match="starts with http"):
        McpServer.http("127.0.0.1:8000/mcp")


# --- connection failures ---------------------------------------------------------------


async def test_a_missing_command_is_a_clear_error() -> None:
    server = McpServer.stdio("/nonexistent/llmgine-mcp-server")
    with pytest.raises(McpConnectionError, match="check that the command exists") as caught:
        await server.connect()
    assert "'/nonexistent/llmgine-mcp-server'" in str(caught.value)
    assert not server.connected


async def test_a_process_that_exits_at_once_is_a_clear_error() -> None:
    server = McpServer.stdio(sys.executable, ["-c", "raise SystemExit(2)"], name="quitter")
    with pytest.raises(McpConnectionError, match=r"'quitter'.*run the command yourself"):
        await server.connect()


async def test_a_server_that_never_answers_times_out() -> None:
    silent = ["-c", "import sys; sys.stdin.read()"]  # reads until its stdin closes
    server = McpServer.stdio(sys.executable, silent, name="mute", connect_timeout=0.3)
    with pytest.raises(McpConnectionError, match="'mute' did not complete the MCP handshake"):
        await server.connect()
    assert not server.connected

    # The caller's own deadline cancels the connection attempt just the same.
    server = McpServer.stdio(sys.executable, silent, name="mute")
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.3):
            await server.connect()
    assert not server.connected


async def test_an_http_url_nobody_serves_is_a_clear_error() -> None:
    url = f"http://127.0.0.1:{free_port()}/mcp"
    with pytest.raises(McpConnectionError, match="could not connect to MCP server") as caught:
        await McpServer.http(url).connect()
    assert url in str(caught.value)


# --- llmgine's server, in another process ----------------------------------------------


async def test_round_trip_over_stdio() -> None:
    async with McpServer.stdio(sys.executable, LLMGINE_STDIO, cwd=REPO) as server:
        await assert_round_trip(server)


async def test_round_trip_over_http(http_process: ServerProcess) -> None:
    await wait_until_listening(http_process.port, server=http_process)
    url = http_process.url
    async with McpServer.http(url, headers={"Authorization": "Bearer test"}) as server:
        assert server.name == url
        await assert_round_trip(server)

    # Headers are sent: the SDK's DNS-rebinding protection refuses a foreign Origin.
    foreign = McpServer.http(url, headers={"Origin": "http://evil.example"}, name="guarded")
    with pytest.raises(McpConnectionError, match="could not connect to MCP server 'guarded'"):
        await foreign.connect()


async def test_an_http_server_that_dies_is_a_connection_error(
    http_process: ServerProcess, caplog: pytest.LogCaptureFixture
) -> None:
    await wait_until_listening(http_process.port, server=http_process)
    server = McpServer.http(http_process.url, name="web")
    await server.connect()
    assert await server.call_tool("add", {"a": 1, "b": 1}) == 2
    http_process.process.kill()
    await asyncio.to_thread(http_process.process.wait)
    with pytest.raises(McpConnectionError, match="'web' closed the connection"):
        await server.call_tool("add", {"a": 1, "b": 1})
    with caplog.at_level(logging.WARNING, logger="llmgine.tools._mcp"):
        await server.aclose()  # the loss was reported; closing only logs the aftermath
    assert not server.connected
    assert any("after its connection was lost" in r.getMessage() for r in caplog.records)


# --- llmgine's server, in this process -------------------------------------------------


async def test_round_trip_in_process() -> None:
    async with McpServer.in_process(mcp_server(build_manager())) as server:
        assert server.name == "llmgine"
        await assert_round_trip(server)


async def test_served_calls_run_through_the_manager(bus: MessageBus) -> None:
    finished: list[ToolCallFinished] = []
    bus.on_event(ToolCallFinished, finished.append)
    never = asyncio.Event()

    async def wait_forever() -> str:
        """Never finishes."""
        await never.wait()
        return "unreachable"

    manager = ToolManager([mcp_tools.add], bus=bus, timeout=0.2)
    async with McpServer.in_process(mcp_server(manager, name="served")) as server:
        assert await server.call_tool("add", {"a": 1, "b": 2}) == 3
        manager.register(wait_forever)  # registered later, listed at the next listing
        assert "wait_forever" in [t.name for t in await server.load_tools()]
        with pytest.raises(McpToolError, match=r"after 0\.2 s and was cancelled") as caught:
            await server.call_tool("wait_forever")
        assert caught.value.server == "served"
        with pytest.raises(McpToolError, match="there is no tool named 'nope'"):
            await server.call_tool("nope")
    await bus.drain()
    assert [(e.tool_name, e.ok) for e in finished] == [
        ("add", True),
        ("wait_forever", False),
        ("nope", False),
    ]


async def test_closing_under_a_running_call_ends_the_call() -> None:
    started, never = asyncio.Event(), asyncio.Event()

    async def wait_forever() -> str:
        """Never finishes."""
        started.set()
        await never.wait()
        return "unreachable"

    server = McpServer.in_process(mcp_server(ToolManager([wait_forever], timeout=None)))
    await server.connect()
    call = asyncio.create_task(server.call_tool("wait_forever"))
    await started.wait()
    await server.aclose()
    with pytest.raises(McpConnectionError, match="was closed while it was asked to call tool"):
        await call


async def test_serve_http_in_process_until_cancelled() -> None:
    port = free_port()
    serving = asyncio.create_task(serve_http(build_manager(), port=port, name="web"))
    await wait_until_listening(port)
    async with McpServer.http(f"http://127.0.0.1:{port}/mcp") as server:
        assert await server.call_tool("greet", {"name": "Bo"}) == "Hello, Bo!"
    serving.cancel()
    with pytest.raises(asyncio.CancelledError):
        await serving
    with pytest.raises(ConnectionRefusedError):
        await asyncio.open_connection("127.0.0.1", port)


async def test_serve_http_on_a_port_in_use() -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        with pytest.raises(OSError, match=f"cannot serve MCP on 127.0.0.1:{port}"):
            await serve_http(build_manager(), port=port)


# --- how results map, against a hand-written low-level server --------------------------

_RESULTS = {
    "chart": CallToolResult(
        content=[
            TextContent(type="text", text="a chart"),
            ImageContent(type="image", data="aGk=", mime_type="image/png"),
        ]
    ),
    "nothing": CallToolResult(content=[]),
    "lines": CallToolResult(
        content=[TextContent(type="text", text="one"), TextContent(type="text", text="two")]
    ),
    "record": CallToolResult(content=[], structured_content={"result": 1, "unit": "m"}),
    "bare": CallToolResult(content=[], structured_content={"result": 7}),
    "silent_error": CallToolResult(content=[], is_error=True),
    "files.read": CallToolResult(content=[TextContent(type="text", text="contents")]),
}


def handwritten_server() -> Server[Any]:
    names = [*_RESULTS, "protocol_error"]

    async def list_tools(
        ctx: ServerRequestContext[Any], params: PaginatedRequestParams | None
    ) -> ListToolsResult:
        # Two pages, so the client must follow the cursor.
        first = params is None or params.cursor is None
        page = names[:3] if first else names[3:]
        tools = [McpToolInfo(name=n, input_schema={"type": "object"}) for n in page]
        return ListToolsResult(tools=tools, next_cursor="page2" if first else None)

    async def call_tool(
        ctx: ServerRequestContext[Any], params: CallToolRequestParams
    ) -> CallToolResult:
        if params.name == "protocol_error":
            raise MCPError(INVALID_PARAMS, "path is required")
        return _RESULTS[params.name]

    return Server("handwritten", on_list_tools=list_tools, on_call_tool=call_tool)


async def test_content_and_structured_results_map_without_loss() -> None:
    async with McpServer.in_process(handwritten_server()) as server:
        tools = {t.name: t for t in await server.load_tools()}
        assert len(tools) == len(_RESULTS) + 1  # both pages
        assert await tools["chart"].run({}) == [
            "a chart",
            {"type": "image", "data": "aGk=", "mimeType": "image/png"},
        ]
        assert await tools["nothing"].run({}) is None
        assert await tools["lines"].run({}) == ["one", "two"]
        assert await tools["record"].run({}) == {"result": 1, "unit": "m"}
        # No output schema declares the wrapper, so {"result": 7} is taken as it is.
        assert await tools["bare"].run({}) == {"result": 7}
        # A name no model provider accepts is made acceptable; the server hears its own.
        assert await tools["files_read"].run({}) == "contents"
        with pytest.raises(McpToolError, match="error without saying why"):
            await tools["silent_error"].run({})
        with pytest.raises(McpToolError, match="path is required") as caught:
            await tools["protocol_error"].run({})
        assert caught.value.tool == "protocol_error"


async def test_a_server_without_tools_says_so() -> None:
    async with McpServer.in_process(Server("toolless")) as server:
        with pytest.raises(McpError, match="'toolless' refused to list its tools"):
            await server.load_tools()


async def test_call_tool_lists_first_to_know_output_schemas() -> None:
    async with McpServer.in_process(mcp_server(build_manager())) as server:
        assert await server.call_tool("split_words", {"text": "a b"}) == ["a", "b"]


# --- without the SDK -------------------------------------------------------------------


async def test_a_missing_sdk_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "mcp", None)  # what an uninstalled package looks like
    with pytest.raises(McpNotInstalledError, match=r"pip install 'llmgine\[mcp\]'") as caught:
        import_mcp()
    assert isinstance(caught.value, ImportError)
    server = McpServer.stdio(sys.executable, SDK_SCRIPT)
    with pytest.raises(McpNotInstalledError):
        await server.connect()
    assert not server.connected
    with pytest.raises(McpNotInstalledError):
        mcp_server(build_manager())


def test_mcp_1x_is_refused_with_the_upgrade(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "mcp", types.ModuleType("mcp"))  # no `Client`: mcp 1.x
    with pytest.raises(McpNotInstalledError, match=r"needs mcp>=2: .*--upgrade"):
        import_mcp()
