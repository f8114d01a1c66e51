"""What delivering one event or running one command yields, and the small helpers around it."""

from __future__ import annotations

import asyncio
import contextvars
import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from llmgine.bus._messages import (
    Command,
    CommandResult,
    ErrorInfo,
    Event,
    Message,
    message_type_name,
)
from llmgine.bus._registry import Subscription
from llmgine.errors import HandlerCancelledError

__all__ = [
    "CommandMiddleware",
    "CommandNext",
    "Delivery",
    "EventMiddleware",
    "EventNext",
    "HandlerFailure",
    "MessageFilter",
    "cancelled_result",
    "handled_by",
    "handler_cancelled",
    "invoke",
    "link_command",
    "link_event",
    "not_an_event",
]


# Set by a transport that redelivers (NATS) around one delivery of ``event``: the handlers
# in the set handled it in an earlier delivery and are skipped, and each handler that
# succeeds now is added, so a redelivery after a partial failure runs each handler once.
handled_by: contextvars.ContextVar[tuple[Event, set[Subscription]] | None] = contextvars.ContextVar(
    "llmgine_handled_by", default=None
)


@dataclass(frozen=True, slots=True)
class HandlerFailure:
    """One event handler that raised."""

    handler: str
    error: BaseException


@dataclass(frozen=True, slots=True)
class Delivery:
    """What happened to one event: how many handlers ran, which failed, or that a filter
    stopped it."""

    handled: int
    failures: tuple[HandlerFailure, ...] = ()
    filtered: bool = False

    @property
    def ok(self) -> bool:
        return not self.failures and not self.filtered


_CLEAN = tuple(Delivery(n) for n in range(32))  # shared results: no allocation per event
_FILTERED = Delivery(0, filtered=True)

EventNext = Callable[[Event], Awaitable[Delivery]]
EventMiddleware = Callable[[Event, EventNext], Awaitable[Delivery]]
CommandNext = Callable[[Command[Any]], Awaitable[Any]]
CommandMiddleware = Callable[[Command[Any], CommandNext], Awaitable[Any]]
MessageFilter = Callable[[Event], bool]


def handler_cancelled(exc: asyncio.CancelledError, what: str) -> HandlerCancelledError:
    """``exc`` as an ordinary failure of ``what`` (user code), or, if the running task
    really is being cancelled, ``exc`` raised again.

    Code that awaits a task or future something else cancelled gets a `CancelledError`
    although its own task was never cancelled. Let through, it would end the bus's worker
    (or a caller's ``publish``/``execute``) as if the bus had been cancelled. The task's
    ``cancelling()`` count tells the two apart: it counts the cancel requests made of this
    task and not withdrawn (``asyncio.timeout`` and ``TaskGroup`` withdraw their own).
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise exc
    error = HandlerCancelledError(
        f"{what} raised asyncio.CancelledError, but nothing had cancelled it (it was "
        "probably awaiting a task or future that something else cancelled); it is "
        "reported as a failure and the bus carries on. Catch CancelledError there if that "
        "is expected."
    )
    error.__cause__ = exc
    return error


PipelineFailed = Callable[[Event, str, str, Exception, "Delivery | None"], Awaitable[Delivery]]


def link_event(sub: Subscription, nxt: EventNext, failed: PipelineFailed) -> EventNext:
    """One event middleware around ``nxt``. If it raises (a `CancelledError` of its own
    included), ``failed`` reports that, with the `Delivery` of ``nxt`` if it was called."""
    fn = sub.fn

    async def step(event: Event) -> Delivery:
        inner: list[Delivery] = []

        async def call_next(e: Event) -> Delivery:
            delivery = await nxt(e)
            inner.append(delivery)
            return delivery

        try:
            return await fn(event, call_next)  # type: ignore[no-any-return]
        except Exception as exc:
            error: Exception = exc
        except asyncio.CancelledError as exc:
            error = handler_cancelled(exc, f"event middleware {sub.name}")
        return await failed(
            event, "event middleware", sub.name, error, inner[-1] if inner else None
        )

    return step


def link_command(sub: Subscription, nxt: CommandNext) -> CommandNext:
    """One command middleware around ``nxt``; a `CancelledError` it raises on its own
    becomes its failure (see `handler_cancelled`)."""
    fn = sub.fn

    async def step(command: Command[Any]) -> Any:
        try:
            return await fn(command, nxt)
        except asyncio.CancelledError as exc:
            raise handler_cancelled(exc, f"command middleware {sub.name}") from exc

    return step


async def invoke(sub: Subscription, message: Message) -> Any:
    """Run a command handler; a `CancelledError` it raises on its own is its failure."""
    try:
        if sub.is_async:
            return await sub.fn(message)
        value = sub.fn(message)
        if inspect.isawaitable(value):
            # A plain function that returns an awaitable (a lambda around a coroutine):
            # it waits like a coroutine function, and is run as one from now on.
            sub.is_async, sub.plain = True, False
            return await value
        sub.plain = True
        return value
    except asyncio.CancelledError as exc:
        raise handler_cancelled(exc, f"command handler {sub.name}") from exc


def cancelled_result(command: Command[Any]) -> CommandResult[Any]:
    return CommandResult(
        command_id=command.id,
        command_type=message_type_name(type(command)),
        success=False,
        error=ErrorInfo(type="asyncio.CancelledError", message="the command was cancelled"),
        session_id=command.session_id,
    )


def not_an_event(obj: object) -> str:
    if isinstance(obj, Command):
        return f"{type(obj).__name__} is a Command: run it with `await bus.execute(command)`"
    return f"publish() takes an Event, got {type(obj).__name__}"
