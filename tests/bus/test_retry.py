"""Retry policies and per-attempt timeouts of `MessageBus.execute`."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from llmgine.bus import Command, CommandPolicy, MessageBus, RetryPolicy
from llmgine.errors import CommandTimeoutError, HandlerRegistrationError, NoHandlerError


class Fetch(Command[str]):
    url: str = "https://example.test"


class FetchImage(Fetch):
    pass


class RecordingSleep:
    """Stands in for `asyncio.sleep`: records every backoff delay and returns at once."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


class Flaky:
    """A handler that raises the given exceptions in turn, then returns "ok"."""

    def __init__(self, *errors: Exception) -> None:
        self.errors = list(errors)
        self.calls = 0

    async def __call__(self, cmd: Fetch) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "ok"


def retrying(sleep: RecordingSleep, **kwargs: Any) -> CommandPolicy:
    return CommandPolicy(retry=RetryPolicy(sleep=sleep, **kwargs))


@pytest.mark.parametrize("failures", [1, 2, 4])
async def test_succeeds_after_failures_and_counts_attempts(bus: MessageBus, failures: int) -> None:
    sleep = RecordingSleep()
    handler = Flaky(*(ConnectionError(f"down {i}") for i in range(failures)))
    bus.on_command(Fetch, handler)
    bus.set_policy(Fetch, retrying(sleep, attempts=5))

    result = await bus.execute(Fetch())

    assert result.success, result.error
    assert result.value == "ok"
    assert result.attempts == failures + 1
    assert handler.calls == failures + 1
    assert len(sleep.delays) == failures
    assert len(bus.dead_letters) == 0
    assert bus.stats().commands_succeeded == 1


async def test_gives_up_after_attempts_with_the_last_error(bus: MessageBus) -> None:
    sleep = RecordingSleep()
    errors = [ValueError(f"boom {i}") for i in range(1, 6)]
    handler = Flaky(*errors)
    bus.on_command(Fetch, handler)
    bus.set_policy(Fetch, retrying(sleep, attempts=3))

    result = await bus.execute(Fetch())

    assert not result.success
    assert result.attempts == 3
    assert handler.calls == 3
    assert len(sleep.delays) == 2  # no sleep after the last attempt
    assert result.exception is errors[2]
    assert result.error is not None
    assert result.error.type == "builtins.ValueError"
    assert result.error.message == "boom 3"
    with pytest.raises(ValueError, match="boom 3"):
        result.unwrap()


async def test_each_retry_is_logged(bus: MessageBus, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="llmgine.bus")
    bus.on_command(Fetch, Flaky(ConnectionError("down")))
    bus.set_policy(Fetch, retrying(RecordingSleep(), attempts=2))

    assert (await bus.execute(Fetch())).success

    assert any("Fetch attempt 1 failed" in r.getMessage() for r in caplog.records)


async def test_only_retry_on_types_are_retried(bus: MessageBus) -> None:
    sleep = RecordingSleep()
    handler = Flaky(ValueError("bad input"))
    bus.on_command(Fetch, handler)
    bus.set_policy(Fetch, retrying(sleep, attempts=5, retry_on=(ConnectionError,)))

    result = await bus.execute(Fetch())

    assert not result.success
    assert isinstance(result.exception, ValueError)
    assert handler.calls == 1
    assert result.attempts == 1
    assert sleep.delays == []


async def test_retry_on_matches_subclasses_and_stops_at_the_first_other_error(
    bus: MessageBus,
) -> None:
    sleep = RecordingSleep()
    handler = Flaky(ConnectionError("a"), FileNotFoundError("b"), ValueError("c"), OSError("d"))
    bus.on_command(Fetch, handler)
    bus.set_policy(Fetch, retrying(sleep, attempts=10, retry_on=(OSError,)))

    result = await bus.execute(Fetch())

    assert not result.success
    assert isinstance(result.exception, ValueError)
    assert handler.calls == 3
    assert result.attempts == 3
    assert len(sleep.delays) == 2


