"""`MessageBus`: commands with one handler and a result, events with any handlers."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from time import perf_counter_ns
from types import TracebackType
from typing import Any, Literal, TypeVar, overload

from llmgine._redact import redacting_logger
from llmgine.bus._commands import Answer, CommandRunner, RemoteCommands
from llmgine.bus._delivery import (
    _CLEAN,
    _FILTERED,
    CommandMiddleware,
    Delivery,
    EventMiddleware,
    EventNext,
    HandlerFailure,
    MessageFilter,
    cancelled_result,
    handled_by,
    handler_cancelled,
    link_event,
    not_an_event,
)
from llmgine.bus._execution import Attempts
from llmgine.bus._loop import LoopBinding
from llmgine.bus._messages import (
    Command,
    CommandResult,
    ErrorInfo,
    Event,
    EventHandlerFailed,
    message_type_name,
)
from llmgine.bus._observer import BusObserver, Observers
from llmgine.bus._registry import CommandHandler, EventHandler, HandlerRegistry, Subscription
from llmgine.bus._resilience import CircuitBreaker, CommandPolicy
from llmgine.bus._scheduler import ScheduledEvent, Scheduler
from llmgine.bus._session import Session
from llmgine.bus._sessions_remote import SessionBook, SessionSetup
from llmgine.bus._stats import BusStats, LatencyHistogram, bus_stats
from llmgine.bus._transport import BackpressureStrategy, Transport, transport_for
from llmgine.errors import BusStoppedError

__all__ = ["MessageBus"]

log = redacting_logger("llmgine.bus")

E = TypeVar("E", bound=Event)
C = TypeVar("C", bound=Command[Any])
R = TypeVar("R")


class MessageBus:
    """An asyncio message bus. Create as many as you like; each is independent.

    Args:
        queue_capacity: the most events queued for delivery at once (default 10,000).
        backpressure: what a publish does when the queue is full: ``"block"`` (the
            default: wait for room), ``"drop_oldest"`` (count and drop the oldest queued
            event) or ``"reject"`` (raise `BackpressureError`).
        high_watermark / low_watermark: depth at which the queue is marked under pressure,
            and at which that ends (blocked publishers resume); default 80% and 40%.
        workers: tasks delivering queued events; 1 (the default) keeps delivery in
            publish order.
        dead_letter_size: how many commands that failed for good are kept for replay.
        clock: monotonic seconds for circuit breakers (tests pass a fake).
        transport: carry events some other way (e.g. over NATS). The queue options above
            configure the built-in `LocalTransport` only; giving any of them beside a
            ``transport`` is refused with a ``ValueError`` (configure the transport itself).

    Example:
        bus = MessageBus()
        bus.on_event(UserJoined, greet)
        await bus.publish(UserJoined(name="ada"))              # queued, returns at once
        delivery = await bus.publish(UserJoined(name="bo"), wait=True)  # handlers done
        await bus.stop()
    """

    def __init__(
        self,
        *,
        queue_capacity: int | None = None,
        backpressure: BackpressureStrategy | None = None,
        high_watermark: int | None = None,
        low_watermark: int | None = None,
        workers: int | None = None,
        dead_letter_size: int = 1_000,
        clock: Callable[[], float] = time.monotonic,
        transport: Transport | None = None,
    ) -> None:
        self._transport: Transport = transport_for(
            transport,
            queue_capacity=queue_capacity,
            backpressure=backpressure,
            high_watermark=high_watermark,
            low_watermark=low_watermark,
            workers=workers,
        )
        self._registry = HandlerRegistry()
        self._scheduler = Scheduler(self.publish)
        # A transport that carries commands between processes (NATS): what this bus has no
        # handler for goes to a worker; the command types this bus handles, it serves.
        self._remote: RemoteCommands | None = getattr(self._transport, "commands", None)
        # One that carries events between processes also takes those delivered here at
        # once (publish(wait=True): a session's start and end) for the other processes.
        self._echo: Callable[[Event], Awaitable[None]] | None = getattr(
            self._transport, "send_delivered", None
        )
        self._book = SessionBook(self, self._remote, crosses=self._echo is not None)
        # Only a transport across processes gets the book's dispatcher (local stays direct).
        self._transport.bind(self._dispatch if self._echo is None else self._book.deliver)
        self._commands = CommandRunner(
            self._registry,
            self._dispatch,
            self._replay,
            dead_letter_size=dead_letter_size,
            clock=clock,
            remote=None if self._remote is None else self._remote.execute,
        )
        if self._remote is not None:
            self._remote.attach(self._answer, self._commands.runs_at_once)
        self.dead_letters = self._commands.dead_letters
        attach = getattr(self._transport, "attach_dead_letters", None)
        if attach is not None:  # a transport that gives up on events (NATS) files them here
            attach(self.dead_letters)
        self._filters: list[Subscription] = []
        self._event_mw: list[Subscription] = []
        self._observers = Observers()
        self._observed = 0
        self._event_chain: EventNext | None = None
        self._binding = LoopBinding()
        self._stopped = False
        self._published = self._delivered = self._filtered = self._handler_failures = 0
        self._executed = 0
        self._event_latency = LatencyHistogram()

    # -- lifecycle ---------------------------------------------------------------------

    async def start(self) -> None:
        """Start delivering queued events (also happens on the first publish)."""
        self._check_loop()
        self._stopped = False
        await self._transport.start()

    async def drain(self) -> None:
        """Return once every queued event, and every event those caused, was delivered."""
        self._check_loop()
        await self._scheduler.wait_running()
        await self._transport.drain()

    async def stop(self) -> None:
        """Deliver what is queued, cancel scheduled events that have not fired (logged),
        and refuse new messages until `start()`."""
        self._check_loop()
        cancelled = self._scheduler.cancel_all()
        if cancelled:
            log.warning(
                "bus stopped: cancelled %d scheduled event(s) that had not fired", cancelled
            )
        if self._remote is not None:  # take no more remote commands; answer those running
            await self._remote.stop_serving()
        await self.drain()
        self._stopped = True
        await self._transport.stop()

    async def __aenter__(self) -> MessageBus:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    def _refuse_if_stopped(self) -> None:
        if self._stopped:
            raise BusStoppedError("the bus is stopped; call `await bus.start()` to use it again")

    def _check_loop(self) -> None:
        """Bind to the running event loop, or refuse a second one (see `_loop`)."""
        self._binding.check()

    # -- registration ------------------------------------------------------------------

    def on_event(
        self,
        event_type: type[E],
        handler: EventHandler[E],
        *,
        priority: int = 0,
        where: Callable[[E], bool] | None = None,
    ) -> Subscription:
        """Call ``handler`` for every event of ``event_type`` or a subclass, in any session.

        Higher ``priority`` runs first; ``where`` skips events it returns False for.
        """
        return self._registry.add_event(
            event_type, handler, priority=priority, where=where, scope=None
        )

    def on_command(self, command_type: type[C], handler: CommandHandler[C]) -> Subscription:
        """Make ``handler`` the one handler of ``command_type`` (and its subclasses).

        Over NATS, this bus also answers other processes' commands of exactly this type
        (see "Commands across processes" in `llmgine.bus`)."""
        return self._add_command(command_type, handler, None)

    def _add_command(
        self, command_type: type[C], handler: CommandHandler[C], scope: str | None
    ) -> Subscription:
        remote = self._remote
        if remote is None:
            return self._registry.add_command(command_type, handler, scope=scope)
        stops: list[Callable[[], None]] = []
        sub = self._registry.add_command(
            command_type, handler, scope=scope, also_on_remove=lambda: stops[0]()
        )
        # Served once registered (a second handler is refused above).
        stops.append(remote.serve(command_type, scope))
        return sub

    def on_session(self, setup: SessionSetup, *, name: str | None = None) -> Subscription:
        """Join each session opened in another process (``name``: only those so named):
        ``setup(session)`` (sync or async) registers its handlers on it; they get the
        session's events, then its `SessionEnded`, and are removed. Never called for a
        session opened on this bus, so never on the in-process queue (see "Sessions across
        processes" in `llmgine.bus`). The bus's observers hear a joined session start
        and end, as its own. ``remove()`` stops joining new sessions."""
        return self._book.on_session(setup, name)

    def add_filter(self, predicate: MessageFilter) -> Subscription:
        """Deliver only events ``predicate`` accepts; the rest are counted as filtered.

        A predicate that raises stops the event and is reported like a handler's failure.
        """
        return self._add_to(self._filters, predicate)

    def add_event_middleware(self, middleware: EventMiddleware) -> Subscription:
        """Wrap the delivery of every event: ``await middleware(event, call_next)``.

        The first added is the outermost. It must return ``call_next``'s `Delivery` (or
        one of its own if it does not call ``call_next``). If it raises, that is reported
        like a handler's failure and the `Delivery` lists it.
        """
        return self._add_to(self._event_mw, middleware)

    def add_command_middleware(self, middleware: CommandMiddleware) -> Subscription:
        """Wrap every command execution (retries included): ``await middleware(cmd, next)``
        returns the handler's value or raises."""
        return self._add_to(self._commands.middleware, middleware)

    def add_observer(self, observer: BusObserver) -> Subscription:
        """Let ``observer`` watch every event and command (see `BusObserver`); observers
        are not handlers and are not counted as deliveries."""
        return self._observers.add(observer)

    def _add_to(self, items: list[Subscription], fn: Callable[..., Any]) -> Subscription:
        if not callable(fn):
            raise TypeError(f"expected a callable, got {fn!r}")

        def remove(sub: Subscription) -> None:
            if sub in items:
                items.remove(sub)
                self._rebuild_event_chain()

        sub = Subscription(fn, on_remove=remove)
        items.append(sub)
        self._rebuild_event_chain()
        return sub

    def _rebuild_event_chain(self) -> None:
        chain: EventNext | None = None
        if self._event_mw:
            chain = self._call_handlers
            for mw in reversed(self._event_mw):
                chain = link_event(mw, chain, self._pipeline_failed)
        self._event_chain = chain

    async def _pipeline_failed(
        self, event: Event, kind: str, name: str, error: Exception, inner: Delivery | None
    ) -> Delivery:
        """A filter or middleware raised: the event is not lost silently. The failure is
        counted, logged, published as `EventHandlerFailed` and returned in the `Delivery`
        (with what the handlers did, if they ran)."""
        failure = HandlerFailure(name, error)
        await self._handlers_failed(event, [failure], kind)
        if inner is None:
            return Delivery(0, (failure,))
        return Delivery(inner.handled, (*inner.failures, failure), inner.filtered)

    def set_policy(self, command_type: type[Command[Any]], policy: CommandPolicy | None) -> None:
        """Set (or with ``None`` clear) the timeout, retry and breaker of a command type and
        its subclasses."""
        self._commands.set_policy(command_type, policy)

    def breaker(self, command_type: type[Command[Any]]) -> CircuitBreaker | None:
        """The circuit breaker of a command type, if its policy has one."""
        commands = self._commands
        return commands.breaker_for(command_type, commands.policy_for(command_type))

    # -- sessions and scheduling -------------------------------------------------------

    def session(self, name: str = "session", *, session_id: str | None = None) -> Session:
        """A new session; use it as ``async with bus.session("name") as session:``."""
        self._check_loop()
        return Session(self, name, session_id)

    @property
    def distributed(self) -> bool:
        """Whether a command this bus has no handler for goes to another process (its
        transport carries commands, as NATS does), instead of failing here."""
        return self._remote is not None

    @property
    def sessions(self) -> list[Session]:
        """The sessions opened on this bus and open now (`joined_sessions` aside)."""
        return list(self._book.open.values())

    @property
    def joined_sessions(self) -> list[Session]:
        """The sessions of other processes this bus joined (see `on_session`), open now."""
        return list(self._book.joined.values())

    def schedule(
        self, event: Event, *, at: datetime | None = None, delay: float | None = None
    ) -> ScheduledEvent:
        """Publish ``event`` at ``at`` (timezone-aware) or after ``delay`` seconds."""
        self._refuse_if_stopped()
        self._check_loop()
        return self._scheduler.schedule(event, at=at, delay=delay)

    # -- events ------------------------------------------------------------------------

    @overload
    async def publish(self, event: Event, *, wait: Literal[False] = False) -> None: ...
    @overload
    async def publish(self, event: Event, *, wait: Literal[True]) -> Delivery: ...
    async def publish(self, event: Event, *, wait: bool = False) -> Delivery | None:
        """Queue ``event`` for its handlers; with ``wait=True``, deliver it now and return
        once its handlers have finished (queued, unrelated events do not hold it up)."""
        if not isinstance(event, Event):
            raise TypeError(not_an_event(event))
        if self._stopped:
            self._refuse_if_stopped()
        if asyncio.get_running_loop() is not self._binding.loop:  # _check_loop, inlined
            self._binding.bind(asyncio.get_running_loop())
        if wait:
            self._published += 1
            if self._echo is None:
                return await self._dispatch(event)
            delivery = await self._dispatch(event)  # here first, then for other processes
            await self._echo(event)
            return delivery
        if not self._transport.try_send(event):
            await self._transport.send(event)  # may raise BackpressureError: not published
        self._published += 1
        return None

    def publish_nowait(self, event: Event) -> None:
        """Queue ``event`` from synchronous code. When the queue is full, ``drop_oldest``
        drops as usual, and ``reject`` and ``block`` raise `BackpressureError` (it cannot
        wait)."""
        if not isinstance(event, Event):
            raise TypeError(not_an_event(event))
        self._refuse_if_stopped()
        self._check_loop()
        self._transport.send_nowait(event)
        self._published += 1

    def _dispatch(self, event: Event) -> Awaitable[Delivery]:
        # A plain function returning the coroutine to await: one frame less per event.
        tap = self._observers.tap
        if tap is not None:
            self._observed += 1
            try:
                tap(event)
            except (Exception, asyncio.CancelledError) as exc:
                self._observers.tap_failed(exc)  # only a single observer's own error
        if self._filters:
            return self._filter_then_dispatch(event)
        if self._event_chain is not None:
            return self._event_chain(event)
        return self._call_handlers(event)

    async def _filter_then_dispatch(self, event: Event) -> Delivery:
        for flt in self._filters:
            try:
                keep = flt.fn(event)
                if keep is True:
                    continue
                if inspect.isawaitable(keep):
                    if inspect.iscoroutine(keep):
                        keep.close()  # never to be awaited: close it rather than warn
                    raise TypeError(
                        f"bus filter {flt.name} returned an awaitable: filters are "
                        "synchronous predicates; check asynchronously in an event "
                        "middleware instead"
                    )
                if keep:
                    continue
            except Exception as exc:
                error: Exception = exc
            except asyncio.CancelledError as exc:
                error = handler_cancelled(exc, f"bus filter {flt.name}")
            else:
                self._filtered += 1
                return _FILTERED
            # Not delivered (a failing filter lets nothing through), and not lost silently.
            return await self._pipeline_failed(event, "bus filter", flt.name, error, None)
        if self._event_chain is not None:
            return await self._event_chain(event)
        return await self._call_handlers(event)

    async def _call_handlers(self, event: Event) -> Delivery:
        started = perf_counter_ns()
        failures: list[HandlerFailure] | None = None
        handled = 0
        done = handled_by.get()  # a redelivery: skip the handlers that already succeeded
        ran = done[1] if done is not None and done[0] is event else None
        for sub in self._registry.events_for(type(event), event.session_id):
            if not sub.active or (ran is not None and sub in ran):
                continue
            try:
                if sub.where is not None and not sub.where(event):
                    continue
                if sub.is_async:
                    await sub.fn(event)
                else:
                    returned = sub.fn(event)
                    if returned is not None and inspect.isawaitable(returned):
                        await returned
            except Exception as exc:
                failures = failures or []
                failures.append(HandlerFailure(sub.name, exc))
            except asyncio.CancelledError as exc:
                error = handler_cancelled(exc, f"event handler {sub.name}")
                failures = failures or []
                failures.append(HandlerFailure(sub.name, error))
            else:
                if ran is not None:
                    ran.add(sub)
            handled += 1
        self._delivered += handled
        self._event_latency.record(perf_counter_ns() - started)
        if failures is None:
            return _CLEAN[handled] if handled < 32 else Delivery(handled)
        await self._handlers_failed(event, failures)
        return Delivery(handled, tuple(failures))

    async def _handlers_failed(
        self, event: Event, failures: list[HandlerFailure], kind: str = "event handler"
    ) -> None:
        self._handler_failures += len(failures)
        for failure in failures:
            log.error(
                "%s %s failed on %s %s",
                kind,
                failure.handler,
                type(event).__name__,
                event.id,
                exc_info=failure.error,
            )
            # Failures of EventHandlerFailed handlers are logged only: no endless chain.
            if not isinstance(event, EventHandlerFailed):
                await self._dispatch(
                    EventHandlerFailed(
                        event_id=event.id,
                        event_type=message_type_name(type(event)),
                        handler=failure.handler,
                        error=ErrorInfo.from_exception(failure.error),
                        session_id=event.session_id,
                    )
                )

    # -- commands ----------------------------------------------------------------------

    async def execute(
        self, command: Command[R], *, timeout: float | None = None
    ) -> CommandResult[R]:
        """Run ``command``'s handler and return its result.

        A missing handler, a handler that raises or times out, or an open circuit breaker
        gives a failed result (``success=False``, ``error`` set, the exception on
        ``.exception``), adds the command to ``dead_letters`` and publishes `CommandFailed`.
        ``timeout`` (seconds per attempt) overrides the command type's policy.
        """
        if not isinstance(command, Command):
            raise TypeError(
                f"execute() takes a Command, got {type(command).__name__}; events go to publish()"
            )
        self._refuse_if_stopped()
        if asyncio.get_running_loop() is not self._binding.loop:  # _check_loop, inlined
            self._binding.bind(asyncio.get_running_loop())
        if timeout is not None and timeout <= 0:
            raise ValueError(f"timeout must be positive seconds, got {timeout}")
        self._executed += 1
        observers = self._observers
        if not observers.all:
            return await self._commands.run(command, timeout)
        tokens = observers.command_started(command)
        result: CommandResult[R] | None = None
        try:
            result = await self._commands.run(command, timeout)
            return result
        finally:
            # Also when cancelled: an observer may hold a span open and a context attached.
            ended = result if result is not None else cancelled_result(command)
            observers.command_ended(command, ended, tokens)

    async def _answer(self, command: Command[Any]) -> Answer:
        """`execute` for a command from another process (`RemoteCommands.attach`): the
        same handler, policy, accounting and failure; while nothing observes the bus, a
        success makes no `CommandResult`, as the reply carries only the value."""
        if self._observers.all:  # they are given the result
            result = await self.execute(command)
            return (True, result.value) if result.success else (False, result)
        self._refuse_if_stopped()
        if asyncio.get_running_loop() is not self._binding.loop:  # _check_loop, inlined
            self._binding.bind(asyncio.get_running_loop())
        self._executed += 1
        return await self._commands.answer(command, None, Attempts(), perf_counter_ns())

    async def _replay(self, message: Command[Any] | Event) -> CommandResult[Any]:
        if isinstance(message, Command):
            return await self.execute(message)
        self._published += 1
        delivery = await self._dispatch(message)  # an event: this bus's handlers, only
        name = message_type_name(type(message))
        if delivery.failures:
            error = delivery.failures[-1].error
            return CommandResult.failure(error, command_id=message.id, command_type=name)
        return CommandResult(command_id=message.id, command_type=name, success=True)

    # -- metrics -----------------------------------------------------------------------

    def stats(self) -> BusStats:
        """A snapshot of counters, queue state, latency percentiles, breakers and DLQ."""
        return bus_stats(self)
