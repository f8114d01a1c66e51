"""`when_idle`: bookkeeping that should run while the event loop waits, not before.

Deferred work scheduled with ``call_soon`` runs at the loop's next turn, which is often in
the middle of the next request: an HTTP client yields between writing a request's headers
and its body, and the server waits for the body. Work held for a turn in which nothing else
is ready runs while the loop would otherwise sit in ``select()`` waiting for the network.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable

__all__ = ["MAX_TURNS", "when_idle"]

# The most turns work waits for an idle one: a loop that is never idle still gets it done.
MAX_TURNS = 8


class _Gate:
    """The work waiting for one loop's idle turn: one callback for all of it, so pieces
    of work never take each other for activity."""

    def __init__(self) -> None:
        self.waiting: list[Callable[[], object]] = []
        self.scheduled = False

    def turn(self, loop: asyncio.AbstractEventLoop, left: int) -> None:
        ready = getattr(loop, "_ready", ())
        # A stopping loop (run_until_complete's coroutine just ended) may close before
        # another turn: run now rather than risk never.
        if ready and left and not getattr(loop, "_stopping", False):
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
    # asyncio's own loops keep their ready callbacks in `_ready`; others (uvloop) do not
    # say, and get the work at their next turn.
    if not hasattr(loop, "_ready"):
        loop.call_soon(fn)
        return
    gate = _gates.get(loop)
    if gate is None:
        gate = _gates[loop] = _Gate()
    gate.waiting.append(fn)
    if not gate.scheduled:
        gate.scheduled = True
        loop.call_soon(gate.turn, loop, MAX_TURNS)
