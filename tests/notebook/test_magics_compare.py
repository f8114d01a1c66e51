"""Comparing models with the magics: side by side, a failed model in its own column, and
``%llmgine trace`` after a comparison."""

from __future__ import annotations

from typing import Any

import pytest
from IPython.utils.capture import capture_output

import llmgine.notebook
from llmgine.bus import MessageBus
from llmgine.errors import (
    AuthenticationError,
    CellFailedError,
    LLMConfigurationError,
    LLMTimeoutError,
    MagicUsageError,
    MalformedResponseError,
    MissingCredentialsError,
    RateLimitedError,
    UnknownProviderError,
)
from llmgine.llm import LLMResponse, Model, ProviderModel
from llmgine.notebook.magics import _magics
from llmgine.notebook.magics._magics import LLMgineMagics
from tests.notebook.magics_helpers import BreaksMidwayProvider, Shell, final, output_data, scripted

pytestmark = pytest.mark.usefixtures("magics")  # the shell's magics, reset after each test


def test_several_models_open_the_compare_view(shell: Shell) -> None:
    with capture_output() as captured:
        shell.cell('fast,fast2 -o both --system "Be brief."', "Compare tides")
    both = shell.user_ns["both"]
    assert set(both) == {"demo:fast", "demo:other"}
    assert all(isinstance(r, LLMResponse) for r in both.values())
    assert list(output_data(captured, "application/vnd.jupyter.widget-view+json"))
    last = final(captured)  # the saved output's text shows the final answers
    assert "done in" in last.data["text/plain"]
    assert both["demo:fast"].text.splitlines()[0] in last.data["text/html"]
    assert set(last.metadata["llmgine"]["compare"]) == {"demo:fast", "demo:other"}


def test_models_may_be_separated_by_spaces_before_and_after_options(shell: Shell) -> None:
    with capture_output():
        shell.cell("fast -o both fast2", "Compare tides")
    assert set(shell.user_ns["both"]) == {"demo:fast", "demo:other"}


