"""`Ticker`: the throttled, periodic flush behind every live widget.

Widgets never render per event or per span: what they watch only appends to a deque, and
a ticker on the widget's own event loop (the kernel's, in Jupyter, so every comm message
leaves from the kernel's main thread) turns what gathered into one render. A tick that
took ``t`` seconds delays the next by at least ``t * (1 - duty) / duty``, so however much
arrives, rendering spends at most ``duty`` of the loop's time.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from time import perf_counter

from llmgine._redact import redacting_logger

__all__ = ["DEFAULT_DUTY", "Ticker", "running_loop"]

log = redacting_logger("llmgine.notebook")

# Widgets may slow the bus by at most 10% (benchmarks/bench_widgets.py); the ticker
# takes half of that, leaving the rest for the observer's appends and the GC.
DEFAULT_DUTY = 0.05


def running_loop() -> asyncio.AbstractEventLoop | None:
    """The running event loop (the kernel's, in a notebook cell), or None outside one."""
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


class Ticker:
    """Calls ``tick`` every ``interval`` seconds on an event loop until `stop()`.

    A tick that raises is logged and counted in ``failures``; ticking goes on (a widget
    that failed to render once must not freeze for good).
    """

    def __init__(
        self, tick: Callable[[], object], interval: float, *, duty: float = DEFAULT_DUTY
    ) -> None:
        if interval <= 0:
            raise ValueError(f"a refresh interval must be positive seconds, got {interval}")
        if not 0 < duty <= 1:
            raise ValueError(f"duty must be a fraction of the loop's time in (0, 1], got {duty}")
        self.interval = interval
        self.duty = duty
        self.ticks = 0
        self.failures = 0
        self.busy = 0.0  # seconds spent in ticks, in all
        self.longest = 0.0  # the longest tick, in seconds: how long the loop was held
        self._tick = tick
        self._loop: asyncio.AbstractEventLoop | None = None
        self._handle: asyncio.TimerHandle | None = None
        self._waiters: list[asyncio.Future[None]] = []

    @property
    def running(self) -> bool:
        return self._loop is not None

    def start(self, loop: asyncio.AbstractEventLoop | None = None) -> bool:
        """Tick on ``loop`` (by default the running one); False when there is none, and
        the owner flushes by hand."""
        if self._loop is not None:
            return True
        loop = loop or running_loop()
        if loop is None or loop.is_closed():
            return False
        self._loop = loop
        self._handle = loop.call_later(self.interval, self._run)
        return True

    def stop(self) -> None:
        """Stop ticking; anyone awaiting `next_tick` is released."""
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        self._loop = None
        self._release()

    async def next_tick(self) -> None:
        """Return once the next tick has run (at once if the ticker is stopped)."""
        if self._loop is None:
            return
        waiter: asyncio.Future[None] = self._loop.create_future()
        self._waiters.append(waiter)
        await waiter

    def _run(self) -> None:
        loop = self._loop
        if loop is None:
            return
        started = perf_counter()
        try:
            self._tick()
        except Exception:
            self.failures += 1
            log.exception("a live widget failed to refresh")
        took = perf_counter() - started
        self.ticks += 1
        self.busy += took
        self.longest = max(self.longest, took)
        self._release()
        if self._loop is loop and not loop.is_closed():
            delay = max(self.interval, took * (1 - self.duty) / self.duty)
            self._handle = loop.call_later(delay, self._run)

    def _release(self) -> None:
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)