async def test_missing_handler_is_never_retried(bus: MessageBus) -> None:
    sleep = RecordingSleep()
    bus.set_policy(Fetch, retrying(sleep, attempts=5))

    result = await bus.execute(Fetch())

    assert isinstance(result.exception, NoHandlerError)
    assert result.attempts == 1
    assert sleep.delays == []


@pytest.mark.parametrize("error", [NoHandlerError("inner"), HandlerRegistrationError("dup")])
async def test_unfixable_errors_raised_by_a_handler_are_never_retried(
    bus: MessageBus, error: Exception
) -> None:
    sleep = RecordingSleep()
    handler = Flaky(error, error)
    bus.on_command(Fetch, handler)
    bus.set_policy(Fetch, retrying(sleep, attempts=5, retry_on=(Exception,)))

    result = await bus.execute(Fetch())

    assert result.exception is error
    assert handler.calls == 1
    assert sleep.delays == []


async def test_backoff_grows_exponentially_within_jitter_and_is_capped(bus: MessageBus) -> None:
    sleep = RecordingSleep()
    bus.on_command(Fetch, Flaky(*(ConnectionError() for _ in range(100))))
    bus.set_policy(
        Fetch, retrying(sleep, attempts=7, initial=0.1, exp_base=2.0, jitter=0.05, max_delay=1.0)
    )

    for _ in range(10):  # the jitter is random: look at several runs
        sleep.delays.clear()
        result = await bus.execute(Fetch())
        assert result.attempts == 7
        assert len(sleep.delays) == 6
        for n, delay in enumerate(sleep.delays, start=1):
            base = 0.1 * 2.0 ** (n - 1)
            assert min(base, 1.0) - 1e-9 <= delay <= min(base + 0.05, 1.0) + 1e-9, (n, delay)
        assert sleep.delays[:4] == sorted(sleep.delays[:4])  # doubling outgrows the jitter
        assert sleep.delays[4] == sleep.delays[5] == 1.0  # 1.6s and 3.2s capped


async def test_backoff_without_jitter_is_exact(bus: MessageBus) -> None:
    sleep = RecordingSleep()
    bus.on_command(Fetch, Flaky(*(ConnectionError() for _ in range(10))))
    bus.set_policy(
        Fetch, retrying(sleep, attempts=6, initial=0.5, exp_base=3.0, jitter=0.0, max_delay=5.0)
    )

    await bus.execute(Fetch())

    assert sleep.delays == pytest.approx([0.5, 1.5, 4.5, 5.0, 5.0])


