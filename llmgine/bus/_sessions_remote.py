"""A bus's sessions: those opened on it, and those of other processes it joined.

Over a transport that carries events between processes (NATS), a session's
`SessionStarted` and `SessionEnded` travel like its other events: ``publish(...,
wait=True)`` delivers them here first, then publishes them for the other consumers. A bus
that called ``on_session(setup)`` *joins* each session opened elsewhere when its
`SessionStarted` arrives: a `Session` with the same id and name (``joined=True``) is
handed to ``setup``, which registers the session's handlers; the session's events reach
them as they arrive; its `SessionEnded` reaches them too, and then they are removed and the
session's command subjects are given up, as when a session ends in this process. The
bus's observers hear of a joined session's start and end as of its own sessions'
(``on_session_start`` / ``on_session_end``), so a traced worker groups the session's
spans under a session span of its own.

``setup`` is a handler of `SessionStarted` (a bus-level one, whose ``where`` admits only
sessions this bus did not open), so it fails, is reported and is retried like any
handler, and the handlers it registers see the session's events from the next one on.
Sessions this bus opened itself are never passed to ``setup``: code that opens a session
registers its handlers directly, and a `SessionStarted` redelivered after its session's
end (its setup had failed) joins nothing. The number of sessions joined at once is bounded (a
process that died never sends its `SessionEnded`): past `MAX_JOINED`, the oldest is left,
with a warning.
"""

from __future__ import annotations

import inspect
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from llmgine._redact import redacting_logger
from llmgine.bus._messages import Event, SessionEnded, SessionStarted
from llmgine.bus._registry import Subscription, handler_name
from llmgine.bus._session import Session
from llmgine.errors import BusError

if TYPE_CHECKING:
    from llmgine.bus._bus import MessageBus
    from llmgine.bus._commands import RemoteCommands
    from llmgine.bus._delivery import Delivery

__all__ = ["MAX_JOINED", "SessionBook", "SessionSetup"]

log = redacting_logger("llmgine.bus")

MAX_JOINED = 10_000
SessionSetup = Callable[[Session], Awaitable[object] | object]


class SessionBook:
    """One bus's open sessions: its own, and those it joined (`on_session`)."""

    def __init__(self, bus: MessageBus, remote: RemoteCommands | None, *, crosses: bool) -> None:
        self._bus = bus
        self._remote = remote
        self.crosses = crosses  # whether this bus's events cross processes at all
        self.open: dict[str, Session] = {}
        self.joined: OrderedDict[str, Session] = OrderedDict()
        # Sessions left lately: a SessionStarted redelivered after its end joins nothing.
        self._left: OrderedDict[str, None] = OrderedDict()

    # -- sessions opened here ----------------------------------------------------------

    def opened(self, session: Session) -> None:
        if session.id in self.open:
            raise BusError(f"a session with id {session.id!r} is already open on this bus")
        self.open[session.id] = session

    async def closed(self, session: Session) -> None:
        self.open.pop(session.id, None)
        self._bus._registry.remove_scope(session.id)
        if self._remote is not None:  # its commands now go to the type's workers
            await self._remote.stop_session(session.id)

    # -- sessions opened elsewhere -----------------------------------------------------

    def on_session(self, setup: SessionSetup, name: str | None) -> Subscription:
        if not callable(setup):
            raise TypeError(f"on_session() takes a function of the session, got {setup!r}")
        if name is not None and not isinstance(name, str):
            raise TypeError(f"on_session(name=) takes a session name, got {name!r}")

        def where(event: SessionStarted) -> bool:
            return self.from_elsewhere(event) and (name is None or event.name == name)

        return self._bus._registry.add_event(
            SessionStarted, _Setup(self, setup), priority=0, where=where, scope=None
        )

    def from_elsewhere(self, event: Event) -> bool:
        """Whether ``event`` belongs to a session this bus did not open."""
        sid = event.session_id
        return self.crosses and sid is not None and sid not in self.open and sid not in self._left

    async def join(self, event: SessionStarted) -> Session:
        """The joined session of ``event`` (the same one for every setup)."""
        sid = event.session_id
        assert sid is not None  # from_elsewhere admits only sessions' events
        session = self.joined.get(sid)
        if session is None:
            session = Session(self._bus, event.name, sid)
            session.state, session.joined = "open", True
            self.joined[sid] = session
            # Observers hear of it as of a session opened here: a tracer opens its span,
            # under the opener's trace context when the event carried one.
            self._bus._observers.notify("on_session_start", session)
            while len(self.joined) > MAX_JOINED:
                oldest = next(iter(self.joined.values()))
                log.warning(
                    "bus joined more than %d sessions at once: leaving the oldest, %r, "
                    "whose SessionEnded never came (its process may have died)",
                    MAX_JOINED,
                    oldest,
                )
                await self.leave(oldest)
        return session

    def deliver(self, event: Event) -> Awaitable[Delivery]:
        """The transport's dispatcher: the bus's, plus leaving a joined session at its end."""
        if self.joined and isinstance(event, SessionEnded):
            session = self.joined.get(event.session_id or "")
            if session is not None:
                return self._end(session, event)
        return self._bus._dispatch(event)

    async def _end(self, session: Session, event: SessionEnded) -> Delivery:
        try:
            return await self._bus._dispatch(event)  # its handlers receive it, then go
        finally:
            await self.leave(session)

    async def leave(self, session: Session) -> None:
        """Remove a joined session's handlers and stop serving its commands."""
        if self.joined.get(session.id) is not session:
            return
        del self.joined[session.id]
        self._left[session.id] = None
        while len(self._left) > MAX_JOINED:
            self._left.popitem(last=False)
        session.state = "closed"
        try:
            self._bus._registry.remove_scope(session.id)
            if self._remote is not None:
                await self._remote.stop_session(session.id)
        finally:
            self._bus._observers.notify("on_session_end", session, None)

    async def settled(self) -> None:
        if self._remote is not None:
            await self._remote.settled()


class _Setup:
    """An `on_session` setup as a `SessionStarted` handler, reported under its own name."""

    def __init__(self, joins: SessionBook, setup: SessionSetup) -> None:
        self._joins = joins
        self._setup = setup
        self.__qualname__ = f"on_session({handler_name(setup)})"

    async def __call__(self, event: SessionStarted) -> None:
        session = await self._joins.join(event)
        returned: Any = self._setup(session)
        if inspect.isawaitable(returned):
            await returned
        # The session's command handlers are served before the next handler runs.
        await self._joins.settled()
