"""The workbench as a Panel app: live events, the trace waterfall, and a model comparison.

    dashboard(bus)                  # in a notebook: displays; in an app file: .servable()
    python -m llmgine dashboard     # serves it on http://127.0.0.1:5006/ (main_dashboard)

Panel can embed ipywidgets only through ``ipywidgets_bokeh`` when served, which llmgine
does not depend on, so the dashboard is made of native Panel components reading the same
data as the widgets: an `EventFeed` into a Tabulator (expand a row for its payload), a
`SpanFeed` into a Plotly pane, and `CompareView` runs shown by their HTML and chart.
Everything refreshes from one Panel periodic callback per page, so updates happen in the
page's document context and at most ``1 / interval`` times a second.
"""

from __future__ import annotations

import argparse
import asyncio
import html
import signal
import socket
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import pandas as pd
import panel as pn
from panel.viewable import Viewer

from llmgine._redact import redacting_logger
from llmgine.bus import MessageBus, Session
from llmgine.llm import Model
from llmgine.notebook._widget_events import DEFAULT_MAX_ROWS, EventFeed
from llmgine.notebook._widget_html import counts_line
from llmgine.notebook._widget_spans import SpanFeed, figure, observability_for, summary_line
from llmgine.observability import Observability

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

log = redacting_logger("llmgine.notebook")

DEFAULT_MODELS = ("demo:llmgine-demo", "demo:llmgine-demo-2")
DEFAULT_INTERVAL = 0.2
DEFAULT_PORT = 5006
DEFAULT_ADDRESS = "127.0.0.1"
EVENT_COLUMNS = ["seq", "time", "type", "session", "summary", "id"]
ALL = ""


