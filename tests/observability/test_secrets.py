"""An API key in a request, a header, a tool argument or an exception message never appears
in a span, an event row, a JSONL line, a log line, the console or an OTLP payload."""

from __future__ import annotations

import io
import logging
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from llmgine import observability
from llmgine._redact import Redactor
from llmgine.bus import Command, Event, MessageBus
from llmgine.observability import REDACTED, llm_span, tool_span

from .test_otlp import Receiver

# Shaped like real keys, so the patterns catch them even when nobody registered them.
OPENAI_KEY = "sk-proj-" + "Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4z"
ANTHROPIC_KEY = "sk-ant-api03-" + "Zy9xWv8uTs7rQp6oNm5lKj4iHg3fEd2c"
GOOGLE_KEY = "AIza" + "SyD4f7g8h9j0k1l2m3n4o5p6q7r8s9t0u1v"
# And one with no recognisable shape, known only from the environment.
ENV_ONLY = "plain-looking-but-secret-0193847"
KEYS = (OPENAI_KEY, ANTHROPIC_KEY, GOOGLE_KEY, ENV_ONLY)


class HttpRequestSent(Event):
    url: str
    headers: dict[str, str]


class CallModel(Command[str]):
    prompt: str


def all_text(df: pd.DataFrame) -> str:
    return df.astype(str).to_csv()


def assert_clean(text: str, where: str) -> None:
    for key in KEYS:
        assert key not in text, f"a key leaked into {where}"


async def test_keys_never_reach_any_record(
    bus: MessageBus,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv("ACME_API_KEY", ENV_ONLY)  # set after import: enable() rescans
    receiver = Receiver()
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.url)
    console = io.StringIO()
    jsonl = tmp_path / "trace.jsonl"
    obs = observability.enable(
        bus, jsonl=jsonl, jsonl_events=True, console=console, capture_content=True
    )

    async def call_model(cmd: CallModel) -> str:
        await bus.publish(
            HttpRequestSent(
                url=f"https://generativelanguage.googleapis.com/v1?key={GOOGLE_KEY}",
                headers={"Authorization": f"Bearer {OPENAI_KEY}", "x-api-key": ANTHROPIC_KEY},
            )
        )
        with llm_span(provider="openai", model="gpt-4o-mini") as call:
            call.input([{"role": "user", "content": cmd.prompt}])  # a key pasted in a prompt
            call.response(model="gpt-4o-mini", output=f"your key is {ENV_ONLY}")
        with tool_span("deploy", arguments={"token": ENV_ONLY, "note": OPENAI_KEY}) as tool:
            tool.result({"echo": ANTHROPIC_KEY})
        raise PermissionError(f"401: invalid api key {OPENAI_KEY} ({ENV_ONLY})")

    bus.on_command(CallModel, call_model)
    with caplog.at_level(logging.DEBUG):
        async with bus.session("leaky") as session:
            result = await session.execute(CallModel(prompt=f"use {ANTHROPIC_KEY} please"))
            with pytest.raises(RuntimeError), llm_span(provider="anthropic", model="c"):
                raise RuntimeError(f"bad header x-api-key: {ANTHROPIC_KEY}")
        await bus.drain()
    assert not result.success

    spans = obs.spans_df()
    events = obs.events_df()
    assert len(spans) == 5
    assert len(events) >= 4
    observability.disable()  # flushes the JSONL file and the OTLP exporter
    receiver.close()

    assert_clean(all_text(spans), "spans_df")
    assert_clean(all_text(events), "events_df")
    assert_clean(jsonl.read_text(), "the JSONL file")
    assert_clean(console.getvalue(), "the console")
    assert_clean(caplog.text, "the log")
    assert result.error is not None
    assert_clean(result.error.message + result.error.traceback, "the command's ErrorInfo")
    exported = b"".join(receiver.raw)
    assert receiver.traces, "nothing was exported"
    for key in KEYS:
        assert key.encode() not in exported, "a key leaked into the OTLP payload"

    # Redacted, not dropped: the records are all there, with the secret replaced.
    assert REDACTED in jsonl.read_text()
    assert (events["data.headers.Authorization"] == REDACTED).any()
    llm_input = spans.loc[spans["name"] == "chat gpt-4o-mini", "attributes.gen_ai.input.messages"]
    assert "please" in llm_input.item()
    assert REDACTED in llm_input.item()


def test_the_redactor_handles_common_shapes() -> None:
    r = Redactor(from_env=False)
    cases: dict[str, Any] = {
        "Authorization: Bearer abcdefghijklmnopqrstu": "Authorization: Bearer [REDACTED]",
        '{"x-api-key": "abcd1234efgh"}': '{"x-api-key": "[REDACTED]"}',
        "https://x.test/v1?api_key=abcdef1234&x=1": "https://x.test/v1?api_key=[REDACTED]&x=1",
        "the token is fine": "the token is fine",
        "input_tokens: 123456789": "input_tokens: 123456789",
        "nothing to see": "nothing to see",
    }
    for text, expected in cases.items():
        assert r.text(text) == expected
    assert r.value({"headers": {"Cookie": "a=b", "n": 1}}) == {
        "headers": {"Cookie": REDACTED, "n": 1}
    }
    with pytest.raises(ValueError, match="at least 8"):
        r.add_secret("short")
