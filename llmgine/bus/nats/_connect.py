"""Connecting to NATS and declaring the stream and the durable pull consumer a
`NatsTransport` reads from."""

from __future__ import annotations

from typing import TYPE_CHECKING

import nats
import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.js import JetStreamContext, api

from llmgine._redact import redacting_logger
from llmgine.errors import TransportError

if TYPE_CHECKING:
    from llmgine.bus.nats._transport import NatsTransport

__all__ = ["open_consumer"]

log = redacting_logger("llmgine.bus.nats")


async def open_consumer(
    t: NatsTransport,
) -> tuple[Client, JetStreamContext, JetStreamContext.PullSubscription]:
    """Connect, create the stream if it is missing, and bind the consumer (created with
    the transport's settings if missing; an existing one is used as it is)."""

    async def quiet(exc: Exception) -> None:
        # The client reconnects by itself; a lost connection is news, not an error.
        log.info("NATS connection to %s: %r", t.url, exc)

    try:
        # A bounded first connection (a wrong address fails, not hangs); after that the
        # client reconnects for as long as it takes (a restarting server).
        nc = await nats.connect(
            [url.strip() for url in t.url.split(",")],  # several: a cluster's nodes
            name=f"llmgine {t.durable}",
            max_reconnect_attempts=2,
            reconnect_time_wait=0.2,
            allow_reconnect=True,
            connect_timeout=t.connect_timeout,
            error_cb=quiet,
        )
    except (OSError, TimeoutError, nats.errors.Error) as exc:
        raise TransportError(
            f"cannot connect to NATS at {t.url}: {exc}. Is a server running there? "
            "For a local one: `from llmgine.bus.nats import NatsServer; "
            "NatsServer.start()`."
        ) from exc
    nc.options["max_reconnect_attempts"] = -1  # read at each reconnection
    js = nc.jetstream()
    try:
        await js.add_stream(
            name=t.stream,
            subjects=[t.subject],
            storage=api.StorageType.FILE if t.storage == "file" else api.StorageType.MEMORY,
            duplicate_window=t.duplicate_window,
            num_replicas=t.replicas,
        )
    except nats.js.errors.BadRequestError:
        pass  # it exists (possibly configured by its operator): use it as it is
    except nats.errors.NoRespondersError as exc:
        await nc.close()
        raise TransportError(
            f"the NATS server at {t.url} has no JetStream: start it with -js "
            "(NatsServer.start() does)."
        ) from exc
    config = api.ConsumerConfig(
        durable_name=t.durable,
        ack_policy=api.AckPolicy.EXPLICIT,
        deliver_policy=api.DeliverPolicy.NEW,
        filter_subject=t.subject,
        ack_wait=t.ack_wait,
        max_deliver=t.max_deliver + 1,  # the last one is ours to dead-letter
        max_ack_pending=t.batch,
        inactive_threshold=None if t.named else t.inactive_threshold,
    )
    sub = await js.pull_subscribe(t.subject, durable=t.durable, stream=t.stream, config=config)
    return nc, js, sub