async def test_huge_backoff_is_capped_not_an_overflow(bus: MessageBus) -> None:
    sleep = RecordingSleep()
    bus.on_command(Fetch, Flaky(*(ConnectionError() for _ in range(5))))
    bus.set_policy(Fetch, retrying(sleep, attempts=4, initial=1e308, exp_base=1e308, max_delay=7.0))

    result = await bus.execute(Fetch())

    assert isinstance(result.exception, ConnectionError)
    assert sleep.delays == [7.0, 7.0, 7.0]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"attempts": 0}, "attempts must be at least 1, got 0"),
        ({"attempts": -3}, "attempts must be at least 1"),
        ({"initial": -0.1}, "cannot be negative"),
        ({"max_delay": -1.0}, "cannot be negative"),
        ({"jitter": -0.5}, "cannot be negative"),
    ],
)
def test_retry_policy_validation(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RetryPolicy(**kwargs)


async def test_policy_on_a_base_class_applies_to_subclasses(bus: MessageBus) -> None:
    handler = Flaky(ConnectionError())
    bus.on_command(FetchImage, handler)
    bus.set_policy(Fetch, retrying(RecordingSleep(), attempts=2))

    result = await bus.execute(FetchImage())

    assert result.success
    assert result.attempts == 2


async def test_clearing_the_policy_stops_retrying(bus: MessageBus) -> None:
    handler = Flaky(ConnectionError(), ConnectionError())
    bus.on_command(Fetch, handler)
    bus.set_policy(Fetch, retrying(RecordingSleep(), attempts=5))
    bus.set_policy(Fetch, None)

    result = await bus.execute(Fetch())

    assert not result.success
    assert handler.calls == 1


# -- timeouts ---------------------------------------------------------------------------


class Hang:
    """A handler that hangs on an event nobody sets for the first ``hangs`` calls."""

    def __init__(self, hangs: int = 1_000) -> None:
        self.hangs = hangs
        self.calls = 0
        self.never = asyncio.Event()

    async def __call__(self, cmd: Fetch) -> str:
        self.calls += 1
        if self.calls <= self.hangs:
            await self.never.wait()
        return "late"


async def test_policy_timeout_fails_a_hanging_handler(bus: MessageBus) -> None:
    handler = Hang()
    bus.on_command(Fetch, handler)
    bus.set_policy(Fetch, CommandPolicy(timeout=0.01))

    result = await bus.execute(Fetch())

    assert not result.success
    assert isinstance(result.exception, CommandTimeoutError)
    assert "Fetch did not finish within 0.01s" in str(result.exception)
    assert result.error is not None
    assert result.error.type.endswith("CommandTimeoutError")
    assert handler.calls == 1
    assert result.command_id in bus.dead_letters


async def test_execute_timeout_without_a_policy(bus: MessageBus) -> None:
    bus.on_command(Fetch, Hang())

    result = await bus.execute(Fetch(), timeout=0.01)

    assert isinstance(result.exception, CommandTimeoutError)


async def test_execute_timeout_overrides_the_policy(bus: MessageBus) -> None:
    bus.on_command(Fetch, Hang())
    bus.set_policy(Fetch, CommandPolicy(timeout=3600.0))

    result = await bus.execute(Fetch(), timeout=0.01)

    assert isinstance(result.exception, CommandTimeoutError)
    assert "within 0.01s" in str(result.exception)


async def test_timeout_is_per_attempt_and_retried(bus: MessageBus) -> None:
    sleep = RecordingSleep()
    handler = Hang(hangs=2)
    bus.on_command(Fetch, handler)
    bus.set_policy(Fetch, CommandPolicy(timeout=0.01, retry=RetryPolicy(attempts=3, sleep=sleep)))

    result = await bus.execute(Fetch())

    assert result.success, result.error
    assert result.value == "late"
    assert result.attempts == 3
    assert handler.calls == 3
    assert len(sleep.delays) == 2


async def test_every_attempt_timing_out_gives_a_timeout_result(bus: MessageBus) -> None:
    handler = Hang()
    bus.on_command(Fetch, handler)
    bus.set_policy(
        Fetch,
        CommandPolicy(timeout=0.01, retry=RetryPolicy(attempts=2, sleep=RecordingSleep())),
    )

    result = await bus.execute(Fetch())

    assert isinstance(result.exception, CommandTimeoutError)
    assert result.attempts == 2
    assert handler.calls == 2


@pytest.mark.parametrize("policy_timeout", [None, 5.0])
async def test_a_handlers_own_timeout_error_is_not_a_command_timeout(
    bus: MessageBus, policy_timeout: float | None
) -> None:
    async def handler(cmd: Fetch) -> str:
        raise TimeoutError("upstream API timed out")

    bus.on_command(Fetch, handler)
    bus.set_policy(Fetch, CommandPolicy(timeout=policy_timeout))

    result = await bus.execute(Fetch(), timeout=5.0)

    assert type(result.exception) is TimeoutError
    assert result.error is not None
    assert result.error.type == "builtins.TimeoutError"
    assert result.error.message == "upstream API timed out"


@pytest.mark.parametrize("timeout", [0.0, -1.0])
async def test_execute_rejects_a_non_positive_timeout(bus: MessageBus, timeout: float) -> None:
    bus.on_command(Fetch, Flaky())
    with pytest.raises(ValueError, match="timeout must be positive"):
        await bus.execute(Fetch(), timeout=timeout)


@pytest.mark.parametrize("timeout", [0.0, -2.0])
def test_command_policy_rejects_a_non_positive_timeout(timeout: float) -> None:
    with pytest.raises(ValueError, match=r"CommandPolicy\.timeout must be positive"):
        CommandPolicy(timeout=timeout)
