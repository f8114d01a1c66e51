"""A loopback HTTP server that speaks just enough of the OpenAI Chat Completions and
Responses, Anthropic Messages and Gemini generateContent wire formats for the LLM
benchmark: each POST gets a fixed, realistic answer at once (as JSON, or as server-sent
events when the request streams), over keep-alive HTTP/1.1. Run: ``python
loopback_server.py``; it binds 127.0.0.1 on a free port and prints the port on its first
line of output.

Throttled (``--rate N``, with ``--burst B``, default 1): requests beyond N a second are
refused as OpenAI refuses them, with a 429, an OpenAI-shaped ``rate_limit_exceeded``
error, and how long until the next request would be let through in ``retry-after-ms``
(and in whole seconds, rounded up, in ``retry-after``). The budget is one token bucket
for the whole server (every connection and path): it holds at most B requests and fills
at N a second, so at most B + N x t requests are answered in any t seconds. The sweep
benchmark throttles with it. ``GET /stats`` answers ``{"answered": a, "throttled": t}``:
how many requests it answered and refused so far.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import time

OPENAI = json.dumps(
    {
        "id": "chatcmpl-bench",
        "object": "chat.completion",
        "created": 1764547200,
        "model": "gpt-4o-mini-2024-07-18",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "Paris is the capital of France."},
                "finish_reason": "stop",
            }
        ],
        "usage": {
            "prompt_tokens": 24,
            "completion_tokens": 8,
            "total_tokens": 32,
            "prompt_tokens_details": {"cached_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0},
        },
    }
).encode()
ANTHROPIC = json.dumps(
    {
        "id": "msg_bench",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-5-20250929",
        "content": [{"type": "text", "text": "Paris is the capital of France."}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {
            "input_tokens": 24,
            "output_tokens": 8,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
        },
    }
).encode()


TEXT = "Paris is the capital of France."
PIECES = ["Paris", " is", " the", " capital", " of", " France", "."]
RESPONSES = json.dumps(
    {
        "id": "resp_bench",
        "object": "response",
        "created_at": 1764547200,
        "status": "completed",
        "model": "gpt-4o-mini-2024-07-18",
        "output": [
            {
                "type": "message",
                "id": "msg_bench",
                "status": "completed",
                "role": "assistant",
                "content": [{"type": "output_text", "text": TEXT, "annotations": []}],
            }
        ],
        "usage": {
            "input_tokens": 24,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": 8,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": 32,
        },
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": [],
    }
).encode()
GEMINI = json.dumps(
    {
        "candidates": [
            {"content": {"parts": [{"text": TEXT}], "role": "model"}, "finishReason": "STOP"}
        ],
        "usageMetadata": {"promptTokenCount": 24, "candidatesTokenCount": 8, "totalTokenCount": 32},
        "modelVersion": "gemini-2.5-flash",
        "responseId": "gemini-bench",
    }
).encode()


def _sse(events: list[tuple[str | None, dict[str, object]]]) -> bytes:
    out = []
    for name, data in events:
        head = f"event: {name}\n" if name else ""
        out.append(f"{head}data: {json.dumps(data)}\n\n")
    return "".join(out).encode()


def _openai_stream() -> bytes:
    base = {"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 1764547200}
    base["model"] = "gpt-4o-mini-2024-07-18"
    chunks: list[tuple[str | None, dict[str, object]]] = []
    for i, piece in enumerate(PIECES):
        delta = {"role": "assistant", "content": piece} if i == 0 else {"content": piece}
        chunks.append((None, {**base, "choices": [{"index": 0, "delta": delta}]}))
    done = {"index": 0, "delta": {}, "finish_reason": "stop"}
    chunks.append((None, {**base, "choices": [done]}))
    usage = json.loads(OPENAI)["usage"]
    chunks.append((None, {**base, "choices": [], "usage": usage}))
    return _sse(chunks) + b"data: [DONE]\n\n"


def _responses_stream() -> bytes:
    whole = json.loads(RESPONSES)
    started = {**whole, "status": "in_progress", "output": [], "usage": None}
    item = {"type": "message", "id": "msg_bench", "status": "in_progress", "role": "assistant"}
    events: list[tuple[str | None, dict[str, object]]] = [
        ("response.created", {"type": "response.created", "response": started}),
        ("response.in_progress", {"type": "response.in_progress", "response": started}),
        (
            "response.output_item.added",
            {
                "type": "response.output_item.added",
                "output_index": 0,
                "item": {**item, "content": []},
            },
        ),
    ]
    for piece in PIECES:
        delta = {"type": "response.output_text.delta", "item_id": "msg_bench", "output_index": 0}
        events.append(("response.output_text.delta", {**delta, "content_index": 0, "delta": piece}))
    done = whole["output"][0]
    events.append(
        (
            "response.output_item.done",
            {"type": "response.output_item.done", "output_index": 0, "item": done},
        )
    )
    events.append(("response.completed", {"type": "response.completed", "response": whole}))
    return _sse([(name, {**data, "sequence_number": i}) for i, (name, data) in enumerate(events)])


def _anthropic_stream() -> bytes:
    whole = json.loads(ANTHROPIC)
    start = {
        **whole,
        "content": [],
        "stop_reason": None,
        "usage": {**whole["usage"], "output_tokens": 1},
    }
    events: list[tuple[str | None, dict[str, object]]] = [
        ("message_start", {"type": "message_start", "message": start}),
        (
            "content_block_start",
            {
                "type": "content_block_start",
                "index": 0,
                "content_block": {"type": "text", "text": ""},
            },
        ),
    ]
    for piece in PIECES:
        delta = {"type": "text_delta", "text": piece}
        events.append(
            ("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": delta})
        )
    events.append(("content_block_stop", {"type": "content_block_stop", "index": 0}))
    stop = {"stop_reason": "end_turn", "stop_sequence": None}
    events.append(
        ("message_delta", {"type": "message_delta", "delta": stop, "usage": {"output_tokens": 8}})
    )
    events.append(("message_stop", {"type": "message_stop"}))
    return _sse(events)


def _gemini_stream() -> bytes:
    whole = json.loads(GEMINI)
    chunks: list[tuple[str | None, dict[str, object]]] = []
    for i, piece in enumerate(PIECES):
        candidate: dict[str, object] = {"content": {"parts": [{"text": piece}], "role": "model"}}
        if i == len(PIECES) - 1:
            candidate["finishReason"] = "STOP"
        chunk: dict[str, object] = {"candidates": [candidate], "modelVersion": "gemini-2.5-flash"}
        chunk["responseId"] = "gemini-bench"
        if i == len(PIECES) - 1:
            chunk["usageMetadata"] = whole["usageMetadata"]
        chunks.append((None, chunk))
    return _sse(chunks)


STREAMS = {
    "openai": _openai_stream(),
    "responses": _responses_stream(),
    "anthropic": _anthropic_stream(),
    "gemini": _gemini_stream(),
}


def answer(path: str, body: bytes) -> tuple[bytes, bytes]:
    """The content type and body answering a POST to ``path`` with ``body``."""
    if ":streamGenerateContent" in path:
        return b"text/event-stream", STREAMS["gemini"]
    if ":generateContent" in path:
        return b"application/json", GEMINI
    api = "anthropic" if path.startswith("/v1/messages") else "openai"
    if path.endswith("/responses"):
        api = "responses"
    if json.loads(body or b"{}").get("stream"):
        return b"text/event-stream", STREAMS[api]
    return b"application/json", {"anthropic": ANTHROPIC, "responses": RESPONSES}.get(api, OPENAI)


RATE_LIMITED = json.dumps(
    {
        "error": {
            "message": "Rate limit reached for requests (loopback server). Please try again later.",
            "type": "requests",
            "param": None,
            "code": "rate_limit_exceeded",
        }
    }
).encode()


class TokenBucket:
    """At most ``burst`` requests at once, refilled at ``rate`` a second."""

    def __init__(self, rate: float, burst: int = 1) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError(f"a rate is above 0 and a burst at least 1; got {rate}, {burst}")
        self.rate = rate
        self.burst = burst
        self.tokens = float(burst)
        self.filled_at = time.monotonic()

    def take(self) -> float:
        """0 when a request may go now (its token taken), else the seconds until one may."""
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.filled_at) * self.rate)
        self.filled_at = now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / self.rate


class Loopback:
    """The server's state: the throttle (None: answer everything) and its counts."""

    def __init__(self, bucket: TokenBucket | None = None) -> None:
        self.bucket = bucket
        self.answered = 0
        self.throttled = 0

    def respond(self, method: str, path: str, request: bytes) -> bytes:
        """The whole HTTP response to one request."""
        if method == "GET" and path == "/stats":
            stats = {"answered": self.answered, "throttled": self.throttled}
            return _response(b"200 OK", b"application/json", json.dumps(stats).encode())
        wait = self.bucket.take() if self.bucket is not None else 0.0
        if wait > 0:
            self.throttled += 1
            headers = (
                f"retry-after-ms: {math.ceil(wait * 1000)}\r\nretry-after: {math.ceil(wait)}\r\n"
            ).encode()
            return _response(b"429 Too Many Requests", b"application/json", RATE_LIMITED, headers)
        self.answered += 1
        content_type, body = answer(path, request)
        return _response(b"200 OK", content_type, body)

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, path = lines[0].split(" ")[:2]
                length = 0
                for line in lines[1:]:
                    if line.lower().startswith("content-length:"):
                        length = int(line.split(":", 1)[1])
                request = await reader.readexactly(length) if length else b""
                writer.write(self.respond(method, path, request))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


def _response(status: bytes, content_type: bytes, body: bytes, headers: bytes = b"") -> bytes:
    return (
        b"HTTP/1.1 "
        + status
        + b"\r\ncontent-type: "
        + content_type
        + b"\r\n"
        + headers
        + f"content-length: {len(body)}\r\n\r\n".encode()
        + body
    )


async def main(bucket: TokenBucket | None = None) -> None:
    loopback = Loopback(bucket)
    server = await asyncio.start_server(loopback.serve, "127.0.0.1", 0)
    print(server.sockets[0].getsockname()[1], flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="A loopback LLM API server for benchmarks.")
    parser.add_argument(
        "--rate", type=float, help="answer at most this many requests a second; 429 the rest"
    )
    parser.add_argument(
        "--burst", type=int, default=1, help="requests let through at once (default 1)"
    )
    args = parser.parse_args()
    try:
        bucket = TokenBucket(args.rate, args.burst) if args.rate is not None else None
    except ValueError as exc:
        parser.error(str(exc))
    asyncio.run(main(bucket))
