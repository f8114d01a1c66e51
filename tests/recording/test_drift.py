"""Drift: ``mode="compare"`` calls the live model, compares each answer with its
recording, and shows what changed (diffs, a summary table, HTML), recording nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmgine import _extras, observability
from llmgine.errors import MissingExtraError
from llmgine.llm import (
    ChatMessage,
    LLMResponse,
    Model,
    TextPart,
    ToolCallPart,
    ToolResultPart,
    Usage,
    get_model,
)
from llmgine.recording import Drift, DriftAnswer, DriftReport, Recorded, SQLiteCache, request_label

from .helpers import provider, scripted, streamed

PRIMES = "Name three primes."


def answer(
    text: str = "",
    *tools: ToolCallPart,
    usage: tuple[int, int] = (12, 6),
    finish: str = "stop",
) -> LLMResponse:
    parts: list[TextPart | ToolCallPart] = [TextPart(text=text)] if text else []
    parts += tools
    return LLMResponse.model_validate(
        {
            "parts": [p.model_dump() for p in parts],
            "usage": Usage(input_tokens=usage[0], output_tokens=usage[1]).model_dump(),
            "finish_reason": finish,
        }
    )


def weather(city: str, call_id: str = "call_1", **more: str) -> ToolCallPart:
    return ToolCallPart(id=call_id, name="weather", arguments={"city": city, **more})


def report_of(model: Model) -> DriftReport:
    recorded = model.find(Recorded)
    assert recorded is not None
    return recorded.drift


async def record(cassette: Path, prompt: str, recorded: LLMResponse | str) -> None:
    await scripted(cassette, "record", recorded).generate(prompt)


async def compare(cassette: Path, prompt: str, live: LLMResponse | str) -> tuple[Model, Drift]:
    model = scripted(cassette, "compare", live)
    response = await model.generate(prompt)
    report = report_of(model)
    assert len(report) == 1
    drift = report.records[0]
    assert response.drift == drift.status
    assert response.cache_hit is False
    assert response.replayed_from is None
    assert provider(model).pending == 0  # the live model was called
    return model, drift


async def test_a_changed_answer_is_returned_live_and_shown_in_a_diff(tmp_path: Path) -> None:
    cassette = tmp_path / "c.jsonl"
    await record(cassette, PRIMES, answer("Two, three and five."))
    model = scripted(cassette, "compare", answer("Two, three and seven.", usage=(12, 7)))
    response = await model.generate(PRIMES)
    assert response.text == "Two, three and seven."  # the live answer, not the recording
    assert (response.cache_hit, response.drift) == (False, "changed")

    report = report_of(model)
    assert report.changed == report.records
    drift = report.changed[0]
    assert (drift.status, drift.label, drift.model) == ("changed", PRIMES, "test:scripted")
    assert (drift.text_changed, drift.tools_changed, drift.finish_changed) == (True, False, False)
    assert drift.recorded is not None
    assert (drift.recorded.text, drift.live.text) == ("Two, three and five.", response.text)
    unified = drift.diff()
    assert "--- recorded\n+++ live" in unified
    assert "\n-Two, three and five.\n+Two, three and seven.\n" in unified
    assert "usage: input 12 → 12, output 6 → 7 (+1)" in unified
    side = drift.diff("side-by-side").splitlines()
    row = next(line for line in side if "five" in line)
    assert row.startswith("Two, three and five.")
    assert row.endswith("| Two, three and seven.")
    assert str(drift) == unified
    with pytest.raises(ValueError, match="'unified' or 'side-by-side'"):
        drift.diff("sideways")  # type: ignore[arg-type]


async def test_the_same_answer_is_same_and_a_new_request_is_new(tmp_path: Path) -> None:
    cassette = tmp_path / "c.jsonl"
    await record(cassette, PRIMES, answer("Two, three and five."))
    _, same = await compare(cassette, PRIMES, answer("Two, three and five."))
    assert same.status == "same"
    assert (same.text_changed, same.tools_changed, same.usage_changed) == (False, False, False)
    assert (same.input_tokens_delta, same.output_tokens_delta) == (0, 0)
    assert "text and tool calls: unchanged" in same.diff()

    model, new = await compare(cassette, "Name four primes.", answer("2, 3, 5, 7."))
    assert new.status == "new"
    assert new.recorded is None
    assert (new.text_changed, new.usage_changed, new.finish_changed) == (False, False, False)
    assert new.input_tokens_delta is None
    assert "no recording of this request; the live answer:\n  2, 3, 5, 7." in new.diff()
    assert report_of(model).new == [new]
    assert report_of(model).changed == []


async def test_tool_calls_compare_by_name_and_arguments_not_by_id(tmp_path: Path) -> None:
    cassette = tmp_path / "c.jsonl"
    await record(cassette, "Weather?", answer("", weather("Paris"), finish="tool_calls"))
    # Another call id and another key order: the same call.
    reordered = ToolCallPart(id="call_9", name="weather", arguments={"city": "Paris"})
    _, same = await compare(cassette, "Weather?", answer("", reordered, finish="tool_calls"))
    assert same.status == "same"

    lyon = answer("", weather("Lyon"), finish="tool_calls")
    _, drift = await compare(cassette, "Weather?", lyon)
    assert (drift.status, drift.tools_changed, drift.text_changed) == ("changed", True, False)
    assert drift.live.tool_calls == (("weather", '{"city": "Lyon"}'),)
    diff = drift.diff()
    assert '-→ tool call weather {"city": "Paris"}' in diff
    assert '+→ tool call weather {"city": "Lyon"}' in diff

    extra = answer("", weather("Paris", unit="C"), finish="tool_calls")
    _, added = await compare(cassette, "Weather?", extra)
    assert added.tools_changed
    assert '{"city": "Paris", "unit": "C"}' in added.diff()


async def test_usage_and_finish_changes_alone_are_changes(tmp_path: Path) -> None:
    cassette = tmp_path / "c.jsonl"
    await record(cassette, PRIMES, answer("Two, three and five.", usage=(12, 6)))
    _, drift = await compare(cassette, PRIMES, answer("Two, three and five.", usage=(15, 4)))
    assert (drift.status, drift.text_changed, drift.usage_changed) == ("changed", False, True)
    assert (drift.input_tokens_delta, drift.output_tokens_delta) == (3, -2)
    assert "usage: input 12 → 15 (+3), output 6 → 4 (-2)" in drift.diff()

    cut = answer("Two, three and five.", finish="length")
    _, cut_drift = await compare(cassette, PRIMES, cut)
    assert (cut_drift.status, cut_drift.finish_changed, cut_drift.usage_changed) == (
        "changed",
        True,
        False,
    )
    assert "finish: stop → length" in cut_drift.diff()


async def test_the_summary_table_has_one_row_per_call(tmp_path: Path) -> None:
    cassette = tmp_path / "c.jsonl"
    await record(cassette, "a?", answer("A.", usage=(3, 2)))
    await record(cassette, "b?", answer("B.", usage=(3, 2)))
    model = scripted(
        cassette, "compare", answer("A.", usage=(3, 2)), answer("Bee.", usage=(3, 4)), "C."
    )
    for prompt in ("a?", "b?", "c?"):
        await model.generate(prompt)
    report = report_of(model)
    frame = report.summary()
    assert list(frame.columns) == [
        "label",
        "status",
        "text_changed",
        "tools_changed",
        "usage_changed",
        "input_tokens_delta",
        "output_tokens_delta",
        "finish_changed",
    ]
    assert frame["label"].tolist() == ["a?", "b?", "c?"]
    assert frame["status"].tolist() == ["same", "changed", "new"]
    assert frame["text_changed"].tolist() == [False, True, False]
    assert frame["usage_changed"].tolist() == [False, True, False]
    assert frame["output_tokens_delta"].tolist()[:2] == [0, 2]
    assert frame["output_tokens_delta"].isna().tolist() == [False, False, True]
    assert report.counts() == {"same": 1, "changed": 1, "new": 1}
    assert repr(report) == "<DriftReport: 3 call(s) compared: 1 same, 1 changed, 1 new>"
    text = str(report)
    assert "label  status" in text
    assert "\nb?     changed  True" in text
    assert "+Bee." in text  # the changed call's diff follows the table
    assert "| b? | changed | True |" in report._repr_markdown_()
    report.clear()
    assert len(report) == 0
    assert report.summary().empty


def test_the_summary_without_pandas_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_extras, "_installed", lambda module: module != "pandas")
    with pytest.raises(MissingExtraError, match=r'pip install "llmgine\[observability\]"'):
        DriftReport().summary()


async def test_html_and_markdown_escape_the_answers(tmp_path: Path) -> None:
    cassette = tmp_path / "c.jsonl"
    prompt = "Say <b>hi</b> & | `x`"
    await record(cassette, prompt, answer("<script>alert(1)</script> old"))
    model, drift = await compare(cassette, prompt, answer("<script>alert(2)</script> new"))
    report = report_of(model)
    for shown in (drift._repr_html_(), report._repr_html_()):
        assert "<script>" not in shown
        assert "<b>hi" not in shown
        assert shown.count("&lt;script&gt;alert(") == 2  # both sides, escaped
        assert shown.count("&lt;/script&gt;") == 2
        assert "Say &lt;b&gt;hi&lt;/b&gt; &amp;" in shown
        assert "<table" in shown  # the side-by-side table and, for the report, the summary
    assert "<tr class='changed'><td>Say &lt;b&gt;" in report._repr_html_()
    assert '<span class="diff_chg">old</span>' in drift._repr_html_()  # what changed, marked
    markdown = report._repr_markdown_()
    table, fenced = markdown.split("```diff\n", 1)
    assert "<b>" not in table
    assert "<script>" not in table
    assert "Say &lt;b&gt;hi&lt;/b&gt; &amp; \\| \\`x\\`" in markdown
    assert "-<script>alert(1)</script> old" in fenced  # inside a code fence: literal


def test_a_code_fence_outlasts_backticks_in_the_answer() -> None:
    fenced = DriftReport()
    recorded = answer("```\nold\n```")
    live = answer("```\nnew\n```")
    fenced.add(Drift("k" * 64, "q", "test:x", DriftAnswer.of(recorded), DriftAnswer.of(live)))
    markdown = fenced._repr_markdown_()
    assert "\n````diff\n" in markdown
    assert markdown.endswith("\n````")


def files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


async def test_compare_never_writes_the_cassette(tmp_path: Path) -> None:
    cassette = tmp_path / "c.jsonl"
    await record(cassette, PRIMES, answer("Two, three and five."))
    before = cassette.read_bytes()
    stat = cassette.stat()
    model = scripted(cassette, "compare", "changed", "new answer", "streamed change")
    await model.generate(PRIMES)
    await model.generate("A request never recorded.")
    await streamed(model, PRIMES)
    assert len(report_of(model)) == 3
    assert cassette.read_bytes() == before
    assert cassette.stat().st_mtime_ns == stat.st_mtime_ns
    assert files(tmp_path) == ["c.jsonl"]  # no temporary file either
    # An empty store stays empty: compare makes no file at all.
    empty = tmp_path / "none.jsonl"
    await scripted(empty, "compare", "x").generate(PRIMES)
    assert not empty.exists()
    # The SQLite cache keeps its recordings as they were too.
    cache = SQLiteCache(tmp_path / "cache.sqlite3")
    await scripted(cache, "record", "kept").generate(PRIMES)
    await scripted(cache, "compare", "other", "more").generate(PRIMES)
    assert await cache.count() == 1
    assert (await scripted(cache, "replay").generate(PRIMES)).text == "kept"


async def test_streamed_calls_are_compared_too(tmp_path: Path) -> None:
    cassette = tmp_path / "c.jsonl"
    await record(cassette, PRIMES, answer("Two, three and five."))
    model = scripted(cassette, "compare", answer("Two, three and eleven."))
    items, response = await streamed(model, PRIMES)
    assert len(items) > 3  # the live stream, chunked
    assert response.text == "Two, three and eleven."
    assert (response.cache_hit, response.drift) == (False, "changed")
    drift = report_of(model).records[0]
    assert drift.streamed
    assert drift.text_changed
    assert "+Two, three and eleven." in drift.diff()
    assert "streamed" in drift.diff().splitlines()[0]

    same = scripted(cassette, "compare", answer("Two, three and five."))
    obs = observability.enable()
    try:
        _, again = await streamed(same, PRIMES)
        span = [s for s in obs.buffer.finished() if s.name == "chat scripted"][-1]
    finally:
        observability.disable()
    assert again.drift == "same"
    assert span.attributes["llmgine.cache.drift"] == "same"

    # A stream its reader leaves early is not compared: half an answer says nothing.
    early = scripted(cassette, "compare", answer("Two, three and seven."))
    async with early.stream(PRIMES) as stream:
        async for _ in stream:
            break
    assert len(report_of(early)) == 0


async def test_a_report_can_be_handed_in_and_shared(tmp_path: Path) -> None:
    cassette = tmp_path / "c.jsonl"
    await record(cassette, PRIMES, answer("Two, three and five."))
    shared = DriftReport()
    for text in ("Two, three and five.", "Two and three."):
        model = scripted(cassette, "compare", answer(text))
        layer = model.find(Recorded)
        assert layer is not None
        recorded = Recorded(layer.wrapped, cassette, mode="compare", drift=shared)
        await recorded.generate(model.request(PRIMES))
    assert [d.status for d in shared] == ["same", "changed"]
    assert shared[1].text_changed


async def test_a_failed_live_call_is_raised_and_not_compared(tmp_path: Path) -> None:
    cassette = tmp_path / "c.jsonl"
    await record(cassette, PRIMES, "recorded")
    model = scripted(cassette, "compare", ValueError("the provider broke"))
    with pytest.raises(ValueError, match="provider broke"):
        await model.generate(PRIMES)
    assert len(report_of(model)) == 0


async def test_get_model_and_the_environment_take_compare_and_spans_show_drift(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cassette = tmp_path / "c.jsonl"
    await record(cassette, PRIMES, "Two, three and five.")
    monkeypatch.setenv("LLMGINE_CASSETTE", str(cassette))
    monkeypatch.setenv("LLMGINE_CASSETTE_MODE", "compare")
    model = get_model("test:scripted", responses=["Two, three and five.", "Four."], retry=False)
    layer = model.find(Recorded)
    assert layer is not None
    assert layer.mode == "compare"
    obs = observability.enable()
    try:
        await model.generate(PRIMES)
        await model.generate(PRIMES)
        spans = [s for s in obs.buffer.finished() if s.name == "chat scripted"][-2:]
    finally:
        observability.disable()
    assert [s.attributes["llmgine.cache.drift"] for s in spans] == ["same", "changed"]
    assert all(s.attributes["llmgine.cache.hit"] is False for s in spans)
    assert all("llmgine.cache.original_cost_usd" not in s.attributes for s in spans)
    monkeypatch.delenv("LLMGINE_CASSETTE_MODE")
    direct = get_model("test:x", recording=cassette, recording_mode="compare").find(Recorded)
    assert direct is not None
    assert direct.mode == "compare"
    assert isinstance(direct.drift, DriftReport)


def test_a_request_label_is_the_last_user_text_on_one_line() -> None:
    model = get_model("test:x", trace=False, retry=False)
    assert request_label(model.request("Hello\n  there")) == "Hello there"
    long = request_label(model.request("x" * 100))
    assert (len(long), long[-1]) == (60, "…")
    request = model.request(
        [
            ChatMessage.user("Weather in Paris?"),
            ChatMessage.assistant([weather("Paris")]),
            ChatMessage.tool_results([ToolResultPart(call_id="call_1", content="Sunny")]),
        ]
    )
    assert request_label(request) == "(after tools) Weather in Paris?"


def test_side_by_side_wraps_long_lines_at_spaces_within_their_column() -> None:
    old = "The capital of France is Paris, and it has been since the tenth century or so."
    new = old.replace("tenth", "twelfth")
    drift = Drift("k" * 64, "q", "test:x", DriftAnswer.of(answer(old)), DriftAnswer.of(answer(new)))
    rows = drift.diff("side-by-side").splitlines()
    assert rows[1] == "recorded" + " " * 55 + "live"
    first, second = rows[2], rows[3]
    assert first[61] == "|"  # the change mark, between the two 60-character columns
    assert first[:60].rstrip() == "The capital of France is Paris, and it has been since the"
    assert second[:60].rstrip() == "tenth century or so."
    assert second[63:] == "twelfth century or so."
    assert second[61] == " "  # only a row's first piece carries the mark
