"""Concurrency per provider that backs off when rate-limited (AIMD), before a 429 if it can.

`AdaptiveLimit` admits at most ``limit`` calls at once. A rate-limited call halves the
limit (multiplicative decrease, never below 1) and pauses every new call of the provider
until its ``retry_after`` has passed (the calls refused during one pause halve it once);
then each ``increase_every`` successes raise the limit by one (additive increase) until
it is back at its maximum.

A successful answer may say, in its `RateLimit` (read from the provider's headers), that
a budget is nearly used up: fewer requests left than calls in flight, or fewer tokens
left than the calls in flight would take at the size of this one. That is treated as the
429 it foretells, without the refused call: the limit is halved and new calls wait until
enough of that budget is back (with no reset given, the limit is only halved). So a sweep
slows down before it is refused, and speeds up again as it does after a 429.

How long is "enough": OpenAI and Anthropic replenish budgets continuously, and their reset
header is when the budget is *whole* again, which for a token budget can be minutes away.
With the budget's size known, the wait is the share of that time that refills what the
calls in flight need (``reset x missing / (limit - remaining)``); without it, the whole
reset. A guess too short only costs a 429, which is handled as before.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from llmgine.llm import RateLimit

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
        self.forewarned = 0  # how many answers said a budget was nearly used up
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

    async def succeeded(
        self, rate_limit: RateLimit | None = None, *, call_tokens: int | None = None
    ) -> None:
        """A call went through (call it before `release`, so the call counts as in
        flight). When its answer's ``rate_limit`` says a budget is nearly used up (see the
        module docstring; ``call_tokens``: what this call took), slow down as for a rate
        limit; otherwise every ``increase_every`` of them raise the limit by one."""
        pause = self._foretold_pause(rate_limit, call_tokens)
        if pause is not None:
            self.forewarned += 1
            self._slow_down(pause)
            return
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
        self._slow_down(retry_after)

    def _slow_down(self, pause: float) -> None:
        now = self._clock()
        if now >= self.resume_at:  # the calls refused during one pause halve it once
            self.limit = max(1, self.limit // 2)
        self._successes = 0
        self.resume_at = max(self.resume_at, now + max(0.0, pause))

    def _foretold_pause(
        self, rate_limit: RateLimit | None, call_tokens: int | None
    ) -> float | None:
        """How long to pause if ``rate_limit`` says the next calls would be refused (0:
        no reset was given), else None. The calls in flight may each take one more
        request, and as many tokens as this call did (1 when that is unknown)."""
        if rate_limit is None:
            return None
        calls = max(1, self.in_flight)
        budgets = (
            (
                rate_limit.requests_limit,
                rate_limit.requests_remaining,
                calls,
                rate_limit.requests_reset_s,
            ),
            (
                rate_limit.tokens_limit,
                rate_limit.tokens_remaining,
                calls * max(1, call_tokens or 1),
                rate_limit.tokens_reset_s,
            ),
        )
        waits = [
            _refill_time(size, left, needed, reset)
            for size, left, needed, reset in budgets
            if left is not None and left < needed
        ]
        return max(waits) if waits else None


def _refill_time(size: int | None, left: int, needed: int, reset: float | None) -> float:
    """Seconds until ``needed`` of a budget that is whole again in ``reset`` s is back,
    refilled at an even pace (the whole ``reset`` when the budget's size is unknown)."""
    if reset is None:
        return 0.0
    if size is None or size <= left:
        return reset
    return reset * min(1.0, (needed - left) / (size - left))
