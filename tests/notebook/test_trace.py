"""TraceView: a real session's spans (a demo LLM call, a command, a tool) as waterfall
bars with the right kinds, colours and parents; running spans; hover; redaction."""

from __future__ import annotations

import asyncio

import pytest

from llmgine import observability
from llmgine.bus import MessageBus
from llmgine.errors import ObservabilityError
from llmgine.llm import ChatMessage, Generate, LLMRequest, LLMService
from llmgine.notebook import TraceView
from llmgine.notebook._span_feed import (
    AXIS_PX,
    INDENT_PX,
    KIND_COLOURS,
    LEGEND_PX,
    MAX_LABEL_CHARS,
    RUNNING_PATTERN,
    Bar,
    SpanFeed,
    figure,
)
from llmgine.observability import tool_span

from .widgets_support import PLANTED_KEY, Gate, Plan, observability_off

__all__ = ["observability_off"]  # a fixture, imported to be used here

pytestmark = pytest.mark.usefixtures("observability_off")


def ask(text: str) -> Generate:
    return Generate(request=LLMRequest(messages=[ChatMessage.user(text)]))


async def plan(bus: MessageBus) -> None:
    """A session with a command that calls the model and a tool, then a direct call."""

    async def handle(command: Plan) -> str:
        call = ask(command.topic)
        call.session_id = command.session_id
        answer = await bus.execute(call)
        with tool_span("lookup", call_id="call-1", session_id=command.session_id):
            pass
        return answer.unwrap().text

    bus.on_command(Plan, handle)
    LLMService(bus, "demo:llmgine-demo", latency=0).install()
    async with bus.session("planning") as session:
        assert (await session.execute(Plan(topic="volcanoes"))).success
        assert (await session.execute(ask("and tides?"))).success


def by_name(bars: list[Bar]) -> dict[str, Bar]:
    return {b.record.name: b for b in bars}


async def test_a_session_with_a_demo_call_becomes_bars_with_kinds_colours_and_parents(
    bus: MessageBus,
) -> None:
    observability.enable(bus)
    view = TraceView(interval=3600)
    try:
        await plan(bus)
        assert view.refresh()
        bars = view.bars
        assert [(b.kind, b.depth) for b in bars] == [
            ("session", 0),
            ("command", 1),
            ("llm", 2),
            ("tool", 2),
            ("llm", 1),  # Generate: traced by its GenAI span alone, under the session
        ]
        session, command, nested, tool, direct = bars
        assert session.record.name == "session planning"
        assert session.parent_id is None
        assert command.parent_id == session.span_id
        assert nested.parent_id == command.span_id
        assert tool.parent_id == command.span_id
        assert direct.parent_id == session.span_id
        assert all(b.start_ms >= 0 and b.end_ms >= b.start_ms for b in bars)
        assert not any(b.running for b in bars)
        # One plotly trace per kind, in its colour; each bar sits on its own row.
        traces = {t.name: t for t in view.figure.data}
        assert {n: t.marker.color for n, t in traces.items()} == {
            "session": KIND_COLOURS["session"],
            "command": KIND_COLOURS["command"],
            "LLM call": KIND_COLOURS["llm"],
            "tool": KIND_COLOURS["tool"],
            "other": KIND_COLOURS["other"],
        }
        assert list(traces["LLM call"].y) == [2, 4]
        assert list(traces["session"].customdata) == [session.span_id]
        assert traces["tool"].base[0] == pytest.approx(tool.start_ms)
        labels = view.figure.layout.annotations
        assert [a.text for a in labels] == [b.record.name for b in bars]
        assert view.figure.layout.yaxis.autorange == "reversed"
        assert "5 spans" in view.summary.value
    finally:
        view.close()


async def test_a_view_of_a_finished_session_is_born_with_its_bars(bus: MessageBus) -> None:
    """What a page that renders the view later draws is the widget's synced state; an
    update sent before plotly's script loaded in the page is lost there, so the bars of
    spans that had ended must be in that state from the start (the trace of a finished
    cell, which `%llmgine trace` shows)."""
    observability.enable(bus)
    await plan(bus)
    view = TraceView(interval=3600)
    try:
        state = view.figure.get_state()  # ipywidgets' public view of the synced state
        drawn = {t["name"]: list(t["y"]) for t in state["_widget_data"]}
        assert drawn["LLM call"] == [2, 4]
        assert sum(len(rows) for rows in drawn.values()) == len(view.bars) == 5
        labels = [a["text"] for a in state["_widget_layout"]["annotations"]]
        assert labels == [b.record.name for b in view.bars]
        assert "5 spans" in view.summary.value
    finally:
        view.close()


