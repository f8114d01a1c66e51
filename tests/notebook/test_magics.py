"""The %%llmgine / %llmgine magics, run in a real IPython shell."""

from __future__ import annotations

import asyncio
import logging
import threading
from types import SimpleNamespace
from typing import Any

import pandas as pd
import pytest
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output

import llmgine.notebook
from llmgine import observability
from llmgine.bus import MessageBus
from llmgine.errors import (
    AuthenticationError,
    CellFailedError,
    ContextTooLongError,
    MagicUsageError,
    ModelNotFoundError,
    RateLimitedError,
    ServerUnavailableError,
)
from llmgine.llm import LLMResponse, Model, TextDelta, default_model, get_model
from llmgine.notebook._compare_view import CompareView
from llmgine.notebook.magics import _magics
from llmgine.notebook.magics._bus import BusModel, WorkbenchService
from llmgine.notebook.magics._display import AnswerDisplay, describe_error, uses_text_output
from llmgine.notebook.magics._loop import LoopThread
from llmgine.notebook.magics._magics import LLMgineMagics
from llmgine.notebook.magics._prompt import answer_json
from llmgine.notebook.magics._workbench import Workbench
from llmgine.tools import tool
from tests.notebook.magics_helpers import (
    Shell,
    final,
    gated_model,
    loop_threads,
    scripted,
    updates,
)

pytestmark = pytest.mark.usefixtures("magics")  # the shell's magics, reset after each test


# -- streaming, formats, provenance -------------------------------------------------


def test_the_answer_streams_and_equals_the_stored_response(shell: Shell) -> None:
    shell.user_ns["topic"] = "volcanoes"
    with capture_output() as captured:
        shell.cell("fast -o answer", "Tell me about {topic}")
    response = shell.user_ns["answer"]
    assert isinstance(response, LLMResponse)
    assert "volcanoes" in response.text
    streamed = updates(captured)[:-1]
    assert len(streamed) > 1  # updated in place as the answer arrived
    texts = [u.data["text/plain"] for u in streamed]
    assert all(response.text.startswith(t) for t in texts)
    assert texts[-1] == response.text  # everything streamed, nothing lost
    assert final(captured).data["text/markdown"] == response.text


def test_output_carries_provenance_and_the_demo_label(shell: Shell) -> None:
    with capture_output() as captured:
        shell.cell("-o answer", "Explain tides")
    response = shell.user_ns["answer"]
    meta = final(captured).metadata["llmgine"]
    assert meta["provider"] == "demo"
    assert meta["model"] == "fast"
    assert meta["demo"] is True
    assert meta["cost_usd"] == 0.0
    assert meta["usage"]["output_tokens"] == response.usage.output_tokens
    footer = captured.outputs[-1]
    assert "demo, simulated" in footer.data["text/plain"]
    assert footer.metadata["llmgine"]["response_id"] == response.response_id


@pytest.mark.parametrize(
    ("fmt", "answer", "mime", "shown"),
    [
        ("text", "plain *text*", "text/plain", "plain *text*"),
        ("html", "<b>bold</b>", "text/html", "<b>bold</b>"),
        ("markdown", "# Title", "text/markdown", "# Title"),
        (
            "code",
            "Here:\n```python\nprint('hi')\n```\n",
            "text/markdown",
            "```python\nprint('hi')\n```",
        ),
        ("json", '```json\n{"a": [1, 2]}\n```', "application/json", {"a": [1, 2]}),
    ],
)
def test_formats(shell: Shell, fmt: str, answer: str, mime: str, shown: Any) -> None:
    scripted(shell, "fmt", answer)
    with capture_output() as captured:
        shell.cell(f"fmt -f {fmt}", "Answer")
    data = final(captured).data
    assert data[mime] == shown
    if fmt == "text":
        assert set(data) == {"text/plain"}
    if fmt == "code":  # offered as the next cell
        assert shell.ip.rl_next_input == "print('hi')"
    else:
        assert shell.ip.rl_next_input is None


def test_an_answer_that_is_not_json_fails_the_cell(shell: Shell) -> None:
    scripted(shell, "notjson", "Sure! {oops")
    with capture_output() as captured, pytest.raises(CellFailedError, match="not valid JSON"):
        shell.cell("notjson -f json -o got", "Answer")
    assert final(captured).data == {"text/plain": "Sure! {oops"}
    assert shell.user_ns["got"].text == "Sure! {oops"  # stored before failing


