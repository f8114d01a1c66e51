"""W3C trace context over NATS: the receiving side's spans are children of the sender's."""

from __future__ import annotations

from collections.abc import Iterator

import pandas as pd
import pytest

from llmgine import observability
from llmgine.bus import Command, Event, MessageBus
from llmgine.bus.nats import NatsServer
from tests.bus.conftest import nats_transport, peer_transport
from tests.bus.nats.test_commands import Double
from tests.deadline import DEADLINE


class Announce(Command[None]):
    text: str


class Announced(Event):
    text: str


class Note(Command[str]):
    text: str


@pytest.fixture(autouse=True)
def _observability_off() -> Iterator[None]:
    observability.disable()
    yield
    observability.disable()


def only(spans: pd.DataFrame, name: str) -> pd.Series:
    rows = spans[spans["name"] == name]
    assert len(rows) == 1, spans[["name", "trace_id", "span_id", "parent_id"]]
    return rows.iloc[0]


async def test_a_remote_command_span_is_a_child_of_the_callers(nats_server: NatsServer) -> None:
    transport = nats_transport(nats_server)
    async with (
        MessageBus(transport=transport) as caller,
        MessageBus(transport=peer_transport(transport)) as worker,
    ):
        worker.on_command(Double, lambda c: c.n * 2)
        await worker.start()  # subscribed outside any span: nothing leaks in-process
        obs = observability.enable(caller)
        obs.observe(worker)
        result = await caller.execute(Double(n=2))
        assert result.value == 4
    spans = obs.spans_df()
    spans = spans[spans["name"] == "command Double"]
    assert len(spans) == 2, spans
    root = spans[spans["parent_id"].isna()]
    child = spans[spans["parent_id"].notna()]
    assert len(root) == 1, spans
    assert len(child) == 1, spans
    assert child.iloc[0]["trace_id"] == root.iloc[0]["trace_id"]
    assert child.iloc[0]["parent_id"] == root.iloc[0]["span_id"]


async def test_an_events_handlers_run_under_the_publishers_span(nats_server: NatsServer) -> None:
    transport = nats_transport(nats_server)
    async with (
        MessageBus(transport=transport) as sender,
        MessageBus(transport=peer_transport(transport)) as receiver,
    ):

        async def announce(c: Announce) -> None:
            await sender.publish(Announced(text=c.text))  # inside the command's span

        noted: list[str] = []

        async def on_announced(e: Announced) -> None:
            noted.append((await receiver.execute(Note(text=e.text))).unwrap())

        sender.on_command(Announce, announce)
        receiver.on_command(Note, lambda c: c.text.upper())
        receiver.on_event(Announced, on_announced)
        await receiver.start()
        obs = observability.enable(sender)
        obs.observe(receiver)
        assert (await sender.execute(Announce(text="hi"))).success
        await sender.drain()
        await receiver.drain()
    assert noted == ["HI"]
    spans = obs.spans_df()
    announce_span = only(spans, "command Announce")
    note_span = only(spans, "command Note")
    assert note_span["trace_id"] == announce_span["trace_id"]
    assert note_span["parent_id"] == announce_span["span_id"]


async def test_nothing_is_propagated_while_observability_is_off(nats_server: NatsServer) -> None:
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider

    transport = nats_transport(nats_server)
    seen: list[bool] = []
    async with (
        MessageBus(transport=transport) as caller,
        MessageBus(transport=peer_transport(transport)) as worker,
    ):

        def handler(c: Double) -> int:
            seen.append(trace.get_current_span().get_span_context().is_valid)
            return c.n

        worker.on_command(Double, handler)
        await worker.start()
        with TracerProvider().get_tracer("test").start_as_current_span("mine"):
            assert (await caller.execute(Double(n=1))).value == 1
    assert seen == [False]


async def test_a_traceparent_is_ignored_where_observability_is_off(
    nats_server: NatsServer,
) -> None:
    import nats
    from opentelemetry import trace

    from llmgine.bus import to_json

    transport = nats_transport(nats_server)
    seen: list[bool] = []

    def handler(c: Double) -> int:
        seen.append(trace.get_current_span().get_span_context().is_valid)
        return c.n

    async with MessageBus(transport=transport) as worker:
        worker.on_command(Double, handler)
        await worker.start()
        nc = await nats.connect(transport.url)
        try:
            traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
            reply = await nc.request(
                transport.commands.subject(Double),
                to_json(Double(n=3)).encode(),
                timeout=DEADLINE,
                headers={"traceparent": traceparent},
            )
        finally:
            await nc.close()
    assert b'"value":3' in reply.data
    assert seen == [False]
