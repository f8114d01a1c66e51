"""A real HTTP server on 127.0.0.1 that answers with what a test scripted.

The providers' own SDKs talk to it over their own HTTP stacks (no test transport), so a
malformed body, a cut stream or an error status reaches llmgine exactly as it would from
a misbehaving server or proxy. Each answer is sent once, in order; every request is kept.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.llm.replay import load


@dataclass
class Answer:
    status: int = 200
    body: bytes = b"{}"
    headers: dict[str, str] = field(default_factory=lambda: {"content-type": "application/json"})
    chunks: Sequence[bytes] | None = None  # sent one by one, then the connection closes


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


class ScriptedServer:
    """Answers requests from a queue of `Answer`s; ``url`` is its address."""

    def __init__(self) -> None:
        self.answers: list[Answer] = []
        self.received: list[Received] = []
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _answer(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                with server._lock:
                    server.received.append(
                        Received(self.command, self.path, dict(self.headers.items()), body)
                    )
                    answer = server.answers.pop(0) if server.answers else None
                if answer is None:
                    answer = Answer(500, b'{"error": {"message": "no answer was scripted"}}')
                self.send_response(answer.status)
                for key, value in answer.headers.items():
                    self.send_header(key, value)
                if answer.chunks is None:
                    self.send_header("content-length", str(len(answer.body)))
                    self.end_headers()
                    self.wfile.write(answer.body)
                    return
                self.send_header("connection", "close")
                self.end_headers()
                for chunk in answer.chunks:
                    self.wfile.write(chunk)
                    self.wfile.flush()
                self.close_connection = True

            do_GET = do_POST = _answer

            def log_message(self, format: str, *args: Any) -> None:
                pass  # quiet: the tests assert on `received`

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        # A short poll interval: shutdown() waits for the serving loop to notice it.
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def answer(self, *answers: Answer) -> None:
        with self._lock:
            self.answers.extend(answers)

    def json(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        self.answer(
            Answer(
                status,
                json.dumps(body).encode(),
                {"content-type": "application/json", **(headers or {})},
            )
        )

    def events(self, events: Sequence[bytes]) -> None:
        """Serve a server-sent event stream, each event as its own write."""
        self.answer(Answer(200, headers={"content-type": "text/event-stream"}, chunks=events))

    def start(self) -> ScriptedServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()


@contextmanager
def scripted_server() -> Iterator[ScriptedServer]:
    server = ScriptedServer().start()
    try:
        yield server
    finally:
        server.stop()


def recorded_events(cassette: str, index: int = 0) -> list[bytes]:
    """The server-sent events of a recorded stream (real traffic), one entry per event."""
    body = load(cassette)[index].body.replace(b"\r\n", b"\n")
    return [event + b"\n\n" for event in body.split(b"\n\n") if event.strip()]
