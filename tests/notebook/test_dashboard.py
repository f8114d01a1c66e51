"""The Panel dashboard: its three views over one bus, the compare tab running CompareView,
what a periodic tick sends (only the tab shown, the trace at most once per
``trace_interval``), the command line, and a real server on 127.0.0.1 fetched over HTTP
(whose pages' dashboards are closed and forgotten when the pages go).

The soak in a real browser is ``tests/browser/test_dashboard_soak.py``."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable

import httpx
import panel as pn
import pytest

from llmgine import observability
from llmgine.bus import MessageBus
from llmgine.llm import (
    ChatMessage,
    Generate,
    LLMCallCompleted,
    LLMCallStarted,
    LLMRequest,
    LLMService,
    get_model,
)
from llmgine.notebook import dashboard
from llmgine.notebook._dashboard_server import (
    Dashboard,
    DashboardServer,
    _serve_until_stopped,
    main_dashboard,
    parse_dashboard_args,
    serve_dashboard,
)
from llmgine.notebook._dashboard_view import EVENTS_TAB, IN_FLIGHT, TRACE_TAB
from tests.deadline import DEADLINE

from .widgets_support import PLANTED_KEY, Leaky, Ping, observability_off

__all__ = ["observability_off"]  # a fixture, imported to be used here

pytestmark = [
    pytest.mark.usefixtures("observability_off"),
    # Bokeh 3.9 turns a DataFrame into table data with reset_index(inplace=True), which
    # pandas 3.1 deprecates; nothing of ours passes inplace.
    pytest.mark.filterwarnings(
        "ignore:The inplace keyword in DataFrame.reset_index:pandas.errors.Pandas4Warning"
    ),
]


def ask(text: str) -> Generate:
    return Generate(request=LLMRequest(messages=[ChatMessage.user(text)]))


async def eventually(condition: Callable[[], bool], what: str) -> None:
    """Wait until ``condition()`` holds (polled on the loop), or fail at the deadline."""
    deadline = time.monotonic() + DEADLINE
    while not condition():
        assert time.monotonic() < deadline, f"{what}: not within {DEADLINE:.0f} s"
        await asyncio.sleep(0.02)  # a polling interval: the loop runs the server meanwhile


async def chat(bus: MessageBus, name: str) -> str:
    async with bus.session(name) as session:
        await session.execute(ask("Tell me about volcanoes"))
    await bus.drain()
    return session.id


async def test_the_dashboard_is_a_panel_layout_of_the_three_views(bus: MessageBus) -> None:
    LLMService(bus, "demo:llmgine-demo", latency=0).install()
    board = dashboard(bus, interval=None)
    try:
        assert isinstance(board, Dashboard)
        tabs = board.layout
        assert tabs in board.__panel__().objects
        assert isinstance(tabs, pn.Tabs)
        assert list(tabs._names) == ["Events", "Trace", "Compare"]
        assert "llmgine-dashboard" in tabs.css_classes
        assert isinstance(board.event_table, pn.widgets.Tabulator)
        assert isinstance(board.trace_pane, pn.pane.Plotly)
        assert observability.current() is not None  # switched on for the trace tab
        async with bus.session("chat") as session:
            await session.execute(ask("Tell me about volcanoes"))
        await bus.drain()
        board.refresh()
        table = board.event_table.value
        assert list(table["type"]) == [
            "SessionStarted",
            "LLMCallStarted",
            "LLMCallCompleted",
            "SessionEnded",
        ]
        assert set(table["session"]) == {session.id}
        assert "seen 4" in board.event_counts.object
        assert board.type_filter.options == [
            "LLMCallCompleted",
            "LLMCallStarted",
            "SessionEnded",
            "SessionStarted",
        ]
        assert session.id in board.session_filter.options.values()
        data = board.trace_pane.object["data"]
        names = {t["name"]: len(t["y"]) for t in data}
        assert names["session"] == 1
        assert names["LLM call"] == 1
        assert "2 spans" in board.trace_summary.object
        assert "llmgine dashboard" in board._repr_html_()
        # New events arrive as a stream of rows on the table.
        await bus.publish(Ping(n=1))
        await bus.drain()
        board.refresh()
        assert list(board.event_table.value["summary"])[-1] == "n=1"
        assert board.refreshes == 3
    finally:
        board.close()
    seen = board.events.seen
    await bus.publish(Ping(n=2))
    await bus.drain()
    assert board.events.closed
    assert board.events.seen == seen  # its observer left the bus
    assert board.spans.closed


async def test_filters_pause_and_redacted_payloads(bus: MessageBus) -> None:
    board = dashboard(bus, interval=None)
    try:
        async with bus.session("a") as a:
            await a.publish(Ping(n=1))
        await bus.publish(
            Leaky(note=PLANTED_KEY, api_key=PLANTED_KEY, headers={"x-api-key": PLANTED_KEY})
        )
        await bus.drain()
        board.refresh()
        board.type_filter.value = ["Ping", "Leaky"]
        assert list(board.event_table.value["type"]) == ["Ping", "Leaky"]
        board.session_filter.value = a.id
        assert list(board.event_table.value["type"]) == ["Ping"]
        board.session_filter.value = ""
        leaky = board.event_table.value.iloc[-1]
        payload = board._payload_pane(leaky).object
        assert "llmgine-event-payload" in payload
        assert "api_key" in payload
        assert PLANTED_KEY not in payload
        assert PLANTED_KEY not in board.event_table.value.to_csv()
        board.pause.value = True
        await bus.publish(Ping(n=2))
        await bus.drain()
        board.refresh()
        assert len(board.event_table.value) == 2
        assert "paused" in board.event_counts.object
        board.pause.value = False
        assert list(board.event_table.value["summary"])[-1] == "n=2"
        # The trace tab can switch to one session.
        board.trace_session.value = a.id
        assert board.spans.session == a.id
        assert f"session {a.id}" in board.trace_summary.object
    finally:
        board.close()


async def test_the_compare_tab_runs_a_compare_view_on_the_bus(bus: MessageBus) -> None:
    board = dashboard(bus, interval=None)
    try:
        assert "demo:llmgine-demo" in (board.models.value or "")
        models = [get_model("demo:fast-a", latency=0), get_model("demo:fast-b", latency=0)]
        during: list[str] = []

        def refresh_mid_run(event: LLMCallStarted) -> None:
            board.refresh()  # as the periodic callback would, while answers stream in
            during.append(board.compare_output.objects[0].object)

        bus.on_event(LLMCallStarted, refresh_mid_run)
        results = await board.compare("Why is the sky blue?", models)
        assert during
        assert all("fast-a" in html for html in during)
        assert set(results) == {"demo:fast-a", "demo:fast-b"}
        assert all(r.text for r in results.values())
        html_pane, chart = board.compare_output.objects
        assert "fast-a" in html_pane.object
        assert "fast-b" in html_pane.object
        assert isinstance(chart, pn.pane.Plotly)
        assert not board.compare_button.disabled
        # The calls were Generate commands on this bus, seen by the events tab.
        board.refresh()
        assert "LLMCallCompleted" in set(board.event_table.value["type"])
        assert await board.compare("  ", models) is None
        assert "Type a prompt" in board.compare_output.objects[0].object
        board.prompt.value = "hello"
        board.models.value = " , "
        assert await board.compare() is None
        board.models.value = "demo:x"
        assert await board.compare(models=[]) is None
    finally:
        board.close()


async def test_a_tick_sends_only_the_tab_shown_and_catches_up_a_tab_when_opened(
    bus: MessageBus,
) -> None:
    LLMService(bus, "demo:llmgine-demo", latency=0).install()
    board = dashboard(bus, interval=None, trace_interval=3600)
    drawn: list[object] = []
    board.trace_pane.param.watch(lambda e: drawn.append(e.new), "object")
    try:
        assert board.shown == EVENTS_TAB
        first = await chat(bus, "first")
        board.tick()  # the first tick also does the hourly part: takes in the spans
        assert len(board.event_table.value) == 4  # shown: streamed
        assert drawn == []  # the trace tab is hidden: no figure sent
        assert first in board.session_filter.options.values()
        second = await chat(bus, "second")
        board.tick()
        assert len(board.event_table.value) == 8
        assert second not in board.session_filter.options.values()  # at most hourly

        # Opening the trace tab draws at once, with every span heard while it was hidden.
        board.layout.active = TRACE_TAB
        assert len(drawn) == 1
        assert "4 spans" in board.trace_summary.object
        await chat(bus, "third")
        board.tick()  # within trace_interval: neither redrawn nor is the table sent to
        assert len(drawn) == 1
        assert len(board.event_table.value) == 8
        board.trace_interval = 1e-9  # due again
        board.tick()
        assert len(drawn) == 2
        assert "6 spans" in board.trace_summary.object

        # Back on the events tab: the rows that arrived while it was hidden, at once.
        board.layout.active = EVENTS_TAB
        assert len(board.event_table.value) == 12
        assert list(board.event_table.value["seq"]) == list(range(12))
        board.tick()
        assert len(drawn) == 2  # hidden again
    finally:
        board.close()
    assert board.closed


async def test_a_page_that_has_not_applied_the_last_updates_is_sent_no_more(
    bus: MessageBus,
) -> None:
    """Backpressure: a page that falls behind gets fewer updates, not a growing queue."""
    board = dashboard(bus, interval=None)
    try:
        board.tick()
        assert board.unapplied == 0  # no page has answered: sent to as usual
        board._applied.value = board._sent.value  # what the page's jslink does, once applied
        for n in range(IN_FLIGHT):  # the page answers no more
            await bus.publish(Ping(n=n))
            await bus.drain()
            board.tick()
        assert board.unapplied == IN_FLIGHT
        assert len(board.event_table.value) == IN_FLIGHT
        sent = board._sent.value
        await bus.publish(Ping(n=IN_FLIGHT))
        await bus.drain()
        board.tick()
        assert board._sent.value == sent  # nothing more went out
        assert len(board.event_table.value) == IN_FLIGHT
        assert board.events.counts()["seen"] == IN_FLIGHT + 1  # but the feed took it in
        board._applied.value = sent  # the page caught up: what it missed, in one update
        board.tick()
        expected = [f"n={n}" for n in range(IN_FLIGHT + 1)]
        assert list(board.event_table.value["summary"]) == expected
        assert board.unapplied == 1
    finally:
        board.close()


async def test_the_trace_draws_the_newest_spans_and_counts_the_others(bus: MessageBus) -> None:
    LLMService(bus, "demo:llmgine-demo", latency=0).install()
    board = dashboard(bus, interval=None, max_spans=3)
    try:
        for n in range(3):
            await chat(bus, f"chat {n}")
        board.refresh()
        bars = sum(len(trace["y"]) for trace in board.trace_pane.object["data"])
        assert bars == 3
        assert "3 spans (3 older not drawn)" in board.trace_summary.object
    finally:
        board.close()
    with pytest.raises(ValueError, match="trace_interval must be positive"):
        dashboard(bus, trace_interval=0)


async def test_the_command_line_takes_port_and_address() -> None:
    args = parse_dashboard_args([])
    assert (args.port, args.address, args.show, args.demo) == (5006, "127.0.0.1", False, 0.0)
    assert args.models == "demo:llmgine-demo,demo:llmgine-demo-2"
    args = parse_dashboard_args(
        ["--port", "8123", "--address", "0.0.0.0", "--show", "--demo", "2", "--models", "a:b"]
    )
    assert (args.port, args.address, args.show, args.demo, args.models) == (
        8123,
        "0.0.0.0",
        True,
        2.0,
        "a:b",
    )
    for bad in (["--port", "70000"], ["--demo", "-1"], ["--models", ","], ["--port", "x"]):
        with pytest.raises(SystemExit) as exit_info:
            main_dashboard(bad)
        assert exit_info.value.code == 2


async def test_a_real_server_on_127_0_0_1_serves_the_page(bus: MessageBus) -> None:
    server = serve_dashboard(bus, port=0, interval=0.05)
    try:
        assert isinstance(server, DashboardServer)
        assert server.url == f"http://127.0.0.1:{server.port}/"
        async with httpx.AsyncClient() as client:
            page = await client.get(server.url)
        assert page.status_code == 200
        assert "<title>llmgine dashboard</title>" in page.text
        scripts = re.findall(r'src="([^"]+)"', page.text)
        assert any("tabulator" in s for s in scripts)
        assert any("plotly" in s for s in scripts)
        assert not any("://" in s for s in scripts)  # served from here: no CDN
        [made] = server.dashboards  # one dashboard per page
        await bus.publish(Ping(n=1))
        await bus.drain()
        await made.next_refresh()  # by the page's own periodic callback
        assert list(made.event_table.value["summary"]) == ["n=1"]
    finally:
        server.stop()
    assert server.dashboards == []
    assert made.events.closed


async def test_a_page_that_went_away_has_its_dashboard_closed_and_forgotten(
    bus: MessageBus,
) -> None:
    """A server left running meets many pages: what each page made must go with it.

    About 8 s: Bokeh forgets a page 1 to 1.5 times ``forget_after`` after it went, and
    ``forget_after`` must outlast the slowest page load here (a page made is looked at
    right after it loads)."""
    server = serve_dashboard(bus, port=0, interval=0.05, forget_after=5)
    made: list[Dashboard] = []
    try:
        async with httpx.AsyncClient() as client:
            for _ in range(3):  # pages that load and never connect their websocket
                assert (await client.get(server.url)).status_code == 200
                made.append(server.dashboards[-1])
        assert len(set(map(id, made))) == 3  # one dashboard per page
        await eventually(lambda: server.dashboards == [], "the pages' dashboards forgotten")
        assert all(board.closed for board in made)  # periodic callbacks stopped
        assert all(board.events.closed and board.spans.closed for board in made)  # off the bus
    finally:
        server.stop()
    with pytest.raises(ValueError, match="forget_after must be positive"):
        serve_dashboard(bus, port=0, forget_after=0)


async def test_the_command_line_serves_with_demo_traffic_until_cancelled() -> None:
    args = parse_dashboard_args(["--port", "0", "--demo", "0.01", "--models", "demo:quick"])
    ready: asyncio.Future[tuple[DashboardServer, MessageBus]] = (
        asyncio.get_running_loop().create_future()
    )
    task = asyncio.create_task(
        _serve_until_stopped(args, ready=ready, model_options={"latency": 0})
    )
    server, bus = await ready
    answered = asyncio.Event()
    bus.on_event(LLMCallCompleted, lambda e: answered.set())
    async with httpx.AsyncClient() as client:
        page = await client.get(server.url)
    assert page.status_code == 200
    await answered.wait()  # the demo traffic runs on the served bus
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert observability.current() is None  # it switched on observability, and off again
    assert server.dashboards == []
