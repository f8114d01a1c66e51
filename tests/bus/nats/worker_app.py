"""A worker's setup for `llmgine worker tests.bus.nats.worker_app:setup` in the tests."""

from __future__ import annotations

import asyncio

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
