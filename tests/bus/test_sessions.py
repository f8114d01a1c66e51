"""Sessions: scoped handlers, the end event, removal, and misuse."""

from __future__ import annotations

import asyncio

import pytest

from llmgine.bus import Event, MessageBus, SessionEnded, SessionStarted
from llmgine.errors import BusError, SessionClosedError
from tests.bus.conftest import in_process_only


class Said(Event):
    text: str = ""


async def test_session_handlers_see_only_their_session(bus: MessageBus) -> None:
    seen: dict[str, list[str]] = {"a": [], "b": [], "bus": []}
    async with bus.session("a") as a, bus.session("b") as b:
        a.on_event(Said, lambda e: seen["a"].append(e.text))
        b.on_event(Said, lambda e: seen["b"].append(e.text))
        bus.on_event(Said, lambda e: seen["bus"].append(e.text))
        await a.publish(Said(text="to-a"), wait=True)
        await b.publish(Said(text="to-b"))
        await bus.publish(Said(text="to-bus"), wait=True)
        await bus.drain()
    assert seen["a"] == ["to-a"]
    assert seen["b"] == ["to-b"]
    assert sorted(seen["bus"]) == ["to-a", "to-b", "to-bus"]


async def test_handlers_get_the_end_event_after_queued_events_then_are_gone(
    bus: MessageBus,
) -> None:
    in_process_only(
        bus,
        "a session's queued events overtake an unrelated handler that blocks the worker; "
        "a stream keeps its order, so the end would wait for the blocked handler",
    )
    release = asyncio.Event()
    trail: list[str] = []

    async def busy(e: Event) -> None:
        await release.wait()

    bus.on_event(Said, busy, where=lambda e: e.text == "block")
    await bus.publish(Said(text="block"))  # the worker is busy with unrelated work
    async with bus.session("chat") as session:
        sub = session.on_event(Event, lambda e: trail.append(type(e).__name__))
        for i in range(3):
            await session.publish(Said(text=str(i)))
    # The session ended while its events were still queued behind the blocked worker:
    # they were delivered first, then the end event, then the handlers were removed.
    assert trail == ["Said", "Said", "Said", "SessionEnded"]
    assert not sub.active
    assert bus.stats().active_sessions == 0
    await bus.publish(Said(text="late", session_id=session.id), wait=True)
    assert trail == ["Said", "Said", "Said", "SessionEnded"]
    release.set()


async def test_start_and_end_events_reach_bus_handlers(bus: MessageBus) -> None:
    started: list[SessionStarted] = []
    ended: list[SessionEnded] = []
    bus.on_event(SessionStarted, started.append)
    bus.on_event(SessionEnded, ended.append)
    async with bus.session("job", session_id="fixed-id") as session:
        assert session.id == "fixed-id"
        assert bus.sessions == [session]
    assert [(e.name, e.session_id) for e in started] == [("job", "fixed-id")]
    assert [(e.name, e.error) for e in ended] == [("job", None)]


async def test_an_exception_in_the_block_is_reported_in_the_end_event(bus: MessageBus) -> None:
    ended: list[SessionEnded] = []
    bus.on_event(SessionEnded, ended.append)
    with pytest.raises(KeyError):
        async with bus.session("crashy"):
            raise KeyError("lost")
    assert ended[0].error is not None
    assert ended[0].error.type == "builtins.KeyError"
    assert bus.stats().active_sessions == 0


async def test_a_handler_can_open_and_close_a_session_inside_the_worker(
    bus: MessageBus,
) -> None:
    in_process_only(
        bus,
        "a session ended inside a handler delivers its queued events first; over NATS "
        "they are on the stream behind the event being handled, so arrive after the end",
    )
    trail: list[str] = []

    async def nested(e: Said) -> None:
        async with bus.session("inner") as inner:
            inner.on_event(Said, lambda x: trail.append(x.text))
            await inner.publish(Said(text="queued-inside"))
        trail.append("closed")

    bus.on_event(Said, nested, where=lambda e: e.text == "go")
    await bus.publish(Said(text="go"))
    await bus.drain()
    assert trail == ["queued-inside", "closed"]


async def test_a_closed_session_refuses_work(bus: MessageBus) -> None:
    async with bus.session("s") as session:
        pass
    with pytest.raises(SessionClosedError, match="open a new one"):
        await session.publish(Said())
    with pytest.raises(SessionClosedError):
        session.on_event(Said, print)
    with pytest.raises(BusError, match="already entered"):
        async with session:
            pass
    assert "closed" in repr(session)


async def test_messages_of_another_session_are_refused(bus: MessageBus) -> None:
    async with bus.session("s") as session:
        with pytest.raises(BusError, match="belongs to session"):
            await session.publish(Said(session_id="other"))


async def test_two_open_sessions_cannot_share_an_id(bus: MessageBus) -> None:
    async with bus.session("a", session_id="same"):
        with pytest.raises(BusError, match="already open"):
            async with bus.session("b", session_id="same"):
                pass


async def test_session_scoped_events_of_many_sessions_do_not_grow_the_cache(
    bus: MessageBus,
) -> None:
    seen: list[str] = []
    bus.on_event(Said, lambda e: seen.append(e.text))
    for i in range(200):
        await bus.publish(Said(text=str(i), session_id=f"s{i}"), wait=True)
    assert len(seen) == 200
    assert len(bus._registry._scoped_cache) == 0


async def test_on_session_is_not_called_for_the_bus_own_sessions(bus: MessageBus) -> None:
    called: list[str] = []
    started: list[str] = []
    sub = bus.on_session(lambda s: called.append(s.name))
    bus.on_event(SessionStarted, lambda e: started.append(e.name))
    async with bus.session("mine"):
        pass
    await bus.drain()
    assert started == ["mine"]  # delivered once, here (over NATS its copy is not handled)
    assert called == []  # its code registers its handlers itself
    assert bus.joined_sessions == []
    assert sub.name.startswith("on_session(")


async def test_on_session_refuses_what_is_not_a_setup(bus: MessageBus) -> None:
    with pytest.raises(TypeError, match="function of the session"):
        bus.on_session("setup")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="session name"):
        bus.on_session(print, name=3)  # type: ignore[arg-type]
