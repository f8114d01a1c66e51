"""Request/reply on one NATS connection: one reply subscription, a future and a timer each.

A command sent to a worker and an event published to JetStream (answered by the stream's
ack) are both NATS requests. nats-py's ``Client.request`` makes each one a token from a
NUID and ``os.urandom``, a future with a done callback and an ``asyncio.wait_for``: about
a third of a command's round trip in CPU with 64 in flight (``benchmarks/README.md``).
This sends the same requests with the client's public calls only: the replies of one
connection come to one wildcard subscription on an inbox of its own, and a request is a
number on that inbox, a future, and one timer for its timeout.

A reply with the NATS protocol's "no responders" status (nobody subscribes to the
subject, or no stream holds it) raises ``nats.errors.NoRespondersError``, and no reply in
time ``nats.errors.TimeoutError``, as ``Client.request`` does, so callers translate the
same errors. Closing fails the requests still waiting with ``ConnectionClosedError``
at once, rather than at their timeouts.
"""

from __future__ import annotations

import asyncio
import contextlib
from itertools import count

import nats.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js.api import Header

__all__ = ["Requests"]

_NO_RESPONDERS = "503"  # the status the server replies with when nobody can answer


class Requests:
    """The requests of one connection, and their replies."""

    def __init__(self, nc: Client) -> None:
        self._nc = nc
        self._prefix = ""
        self._sub: Subscription | None = None
        self._waiting: dict[str, asyncio.Future[Msg]] = {}
        self._numbers = count()

    @classmethod
    async def open(cls, nc: Client) -> Requests:
        """Subscribe to the replies on ``nc`` (before any request goes out)."""
        requests = cls(nc)
        requests._prefix = nc.new_inbox() + "."
        requests._sub = await nc.subscribe(requests._prefix + "*", cb=requests._on_reply)
        return requests

    @property
    def waiting(self) -> int:
        """Requests sent and not yet answered."""
        return len(self._waiting)

    async def request(
        self,
        subject: str,
        data: bytes,
        *,
        timeout: float,
        headers: dict[str, str] | None = None,
    ) -> Msg:
        """Send ``data`` to ``subject`` and return the reply.

        Raises:
            nats.errors.NoRespondersError: nobody answers on ``subject``.
            nats.errors.TimeoutError: no reply within ``timeout`` seconds.
            nats.errors.Error: the connection could not send it, or closed meanwhile.
        """
        if self._sub is None:
            raise nats.errors.ConnectionClosedError
        token = str(next(self._numbers))
        loop = asyncio.get_running_loop()
        reply: asyncio.Future[Msg] = loop.create_future()
        self._waiting[token] = reply
        timer = loop.call_at(loop.time() + timeout, _expire, reply)
        try:
            await self._nc.publish(subject, data, reply=self._prefix + token, headers=headers)
            msg = await reply
        finally:
            timer.cancel()
            del self._waiting[token]
        if msg.headers and msg.headers.get(Header.STATUS) == _NO_RESPONDERS:
            raise nats.errors.NoRespondersError
        return msg

    async def _on_reply(self, msg: Msg) -> None:
        reply = self._waiting.get(msg.subject[len(self._prefix) :])
        if reply is not None and not reply.done():  # else too late: it timed out
            reply.set_result(msg)

    async def close(self) -> None:
        """Stop taking replies; the requests waiting fail now with ConnectionClosedError."""
        sub, self._sub = self._sub, None
        for reply in self._waiting.values():
            if not reply.done():
                reply.set_exception(nats.errors.ConnectionClosedError())
        if sub is not None and not self._nc.is_closed:
            # A connection going (closing, reconnecting) takes its subscriptions with it.
            with contextlib.suppress(nats.errors.Error):
                await sub.unsubscribe()


def _expire(reply: asyncio.Future[Msg]) -> None:
    if not reply.done():
        reply.set_exception(nats.errors.TimeoutError())
