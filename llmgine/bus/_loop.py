"""Which event loop a bus lives on, and the refusal of a second one running beside it.

A bus's queue, futures, timers and sessions belong to one event loop, and so do the
objects its handlers hold (HTTP clients, locks). Running a handler from another thread's
loop would run it on that thread, beside the loop that owns all of these, which nothing
in asyncio makes safe. So every entry point that may run handlers or touch loop-bound
state checks the running loop here first. A loop that is closed, or no longer running
(as when each test gets a new loop), may be left for the next one.
"""

from __future__ import annotations

import asyncio

from llmgine.errors import EventLoopMismatchError

__all__ = ["LoopBinding", "refuse_if_running"]


def refuse_if_running(bound: asyncio.AbstractEventLoop | None) -> None:
    """Raise `EventLoopMismatchError` if ``bound`` (the bus's loop) still runs."""
    if bound is not None and bound.is_running() and not bound.is_closed():
        raise EventLoopMismatchError(
            "this bus is bound to another running event loop (in another thread); create "
            "one bus per event loop (MessageBus() is cheap), or run the call on the bus's "
            "loop with asyncio.run_coroutine_threadsafe(...)."
        )


class LoopBinding:
    """The loop a bus is bound to; ``check()`` binds to the running loop or refuses it."""

    __slots__ = ("loop",)

    def __init__(self) -> None:
        self.loop: asyncio.AbstractEventLoop | None = None

    def check(self) -> None:
        """Bind to the running loop, or raise if the bound one still runs elsewhere.

        Synchronous code with no running loop passes (``publish_nowait`` queues for
        later), unless the bus's loop runs meanwhile: then this is another thread.
        """
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            if self.loop is not None and self.loop.is_running():
                raise EventLoopMismatchError(
                    "this bus's event loop is running in another thread; call the bus "
                    "there, e.g. loop.call_soon_threadsafe(bus.publish_nowait, event) or "
                    "asyncio.run_coroutine_threadsafe(bus.execute(command), loop)."
                ) from None
            return
        if loop is not self.loop:
            self.bind(loop)

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        refuse_if_running(self.loop)
        self.loop = loop
