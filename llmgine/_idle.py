"""`when_idle`: bookkeeping that should run while the event loop waits, not before.

Deferred work scheduled with ``call_soon`` runs at the loop's next turn, which is often in
the middle of the next request: an HTTP client yields between writing a request's headers
and its body, and the server waits for the body. Work held for a turn in which nothing else
is ready runs while the loop would otherwise sit in ``select()`` waiting for the network.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

__all__ = ["MAX_TURNS", "when_idle"]

# The most turns work waits for an idle one: a loop that is never idle still gets it done.
MAX_TURNS = 8


def when_idle(loop: asyncio.AbstractEventLoop, fn: Callable[[], object]) -> None:
    """Run ``fn`` on ``loop`` (from its own thread) at the first turn in which nothing
    else is ready to run, or after `MAX_TURNS` turns."""
    # asyncio's own loops keep their ready callbacks in `_ready`; others (uvloop) do not
    # say, and get the work at their next turn.
    ready = getattr(loop, "_ready", None)
    if ready is None:
        loop.call_soon(fn)
        return

    def turn(left: int) -> None:
        # A stopping loop (asyncio.run's main task just ended) may close before another
        # turn: do it now rather than risk it never running.
        if ready and left and not getattr(loop, "_stopping", False):
            loop.call_soon(turn, left - 1)
        else:
            fn()

    loop.call_soon(turn, MAX_TURNS)