# -- what reaches the request ----------------------------------------------------------


def test_system_temperature_and_max_tokens_reach_the_request(shell: Shell) -> None:
    model = scripted(shell, "params", "ok")
    with capture_output():
        shell.cell('params --system "Be brief." --temperature 0.2 --max-tokens 50', "Hi")
    request = model.adapter.requests[0]  # type: ignore[attr-defined]
    assert request.system_text == "Be brief."
    assert request.temperature == 0.2
    assert request.max_tokens == 50
    assert request.stream is True  # every call streams through the bus


def test_tools_run_in_the_tool_loop(shell: Shell) -> None:
    calls: list[str] = []

    def get_weather(city: str) -> str:
        """The weather in a city."""
        calls.append(city)
        return f"sunny in {city}"

    shell.user_ns["get_weather"] = get_weather
    with capture_output() as captured:
        shell.cell("--tools get_weather -o answer", "Use get_weather for Paris")
    assert calls == ["Paris"]
    assert "get_weather returned sunny in Paris" in shell.user_ns["answer"].text
    assert final(captured).metadata["llmgine"]["rounds"] == 2
    previews = [u.data.get("text/markdown", "") for u in updates(captured)]
    assert any("calling get_weather" in p for p in previews)


def test_a_tool_that_is_not_in_the_namespace_is_a_usage_error(shell: Shell) -> None:
    with pytest.raises(MagicUsageError, match="define a function"):
        shell.cell("--tools nowhere", "Hi")


def test_a_session_continues_the_conversation(shell: Shell) -> None:
    model = scripted(shell, "chat", "Hello Ada.", "Your name is Ada.")
    with capture_output():
        shell.cell('chat --session s --system "Be kind."', "I am Ada.")
        shell.cell("chat --session s -o answer", "What is my name?")
    second = model.adapter.requests[1]  # type: ignore[attr-defined]
    assert [(m.role, m.text) for m in second.messages] == [
        ("system", "Be kind."),
        ("user", "I am Ada."),
        ("assistant", "Hello Ada."),
        ("user", "What is my name?"),
    ]
    sessions = shell.line("sessions")
    assert sessions[["session", "turns", "model", "system"]].to_dict("records") == [
        {"session": "s", "turns": 2, "model": "test:chat", "system": "Be kind."}
    ]


# -- errors ------------------------------------------------------------------------


def test_an_unknown_provider_fails_the_cell_with_a_short_message(shell: Shell) -> None:
    with capture_output() as captured:
        result = shell.run("%%llmgine nope:model\nHi")
    assert isinstance(result.error_in_exec, CellFailedError)
    assert "UnknownProviderError" in captured.stdout
    assert "%llmgine models" in captured.stdout
    assert "Traceback" not in captured.stdout
    assert len(captured.stdout.strip().splitlines()) <= 3


