"""Command execution for `MessageBus`: handler lookup, middleware, policies, breakers, DLQ.

`CommandRunner` turns one command into a `CommandResult`: it finds the handler, runs it
through the command middleware and the command type's policy (timeout, retry, breaker),
and on failure records the command in the dead-letter queue and publishes `CommandFailed`
through the dispatcher it was given. The bus in front of it checks arguments, the loop and
observers.

A command with no handler in this process goes to ``remote`` when the transport has one
(NATS: request/reply to a worker), under the same policy: the timeout, retries and breaker
wrap the remote call on the caller's side.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Awaitable, Callable
from time import perf_counter_ns
from typing import Any, Protocol, TypeVar

from llmgine._redact import redacting_logger
from llmgine.bus._delivery import CommandNext, Delivery, handler_cancelled, invoke, link_command
from llmgine.bus._execution import Attempts, run_with_policy
from llmgine.bus._messages import (
    Command,
    CommandFailed,
    CommandResult,
    ErrorInfo,
    Event,
    Message,
    message_type_name,
)
from llmgine.bus._registry import HandlerRegistry, Subscription
from llmgine.bus._resilience import CircuitBreaker, CommandPolicy, DeadLetter, DeadLetterQueue
from llmgine.bus._stats import LatencyHistogram
from llmgine.errors import NoHandlerError, RemoteCommandError

__all__ = ["Answer", "CommandRunner", "RemoteCommands"]

log = redacting_logger("llmgine.bus")

R = TypeVar("R")

RemoteExecute = Callable[[Command[Any]], Awaitable[Any]]
# How a bus answers another process's command: (True, the value), or (False, the failed
# result). A success makes no `CommandResult`: the reply carries only the value.
Answer = tuple[bool, Any]


class RemoteCommands(Protocol):
    """What a transport that carries commands between processes offers, as ``.commands``
    (NATS: `llmgine.bus.nats._commands.CommandRouter`)."""

    def attach(
        self,
        answer: Callable[[Command[Any]], Awaitable[Answer]],
        at_once: Callable[[type[Command[Any]]], bool],
    ) -> None:
        """How this bus runs the commands it answers for others: as its ``execute``
        does, giving the value or the failed result; ``at_once`` tells which run to
        their value without waiting on anything (`CommandRunner.runs_at_once`)."""

    def serve(
        self, command_type: type[Command[Any]], session_id: str | None = None
    ) -> Callable[[], None]:
        """Answer other processes' commands of ``command_type`` (in one session, if
        given); returns what stops it."""

    async def stop_session(self, session_id: str) -> None:
        """Stop answering for one session's handlers (it ended)."""

    async def settled(self) -> None:
        """Wait until the subscriptions being made or removed reached the server."""

    async def stop_serving(self) -> None:
        """Take no more commands from others; let those running finish and reply."""

    async def execute(self, command: Command[Any]) -> Any:
        """Run ``command`` where a handler serves it; its value, or raise."""


_MISSING: Any = object()


