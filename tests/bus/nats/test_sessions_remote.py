"""Sessions across processes: a session opened on one bus is joined by the others'
`on_session` setups, its events and commands reach their handlers, and its end removes them.

Buses with their own transports (their own connections and consumers) stand for
processes; one test runs a real worker process.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager

import pytest

from llmgine.bus import (
    EventHandlerFailed,
    MessageBus,
    Session,
    SessionEnded,
    SessionStarted,
    Subscription,
)
from llmgine.bus import _sessions_remote as sessions_remote
from llmgine.bus.nats import NatsServer
from llmgine.errors import NoHandlerError
from tests.bus.conftest import nats_transport, peer_transport, spawn_worker
from tests.bus.nats.worker_app import Ask, Heard, Marker, Ready, Said
from tests.deadline import DEADLINE


@asynccontextmanager
async def buses(server: NatsServer, count: int) -> AsyncIterator[list[MessageBus]]:
    first = nats_transport(server)
    transports = [first, *(peer_transport(first) for _ in range(count - 1))]
    async with AsyncExitStack() as stack:
        yield [await stack.enter_async_context(MessageBus(transport=t)) for t in transports]


async def marker_seen(sender: MessageBus, receiver: MessageBus, tag: str) -> None:
    """Return once ``receiver`` handled a `Marker` ``sender`` publishes now: everything
    ``sender`` published before it was handled there too (one stream, in order)."""
    seen = asyncio.Event()
    sub = receiver.on_event(Marker, lambda e: seen.set(), where=lambda e: e.tag == tag)
    await sender.publish(Marker(tag=tag))
    await asyncio.wait_for(seen.wait(), DEADLINE)
    sub.remove()


def collect_into(texts: list[str]) -> Callable[[Said], None]:
    return lambda event: texts.append(event.text)


class Joiner:
    """An `on_session` setup that registers handlers like a worker's, and keeps them."""

    def __init__(self) -> None:
        self.sessions: list[Session] = []
        self.subs: list[Subscription] = []
        self.said: list[str] = []
        self.ended: list[SessionEnded] = []

    async def __call__(self, session: Session) -> None:
        self.sessions.append(session)

        async def hear(event: Said) -> None:
            self.said.append(event.text)
            await session.publish(Heard(text=event.text))

        self.subs += [
            session.on_event(Said, hear),
            session.on_event(SessionEnded, self.ended.append),
            session.on_command(Ask, lambda c: f"{session.name} on B answers {c.question}"),
        ]
        await session.publish(Ready())


@asynccontextmanager
async def opened(
    bus: MessageBus, name: str, session_id: str | None = None
) -> AsyncIterator[tuple[Session, list[str]]]:
    """A session on ``bus`` whose `Heard` events are collected, entered once it received
    `Ready` from the bus that joined it."""
    ready = asyncio.Event()
    heard: list[str] = []
    async with bus.session(name, session_id=session_id) as session:
        session.on_event(Ready, lambda e: ready.set())
        session.on_event(Heard, lambda e: heard.append(e.text))
        await asyncio.wait_for(ready.wait(), DEADLINE)
        yield session, heard


async def test_a_session_opened_on_a_reaches_b_and_its_end_removes_b_handlers(
    nats_server: NatsServer,
) -> None:
    async with buses(nats_server, 2) as (a, b):
        joiner = Joiner()
        b.on_session(joiner)
        heard_all = asyncio.Event()
        async with opened(a, "chat") as (session, heard):
            a.on_event(Heard, lambda e: heard_all.set(), where=lambda e: e.text == "two")
            await session.publish(Said(text="one"))
            await session.publish(Said(text="two"), wait=True)  # here, then the stream
            result = await session.execute(Ask(question="why"))
            assert result.success, result.error
            assert result.value == "chat on B answers why"  # A has no handler: B's session's
            await asyncio.wait_for(heard_all.wait(), DEADLINE)
            assert heard == ["one", "two"]
            (joined,) = b.joined_sessions
            assert (joined.id, joined.name, joined.state, joined.joined) == (
                session.id,
                "chat",
                "open",
                True,
            )
        await marker_seen(a, b, "after")
        assert joiner.said == ["one", "two"]
        assert [(e.session_id, e.name) for e in joiner.ended] == [(session.id, "chat")]
        assert not any(sub.active for sub in joiner.subs)
        assert joined.state == "closed"
        assert b.joined_sessions == []
        # Its command subject is gone: nothing serves Ask in that session any more.
        late = await a.execute(Ask(question="late", session_id=session.id))
        assert isinstance(late.exception, NoHandlerError), late.error
        assert "nor its session's handler" in str(late.exception)


