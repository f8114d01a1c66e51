"""A joined session (`on_session`) is one for the joining bus's observers too: they hear it
start and end, and a tracer groups what the session runs there under a session span,
without taking the commands that came with their caller's trace context out of it."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from llmgine import observability
from llmgine.bus import BusObserver, Command, Session, SessionEnded
from llmgine.bus.nats import NatsServer
from llmgine.observability import Observability, Settings
from tests.bus.nats.test_sessions_remote import Joiner, buses, marker_seen, opened
from tests.bus.nats.worker_app import Ask, Ready
from tests.deadline import DEADLINE


class Tally(Command[int]):
    """Run by the joining bus itself, in the joined session, with no caller's context."""


@pytest.fixture(autouse=True)
def _observability_off(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    observability.disable()
    yield
    observability.disable()


class Lifecycle(BusObserver):
    def __init__(self) -> None:
        self.heard: list[tuple[str, str, bool, object]] = []

    def on_session_start(self, session: Session) -> None:
        self.heard.append(("start", session.id, session.joined, session.state))

    def on_session_end(self, session: Session, error: BaseException | None) -> None:
        self.heard.append(("end", session.id, session.joined, error))


async def test_observers_hear_a_joined_session_start_and_end(nats_server: NatsServer) -> None:
    async with buses(nats_server, 2) as (a, b):
        lifecycle = Lifecycle()
        b.add_observer(lifecycle)
        joiner = Joiner()
        b.on_session(joiner)
        async with opened(a, "chat") as (session, _):
            assert lifecycle.heard == [("start", session.id, True, "open")]
        await marker_seen(a, b, "after")
        assert lifecycle.heard[1:] == [("end", session.id, True, None)]
        # It ended after the session's handlers had its SessionEnded.
        assert [e.session_id for e in joiner.ended] == [session.id]


async def test_a_joined_session_span_groups_the_joiners_spans_and_keeps_the_callers_trace(
    nats_server: NatsServer,
) -> None:
    async with buses(nats_server, 2) as (a, b):
        caller = observability.enable(a)  # the caller's, which sends the traceparent
        joiner_obs = Observability(Settings())  # the joining "process"'s own
        joiner_obs.observe(b)
        tallied: list[bool] = []

        async def setup(session: Session) -> None:
            session.on_command(Ask, lambda c: f"answer {c.question}")
            session.on_command(Tally, lambda c: 1)
            tallied.append((await session.execute(Tally())).success)
            await session.publish(Ready())  # once its Ask is served (publish waits for it)

        b.on_session(setup)
        async with opened(a, "chat") as (session, _):  # entered once Ready came
            assert tallied == [True]
            assert (await session.execute(Ask(question="q"))).value == "answer q"
        ended = asyncio.Event()
        b.on_event(SessionEnded, lambda e: ended.set(), where=lambda e: e.session_id == session.id)
        await asyncio.wait_for(ended.wait(), DEADLINE)
        await marker_seen(a, b, "after")

        theirs = await joiner_obs.wait_for_spans(3, session=session.id, timeout=DEADLINE)
        mine = await caller.wait_for_spans(2, session=session.id, timeout=DEADLINE)
        joiner_obs.close()
    by_name = {r.name: r for r in theirs}
    assert set(by_name) == {"session chat", "command Tally", "command Ask"}
    joined = by_name["session chat"]
    assert joined.attributes["llmgine.session.joined"] is True
    # What the joiner ran with no caller's context nests under its session span...
    assert by_name["command Tally"].parent_id == joined.span_id
    assert by_name["command Tally"].trace_id == joined.trace_id
    # ...and the command that came with the caller's traceparent stays in the caller's trace.
    callers_ask = next(r for r in mine if r.name == "command Ask")
    assert by_name["command Ask"].parent_id == callers_ask.span_id
    assert by_name["command Ask"].trace_id == callers_ask.trace_id
    assert joined.end_time is not None


async def test_one_observability_on_both_buses_keeps_one_session_span(
    nats_server: NatsServer,
) -> None:
    async with buses(nats_server, 2) as (a, b):
        obs = observability.enable(a)
        obs.observe(b)  # the opener's span is here already: the joined one adds none
        b.on_session(Joiner())
        async with opened(a, "chat") as (session, _):
            pass
        await marker_seen(a, b, "after")
        spans = await obs.wait_for_spans(name="session chat", timeout=DEADLINE)
    assert len(spans) == 1
    assert "llmgine.session.joined" not in spans[0].attributes
    assert "llmgine.session.unfinished" not in spans[0].attributes
    assert obs.session_span(session.id) is None
