"""Fixtures of the notebook tests: the IPython shell with ``%load_ext llmgine`` (``shell``,
once per module) and its magics, reset after each test (``magics``)."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output

from llmgine import observability
from llmgine.llm import get_model
from llmgine.notebook.magics._magics import LLMgineMagics
from tests.notebook.magics_helpers import Shell, loop_threads, make_shell


@pytest.fixture(scope="module")
def shell() -> Iterator[Shell]:
    was_observing = observability.current() is not None
    quiet_before = list(logging.getLogger("llmgine").handlers)
    ip, made = make_shell()
    ip.run_line_magic("load_ext", "llmgine")
    yield Shell(ip)
    ip.run_line_magic("unload_ext", "llmgine")
    if made:
        InteractiveShell.clear_instance()
    assert loop_threads() == []  # the loop thread is stopped and joined
    assert (observability.current() is not None) == was_observing
    assert logging.getLogger("llmgine").handlers == quiet_before


@pytest.fixture
def magics(shell: Shell, monkeypatch: pytest.MonkeyPatch) -> Iterator[LLMgineMagics]:
    """The magics, with two offline models in the namespace (``fast``, ``fast2``), the
    default set to ``fast``, and everything reset afterwards. Autouse it per module."""
    monkeypatch.delenv("LLMGINE_MODEL", raising=False)
    found = shell.ip.magics_manager.registry["LLMgineMagics"]
    assert isinstance(found, LLMgineMagics)
    found.workbench.update_interval = 0  # a display update per delta, so streaming shows
    shell.user_ns["fast"] = get_model("demo:fast", latency=0)
    shell.user_ns["fast2"] = get_model("demo:other", latency=0)
    with capture_output():
        shell.line("use fast")
    yield found
    with capture_output():
        shell.line("reset")
    shell.ip.rl_next_input = None
