"""`SpanCollector`: an OTLP/HTTP trace receiver that feeds an `Observability`'s buffer.

Workers in other processes export their spans over OTLP (``OTEL_EXPORTER_OTLP_ENDPOINT``
set to `url`); the spans join the buffer as finished spans, through the same redaction as
`llmgine.observability.load`, so ``spans_df()``, `TraceView`, the dashboard and span
listeners see one trace across processes as the spans arrive.

It speaks what the OTLP/HTTP specification asks of a receiver, for traces: ``POST
/v1/traces`` with a protobuf (``application/x-protobuf``, what the official exporters send)
or JSON (``application/json``) ``ExportTraceServiceRequest``, gzip- or deflate-compressed
or not; 200 with an empty ``ExportTraceServiceResponse``; 400 with a ``google.rpc.Status``
saying why for a body that is not one; 413 for a body over ``max_body`` bytes (compressed
or not). Metrics and logs (``/v1/metrics``, ``/v1/logs``, which an exporter configured by
the endpoint variable sends too) are answered 200 and dropped, counted in ``ignored``:
this process's own metrics are in ``metrics_df()``.

Why the standard library's ``ThreadingHTTPServer`` on a daemon thread, not an asyncio
server on the notebook's loop: a kernel's loop is busy running cells, and a blocking cell
must not hold back worker spans or make their exporters time out; spans arrive a few times
a second in batches, which a thread per connection serves with no dependency. The buffer
is thread-safe, and its listeners may be called on any thread already.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import zlib
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from google.protobuf.message import DecodeError
from google.rpc.code_pb2 import Code  # type: ignore[import-untyped]
from google.rpc.status_pb2 import Status  # type: ignore[import-untyped]
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from llmgine._redact import Redactor, redacting_logger
from llmgine.errors import ObservabilityError
from llmgine.observability._buffer import SpanBuffer
from llmgine.observability._otlp_file import json_request, request_records

__all__ = ["DEFAULT_MAX_BODY", "SpanCollector"]

log = redacting_logger("llmgine.observability")

# The OpenTelemetry Collector's default limit for a request body; the SDKs' batches (512
# spans by default) are far smaller.
DEFAULT_MAX_BODY = 20 * 1024 * 1024
TRACES_PATH = "/v1/traces"
DROPPED_PATHS = frozenset({"/v1/metrics", "/v1/logs"})
PROTOBUF, JSON = "application/x-protobuf", "application/json"


class _BadRequest(Exception):
    def __init__(self, status: HTTPStatus, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class SpanCollector:
    """An OTLP/HTTP trace receiver on ``host:port`` (0: a free port) adding what arrives
    to ``buffer``, redacted. Made by `Observability.collect`; `close()` stops it.

    Attributes:
        url: the endpoint to give exporters (``OTEL_EXPORTER_OTLP_ENDPOINT``).
        spans: spans received; ``requests`` and ``rejected`` count requests, ``ignored``
            the metrics and logs requests answered and dropped.
    """

    def __init__(
        self,
        buffer: SpanBuffer,
        redactor: Redactor,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        max_body: int = DEFAULT_MAX_BODY,
    ) -> None:
        if max_body < 1:
            raise ValueError(f"max_body must be at least 1 byte, got {max_body}")
        self.buffer, self.redactor, self.max_body = buffer, redactor, max_body
        self.asked_host = host
        self.spans = self.requests = self.rejected = self.ignored = 0
        self._count_lock = threading.Lock()
        self._connections: set[socket.socket] = set()
        server_class = _Server6 if ":" in host else ThreadingHTTPServer
        try:
            self._server = server_class((host, port), _handler_for(self))
        except OSError as exc:
            raise ObservabilityError(
                f"cannot collect spans on {host}:{port} ({exc.strerror or exc}): pick "
                "another port, or port=0 for a free one"
            ) from exc
        address = self._server.server_address
        self.host, self.port = str(address[0]), int(address[1])
        shown = f"[{self.host}]" if ":" in self.host else self.host
        self.url = f"http://{shown}:{self.port}"
        self.closed = False
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.1},  # how soon close() is heard
            name=f"llmgine-span-collector-{self.port}",
            daemon=True,  # a forgotten collector must not keep the interpreter alive
        )
        self._thread.start()

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return f"<SpanCollector {self.url} {state}: {self.spans} spans>"

    def _receive(self, body: bytes, content_type: str) -> None:
        """Add the spans of one request body (decompressed) to the buffer. Raises
        `_BadRequest` for a body that is not a request."""
        if content_type == JSON:
            try:
                request = json_request(body, "the request body")
            except ObservabilityError as exc:
                raise _BadRequest(HTTPStatus.BAD_REQUEST, str(exc)) from None
        else:
            request = ExportTraceServiceRequest()
            try:
                request.ParseFromString(body)
            except DecodeError as exc:
                raise _BadRequest(
                    HTTPStatus.BAD_REQUEST,
                    f"the body is not a protobuf ExportTraceServiceRequest ({exc}); "
                    "send OTLP/HTTP traces as the OpenTelemetry exporters do",
                ) from None
        records = request_records(request, self.redactor, service=True)
        self.buffer.add(records)
        with self._count_lock:
            self.spans += len(records)
            self.requests += 1

    def _count(self, name: str) -> None:
        with self._count_lock:
            setattr(self, name, getattr(self, name) + 1)

    def _track(self, connection: socket.socket, open_: bool) -> None:
        with self._count_lock:
            if open_:
                self._connections.add(connection)
            else:
                self._connections.discard(connection)

    def close(self) -> None:
        """Stop serving: close the listening socket and every open connection, and wait
        for the server's thread to end."""
        if self.closed:
            return
        self.closed = True
        self._server.shutdown()
        self._server.server_close()
        with self._count_lock:
            connections = list(self._connections)
        for connection in connections:  # kept alive by exporters between batches
            with contextlib.suppress(OSError):  # already closed by the other side
                connection.shutdown(socket.SHUT_RDWR)
        self._thread.join()


