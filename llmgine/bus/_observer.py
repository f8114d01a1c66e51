"""`BusObserver`: how tracing, logging and live views watch a bus without being handlers.

An observer is not an event handler: it is not counted in a `Delivery` or in
``stats().delivered``, it cannot be filtered away, and it sees every event that reaches
delivery (``wait=True`` ones at publish). Its methods run synchronously on the hot path, so
they must be cheap and must not block: hand anything slow to another thread. ``on_event``
is looked up once, when the observer is added, so it may be any callable (a deque's
``append`` costs no Python frame at all). An observer that raises is logged and counted
(``stats().observer_failures``); delivery goes on.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from llmgine._redact import redacting_logger
from llmgine.bus._delivery import handler_cancelled
from llmgine.bus._registry import Subscription

if TYPE_CHECKING:
    from llmgine.bus._messages import Command, CommandResult, Event
    from llmgine.bus._session import Session

__all__ = ["BusObserver", "Observers"]

log = redacting_logger("llmgine.bus")


class BusObserver:
    """Base class for observers: override what you need; the rest does nothing.

    Example:
        class Count(BusObserver):
            seen = 0
            def on_event(self, event: Event) -> None:
                self.seen += 1

        subscription = bus.add_observer(Count())
    """

    def on_event(self, event: Event) -> None:
        """An event is about to be delivered (after it left the queue, before filters)."""

    def on_session_start(self, session: Session) -> None:
        """A session opened (before its `SessionStarted` event is delivered), or one of
        another process was joined (``session.joined``: as its `SessionStarted` arrives,
        before the `on_session` setup runs)."""

    def on_session_end(self, session: Session, error: BaseException | None) -> None:
        """A session closed (after its `SessionEnded` was delivered and its handlers were
        removed); ``error`` is what its block raised, if anything. A joined session's
        ``error`` is None: its block ran in the process that opened it (its
        `SessionEnded` carries the error)."""

    def on_command_start(self, command: Command[Any]) -> object:
        """A command's execution begins, in the caller's task; the value returned is passed
        to `on_command_end` (e.g. a span and a context token)."""
        return None

    def on_command_end(
        self, command: Command[Any], result: CommandResult[Any], token: object
    ) -> None:
        """A command finished (retries, middleware and failure handling included)."""


class Observers:
    """A bus's observers, each one's failures logged and counted so delivery goes on."""

    def __init__(self) -> None:
        self.all: tuple[BusObserver, ...] = ()
        # What the hot path calls per event when observed: the one observer's on_event
        # itself (looked up once), or a function calling each of several.
        self.tap: Callable[[Event], None] | None = None
        self.failures = 0

    def add(self, observer: BusObserver) -> Subscription:
        if not isinstance(observer, BusObserver):
            raise TypeError(
                f"add_observer() takes a BusObserver, got {type(observer).__name__}; "
                "subclass llmgine.bus.BusObserver"
            )

        def remove(sub: Subscription) -> None:
            self._set(tuple(o for o in self.all if o is not observer))

        self._set((*self.all, observer))
        return Subscription(type(observer), on_remove=remove)

    def _set(self, observers: tuple[BusObserver, ...]) -> None:
        self.all = observers
        if len(observers) == 1:
            self.tap = observers[0].on_event
            return
        taps = tuple((o, o.on_event) for o in observers)

        def tap_all(event: Event) -> None:
            for observer, on_event in taps:
                try:
                    on_event(event)
                except Exception as exc:
                    self.failed(observer, "on_event", exc)
                except asyncio.CancelledError as exc:
                    self.cancelled(observer, "on_event", exc)

        self.tap = tap_all if taps else None

    def tap_failed(self, exc: BaseException) -> None:
        """The single observer's own ``on_event`` raised (several catch their own)."""
        if isinstance(exc, Exception):
            self.failed(self.all[0], "on_event", exc)
        elif isinstance(exc, asyncio.CancelledError):
            self.cancelled(self.all[0], "on_event", exc)

    def notify(self, what: str, *args: Any) -> None:
        for observer in self.all:
            try:
                getattr(observer, what)(*args)
            except Exception as exc:
                self.failed(observer, what, exc)
            except asyncio.CancelledError as exc:
                self.cancelled(observer, what, exc)

    def command_started(self, command: Command[Any]) -> list[tuple[BusObserver, object]]:
        """Tell each observer; returns the tokens of those that took it."""
        tokens: list[tuple[BusObserver, object]] = []
        for observer in self.all:
            try:
                tokens.append((observer, observer.on_command_start(command)))
            except Exception as exc:
                self.failed(observer, "on_command_start", exc)
            except asyncio.CancelledError as exc:
                self.cancelled(observer, "on_command_start", exc)
        return tokens

    def command_ended(
        self,
        command: Command[Any],
        result: CommandResult[Any],
        tokens: list[tuple[BusObserver, object]],
    ) -> None:
        for observer, token in reversed(tokens):
            try:
                observer.on_command_end(command, result, token)
            except Exception as exc:
                self.failed(observer, "on_command_end", exc)
            except asyncio.CancelledError as exc:
                self.cancelled(observer, "on_command_end", exc)

    def failed(self, observer: BusObserver, what: str, exc: Exception) -> None:
        self.failures += 1
        log.error("bus observer %r failed in %s", observer, what, exc_info=exc)

    def cancelled(self, observer: BusObserver, what: str, exc: asyncio.CancelledError) -> None:
        error = handler_cancelled(exc, f"bus observer {observer!r} ({what})")
        self.failed(observer, what, error)