async def test_setup_runs_for_sessions_opened_elsewhere_only_and_filters_by_name(
    nats_server: NatsServer,
) -> None:
    async with buses(nats_server, 2) as (a, b):
        on_a: list[str] = []
        on_b: list[str] = []
        a.on_session(lambda s: on_a.append(s.name))
        b.on_session(lambda s: on_b.append(s.name), name="wanted")
        started_on_a: list[str] = []
        a.on_event(SessionStarted, lambda e: started_on_a.append(e.name))
        async with a.session("other"), a.session("wanted"):
            pass
        await marker_seen(a, b, "sessions")
        assert on_a == []  # opened here: its code registers its handlers itself
        assert on_b == ["wanted"]
        # Delivered here once each: the copy on the stream was acked, not handled again.
        await a.drain()
        assert started_on_a == ["other", "wanted"]
        assert a.joined_sessions == b.joined_sessions == []


async def test_a_waited_event_is_handled_once_by_buses_sharing_a_consumer(
    nats_server: NatsServer,
) -> None:
    first = nats_transport(nats_server, durable="shared")
    async with (
        MessageBus(transport=first) as a,
        MessageBus(transport=peer_transport(first, durable="shared")) as twin,
        MessageBus(transport=peer_transport(first)) as other,
    ):
        handled: dict[str, list[str]] = {"a": [], "twin": [], "other": []}
        for name, bus in (("a", a), ("twin", twin), ("other", other)):
            bus.on_event(Said, collect_into(handled[name]))
        delivery = await a.publish(Said(text="once"), wait=True)
        assert delivery.handled == 1
        await a.drain()  # the shared consumer settled its copy (a or twin acked it unhandled)
        await marker_seen(a, other, "after")
        assert handled == {"a": ["once"], "twin": [], "other": ["once"]}
        # The shared consumer settled the marker too, so stopping `twin` first (the exit
        # order) finds nothing in its hands to leave to the server's ack_wait.
        await a.drain()


async def test_a_session_command_goes_to_its_session_first_then_to_the_type_workers(
    nats_server: NatsServer,
) -> None:
    async with buses(nats_server, 3) as (a, b, worker):
        worker.on_command(Ask, lambda c: f"worker answers {c.question}")
        await worker.start()  # serves Ask before anyone asks
        async with a.session("plain") as plain:
            fallback = await plain.execute(Ask(question="1"))
        assert fallback.value == "worker answers 1"  # no session handler anywhere
        b.on_session(Joiner())
        async with opened(a, "joined") as (session, _):
            ahead = await session.execute(Ask(question="2"))
        assert ahead.value == "joined on B answers 2"  # the session's, ahead of the bus's
        with_a_local_one = a.on_command(Ask, lambda c: "A's own")
        async with opened(a, "local") as (session, _):
            local = await session.execute(Ask(question="3"))
        assert local.value == "A's own"  # a handler in this process runs here
        with_a_local_one.remove()


