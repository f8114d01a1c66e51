"""`LoopThread`: one asyncio event loop on a background thread, owned by the magics.

The event-loop problem. IPython magics are plain synchronous functions, and where they
run decides what asyncio allows:

- In a Jupyter kernel (ipykernel 7), a cell without top-level ``await`` is run by a
  *synchronous* ``shell.run_cell`` called from inside the kernel's coroutine, on the
  asyncio (tornado) loop of the main thread. That loop is running but blocked by the
  cell, so ``asyncio.run()`` raises ("cannot be called from a running event loop") and
  awaiting anything on that loop would deadlock.
- In IPython in a terminal no loop is running while a cell executes (prompt_toolkit's
  loop has returned), so ``asyncio.run()`` would work there, but a new loop per cell
  would orphan the bus, its sessions and the providers' HTTP clients after each cell.

So the magics keep one event loop of their own on a daemon thread, started when the
extension is loaded and stopped when it is unloaded (or at exit). The bus and every model
call live on it; a cell submits its coroutine with `asyncio.run_coroutine_threadsafe` and
the calling thread *waits on a thread-safe queue* of updates, applying each to the display
itself. Display updates and widget state changes therefore happen on the thread that runs
the cell (ipywidgets is not thread-safe), the cell blocks until the answer is complete,
streams as it arrives, and re-raises the call's exception so the cell fails. An interrupt
(the kernel's stop button) cancels the call on the loop.

This is what ``jupyter_core.utils.run_sync`` does for Jupyter's own async code when a
loop is already running (a runner thread with its own loop). The alternative,
``nest_asyncio``, monkeypatches asyncio to re-enter the kernel's loop; it is archived
(unmaintained), changes asyncio for the whole process, and re-entering would let the
kernel handle other messages in the middle of a cell. IPython 9 has no asynchronous
magics (a magic's return value is never awaited), so a magic cannot simply ``await``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import queue
import threading
import time
from collections.abc import Callable, Coroutine
from typing import Any, Final, TypeVar

__all__ = ["LoopThread"]

T = TypeVar("T")
U = TypeVar("U")

_DONE: Final = object()
# How long one wait on the update queue lasts: short enough that an interrupt is
# noticed promptly everywhere (Windows does not interrupt blocking lock waits).
_IDLE_WAIT = 0.25


class LoopThread:
    """An event loop running forever on one daemon thread until `stop`.

    Example:
        loop = LoopThread()
        loop.start()
        answer = loop.run(model.generate("Hi"))
        loop.stop()
    """

    def __init__(self, name: str = "llmgine-notebook") -> None:
        self.name = name
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    def __repr__(self) -> str:
        return f"<LoopThread {self.name!r} {'running' if self.running else 'stopped'}>"

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def thread(self) -> threading.Thread | None:
        return self._thread

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None or not self.running:
            raise RuntimeError(
                "the llmgine notebook loop is not running; load the extension again with "
                "%reload_ext llmgine"
            )
        return self._loop

    def start(self) -> None:
        """Start the thread and its loop (nothing happens when already running)."""
        if self.running:
            return
        loop = asyncio.new_event_loop()
        ready = threading.Event()

        def main() -> None:
            asyncio.set_event_loop(loop)
            loop.call_soon(ready.set)
            loop.run_forever()

        thread = threading.Thread(target=main, name=self.name, daemon=True)
        thread.start()
        ready.wait()
        self._loop, self._thread = loop, thread

    def submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        """Schedule ``coro`` on the loop; the future is its outcome."""
        try:
            loop = self.loop
            if threading.current_thread() is self._thread:
                raise RuntimeError(
                    "a magic was run from the llmgine loop's own thread (e.g. by an async "
                    "tool); waiting for it there would deadlock. Call the model directly."
                )
        except RuntimeError:
            coro.close()  # never started: close it, or Python warns it was never awaited
            raise
        return asyncio.run_coroutine_threadsafe(coro, loop)

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on the loop and wait for its result (its exception is raised)."""
        return self.stream(lambda _: coro, lambda _: None, lambda: None)

    def stream(
        self,
        make: Callable[[Callable[[U], None]], Coroutine[Any, Any, T]],
        on_update: Callable[[U], None],
        refresh: Callable[[], None],
        *,
        interval: float = 0.1,
    ) -> T:
        """Run ``make(emit)`` on the loop while this thread applies what it emits.

        ``emit`` (thread-safe) queues an update; this thread passes each to ``on_update``
        in order, and calls ``refresh`` at most every ``interval`` seconds after updates
        (``interval=0``: after every update). Returns the coroutine's result or raises
        its exception; an exception here (e.g. KeyboardInterrupt) cancels the coroutine.
        """
        updates: queue.SimpleQueue[Any] = queue.SimpleQueue()
        future = self.submit(make(updates.put))
        future.add_done_callback(lambda _: updates.put(_DONE))
        dirty = False
        next_refresh = 0.0
        try:
            while True:
                wait = _IDLE_WAIT
                if dirty:
                    wait = min(wait, max(0.0, next_refresh - time.monotonic()))
                try:
                    item = updates.get(timeout=wait)
                except queue.Empty:
                    item = None
                else:
                    if item is _DONE:
                        break
                    on_update(item)
                    dirty = True
                now = time.monotonic()
                if dirty and now >= next_refresh:
                    refresh()
                    dirty = False
                    next_refresh = now + interval
            if dirty:
                refresh()
        except BaseException:
            future.cancel()  # the task on the loop is cancelled too
            raise
        return future.result()

    def stop(self, timeout: float = 10.0) -> None:
        """Cancel what still runs, shut down async generators and the default executor
        (where sync tools ran), stop the loop and join the thread."""
        if self._loop is None or self._thread is None:
            return
        loop, thread = self._loop, self._thread
        if thread.is_alive():
            asyncio.run_coroutine_threadsafe(_wind_down(), loop).result(timeout)
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout)
        if thread.is_alive():  # pragma: no cover - a callback blocking the loop for good
            raise RuntimeError(f"the {self.name} thread did not stop within {timeout} s")
        loop.close()
        self._loop = self._thread = None


async def _wind_down() -> None:
    current = asyncio.current_task()
    tasks = [t for t in asyncio.all_tasks() if t is not current]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    loop = asyncio.get_running_loop()
    await loop.shutdown_asyncgens()
    await loop.shutdown_default_executor()
