"""`when_idle`: bookkeeping that should run while the event loop waits, not before.

Deferred work scheduled with ``call_soon`` runs at the loop's next turn, which is often in
the middle of the next request: an HTTP client yields between writing a request's headers
and its body, and the server waits for the body. Work held for a turn in which nothing else
is ready runs while the loop would otherwise sit in ``select()`` waiting for the network.

asyncio has no public way to ask whether other callbacks are ready, so this module reads
two internals of asyncio's own loops: ``BaseEventLoop._ready`` (the deque of callbacks
ready to run) and ``_stopping`` (set by ``stop()``). It is the only place in llmgine that
reads asyncio internals. ``benchmarks/bench_internals.py`` measures what they buy over the
public ``call_soon``; ``tests/test_idle.py`` checks them on every run and fails, naming
them, the day a Python release changes them. A loop that does not show them (uvloop) gets
the work at its next turn; one of asyncio's own that no longer does is also logged, once.
"""

from __future__ import annotations

import asyncio
import weakref
from collections import deque
from collections.abc import Callable

from llmgine._redact import redacting_logger

__all__ = ["MAX_TURNS", "when_idle"]

log = redacting_logger("llmgine")

# The most turns work waits for an idle one: a loop that is never idle still gets it done.
MAX_TURNS = 8


# -- the asyncio internals read (nowhere else) -----------------------------------------


def ready_callbacks(loop: asyncio.AbstractEventLoop) -> deque[object] | None:
    """The callbacks ``loop`` will run before it next waits, or None if it does not say."""
    ready = getattr(loop, "_ready", None)
    return ready if isinstance(ready, deque) else None


def is_stopping(loop: asyncio.AbstractEventLoop) -> bool:
    """Whether ``stop()`` was called and the loop ends after this turn."""
    return getattr(loop, "_stopping", False) is True


_warned = False


def _warn_internals_changed(loop: asyncio.AbstractEventLoop) -> None:
    global _warned
    if not _warned:
        _warned = True
        log.warning(
            "%s no longer keeps its ready callbacks where llmgine._idle looks for them: "
            "deferred bookkeeping now runs at the loop's next turn (correct, but it may "
            "delay requests). Please report this with your Python version.",
            type(loop).__name__,
        )


# -- when_idle -------------------------------------------------------------------------


class _Gate:
    """The work waiting for one loop's idle turn: one callback for all of it, so pieces
    of work never take each other for activity."""

    def __init__(self) -> None:
        self.waiting: list[Callable[[], object]] = []
        self.scheduled = False

    def turn(self, loop: asyncio.AbstractEventLoop, left: int) -> None:
        # A stopping loop (run_until_complete's coroutine just ended) may close before
        # another turn: run now rather than risk never.
        if ready_callbacks(loop) and left and not is_stopping(loop):
            loop.call_soon(self.turn, loop, left - 1)
            return
        self.scheduled = False
        work, self.waiting = self.waiting, []
        for fn in work:
            try:
                fn()
            except Exception as exc:  # as asyncio reports a failing callback; run the rest
                loop.call_exception_handler(
                    {"message": f"idle-time work {fn!r} failed", "exception": exc}
                )


_gates: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Gate] = weakref.WeakKeyDictionary()


def when_idle(loop: asyncio.AbstractEventLoop, fn: Callable[[], object]) -> None:
    """Run ``fn`` on ``loop`` (call from the loop's own thread) at the first turn in which
    nothing else is ready to run, or after `MAX_TURNS` turns; in the order given."""
    gate = _gates.get(loop)
    if gate is None:
        if ready_callbacks(loop) is None:
            if isinstance(loop, asyncio.BaseEventLoop):
                _warn_internals_changed(loop)
            loop.call_soon(fn)
            return
        gate = _gates[loop] = _Gate()
    gate.waiting.append(fn)
    if not gate.scheduled:
        gate.scheduled = True
        loop.call_soon(gate.turn, loop, MAX_TURNS)
