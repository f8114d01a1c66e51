"""`NatsTransport`: the bus's events on a NATS JetStream stream, consumed by a durable pull
consumer, acked only after the handlers ran. This file holds publishing, the connection's
lifecycle and drain(); reading and settling the consumer's messages is `EventConsumer`'s
(``_consumer.py``), commands are `CommandRouter`'s (``_commands.py``).

Publishing puts the event, serialised with its concrete class (`to_json`), on the subject
``<prefix>.event.<type name>`` with ``Nats-Msg-Id`` set to the event's id, so the server
drops a second publish of the same event within its duplicate window. Each bus reads the
stream through its own durable pull consumer: every consumer gets every event (two buses,
two processes: both receive it), and buses that share a consumer name share its work.

A fetched message is dispatched to the bus's handlers, then acked (its id kept in a
bounded seen-set, so a redelivery runs no handler twice), nak'd with a backoff when a
handler failed (after ``max_deliver`` deliveries: dead-lettered and terminated), or
dead-lettered at once when it cannot be read; see `EventConsumer`.

Fetches are bounded (``batch``) and the consumer lets at most ``batch`` messages be unacked
at once, so a slow consumer leaves the backlog on the server, not in this process's memory.
Stopping a bus naks, with no delay, the messages of its batch not yet handled, so a bus
sharing its consumer gets them at once.

A limit of nats-py's ``fetch`` (2.16), with no public way around it: the pull request it
sends expires 100 µs before the call's own timeout, by the server's clock from when the
request reached it, so it can outlive the call by that transit time. A message the server
sends in that moment (a fetch that got fewer messages than it asked for runs to its
timeout, as on a consumer shared with a bus holding ``batch`` unacked) waits in the
client's buffer until the next fetch, after the batch in hand is handled; the keep-alive
and the nak at stop cannot reach it (nats-py exposes only its count, ``pending_msgs``).
If that batch takes longer than ``ack_wait``, or the bus stops, a bus sharing the
consumer gets the message after ``ack_wait``, and may handle it a second time: each
bus's seen-set is its own. Keep ``ack_wait`` above the time a batch takes.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import socket
from collections.abc import Sequence
from itertools import count
from typing import Any, Literal

import nats
import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.js import JetStreamContext

from llmgine._redact import redacting_logger
from llmgine.bus._messages import Event, message_type_name
from llmgine.bus._resilience import DeadLetterQueue
from llmgine.bus._transport import Deliver, QueueStats
from llmgine.bus.nats._commands import CommandRouter
from llmgine.bus.nats._connect import open_consumer
from llmgine.bus.nats._consumer import FETCH_POLL, EventConsumer, consuming_for
from llmgine.bus.nats._requests import Requests
from llmgine.bus.nats._trace import trace_headers
from llmgine.bus.nats._wire import DELIVERED_HEADER, WITHHELD_HEADER, capture_from_env, wire_event
from llmgine.errors import BackpressureError, BusError, BusStoppedError, TransportError

__all__ = ["NatsTransport"]

log = redacting_logger("llmgine.bus.nats")

_UNSAFE = re.compile(r"[^A-Za-z0-9_\-.]")
_bus_numbers = count(1)
# A transient failure of a publish: the server restarting, JetStream not yet elected, a
# cluster's stream electing a new leader (no responders: NoStreamResponseError).
_RETRYABLE = (
    nats.errors.TimeoutError,
    nats.errors.NoRespondersError,
    nats.js.errors.NoStreamResponseError,
    nats.errors.ConnectionReconnectingError,
    nats.errors.ConnectionClosedError,
    nats.errors.StaleConnectionError,
    nats.js.errors.ServiceUnavailableError,
    asyncio.TimeoutError,
)
_ACK_TIMEOUT = 5.0  # seconds for one publish's ack, as js.publish waits by default


def _stored_at(ack: bytes) -> int:
    """The stream sequence a JetStream publish's ack names; raises its error as
    ``js.publish`` does (`nats.js.errors.APIError`, a subclass by the error's code)."""
    answer = json.loads(ack)
    if "error" in answer:
        raise nats.js.errors.APIError.from_error(answer["error"])
    return int(answer["seq"])


def _token(text: str) -> str:
    """``text`` as dot-separated NATS subject tokens: no wildcards, spaces or empty tokens."""
    parts = (_UNSAFE.sub("_", part) or "_" for part in text.split("."))
    return ".".join(parts)


class NatsTransport:
    """Carries a bus's events over NATS JetStream; see the module docstring.

    Args:
        url: the NATS server(s), e.g. ``"nats://127.0.0.1:4222"`` (comma-separated for a
            cluster).
        stream: the JetStream stream (created if missing, file storage).
        subject_prefix: events go on ``<prefix>.event.<type>``.
        durable: this bus's consumer name. Buses with the same name share the events
            (each handled by one of them); by default each bus gets its own, named after
            the host, process and bus, removed by the server after ``inactive_threshold``.
            Name it to resume where it left off after a restart.
        batch: messages fetched at once, and the most left unacked.
        max_deliver: deliveries of an event whose handler fails before it is dead-lettered.
        backoff: seconds before each redelivery (the last repeats).
        ack_wait: seconds a fetched message may go unacked before the server resends it
            (the batch in hand, the message being handled and those waiting behind it, is
            kept alive every ``ack_wait / 3``, so this bounds only a dead process).
        seen_size: event ids remembered to skip redeliveries already handled.
        replicas: copies of the stream a JetStream cluster keeps (1 to 5), when this
            transport creates it; 3 survives the loss of one node.
        capture_content: whether events' content fields travel (see `_wire`: credentials
            never do); by default ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT``,
            or the enabled observability's ``capture_content``.
        command_timeout: seconds to wait for a worker's answer to a command when its
            policy sets no shorter timeout (a worker that died never answers).
        command_concurrency: commands this bus's handlers answer at once for others.

    Example:
        server = NatsServer.start()
        bus = MessageBus(transport=NatsTransport(server.url))
    """

    def __init__(
        self,
        url: str = "nats://127.0.0.1:4222",
        *,
        stream: str = "LLMGINE",
        subject_prefix: str = "llmgine",
        durable: str | None = None,
        batch: int = 64,
        max_deliver: int = 5,
        backoff: Sequence[float] = (0.5, 2.0, 8.0),
        ack_wait: float = 30.0,
        seen_size: int = 10_000,
        duplicate_window: float = 120.0,
        inactive_threshold: float = 3600.0,
        storage: Literal["file", "memory"] = "file",
        publish_timeout: float = 30.0,
        connect_timeout: float = 5.0,
        replicas: int = 1,
        capture_content: bool | None = None,
        command_timeout: float = 60.0,
        command_concurrency: int = 64,
    ) -> None:
        if batch < 1 or max_deliver < 1 or seen_size < 1:
            raise ValueError(
                f"batch, max_deliver and seen_size must be at least 1; got batch={batch}, "
                f"max_deliver={max_deliver}, seen_size={seen_size}"
            )
        if command_timeout <= 0 or command_concurrency < 1:
            raise ValueError(
                "command_timeout must be positive seconds and command_concurrency at least 1; "
                f"got {command_timeout} and {command_concurrency}"
            )
        if not backoff or any(b < 0 for b in backoff):
            raise ValueError(f"backoff must be non-negative seconds, at least one; got {backoff}")
        if not 1 <= replicas <= 5:
            raise ValueError(f"replicas must be 1 to 5 (JetStream's limit); got {replicas}")
        self.replicas = replicas
        # None follows the enabled observability at each publish.
        self.capture_content = (
            True if capture_content is None and capture_from_env() else (capture_content)
        )
        self.url, self.stream, self.prefix = url, stream, _token(subject_prefix)
        self.named = durable is not None
        default = f"{socket.gethostname()}-{os.getpid()}-{next(_bus_numbers)}"
        self.durable = _UNSAFE.sub("_", durable or default).replace(".", "_")
        self.batch, self.max_deliver, self.backoff = batch, max_deliver, tuple(backoff)
        self.ack_wait, self.seen_size = ack_wait, seen_size
        self.duplicate_window, self.inactive_threshold = duplicate_window, inactive_threshold
        self.storage, self.publish_timeout = storage, publish_timeout
        self.connect_timeout = connect_timeout
        self._deliver: Deliver | None = None
        self._dead_letters: DeadLetterQueue | None = None
        self._nc: Client | None = None
        self._requests: Requests | None = None  # the connection's requests and replies
        self._js: JetStreamContext | None = None
        self._sub: JetStreamContext.PullSubscription | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._consumer: asyncio.Task[None] | None = None
        self._starting: asyncio.Lock | None = None
        self._pending: set[asyncio.Task[None]] = set()
        self._progress: asyncio.Event | None = None
        self._stopped = False
        self._published_seq = 0  # the highest stream sequence this transport published
        self._subjects: dict[type[Event], str] = {}
        self.published = self.publish_failures = 0
        self._reader = EventConsumer(self)
        self.commands = CommandRouter(
            self.prefix,
            concurrency=command_concurrency,
            command_timeout=command_timeout,
            connection=self._connection,
        )

    def __repr__(self) -> str:
        return f"<NatsTransport {self.url} stream={self.stream} durable={self.durable}>"

    @property
    def subject(self) -> str:
        """The subjects this transport's events go on (a wildcard)."""
        return f"{self.prefix}.event.>"

    @property
    def redelivered(self) -> int:
        """Events received again (delivered more than once)."""
        return self._reader.redelivered

    @property
    def duplicates(self) -> int:
        """Events skipped as already handled here (the seen-set)."""
        return self._reader.duplicates

    @property
    def dead_lettered(self) -> int:
        """Events given up on: dead-lettered and terminated."""
        return self._reader.dead_lettered

    # -- lifecycle ---------------------------------------------------------------------

    def bind(self, deliver: Deliver) -> None:
        self._deliver = deliver

    def attach_dead_letters(self, dead_letters: DeadLetterQueue) -> None:
        """Where events given up on go (the bus calls this with its own queue)."""
        self._dead_letters = dead_letters

    async def start(self) -> None:
        self._stopped = False
        await self._ensure_started()
        await self.commands.ready()  # the command types registered meanwhile are served

    async def _ensure_started(self) -> JetStreamContext:
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            # A new event loop (a test's, a notebook kernel restart): the old connection
            # belongs to the old loop and cannot be used or closed from this one.
            self._loop, self._nc, self._js, self._sub, self._consumer = loop, None, None, None, None
            self._requests = None
            self._starting, self._progress = asyncio.Lock(), asyncio.Event()
            self._pending = set()
        assert self._starting is not None
        assert self._progress is not None
        async with self._starting:
            if self._js is None:
                await self._connect()
            if self._consumer is None or self._consumer.done():
                consume = self._reader.run(self._progress)
                self._consumer = loop.create_task(consume, name="llmgine-nats-consumer")
        assert self._js is not None
        return self._js

    async def _connect(self) -> None:
        self._nc, self._js, self._sub = await open_consumer(self)
        self._requests = await Requests.open(self._nc)
        await self.commands.connected(self._nc)

    async def stop(self) -> None:
        await self.commands.stop_serving()
        await self.drain()
        self._stopped = True
        consumer, self._consumer = self._consumer, None
        nc, self._nc, self._js, self._sub = self._nc, None, None, None
        requests, self._requests = self._requests, None
        if consumer is not None:
            # Its handler is cancelled; wait for it, so the rest of its batch is released
            # on this connection before it closes. nats-py's fetch can absorb a
            # cancellation as a timeout, so the loop also watches _stopped (its fetch ends
            # within FETCH_POLL), and closing the connection ends a fetch that waits.
            consumer.cancel()
            await asyncio.wait({consumer}, timeout=FETCH_POLL + 1.0)
        await self._reader.release()  # a bus sharing the consumer gets them at once
        if requests is not None:
            await requests.close()  # a request still waiting fails now, not at its timeout
        if nc is not None:
            try:
                await nc.flush(timeout=int(_ACK_TIMEOUT))  # the naks reach the server first
            except (TimeoutError, nats.errors.Error) as exc:
                log.info("NATS flush at stop failed (%r)", exc)
            await nc.close()
        if consumer is not None:
            await asyncio.gather(consumer, return_exceptions=True)

    async def _connection(self) -> Requests:
        """The connection's requests, for commands (the bus's hooks are on
        ``self.commands``)."""
        if self._stopped:
            raise BusStoppedError("the bus is stopped; call `await bus.start()` to use it again")
        requests = self._requests
        if requests is None or self._loop is not asyncio.get_running_loop():
            await self._ensure_started()
            requests = self._requests
        assert requests is not None
        return requests

    # -- publishing --------------------------------------------------------------------

    def try_send(self, event: Event) -> bool:
        return False  # every publish goes over the network: always through send()

    async def send(self, event: Event, *, delivered_by: str | None = None) -> None:
        if self._stopped:
            raise BusStoppedError("the bus is stopped; call `await bus.start()` to publish again")
        loop = asyncio.get_running_loop()
        requests, consumer = self._requests, self._consumer
        if requests is None or loop is not self._loop or consumer is None or consumer.done():
            await self._ensure_started()
            requests = self._requests
            assert requests is not None
        # The one place events are serialised for the wire: redacted, content withheld.
        data, withheld = wire_event(event, capture_content=self.capture_content)
        cls = type(event)
        subject = self._subjects.get(cls)
        if subject is None:
            subject = self._subjects[cls] = f"{self.prefix}.event.{_token(message_type_name(cls))}"
        # What js.publish(..., stream=) sends: the server refuses a subject that another
        # stream holds, and keeps one copy of a Nats-Msg-Id within its duplicate window.
        headers = {"Nats-Msg-Id": event.id, "Nats-Expected-Stream": self.stream}
        traced = trace_headers()  # traceparent, while observability is on
        if traced:
            headers.update(traced)
        if withheld:
            headers[WITHHELD_HEADER] = ",".join(withheld)
        if delivered_by is not None:
            headers[DELIVERED_HEADER] = delivered_by
        deadline = loop.time() + self.publish_timeout
        while True:
            try:
                # A JetStream publish is a request to the stream's subject, answered by its
                # ack; sent as such, only the ack's sequence is read (not a PubAck made).
                reply = await requests.request(subject, data, timeout=_ACK_TIMEOUT, headers=headers)
                sequence = _stored_at(reply.data)
                break
            except _RETRYABLE as exc:
                # The same Nats-Msg-Id makes a retry safe: the server keeps one copy.
                if loop.time() >= deadline:
                    raise TransportError(
                        f"could not publish {type(event).__name__} to NATS at {self.url} "
                        f"within {self.publish_timeout:g}s ({exc!r}); is the server up?"
                    ) from exc
                await asyncio.sleep(0.1)
        self.published += 1
        if sequence > self._published_seq:
            self._published_seq = sequence

    async def send_delivered(self, event: Event) -> None:
        """Publish an event the bus has just delivered to its own handlers (``publish(...,
        wait=True)``): the other consumers get it; this one, shared or not, acks it
        unhandled."""
        await self.send(event, delivered_by=self.durable)

    def send_nowait(self, event: Event) -> None:
        if self._stopped:
            raise BusStoppedError("the bus is stopped; call `await bus.start()` to publish again")
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            raise BusError(
                "publish_nowait() over NATS needs the bus's event loop running; use "
                "`await bus.publish(event)`, or loop.call_soon_threadsafe(bus.publish_nowait, e)"
            ) from None
        if len(self._pending) >= self.batch * 16:
            raise BackpressureError(
                f"{len(self._pending)} publishes to NATS are still in flight and "
                "publish_nowait cannot wait; use `await bus.publish(event)` to wait for room."
            )
        task = loop.create_task(self._send_logged(event))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _send_logged(self, event: Event) -> None:
        try:
            await self.send(event)
        except Exception:
            self.publish_failures += 1
            log.exception("publish_nowait of %s %s to NATS failed", type(event).__name__, event.id)

    # -- waiting -----------------------------------------------------------------------

    async def drain(self) -> None:
        if consuming_for.get() is self:
            raise BusError(
                "drain() was called from inside an event handler, where it would wait for "
                "itself; publish with wait=True instead, or drain from outside the handler."
            )
        await self._ensure_started()
        await self._handled_up_to_published()

    async def _handled_up_to_published(self) -> None:
        """Wait until the consumer has settled every event this transport published,
        including those its handlers publish meanwhile (checked with the server: another
        bus sharing the consumer may be the one handling them)."""
        progress = self._progress
        assert progress is not None
        while True:
            if self._pending:
                await asyncio.gather(*list(self._pending), return_exceptions=True)
                continue
            target = self._published_seq
            settled = self._reader.done_seq >= target and self._reader.in_hand == 0
            if settled and await self._settled_on_server(target):
                return
            progress.clear()
            try:
                await asyncio.wait_for(progress.wait(), 0.1)
            except TimeoutError:
                if await self._settled_on_server(target):
                    return

    async def _settled_on_server(self, target: int) -> bool:
        sub = self._sub
        if sub is None or target == 0:
            return True
        try:
            info = await sub.consumer_info()
        except nats.errors.Error:
            return False  # reconnecting: ask again
        floor = info.ack_floor.stream_seq if info.ack_floor is not None else 0
        return bool(
            (floor or 0) >= target
            and not info.num_ack_pending
            and self._published_seq == target
            and not self._pending
        )

    async def flush_session(self, session_id: str) -> None:
        if consuming_for.get() is self:
            return  # a handler ending its session: the rest of it is on the stream, in order
        await self.drain()

    def stats(self) -> QueueStats:
        return QueueStats(depth=self._reader.in_hand + len(self._pending), capacity=self.batch)

    def counters(self) -> dict[str, Any]:
        """What this transport did: published, redelivered, duplicates skipped,
        dead-lettered, publish_nowait failures."""
        return {
            "published": self.published,
            "redelivered": self._reader.redelivered,
            "duplicates": self._reader.duplicates,
            "dead_lettered": self._reader.dead_lettered,
            "publish_failures": self.publish_failures,
        }
