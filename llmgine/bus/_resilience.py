"""Per-command-type resilience: retry policies, circuit breakers and the dead-letter queue.

Retry uses tenacity: it is asyncio-native, lets us pass the exact backoff we document
(exponential with jitter, capped) and an injectable ``sleep`` so tests never wait for real.
The circuit breaker is a small state machine of our own because it must read an injectable
clock (tests drive its transitions without sleeping) and report its state in `bus.stats()`;
the asyncio breaker libraries on PyPI offer neither.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

from llmgine._redact import redacting_logger
from llmgine.errors import CircuitOpenError, HandlerRegistrationError, NoHandlerError

if TYPE_CHECKING:
    from llmgine.bus._messages import Command, CommandResult, ErrorInfo, Event

__all__ = [
    "BreakerPolicy",
    "BreakerState",
    "CircuitBreaker",
    "CommandPolicy",
    "DeadLetter",
    "DeadLetterQueue",
    "RetryPolicy",
]

log = redacting_logger("llmgine.bus")

BreakerState = Literal["closed", "open", "half_open"]

# Failures that no retry can fix: retrying them only delays the error.
_NEVER_RETRY: tuple[type[BaseException], ...] = (
    NoHandlerError,
    CircuitOpenError,
    HandlerRegistrationError,
)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Retry a failing command with exponential backoff and jitter.

    The n-th retry waits ``min(initial * exp_base**(n-1) + uniform(0, jitter), max_delay)``
    seconds. Only exceptions in ``retry_on`` are retried; a missing handler or an open
    breaker never is.
    """

    attempts: int = 3
    initial: float = 0.1
    max_delay: float = 10.0
    exp_base: float = 2.0
    jitter: float = 0.1
    retry_on: tuple[type[BaseException], ...] = (Exception,)
    sleep: Callable[[float], Awaitable[None]] = field(default=asyncio.sleep, compare=False)

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError(f"RetryPolicy.attempts must be at least 1, got {self.attempts}")
        if self.exp_base < 1:
            raise ValueError(f"RetryPolicy.exp_base must be at least 1, got {self.exp_base}")
        if self.initial < 0 or self.max_delay < 0 or self.jitter < 0:
            raise ValueError("RetryPolicy delays (initial, max_delay, jitter) cannot be negative")

    def delay(self, retry_number: int) -> float:
        """Seconds to wait before retry number ``retry_number`` (1 for the first retry)."""
        try:
            backoff = self.initial * self.exp_base ** (retry_number - 1)
        except OverflowError:
            backoff = self.max_delay
        return min(backoff + random.uniform(0, self.jitter), self.max_delay)

    def should_retry(self, exc: BaseException) -> bool:
        return isinstance(exc, self.retry_on) and not isinstance(exc, _NEVER_RETRY)


@dataclass(frozen=True, slots=True)
class BreakerPolicy:
    """Open after ``failure_threshold`` consecutive failures; try again after ``reset_timeout``.

    While half-open, at most ``half_open_max_calls`` trial calls run at once; as many
    successes as ``success_threshold`` close the circuit, and any failure opens it again.
    """

    failure_threshold: int = 5
    reset_timeout: float = 30.0
    half_open_max_calls: int = 1
    success_threshold: int = 1

    def __post_init__(self) -> None:
        if self.failure_threshold < 1 or self.half_open_max_calls < 1:
            raise ValueError("BreakerPolicy thresholds must be at least 1")
        if self.success_threshold < 1:
            raise ValueError("BreakerPolicy.success_threshold must be at least 1")
        if self.reset_timeout < 0:
            raise ValueError("BreakerPolicy.reset_timeout cannot be negative")


@dataclass(frozen=True, slots=True)
class CommandPolicy:
    """How the bus runs one command type: a timeout per attempt, retries, a breaker."""

    timeout: float | None = None
    retry: RetryPolicy | None = None
    breaker: BreakerPolicy | None = None

    def __post_init__(self) -> None:
        if self.timeout is not None and self.timeout <= 0:
            raise ValueError(f"CommandPolicy.timeout must be positive, got {self.timeout}")


