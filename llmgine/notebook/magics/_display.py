"""Showing answers in a notebook: streamed into one display, or printed in a terminal.

Everything here runs on the thread that runs the cell (see `_loop`): display handles and
widgets are touched from that thread only. What is shown is built from plain values: an
answer's text, its provenance (provider, model, usage, cost, the demo flag) as display
metadata under ``"llmgine"``, and errors as one short, redacted message with what to do
next.
"""

from __future__ import annotations

import html
import json
import sys
from dataclasses import dataclass
from pathlib import PurePath
from typing import Any, TextIO

from IPython.display import DisplayHandle, display

from llmgine.bus import ErrorInfo
from llmgine.errors import (
    AuthenticationError,
    ContextTooLongError,
    LLMConnectionError,
    LLMError,
    LLMTimeoutError,
    MissingCredentialsError,
    ModelNotFoundError,
    PermissionDeniedError,
    RateLimitedError,
    RecordingMissError,
    ServerUnavailableError,
    UnknownProviderError,
)
from llmgine.llm import LLMResponse, list_providers
from llmgine.notebook.magics._prompt import Format, answer_code

__all__ = [
    "AnswerDisplay",
    "Chunk",
    "Note",
    "answer_bundle",
    "answer_note",
    "describe_error",
    "footer_text",
    "provenance",
    "provider_note",
    "replace",
    "replay_note",
    "replayed_name",
    "show",
    "show_warning",
    "uses_text_output",
]

# Which kind of model answered, beside its name wherever an answer is shown.
DEMO_NOTE = "demo, simulated"  # no model behind it: a labelled simulation
LOCAL_NOTE = "local model, offline"  # a real model on this machine
_CURSOR = " ▍"
_MESSAGE_LIMIT = 600  # an error's message in a cell or a column: the gist, not a page
_MISS_LIMIT = 4000  # a replay miss: its nearest request's differences are the point


@dataclass(frozen=True)
class Chunk:
    """More answer text."""

    text: str


@dataclass(frozen=True)
class Note:
    """A line about the call's progress (a tool being called, what it returned)."""

    text: str


def show(
    obj: Any, *, raw: bool = False, metadata: dict[str, Any] | None = None, update: bool = False
) -> DisplayHandle | None:
    """``IPython.display.display``, typed; with ``update=True`` it returns the handle to
    update the output in place."""
    shown = display(  # type: ignore[no-untyped-call]
        obj, raw=raw, metadata=metadata, display_id=True if update else None
    )
    return shown if isinstance(shown, DisplayHandle) else None


def replace(
    handle: DisplayHandle, obj: Any, *, raw: bool = False, metadata: dict[str, Any] | None = None
) -> None:
    """Replace what ``handle`` shows (`DisplayHandle.update`, typed)."""
    handle.update(obj, raw=raw, metadata=metadata)  # type: ignore[no-untyped-call]


def show_warning(text: str, *, text_mode: bool, out: TextIO | None = None) -> None:
    """A warning in the cell's output (printed in a terminal), not only in a log: the
    user reads the cell, and the call it warns about goes ahead."""
    if text_mode:
        stream = out if out is not None else sys.stdout
        stream.write(text + "\n")
        stream.flush()
        return
    body = html.escape(text)
    page = (
        '<div class="llmgine-warning" style="white-space:pre-wrap;border-left:3px solid '
        f'#d08700;padding:2px 8px">{body}</div>'
    )
    show({"text/plain": text, "text/html": page}, raw=True)


def uses_text_output(shell: Any) -> bool:
    """Whether output goes to stdout as text: no shell, or IPython in a terminal.

    Checked by class name, so the terminal shell (and prompt_toolkit) is never imported
    in a kernel.
    """
    if shell is None:
        return True
    return any(c.__name__ == "TerminalInteractiveShell" for c in type(shell).__mro__)


def provenance(response: LLMResponse, **extra: Any) -> dict[str, Any]:
    """Where an answer came from, JSON-safe: the ``"llmgine"`` display metadata."""
    return {
        "provider": response.provider,
        "model": response.model,
        "demo": response.demo,
        "usage": response.usage.model_dump(),
        "cost_usd": response.cost_usd,
        "latency_ms": response.latency_ms,
        "time_to_first_token_ms": response.time_to_first_token_ms,
        "finish_reason": response.finish_reason,
        "response_id": response.response_id,
        **_replay_provenance(response),
        **extra,
    }