async def test_the_waterfall_indents_left_aligned_names_and_keeps_the_legend_clear(
    bus: MessageBus,
) -> None:
    observability.enable(bus)
    view = TraceView(interval=3600)
    try:
        await plan(bus)
        view.refresh()
        layout = view.figure.layout
        # Plotly right-aligns tick labels, which hides indentation: the names are
        # left-aligned annotations in the margin, shifted right by their depth.
        assert layout.yaxis.showticklabels is False
        labels = layout.annotations
        assert len(labels) == len(view.bars) == 5
        left = layout.margin.l
        for row, (label, bar) in enumerate(zip(labels, view.bars, strict=True)):
            assert (label.xref, label.x, label.xanchor, label.align) == ("paper", 0, "left", "left")
            assert (label.yref, label.y) == ("y", row)  # on its bar's row
            assert label.xshift == labels[0].xshift + bar.depth * INDENT_PX
            assert left + label.xshift >= 0  # starts inside the figure
        assert [b.depth for b in view.bars] == [0, 1, 2, 2, 1]
        assert labels[2].xshift - labels[1].xshift == INDENT_PX > 0
        # The legend hangs from the figure's bottom edge in pixels, under the room kept
        # for the x axis's tick labels and title (not a fraction of the plot's height).
        assert (layout.legend.yref, layout.legend.y, layout.legend.yanchor) == (
            "container",
            0,
            "bottom",
        )
        assert layout.margin.b >= AXIS_PX + LEGEND_PX
        assert layout.height >= layout.margin.t + layout.margin.b + 22 * len(view.bars)
        # A redraw replaces the labels rather than merging into the old ones.
        async with bus.session("more") as session:
            assert (await session.execute(ask("more"))).success
        view.refresh()
        assert [a.text for a in view.figure.layout.annotations] == [
            b.record.name for b in view.bars
        ]
        assert len(view.bars) == 7
    finally:
        view.close()


async def test_long_names_are_cut_in_the_margin_and_whole_on_hover(bus: MessageBus) -> None:
    obs = observability.enable(bus)
    feed = SpanFeed(obs)
    long = "command " + "VeryLong" * 10 + " <b>"
    with (
        obs.tracer.start_as_current_span(long, attributes={"llmgine.span.kind": "command"}),
        obs.tracer.start_as_current_span("tool <i>x</i>"),
    ):
        pass
    feed.flush()
    label, child = figure(feed.bars())["layout"]["annotations"]
    assert child["text"] == "tool &lt;i&gt;x&lt;/i&gt;"
    assert "hovertext" not in child  # shown whole
    assert label["text"].endswith("…")
    assert len(label["text"]) == MAX_LABEL_CHARS
    assert label["hovertext"].endswith("&lt;b&gt;")  # escaped: plotly reads markup
    assert figure([])["layout"]["annotations"] == []


async def test_a_redraw_replaces_the_names_rather_than_merging_into_them(
    bus: MessageBus,
) -> None:
    obs = observability.enable(bus)
    view = TraceView(max_spans=1, interval=3600)
    try:
        with obs.tracer.start_as_current_span("command " + "Long" * 20):
            pass
        view.refresh()
        [label] = view.figure.layout.annotations
        assert label.hovertext  # cut, so whole on hover
        with obs.tracer.start_as_current_span("short"):
            pass
        view.refresh()
        [label] = view.figure.layout.annotations  # the older span is no longer drawn
        assert label.text == "short"
        assert label.hovertext is None  # nothing left over from the long name
    finally:
        view.close()


async def test_hover_text_carries_model_tokens_cost_and_latency(bus: MessageBus) -> None:
    observability.enable(bus)
    view = TraceView(bus=bus, interval=3600)
    try:
        await plan(bus)
        view.refresh()
        llm = by_name(view.bars)["chat llmgine-demo"]
        hover = llm.hover()
        assert "model: llmgine-demo (demo)" in hover
        tokens_in = llm.record.attributes["gen_ai.usage.input_tokens"]
        tokens_out = llm.record.attributes["gen_ai.usage.output_tokens"]
        assert f"tokens: {tokens_in} in / {tokens_out} out" in hover
        assert "cost: $0.000000" in hover
        assert "latency:" in hover
        hovers = next(t for t in view.figure.data if t.name == "LLM call").hovertext
        assert hover in hovers
        tool = by_name(view.bars)["execute_tool lookup"]
        assert "tool: lookup" in tool.hover()
        command = by_name(view.bars)["command Plan"]
        assert "command: tests.notebook.widgets_support.Plan" in command.hover()
    finally:
        view.close()


async def test_a_running_span_shows_and_then_updates_when_it_ends(bus: MessageBus) -> None:
    observability.enable(bus)
    entered, release = asyncio.Event(), asyncio.Event()

    async def gate(command: Gate) -> str:
        entered.set()
        await release.wait()
        return "done"

    bus.on_command(Gate, gate)
    async with bus.session("waiting") as session:
        view = TraceView(session, interval=3600)
        try:
            task = asyncio.create_task(session.execute(Gate()))
            await entered.wait()
            view.refresh()
            running = by_name(view.bars)["command Gate"]
            assert running.running
            assert by_name(view.bars)["session waiting"].running
            trace = next(t for t in view.figure.data if t.name == "command")
            assert list(trace.marker.pattern.shape) == [RUNNING_PATTERN]
            assert list(trace.text) == ["running…"]
            assert "running for" in running.hover()
            assert "2 spans, 2 running" in view.summary.value  # the session and the command
            assert "(running)" in view._repr_html_()
            release.set()
            assert (await task).success
            assert view.refresh()
            ended = by_name(view.bars)["command Gate"]
            assert not ended.running
            assert ended.record.status == "ok"
            assert ended.end_ms >= running.start_ms
            trace = next(t for t in view.figure.data if t.name == "command")
            assert list(trace.marker.pattern.shape) == [""]
        finally:
            view.close()


