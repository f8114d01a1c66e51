"""``llmgine worker tests.sweep.traced_worker:setup``: the shipped `llmgine.llm.worker`,
traced, writing its spans to ``$LLMGINE_TEST_SPANS`` (OTLP JSON) when it stops, so a
test can join them to the notebook's (as an OTLP collector would)."""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable

from llmgine import observability
from llmgine.bus import MessageBus
from llmgine.llm import worker


def setup(bus: MessageBus) -> Callable[[], Awaitable[None]]:
    obs = observability.enable(bus)
    close = worker(bus)

    async def closing() -> None:
        await close()
        obs.save(os.environ["LLMGINE_TEST_SPANS"])
        observability.disable()

    return closing
