"""A worker's setup for `llmgine worker tests.bus.nats.worker_app:setup` in the tests."""

from __future__ import annotations

import asyncio
import signal

from llmgine.bus import Command, MessageBus


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
