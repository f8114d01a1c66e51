"""A model whose every call burns a fixed amount of CPU, for the distributed sweep benchmark,
and the worker that serves it: ``llmgine worker burn_worker:setup`` (with ``benchmarks/``
on ``PYTHONPATH`` or as the working directory).

``burn:<name>`` answers each request after ``ROUNDS`` chained SHA-256 hashes of its prompt
in a Python loop (about 20 ms of one idle core; the work is counted in hashes, never in
time, so every process does the same work a call); the answer names the prompt and the
digest, so it is the same wherever it is computed.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import ClassVar

from llmgine.bus import MessageBus
from llmgine.llm import (
    LLMRequest,
    LLMResponse,
    Provider,
    StreamItem,
    TextPart,
    Usage,
    register_provider,
    worker,
)
from llmgine.llm._testing import response_items

# Chained hashes a call: about 20 ms of CPU (LLMGINE_BURN_ROUNDS=0: the overhead alone).
ROUNDS = int(os.environ.get("LLMGINE_BURN_ROUNDS", "27000"))


def burn(text: str, rounds: int = ROUNDS) -> str:
    """``rounds`` chained SHA-256 hashes of ``text``: CPU work in the interpreter's loop."""
    digest = text.encode()
    for _ in range(rounds):
        digest = hashlib.sha256(digest).digest()
    return digest.hex()


class BurnProvider(Provider):
    """Answers each call after burning ``rounds`` hashes of its last message."""

    name = "burn"
    offline: ClassVar[bool] = True

    def __init__(self, rounds: int = ROUNDS) -> None:
        self.rounds = rounds

    async def _generate(self, request: LLMRequest, model: str) -> LLMResponse:
        prompt = request.messages[-1].text
        digest = burn(prompt, self.rounds)
        text = f"{prompt} -> {digest[:16]}"
        return LLMResponse(
            parts=[TextPart(text=text)],
            usage=Usage(input_tokens=len(prompt) // 4 + 1, output_tokens=len(text) // 4 + 1),
            provider=self.name,
            model=model,
            cost_usd=0.0,
        )

    async def _stream(self, request: LLMRequest, model: str) -> AsyncIterator[StreamItem]:
        for item in response_items(await self._generate(request, model)):
            yield item


def register() -> None:
    """Make ``burn:<name>`` a model spec in this process."""
    register_provider(
        "burn", BurnProvider, offline=True, replace=True, description="CPU-bound benchmark model"
    )


def setup(bus: MessageBus) -> Callable[[], Awaitable[None]]:
    """The worker: ``burn:`` registered, then llmgine's own `Generate` worker."""
    register()
    return worker(bus)