async def test_a_session_id_that_is_not_a_subject_token_is_served_on_its_own_subject(
    nats_server: NatsServer,
) -> None:
    async with buses(nats_server, 2) as (a, b):
        b.on_session(Joiner())
        ids = ["team.a *", "team.a >"]  # dots and wildcards: one token each, and distinct
        for session_id in ids:
            async with opened(a, session_id, session_id) as (session, _):
                result = await session.execute(Ask(question="?"))
                assert result.value == f"{session_id} on B answers ?"
        router = b._transport.commands  # type: ignore[attr-defined]
        subjects = {router.subject(Ask, i) for i in ids}
        assert len(subjects) == 2
        assert all(s.count(".") == router.subject(Ask).count(".") + 2 for s in subjects)


async def test_a_session_command_with_no_handler_anywhere_is_no_handler_error(
    nats_server: NatsServer,
) -> None:
    async with buses(nats_server, 2) as (a, _b), a.session("lonely") as session:
        result = await session.execute(Ask(question="anyone?"))
    assert isinstance(result.exception, NoHandlerError), result.error
    assert result.attempts == 1


async def test_a_worker_process_joins_a_notebook_session(nats_server: NatsServer) -> None:
    transport = nats_transport(nats_server)
    async with MessageBus(transport=transport) as notebook:  # creates the stream first
        worker = await spawn_worker("tests.bus.nats.worker_app:sessions", nats_server, transport)
        try:
            assert worker.stdout is not None
            ready = await asyncio.wait_for(worker.stdout.readline(), DEADLINE)
            assert b"llmgine worker: serving" in ready, ready
            heard_it = asyncio.Event()
            async with opened(notebook, "notebook") as (session, heard):
                session.on_event(Heard, lambda e: heard_it.set())
                await session.publish(Said(text="hello"))
                answer = await session.execute(Ask(question="pid?"))
                assert answer.success, answer.error
                assert answer.value == "notebook answers pid?"
                await asyncio.wait_for(heard_it.wait(), DEADLINE)
                assert heard == ["hello"]
            await notebook.publish(Marker(tag="end"))
            lines = [await asyncio.wait_for(worker.stdout.readline(), DEADLINE) for _ in "ab"]
            assert lines == [f"ended {session.id}\n".encode(), b"marker end\n"]
            # The worker left the session: its command subject is gone with it.
            late = await notebook.execute(Ask(question="late", session_id=session.id))
            assert isinstance(late.exception, NoHandlerError), late.error
        finally:
            if worker.returncode is None:
                worker.terminate()
            _, err = await asyncio.wait_for(worker.communicate(), DEADLINE)
        assert worker.returncode == 0, err.decode()
        assert b"Traceback" not in err


async def test_a_failing_setup_is_reported_under_its_name_and_retried(
    nats_server: NatsServer,
) -> None:
    async with buses(nats_server, 2) as (a, b):
        calls: list[str] = []
        retried = asyncio.Event()

        def flaky_setup(session: Session) -> None:
            calls.append(session.id)
            if len(calls) == 1:
                raise RuntimeError("not yet")
            retried.set()

        failed: list[EventHandlerFailed] = []
        b.on_event(EventHandlerFailed, failed.append)
        b.on_session(flaky_setup)
        async with a.session("retried") as session:
            await asyncio.wait_for(retried.wait(), DEADLINE)  # redelivered after 0.01 s
        await marker_seen(a, b, "after")
        assert [f.handler for f in failed] == [
            "on_session(test_a_failing_setup_is_reported_"
            "under_its_name_and_retried.<locals>.flaky_setup)"
        ]
        assert calls == [session.id, session.id]
        assert b.joined_sessions == []  # and its end came too


async def test_past_max_joined_the_oldest_session_is_left_with_a_warning(
    nats_server: NatsServer, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(sessions_remote, "MAX_JOINED", 1)
    async with buses(nats_server, 2) as (a, b):
        joiner = Joiner()
        b.on_session(joiner)
        async with opened(a, "first") as (first, _), opened(a, "second") as (second, _):
            assert [s.id for s in b.joined_sessions] == [second.id]
            assert joiner.sessions[0].state == "closed"
            assert not any(sub.active for sub in joiner.subs[:3])
        assert "leaving the oldest" in caplog.text
        assert first.id in caplog.text
