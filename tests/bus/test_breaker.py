"""Circuit breakers per command type, driven by a fake clock (no real waiting)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from llmgine.bus import BreakerPolicy, Command, CommandPolicy, MessageBus, RetryPolicy
from llmgine.errors import CircuitOpenError, CommandTimeoutError
from tests.conftest import FakeClock


class Charge(Command[str]):
    amount: int = 1


class Refund(Command[str]):
    pass


class Backend:
    """A command handler whose health the test switches; optionally parks on a gate."""

    def __init__(self) -> None:
        self.healthy = False
        self.calls = 0
        self.running = 0
        self.gate: asyncio.Event | None = None
        self._arrivals: list[tuple[int, asyncio.Future[None]]] = []

    async def __call__(self, cmd: Command[Any]) -> str:
        self.calls += 1
        self.running += 1
        for count, arrived in self._arrivals:
            if self.running >= count and not arrived.done():
                arrived.set_result(None)
        try:
            if self.gate is not None:
                await self.gate.wait()
        finally:
            self.running -= 1
        if not self.healthy:
            raise ConnectionError("backend down")
        return "done"

    async def until_running(self, count: int) -> None:
        """Return once ``count`` calls are inside the backend at the same time."""
        arrived = asyncio.get_running_loop().create_future()
        self._arrivals.append((count, arrived))
        if self.running >= count:
            arrived.set_result(None)
        async with asyncio.timeout(10):  # a wedged bus fails here, not at the suite timeout
            await arrived


@pytest.fixture
async def cbus(clock: FakeClock) -> AsyncIterator[MessageBus]:
    async with MessageBus(clock=clock) as bus:
        yield bus


@pytest.fixture
def backend(cbus: MessageBus) -> Backend:
    handler = Backend()
    cbus.on_command(Charge, handler)
    return handler


def guard(bus: MessageBus, **kwargs: Any) -> None:
    kwargs.setdefault("failure_threshold", 3)
    kwargs.setdefault("reset_timeout", 30.0)
    bus.set_policy(Charge, CommandPolicy(breaker=BreakerPolicy(**kwargs)))


async def fail(bus: MessageBus, times: int) -> None:
    for _ in range(times):
        assert not (await bus.execute(Charge())).success


def state(bus: MessageBus) -> str:
    breaker = bus.breaker(Charge)
    assert breaker is not None
    return breaker.state


async def test_opens_after_failure_threshold_consecutive_failures(
    cbus: MessageBus, backend: Backend
) -> None:
    guard(cbus)
    await fail(cbus, 2)
    assert state(cbus) == "closed"

    await fail(cbus, 1)

    assert state(cbus) == "open"
    breaker = cbus.breaker(Charge)
    assert breaker is not None
    assert breaker.transitions == [("closed", "open")]
    assert cbus.stats().breakers == {"Charge": "open"}


async def test_open_circuit_fails_fast_without_calling_the_handler(
    cbus: MessageBus, backend: Backend, clock: FakeClock
) -> None:
    guard(cbus)
    await fail(cbus, 3)
    backend.healthy = True  # even a healthy backend is not called while open

    result = await cbus.execute(Charge())

    assert backend.calls == 3
    assert not result.success
    exc = result.exception
    assert isinstance(exc, CircuitOpenError)
    assert exc.command_type == "Charge"
    assert exc.retry_after == pytest.approx(30.0)
    message = str(exc)
    assert "Charge" in message
    assert "open" in message
    assert "3 consecutive failures" in message
    assert "30.0s" in message
    assert "fix the handler's dependency or wait" in message

    clock.advance(10.0)
    later = (await cbus.execute(Charge())).exception
    assert isinstance(later, CircuitOpenError)
    assert later.retry_after == pytest.approx(20.0)
    assert backend.calls == 3


async def test_half_open_after_reset_timeout(
    cbus: MessageBus, backend: Backend, clock: FakeClock
) -> None:
    guard(cbus)
    await fail(cbus, 3)

    clock.advance(29.5)
    assert state(cbus) == "open"
    clock.advance(0.5)
    assert state(cbus) == "half_open"
    assert cbus.stats().breakers == {"Charge": "half_open"}


async def test_trial_success_closes_the_circuit(
    cbus: MessageBus, backend: Backend, clock: FakeClock
) -> None:
    guard(cbus)
    await fail(cbus, 3)
    clock.advance(30.0)
    backend.healthy = True

    result = await cbus.execute(Charge())

    assert result.success, result.error
    assert backend.calls == 4
    breaker = cbus.breaker(Charge)
    assert breaker is not None
    assert breaker.state == "closed"
    assert breaker.transitions == [
        ("closed", "open"),
        ("open", "half_open"),
        ("half_open", "closed"),
    ]
    # Closed again with a fresh failure count: it takes the full threshold to reopen.
    backend.healthy = False
    await fail(cbus, 2)
    assert state(cbus) == "closed"
    await fail(cbus, 1)
    assert state(cbus) == "open"


async def test_trial_failure_opens_the_circuit_again(
    cbus: MessageBus, backend: Backend, clock: FakeClock
) -> None:
    guard(cbus)
    await fail(cbus, 3)
    clock.advance(45.0)

    await fail(cbus, 1)  # the trial

    assert backend.calls == 4
    breaker = cbus.breaker(Charge)
    assert breaker is not None
    assert breaker.state == "open"
    assert breaker.transitions[-2:] == [("open", "half_open"), ("half_open", "open")]
    exc = (await cbus.execute(Charge())).exception
    assert isinstance(exc, CircuitOpenError)
    assert exc.retry_after == pytest.approx(30.0)  # the timeout starts again from the trial
    assert backend.calls == 4


@pytest.mark.parametrize("max_calls", [1, 2])
async def test_half_open_admits_at_most_max_calls_concurrent_trials(
    cbus: MessageBus, backend: Backend, clock: FakeClock, max_calls: int
) -> None:
    guard(cbus, half_open_max_calls=max_calls)
    await fail(cbus, 3)
    clock.advance(30.0)
    backend.healthy = True
    backend.gate = asyncio.Event()

    trials = [asyncio.create_task(cbus.execute(Charge())) for _ in range(max_calls)]
    await backend.until_running(max_calls)
    assert backend.running == max_calls

    extra = await cbus.execute(Charge())

    assert isinstance(extra.exception, CircuitOpenError)
    assert backend.calls == 3 + max_calls
    backend.gate.set()
    results = await asyncio.gather(*trials)
    assert all(r.success for r in results)
    assert state(cbus) == "closed"
    assert (await cbus.execute(Charge())).success


async def test_success_threshold_needs_that_many_trial_successes(
    cbus: MessageBus, backend: Backend, clock: FakeClock
) -> None:
    guard(cbus, success_threshold=3)
    await fail(cbus, 3)
    clock.advance(30.0)
    backend.healthy = True

    for expected in ("half_open", "half_open", "closed"):
        result = await cbus.execute(Charge())
        assert result.success, result.error
        assert state(cbus) == expected


async def test_a_failure_among_the_trial_successes_reopens(
    cbus: MessageBus, backend: Backend, clock: FakeClock
) -> None:
    guard(cbus, success_threshold=2)
    await fail(cbus, 3)
    clock.advance(30.0)
    backend.healthy = True
    assert (await cbus.execute(Charge())).success
    backend.healthy = False

    await fail(cbus, 1)

    assert state(cbus) == "open"


async def test_a_success_resets_the_consecutive_failure_count(
    cbus: MessageBus, backend: Backend
) -> None:
    guard(cbus)
    await fail(cbus, 2)
    backend.healthy = True
    assert (await cbus.execute(Charge())).success
    backend.healthy = False

    await fail(cbus, 2)
    assert state(cbus) == "closed"
    await fail(cbus, 1)
    assert state(cbus) == "open"


async def test_a_timeout_counts_as_a_failure(cbus: MessageBus, backend: Backend) -> None:
    backend.healthy = True
    backend.gate = asyncio.Event()  # never set: the handler hangs
    cbus.set_policy(Charge, CommandPolicy(timeout=0.01, breaker=BreakerPolicy(failure_threshold=1)))

    result = await cbus.execute(Charge())

    assert isinstance(result.exception, CommandTimeoutError)
    assert state(cbus) == "open"


async def test_breakers_are_per_command_type(cbus: MessageBus, backend: Backend) -> None:
    cbus.on_command(Refund, lambda cmd: "refunded")
    policy = CommandPolicy(breaker=BreakerPolicy(failure_threshold=1))
    cbus.set_policy(Charge, policy)
    cbus.set_policy(Refund, policy)

    await fail(cbus, 1)
    refund = await cbus.execute(Refund())

    assert refund.success
    assert cbus.stats().breakers == {"Charge": "open", "Refund": "closed"}


async def test_breaker_accessor_and_stats_follow_the_policy(
    cbus: MessageBus, backend: Backend
) -> None:
    assert cbus.breaker(Charge) is None
    cbus.set_policy(Charge, CommandPolicy(timeout=5.0))
    assert cbus.breaker(Charge) is None
    assert cbus.stats().breakers == {}

    guard(cbus, failure_threshold=1)
    await fail(cbus, 1)
    assert cbus.stats().breakers == {"Charge": "open"}

    guard(cbus, failure_threshold=1)  # a new policy gets a new, closed breaker
    assert state(cbus) == "closed"
    cbus.set_policy(Charge, None)
    assert cbus.breaker(Charge) is None
    assert cbus.stats().breakers == {}


async def test_circuit_open_error_is_not_retried(cbus: MessageBus, backend: Backend) -> None:
    sleeps: list[float] = []

    async def sleep(delay: float) -> None:
        sleeps.append(delay)

    cbus.set_policy(
        Charge,
        CommandPolicy(
            retry=RetryPolicy(attempts=5, sleep=sleep),
            breaker=BreakerPolicy(failure_threshold=2, reset_timeout=30.0),
        ),
    )

    result = await cbus.execute(Charge())

    # attempt 1 fails, attempt 2 fails and opens the breaker, attempt 3 fails fast: stop.
    assert isinstance(result.exception, CircuitOpenError)
    assert backend.calls == 2
    assert result.attempts == 3
    assert len(sleeps) == 2
    assert state(cbus) == "open"

    again = await cbus.execute(Charge())
    assert isinstance(again.exception, CircuitOpenError)
    assert again.attempts == 1
    assert backend.calls == 2
    assert len(sleeps) == 2


async def test_a_cancelled_half_open_trial_does_not_wedge_the_breaker(
    cbus: MessageBus, backend: Backend, clock: FakeClock
) -> None:
    guard(cbus)
    await fail(cbus, 3)
    clock.advance(30.0)
    backend.healthy = True
    backend.gate = asyncio.Event()
    trial = asyncio.create_task(cbus.execute(Charge()))
    await backend.until_running(1)
    assert backend.running == 1

    trial.cancel()  # e.g. the caller gave up
    with pytest.raises(asyncio.CancelledError):
        await trial
    backend.gate = None

    # Whether the cancelled trial freed its slot or counted as a failure, a trial must be
    # possible again at the latest one reset_timeout later.
    clock.advance(30.0)
    result = await cbus.execute(Charge())
    assert result.success, result.error
    assert state(cbus) == "closed"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"failure_threshold": 0}, "thresholds must be at least 1"),
        ({"half_open_max_calls": 0}, "thresholds must be at least 1"),
        ({"success_threshold": 0}, "success_threshold must be at least 1"),
        ({"reset_timeout": -1.0}, "reset_timeout cannot be negative"),
    ],
)
def test_breaker_policy_validation(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        BreakerPolicy(**kwargs)
