"""`EventConsumer`: the reading side of a `NatsTransport`, its durable pull consumer.

A loop fetches a bounded batch (``batch``), dispatches each message to the bus's handlers,
then settles it:

* handled everywhere: acked, and its id kept in a bounded seen-set, so a redelivery (an ack
  lost to a restart) is acked again without running any handler twice;
* a handler failed: nak with the backoff delay for this attempt; the handlers that had
  succeeded are remembered and skipped on the redelivery (handled once per handler); after
  ``max_deliver`` deliveries it goes to the bus's dead letters with the reason, and is
  terminated so the server stops sending it;
* not readable (a type this process has not imported, corrupt JSON, a newer schema): dead
  letters with the reason, terminated, never a crash loop;
* published by a bus sharing this consumer that already delivered it here
  (``publish(..., wait=True)``): acked unhandled.

One keep-alive task tells the server, every ``ack_wait / 3``, that the message being
handled and those of its batch waiting behind it are in hand, so ``ack_wait`` bounds only
a dead process. When the bus stops with messages of a batch still in hand, `release` naks
them with no delay, so a bus sharing the consumer gets them at once rather than after
``ack_wait``.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections import OrderedDict
from typing import TYPE_CHECKING

import nats.errors
from nats.aio.msg import Msg

from llmgine._redact import redacting_logger
from llmgine.bus._delivery import Delivery, handled_by
from llmgine.bus._json import from_json
from llmgine.bus._messages import ErrorInfo, Event
from llmgine.bus._registry import Subscription
from llmgine.bus._resilience import DeadLetter
from llmgine.bus.nats._trace import traced_context, untraced
from llmgine.bus.nats._wire import DELIVERED_HEADER
from llmgine.errors import MessageSerializationError, UnknownMessageTypeError

if TYPE_CHECKING:
    from llmgine.bus.nats._transport import NatsTransport

__all__ = ["EventConsumer", "consuming_for"]

log = redacting_logger("llmgine.bus.nats")

# The transport whose handlers run in this context (the consumer task's own): a handler
# calling drain() would wait for itself.
consuming_for: contextvars.ContextVar[NatsTransport | None] = contextvars.ContextVar(
    "llmgine_nats_consumer_of", default=None
)
FETCH_POLL = 5.0  # seconds a fetch waits for messages before polling again


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


class EventConsumer:
    """Fetches, handles and settles a transport's events; see the module docstring.

    It reads the transport's settings (``batch``, ``max_deliver``, ``backoff``,
    ``ack_wait``, ``seen_size``) and its current subscription, and keeps what outlives a
    connection: the seen-set, the handlers already run for an event being redelivered,
    and the counters.
    """

    def __init__(self, transport: NatsTransport) -> None:
        self.transport = transport
        self.seen: OrderedDict[str, None] = OrderedDict()
        self.partial: OrderedDict[str, set[Subscription]] = OrderedDict()
        self.done_seq = 0  # the highest stream sequence this consumer acked or terminated
        # The batch being handled, and the index of the first message not yet settled:
        # what the keep-alive tells the server is still being worked on.
        self.batch: list[Msg] = []
        self.batch_next = 0
        self.redelivered = self.duplicates = self.dead_lettered = 0

    @property
    def in_hand(self) -> int:
        """Messages of the batch not yet settled (the one being handled among them)."""
        return len(self.batch) - self.batch_next

    async def run(self, progress: asyncio.Event) -> None:
        """Fetch and handle until the transport stops; ``progress`` is set after each
        message settled (what drain() waits on)."""
        # One keep-alive for the consumer, not a task per message: it wakes a few times
        # per ack_wait and tells the server every message in hand is still being worked on.
        keep_alive = asyncio.get_running_loop().create_task(self._keep_alive())
        # Handlers run in this task (its own context): they are the consumer's, once set.
        consuming_for.set(self.transport)
        try:
            await self._fetch_and_handle(progress)
        finally:
            keep_alive.cancel()
            if not self.transport._stopped:  # else kept for release(), which stop() calls
                self.batch, self.batch_next = [], 0

    async def release(self) -> None:
        """Nak, with no delay, every message of the batch in hand not yet settled (the one
        whose handling a stop cancelled, and those behind it): the server sends them at
        once to a bus sharing this consumer, instead of after ``ack_wait``."""
        rest, self.batch, self.batch_next = self.batch[self.batch_next :], [], 0
        for msg in rest:
            if msg.is_acked:  # settled just before the stop
                continue
            try:
                await msg.nak()
            except nats.errors.Error as exc:  # the server is gone: ack_wait brings it back
                log.info("NATS nak of a message in hand at stop not sent (%r)", exc)

    async def _fetch_and_handle(self, progress: asyncio.Event) -> None:
        t = self.transport
        while True:
            sub = t._sub
            if sub is None or t._stopped:
                return
            try:
                messages = await sub.fetch(t.batch, timeout=FETCH_POLL)
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
            self.batch = messages
            for i, msg in enumerate(messages):
                self.batch_next = i
                try:
                    await self._handle(msg)
                except nats.errors.Error as exc:
                    # The ack could not be sent (server gone): the message comes again and
                    # the seen-set keeps its handlers from running twice.
                    log.info("NATS ack failed (%r); the server will redeliver", exc)
                except Exception:  # dispatch catches handler errors: this is a bug, go on
                    log.exception("llmgine bus: unexpected error handling a NATS message")
                self.batch_next = i + 1
                progress.set()
            self.batch, self.batch_next = [], 0

    async def _handle(self, msg: Msg) -> None:
        t = self.transport
        delivered, sequence = _delivery(msg)
        if msg.headers and msg.headers.get(DELIVERED_HEADER) == t.durable:
            await self._settle(msg, sequence, ack=True)  # its publisher, sharing this consumer, did
            return
        if delivered > 1:
            self.redelivered += 1
        try:
            event = from_json(msg.data)
            if not isinstance(event, Event):
                raise MessageSerializationError(f"a {type(event).__name__} is not an event")
        except UnknownMessageTypeError as exc:
            message_id = self._published_id(msg, sequence)
            reason = (
                f"its type is not registered in this process ({exc}); import the module "
                "that defines it, then replay this dead letter"
            )
            await self._dead_letter(msg, delivered, sequence, message_id, None, exc, reason)
            return
        except MessageSerializationError as exc:
            message_id = self._published_id(msg, sequence)
            reason = f"it cannot be read: corrupt, or written by a newer schema ({exc})"
            await self._dead_letter(msg, delivered, sequence, message_id, None, exc, reason)
            return
        message_id = event.id  # idempotent by the event's own id, whoever published it
        if message_id in self.seen:
            self.duplicates += 1
            await self._settle(msg, sequence, ack=True)
            return
        done = self.partial.pop(message_id, set())
        delivery = await self._deliver_tracked(msg, event, done)
        if not delivery.failures:
            self._remember(message_id)
            await self._settle(msg, sequence, ack=True)
            return
        if delivered >= t.max_deliver:
            names = ", ".join(f.handler for f in delivery.failures)
            last = delivery.failures[-1].error
            reason = (
                f"event handler(s) {names} still failed after {delivered} "
                f"deliveries (max_deliver={t.max_deliver}): {type(last).__name__}: {last}"
            )
            self._remember(message_id)  # the handlers that succeeded are not run again
            await self._dead_letter(msg, delivered, sequence, message_id, event, last, reason)
            return
        self.partial[message_id] = done
        while len(self.partial) > t.seen_size:
            self.partial.popitem(last=False)
        delay = t.backoff[min(delivered, len(t.backoff)) - 1]
        await msg.nak(delay=delay)

    def _published_id(self, msg: Msg, sequence: int) -> str:
        """The id its publisher gave a message that cannot be read as an event."""
        return (msg.headers or {}).get("Nats-Msg-Id") or f"{self.transport.stream}:{sequence}"

    async def _deliver_tracked(self, msg: Msg, event: Event, done: set[Subscription]) -> Delivery:
        deliver = self.transport._deliver
        assert deliver is not None, "bind() must be called before the transport starts"
        marker = handled_by.set((event, done))
        trace = traced_context(msg.headers)  # the publisher's span is the handlers' parent
        try:
            delivery = await deliver(event)
        finally:
            untraced(trace)
            handled_by.reset(marker)
        assert isinstance(delivery, Delivery)
        return delivery

    async def _keep_alive(self) -> None:
        # A long handler is not a dead process: every ack_wait/3, tell the server that the
        # message being handled, and those of its batch waiting behind it, are in hand.
        while True:
            await asyncio.sleep(self.transport.ack_wait / 3)
            for msg in self.batch[self.batch_next :]:
                try:
                    await msg.in_progress()
                except nats.errors.Error as exc:  # settled meanwhile, or the server is gone
                    log.debug("NATS in-progress not sent (%r)", exc)

    def _remember(self, message_id: str) -> None:
        self.seen[message_id] = None
        while len(self.seen) > self.transport.seen_size:
            self.seen.popitem(last=False)

    async def _settle(self, msg: Msg, sequence: int, *, ack: bool) -> None:
        await (msg.ack() if ack else msg.term())
        if sequence > self.done_seq:
            self.done_seq = sequence

    async def _dead_letter(
        self,
        msg: Msg,
        delivered: int,
        sequence: int,
        message_id: str,
        event: Event | None,
        error: BaseException,
        reason: str,
    ) -> None:
        self.dead_lettered += 1
        log.warning("NATS message %s on %s dead-lettered: %s", message_id, msg.subject, reason)
        dead_letters = self.transport._dead_letters
        if dead_letters is not None:
            dead_letters.add(
                DeadLetter(
                    event,
                    ErrorInfo.from_exception(error),
                    error,
                    delivered,
                    reason=reason,
                    raw=None if event is not None else msg.data,
                    message_id=message_id,
                )
            )
        await self._settle(msg, sequence, ack=False)
