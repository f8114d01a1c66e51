"""`ThreadRun`: a sync tool's call in a worker thread, which may outlive the task awaiting it.

Python cannot stop a thread. When a sync tool runs past its timeout (or its caller is
cancelled) the awaiting task stops waiting, but the thread runs on and the tool's side
effects may still happen. Rather than pretend otherwise, the manager *abandons* the run
with a listener, and the thread calls it when the function finally returns or raises, so
the late finish can be reported (a log line, a `ToolCallLateFinished` event).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

__all__ = ["Listener", "ThreadRun"]

# Called with the exception the function raised (None when it returned): in the worker
# thread when the thread ends after being abandoned, at once when it had already ended.
Listener = Callable[[BaseException | None], None]


class ThreadRun:
    """``fn(*args, **kwargs)`` in a worker thread (`asyncio.to_thread`), observable to the
    end even after nobody awaits it any more."""

    def __init__(self, fn: Callable[..., Any], args: list[Any], kwargs: dict[str, Any]) -> None:
        self._fn = fn
        self._args = args
        self._kwargs = kwargs
        self._lock = threading.Lock()
        self._ended = False
        self._error: BaseException | None = None
        self._listener: Listener | None = None

    async def run(self) -> Any:
        """Run the function in a thread and return what it returned."""
        return await asyncio.to_thread(self._body)

    def _body(self) -> Any:
        error: BaseException | None = None
        try:
            return self._fn(*self._args, **self._kwargs)
        except BaseException as exc:  # recorded for the listener, then raised as it was
            error = exc
            raise
        finally:
            with self._lock:
                self._ended, self._error = True, error
                listener = self._listener
            if listener is not None:
                listener(error)

    def abandon(self, listener: Listener) -> bool:
        """Stop caring about the result, but have ``listener`` told how the run ends.

        Returns True when the thread is still running (the listener will be called from
        it); False when it had already ended, in which case the listener is called now.
        """
        with self._lock:
            if not self._ended:
                self._listener = listener
                return True
            error = self._error
        listener(error)
        return False