def test_a_model_without_a_key_fails_its_column_and_the_others_answer(
    shell: Shell, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with capture_output() as captured:
        result = shell.run("%%llmgine openai:gpt-4o-mini fast -o both\nHi")
    assert result.error_in_exec is None  # the cell succeeds: one model answered
    both = shell.user_ns["both"]
    assert isinstance(both["openai:gpt-4o-mini"], MissingCredentialsError)
    assert isinstance(both["demo:fast"], LLMResponse)
    saved = final(captured)
    text = saved.data["text/plain"]
    assert "== openai:gpt-4o-mini (failed (MissingCredentialsError))" in text
    assert "set OPENAI_API_KEY" in text  # what to do next, in the column
    assert "%llmgine models lists the providers" in text
    assert both["demo:fast"].text.splitlines()[0] in text
    assert "2 models, done in" in text
    assert "1 failed" in text
    assert "OPENAI_API_KEY" in saved.data["text/html"]
    error = saved.metadata["llmgine"]["compare"]["openai:gpt-4o-mini"]
    assert error["error"] == "MissingCredentialsError"
    assert "OPENAI_API_KEY" in error["message"]


def test_every_way_a_model_fails_is_its_own_columns_error(shell: Shell) -> None:
    scripted(shell, "limited", RateLimitedError("slow down", retry_after=3))
    scripted(shell, "late", LLMTimeoutError("no answer within 30 s"))
    scripted(shell, "garbled", MalformedResponseError("not JSON: <html>"))
    scripted(shell, "raw", KeyError("choices"))  # what a provider left untranslated raises
    shell.user_ns["midway"] = Model(ProviderModel(BreaksMidwayProvider(), "m"))
    line = "nope:model,no_such_model,limited,late,garbled,raw,midway,fast -o all"
    with capture_output() as captured:
        shell.cell(line, "Hi")
    results = shell.user_ns["all"]
    expected = {
        "nope:model": UnknownProviderError,
        "no_such_model": LLMConfigurationError,
        "test:limited": RateLimitedError,
        "test:late": LLMTimeoutError,
        "test:garbled": MalformedResponseError,
        "test:raw": KeyError,
        "midway:m": Exception,
    }
    for label, kind in expected.items():
        assert isinstance(results[label], kind), label
    assert isinstance(results["demo:fast"], LLMResponse)
    text = final(captured).data["text/plain"]
    assert "8 models, done in" in text
    assert "7 failed" in text
    assert "wait 3 s" in text
    assert "KeyError: 'choices'" in text
    assert "(streamed before the error) half an" in text  # nothing streamed is lost
    markdown = final(captured).data["text/markdown"]
    assert "| test:late | failed (LLMTimeoutError) |" in markdown  # the table's row


def test_a_failed_columns_error_is_redacted(shell: Shell) -> None:
    key = "sk-abcdefghijklmnopqrstuvwxyz123456"
    scripted(shell, "leaky", AuthenticationError(f"invalid api key {key}", provider="test"))
    with capture_output() as captured:
        shell.cell("leaky,fast", "Hi")
    saved = final(captured)
    for shown in (saved.data["text/plain"], saved.data["text/html"], str(saved.metadata)):
        assert key not in shown
        assert "[REDACTED]" in shown
    assert "Check the API key" in saved.data["text/plain"]


def test_a_long_error_is_cut_short_in_its_column(shell: Shell) -> None:
    scripted(shell, "verbose", ValueError("validation failed: " + "field x is wrong; " * 400))
    with capture_output() as captured:
        shell.cell("verbose,fast", "Hi")
    text = final(captured).data["text/plain"]
    shown = text.split("== test:verbose (failed (ValueError))\n", 1)[1].split("\n== ", 1)[0]
    assert shown.startswith("ValueError: validation failed: field x is wrong;")
    assert shown.strip().endswith("…")
    assert len(shown) < 700


def test_when_every_model_fails_the_cell_fails_and_the_columns_say_why(
    shell: Shell, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    scripted(shell, "broken", RateLimitedError("slow down"))
    with capture_output() as captured:
        failed = shell.run("%%llmgine openai:gpt-4o-mini,broken -o both\nHi")
    assert isinstance(failed.error_in_exec, CellFailedError)
    message = str(failed.error_in_exec)
    assert message.startswith("all 2 models failed (their columns say why):")
    assert "openai:gpt-4o-mini: MissingCredentialsError" in message
    assert "test:broken: RateLimitedError" in message
    assert "Traceback" not in captured.stdout
    assert "2 failed" in final(captured).data["text/plain"]  # the view is shown all the same
    assert set(shell.user_ns["both"]) == {"openai:gpt-4o-mini", "test:broken"}


def test_in_a_terminal_a_failed_column_is_printed_and_the_cell_succeeds(
    shell: Shell, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_magics, "uses_text_output", lambda shell: True)
    with capture_output() as captured:
        result = shell.run("%%llmgine nope:model,fast\nHi")
    assert result.error_in_exec is None
    assert "== nope:model (failed (UnknownProviderError))" in captured.stdout
    assert "== demo:fast (done," in captured.stdout


def test_compare_refuses_single_model_options(shell: Shell) -> None:
    with pytest.raises(MagicUsageError, match="--session, -f"):
        shell.cell("fast,fast2 --session s -f json", "Hi")


def test_the_compare_command(shell: Shell) -> None:
    with capture_output() as captured:
        shell.line('compare "Name three primes." fast fast2 nope:model')
    text = final(captured).data["text/plain"]
    assert "== demo:other (done," in text
    assert "== nope:model (failed (UnknownProviderError))" in text
    with pytest.raises(MagicUsageError, match="at least two models"):
        shell.line('compare "Hi" fast')


# -- %llmgine trace after a comparison ------------------------------------------------


@pytest.fixture
def traced(monkeypatch: pytest.MonkeyPatch) -> list[str | None]:
    """The sessions ``%llmgine trace`` opened a (fake) TraceView on."""
    sessions: list[str | None] = []

    class FakeTraceView:
        def __init__(self, session: str | None = None, *, bus: MessageBus) -> None:
            sessions.append(session)

    monkeypatch.setattr(llmgine.notebook, "TraceView", FakeTraceView, raising=False)
    return sessions


def test_trace_after_a_comparison_shows_the_comparison(
    shell: Shell, magics: LLMgineMagics, traced: list[str | None]
) -> None:
    with capture_output() as captured:
        shell.cell("", "An older cell")
        shell.cell("fast,fast2", "Compare tides")
    shell.line("trace")
    compared = final(captured).metadata["llmgine"]["session_id"]
    assert traced == [compared]
    spans = shell.line(f"spans {compared}")  # the comparison's calls are in that session
    llm_calls = spans[spans["name"].str.startswith("chat ")]
    assert sorted(llm_calls["attributes.gen_ai.request.model"]) == ["fast", "other"]
    with capture_output():
        shell.line('compare "Hi" fast2 fast')
        shell.line("trace")
    assert traced[-1] == magics.workbench.last_session_id != compared


def test_a_comparison_that_called_no_model_leaves_the_last_trace(
    shell: Shell, magics: LLMgineMagics, traced: list[str | None]
) -> None:
    with capture_output():
        shell.cell("", "The last cell that called a model")
        last = magics.workbench.last_session_id
        shell.run("%%llmgine nope:a,nope:b\nHi")
    shell.line("trace")
    assert traced == [last]


def test_an_unknown_session_is_refused_with_the_sessions_there_are(
    shell: Shell, magics: LLMgineMagics, traced: list[str | None]
) -> None:
    with pytest.raises(MagicUsageError, match="none is recorded yet"):
        shell.line("trace nosuchsession")
    with capture_output():
        shell.cell("--session named", "Hi")
        for n in range(9):
            shell.cell("", f"Cell {n}")
        shell.cell("fast,fast2", "The most recent")
    with pytest.raises(MagicUsageError) as refused:
        shell.line("trace nosuchsession")
    lines = str(refused.value).splitlines()
    assert lines[0] == "no session 'nosuchsession'. The sessions recorded, most recent first:"
    listed = [line.split()[0] for line in lines[1:9]]
    assert listed[0] == magics.workbench.last_session_id  # the comparison, most recent
    assert "compare, started" in lines[1]
    assert "... and 3 more" in lines[9]  # 11 sessions: 8 listed
    assert "named" not in listed  # the oldest is not listed ...
    for command in ("spans", "events-df"):  # ... and the same check guards the DataFrames
        with pytest.raises(MagicUsageError, match="no session 'nosuchsession'"):
            shell.line(f"{command} nosuchsession")
    assert traced == []
    shell.line("trace named")
    shell.line(f"trace {listed[3]}")
    assert traced == [magics.workbench.sessions["named"].session_id, listed[3]]


def test_named_sessions_are_listed_by_name(shell: Shell, magics: LLMgineMagics) -> None:
    with capture_output():
        shell.cell("--session trip", "Hi")
    with pytest.raises(MagicUsageError) as refused:
        shell.line("spans trp")
    listing: Any = str(refused.value).splitlines()[1]
    assert listing.split()[:3] == ["trip", "--session", "trip,"]
