"""What the recording tests share: a scripted model behind a recording, fake pacing."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import httpx

from llmgine.llm import LLMResponse, Model, Prompt, ScriptedProvider, StreamItem, get_model
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
    model: Model, prompt: Prompt, **params: Any
) -> tuple[list[StreamItem], LLMResponse]:
    items: list[StreamItem] = []
    async with model.stream(prompt, **params) as stream:
        async for item in stream:
            items.append(item)
    assert stream.response is not None
    return items, stream.response


def openai_model(
    store: RecordingStore | Path,
    mode: str = "read-write",
    *,
    api_key: str = "sk-test-recording-0123456789",
    answer: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
) -> Model:
    """``openai:gpt-4o-mini`` answering from an in-process mock of the Chat Completions
    API (no network): by default "Paris." with 1,000 input and 500 output tokens, so the
    answer has a real cost."""

    def handler(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        message = (answer or _paris)(body)
        return httpx.Response(
            200,
            json={
                "id": f"chatcmpl-{len(body['messages'])}",
                "object": "chat.completion",
                "created": 0,
                "model": "gpt-4o-mini-2024-07-18",
                "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 1000, "completion_tokens": 500, "total_tokens": 1500},
            },
        )

    client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    recording = Cassette(store) if isinstance(store, Path) else store
    return get_model(
        "openai:gpt-4o-mini",
        api_key=api_key,
        http_client=client,
        recording=recording,
        recording_mode=mode,
        retry=False,
    )


def _paris(body: dict[str, Any]) -> dict[str, Any]:
    return {"role": "assistant", "content": "Paris."}
