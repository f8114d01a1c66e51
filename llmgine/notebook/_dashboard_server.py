"""The workbench as a Panel app: live events, the trace waterfall, and a model comparison.

    dashboard(bus)                  # in a notebook: displays; in an app file: .servable()
    python -m llmgine dashboard     # serves it on http://127.0.0.1:5006/ (main_dashboard)

Panel can embed ipywidgets only through ``ipywidgets_bokeh`` when served, which llmgine
does not depend on, so the dashboard is made of native Panel components reading the same
data as the widgets: an `EventFeed` into a Tabulator (expand a row for its payload), a
`SpanFeed` into a Plotly pane, and `CompareView` runs shown by their HTML and chart
(`llmgine.notebook._dashboard_view`). Everything refreshes from one Panel periodic
callback per page, so updates happen in the page's document context, at most
``1 / interval`` times a second, and send only what the page shows.

This module serves it: one `Dashboard` per page, closed and forgotten when its page goes
away (a server left running for days meets many pages), and the command line.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import socket
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import panel as pn

from llmgine.bus import MessageBus
from llmgine.notebook._dashboard_view import DEFAULT_MODELS, Dashboard, dashboard, split_specs
from llmgine.notebook._span_feed import observability_for

if TYPE_CHECKING:
    from bokeh.server.server import Server

__all__ = [
    "DEFAULT_MODELS",
    "Dashboard",
    "DashboardServer",
    "dashboard",
    "main_dashboard",
    "serve_dashboard",
]

DEFAULT_PORT = 5006
DEFAULT_ADDRESS = "127.0.0.1"
# Bokeh's own default: a page's session outlives its websocket this long. It must cover
# the time between the page's HTTP request (which makes the session) and its websocket
# connecting (after several MB of JavaScript load), which is seconds on a busy machine.
DEFAULT_FORGET_AFTER = 15.0


class DashboardServer:
    """A served dashboard: the Bokeh server and the dashboards of the pages open now (one
    per page; a page's dashboard is closed and dropped once its page has gone)."""

    def __init__(self, server: Server, dashboards: list[Dashboard]) -> None:
        self.server = server
        self.dashboards = dashboards

    @property
    def port(self) -> int:
        port = self.server.port
        if port is None:  # only for a server on a unix socket, which this never makes
            raise RuntimeError("the dashboard server listens on no TCP port")
        return port

    @property
    def url(self) -> str:
        return f"http://{self.server.address or DEFAULT_ADDRESS}:{self.port}/"

    def stop(self) -> None:
        """Stop serving and close every dashboard made (their observers leave the bus)."""
        self.server.stop()
        for made in self.dashboards:
            made.close()
        self.dashboards.clear()


def serve_dashboard(
    bus: MessageBus,
    *,
    port: int = DEFAULT_PORT,
    address: str = DEFAULT_ADDRESS,
    show: bool = False,
    forget_after: float = DEFAULT_FORGET_AFTER,
    **options: Any,
) -> DashboardServer:
    """Serve `dashboard(bus)` on the running event loop (the bus's); one per browser page.

    Pass ``port=0`` for a free port (``.port`` says which); ``.stop()`` when done. A
    page's dashboard (its periodic callback, its observers on the bus and the span
    buffer) is closed and dropped within about ``1.5 * forget_after`` seconds after its
    page closed. ``options`` go to `dashboard`.
    """
    if forget_after <= 0:
        raise ValueError(f"forget_after must be positive seconds, got {forget_after}")
    pn.extension("tabulator", "plotly")
    made: list[Dashboard] = []

    def page() -> Dashboard:
        board = dashboard(bus, **options)
        made.append(board)

        def forget(_: Any) -> None:
            board.close()  # also registered by the board itself; closing twice is harmless
            if board in made:
                made.remove(board)

        pn.state.on_session_destroyed(forget)
        return board

    port = port or _free_port(address)
    # pn.serve() installs its own SIGINT handler even with start=False, and that handler
    # stops the running loop (so Ctrl-C would skip our cleanup): keep the caller's.
    on_main_thread = threading.current_thread() is threading.main_thread()
    sigint = signal.getsignal(signal.SIGINT) if on_main_thread else None
    server: Server = pn.serve(  # type: ignore[no-untyped-call]
        {"/": page},
        port=port,
        address=address,
        show=show,
        start=False,
        title="llmgine dashboard",
        # Pages opened at the address served must be let back in over the websocket
        # (Bokeh allows only localhost:port by default).
        websocket_origin=[f"{address}:{port}", f"localhost:{port}"],
        verbose=False,
        unused_session_lifetime_milliseconds=int(forget_after * 1000),
        check_unused_sessions_milliseconds=max(50, int(forget_after * 500)),
    )
    if sigint is not None:  # None: not set from Python, nothing to put back
        signal.signal(signal.SIGINT, sigint)
    server.start()
    return DashboardServer(server, made)


def _free_port(address: str) -> int:
    # Bokeh's origin allowlist needs the port before binding; the OS picks a free one.
    with socket.socket(socket.AF_INET6 if ":" in address else socket.AF_INET) as probe:
        probe.bind((address, 0))
        port: int = probe.getsockname()[1]
    return port


def dashboard_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="llmgine dashboard",
        description="Serve the llmgine dashboard (live events, trace, model comparison) "
        "over a new bus, with an offline demo model answering its comparisons.",
    )
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="port (default 5006)")
    parser.add_argument(
        "--address",
        default=DEFAULT_ADDRESS,
        help="address to listen on (default 127.0.0.1: this machine only)",
    )
    parser.add_argument("--show", action="store_true", help="open it in a browser")
    parser.add_argument(
        "--models",
        default=",".join(DEFAULT_MODELS),
        help="comma-separated model specs for the compare tab (default: two demo models)",
    )
    parser.add_argument(
        "--demo",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="every SECONDS, run a short session with a demo LLM call, so the views have "
        "something to show (default: off)",
    )
    return parser


