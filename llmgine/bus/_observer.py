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

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from llmgine.bus._messages import Command, CommandResult, Event
    from llmgine.bus._session import Session

__all__ = ["BusObserver"]


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
        """A session opened (before its `SessionStarted` event is delivered)."""

    def on_session_end(self, session: Session, error: BaseException | None) -> None:
        """A session closed (after its `SessionEnded` was delivered and its handlers were
        removed); ``error`` is what its block raised, if anything."""

    def on_command_start(self, command: Command[Any]) -> object:
        """A command's execution begins, in the caller's task; the value returned is passed
        to `on_command_end` (e.g. a span and a context token)."""
        return None

    def on_command_end(
        self, command: Command[Any], result: CommandResult[Any], token: object
    ) -> None:
        """A command finished (retries, middleware and failure handling included)."""
