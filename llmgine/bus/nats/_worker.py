"""``llmgine worker module:setup``: a process that serves a bus's handlers over NATS.

It imports ``module``, calls ``setup(bus)`` (sync or async) on a bus with a `NatsTransport`
(``--url`` or ``LLMGINE_BUS_URL``), and serves: the command types ``setup`` registered are
answered for every process on the same subjects (one worker of the group per command), and
its event handlers read through the durable consumer ``--durable`` (workers sharing the
name share the events); sessions opened elsewhere are joined by the setups it gave
``bus.on_session``, whose session handlers serve those sessions until they end. SIGTERM
or SIGINT stops it cleanly: it takes no new commands, lets the handlers running finish and
reply, drains, and exits 0. What ``setup`` returns, if callable (sync or async), is
called then, to close what it opened (clients, files).

With ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or ``..._TRACES_ENDPOINT``) set, it traces its bus
and exports the spans over OTLP/HTTP (service ``llmgine-worker`` unless
``OTEL_SERVICE_NAME`` names it; the resource redacted like every span), to a collector or
to a notebook's `Observability.collect`. The spans of commands sent by a traced caller are
children of the caller's spans (the ``traceparent`` the bus carries), so the caller sees
one trace across processes. Spans go out in batches on the exporter's thread, at most
``OTEL_BSP_SCHEDULE_DELAY`` milliseconds after they end: 200 here (the SDK's default, 5 s,
is too slow to watch a notebook's waterfall fill in; a span exported as it ends would
cost the handler's thread an HTTP request each). Stopping flushes what is left, so the
last command's spans are not lost.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import inspect
import os
import signal
import sys
from collections.abc import Callable
from typing import Any

from llmgine._semconv import OTLP_ENDPOINT_ENV
from llmgine.bus._bus import MessageBus
from llmgine.bus._messages import message_type_name
from llmgine.bus.nats._transport import NatsTransport
from llmgine.errors import LLMgineError, MissingExtraError

__all__ = ["load_setup", "main_worker"]

Setup = Callable[[MessageBus], Any]

WORKER_SERVICE_NAME = "llmgine-worker"
# Milliseconds between a span's end and its export at most: see the module's docstring.
EXPORT_DELAY_MS = "200"


class _BadSpec(ValueError):
    """What the command line got cannot start a worker; the message says what to do."""


def load_setup(spec: str) -> Setup:
    """The function ``module:function`` names (imported from the current directory too,
    as ``python -m`` would)."""
    module_name, colon, name = spec.partition(":")
    if not colon or not module_name or not name:
        raise _BadSpec(
            f"{spec!r} is not module:function; name the module and its setup function, "
            "e.g. `llmgine worker myapp.workers:setup`"
        )
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        raise _BadSpec(
            f"cannot import {module_name!r} ({exc}); run from the directory that holds it "
            "or put that directory on PYTHONPATH"
        ) from exc
    setup = getattr(module, name, None)
    if setup is None:
        raise _BadSpec(
            f"module {module_name!r} has no {name!r}; define `def {name}(bus): ...` there "
            "(it registers the worker's handlers on the bus)"
        )
    if not callable(setup):
        raise _BadSpec(f"{spec} is a {type(setup).__name__}, not a function taking the bus")
    return setup  # type: ignore[no-any-return]


def _bus_url(given: str | None) -> str:
    url = (given or os.environ.get("LLMGINE_BUS_URL", "")).strip()
    if not url.lower().startswith(("nats://", "tls://")):
        where = f"--url {url!r}" if given else f"LLMGINE_BUS_URL={url!r}"
        raise _BadSpec(
            f"a worker needs a NATS server: {where} is not nats://host:port. Pass "
            "--url nats://127.0.0.1:4222 or set LLMGINE_BUS_URL"
        )
    return url


def export_traces(bus: MessageBus) -> Callable[[], None] | None:
    """Trace ``bus`` and export its spans over OTLP when an endpoint variable is set;
    returns what flushes and stops that (None when no endpoint is set)."""
    if not any(os.environ.get(name) for name in OTLP_ENDPOINT_ENV):
        return None
    try:
        from llmgine import observability
    except MissingExtraError as exc:
        raise _BadSpec(
            f"{' or '.join(OTLP_ENDPOINT_ENV)} is set, so the worker exports its spans, "
            f"which needs the observability extra: {exc} (or unset the variable)"
        ) from exc
    # The batch processor reads it when made (by enable), from the environment only.
    os.environ.setdefault("OTEL_BSP_SCHEDULE_DELAY", EXPORT_DELAY_MS)
    from llmgine.observability._export import named_by_env

    name = None if named_by_env() else WORKER_SERVICE_NAME
    observability.enable(bus, otlp=True, service_name=name)
    return observability.disable


async def serve(setup: Setup, transport: NatsTransport) -> int:
    """Run ``setup`` on a bus over ``transport`` and serve until SIGTERM/SIGINT."""
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    received: list[str] = []

    def on_signal(sig: signal.Signals) -> None:
        received.append(sig.name)
        stopping.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal, sig)
    bus = MessageBus(transport=transport)
    stop_tracing = export_traces(bus)
    try:
        returned = setup(bus)
        if inspect.isawaitable(returned):
            returned = await returned
        await bus.start()
        served = ", ".join(sorted(message_type_name(c) for c in transport.commands.served))
        traced = "; exporting spans over OTLP" if stop_tracing else ""
        print(
            f"llmgine worker: serving commands [{served or 'none'}] and events as "
            f"{transport.durable!r} on {transport.url} (SIGTERM or Ctrl-C stops){traced}",
            flush=True,
        )
        await stopping.wait()
        running = transport.commands.running
        print(
            f"llmgine worker: {received[0]}: stopping; finishing {running} running command(s)",
            flush=True,
        )
        await bus.stop()
        if callable(returned):  # what setup opened, closed once its handlers are done
            closed = returned()
            if inspect.isawaitable(closed):
                await closed
    finally:
        if stop_tracing is not None:
            stop_tracing()  # flushes: the last commands' spans go out before the exit
    print(f"llmgine worker: stopped ({transport.commands.answered} command(s) answered)")
    return 0


def main_worker(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="llmgine worker",
        description="Serve a bus's handlers over NATS until SIGTERM or Ctrl-C.",
    )
    parser.add_argument(
        "setup",
        help="module:function; the function gets the bus, sync or async (llmgine.llm:worker "
        "answers model calls for any provider:model spec, with this process's keys)",
    )
    parser.add_argument("--url", help="the NATS server (default: $LLMGINE_BUS_URL)")
    parser.add_argument("--durable", help="the event consumer's name, shared by like workers")
    parser.add_argument("--stream", default="LLMGINE", help="the JetStream stream")
    parser.add_argument("--subject-prefix", default="llmgine", help="the subjects' prefix")
    args = parser.parse_args(argv)
    try:
        setup = load_setup(args.setup)
        transport = NatsTransport(
            _bus_url(args.url),
            durable=args.durable,
            stream=args.stream,
            subject_prefix=args.subject_prefix,
        )
        return asyncio.run(serve(setup, transport))
    except (_BadSpec, LLMgineError) as exc:
        print(f"llmgine worker: {exc}", file=sys.stderr)
        return 2
