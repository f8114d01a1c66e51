"""A module-level default bus, for notebooks and scripts that want one without wiring.

It is an ordinary `MessageBus` created on first use; `set_default_bus` swaps in your own.
Nothing else in llmgine reaches for it behind your back: components take a bus argument.
"""

from __future__ import annotations

from llmgine.bus._bus import MessageBus

__all__ = ["default_bus", "set_default_bus"]

_default: MessageBus | None = None


def default_bus() -> MessageBus:
    """The process's default bus, created with default settings on first use."""
    global _default
    if _default is None:
        _default = MessageBus()
    return _default


def set_default_bus(bus: MessageBus | None) -> MessageBus | None:
    """Make ``bus`` the default (``None`` forgets it); returns the previous default."""
    global _default
    previous, _default = _default, bus
    return previous
