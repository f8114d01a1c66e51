"""Regenerates fixtures/openai_v2.otlp.jsonl: traces made by OpenTelemetry's OFFICIAL
OpenAI instrumentation (opentelemetry-instrumentation-openai-v2), not by llmgine.

The real ``openai`` SDK calls a loopback server (tests/llm/scripted_server.py) three
times under one application span: a chat completion that asks for a tool, a streamed
answer, and a call the server refuses with 429. The instrumentation records them on an
OpenTelemetry SDK tracer provider, whose official file exporter
(opentelemetry-exporter-otlp-json-file's ``FileSpanExporter``, the OTLP File Exporter
format the Collector's file exporter also writes) writes the file. No network beyond
127.0.0.1, and the API key is a made-up one the server never checks.

The instrumentation and the file exporter are not llmgine dependencies; install them
beside the project's environment without touching it, then run this from the repo root:

    pip install --no-deps --target /tmp/otel-a opentelemetry-instrumentation-openai-v2==2.4b0 \\
        opentelemetry-util-genai==1.1b0 opentelemetry-instrumentation==0.66b2 wrapt
    pip install --no-deps --target /tmp/otel-b opentelemetry-exporter-otlp-json-file==0.66b1 \\
        opentelemetry-exporter-otlp-json-common==0.66b1 opentelemetry-proto-json==0.66b1
    PYTHONPATH=.:/tmp/otel-a:/tmp/otel-b python -m tests.observability.make_openai_v2_fixture

(Two folders because ``pip --target`` does not merge namespace packages; util-genai 1.2
and later renamed a module this instrumentation release imports.)
"""

from __future__ import annotations

import contextlib
import json
import sys
from pathlib import Path
from typing import Any

from tests.llm.scripted_server import scripted_server

FIXTURE = Path(__file__).parent / "fixtures" / "openai_v2.otlp.jsonl"
MODEL = "gpt-4o-mini"
TOOL: Any = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


def _completion(message: dict[str, Any], finish: str, tokens: tuple[int, int]) -> dict[str, Any]:
    return {
        "id": f"chatcmpl-fixture-{finish}",
        "object": "chat.completion",
        "created": 1764547200,
        "model": "gpt-4o-mini-2024-07-18",
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        "usage": {
            "prompt_tokens": tokens[0],
            "completion_tokens": tokens[1],
            "total_tokens": sum(tokens),
        },
    }


def _stream(text: str) -> list[bytes]:
    base = {"id": "chatcmpl-fixture-stream", "object": "chat.completion.chunk",
            "created": 1764547201, "model": "gpt-4o-mini-2024-07-18"}  # fmt: skip
    chunks: list[dict[str, Any]] = [
        {**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": word}}]}
        for word in text.split(" ")
    ]
    chunks.append({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    usage = {"prompt_tokens": 31, "completion_tokens": 9, "total_tokens": 40}
    chunks.append({**base, "choices": [], "usage": usage})
    events = [f"data: {json.dumps(chunk)}\n\n".encode() for chunk in chunks]
    return [*events, b"data: [DONE]\n\n"]


def generate(path: Path) -> int:
    """Write the fixture to ``path``; returns how many spans it holds."""
    import openai

    # Not llmgine dependencies (see above): installed beside it, untyped for mypy here.
    from opentelemetry.exporter.otlp.json.file.trace_exporter import (  # type: ignore[import-not-found,unused-ignore]
        FileSpanExporter,
    )
    from opentelemetry.instrumentation.openai_v2 import (  # type: ignore[import-not-found,unused-ignore]
        OpenAIInstrumentor,
    )
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    path.unlink(missing_ok=True)
    provider = TracerProvider(resource=Resource.create({"service.name": "weather-app"}))
    exporter = FileSpanExporter(path)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    instrumentor = OpenAIInstrumentor()
    instrumentor.instrument(tracer_provider=provider)
    try:
        with scripted_server() as server:
            arguments = '{"city": "Paris"}'
            function = {"name": "get_weather", "arguments": arguments}
            tool_call = {"id": "call_1", "type": "function", "function": function}
            server.json(
                200,
                _completion(
                    {"role": "assistant", "content": None, "tool_calls": [tool_call]},
                    "tool_calls",
                    (52, 17),
                ),
            )
            server.events(_stream("It is 18 degrees in Paris."))
            server.json(429, {"error": {"message": "Rate limit reached", "type": "requests"}})
            client = openai.OpenAI(
                base_url=server.url + "/v1", api_key="fixture-key-not-real", max_retries=0
            )
            tracer = provider.get_tracer("weather-app")
            with tracer.start_as_current_span("answer weather question"):
                messages: list[Any] = [{"role": "user", "content": "Weather in Paris?"}]
                client.chat.completions.create(
                    model=MODEL,
                    messages=messages,
                    tools=[TOOL],
                    temperature=0.2,
                )
                stream = client.chat.completions.create(
                    model=MODEL,
                    messages=messages,
                    stream=True,
                    stream_options={"include_usage": True},
                )
                for _ in stream:
                    pass
                with contextlib.suppress(openai.RateLimitError):
                    client.chat.completions.create(model=MODEL, messages=messages)
            client.close()
    finally:
        instrumentor.uninstrument()
        provider.shutdown()
    return sum(
        len(scope["spans"])
        for line in path.read_text().splitlines()
        for resource in json.loads(line)["resourceSpans"]
        for scope in resource["scopeSpans"]
    )


if __name__ == "__main__":
    count = generate(Path(sys.argv[1]) if len(sys.argv) > 1 else FIXTURE)
    print(f"wrote {count} spans to {FIXTURE if len(sys.argv) < 2 else sys.argv[1]}")
