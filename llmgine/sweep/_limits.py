"""Concurrency per provider that backs off when rate-limited (AIMD).

`AdaptiveLimit` admits at most ``limit`` calls at once. A rate-limited call halves the
limit (multiplicative decrease, never below 1) and pauses every new call of the provider
until its ``retry_after`` has passed (the calls refused during one pause halve it once);
then each ``increase_every`` successes raise the
limit by one (additive increase) until it is back at its maximum.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

__all__ = ["AdaptiveLimit"]


class AdaptiveLimit:
    """At most ``limit`` calls at once, halved on a rate limit and raised again slowly.

    ``sleep`` and ``clock`` are injectable, so tests throttle without real waiting.
    """

    def __init__(
        self,
        limit: int,
        *,
        increase_every: int = 10,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if limit < 1:
            raise ValueError(f"a concurrency limit is at least 1; got {limit}")
        if increase_every < 1:
            raise ValueError(f"increase_every is at least 1; got {increase_every}")
        self.maximum = limit
        self.limit = limit
        self.increase_every = increase_every
        self.in_flight = 0
        self.throttled = 0  # how many rate limits it has seen
        self.resume_at = 0.0
        self._successes = 0
        self._changed = asyncio.Condition()
        self._sleep = sleep
        self._clock = clock

    async def acquire(self) -> None:
        """Wait for a free slot and for any rate-limit pause to pass."""
        async with self._changed:
            await self._changed.wait_for(lambda: self.in_flight < self.limit)
            self.in_flight += 1
        while (wait := self.resume_at - self._clock()) > 0:
            await self._sleep(wait)

    async def release(self) -> None:
        async with self._changed:
            self.in_flight -= 1
            self._changed.notify_all()

    async def succeeded(self) -> None:
        """A call went through: every ``increase_every`` of them raise the limit by one."""
        if self.limit >= self.maximum:
            return
        self._successes += 1
        if self._successes >= self.increase_every:
            self._successes = 0
            async with self._changed:
                self.limit += 1
                self._changed.notify_all()

    def rate_limited(self, retry_after: float) -> None:
        """A call was refused for its rate: halve the limit, pause for ``retry_after``."""
        self.throttled += 1
        now = self._clock()
        if now >= self.resume_at:  # the calls refused during one pause halve it once
            self.limit = max(1, self.limit // 2)
        self._successes = 0
        self.resume_at = max(self.resume_at, now + max(0.0, retry_after))
