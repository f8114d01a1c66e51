"""``%llmgine record``, ``replay`` and ``cache``: cells' models record into a cassette,
answer from it only, or use the response cache; the footer says where an answer came from.

Every test runs in its own folder (cassettes are named as a notebook names them, relative
to it) with its own cache directory (``$XDG_CACHE_HOME``), on offline models: ``demo:``
specs (made by the workbench, so through `get_model`'s recording) and ``test:`` models
of the namespace (wrapped by the magics).
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from IPython.utils.capture import capture_output

from llmgine import observability
from llmgine.errors import CellFailedError, MagicUsageError, RecordingMissError
from llmgine.llm import LLMResponse, Usage
from llmgine.notebook.magics._arguments import help_text
from llmgine.notebook.magics._display import footer_text, provenance
from llmgine.notebook.magics._magics import LLMgineMagics
from tests.notebook.magics_helpers import Shell, plain_texts, scripted

pytestmark = pytest.mark.usefixtures("magics")  # the shell's magics, reset after each test


@pytest.fixture(autouse=True)
def _own_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("LLMGINE_CASSETTE", raising=False)
    monkeypatch.delenv("LLMGINE_CASSETTE_MODE", raising=False)


def _ask(shell: Shell, line: str, prompt: str) -> tuple[LLMResponse, list[str]]:
    with capture_output() as captured:
        shell.cell(f"{line} -o answer", prompt)
    response = shell.user_ns["answer"]
    assert isinstance(response, LLMResponse)
    return response, plain_texts(captured)


def _say(shell: Shell, line: str) -> str:
    with capture_output() as captured:
        shell.line(line)
    return captured.stdout


def test_record_then_replay_answers_from_the_cassette(shell: Shell) -> None:
    said = _say(shell, "record answers.jsonl")
    assert "record into answers.jsonl (read-write" in said
    assert "0 recording(s)" in said
    live, texts = _ask(shell, "demo:rec", "Name a prime.")
    assert live.cache_hit is False
    assert not any("replayed" in t for t in texts)
    lines = Path("answers.jsonl").read_text("utf-8").splitlines()
    assert len(lines) == 1
    assert json.loads(lines[0])["model"] == "demo:rec"

    said = _say(shell, "replay answers.jsonl")
    assert "replay from answers.jsonl (replay" in said
    assert "1 recording(s)" in said
    replayed, texts = _ask(shell, "demo:rec", "Name a prime.")
    assert replayed.text == live.text
    assert replayed.usage == live.usage
    assert replayed.replayed_from == "answers.jsonl"
    assert replayed.cache_hit is True
    assert replayed.cost_usd == 0
    assert replayed.original_cost_usd == live.cost_usd
    footer = texts[-1]
    assert "replayed from answers.jsonl" in footer
    assert footer.startswith("demo:rec · demo, simulated · replayed from answers.jsonl · ")


def test_a_replayed_call_is_a_span_with_cache_hit(shell: Shell) -> None:
    _say(shell, "record spans.jsonl")
    _ask(shell, "demo:span", "One word.")
    _say(shell, "replay spans.jsonl")
    _ask(shell, "demo:span", "One word.")
    current = observability.current()
    assert current is not None
    frame = current.spans_df()
    column = "attributes.llmgine.cache.hit"
    assert column in frame.columns
    hits = frame[column].dropna().tolist()
    assert hits == [False, True]  # recorded live, then replayed


def test_a_replay_miss_fails_the_cell_with_the_nearest_request_diff(shell: Shell) -> None:
    _say(shell, "record miss.jsonl")
    _ask(shell, "demo:miss", "Say hi")
    _say(shell, "replay miss.jsonl")
    with capture_output(), pytest.raises(CellFailedError) as raised:
        shell.cell("demo:miss", "Say hello")
    message = str(raised.value)
    assert isinstance(raised.value.__cause__, RecordingMissError)
    assert "RecordingMissError (demo:miss): no recording of this demo:miss request" in message
    assert 'messages[0].parts[0].text: recorded "Say hi", this request "Say hello"' in message
    assert "%llmgine record miss.jsonl" in message
    assert len(Path("miss.jsonl").read_text("utf-8").splitlines()) == 1  # nothing recorded


def test_a_long_miss_message_is_not_cut_before_its_differences(shell: Shell) -> None:
    _say(shell, "record long.jsonl")
    _ask(shell, "demo:long", "x" * 700)
    _say(shell, "replay long.jsonl")
    with capture_output(), pytest.raises(CellFailedError) as raised:
        shell.cell("demo:long --temperature 0.5", "x" * 700)
    assert "temperature: recorded (unset), this request 0.5" in str(raised.value)


def test_your_own_model_replays_too(shell: Shell) -> None:
    scripted(shell, "mine", "Recorded words.", "Live words.")
    _say(shell, "record own.jsonl")
    first, _ = _ask(shell, "mine", "Hello?")
    assert first.text == "Recorded words."
    _say(shell, "replay own.jsonl")
    again, texts = _ask(shell, "mine", "Hello?")
    assert again.text == "Recorded words."
    assert again.replayed_from == "own.jsonl"
    assert "replayed from own.jsonl" in texts[-1]


def test_record_overwrite_calls_again_and_replaces(shell: Shell) -> None:
    scripted(shell, "twice", "First.", "Second.")
    _say(shell, "record over.jsonl")
    assert _ask(shell, "twice", "Q")[0].text == "First."
    assert _ask(shell, "twice", "Q")[0].text == "First."  # read-write: the recording
    said = _say(shell, "record over.jsonl --overwrite")
    assert "(record: every call made" in said
    second, _ = _ask(shell, "twice", "Q")
    assert second.text == "Second."
    assert second.cache_hit is False
    _say(shell, "replay over.jsonl")
    assert _ask(shell, "twice", "Q")[0].text == "Second."


def test_off_and_reset_stop_the_cassette(shell: Shell, magics: LLMgineMagics) -> None:
    scripted(shell, "live", "One.", "Two.", "Three.")
    _say(shell, "record off.jsonl")
    assert _ask(shell, "live", "Q")[0].text == "One."
    assert "off.jsonl no longer used" in _say(shell, "record off")
    assert _ask(shell, "live", "Q")[0].text == "Two."  # called again: no cassette
    _say(shell, "replay off.jsonl")
    with capture_output():
        shell.line("reset")
    assert magics.workbench.recordings.key() is None
    assert "no cassette, cache off" in _say(shell, "replay")
    assert "no cassette was set" in _say(shell, "replay off")


@pytest.mark.parametrize(
    ("line", "says"),
    [
        ("record answers.txt", "'answers.txt' is not a cassette"),
        ("replay cache.sqlite3", "%llmgine cache on"),
        ("replay nowhere.jsonl", "no cassette 'nowhere.jsonl'"),
        ("record a.jsonl b.jsonl", "too many arguments"),
        ("record a.jsonl --fresh", "unknown option '--fresh'"),
        ("record --overwrite", "--overwrite goes with a cassette's path"),
        ("replay a.jsonl b.jsonl", "usage: %llmgine replay"),
        ("cache maybe", "unknown cache command 'maybe'"),
        ("cache on now", "too many arguments"),
    ],
)
def test_bad_arguments_say_what_to_do(shell: Shell, line: str, says: str) -> None:
    with pytest.raises(MagicUsageError) as raised:
        shell.line(line)
    assert says in str(raised.value)


def test_replaying_an_empty_or_broken_cassette_is_refused(shell: Shell) -> None:
    Path("empty.jsonl").write_text("", "utf-8")
    with pytest.raises(MagicUsageError, match="holds no recordings"):
        shell.line("replay empty.jsonl")
    Path("broken.jsonl").write_text("not json\n", "utf-8")
    with pytest.raises(MagicUsageError, match="line 1, is not a recording"):
        shell.line("replay broken.jsonl")


def test_cache_on_stats_clear(shell: Shell, tmp_path: Path) -> None:
    assert "the response cache is on" in _say(shell, "cache on")
    first, _ = _ask(shell, "demo:cached", "Cache me.")
    assert first.cache_hit is False
    second, texts = _ask(shell, "demo:cached", "Cache me.")
    assert second.cache_hit is True
    assert second.text == first.text
    assert "replayed from cache.sqlite3" in texts[-1]
    assert (tmp_path / "cache" / "llmgine" / "cache.sqlite3").is_file()
    with capture_output():
        stats = shell.line("cache stats")
    assert isinstance(stats, pd.DataFrame)
    row = stats.iloc[0]
    assert row["on"]
    assert row["recordings"] == 1
    assert row["hits"] == 1
    assert row["misses"] == 1
    assert row["size_kb"] > 0
    assert "1 recording(s) removed" in _say(shell, "cache clear")
    assert "the response cache is off" in _say(shell, "cache off")
    third, _ = _ask(shell, "demo:cached", "Cache me.")
    assert third.cache_hit is None  # no store asked


def test_a_cassette_wins_over_the_cache(shell: Shell) -> None:
    _say(shell, "cache on")
    said = _say(shell, "record both.jsonl")
    assert "the cache is on, and used again after %llmgine record off" in said
    _ask(shell, "demo:both", "Q")
    assert Path("both.jsonl").is_file()
    _say(shell, "record off")
    assert "use the response cache" in _say(shell, "cache")


def test_footer_and_provenance_of_a_replayed_answer() -> None:
    response = LLMResponse(
        provider="openai", model="gpt-4o-mini", usage=Usage(input_tokens=9, output_tokens=2)
    )
    assert "replayed" not in footer_text(response)
    assert "replayed_from" not in provenance(response)
    response.replayed_from = "/home/someone/notebooks/answers.jsonl"
    response.cache_hit = True
    response.cost_usd = 0.0
    response.original_cost_usd = 0.012
    footer = footer_text(response)
    assert footer.startswith("openai:gpt-4o-mini · replayed from answers.jsonl · 9 in / ")
    assert "$0.0000 (recorded $0.0120)" in footer
    assert "/home/someone" not in footer
    shown = provenance(response)
    assert shown["replayed_from"] == "answers.jsonl"
    assert shown["original_cost_usd"] == 0.012


def test_help_lists_the_recording_commands() -> None:
    text = help_text()
    for usage in ("record [PATH.jsonl", "replay [PATH.jsonl | off]", "cache [on | off"):
        assert f"%llmgine {usage}" in text


def test_a_comparison_replays_each_model(shell: Shell) -> None:
    _say(shell, "record compare.jsonl")
    with capture_output():
        shell.cell("demo:left,demo:right -o live", "Compare me.")
    _say(shell, "replay compare.jsonl")
    with capture_output():
        shell.cell("demo:left,demo:right -o again", "Compare me.")
    live, again = shell.user_ns["live"], shell.user_ns["again"]
    assert set(again) == set(live) == {"demo:left", "demo:right"}
    for label, response in again.items():
        assert isinstance(response, LLMResponse)
        assert response.replayed_from == "compare.jsonl"
        assert response.text == live[label].text
