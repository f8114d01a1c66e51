"""The trace waterfall as plotly.js draws it in headless chromium: the legend clear of the
x axis, span names left-aligned and indented by depth, clear of the bars.

Geometry, not pixels: the boxes of the drawn SVG elements are compared, at a wide and a
narrow width, for a trace with every kind, deep nesting, a long name and a running span.
"""

from __future__ import annotations

import json
from typing import Any

import plotly.graph_objects as go  # type: ignore[import-untyped]
import plotly.io as pio  # type: ignore[import-untyped]
import plotly.offline  # type: ignore[import-untyped]
import pytest

from llmgine import observability
from llmgine.notebook._span_feed import INDENT_PX, Bar, SpanFeed, figure
from tests.browser.browser_support import chromium

from .widgets_support import observability_off

__all__ = ["observability_off"]  # a fixture, imported to be used here

pytestmark = [pytest.mark.usefixtures("observability_off"), pytest.mark.timeout(120)]

Box = dict[str, float]

MEASURE = """() => {
  const box = (e) => { const r = e.getBoundingClientRect();
    return {left: r.left, right: r.right, top: r.top, bottom: r.bottom}; };
  const all = (sel) => [...document.querySelectorAll(sel)].map(box);
  return {
    figure: box(document.querySelector('#fig')),
    plot: box(document.querySelector('.bglayer .bg')),
    legend: box(document.querySelector('.legend')),
    xtitle: box(document.querySelector('.g-xtitle')),
    xticks: all('.xtick text'),
    labels: all('.annotation-text'),
  };
}"""


def bars() -> list[Bar]:
    """Spans of every kind, four deep, one with a long name, one still running."""
    obs = observability.enable()
    tracer = obs.tracer
    kind, operation = "llmgine.span.kind", "gen_ai.operation.name"
    with tracer.start_as_current_span("session planning", attributes={kind: "session"}):
        with (
            tracer.start_as_current_span("command Plan" + "X" * 60, attributes={kind: "command"}),
            tracer.start_as_current_span("chat gpt-4o-mini", attributes={operation: "chat"}),
            tracer.start_as_current_span("execute_tool lookup", attributes={kind: "tool"}),
            tracer.start_as_current_span("plain span"),
        ):
            pass
        running = tracer.start_span("command Waiting", attributes={kind: "command"})
    feed = SpanFeed(obs)
    feed.flush()
    drawn = feed.bars()
    running.end()
    return drawn


def overlap(a: Box, b: Box) -> bool:
    return (
        a["left"] < b["right"]
        and b["left"] < a["right"]
        and a["top"] < b["bottom"]
        and b["top"] < a["bottom"]
    )


def draw(spec: dict[str, Any], width: int) -> dict[str, Any]:
    # Through plotly.py first, so the default template applies as in a FigureWidget.
    themed = json.loads(pio.to_json(go.Figure(spec)))
    page_html = (
        f'<html><head><meta charset="utf-8"><script>{plotly.offline.get_plotlyjs()}</script>'
        f'</head><body style="margin:0"><div id="fig" style="width:{width}px"></div><script>'
        f"Plotly.newPlot('fig', {json.dumps(themed['data'])}, {json.dumps(themed['layout'])})"
        ".then(() => { document.body.dataset.drawn = '1'; });</script></body></html>"
    )
    with chromium() as browser:
        page = browser.new_page(viewport={"width": width + 40, "height": 900})
        page.set_content(page_html)
        page.wait_for_selector("body[data-drawn='1']", state="attached", timeout=60_000)
        measured: dict[str, Any] = page.evaluate(MEASURE)
    return measured


@pytest.mark.parametrize("width", [900, 520])
def test_the_drawn_waterfall_keeps_legend_axis_and_names_apart(width: int) -> None:
    drawn = bars()
    assert [b.depth for b in drawn] == [0, 1, 2, 3, 4, 1]
    geometry = draw(figure(drawn, title="a trace"), width)
    legend, xtitle, plot, page = (geometry[k] for k in ("legend", "xtitle", "plot", "figure"))
    for tick in geometry["xticks"]:
        assert not overlap(legend, tick), f"the legend covers a tick label: {legend} {tick}"
    assert not overlap(legend, xtitle), f"the legend covers the axis title: {legend} {xtitle}"
    assert legend["top"] >= plot["bottom"]
    assert legend["bottom"] <= page["bottom"] + 1
    labels = geometry["labels"]
    assert len(labels) == len(drawn)
    root = labels[0]["left"]
    for label, bar in zip(labels, drawn, strict=True):
        # Left-aligned and indented: each name starts its depth's indent from the root's.
        assert label["left"] == pytest.approx(root + bar.depth * INDENT_PX, abs=1.5)
        assert label["left"] >= page["left"]
        assert label["right"] <= plot["left"], "a span name runs into the bars"
    tops = [label["top"] for label in labels]
    assert tops == sorted(tops)  # one row each, top to bottom
