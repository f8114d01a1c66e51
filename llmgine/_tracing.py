"""What the LLM layer and the tools trace with: `CallTracer`, and where one is plugged in.

The model wrapper `Traced` and the `ToolManager` are *given* a `CallTracer`; they never
look for observability. This module is light on purpose (no OpenTelemetry, no pandas):
`llmgine.observability` implements `CallTracer` and plugs its tracer in here when it is
enabled, so the LLM layer can be imported, and run, without it.

Where a tracer is plugged in is a `TracerSlot`, a `CallTracer` that forwards to whatever
is plugged into it (and records nothing while empty):

- each bus has one, ``tracer_for(bus)``: `observability.enable(bus)` (or ``obs.observe(bus)``)
  plugs the observability's tracer into it, ``unobserve``/`disable()` unplugs it. What
  works for a bus (an `LLMService`, a `ToolManager` with ``bus=`` or ``session=``, the
  tool loop's own model) traces through its bus's slot, so a bus that is not observed
  records nothing even while another one is.
- the default one, ``tracer_for(None)``: plugged while observability is enabled at all.
  What is made outside any bus (``get_model(...)``, ``ToolManager([...])``) traces
  through it unless given a ``tracer=``.

A slot is held, not looked up per call: a model made before `enable()` is traced once
observability is on, and stops being traced at `disable()`.
"""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from llmgine import _semconv as sc

if TYPE_CHECKING:
    from llmgine.bus import MessageBus

__all__ = [
    "NO_TRACER",
    "CallTracer",
    "LLMCallSpan",
    "ToolCallSpan",
    "TracerSlot",
    "tracer_for",
]


class LLMCallSpan(Protocol):
    """One model call being traced (see `llmgine.observability.LLMCall`)."""

    @property
    def capture(self) -> bool:
        """Whether content (prompts, completions) is recorded: only then build it."""
        ...

    def input(self, messages: Any, *, system: Any = None) -> None: ...

    def first_token(self, ms: float | None = None) -> None: ...

    def response(
        self,
        *,
        model: str | None = None,
        response_id: str | None = None,
        finish_reasons: Sequence[str] = (),
        input_tokens: int | None = None,
        output_tokens: int | None = None,
        cache_read_tokens: int | None = None,
        cache_write_tokens: int | None = None,
        reasoning_tokens: int | None = None,
        cost_usd: float | None = None,
        output: Any = None,
        server_address: str | None = None,
        server_port: int | None = None,
        attributes: Mapping[str, Any] | None = None,
    ) -> None: ...

    def end(self, error: BaseException | None = None) -> None: ...


class ToolCallSpan(Protocol):
    """One tool execution being traced (see `llmgine.observability.ToolCall`)."""

    def result(self, value: Any) -> None: ...


@runtime_checkable
class CallTracer(Protocol):
    """Makes the spans of model calls and tool executions.

    `llmgine.observability` implements it (``obs.call_tracer``); `TracerSlot` forwards to
    one; `NO_TRACER` records nothing.
    """

    @property
    def capture_content(self) -> bool:
        """Whether prompts, completions and tool arguments may be recorded."""
        ...

    def start_llm_call(
        self,
        *,
        provider: str,
        model: str,
        operation: str = sc.OP_CHAT,
        session_id: str | None = None,
        server_address: str | None = None,
        server_port: int | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
        top_p: float | None = None,
        seed: int | None = None,
        stop: Sequence[str] | None = None,
        output_type: str | None = None,
        attributes: Mapping[str, Any] | None = None,
    ) -> LLMCallSpan:
        """Start a model call's span (not made current); ``span.end(error)`` ends it."""
        ...

    def tool_span(
        self,
        name: str,
        *,
        call_id: str | None = None,
        arguments: Any = None,
        description: str | None = None,
        session_id: str | None = None,
    ) -> AbstractContextManager[ToolCallSpan]:
        """A span around one tool execution (current while the block runs)."""
        ...


class _NoCall:
    """The span of a call nobody traces: every method does nothing."""

    capture = False

    def input(self, messages: Any, *, system: Any = None) -> None: ...
    def first_token(self, ms: float | None = None) -> None: ...
    def response(self, **figures: Any) -> None: ...
    def end(self, error: BaseException | None = None) -> None: ...
    def result(self, value: Any) -> None: ...


_NO_CALL = _NoCall()


class _NoTracer:
    """A `CallTracer` that records nothing."""

    capture_content = False

    def start_llm_call(self, **args: Any) -> LLMCallSpan:
        return _NO_CALL

    def tool_span(self, name: str, **args: Any) -> AbstractContextManager[ToolCallSpan]:
        return contextlib.nullcontext(_NO_CALL)

    def __repr__(self) -> str:
        return "NO_TRACER"


NO_TRACER: CallTracer = _NoTracer()
"""A tracer that records nothing (``get_model(..., tracer=NO_TRACER)``: never traced)."""


class TracerSlot:
    """A `CallTracer` that forwards to the tracer plugged into it, or records nothing.

    Observability plugs its tracer in when enabled (for a bus: when it observes the bus)
    and unplugs it when disabled; whoever holds the slot follows without asking.
    """

    def __init__(self, label: str) -> None:
        self.label = label
        self.plugged: CallTracer | None = None

    def plug(self, tracer: CallTracer) -> None:
        """Trace through ``tracer`` from now on (replacing what was plugged)."""
        self.plugged = tracer

    def unplug(self, tracer: CallTracer) -> None:
        """Stop tracing through ``tracer``, if it is the one plugged (else nothing)."""
        if self.plugged is tracer:
            self.plugged = None

    @property
    def capture_content(self) -> bool:
        plugged = self.plugged
        return plugged is not None and plugged.capture_content

    def start_llm_call(self, **args: Any) -> LLMCallSpan:
        plugged = self.plugged
        return _NO_CALL if plugged is None else plugged.start_llm_call(**args)

    def tool_span(self, name: str, **args: Any) -> AbstractContextManager[ToolCallSpan]:
        plugged = self.plugged
        if plugged is None:
            return contextlib.nullcontext(_NO_CALL)
        return plugged.tool_span(name, **args)

    def __repr__(self) -> str:
        return f"<TracerSlot {self.label}: {self.plugged!r}>"


_DEFAULT = TracerSlot("default")
# One slot per bus, kept while the bus lives (a bus is hashable by identity).
_BUSES: weakref.WeakKeyDictionary[MessageBus, TracerSlot] = weakref.WeakKeyDictionary()


def tracer_for(bus: MessageBus | None = None) -> TracerSlot:
    """The slot what works for ``bus`` traces through; without a bus, the default one
    (plugged while observability is enabled). The same bus gives the same slot."""
    if bus is None:
        return _DEFAULT
    slot = _BUSES.get(bus)
    if slot is None:
        slot = _BUSES[bus] = TracerSlot(f"bus {id(bus):x}")
    return slot
