"""Running one command's handler under its policy: timeout, circuit breaker and retry.

Retry uses tenacity (see `_resilience` for why); the caller's `Attempts` is kept up to date
so it can report how many attempts were made even when the last one raised.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt

from llmgine._redact import redacting_logger
from llmgine.bus._resilience import CircuitBreaker, CommandPolicy
from llmgine.errors import CommandTimeoutError

__all__ = ["Attempts", "run_with_policy"]

log = redacting_logger("llmgine.bus")

Call = Callable[[], Awaitable[Any]]


class Attempts:
    """How many attempts a command's handler has had so far (0 before the first)."""

    __slots__ = ("made",)

    def __init__(self) -> None:
        self.made = 0


async def run_with_policy(
    call: Call,
    name: str,
    policy: CommandPolicy | None,
    timeout: float | None,
    breaker: CircuitBreaker | None,
    attempts: Attempts,
) -> Any:
    """Await ``call()`` with the policy's timeout (unless ``timeout`` overrides it), its
    breaker and its retries; returns the value or raises the last failure."""
    if policy is not None and timeout is None:
        timeout = policy.timeout
    retry = policy.retry if policy is not None else None
    if retry is None:
        attempts.made = 1
        return await _attempt(call, name, timeout, breaker)

    def count(state: Any) -> None:
        attempts.made = state.attempt_number

    retrying = AsyncRetrying(
        stop=stop_after_attempt(retry.attempts),
        wait=lambda state: retry.delay(state.attempt_number),
        retry=retry_if_exception(retry.should_retry),
        sleep=retry.sleep,
        before=count,
        before_sleep=lambda state: log.warning(
            "%s attempt %d failed (%s); retrying",
            name,
            state.attempt_number,
            state.outcome.exception() if state.outcome else "?",
        ),
        reraise=True,
    )
    return await retrying(_attempt, call, name, timeout, breaker)


async def _attempt(
    call: Call, name: str, timeout: float | None, breaker: CircuitBreaker | None
) -> Any:
    if breaker is not None:
        breaker.before_call()
    try:
        if timeout is None:
            value = await call()
        else:
            deadline = asyncio.timeout(timeout)
            try:
                async with deadline:
                    value = await call()
            except TimeoutError as exc:
                if not deadline.expired():
                    raise  # the handler's own TimeoutError, not our deadline
                raise CommandTimeoutError(
                    f"{name} did not finish within {timeout}s; raise its timeout "
                    "(execute(..., timeout=) or its CommandPolicy) or make the handler faster"
                ) from exc
    except asyncio.CancelledError:
        if breaker is not None:
            breaker.on_cancel()
        raise
    except Exception:
        if breaker is not None:
            breaker.on_failure()
        raise
    if breaker is not None:
        breaker.on_success()
    return value