async def test_the_view_follows_its_session_only_and_redraws_on_its_ticker(
    bus: MessageBus,
) -> None:
    observability.enable(bus)
    LLMService(bus, "demo:llmgine-demo", latency=0).install()
    async with bus.session("first") as first:
        view = TraceView(first.id, interval=0.001)
        await first.execute(ask("one"))
    async with bus.session("second") as second:
        await second.execute(ask("two"))
    try:
        await view.next_refresh()  # the ticker redraws by itself
        sessions = {b.record.session_id for b in view.bars}
        assert sessions == {first.id}
        assert len(view.bars) == 2
        assert view.ticks >= 1
        assert f"session {first.id}" in repr(view)
    finally:
        view.close()


async def test_spans_already_recorded_are_drawn_and_the_bound_holds(bus: MessageBus) -> None:
    obs = observability.enable(bus)
    LLMService(bus, "demo:llmgine-demo", latency=0).install()
    for n in range(4):
        async with bus.session(f"s{n}") as session:
            await session.execute(ask(f"question {n}"))
    view = TraceView(max_spans=3, interval=3600)  # made after the fact
    try:
        assert len(view.bars) == 3
        assert view.feed.dropped == 5
        assert "5 older not drawn" in view.summary.value
        view.close()
        async with bus.session("later") as session:
            await session.execute(ask("unseen"))
        assert not view.feed.flush()  # closed: no longer listening to the buffer
        assert len(obs.buffer.finished()) == 10
        assert "closed" in repr(view)
    finally:
        view.close()


async def test_secrets_in_running_spans_never_reach_the_view(bus: MessageBus) -> None:
    obs = observability.enable(bus)
    view = TraceView(interval=3600)
    try:
        # Started spans reach listeners before the buffer redacts them: the view must.
        span = obs.tracer.start_span(
            f"call with {PLANTED_KEY}",
            attributes={"llmgine.span.kind": "tool", "gen_ai.tool.name": PLANTED_KEY},
        )
        view.refresh()
        [bar] = view.bars
        assert bar.running
        texts = [bar.hover(), bar.label, view._repr_html_(), view.summary.value]
        texts += [str(t.hovertext) for t in view.figure.data]
        texts.append(str(view.figure.layout.yaxis.ticktext))
        assert not any(PLANTED_KEY in text for text in texts)
        assert "[REDACTED]" in bar.label
        span.end()
        view.refresh()
        assert PLANTED_KEY not in view.bars[0].hover()
    finally:
        view.close()


async def test_the_html_is_a_summary_table_for_saved_notebooks(bus: MessageBus) -> None:
    observability.enable(bus)
    view = TraceView(interval=3600)
    try:
        assert "no spans yet" in view._repr_html_()
        await plan(bus)
        html = view._repr_html_()
        assert html.count("llmgine-trace-row") == 5
        assert "llmgine-trace-llm" in html
        assert "llmgine-demo" in html
        assert " in / " in html  # tokens
        assert "$0.000000" in html
        assert "5 spans" in repr(view)
    finally:
        view.close()


async def test_text_and_html_come_from_one_refresh(bus: MessageBus) -> None:
    obs = observability.enable(bus)
    view = TraceView(interval=3600)
    try:
        # Spans arriving as a collector's thread adds them: heard, not yet drawn.
        with (
            obs.tracer.start_as_current_span("elsewhere"),
            obs.tracer.start_as_current_span("inner"),
        ):
            pass
        records = obs.buffer.finished()
        obs.clear()
        obs.buffer.add(records)
        bundle = view._repr_mimebundle_()
        assert "2 spans" in bundle["text/plain"], bundle["text/plain"]
        assert "TraceView: 2 spans" in bundle["text/html"]
        assert bundle["text/html"].count("llmgine-trace-row") == 2
    finally:
        view.close()


async def test_without_observability_the_error_says_what_to_call() -> None:
    with pytest.raises(ObservabilityError, match=r"observability.enable\(bus\) first"):
        TraceView()
    with pytest.raises(ValueError, match="max_spans must be at least 1"):
        SpanFeed(observability.enable(), max_spans=0)


async def test_given_a_bus_it_enables_observability_and_spans_of_any_kind_draw(
    bus: MessageBus,
) -> None:
    view = TraceView(bus=bus, interval=3600)
    try:
        obs = observability.current()
        assert obs is not None
        assert bus in obs.buses
        with obs.tracer.start_as_current_span("plain"):
            pass
        with obs.tracer.start_as_current_span(
            "guessed", attributes={"gen_ai.operation.name": "execute_tool"}
        ):
            pass
        view.refresh()
        assert [b.kind for b in view.bars] == ["other", "tool"]
        assert "(not set up)" not in repr(view)
    finally:
        view.close()
