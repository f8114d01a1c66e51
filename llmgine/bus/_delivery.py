"""What delivering one event or running one command yields, and the small helpers around it."""

from __future__ import annotations

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

__all__ = [
    "CommandMiddleware",
    "CommandNext",
    "Delivery",
    "EventMiddleware",
    "EventNext",
    "HandlerFailure",
    "MessageFilter",
    "cancelled_result",
    "invoke",
    "link",
    "not_an_event",
]


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


def link(mw: Callable[[Any, Any], Awaitable[Any]], nxt: Any) -> Any:
    async def step(message: Any) -> Any:
        return await mw(message, nxt)

    return step


async def invoke(sub: Subscription, message: Message) -> Any:
    if sub.is_async:
        return await sub.fn(message)
    value = sub.fn(message)
    if inspect.isawaitable(value):
        return await value
    return value


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
