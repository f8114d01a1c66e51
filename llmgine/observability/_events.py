"""The in-memory log of bus events that `events_df` reads."""

from __future__ import annotations

import threading
from collections import deque

from llmgine.bus import Event

__all__ = ["DEFAULT_EVENT_CAPACITY", "EventLog"]

# Events are kept as the objects themselves (no copying on the hot path); the garbage
# collector walks them, which at very high event rates costs more the more are kept
# (see the README's observability benchmark).
DEFAULT_EVENT_CAPACITY = 10_000


class EventLog:
    """A bounded window of the latest events, oldest first.

    ``append`` is the deque's own method, so recording an event costs no Python frame.
    How many fell out of the window is counted by `Observability.events_evicted` (from
    the buses' own counts, which needs nothing per event here).
    """

    def __init__(self, capacity: int = DEFAULT_EVENT_CAPACITY) -> None:
        if capacity < 1:
            raise ValueError(f"event log capacity must be at least 1, got {capacity}")
        self.capacity = capacity
        self._events: deque[Event] = deque(maxlen=capacity)
        self.append = self._events.append
        self._lock = threading.Lock()  # for readers on other threads

    def events(self) -> list[Event]:
        with self._lock:
            # Iterating a deque that the loop appends to can raise; copying is one C call.
            return list(self._events.copy())

    def clear(self) -> None:
        with self._lock:
            self._events.clear()

    def __len__(self) -> int:
        return len(self._events)