class CircuitBreaker:
    """Closed → (failures) → open → (reset_timeout) → half-open → (success) → closed."""

    def __init__(
        self, name: str, policy: BreakerPolicy, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.name = name
        self.policy = policy
        self._clock = clock
        self._state: BreakerState = "closed"
        self._failures = 0
        self._successes = 0
        self._opened_at = 0.0
        self._trials = 0
        self.transitions: list[tuple[BreakerState, BreakerState]] = []

    @property
    def state(self) -> BreakerState:
        if self._state == "open" and self._clock() - self._opened_at >= self.policy.reset_timeout:
            self._move("half_open")
        return self._state

    def _move(self, new: BreakerState) -> None:
        old, self._state = self._state, new
        if len(self.transitions) < 1000:  # bounded: the last state is what matters
            self.transitions.append((old, new))
        self._failures = self._successes = self._trials = 0
        if new == "open":
            self._opened_at = self._clock()
        log.log(
            logging.WARNING if new == "open" else logging.INFO,
            "circuit breaker for %s: %s -> %s",
            self.name,
            old,
            new,
        )

    def before_call(self) -> None:
        """Raise `CircuitOpenError` if the call may not go ahead; otherwise admit it."""
        state = self.state
        if state == "closed":
            return
        if state == "half_open" and self._trials < self.policy.half_open_max_calls:
            self._trials += 1
            return
        retry_after = max(0.0, self._opened_at + self.policy.reset_timeout - self._clock())
        when = (
            f"It tries again in {retry_after:.1f}s"
            if state == "open"
            else f"Its {self.policy.half_open_max_calls} trial call(s) are still running"
        )
        raise CircuitOpenError(
            f"circuit breaker for {self.name} is {state}: failing fast after "
            f"{self.policy.failure_threshold} consecutive failures. {when}; fix the "
            "handler's dependency or wait.",
            command_type=self.name,
            retry_after=retry_after,
        )

    def on_success(self) -> None:
        if self._state == "half_open":
            self._successes += 1
            if self._successes >= self.policy.success_threshold:
                self._move("closed")
            else:
                self._trials -= 1
        else:
            self._failures = 0

    def on_cancel(self) -> None:
        """A call was cancelled: neither outcome, but a half-open trial slot is freed."""
        if self._state == "half_open" and self._trials > 0:
            self._trials -= 1

    def on_failure(self) -> None:
        if self._state == "half_open":
            self._move("open")
            return
        self._failures += 1
        if self._state == "closed" and self._failures >= self.policy.failure_threshold:
            self._move("open")


@dataclass(slots=True)
class DeadLetter:
    """A command that failed for good, or an event a transport gave up on, with its last
    error and, for events, the ``reason`` in words.

    ``message`` is ``None`` for a message that could not be read (a type this process has
    not imported, corrupt, a newer schema); ``raw`` then holds its bytes, and `replay`
    reads them again (after you import its class, say).
    """

    message: Command[Any] | Event | None
    error: ErrorInfo
    exception: BaseException | None
    attempts: int
    failed_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    replays: int = 0
    reason: str = ""
    raw: bytes | None = None
    message_id: str = ""

    @property
    def id(self) -> str:
        """The message's id (the key of this letter)."""
        return self.message.id if self.message is not None else self.message_id

    @property
    def command(self) -> Command[Any]:
        """The failed command (for a command's letter)."""
        from llmgine.bus._messages import Command

        if not isinstance(self.message, Command):
            raise TypeError(
                f"dead letter {self.id} holds an event, not a command ({self.reason}); "
                "read .message instead"
            )
        return self.message


Replayer = Callable[["Command[Any] | Event"], Awaitable["CommandResult[Any]"]]


class DeadLetterQueue:
    """A bounded store of failed commands, oldest first, keyed by command id.

    When full, the oldest entry is evicted, logged and counted in ``evicted``. A command
    that fails again on replay keeps its one entry (its error and ``replays`` updated).
    """

    def __init__(self, maxlen: int, replayer: Replayer) -> None:
        if maxlen < 1:
            raise ValueError(f"dead-letter queue size must be at least 1, got {maxlen}")
        self.maxlen = maxlen
        self.evicted = 0
        self._entries: OrderedDict[str, DeadLetter] = OrderedDict()
        self._replayer = replayer

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[DeadLetter]:
        return iter(list(self._entries.values()))

    def __contains__(self, command_id: object) -> bool:
        return command_id in self._entries

    def get(self, command_id: str) -> DeadLetter:
        try:
            return self._entries[command_id]
        except KeyError:
            raise KeyError(
                f"no dead letter for command {command_id!r}; list them with "
                "`list(bus.dead_letters)`"
            ) from None

    def add(self, letter: DeadLetter) -> None:
        key = letter.id
        previous = self._entries.pop(key, None)
        if previous is not None:
            letter.replays = previous.replays
        self._entries[key] = letter
        while len(self._entries) > self.maxlen:
            _, old = self._entries.popitem(last=False)
            self.evicted += 1
            log.warning(
                "dead-letter queue full (%d): evicted %s %s (%s); raise "
                "dead_letter_size to keep more",
                self.maxlen,
                "event" if old.reason else "command",
                old.id,
                type(old.message).__name__ if old.message is not None else "unreadable",
            )

    def remove(self, command_id: str) -> DeadLetter:
        letter = self.get(command_id)
        del self._entries[command_id]
        return letter

    def clear(self) -> int:
        """Forget every entry; returns how many there were."""
        n = len(self._entries)
        self._entries.clear()
        return n

    async def replay(self, command_id: str) -> CommandResult[Any]:
        """Execute the command again (or deliver the event again to this bus's handlers);
        on success its entry is removed."""
        from llmgine.bus._json import from_json
        from llmgine.bus._messages import Command, CommandResult, Event

        letter = self.get(command_id)
        letter.replays += 1
        message = letter.message
        if message is None and letter.raw is not None:
            try:
                read = from_json(letter.raw)
                if not isinstance(read, Command | Event):
                    raise TypeError(f"a {type(read).__name__} is neither command nor event")
            except Exception as exc:  # still unreadable: keep the letter, say why
                return CommandResult.failure(exc, command_id=command_id, command_type="unknown")
            message = letter.message = read
        assert message is not None
        result = await self._replayer(message)
        if result.success:
            self._entries.pop(command_id, None)
        return result

    async def replay_all(self) -> list[CommandResult[Any]]:
        """Replay every entry in order, one at a time; returns their results."""
        return [await self.replay(key) for key in list(self._entries)]