def _replay_provenance(response: LLMResponse) -> dict[str, Any]:
    """Where a replayed answer came from (nothing for a live one)."""
    if response.cache_hit is None and response.replayed_from is None:
        return {}
    return {
        "cache_hit": response.cache_hit,
        "replayed_from": replayed_name(response.replayed_from),
        "original_cost_usd": response.original_cost_usd,
    }


def replayed_name(label: str | None) -> str | None:
    """A recording store's file name (its folder left out: a notebook's output is shared)."""
    return PurePath(label).name if label else None


def replay_note(response: LLMResponse) -> str | None:
    """``replayed from answers.jsonl`` for an answer from a recording, else None."""
    name = replayed_name(response.replayed_from)
    return f"replayed from {name}" if name else None


def provider_note(provider: str) -> str | None:
    """What kind of model ``provider`` serves, when not a hosted one's: the demo's
    simulation, or the local model on this machine."""
    return {"demo": DEMO_NOTE, "local": LOCAL_NOTE}.get(provider)


def answer_note(response: LLMResponse) -> str | None:
    """What kind of model gave ``response`` (`provider_note`; any demo answer is one)."""
    return DEMO_NOTE if response.demo else provider_note(response.provider)


def footer_text(response: LLMResponse, *, rounds: int = 1) -> str:
    """One line under an answer: model, what kind of model, where a replayed answer came
    from, tokens, cost (a replayed answer's, 0, with the recorded call's), time."""
    pieces = [f"{response.provider}:{response.model}"]
    note = answer_note(response)
    if note is not None:
        pieces.append(note)
    replayed = replay_note(response)
    if replayed is not None:
        pieces.append(replayed)
    usage = response.usage
    pieces.append(f"{usage.input_tokens} in / {usage.output_tokens} out tokens")
    if response.cost_usd is not None:
        cost = f"${response.cost_usd:.4f}"
        if replayed is not None and response.original_cost_usd is not None:
            cost += f" (recorded ${response.original_cost_usd:.4f})"
        pieces.append(cost)
    if response.latency_ms is not None:
        pieces.append(f"{response.latency_ms / 1000:.2f} s")
    if rounds > 1:
        pieces.append(f"{rounds} rounds with tools")
    return " · ".join(pieces)


def answer_bundle(text: str, fmt: Format, data: Any = None) -> dict[str, Any]:
    """The mime bundle of a finished answer in ``fmt`` (``data``: the parsed JSON)."""
    if fmt == "markdown":
        return {"text/markdown": text, "text/plain": text}
    if fmt == "code":
        code, language = answer_code(text)
        return {"text/markdown": f"```{language}\n{code}\n```", "text/plain": code}
    if fmt == "json":
        return {
            "application/json": data if isinstance(data, dict | list) else {"value": data},
            "text/plain": json.dumps(data, indent=2, ensure_ascii=False),
        }
    if fmt == "html":
        return {"text/html": text, "text/plain": text}
    return {"text/plain": text}


def _next_step(exc: BaseException) -> str:
    if isinstance(exc, MissingCredentialsError | UnknownProviderError):
        return "%llmgine models lists the providers and which keys are set."
    if isinstance(exc, RateLimitedError):
        wait = f"{exc.retry_after:.0f} s" if exc.retry_after is not None else "a moment"
        return f"Rate limited: wait {wait} and run the cell again, or pick another model."
    if isinstance(exc, AuthenticationError | PermissionDeniedError):
        variables = [
            v for info in list_providers() if info.name == exc.provider for v in info.key_variables
        ]
        where = f" ({' or '.join(variables)})" if variables else ""
        return f"Check the API key{where}; %llmgine models shows which keys are set."
    if isinstance(exc, ModelNotFoundError):
        return "Check the model's name, or pick another with %llmgine use provider:model."
    if isinstance(exc, RecordingMissError):
        name = replayed_name(exc.store) or ""
        how = f"%llmgine record {name}" if name.endswith(".jsonl") else "%llmgine cache on"
        return f"In a notebook, {how} (where the model can be called) records it."
    if isinstance(exc, ContextTooLongError):
        return "Shorten the prompt, or start a new conversation (%llmgine reset)."
    if isinstance(exc, ServerUnavailableError | LLMTimeoutError | LLMConnectionError):
        return "Run the cell again in a moment, or pick another model."
    return ""


