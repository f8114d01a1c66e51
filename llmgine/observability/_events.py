"""The in-memory log of bus events that `events_df` reads."""

from __future__ import annotations

import threading
from collections import deque

from llmgine.bus import Event

__all__ = ["DEFAULT_EVENT_CAPACITY", "EventLog"]

DEFAULT_EVENT_CAPACITY = 50_000


class EventLog:
    """A bounded ring of the events a bus delivered, oldest first.

    ``append`` is the hot path (a deque append); when full, the oldest event makes room and
    is counted in ``evicted``, so a view can say how much history it no longer has.
    """

    def __init__(self, capacity: int = DEFAULT_EVENT_CAPACITY) -> None:
        if capacity < 1:
            raise ValueError(f"event log capacity must be at least 1, got {capacity}")
        self.capacity = capacity
        self._events: deque[Event] = deque(maxlen=capacity)
        self._appended = 0
        self._lock = threading.Lock()  # for readers on other threads; append needs none

    def append(self, event: Event) -> None:
        self._events.append(event)
        self._appended += 1

    @property
    def evicted(self) -> int:
        return max(0, self._appended - self.capacity)

    def events(self) -> list[Event]:
        with self._lock:
            # deque iteration is not safe against a concurrent append; copying is atomic.
            return list(self._events.copy())

    def clear(self) -> None:
        with self._lock:
            self._events.clear()
            self._appended = 0

    def __len__(self) -> int:
        return len(self._events)