class CommandRunner:
    """Runs commands to results; keeps their policies, breakers, middleware and counts."""

    def __init__(
        self,
        registry: HandlerRegistry,
        dispatch: Callable[[Event], Awaitable[Delivery]],
        replay: Callable[[Command[Any] | Event], Awaitable[CommandResult[Any]]],
        *,
        dead_letter_size: int = 1_000,
        clock: Callable[[], float] = time.monotonic,
        remote: RemoteExecute | None = None,
    ) -> None:
        self._registry = registry
        self._remote = remote
        self._dispatch = dispatch
        self._clock = clock
        self.middleware: list[Subscription] = []
        self._policies: dict[type[Message], CommandPolicy] = {}
        self._policy_cache: dict[type[Message], CommandPolicy | None] = {}
        self._breakers: dict[type[Message], CircuitBreaker] = {}
        self.dead_letters = DeadLetterQueue(dead_letter_size, replay)
        self.succeeded = self.failed = 0
        self.latency = LatencyHistogram()

    # -- policies and breakers ---------------------------------------------------------

    def set_policy(self, command_type: type[Command[Any]], policy: CommandPolicy | None) -> None:
        if policy is None:
            self._policies.pop(command_type, None)
        else:
            self._policies[command_type] = policy
        self._policy_cache.clear()
        # A breaker whose policy changed starts afresh; the others keep their state.
        self._breakers = {
            t: b
            for t, b in self._breakers.items()
            if (p := self.policy_for(t)) is not None and p.breaker is b.policy
        }

    def policy_for(self, cls: type[Message]) -> CommandPolicy | None:
        if cls not in self._policy_cache:
            self._policy_cache[cls] = next(
                (self._policies[b] for b in cls.__mro__ if b in self._policies), None
            )
        return self._policy_cache[cls]

    def breaker_for(
        self, cls: type[Message], policy: CommandPolicy | None
    ) -> CircuitBreaker | None:
        if policy is None or policy.breaker is None:
            return None
        breaker = self._breakers.get(cls)
        if breaker is None:
            breaker = self._breakers[cls] = CircuitBreaker(
                cls.__name__, policy.breaker, self._clock
            )
        return breaker

    def breaker_states(self) -> dict[str, str]:
        return {b.name: b.state for b in self._breakers.values()}

    def runs_at_once(self, cls: type[Command[Any]]) -> bool:
        """Whether a command of ``cls`` runs to its value without waiting on anything: its
        handler (outside sessions) is a plain function that has returned a plain value
        (not an awaitable), with no middleware and no policy (a retry would sleep). Such
        a command holds the loop while it runs, so running it in a task of its own would
        only add a loop turn."""
        sub = self._registry.command_for(cls, None)
        return (
            sub is not None and sub.plain and not self.middleware and self.policy_for(cls) is None
        )

    # -- running -----------------------------------------------------------------------

    async def run(self, command: Command[R], timeout: float | None) -> CommandResult[R]:
        """The command's result; a failure of any kind is a failed result, never raised."""
        started = perf_counter_ns()
        attempts = Attempts()
        succeeded, value = await self.answer(command, timeout, attempts, started)
        if not succeeded:
            return value  # type: ignore[no-any-return]  # the failed result
        return CommandResult(
            command_id=command.id,
            command_type=message_type_name(type(command)),
            success=True,
            value=value,
            error=None,
            attempts=attempts.made,
            duration_ms=(perf_counter_ns() - started) / 1e6,
            session_id=command.session_id,
        )

    async def answer(
        self, command: Command[Any], timeout: float | None, attempts: Attempts, started: int
    ) -> Answer:
        """Run ``command`` (``started`` at that `perf_counter_ns`) and count it: (True,
        its value), or (False, its failed result), the failure dead-lettered and published
        as `CommandFailed`."""
        try:
            if self.middleware:
                value = await self._chain(timeout, attempts)(command)
            else:
                value = await self._run_handler(command, timeout, attempts)
        except Exception as exc:
            return False, await self._failed(command, exc, attempts.made, started)
        except asyncio.CancelledError as exc:
            # Handlers and middleware report their own; this is anything else on the way.
            error = handler_cancelled(exc, f"executing {type(command).__name__}")
            return False, await self._failed(command, error, attempts.made, started)
        self.latency.record(perf_counter_ns() - started)
        self.succeeded += 1
        return True, value

    def _chain(self, timeout: float | None, attempts: Attempts) -> CommandNext:
        async def run(cmd: Command[Any]) -> Any:
            return await self._run_handler(cmd, timeout, attempts)

        chain: CommandNext = run
        for mw in reversed(self.middleware):
            chain = link_command(mw, chain)
        return chain

    async def _run_handler(
        self, command: Command[Any], timeout: float | None, attempts: Attempts
    ) -> Any:
        cls = type(command)
        sub = self._registry.command_for(cls, command.session_id)
        remote = self._remote
        call: Callable[[], Awaitable[Any]]
        if sub is not None:
            call = functools.partial(invoke, sub, command)
        elif remote is not None:
            call = functools.partial(remote, command)
        else:
            raise NoHandlerError(
                f"no handler is registered for {cls.__name__}; register one with "
                f"bus.on_command({cls.__name__}, handler) (or on the command's session)"
            )
        policy = self._policy_cache.get(cls, _MISSING)
        if policy is _MISSING:
            policy = self.policy_for(cls)
        if policy is None and timeout is None:
            # No timeout, retry or breaker applies: what run_with_policy would do, without
            # its layers (the common case, and every command would pay for them).
            attempts.made = 1
            return await call()
        breaker = self.breaker_for(cls, policy)
        return await run_with_policy(call, cls.__name__, policy, timeout, breaker, attempts)

    async def _failed(
        self, command: Command[R], exc: Exception, attempts: int, started: int
    ) -> CommandResult[R]:
        elapsed = perf_counter_ns() - started
        self.latency.record(elapsed)
        self.failed += 1
        attempts = max(attempts, 1)  # a missing handler or open breaker is one attempt
        type_name = message_type_name(type(command))
        result: CommandResult[R] = CommandResult.failure(
            exc,
            command_id=command.id,
            command_type=type_name,
            attempts=attempts,
            duration_ms=elapsed / 1e6,
            session_id=command.session_id,
        )
        if isinstance(exc, RemoteCommandError):  # the remote handler's own error, as it was
            result.error = ErrorInfo(
                type=exc.remote_type, message=exc.remote_message, traceback=exc.remote_traceback
            )
        error = result.error
        assert error is not None  # CommandResult.failure always describes the error
        log.warning("command %s %s failed: %s", type(command).__name__, command.id, exc)
        self.dead_letters.add(DeadLetter(command, error, exc, attempts))
        await self._dispatch(
            CommandFailed(
                command_id=command.id,
                command_type=type_name,
                error=error,
                attempts=attempts,
                session_id=command.session_id,
            )
        )
        return result
