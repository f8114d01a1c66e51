"""Sessions: a scope of handlers that lives for one ``async with bus.session(...)`` block."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, TypeVar, overload

from llmgine.bus._messages import (
    Command,
    CommandResult,
    ErrorInfo,
    Event,
    SessionEnded,
    SessionStarted,
)
from llmgine.bus._registry import CommandHandler, EventHandler, Subscription
from llmgine.errors import BusError, SessionClosedError

if TYPE_CHECKING:
    from llmgine.bus._bus import MessageBus
    from llmgine.bus._delivery import Delivery
    from llmgine.bus._scheduler import ScheduledEvent

__all__ = ["Session"]

E = TypeVar("E", bound=Event)
C = TypeVar("C", bound=Command[Any])
R = TypeVar("R")


class Session:
    """Handlers and messages scoped to one unit of work (a conversation, a request, a job).

    Handlers registered on the session receive only messages whose ``session_id`` is this
    session's id, and are removed when the block exits, right after they have received the
    session's `SessionEnded` event. Messages published through the session get its id.
    A session another process opened, joined with `MessageBus.on_session`, is one too
    (``joined`` is True): the same, except that it ends when its `SessionEnded` arrives.

    Example:
        async with bus.session("chat") as session:
            session.on_event(Reply, show)
            await session.publish(Reply(text="hi"))
    """

    def __init__(self, bus: MessageBus, name: str, session_id: str | None = None) -> None:
        self.bus = bus
        self.name = name
        self.id = session_id or uuid.uuid4().hex
        self.state: Literal["new", "open", "closed"] = "new"
        self.joined = False  # opened by another process, joined here (on_session)

    def __repr__(self) -> str:
        joined = " joined" if self.joined else ""
        return f"<Session {self.name!r} id={self.id} {self.state}{joined}>"

    async def __aenter__(self) -> Session:
        if self.state != "new":
            raise BusError(f"session {self.name!r} was already entered; open a new session")
        self.bus._check_loop()
        self.bus._book.opened(self)
        self.state = "open"
        self.bus._observers.notify("on_session_start", self)
        await self.bus.publish(SessionStarted(name=self.name, session_id=self.id), wait=True)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.bus._check_loop()
        try:
            # Everything the session published reaches its handlers before the end event,
            # and the end event reaches them before they are removed.
            await self.bus._transport.flush_session(self.id)
            error = ErrorInfo.from_exception(exc) if exc is not None else None
            ended = SessionEnded(name=self.name, session_id=self.id, error=error)
            await self.bus.publish(ended, wait=True)
        finally:
            self.state = "closed"
            try:
                await self.bus._book.closed(self)
            finally:
                self.bus._observers.notify("on_session_end", self, exc)

    def _check_usable(self) -> None:
        if self.state == "closed":
            raise SessionClosedError(
                f"session {self.name!r} has ended; open a new one with `bus.session(...)`"
            )

    def on_event(
        self,
        event_type: type[E],
        handler: EventHandler[E],
        *,
        priority: int = 0,
        where: Callable[[E], bool] | None = None,
    ) -> Subscription:
        """Handle this session's events of ``event_type`` (and its subclasses)."""
        self._check_usable()
        return self.bus._registry.add_event(
            event_type, handler, priority=priority, where=where, scope=self.id
        )

    def on_command(self, command_type: type[C], handler: CommandHandler[C]) -> Subscription:
        """Handle this session's commands of ``command_type``, ahead of any bus handler.

        Over NATS, it also answers this session's commands from other processes."""
        self._check_usable()
        return self.bus._add_command(command_type, handler, self.id)

    def _stamp(self, message: Event | Command[Any]) -> None:
        if message.session_id is None:
            message.session_id = self.id
        elif message.session_id != self.id:
            raise BusError(
                f"{type(message).__name__} belongs to session {message.session_id!r}, not "
                f"{self.id!r}; publish it through its own session or the bus"
            )

    @overload
    async def publish(self, event: Event, *, wait: Literal[False] = False) -> None: ...
    @overload
    async def publish(self, event: Event, *, wait: Literal[True]) -> Delivery: ...
    async def publish(self, event: Event, *, wait: bool = False) -> Delivery | None:
        """Publish an event in this session (its ``session_id`` is set to this session)."""
        self._check_usable()
        self._stamp(event)
        # Whoever this event prompts finds its commands served.
        await self.bus._book.settled()
        if wait:
            return await self.bus.publish(event, wait=True)
        await self.bus.publish(event)
        return None

    async def execute(
        self, command: Command[R], *, timeout: float | None = None
    ) -> CommandResult[R]:
        """Execute a command in this session."""
        self._check_usable()
        self._stamp(command)
        return await self.bus.execute(command, timeout=timeout)

    def schedule(
        self, event: Event, *, at: datetime | None = None, delay: float | None = None
    ) -> ScheduledEvent:
        """Publish an event in this session later; see `MessageBus.schedule`."""
        self._check_usable()
        self._stamp(event)
        return self.bus.schedule(event, at=at, delay=delay)
