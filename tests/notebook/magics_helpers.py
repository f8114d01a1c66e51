"""Helpers for the magics and CompareView tests: a real IPython shell (loaded with the
extension by the ``shell`` and ``magics`` fixtures of ``conftest.py``), captured outputs,
a provider whose answer waits for a gate and one that breaks mid-answer."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any, ClassVar

from IPython.core.interactiveshell import ExecutionResult, InteractiveShell
from IPython.utils.capture import CapturedIO, RichOutput
from traitlets.config import Config

from llmgine.errors import LLMConnectionError, LLMError
from llmgine.llm import (
    Finish,
    LLMRequest,
    LLMResponse,
    Model,
    Provider,
    ProviderModel,
    StreamAssembler,
    StreamItem,
    TextDelta,
    Usage,
    UsageUpdate,
    get_model,
)

__all__ = [
    "BreaksMidwayProvider",
    "GatedProvider",
    "Shell",
    "final",
    "gated_model",
    "loop_threads",
    "make_shell",
    "output_data",
    "plain_texts",
    "scripted",
    "updates",
]


def make_shell() -> tuple[InteractiveShell, bool]:
    """The IPython shell (a plain `InteractiveShell`, as a kernel's is one, without the
    terminal's prompt_toolkit), and whether it was made here (then the caller clears it).

    History is off: its saving thread would outlive the tests."""
    if InteractiveShell.initialized():
        return InteractiveShell.instance(), False
    config = Config()
    config.HistoryManager.enabled = False
    return InteractiveShell.instance(config=config), True


class Shell:
    """The shell, with typed calls for what the tests do (IPython's are untyped)."""

    def __init__(self, ip: InteractiveShell) -> None:
        self.ip = ip

    @property
    def user_ns(self) -> dict[str, Any]:
        namespace: dict[str, Any] = self.ip.user_ns
        return namespace

    def cell(self, line: str, body: str) -> Any:
        """``%%llmgine line`` with ``body`` as the cell."""
        return self.ip.run_cell_magic("llmgine", line, body)  # type: ignore[no-untyped-call]

    def line(self, line: str) -> Any:
        """``%llmgine line``."""
        return self.magic("llmgine", line)

    def magic(self, name: str, line: str) -> Any:
        return self.ip.run_line_magic(name, line)

    def run(self, code: str, *, store_history: bool = False) -> ExecutionResult:
        """Run ``code`` as a cell (a magic's error is reported, not raised)."""
        result: ExecutionResult = self.ip.run_cell(  # type: ignore[no-untyped-call]
            code, store_history=store_history
        )
        return result


def loop_threads() -> list[threading.Thread]:
    """The workbench's loop threads still alive."""
    return [t for t in threading.enumerate() if t.name.startswith("llmgine-notebook")]


def updates(captured: CapturedIO) -> list[RichOutput]:
    """The display updates (``update=True`` outputs) captured."""
    return [o for o in captured.outputs if o.update]


def plain_texts(captured: CapturedIO) -> list[str]:
    return [str(o.data.get("text/plain", "")) for o in captured.outputs]


class GatedProvider(Provider):
    """Streams "slow " at once, then waits for ``gate`` before the rest of its answer."""

    name = "gated"
    offline: ClassVar[bool] = True

    def __init__(self, gate: asyncio.Event) -> None:
        self.gate = gate
        self.started = asyncio.Event()

    async def _generate(self, request: LLMRequest, model: str) -> LLMResponse:
        assembler = StreamAssembler(self.name, model)
        async for item in self._stream(request, model):
            assembler.add(item)
        return assembler.response()

    async def _stream(self, request: LLMRequest, model: str) -> AsyncIterator[StreamItem]:
        yield TextDelta(text="slow ")
        self.started.set()
        await self.gate.wait()
        yield TextDelta(text="answer")
        yield UsageUpdate(usage=Usage(input_tokens=3, output_tokens=2))
        yield Finish(reason="stop")

    def _translate(self, exc: Exception, model: str) -> LLMError | None:
        return None


def gated_model(gate: asyncio.Event) -> Model:
    return Model(ProviderModel(GatedProvider(gate), "slow"))


def output_data(captured: CapturedIO, mime: str) -> Iterator[Any]:
    for output in captured.outputs:
        if mime in output.data:
            yield output.data[mime]


class BreaksMidwayProvider(Provider):
    """Streams "half an " and then loses the connection."""

    name = "midway"
    offline: ClassVar[bool] = True

    async def _generate(self, request: LLMRequest, model: str) -> LLMResponse:
        raise LLMConnectionError("connection reset", provider=self.name, model=model)

    async def _stream(self, request: LLMRequest, model: str) -> AsyncIterator[StreamItem]:
        yield TextDelta(text="half an ")
        raise LLMConnectionError("connection reset", provider=self.name, model=model)

    def _translate(self, exc: Exception, model: str) -> LLMError | None:
        return None


# -- for the magics' tests ---------------------------------------------------------


def scripted(shell: Shell, name: str, *answers: Any) -> Model:
    """A ``test:NAME`` model answering ``answers`` in turn, as ``NAME`` in the namespace."""
    model = get_model(f"test:{name}", responses=list(answers), retry=False)
    shell.user_ns[name] = model
    return model


def final(captured: CapturedIO) -> RichOutput:
    """The answer display's last state (the footer display follows it)."""
    return updates(captured)[-1]