class Dashboard(Viewer):
    """The three views over one bus, as a Panel layout (``.servable()``, or display it).

    Made by `dashboard`; `refresh()` updates every view now, `close()` stops watching.
    """

    def __init__(
        self,
        bus: MessageBus,
        *,
        session: str | Session | None = None,
        models: Sequence[str] = DEFAULT_MODELS,
        obs: Observability | None = None,
        max_rows: int = DEFAULT_MAX_ROWS,
        interval: float | None = DEFAULT_INTERVAL,
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        if interval is not None and interval <= 0:
            raise ValueError(f"interval must be positive seconds (or None), got {interval}")
        self.bus = bus
        self.obs = observability_for(bus, obs)
        self.events = EventFeed(bus, max_rows=max_rows)
        self.spans = SpanFeed(self.obs, session=session)
        self._callback: Any = None
        self._compare_view: Any = None
        self._waiters: list[asyncio.Future[None]] = []
        self.refreshes = 0
        self.layout = pn.Tabs(  # type: ignore[no-untyped-call]
            ("Events", self._events_tab()),
            ("Trace", self._trace_tab()),
            ("Compare", self._compare_tab(models)),
            css_classes=["llmgine-dashboard"],
            sizing_mode="stretch_width",
        )
        self.refresh()
        if interval is not None:
            self._callback = pn.state.add_periodic_callback(self.refresh, int(interval * 1000))
            if pn.state.curdoc is not None and pn.state.curdoc.session_context is not None:
                pn.state.on_session_destroyed(lambda _: self.close())

    def __panel__(self) -> pn.Tabs:
        return self.layout

    # -- the events tab ----------------------------------------------------------------

    def _events_tab(self) -> pn.Column:
        self.pause = pn.widgets.Toggle(label="pause", css_classes=["llmgine-dashboard-pause"])
        self.type_filter = pn.widgets.MultiChoice(  # type: ignore[no-untyped-call]
            label="event types", options=[], placeholder="all types", width=320
        )
        self.session_filter = pn.widgets.Select(label="session", options={"all sessions": ALL})  # type: ignore[no-untyped-call]
        self.event_counts = pn.pane.HTML("", css_classes=["llmgine-dashboard-counts"])  # type: ignore[no-untyped-call]
        self.event_table = pn.widgets.Tabulator(  # type: ignore[no-untyped-call]
            pd.DataFrame(columns=EVENT_COLUMNS),
            row_content=self._payload_pane,
            hidden_columns=["seq", "id"],
            show_index=False,
            disabled=True,
            layout="fit_data_stretch",
            height=420,
            sizing_mode="stretch_width",
            css_classes=["llmgine-dashboard-events"],
        )
        self.pause.param.watch(self._pause_changed, "value")
        self.type_filter.param.watch(self._filters_changed, "value")
        self.session_filter.param.watch(self._filters_changed, "value")
        return pn.Column(
            pn.Row(self.pause, self.type_filter, self.session_filter, self.event_counts),
            self.event_table,
            sizing_mode="stretch_width",
        )

    def _payload_pane(self, row: pd.Series) -> pn.pane.HTML:
        payload = self.events.payload(str(row["id"]))
        return pn.pane.HTML(  # type: ignore[no-untyped-call]
            f'<pre class="llmgine-event-payload">{html.escape(payload)}</pre>',
            sizing_mode="stretch_width",
        )

    def _pause_changed(self, event: Any) -> None:
        if event.new:
            self.events.pause()
        else:
            self.events.resume()
        self.refresh()

    def _filters_changed(self, event: Any) -> None:
        self.events.set_filter(
            types=list(self.type_filter.value) or None, session=self.session_filter.value or None
        )
        self.refresh()

    def _refresh_events(self) -> None:
        update = self.events.flush()
        if update.rows_changed:
            frame = pd.DataFrame(update.rows, columns=EVENT_COLUMNS)
            if update.rebuilt:
                self.event_table.value = frame
            else:
                self.event_table.stream(frame, rollover=self.events.max_rows)  # type: ignore[no-untyped-call]
        if update.received or update.rows_changed:
            types = self.events.types_seen()
            if types != list(self.type_filter.options):
                self.type_filter.options = types
            sessions = {"all sessions": ALL} | {s: s for s in self.events.sessions_seen()}
            if sessions != self.session_filter.options:
                self.session_filter.options = sessions
            self.trace_session.options = sessions
        paused = " · paused" if self.events.paused else ""
        self.event_counts.object = html.escape(counts_line(self.events.counts()) + paused)

    # -- the trace tab -----------------------------------------------------------------

    def _trace_tab(self) -> pn.Column:
        self.trace_session = pn.widgets.Select(  # type: ignore[no-untyped-call]
            label="session", options={"all sessions": ALL}, value=self.spans.session or ALL
        )
        self.trace_summary = pn.pane.HTML("", css_classes=["llmgine-dashboard-trace-summary"])  # type: ignore[no-untyped-call]
        self.trace_pane = pn.pane.Plotly(  # type: ignore[no-untyped-call]
            figure([]), css_classes=["llmgine-dashboard-trace"], sizing_mode="stretch_width"
        )
        self.trace_session.param.watch(self._trace_session_changed, "value")
        return pn.Column(
            pn.Row(self.trace_session, self.trace_summary),
            self.trace_pane,
            sizing_mode="stretch_width",
        )

    def _trace_session_changed(self, event: Any) -> None:
        if (event.new or None) == self.spans.session:
            return
        self.spans.close()
        self.spans = SpanFeed(self.obs, session=event.new or None)
        self._refresh_trace(force=True)

    def _refresh_trace(self, *, force: bool = False) -> None:
        if self.spans.flush() or self.spans.running or force:
            self.trace_pane.object = figure(self.spans.bars())
            self.trace_summary.object = html.escape(summary_line(self.spans))

    # -- the compare tab ---------------------------------------------------------------

    def _compare_tab(self, models: Sequence[str]) -> pn.Column:
        self.prompt = pn.widgets.TextAreaInput(
            label="prompt",
            placeholder="One prompt, sent to every model",
            height=100,
            sizing_mode="stretch_width",
            css_classes=["llmgine-dashboard-prompt"],
        )
        self.models = pn.widgets.TextInput(
            label="models (comma-separated provider:model specs)",
            value=", ".join(models),
            sizing_mode="stretch_width",
        )
        self.compare_button = pn.widgets.Button(  # type: ignore[no-untyped-call]
            label="Compare", color="primary", css_classes=["llmgine-dashboard-compare"]
        )
        self.compare_output = pn.Column(sizing_mode="stretch_width")
        self.compare_button.on_click(self._compare_clicked)
        return pn.Column(
            self.prompt, self.models, self.compare_button, self.compare_output,
            sizing_mode="stretch_width",
        )  # fmt: skip

    async def _compare_clicked(self, event: Any) -> None:
        await self.compare()

    async def compare(
        self, prompt: str | None = None, models: Sequence[str | Model] | None = None
    ) -> Any:
        """Run a `CompareView` of ``prompt`` on ``models`` (by default what the tab holds)
        on this dashboard's bus and show it; returns its results (None if it could not
        start: the tab says why)."""
        text = (self.prompt.value or "" if prompt is None else prompt).strip()
        specs = list(models) if models is not None else _specs(self.models.value or "")
        if not text or not specs:
            self._compare_message("Type a prompt and at least one provider:model spec.")
            return None
        try:
            from llmgine.notebook._compare import CompareView
        except ImportError as exc:
            log.exception("CompareView could not be imported")
            self._compare_message(f"CompareView is not available: {exc}")
            return None
        try:
            view = CompareView(specs, text, bus=self.bus)
        except (TypeError, ValueError) as exc:
            self._compare_message(str(exc))
            return None
        if self._compare_view is not None:
            self._compare_view.close()
        self._compare_view = view
        self.compare_button.disabled = True
        self._show_compare(view)
        try:
            results = await view.run()
        finally:
            self.compare_button.disabled = False
            self._show_compare(view)
        return results

    def _compare_message(self, text: str) -> None:
        self.compare_output.objects = [
            pn.pane.HTML(  # type: ignore[no-untyped-call]
                f'<p class="llmgine-dashboard-compare-message">{html.escape(text)}</p>'
            )
        ]

    def _show_compare(self, view: Any) -> None:
        self.compare_output.objects = [
            pn.pane.HTML(view._repr_html_(), css_classes=["llmgine-dashboard-compare-result"]),  # type: ignore[no-untyped-call]
            pn.pane.Plotly(view.figure(), sizing_mode="stretch_width"),  # type: ignore[no-untyped-call]
        ]

    # -- refreshing --------------------------------------------------------------------

    def refresh(self) -> None:
        """Update every view from what the bus and the span buffer did since the last."""
        self._refresh_events()
        self._refresh_trace()
        view = self._compare_view
        if view is not None and self.compare_button.disabled:
            self.compare_output.objects[0].object = view._repr_html_()  # answers streaming in
        self.refreshes += 1
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    async def next_refresh(self) -> None:
        """Return once the dashboard refreshed again (by its periodic callback, or a call)."""
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        await waiter

    def close(self) -> None:
        """Stop refreshing and watching the bus and the span buffer."""
        if self._callback is not None:
            self._callback.stop()
            self._callback = None
        self.events.close()
        self.spans.close()
        if self._compare_view is not None:
            self._compare_view.close()
            self._compare_view = None

    def _repr_html_(self) -> str:
        return (
            '<div class="llmgine-dashboard-static"><b>llmgine dashboard</b>: events '
            f"{html.escape(counts_line(self.events.counts()))}; trace "
            f"{html.escape(summary_line(self.spans))}</div>"
        )


def _specs(text: str) -> list[str]:
    return [s.strip() for s in text.replace("\n", ",").split(",") if s.strip()]


def dashboard(
    bus: MessageBus,
    *,
    session: str | Session | None = None,
    models: Sequence[str] = DEFAULT_MODELS,
    obs: Observability | None = None,
    max_rows: int = DEFAULT_MAX_ROWS,
    interval: float | None = DEFAULT_INTERVAL,
) -> Dashboard:
    """The workbench dashboard for ``bus``: Events, Trace and Compare tabs.

    Observability is enabled for ``bus`` if it is off (the trace tab reads its spans).

    Args:
        bus: the bus to watch, and to run comparisons on.
        session: the session the trace tab starts on (None: every span).
        models: the model specs the compare tab starts with.
        obs: the `Observability` to read spans from (by default the enabled one).
        max_rows: event rows shown.
        interval: seconds between refreshes (None: only when `Dashboard.refresh` is called).

    Example:
        import panel as pn
        pn.extension("tabulator", "plotly")
        dashboard(bus)                 # a notebook cell; or dashboard(bus).servable()
    """
    return Dashboard(
        bus, session=session, models=models, obs=obs, max_rows=max_rows, interval=interval
    )


class DashboardServer:
    """A served dashboard: the Bokeh server and the dashboards it made (one per page)."""

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
    **options: Any,
) -> DashboardServer:
    """Serve `dashboard(bus)` on the running event loop (the bus's); one per browser page.

    Pass ``port=0`` for a free port (``.port`` says which); ``.stop()`` when done.
    ``options`` go to `dashboard`.
    """
    pn.extension("tabulator", "plotly")
    made: list[Dashboard] = []

    def page() -> Dashboard:
        board = dashboard(bus, **options)
        made.append(board)
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
    if not _specs(args.models):
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
    models = _specs(args.models)
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
