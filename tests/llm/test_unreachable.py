"""Each real provider, pointed at a closed port on 127.0.0.1 through its SDK's own HTTP
stack (no test transport), fails with `LLMConnectionError` and keeps the SDK's error."""

from __future__ import annotations

import socket

import pytest

from llmgine.errors import LLMConnectionError
from llmgine.llm import get_model


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # closed again when the block ends


@pytest.mark.parametrize(
    ("spec", "suffix"),
    [
        ("openai:gpt-4o-mini", "/v1"),
        ("anthropic:claude-haiku-4-5", ""),
        ("gemini:gemini-2.5-flash", ""),
    ],
)
async def test_an_unreachable_provider_is_a_connection_error(spec: str, suffix: str) -> None:
    url = f"http://127.0.0.1:{closed_port()}{suffix}"
    model = get_model(spec, api_key="test-key", base_url=url, retry=False)
    with pytest.raises(LLMConnectionError, match="reach") as caught:
        await model.generate("hello")
    assert caught.value.__cause__ is not None
    assert caught.value.provider == spec.split(":")[0]
    await model.aclose()
