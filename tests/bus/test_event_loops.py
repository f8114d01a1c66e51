"""One bus, one running event loop: every entry point refuses a second one alongside it."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from llmgine.bus import Command, Event, MessageBus, SessionStarted
from llmgine.errors import EventLoopMismatchError


class Job(Event):
    n: int = 0


class Do(Command[str]):
    pass


@contextmanager
def bound_to_a_loop_in_another_thread(
    bus: MessageBus, bind: Callable[[MessageBus], Awaitable[Any]]
) -> Iterator[threading.Thread]:
    """Keep a loop running on another thread, with ``bus`` bound to it by ``bind``."""
    started = threading.Event()
    finish = threading.Event()
    failure: list[BaseException] = []

    async def hold() -> None:
        try:
            await bind(bus)
        except BaseException as exc:
            failure.append(exc)
            raise
        finally:
            started.set()
        await asyncio.to_thread(finish.wait)

    thread = threading.Thread(target=asyncio.run, args=(hold(),), name="bus-loop")
    thread.start()
    try:
        assert started.wait(10), "the bus's own loop did not start"
        assert not failure, failure
        yield thread
    finally:
        finish.set()
        thread.join(10)


async def enter_session(bus: MessageBus) -> None:
    await bus.session("second").__aenter__()


async def make_session(bus: MessageBus) -> None:
    bus.session("second")


async def schedule(bus: MessageBus) -> None:
    bus.schedule(Job(), delay=0)


async def publish_nowait(bus: MessageBus) -> None:
    bus.publish_nowait(Job())


ENTRY_POINTS: dict[str, Callable[[MessageBus], Awaitable[Any]]] = {
    "publish(wait=True)": lambda bus: bus.publish(Job(), wait=True),
    "publish": lambda bus: bus.publish(Job()),
    "publish_nowait": publish_nowait,
    "execute": lambda bus: bus.execute(Do()),
    "session": enter_session,
    "session()": make_session,
    "schedule": schedule,
    "start": lambda bus: bus.start(),
    "drain": lambda bus: bus.drain(),
    "stop": lambda bus: bus.stop(),
}
# How the bus first meets its loop: any of these binds it, not only the event queue.
BINDERS: dict[str, Callable[[MessageBus], Awaitable[Any]]] = {
    "publish(wait=True)": lambda bus: bus.publish(Job(), wait=True),
    "execute": lambda bus: bus.execute(Do()),
    "start": lambda bus: bus.start(),
}


@pytest.mark.parametrize("binder", BINDERS)
@pytest.mark.parametrize("entry", ENTRY_POINTS)
def test_a_second_running_loop_is_refused_before_any_handler_runs(entry: str, binder: str) -> None:
    bus = MessageBus()
    ran_on: list[str] = []

    def record(message: object) -> str:
        ran_on.append(threading.current_thread().name)
        return "done"

    bus.on_event(Job, record)
    bus.on_event(SessionStarted, record)
    bus.on_command(Do, record)
    with bound_to_a_loop_in_another_thread(bus, BINDERS[binder]):
        before = list(ran_on)

        async def from_a_second_loop() -> None:
            with pytest.raises(EventLoopMismatchError, match="one bus per event loop"):
                await ENTRY_POINTS[entry](bus)

        asyncio.run(from_a_second_loop())
        assert ran_on == before  # nothing ran on this thread
    assert set(ran_on) <= {"bus-loop"}  # handlers ran only on the bus's own loop
    assert bus.sessions == []  # the refused session was not opened either


def test_when_the_first_loop_is_closed_the_next_one_takes_the_bus() -> None:
    bus = MessageBus()
    bus.on_command(Do, lambda cmd: threading.current_thread().name)
    with bound_to_a_loop_in_another_thread(bus, BINDERS["execute"]):
        pass  # that loop has ended now

    async def here() -> str:
        result = await bus.execute(Do())
        return result.unwrap()

    assert asyncio.run(here()) == threading.current_thread().name


@pytest.mark.parametrize(
    "call",
    [
        lambda bus: bus.publish_nowait(Job()),
        lambda bus: bus.schedule(Job(), delay=0),
        lambda bus: bus.session("s"),
    ],
    ids=["publish_nowait", "schedule", "session"],
)
def test_synchronous_calls_from_a_thread_without_a_loop_are_refused_too(
    call: Callable[[MessageBus], Any],
) -> None:
    bus = MessageBus()
    seen: list[str] = []
    bus.on_event(Job, lambda e: seen.append(threading.current_thread().name))
    # This (the test's) thread runs no loop: it is simply another thread.
    with (
        bound_to_a_loop_in_another_thread(bus, BINDERS["start"]),
        pytest.raises(EventLoopMismatchError, match="another thread"),
    ):
        call(bus)
    assert seen == []


def test_waiting_for_a_scheduled_event_from_another_loop_is_refused() -> None:
    bus = MessageBus()
    handles: list[Any] = []

    async def bind_and_schedule(bus: MessageBus) -> None:
        await bus.start()
        handles.append(bus.schedule(Job(), delay=3600))

    with bound_to_a_loop_in_another_thread(bus, bind_and_schedule):

        async def wait_here() -> None:
            with pytest.raises(EventLoopMismatchError, match="another event loop"):
                await handles[0].wait()

        asyncio.run(wait_here())