def describe_error(exc: BaseException) -> str:
    """``exc`` as a short message for a cell (secrets redacted) with what to do next."""
    message = ErrorInfo.from_exception(exc).message.strip() or "(no message)"
    limit = _MISS_LIMIT if isinstance(exc, RecordingMissError) else _MESSAGE_LIMIT
    if len(message) > limit:
        message = message[: limit - 1] + "…"
    where = ""
    if isinstance(exc, LLMError) and exc.provider and exc.model:
        where = f" ({exc.provider}:{exc.model})"
    text = f"{type(exc).__name__}{where}: {message}"
    hint = _next_step(exc)
    return f"{text}\n{hint}" if hint else text


class AnswerDisplay:
    """Where one answer goes while it streams, and when it is done.

    In a notebook (JupyterLab, Notebook 7, VS Code) it is one display updated in place;
    in a terminal the text is printed as it arrives.
    """

    def __init__(self, label: str, fmt: Format, *, text_mode: bool, out: TextIO | None = None):
        self.label = label
        self.fmt = fmt
        self.text_mode = text_mode
        self.text = ""
        self.notes: list[str] = []
        self._out = out
        self._printed = 0
        self._line_open = False
        self._handle: DisplayHandle | None = None

    @property
    def out(self) -> TextIO:
        return self._out if self._out is not None else sys.stdout

    def start(self) -> None:
        """Show that the call is under way (in a notebook: the display to update)."""
        if not self.text_mode:
            self._handle = show(self._preview(), raw=True, update=True)

    def add(self, update: Chunk | Note) -> None:
        """Take one update (text, or a progress note); shown at the next `refresh`."""
        if isinstance(update, Chunk):
            self.text += update.text
            return
        self.notes.append(update.text)
        if self.text_mode:
            self._print_text()
            self._end_line()
            self.out.write(f"[{update.text}]\n")
            self.out.flush()

    def _print_text(self) -> None:
        new = self.text[self._printed :]
        if new:
            self.out.write(new)
            self.out.flush()
            self._printed = len(self.text)
            self._line_open = not new.endswith("\n")

    def _end_line(self) -> None:
        if self._line_open:
            self.out.write("\n")
            self._line_open = False

    def refresh(self) -> None:
        """Show what arrived since the last refresh."""
        if self.text_mode:
            self._print_text()
        elif self._handle is not None:
            replace(self._handle, self._preview(), raw=True)

    def _preview(self) -> dict[str, Any]:
        notes = "".join(f"> {n}\n>\n" for n in self.notes)
        body = self.text or f"*{self.label} …*"
        if self.fmt == "markdown":
            return {"text/markdown": notes + body + _CURSOR, "text/plain": self.text}
        plain = "".join(f"[{n}]\n" for n in self.notes) + self.text
        return {"text/plain": plain + _CURSOR}

    def finish(self, bundle: dict[str, Any], metadata: dict[str, Any], footer: str) -> None:
        """Show the final answer (replacing the streamed text) and its provenance line."""
        meta = {"llmgine": metadata}
        if self.text_mode:
            self._print_text()
            self._end_line()
            self.out.write(f"-- {footer}\n")
            self.out.flush()
            return
        if self._handle is not None:
            replace(self._handle, bundle, raw=True, metadata=meta)
        else:  # pragma: no cover - display() returns a handle whenever display_id is set
            show(bundle, raw=True, metadata=meta)
        # "$" escaped: notebooks render $...$ in markdown as mathematics.
        markdown = footer.replace("$", "\\$")
        note = {"text/markdown": f"<sub>{markdown}</sub>", "text/plain": footer}
        show(note, raw=True, metadata=meta)

    def fail(self) -> None:
        """The call failed: keep what streamed; the error is raised after this."""
        if self.text_mode:
            self._print_text()
            self._end_line()
            self.out.flush()
        elif self._handle is not None:
            shown = self.text or f"{self.label}: no answer (the error is below)"
            replace(self._handle, {"text/plain": shown}, raw=True)
