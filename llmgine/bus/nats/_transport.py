"""`NatsTransport`: the bus's events on a NATS JetStream stream, consumed by a durable pull
consumer, acked only after the handlers ran.

Publishing puts the event, serialised with its concrete class (`to_json`), on the subject
``<prefix>.event.<type name>`` with ``Nats-Msg-Id`` set to the event's id, so the server
drops a second publish of the same event within its duplicate window. Each bus reads the
stream through its own durable pull consumer: every consumer gets every event (two buses,
two processes: both receive it), and buses that share a consumer name share its work.

A fetched message is dispatched to the bus's handlers, then:

* handled everywhere: acked, and its id kept in a bounded seen-set, so a redelivery (an ack
  lost to a restart) is acked again without running any handler twice;
* a handler failed: nak with the backoff delay for this attempt; the handlers that had
  succeeded are remembered and skipped on the redelivery (handled once per handler); after
  ``max_deliver`` deliveries it goes to the bus's dead letters with the reason, and is
  terminated so the server stops sending it;
* not readable (a type this process has not imported, corrupt JSON, a newer schema): dead
  letters with the reason, terminated, never a crash loop.

Fetches are bounded (``batch``) and the consumer lets at most ``batch`` messages be unacked
at once, so a slow consumer leaves the backlog on the server, not in this process's memory.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import os
import re
import socket
from collections import OrderedDict
from collections.abc import Sequence
from itertools import count
from typing import Any, Literal

import nats
import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext

from llmgine._redact import redacting_logger
from llmgine.bus._delivery import Delivery, handled_by
from llmgine.bus._messages import ErrorInfo, Event, message_type_name
from llmgine.bus._registry import Subscription
from llmgine.bus._resilience import DeadLetter, DeadLetterQueue
from llmgine.bus._transport import Deliver, QueueStats
from llmgine.bus.nats._commands import CommandRouter
from llmgine.bus.nats._connect import open_consumer
from llmgine.bus.nats._trace import trace_headers, traced_context, untraced
from llmgine.bus.nats._wire import (
    DELIVERED_HEADER,
    WITHHELD_HEADER,
    capture_from_env,
    read_wire,
    wire_event,
)
from llmgine.errors import (
    BackpressureError,
    BusError,
    BusStoppedError,
    MessageSerializationError,
    TransportError,
    UnknownMessageTypeError,
)

__all__ = ["NatsTransport"]

log = redacting_logger("llmgine.bus.nats")

_consumer_of: contextvars.ContextVar[NatsTransport | None] = contextvars.ContextVar(
    "llmgine_nats_consumer_of", default=None
)
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


def _delivery(msg: Msg) -> tuple[int, int]:
    """How many times ``msg`` was delivered, and its sequence in the stream.

    Read from the ack subject's tokens, as nats-py's ``msg.metadata`` does, without the
    timestamp and dataclasses it builds per message; a subject of another layout (a
    JetStream domain) goes through ``msg.metadata``.
    """
    tokens = (msg.reply or "").split(".")
    if len(tokens) == 9 and tokens[0] == "$JS" and tokens[1] == "ACK":
        return int(tokens[4]), int(tokens[5])
    meta = msg.metadata
    return meta.num_delivered, meta.sequence.stream


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
        self._js: JetStreamContext | None = None
        self._sub: JetStreamContext.PullSubscription | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._consumer: asyncio.Task[None] | None = None
        self._starting: asyncio.Lock | None = None
        self._pending: set[asyncio.Task[None]] = set()
        self._progress: asyncio.Event | None = None
        self._stopped = False
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._partial: OrderedDict[str, set[Subscription]] = OrderedDict()
        self._published_seq = 0  # the highest stream sequence this transport published
        self._done_seq = 0  # the highest one this transport acked or terminated
        self._in_hand = 0
        # The batch being handled, and the index of the first message not yet settled:
        # what the keep-alive tells the server is still being worked on.
        self._batch: list[Msg] = []
        self._batch_next = 0
        self._subjects: dict[type[Event], str] = {}
        self.published = self.redelivered = self.duplicates = self.dead_lettered = 0
        self.publish_failures = 0
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
            self._starting, self._progress = asyncio.Lock(), asyncio.Event()
            self._pending = set()
        assert self._starting is not None
        async with self._starting:
            if self._js is None:
                await self._connect()
            if self._consumer is None or self._consumer.done():
                self._consumer = loop.create_task(self._consume(), name="llmgine-nats-consumer")
        assert self._js is not None
        return self._js

    async def _connect(self) -> None:
        self._nc, self._js, self._sub = await open_consumer(self)
        await self.commands.connected(self._nc)

    async def stop(self) -> None:
        await self.commands.stop_serving()
        await self.drain()
        self._stopped = True
        consumer, self._consumer = self._consumer, None
        nc, self._nc, self._js, self._sub = self._nc, None, None, None
        if consumer is not None:
            # nats-py's fetch can absorb a cancellation as a timeout, so the loop also
            # watches _stopped, and closing the connection ends a fetch that waits.
            consumer.cancel()
        if nc is not None:
            await nc.close()
        if consumer is not None:
            await asyncio.gather(consumer, return_exceptions=True)

    async def _connection(self) -> Client:
        """The connection, for commands (the bus's hooks are on ``self.commands``)."""
        if self._stopped:
            raise BusStoppedError("the bus is stopped; call `await bus.start()` to use it again")
        nc = self._nc
        if nc is None or self._loop is not asyncio.get_running_loop():
            await self._ensure_started()
            nc = self._nc
        assert nc is not None
        return nc

    # -- publishing --------------------------------------------------------------------

    def try_send(self, event: Event) -> bool:
        return False  # every publish goes over the network: always through send()

    async def send(self, event: Event, *, delivered_by: str | None = None) -> None:
        if self._stopped:
            raise BusStoppedError("the bus is stopped; call `await bus.start()` to publish again")
        loop = asyncio.get_running_loop()
        nc, consumer = self._nc, self._consumer
        if nc is None or loop is not self._loop or consumer is None or consumer.done():
            await self._ensure_started()
            nc = self._nc
            assert nc is not None
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
                reply = await nc.request(subject, data, timeout=_ACK_TIMEOUT, headers=headers)
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

    # -- consuming ---------------------------------------------------------------------

    async def _consume(self) -> None:
        # One keep-alive for the consumer, not a task per message: it wakes a few times
        # per ack_wait and tells the server every message in hand is still being worked on.
        keep_alive = asyncio.get_running_loop().create_task(self._keep_alive())
        # Handlers run in this task (its own context): they are the consumer's, once set.
        _consumer_of.set(self)
        try:
            await self._fetch_and_handle()
        finally:
            keep_alive.cancel()
            self._batch, self._batch_next = [], 0

    async def _fetch_and_handle(self) -> None:
        progress = self._progress
        assert progress is not None
        while True:
            sub = self._sub
            if sub is None or self._stopped:
                return
            try:
                messages = await sub.fetch(self.batch, timeout=5.0)
            except (TimeoutError, nats.errors.TimeoutError):
                continue  # a long poll that found nothing: poll again
            except nats.errors.ConnectionClosedError:
                return
            except nats.errors.Error as exc:
                # Reconnecting, or JetStream not yet back after a restart: the client
                # reconnects on its own, so wait a little and poll again.
                log.info("NATS fetch failed (%r); retrying", exc)
                await asyncio.sleep(0.2)
                continue
            self._in_hand = len(messages)
            self._batch = messages
            for i, msg in enumerate(messages):
                self._batch_next = i
                try:
                    await self._handle(msg)
                except nats.errors.Error as exc:
                    # The ack could not be sent (server gone): the message comes again and
                    # the seen-set keeps its handlers from running twice.
                    log.info("NATS ack failed (%r); the server will redeliver", exc)
                except Exception:  # dispatch catches handler errors: this is a bug, go on
                    log.exception("llmgine bus: unexpected error handling a NATS message")
                self._in_hand = len(messages) - i - 1
                progress.set()
            self._batch, self._batch_next = [], 0

    async def _handle(self, msg: Msg) -> None:
        delivered, sequence = _delivery(msg)
        if msg.headers and msg.headers.get(DELIVERED_HEADER) == self.durable:
            await self._settle(msg, sequence, ack=True)  # its publisher, sharing this consumer, did
            return
        if delivered > 1:
            self.redelivered += 1
        try:
            event = read_wire(msg.data)
            if not isinstance(event, Event):
                raise MessageSerializationError(f"a {type(event).__name__} is not an event")
        except UnknownMessageTypeError as exc:
            message_id = self._published_id(msg, sequence)
            reason = (
                f"its type is not registered in this process ({exc}); import the module "
                "that defines it, then replay this dead letter"
            )
            await self._dead_letter(msg, message_id, None, exc, reason)
            return
        except MessageSerializationError as exc:
            message_id = self._published_id(msg, sequence)
            reason = f"it cannot be read: corrupt, or written by a newer schema ({exc})"
            await self._dead_letter(msg, message_id, None, exc, reason)
            return
        message_id = event.id  # idempotent by the event's own id, whoever published it
        if message_id in self._seen:
            self.duplicates += 1
            await self._settle(msg, sequence, ack=True)
            return
        done = self._partial.pop(message_id, set())
        delivery = await self._deliver_tracked(msg, event, done)
        if not delivery.failures:
            self._remember(message_id)
            await self._settle(msg, sequence, ack=True)
            return
        if delivered >= self.max_deliver:
            names = ", ".join(f.handler for f in delivery.failures)
            last = delivery.failures[-1].error
            reason = (
                f"event handler(s) {names} still failed after {delivered} "
                f"deliveries (max_deliver={self.max_deliver}): {type(last).__name__}: {last}"
            )
            self._remember(message_id)  # the handlers that succeeded are not run again
            await self._dead_letter(msg, message_id, event, last, reason)
            return
        self._partial[message_id] = done
        while len(self._partial) > self.seen_size:
            self._partial.popitem(last=False)
        delay = self.backoff[min(delivered, len(self.backoff)) - 1]
        await msg.nak(delay=delay)

    def _published_id(self, msg: Msg, sequence: int) -> str:
        """The id its publisher gave a message that cannot be read as an event."""
        return (msg.headers or {}).get("Nats-Msg-Id") or f"{self.stream}:{sequence}"

    async def _deliver_tracked(self, msg: Msg, event: Event, done: set[Subscription]) -> Delivery:
        assert self._deliver is not None, "bind() must be called before the transport starts"
        marker = handled_by.set((event, done))
        trace = traced_context(msg.headers)  # the publisher's span is the handlers' parent
        try:
            delivery = await self._deliver(event)
        finally:
            untraced(trace)
            handled_by.reset(marker)
        assert isinstance(delivery, Delivery)
        return delivery

    async def _keep_alive(self) -> None:
        # A long handler is not a dead process: every ack_wait/3, tell the server that the
        # message being handled, and those of its batch waiting behind it, are in hand.
        while True:
            await asyncio.sleep(self.ack_wait / 3)
            for msg in self._batch[self._batch_next :]:
                try:
                    await msg.in_progress()
                except nats.errors.Error as exc:  # settled meanwhile, or the server is gone
                    log.debug("NATS in-progress not sent (%r)", exc)

    def _remember(self, message_id: str) -> None:
        self._seen[message_id] = None
        while len(self._seen) > self.seen_size:
            self._seen.popitem(last=False)

    async def _settle(self, msg: Msg, sequence: int, *, ack: bool) -> None:
        await (msg.ack() if ack else msg.term())
        if sequence > self._done_seq:
            self._done_seq = sequence

    async def _dead_letter(
        self,
        msg: Msg,
        message_id: str,
        event: Event | None,
        error: BaseException,
        reason: str,
    ) -> None:
        self.dead_lettered += 1
        log.warning("NATS message %s on %s dead-lettered: %s", message_id, msg.subject, reason)
        if self._dead_letters is not None:
            self._dead_letters.add(
                DeadLetter(
                    event,
                    ErrorInfo.from_exception(error),
                    error,
                    _delivery(msg)[0],
                    reason=reason,
                    raw=None if event is not None else msg.data,
                    message_id=message_id,
                )
            )
        await self._settle(msg, _delivery(msg)[1], ack=False)

    # -- waiting -----------------------------------------------------------------------

    async def drain(self) -> None:
        if _consumer_of.get() is self:
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
            settled = self._done_seq >= target and self._in_hand == 0
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
        if _consumer_of.get() is self:
            return  # a handler ending its session: the rest of it is on the stream, in order
        await self.drain()

    def stats(self) -> QueueStats:
        return QueueStats(depth=self._in_hand + len(self._pending), capacity=self.batch)

    def counters(self) -> dict[str, Any]:
        """What this transport did: published, redelivered, duplicates skipped,
        dead-lettered, publish_nowait failures."""
        return {
            "published": self.published,
            "redelivered": self.redelivered,
            "duplicates": self.duplicates,
            "dead_lettered": self.dead_lettered,
            "publish_failures": self.publish_failures,
        }
