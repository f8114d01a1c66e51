"""A worker's setup for `llmgine worker tests.bus.nats.worker_app:setup` in the tests."""

from __future__ import annotations

import asyncio
import signal

from llmgine.bus import Command, Event, MessageBus, Session, SessionEnded


class Slow(Command[str]):
    tag: str
    seconds: float


async def slow(command: Slow) -> str:
    print(f"handling {command.tag}", flush=True)
    await asyncio.sleep(command.seconds)  # the work a stopping worker must finish
    return f"done {command.tag}"


async def setup(bus: MessageBus) -> None:  # async on purpose: the CLI awaits it
    bus.on_command(Slow, slow)


NOT_A_FUNCTION = 42


async def never_ready(bus: MessageBus) -> None:
    """A setup that never returns: the worker never serves (a start that times out)."""
    await asyncio.Event().wait()


async def deaf(bus: MessageBus) -> None:
    """A setup that takes SIGTERM over from the worker and ignores it (a stop that times
    out)."""
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, lambda: None)
    bus.on_command(Slow, slow)


# -- sessions: `llmgine worker tests.bus.nats.worker_app:sessions` -------------------------


class Ask(Command[str]):
    question: str


class Said(Event):
    text: str


class Heard(Event):
    text: str


class Ready(Event):
    pass


class Marker(Event):
    tag: str


def sessions(bus: MessageBus) -> None:
    """Joins every session opened elsewhere: answers its `Ask`, echoes its `Said` back into
    it as `Heard`, says `Ready` once joined and prints its end; prints each `Marker`."""

    async def join(session: Session) -> None:
        session.on_command(Ask, lambda c: f"{session.name} answers {c.question}")

        async def hear(event: Said) -> None:
            await session.publish(Heard(text=event.text))

        session.on_event(Said, hear)
        session.on_event(SessionEnded, lambda e: print(f"ended {e.session_id}", flush=True))
        await session.publish(Ready())

    bus.on_session(join)
    bus.on_event(Marker, lambda e: print(f"marker {e.tag}", flush=True))
