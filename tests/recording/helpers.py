"""What the recording tests share: a scripted model behind a recording, fake pacing."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

from llmgine.llm import LLMResponse, Model, ScriptedProvider, StreamItem, get_model
from llmgine.recording import Cassette, RecordingStore


def scripted(
    store: RecordingStore | Path, mode: str = "read-write", *answers: Any, **options: Any
) -> Model:
    """A ``test:scripted`` model answering ``answers`` in turn, behind ``store``."""
    recording = Cassette(store) if isinstance(store, Path) else store
    return get_model(
        "test:scripted",
        responses=list(answers),
        recording=recording,
        recording_mode=mode,
        retry=False,
        **options,
    )


def provider(model: Model) -> ScriptedProvider:
    return cast(ScriptedProvider, model.adapter)


async def streamed(
    model: Model, prompt: str, **params: Any
) -> tuple[list[StreamItem], LLMResponse]:
    items: list[StreamItem] = []
    async with model.stream(prompt, **params) as stream:
        async for item in stream:
            items.append(item)
    assert stream.response is not None
    return items, stream.response


class FakeTime:
    """A clock that moves only when `sleep` is awaited, and the sleeps asked for."""

    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
