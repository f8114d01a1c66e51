"""The worker of 08-scale-out.ipynb: ``llmgine worker scale_out_worker:setup``.

Each worker process runs `setup` on its own bus over NATS, so it serves `Work`: the
server hands each `Work` command to one of the workers serving it. The worker says it
started (`WorkStarted`), works a while, says it finished (`Worked`), and answers with its
name (``WORKER_NAME``, which the notebook gives each process), so the notebook can count
who did what.
"""

from __future__ import annotations

import asyncio
import os

from llmgine.bus import Command, Event, MessageBus

NAME = os.environ.get("WORKER_NAME", f"worker-{os.getpid()}")


class Work(Command[str]):
    """Work on item ``n`` for ``seconds``; the answer is the worker's name."""

    n: int
    seconds: float = 0.2


class WorkStarted(Event):
    n: int
    worker: str


class Worked(Event):
    n: int
    worker: str


def setup(bus: MessageBus) -> None:
    async def work(command: Work) -> str:
        await bus.publish(WorkStarted(n=command.n, worker=NAME))
        await asyncio.sleep(command.seconds)  # the work itself: a model call, say
        await bus.publish(Worked(n=command.n, worker=NAME))
        return NAME

    bus.on_command(Work, work)
