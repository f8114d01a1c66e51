"""Who handles what: event subscriptions and command handlers, bus- or session-scoped.

Resolution honours subclasses (a handler for ``Event`` sees every event) and is cached per
(message class, session) so the hot path is one dict lookup; any change clears the cache.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from llmgine.bus._messages import Command, Event, Message
from llmgine.errors import HandlerRegistrationError

__all__ = ["CommandHandler", "EventHandler", "HandlerRegistry", "Subscription"]

E = TypeVar("E", bound=Event)
C = TypeVar("C", bound=Command[Any])

EventHandler = Callable[[E], Awaitable[object] | object]
CommandHandler = Callable[[C], Awaitable[Any] | Any]


def _is_async(fn: Callable[..., Any]) -> bool:
    call = getattr(fn, "__call__", None)  # noqa: B004 - also async __call__ objects
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(call)


def handler_name(fn: object) -> str:
    return getattr(fn, "__qualname__", None) or type(fn).__qualname__


class Subscription:
    """A registered handler, middleware or filter. ``remove()`` unregisters it (idempotent)."""

    __slots__ = (
        "_on_remove",
        "active",
        "fn",
        "is_async",
        "message_type",
        "name",
        "order",
        "plain",
        "priority",
        "scope",
        "where",
    )

    def __init__(
        self,
        fn: Callable[..., Any],
        *,
        message_type: type[Message] | None = None,
        priority: int = 0,
        where: Callable[[Any], bool] | None = None,
        scope: str | None = None,
        order: int = 0,
        on_remove: Callable[[Subscription], None] | None = None,
    ) -> None:
        self.fn = fn
        self.is_async = _is_async(fn)
        # A plain function seen to return a plain value (not an awaitable): it runs to its
        # value without waiting (`CommandRunner.runs_at_once`).
        self.plain = False
        self.message_type = message_type
        self.priority = priority
        self.where = where
        self.scope = scope
        self.order = order
        self.name = handler_name(fn)
        self.active = True
        self._on_remove = on_remove

    def remove(self) -> None:
        if self.active:
            self.active = False
            if self._on_remove is not None:
                self._on_remove(self)

    def __repr__(self) -> str:
        target = self.message_type.__name__ if self.message_type else "-"
        state = "active" if self.active else "removed"
        return f"<Subscription {self.name} for {target} scope={self.scope} {state}>"


class HandlerRegistry:
    """Event subscriptions and command handlers, per scope (``None`` = the whole bus)."""

    def __init__(self) -> None:
        self._events: dict[str | None, list[Subscription]] = {}
        self._commands: dict[str | None, dict[type[Message], Subscription]] = {}
        self._bus_cache: dict[type[Message], tuple[Subscription, ...]] = {}
        self._scoped_cache: dict[tuple[type[Message], str], tuple[Subscription, ...]] = {}
        self._command_cache: dict[tuple[type[Message], str | None], Subscription | None] = {}
        self._order = 0

    def _changed(self) -> None:
        self._bus_cache.clear()
        self._scoped_cache.clear()
        self._command_cache.clear()

    def add_event(
        self,
        event_type: type[Event],
        fn: Callable[..., Any],
        *,
        priority: int,
        where: Callable[[Any], bool] | None,
        scope: str | None,
    ) -> Subscription:
        if not (isinstance(event_type, type) and issubclass(event_type, Event)):
            raise HandlerRegistrationError(
                f"on_event() takes an Event subclass, got {event_type!r}; for commands use "
                "on_command()."
            )
        if not callable(fn):
            raise HandlerRegistrationError(f"event handler must be callable, got {fn!r}")
        self._order += 1
        sub = Subscription(
            fn,
            message_type=event_type,
            priority=priority,
            where=where,
            scope=scope,
            order=self._order,
            on_remove=self._remove_event,
        )
        self._events.setdefault(scope, []).append(sub)
        self._changed()
        return sub

    def add_command(
        self,
        command_type: type[Command[Any]],
        fn: Callable[..., Any],
        *,
        scope: str | None,
        also_on_remove: Callable[[], None] | None = None,
    ) -> Subscription:
        if not (isinstance(command_type, type) and issubclass(command_type, Command)):
            raise HandlerRegistrationError(
                f"on_command() takes a Command subclass, got {command_type!r}; for events use "
                "on_event()."
            )
        if not callable(fn):
            raise HandlerRegistrationError(f"command handler must be callable, got {fn!r}")
        handlers = self._commands.setdefault(scope, {})
        existing = handlers.get(command_type)
        if existing is not None:
            where = "this session" if scope else "this bus"
            raise HandlerRegistrationError(
                f"{command_type.__name__} already has a handler in {where} ({existing.name}); "
                "a command has exactly one. Remove it first with subscription.remove()."
            )
        on_remove = self._remove_command
        if also_on_remove is not None:  # e.g. a transport stops serving the type remotely

            def on_remove(sub: Subscription) -> None:
                self._remove_command(sub)
                also_on_remove()

        sub = Subscription(fn, message_type=command_type, scope=scope, on_remove=on_remove)
        handlers[command_type] = sub
        self._changed()
        return sub

    def _remove_event(self, sub: Subscription) -> None:
        subs = self._events.get(sub.scope)
        if subs is not None and sub in subs:
            subs.remove(sub)
            if not subs:
                del self._events[sub.scope]
            self._changed()

    def _remove_command(self, sub: Subscription) -> None:
        handlers = self._commands.get(sub.scope)
        if handlers is not None and handlers.get(sub.message_type) is sub:  # type: ignore[arg-type]
            del handlers[sub.message_type]  # type: ignore[arg-type]
            if not handlers:
                del self._commands[sub.scope]
            self._changed()

    def remove_scope(self, scope: str) -> None:
        """Remove every handler of one session."""
        subs = self._events.pop(scope, [])
        commands = self._commands.pop(scope, {})
        for sub in [*subs, *commands.values()]:
            sub.active = False
        self._changed()

    def events_for(self, cls: type[Message], scope: str | None) -> tuple[Subscription, ...]:
        """Handlers for an event of class ``cls`` in ``scope``, highest priority first."""
        # Only sessions with handlers of their own get cache entries, so the cache stays
        # bounded by the live sessions whatever session ids arrive.
        if scope is None or scope not in self._events:
            cached = self._bus_cache.get(cls)
            if cached is None:
                cached = self._bus_cache[cls] = self._resolve(cls, None)
            return cached
        key = (cls, scope)
        cached = self._scoped_cache.get(key)
        if cached is None:
            cached = self._scoped_cache[key] = self._resolve(cls, scope)
        return cached

    def _resolve(self, cls: type[Message], scope: str | None) -> tuple[Subscription, ...]:
        candidates = list(self._events.get(None, ()))
        if scope is not None:
            candidates += self._events.get(scope, ())
        matching = [s for s in candidates if issubclass(cls, s.message_type)]  # type: ignore[arg-type]
        matching.sort(key=lambda s: (-s.priority, s.order))
        return tuple(matching)

    def command_for(self, cls: type[Message], scope: str | None) -> Subscription | None:
        """The handler for a command: the session's own first, then the bus's; most specific
        class first."""
        if scope is not None and scope not in self._commands:
            scope = None  # bounded cache, as in events_for
        key = (cls, scope)
        try:
            return self._command_cache[key]
        except KeyError:
            pass
        found: Subscription | None = None
        for where in (scope, None) if scope is not None else (None,):
            handlers = self._commands.get(where)
            if handlers:
                found = next((handlers[b] for b in cls.__mro__ if b in handlers), None)
                if found is not None:
                    break
        self._command_cache[key] = found
        return found