def parse_dashboard_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The dashboard's command line, checked (argparse exits with a message when bad)."""
    parser = dashboard_parser()
    args = parser.parse_args(argv)
    if not 0 <= args.port <= 65535:
        parser.error(f"--port must be 0-65535, got {args.port}")
    if args.demo < 0:
        parser.error(f"--demo takes seconds between demo sessions, got {args.demo}")
    if not split_specs(args.models):
        parser.error("--models needs at least one provider:model spec")
    return args


async def _demo_traffic(bus: MessageBus, every: float, model: str, **options: Any) -> None:
    from llmgine.llm import ChatMessage, Generate, LLMRequest, LLMService

    LLMService(bus, model, **options).install()
    questions = ("How do tides work?", "Why is the sky blue?", "Explain event loops.")
    n = 0
    while True:
        async with bus.session(f"demo {n}") as session:
            question = questions[n % len(questions)]
            await session.execute(
                Generate(request=LLMRequest(messages=[ChatMessage.user(question)]), stream=True)
            )
        n += 1
        await asyncio.sleep(every)


async def _serve_until_stopped(
    args: argparse.Namespace,
    *,
    ready: asyncio.Future[tuple[DashboardServer, MessageBus]] | None = None,
    model_options: dict[str, Any] | None = None,
) -> None:
    """Serve until cancelled; ``ready`` gets the server and bus once serving."""
    from llmgine import observability

    bus = MessageBus()
    await bus.start()
    enabled_here = observability.current() is None
    observability_for(bus)
    models = split_specs(args.models)
    server = serve_dashboard(
        bus, port=args.port, address=args.address, show=args.show, models=models
    )
    print(f"llmgine dashboard on {server.url} (Ctrl-C stops it)", flush=True)
    if ready is not None:
        ready.set_result((server, bus))
    try:
        if args.demo:
            await _demo_traffic(bus, args.demo, models[0], **(model_options or {}))
        else:
            await asyncio.Event().wait()  # until cancelled (Ctrl-C)
    finally:
        server.stop()
        await bus.stop()
        if enabled_here:
            observability.disable()


def main_dashboard(argv: Sequence[str] | None = None) -> int:
    """``python -m llmgine dashboard [--port N] [--address A] [--show] [--models M]
    [--demo SECONDS]``: serve the dashboard until Ctrl-C; returns the exit status."""
    args = parse_dashboard_args(argv)
    try:
        asyncio.run(_serve_until_stopped(args))
    except KeyboardInterrupt:
        print("llmgine dashboard stopped")
    return 0
