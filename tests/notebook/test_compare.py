"""CompareView: one prompt, several models, concurrently, side by side."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from IPython.core.formatters import DisplayFormatter
from IPython.core.interactiveshell import InteractiveShell

from llmgine.bus import MessageBus
from llmgine.errors import (
    LLMConfigurationError,
    LLMConnectionError,
    LLMTimeoutError,
    MissingCredentialsError,
    RateLimitedError,
    UnknownProviderError,
)
from llmgine.llm import (
    ChatMessage,
    LLMCallStarted,
    LLMRequest,
    LLMResponse,
    Model,
    ProviderModel,
    get_model,
)
from llmgine.notebook import CompareView
from llmgine.notebook._compare_view import ColumnUpdate
from llmgine.recording import Cassette
from tests.notebook.magics_helpers import BreaksMidwayProvider, gated_model, make_shell


@pytest.fixture(scope="module", autouse=True)
def shell() -> Iterator[InteractiveShell]:
    """Displays need a shell (its formatters make the text and HTML of a saved output)."""
    ip, made = make_shell()
    yield ip
    if made:
        InteractiveShell.clear_instance()


async def test_a_slow_model_does_not_hold_up_the_others(bus: MessageBus) -> None:
    gate = asyncio.Event()
    fast = get_model("test:fast", responses=["quick answer"], retry=False)
    view = CompareView([gated_model(gate), fast], "Hi", bus=bus)
    fast_done = asyncio.Event()

    def emit(update: ColumnUpdate) -> None:
        view.apply_update(update)
        if update.kind == "done" and update.index == 1:
            fast_done.set()

    run = asyncio.create_task(view.run_emitting(emit))
    await fast_done.wait()  # the fast model answered while the slow one waits at its gate
    assert not run.done()
    assert view.columns[0].status == "streaming"
    assert "gated:slow" not in view.results
    assert view.columns[1].text == "quick answer"
    gate.set()
    results = await run
    assert isinstance(results["gated:slow"], LLMResponse)
    assert results["gated:slow"].text == "slow answer"
    assert view.wall_ms is not None
    view.refresh()
    assert "done in" in view._header.value


async def test_a_failed_model_shows_its_error_and_the_others_answer() -> None:
    good = get_model("demo:good", latency=0)
    bad = get_model(
        "test:bad", responses=[RateLimitedError("slow down", retry_after=2)], retry=False
    )
    view = CompareView([good, bad, "nope:model", "test:empty"], "Tell me about tides")
    results = await view.run()  # a private bus for the run
    assert results is not view.results
    assert results == view.results
    assert isinstance(results["demo:good"], LLMResponse)
    assert isinstance(results["test:bad"], RateLimitedError)
    assert isinstance(results["nope:model"], UnknownProviderError)
    assert isinstance(results["test:empty"], LLMConfigurationError)  # nothing scripted
    assert [c.status for c in view.columns] == ["done", "failed", "failed", "failed"]
    assert "tides" in view._bodies[0].value
    assert "RateLimitedError" in view._bodies[1].value
    assert "wait 2 s" in view._bodies[1].value
    assert "demo, simulated" in view._titles[0].value
    latency = view._chart.data[0].y
    assert latency[0] is not None
    assert latency[0] >= 0
    assert latency[1] is None


async def test_the_table_and_the_chart_mark_a_failed_model(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    late = get_model("test:late", responses=[LLMTimeoutError("no answer in 30 s")], retry=False)
    view = CompareView([late, "openai:gpt-4o-mini", get_model("demo:ok", latency=0)], "Hi")
    results = await view.run()
    assert isinstance(results["test:late"], LLMTimeoutError)
    assert isinstance(results["openai:gpt-4o-mini"], MissingCredentialsError)  # no key
    assert isinstance(results["demo:ok"], LLMResponse)
    assert "3 models, done in" in view._header.value
    assert "2 failed" in view._header.value
    assert "<td>failed (LLMTimeoutError)</td>" in view._table.value
    assert "set OPENAI_API_KEY" in view._bodies[1].value
    marks = [(a.x, a.text) for a in view._chart.layout.annotations]
    assert marks == [
        ("test:late", "failed: LLMTimeoutError"),
        ("openai:gpt-4o-mini", "failed: MissingCredentialsError"),
    ]
    exported = view.figure()  # the static figure says so too
    assert [a.text for a in exported.layout.annotations] == [t for _, t in marks]
    assert list(exported.data[0].y)[:2] == [None, None]


async def test_when_every_model_fails_run_returns_the_errors() -> None:
    view = CompareView(["nope:a", "nope:b"], "Hi")
    results = await view.run()  # no exception: errors are values, as for one failure
    assert all(isinstance(r, UnknownProviderError) for r in results.values())
    assert "2 failed" in repr(view)


async def test_what_streamed_before_an_error_is_kept() -> None:
    broken = Model(ProviderModel(BreaksMidwayProvider(), "m"))
    view = CompareView([broken, get_model("demo:ok", latency=0)], "Hi", refresh_interval=0)
    results = await view.run()
    assert isinstance(results["midway:m"], LLMConnectionError)
    assert view.columns[0].text == "half an "
    assert "streamed before the error:</i> half an" in view._bodies[0].value
    assert "LLMConnectionError" in view._bodies[0].value


async def test_a_model_that_fails_to_close_does_not_lose_the_answers(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async def fails_to_close(self: Model) -> None:
        raise OSError("socket already closed")

    monkeypatch.setattr(Model, "aclose", fails_to_close)
    results = await CompareView(["demo:a", "demo:b"], "Hi").run()  # the view made both
    assert all(isinstance(r, LLMResponse) for r in results.values())
    assert caplog.text.count("OSError: socket already closed") == 2


async def test_the_calls_run_in_the_views_session(bus: MessageBus) -> None:
    seen: list[str | None] = []
    bus.on_event(LLMCallStarted, lambda event: seen.append(event.session_id))
    models = [get_model("demo:a", latency=0), get_model("demo:b", latency=0)]
    view = CompareView(models, "Hi", bus=bus)
    assert view.called is False
    await view.run()
    await bus.drain()  # the events are delivered
    assert seen == [view.session_id, view.session_id]
    assert view.called is True


async def test_the_text_representations_show_answers_and_figures() -> None:
    view = CompareView(
        [get_model("demo:a", latency=0), get_model("demo:b", latency=0)],
        [ChatMessage.system("Be brief."), ChatMessage.user("Explain RAFT")],
    )
    assert "0/2 answered" in repr(view)
    results = await view.run()
    text, markdown, page = repr(view), view._repr_markdown_(), view._repr_html_()
    for label, response in results.items():
        assert isinstance(response, LLMResponse)
        assert f"== {label} (done," in text
        assert f"#### {label} · done" in markdown
        assert response.text.splitlines()[0] in page
    assert "prompt: Explain RAFT" in text
    assert "| model | status | latency (s) |" in markdown
    assert "<th>first token (s)</th>" in page
    assert "demo, simulated" in text
    formatter = DisplayFormatter()
    bundle, _ = formatter.format(view)  # type: ignore[no-untyped-call]  # what is saved
    assert bundle["text/plain"] == text  # whole, not cut to ipywidgets' 110 characters
    assert "application/vnd.jupyter.widget-view+json" in bundle
    assert bundle["text/html"] == page


async def test_the_same_model_twice_gets_two_columns() -> None:
    model = get_model("demo:same", latency=0)
    view = CompareView([model, model], LLMRequest(messages=[ChatMessage.user("Hi")]))
    results = await view.run()
    assert list(results) == ["demo:same", "demo:same (2)"]
    assert "Hi" in view._header.value


async def test_request_params_reach_every_model() -> None:
    first = get_model("test:one", responses=["1"], retry=False)
    second = get_model("test:two", responses=["2"], retry=False)
    await CompareView([first, second], "Hi", temperature=0.3, max_tokens=20).run()
    for model in (first, second):
        request = model.adapter.requests[0]  # type: ignore[attr-defined]
        assert (request.temperature, request.max_tokens) == (0.3, 20)


async def test_a_view_runs_once() -> None:
    view = CompareView([get_model("demo:once", latency=0)], "Hi")
    await view.run()
    with pytest.raises(RuntimeError, match="already run"):
        await view.run()
    with pytest.raises(RuntimeError, match="before the view runs"):
        view.fail_column(0, ValueError("too late"))


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="at least one model"):
        CompareView([], "Hi")
    with pytest.raises(TypeError, match="unknown request fields \\['temprature'\\]"):
        CompareView(["demo:a"], "Hi", temprature=0.2)
    with pytest.raises(ValueError, match="cannot be negative"):
        CompareView(["demo:a"], "Hi", refresh_interval=-1)


def test_the_figure_is_a_plotly_bar_chart() -> None:
    figure = CompareView(["demo:a", "demo:b"], "Hi").figure()
    assert [trace.type for trace in figure.data] == ["bar", "bar"]
    assert list(figure.data[0].x) == ["demo:a", "demo:b"]


def test_the_view_and_its_columns_have_stable_class_names() -> None:
    view = CompareView(["demo:a", "demo:b"], "hi")
    assert "llmgine-compare" in view._dom_classes
    grid = view.children[1]
    assert [("llmgine-compare-column" in c._dom_classes) for c in grid.children] == [True, True]
    view.close()


def test_answers_render_as_markdown_with_raw_html_escaped() -> None:
    from llmgine.notebook._compare_view import _body_html, _Column

    column = _Column("m", "demo:m")
    column.text = "**bold** and <script>alert(1)</script>"
    body = _body_html(column)
    assert "<strong>bold</strong>" in body
    assert "<script>" not in body
    assert "&lt;script&gt;" in body


async def test_a_replayed_answer_says_where_it_came_from(tmp_path: Path) -> None:
    cassette = Cassette(tmp_path / "answers.jsonl")
    live = get_model("demo:a", latency=0, recording=cassette)
    await live.generate("Explain RAFT")
    replayed = get_model("demo:a", latency=0, recording=cassette, recording_mode="replay")
    view = CompareView([replayed], "Explain RAFT")
    results = await view.run()
    response = results["demo:a"]
    assert isinstance(response, LLMResponse)
    assert response.replayed_from is not None
    text, markdown, title = repr(view), view._repr_markdown_(), view._titles[0].value
    for shown in (text, markdown, title):
        assert "demo, simulated · replayed from answers.jsonl" in shown
    assert str(tmp_path) not in text  # the file's name, not where it lies
