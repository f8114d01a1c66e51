"""Credentials llmgine is handed are redacted everywhere; spans name the address called.

A key given as ``api_key=`` in no known shape (a vLLM or llama.cpp key, a custom token) is
echoed by a local server in an error and in an answer: it must reach no span, event,
JSONL line, console line, OTLP payload, log line or `ErrorInfo`. Spans carry
``server.address`` and ``server.port`` of the address actually called, which may come
from ``base_url=`` or from the environment (``LLAMACPP_BASE_URL``, ``OPENAI_BASE_URL``, ...).
"""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from llmgine import observability
from llmgine.bus import MessageBus
from llmgine.llm import ChatMessage, Generate, LLMRequest, LLMService, get_model
from llmgine.observability import semconv as sc
from tests.llm.replay import CassetteTransport
from tests.llm.scripted_server import ScriptedServer, scripted_server
from tests.observability.test_otlp import Receiver

# No known key shape: only being handed over can make it known to the redactor.
LOCAL_KEY = "llama-local-7f3a9c2e41"


@pytest.fixture
def server() -> Iterator[ScriptedServer]:
    with scripted_server() as running:
        yield running


@pytest.fixture(autouse=True)
def _quiet_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in (
        sc.CAPTURE_CONTENT_ENV,
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        "LLAMACPP_API_KEY",
        "LLAMACPP_BASE_URL",
        "OLLAMA_BASE_URL",
        "VLLM_BASE_URL",
        "OPENAI_BASE_URL",
        "LLMGINE_MODEL",
    ):
        monkeypatch.delenv(name, raising=False)
    observability.disable()
    yield
    observability.disable()


def completion(text: str) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1,
        "model": "qwen",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12},
    }


@pytest.mark.parametrize("capture", [False, True], ids=["capture-off", "capture-on"])
async def test_a_handed_key_of_no_known_shape_never_reaches_a_record(
    server: ScriptedServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capture: bool,
) -> None:
    receiver = Receiver()
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.url)
    bus = MessageBus()
    await bus.start()
    console = io.StringIO()
    jsonl = tmp_path / "trace.jsonl"
    obs = observability.enable(
        bus, jsonl=jsonl, jsonl_events=True, console=console, capture_content=capture
    )
    model = get_model("llamacpp:qwen", api_key=LOCAL_KEY, base_url=server.url + "/v1")
    LLMService(bus, model).install()
    # The server echoes the key: in a retried 500, in a 401, and in an answer's text.
    echo = f"bad key {LOCAL_KEY} (Bearer {LOCAL_KEY})"
    server.json(500, {"error": {"code": 500, "message": echo, "type": "server_error"}})
    server.json(401, {"error": {"code": 401, "message": echo, "type": "authentication_error"}})
    server.json(200, completion(f"you sent {LOCAL_KEY}"))
    request = LLMRequest(messages=[ChatMessage.user("hello")])
    with caplog.at_level(logging.DEBUG):
        async with bus.session("leaky") as session:
            failed = await session.execute(Generate(request=request))
            answered = await session.execute(Generate(request=request))
        await bus.drain()
    assert not failed.success
    assert answered.success
    assert answered.unwrap().text == f"you sent {LOCAL_KEY}"  # the caller gets the answer
    spans, events = obs.spans_df(), obs.events_df()
    observability.disable()  # flushes the JSONL file and the exporter
    receiver.close()
    await bus.stop()
    await model.aclose()

    places = {
        "spans_df": spans.astype(str).to_csv(),
        "events_df": events.astype(str).to_csv(),
        "the JSONL file": jsonl.read_text(),
        "the console": console.getvalue(),
        "the log": caplog.text,
        "the ErrorInfo": failed.error.message + failed.error.traceback if failed.error else "",
    }
    for where, text in places.items():
        assert text, f"nothing reached {where}: the check would prove nothing"
        assert LOCAL_KEY not in text, f"the handed key leaked into {where}"
    assert receiver.traces, "nothing was exported"
    assert LOCAL_KEY.encode() not in b"".join(receiver.raw), "the key leaked into OTLP"
    assert "retrying" in caplog.text  # the 500 was logged (redacted), then retried
    assert "[REDACTED]" in places["the ErrorInfo"]


def test_a_key_too_short_to_redact_is_said_plainly(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="llmgine"):
        get_model("llamacpp:qwen", api_key="abc", base_url="http://127.0.0.1:9/v1")
    assert "cannot be redacted" in caplog.text
    assert "abc" not in caplog.text


async def spans_of_one_call(spec: str | None, **options: Any) -> dict[str, Any]:
    """The attributes of the GenAI span of one call (``spec`` None: from the environment)."""
    bus = MessageBus()
    obs = observability.enable(bus)
    model = get_model(spec, retry=False, **options)
    reply = await model.generate("hello")
    assert reply.text
    await model.aclose()
    spans = obs.spans_df()
    observability.disable()
    [row] = spans[spans["name"].str.startswith("chat")].to_dict("records")
    prefix = "attributes."
    named = {str(k): v for k, v in row.items()}
    return {k[len(prefix) :]: v for k, v in named.items() if k.startswith(prefix) and v == v}


async def test_spans_name_the_local_server_actually_called(server: ScriptedServer) -> None:
    server.json(200, completion("hi"))
    attributes = await spans_of_one_call("llamacpp:qwen", base_url=server.url + "/v1")
    assert attributes[sc.SERVER_ADDRESS] == "127.0.0.1"
    assert attributes[sc.SERVER_PORT] == server.port


async def test_openai_with_a_local_base_url_is_not_api_openai_com(server: ScriptedServer) -> None:
    server.json(200, completion("hi"))
    attributes = await spans_of_one_call(
        "openai:gpt-4o-mini", api_key="sk-test-local-0123456789", base_url=server.url + "/v1"
    )
    assert (attributes[sc.SERVER_ADDRESS], attributes[sc.SERVER_PORT]) == ("127.0.0.1", server.port)


async def test_openai_by_default_is_api_openai_com_on_443() -> None:
    transport = CassetteTransport.of("openai/chat_plain_text.yaml")
    attributes = await spans_of_one_call(
        "openai:gpt-4o-mini",
        api_key="sk-test-default-0123456789",
        http_client=httpx.AsyncClient(transport=transport),
    )
    assert (attributes[sc.SERVER_ADDRESS], attributes[sc.SERVER_PORT]) == ("api.openai.com", 443)


@pytest.mark.parametrize(
    ("spec", "variable", "suffix"),
    [
        ("llamacpp:qwen", "LLAMACPP_BASE_URL", "/v1"),
        ("ollama:llama3.2", "OLLAMA_BASE_URL", "/v1"),
        ("vllm:qwen", "VLLM_BASE_URL", "/v1"),
        ("openai:gpt-4o-mini", "OPENAI_BASE_URL", "/v1"),
    ],
)
async def test_the_server_address_can_come_from_the_environment(
    server: ScriptedServer,
    monkeypatch: pytest.MonkeyPatch,
    spec: str,
    variable: str,
    suffix: str,
) -> None:
    monkeypatch.setenv(variable, server.url + suffix)
    monkeypatch.setenv("LLMGINE_MODEL", spec)  # no code names the server: configuration
    if spec.startswith("openai:"):
        monkeypatch.setenv("OPENAI_API_KEY", "sk-test-from-env-0123456789")
    server.json(200, completion("from the environment"))
    attributes = await spans_of_one_call(None)
    assert server.received, "the server named by the environment was not called"
    assert server.received[0].path == "/v1/chat/completions"
    assert attributes[sc.SERVER_PORT] == server.port