class _Server6(ThreadingHTTPServer):
    address_family = socket.AF_INET6


def _decompress(body: bytes, encoding: str, limit: int) -> bytes:
    if encoding in ("", "identity"):
        return body
    if encoding not in ("gzip", "deflate"):
        raise _BadRequest(
            HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
            f"Content-Encoding {encoding!r} is not read; send gzip, deflate or none",
        )
    # wbits: 16 + 15 for gzip's header, 15 for zlib's (what the Python exporter's
    # "deflate" sends); a limit on the output stops a small body that inflates to gigabytes.
    inflater = zlib.decompressobj(31 if encoding == "gzip" else 15)
    try:
        plain = inflater.decompress(body, limit + 1)
    except zlib.error as exc:
        raise _BadRequest(
            HTTPStatus.BAD_REQUEST, f"the body is not valid {encoding} ({exc})"
        ) from None
    if len(plain) <= limit and not inflater.eof:
        raise _BadRequest(
            HTTPStatus.BAD_REQUEST, f"the body is not valid {encoding} (it ends too soon)"
        )
    if len(plain) > limit:
        raise _BadRequest(
            HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
            f"the body inflates to more than {limit} bytes; export smaller batches "
            "(OTEL_BSP_MAX_EXPORT_BATCH_SIZE)",
        )
    return plain


def _handler_for(collector: SpanCollector) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive: exporters reuse one connection
        server_version = "llmgine-span-collector"

        def setup(self) -> None:
            super().setup()
            collector._track(self.connection, True)

        def finish(self) -> None:
            collector._track(self.connection, False)
            super().finish()

        def do_POST(self) -> None:
            path = self.path.partition("?")[0]
            content_type = self.headers.get("Content-Type", "").partition(";")[0].strip()
            try:
                if path in DROPPED_PATHS:
                    self._read_body()
                    collector._count("ignored")
                    self._answer(HTTPStatus.OK, content_type, b"", b"{}")
                    return
                if path != TRACES_PATH:
                    self.close_connection = True  # the body is left unread
                    raise _BadRequest(
                        HTTPStatus.NOT_FOUND,
                        f"no {path}: this collector receives traces at POST {TRACES_PATH}",
                    )
                body = self._read_body()
                if content_type not in (PROTOBUF, JSON):
                    raise _BadRequest(
                        HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
                        f"Content-Type {content_type or 'missing'!r}: send {PROTOBUF} or {JSON}",
                    )
                encoding = self.headers.get("Content-Encoding", "").strip().lower()
                plain = _decompress(body, encoding, collector.max_body)
                collector._receive(plain, content_type)
            except _BadRequest as bad:
                collector._count("rejected")
                self._refuse(bad, content_type)
                return
            except Exception:  # a bug here must cost one request, never the receiver
                log.exception("the span collector failed on a request to %s", path)
                collector._count("rejected")
                reason = "the collector failed on this request; its process's log says why"
                self._refuse(_BadRequest(HTTPStatus.INTERNAL_SERVER_ERROR, reason), "")
                return
            response = ExportTraceServiceResponse()
            self._answer(HTTPStatus.OK, content_type, response.SerializeToString(), b"{}")

        def _read_body(self) -> bytes:
            length = self.headers.get("Content-Length")
            if length is None or not length.strip().isdigit():
                self.close_connection = True
                raise _BadRequest(
                    HTTPStatus.LENGTH_REQUIRED,
                    "send the body with a Content-Length (as the OTLP exporters do)",
                )
            size = int(length)
            if size > collector.max_body:
                self.close_connection = True  # the body is left unread
                raise _BadRequest(
                    HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                    f"the body is {size} bytes, over the limit of {collector.max_body}; "
                    "export smaller batches (OTEL_BSP_MAX_EXPORT_BATCH_SIZE)",
                )
            return self.rfile.read(size)

        def _refuse(self, bad: _BadRequest, content_type: str) -> None:
            server_side = bad.status >= HTTPStatus.INTERNAL_SERVER_ERROR
            code = Code.INTERNAL if server_side else Code.INVALID_ARGUMENT
            status = Status(code=code, message=bad.reason)
            as_json = json.dumps({"code": status.code, "message": bad.reason}).encode()
            self._answer(bad.status, content_type, status.SerializeToString(), as_json)

        def _answer(
            self, status: HTTPStatus, content_type: str, protobuf: bytes, as_json: bytes
        ) -> None:
            # The specification: answer in the content type of the request.
            body = as_json if content_type == JSON else protobuf
            self.send_response(status)
            self.send_header("Content-Type", JSON if content_type == JSON else PROTOBUF)
            self.send_header("Content-Length", str(len(body)))
            if self.close_connection:
                self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            log.debug("span collector: " + format, *args)

    return Handler
