"""Connecting to NATS and declaring the stream and the durable pull consumer a
`NatsTransport` reads from."""

from __future__ import annotations

import asyncio
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
_NOT_YET = (
    nats.js.errors.NotFoundError,
    nats.js.errors.ServiceUnavailableError,
    nats.js.errors.NoStreamResponseError,
    nats.errors.NoRespondersError,
    nats.errors.TimeoutError,
)


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
    # A cluster just started (its meta group still learning its peers) or a replicated
    # stream just created (electing its leader) times out, answers "not found", or cannot
    # place the stream yet: a wait of up to publish_timeout, not an error.
    loop = asyncio.get_running_loop()
    deadline = loop.time() + t.publish_timeout
    while True:
        try:
            await _declare_stream(t, js)
            break
        except nats.errors.NoRespondersError as exc:
            await nc.close()
            raise TransportError(
                f"the NATS server at {t.url} has no JetStream: start it with -js "
                "(NatsServer.start() does)."
            ) from exc
        except (*_NOT_YET, nats.js.errors.BadRequestError) as exc:
            await _not_yet(nc, t, exc, loop.time() >= deadline)
        except nats.js.errors.APIError as exc:
            await nc.close()
            raise TransportError(
                f"the NATS server at {t.url} refused the stream {t.stream}: "
                f"{exc.description} (replicas={t.replicas}: more than 1 needs a cluster, "
                "such as NatsCluster.start(3))"
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
    while True:
        try:
            sub = await js.pull_subscribe(
                t.subject, durable=t.durable, stream=t.stream, config=config
            )
            return nc, js, sub
        except _NOT_YET as exc:
            await _not_yet(nc, t, exc, loop.time() >= deadline)


async def _declare_stream(t: NatsTransport, js: JetStreamContext) -> None:
    try:
        await js.add_stream(
            name=t.stream,
            subjects=[t.subject],
            storage=api.StorageType.FILE if t.storage == "file" else api.StorageType.MEMORY,
            duplicate_window=t.duplicate_window,
            num_replicas=t.replicas,
        )
    except nats.js.errors.BadRequestError as refused:
        # It exists (possibly configured by its operator): use it as it is. Else the
        # cluster could not place it yet (not all peers known): the caller tries again,
        # and reports the server's reason if it never can.
        try:
            await js.stream_info(t.stream)
        except nats.js.errors.NotFoundError:
            raise refused from None


async def _not_yet(nc: Client, t: NatsTransport, exc: Exception, late: bool) -> None:
    """Wait a little before trying again, or give up with the reason once ``late``."""
    if late:
        await nc.close()
        described = getattr(exc, "description", None) or repr(exc)
        raise TransportError(
            f"the NATS stream {t.stream} at {t.url} did not become ready within "
            f"{t.publish_timeout:g}s ({described}); is JetStream up, and does a cluster "
            f"have a majority of its nodes running (replicas={t.replicas})?"
        ) from exc
    await asyncio.sleep(0.1)
