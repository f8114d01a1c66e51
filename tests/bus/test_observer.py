"""Observers: they watch every event and command, are not handlers, and cannot break delivery."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from llmgine.bus import (
    BusObserver,
    Command,
    CommandFailed,
    CommandResult,
    Event,
    MessageBus,
    Session,
    SessionEnded,
    SessionStarted,
)


class Note(Event):
    text: str = ""


class Double(Command[int]):
    n: int


class Recorder(BusObserver):
    def __init__(self) -> None:
        self.events: list[Event] = []
        self.commands: list[tuple[str, Any]] = []

    def on_event(self, event: Event) -> None:
        self.events.append(event)

    def on_command_start(self, command: Command[Any]) -> object:
        self.commands.append(("start", command.id))
        return f"token-{command.id}"

    def on_command_end(
        self, command: Command[Any], result: CommandResult[Any], token: object
    ) -> None:
        self.commands.append(("end", (command.id, result.success, token)))


async def test_observer_sees_every_event_but_is_not_a_delivery(bus: MessageBus) -> None:
    rec = Recorder()
    bus.add_observer(rec)
    bus.add_filter(lambda e: not isinstance(e, Note) or e.text != "hidden")
    delivery = await bus.publish(Note(text="now"), wait=True)
    await bus.publish(Note(text="hidden"))
    await bus.drain()
    assert delivery.handled == 0  # the observer is not counted as a handler
    assert [e.text for e in rec.events if isinstance(e, Note)] == ["now", "hidden"]
    assert bus.stats().delivered == 0


async def test_observer_sees_session_lifecycle_in_order(bus: MessageBus) -> None:
    rec = Recorder()
    bus.add_observer(rec)
    async with bus.session("chat") as session:
        await session.publish(Note(text="inside"))
    kinds = [type(e) for e in rec.events]
    assert kinds == [SessionStarted, Note, SessionEnded]
    assert {e.session_id for e in rec.events} == {session.id}


async def test_command_hooks_pair_up_with_the_token_and_the_result(bus: MessageBus) -> None:
    rec = Recorder()
    bus.add_observer(rec)
    bus.on_command(Double, lambda c: c.n * 2)
    ok = Double(n=2)
    missing = Command[int]()  # no handler: a failed result, still observed
    await bus.execute(ok)
    await bus.execute(missing)
    assert rec.commands == [
        ("start", ok.id),
        ("end", (ok.id, True, f"token-{ok.id}")),
        ("start", missing.id),
        ("end", (missing.id, False, f"token-{missing.id}")),
    ]
    assert any(isinstance(e, CommandFailed) for e in rec.events)


async def test_a_cancelled_command_still_ends_its_observation(bus: MessageBus) -> None:
    rec = Recorder()
    bus.add_observer(rec)
    started = asyncio.Event()

    async def forever(cmd: Double) -> int:
        started.set()
        await asyncio.Event().wait()
        return 0

    bus.on_command(Double, forever)
    task = asyncio.create_task(bus.execute(Double(n=1)))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert rec.commands[-1][0] == "end"
    assert rec.commands[-1][1][1] is False


async def test_a_failing_observer_is_logged_counted_and_harmless(
    bus: MessageBus, caplog: pytest.LogCaptureFixture
) -> None:
    class Broken(BusObserver):
        def on_event(self, event: Event) -> None:
            raise RuntimeError("observer bug")

        def on_command_start(self, command: Command[Any]) -> object:
            raise RuntimeError("observer bug")

    seen: list[str] = []
    bus.add_observer(Broken())
    bus.on_event(Note, lambda e: seen.append(e.text))
    bus.on_command(Double, lambda c: c.n * 2)
    with caplog.at_level(logging.ERROR, logger="llmgine.bus"):
        await bus.publish(Note(text="still delivered"), wait=True)
        result = await bus.execute(Double(n=4))
    assert seen == ["still delivered"]
    assert result.value == 8
    assert bus.stats().observer_failures == 2
    assert "observer bug" in caplog.text


async def test_removing_an_observer_stops_it_and_only_it(bus: MessageBus) -> None:
    first, second = Recorder(), Recorder()
    sub = bus.add_observer(first)
    bus.add_observer(second)
    sub.remove()
    await bus.publish(Note(), wait=True)
    assert first.events == []
    assert len(second.events) == 1


def test_add_observer_refuses_what_is_not_an_observer() -> None:
    with pytest.raises(TypeError, match=r"subclass llmgine\.bus\.BusObserver"):
        MessageBus().add_observer(lambda e: None)  # type: ignore[arg-type]


async def test_one_failing_observer_of_several_does_not_starve_the_others(
    bus: MessageBus,
) -> None:
    class Broken(BusObserver):
        def on_event(self, event: Event) -> None:
            raise RuntimeError("observer bug")

    healthy = Recorder()
    bus.add_observer(Broken())
    bus.add_observer(healthy)
    await bus.publish(Note(text="a"), wait=True)
    await bus.publish(Note(text="b"), wait=True)
    assert [e.text for e in healthy.events if isinstance(e, Note)] == ["a", "b"]
    assert bus.stats().observer_failures == 2
    assert bus.stats().observed == 2


async def test_session_hooks_bracket_the_session(bus: MessageBus) -> None:
    calls: list[tuple[str, str, object]] = []

    class Sessions(BusObserver):
        def on_session_start(self, session: Session) -> None:
            calls.append(("start", session.name, session.state))

        def on_session_end(self, session: Session, error: BaseException | None) -> None:
            calls.append(("end", session.name, error))

    bus.add_observer(Sessions())
    async with bus.session("ok"):
        pass
    boom = ValueError("boom")
    with pytest.raises(ValueError, match="boom"):
        async with bus.session("bad"):
            raise boom
    assert calls == [
        ("start", "ok", "open"),
        ("end", "ok", None),
        ("start", "bad", "open"),
        ("end", "bad", boom),
    ]