def test_a_missing_key_says_which_variable_to_set(
    shell: Shell, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(CellFailedError, match="OPENAI_API_KEY") as caught:
        shell.cell("openai:gpt-4o-mini", "Hi")
    assert type(caught.value.error).__name__ == "MissingCredentialsError"
    assert caught.value._render_traceback_()[0].startswith("MissingCredentialsError")


def test_a_rate_limit_says_how_long_to_wait(shell: Shell) -> None:
    scripted(shell, "limited", RateLimitedError("slow down", retry_after=3))
    with capture_output() as captured, pytest.raises(CellFailedError, match="wait 3 s"):
        shell.cell("limited", "Hi")
    assert "no answer" in final(captured).data["text/plain"]


def test_error_messages_never_show_a_key(shell: Shell) -> None:
    key = "sk-abcdefghijklmnopqrstuvwxyz123456"
    scripted(shell, "leaky", AuthenticationError(f"invalid api key {key}", provider="test"))
    with capture_output() as captured:
        result = shell.run("%%llmgine leaky\nHi")
    assert isinstance(result.error_in_exec, CellFailedError)
    assert key not in captured.stdout
    assert "[REDACTED]" in captured.stdout
    assert "Check the API key" in captured.stdout


def test_bad_arguments_and_empty_cells_are_usage_errors(shell: Shell) -> None:
    with pytest.raises(MagicUsageError, match="%%llmgine\\? lists"):
        shell.cell("--no-such-option", "Hi")
    with pytest.raises(MagicUsageError, match="the cell is empty"):
        shell.cell("", "  \n")
    with pytest.raises(CellFailedError, match="neither a model spec"):
        shell.cell("undefined_name", "Hi")


# -- the event-loop problem ---------------------------------------------------------


async def test_a_cell_runs_while_an_event_loop_runs_in_this_thread(
    shell: Shell,
) -> None:
    asyncio.get_running_loop()  # as in a Jupyter kernel, where asyncio.run() would fail
    with capture_output():
        shell.cell("-o answer", "Hello")
    assert shell.user_ns["answer"].text


def test_displays_are_updated_on_the_cells_thread_only(
    shell: Shell, monkeypatch: pytest.MonkeyPatch
) -> None:
    threads: set[threading.Thread] = set()
    refresh = AnswerDisplay.refresh
    apply = CompareView.apply_update

    def record_refresh(self: AnswerDisplay) -> None:
        threads.add(threading.current_thread())
        refresh(self)

    def record_apply(self: CompareView, update: Any) -> None:
        threads.add(threading.current_thread())
        apply(self, update)

    monkeypatch.setattr(AnswerDisplay, "refresh", record_refresh)
    monkeypatch.setattr(CompareView, "apply_update", record_apply)
    with capture_output():
        shell.cell("", "Hello")
        shell.cell("fast,fast2", "Hello")
    assert threads == {threading.current_thread()}


def test_in_a_terminal_the_answer_is_printed_as_it_arrives(
    shell: Shell, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_magics, "uses_text_output", lambda shell: True)

    @tool
    def get_weather(city: str) -> str:
        """The weather in a city."""
        return f"sunny in {city}"

    shell.user_ns["get_weather"] = get_weather
    scripted(shell, "down", RateLimitedError("slow down"))
    with capture_output() as captured:
        shell.cell("--tools get_weather -o answer", "Use get_weather for Oslo")
        shell.cell("fast,fast2", "Compare")
        failed = shell.run("%%llmgine down\nHi")
    assert captured.outputs == []  # no rich displays
    assert "[calling get_weather]" in captured.stdout
    assert shell.user_ns["answer"].text in captured.stdout
    assert "-- demo:fast · demo, simulated" in captured.stdout
    assert "CompareView: 2 models, done in" in captured.stdout
    assert isinstance(failed.error_in_exec, CellFailedError)


def test_text_output_is_for_terminals_and_shell_less_runs() -> None:
    class TerminalInteractiveShell:
        pass

    assert uses_text_output(None)
    assert uses_text_output(TerminalInteractiveShell())
    assert not uses_text_output(InteractiveShell.instance())


# -- line commands -------------------------------------------------------------------


def test_models_lists_providers_keys_and_the_default(
    shell: Shell, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    frame = shell.line("models").set_index("provider")
    assert frame.loc["openai", "has_key"] == False  # noqa: E712 - a numpy bool
    assert frame.loc["openai", "key_variables"] == "OPENAI_API_KEY"
    assert frame.loc["demo", "offline"] == True  # noqa: E712
    assert frame.loc["demo", "default"] == True  # noqa: E712
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-0123456789abcdef")
    assert shell.line("models").set_index("provider").loc["openai", "has_key"]


def test_use_sets_the_default_model(shell: Shell, magics: LLMgineMagics) -> None:
    with capture_output() as captured:
        shell.user_ns["spec"] = "demo:by-name"
        shell.line("use spec")  # a spec held in a variable
        assert magics.workbench.default_label() == "demo:by-name"
        shell.line("use fast2")
        shell.cell("-o answer", "Hi")
        shell.line("use demo:named")
        shell.line("use")
    assert shell.user_ns["answer"].model == "other"
    assert "cells use demo:named (demo, simulated)" in captured.stdout.splitlines()[-1]
    with pytest.raises(CellFailedError, match="UnknownProviderError"):
        shell.line("use nope:x")
    with pytest.raises(MagicUsageError, match="usage: %llmgine use MODEL"):
        shell.line("use a b")
    with capture_output():
        shell.line("reset")
    assert magics.workbench.default_label() == default_model()  # get_model()'s default


def test_spans_and_events_are_dataframes_of_the_bus_calls(shell: Shell) -> None:
    with capture_output():
        shell.cell("--session traced", "Hi")
        shell.cell("", "Another cell")
    spans = shell.line("spans traced")
    assert isinstance(spans, pd.DataFrame)
    assert len(spans) > 0
    assert spans["session_id"].nunique() == 1
    events = shell.line("events-df")
    kinds = set(events["type"].str.rsplit(".", n=1).str[-1])
    assert {"LLMCallStarted", "LLMStreamDelta", "LLMCallCompleted"} <= kinds
    assert len(shell.line("spans")) > len(spans)


def test_reset_forgets_sessions_and_recorded_data(shell: Shell, magics: LLMgineMagics) -> None:
    with capture_output():
        shell.cell("--session gone", "Hi")
        shell.line("reset")
    assert magics.workbench.sessions == {}
    assert shell.line("sessions").empty
    assert shell.line("spans").empty


def test_events_and_trace_open_the_widgets(
    shell: Shell, magics: LLMgineMagics, monkeypatch: pytest.MonkeyPatch
) -> None:
    made: list[tuple[str, Any]] = []

    class FakeEventStream:
        def __init__(self, bus: MessageBus) -> None:
            made.append(("events", bus))

    class FakeTraceView:
        def __init__(self, session: str | None = None, *, bus: MessageBus) -> None:
            assert bus is magics.workbench.bus
            made.append(("trace", session))

    monkeypatch.setattr(llmgine.notebook, "EventStream", FakeEventStream, raising=False)
    monkeypatch.setattr(llmgine.notebook, "TraceView", FakeTraceView, raising=False)
    with capture_output():
        shell.cell("--session named", "Hi")
        shell.cell("", "Last cell")
    assert isinstance(shell.line("events"), FakeEventStream)
    shell.line("trace")
    shell.line("trace named")
    workbench = magics.workbench
    assert made == [
        ("events", workbench.bus),
        ("trace", workbench.last_session_id),
        ("trace", workbench.sessions["named"].session_id),
    ]


def test_events_and_trace_are_the_live_widgets(shell: Shell) -> None:
    from llmgine.notebook import EventStream, TraceView

    with capture_output():
        shell.cell("", "Hi")
    events, trace = shell.line("events"), shell.line("trace")
    try:
        assert isinstance(events, EventStream)
        assert isinstance(trace, TraceView)
    finally:
        events.close()
        trace.close()


def test_help_and_unknown_commands(shell: Shell) -> None:
    with capture_output() as captured:
        shell.line("help")
        shell.line("")
    assert captured.stdout.count("%llmgine events-df [SESSION]") == 2
    with pytest.raises(MagicUsageError, match="unknown command 'frobnicate'"):
        shell.line("frobnicate")
    with pytest.raises(MagicUsageError, match="check its quotes"):
        shell.line('compare "unclosed')
    doc = LLMgineMagics.llmgine.__doc__ or ""
    assert "--temperature" in doc  # what %%llmgine? shows
    assert "--session NAME" in doc


def test_observability_is_on_for_the_magics_bus(magics: LLMgineMagics) -> None:
    current = observability.current()
    assert current is not None
    assert magics.workbench.bus in current.buses
    # No bus warning reaches the cell through logging's last resort (see Workbench.start).
    assert any(isinstance(h, logging.NullHandler) for h in logging.getLogger("llmgine").handlers)


def test_observability_switched_on_by_someone_else_stays_on() -> None:
    current = observability.current()  # on, but not owned by this second workbench
    assert current is not None
    workbench = Workbench()
    workbench.start()
    assert workbench.bus in current.buses
    assert repr(workbench) == f"<Workbench default={default_model()!r} sessions=0>"
    with pytest.raises(ValueError, match="cannot be negative"):
        workbench.update_interval = -1
    workbench.close()
    assert observability.current() is current
    assert workbench.bus not in current.buses
    assert not workbench.loop.running


def test_an_interrupt_stops_the_cell_and_keeps_no_turn(
    shell: Shell, magics: LLMgineMagics, monkeypatch: pytest.MonkeyPatch
) -> None:
    def interrupted(self: AnswerDisplay, update: Any) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(AnswerDisplay, "add", interrupted)
    shell.user_ns["waiting"] = gated_model(asyncio.Event())  # answers "slow ", then waits
    with capture_output() as captured, pytest.raises(KeyboardInterrupt):
        shell.cell("waiting --session stopped", "Hello")
    assert "no answer" in final(captured).data["text/plain"]
    assert magics.workbench.sessions["stopped"].turns == 0


@pytest.mark.parametrize(
    ("error", "hint"),
    [
        (AuthenticationError("bad key", provider="openai"), "(OPENAI_API_KEY)"),
        (ModelNotFoundError("no such model", provider="openai", model="x"), "model's name"),
        (ContextTooLongError("too long"), "Shorten the prompt"),
        (ServerUnavailableError("overloaded"), "in a moment"),
        (RateLimitedError("slow down"), "wait a moment"),
        (ValueError("plain"), None),
    ],
)
def test_error_descriptions_say_what_to_do_next(error: Exception, hint: str | None) -> None:
    text = describe_error(error)
    assert text.startswith(type(error).__name__)
    if hint is None:
        assert text == "ValueError: plain"
    else:
        assert hint in text


def test_loading_again_keeps_the_magics_and_reloading_replaces_them(
    shell: Shell, magics: LLMgineMagics
) -> None:
    _magics.load_ipython_extension(shell.ip)
    assert shell.ip.magics_manager.registry["LLMgineMagics"] is magics
    old_thread = magics.workbench.loop.thread
    assert old_thread is not None
    shell.magic("reload_ext", "llmgine")
    assert not old_thread.is_alive()
    assert shell.ip.magics_manager.registry["LLMgineMagics"] is not magics
    assert len(loop_threads()) == 1
    elsewhere = SimpleNamespace(magics_manager=SimpleNamespace(registry={}))
    _magics.unload_ipython_extension(elsewhere)  # not loaded there: nothing to do


# -- the pieces ----------------------------------------------------------------------


async def test_a_bus_model_streams_through_a_generate_command(bus: MessageBus) -> None:
    service = WorkbenchService(bus)
    service.install()
    target = get_model("test:target", responses=["streamed"], retry=False)
    async with bus.session("s") as session:
        model = Model(BusModel(session, service.register(target), target))
        async with model.stream("Hi") as stream:
            items = [item async for item in stream]
    assert stream.response is not None
    assert stream.response.text == "streamed"
    assert any(isinstance(i, TextDelta) for i in items)
    assert model.adapter is target.adapter


def test_an_interrupt_cancels_the_call_on_the_loop() -> None:
    loop = LoopThread("llmgine-notebook-test")
    loop.start()
    cancelled = threading.Event()

    async def call(emit: Any) -> None:
        emit("first")
        try:
            await asyncio.Event().wait()
        finally:
            cancelled.set()

    def interrupt(update: str) -> None:
        raise KeyboardInterrupt

    try:
        with pytest.raises(KeyboardInterrupt):
            loop.stream(call, interrupt, lambda: None)
        assert cancelled.wait(5)
    finally:
        loop.stop()
    assert not loop.running


def test_a_stopped_loop_refuses_work_without_leaving_a_coroutine_behind() -> None:
    loop = LoopThread("llmgine-notebook-test")

    async def nothing() -> None:
        return None

    with pytest.raises(RuntimeError, match="not running"):
        loop.run(nothing())  # closed, so no "never awaited" warning fails the test


def test_waiting_on_the_loop_from_its_own_thread_is_refused() -> None:
    loop = LoopThread("llmgine-notebook-test")
    loop.start()

    async def inner() -> None:
        return None

    async def outer() -> None:
        loop.run(inner())

    try:
        with pytest.raises(RuntimeError, match="deadlock"):
            loop.run(outer())
    finally:
        loop.stop()


def test_refreshes_are_throttled_but_the_last_state_is_shown() -> None:
    loop = LoopThread("llmgine-notebook-test")
    loop.start()
    seen: list[int] = []
    refreshed: list[list[int]] = []

    async def burst(emit: Any) -> str:
        for n in range(20):
            emit(n)
        return "done"

    try:
        result = loop.stream(burst, seen.append, lambda: refreshed.append(list(seen)), interval=60)
    finally:
        loop.stop()
    assert result == "done"
    assert seen == list(range(20))
    assert refreshed[-1] == seen
    assert len(refreshed) <= 2  # one right away, one at the end: not one per update


def test_answer_json_reads_fenced_and_bare_json() -> None:
    assert answer_json('```json\n{"a": 1}\n```') == {"a": 1}
    assert answer_json("[1, 2]") == [1, 2]
    with pytest.raises(ValueError, match="line 1, column"):
        answer_json("{nope")
