"""`Observability.wait_for_spans`: woken by the spans it waits for, wherever they end."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import pytest

from llmgine import observability
from llmgine.bus import Command, MessageBus
from llmgine.errors import ObservabilityError, SpanWaitTimeoutError
from llmgine.observability import Observability, SpanRecord
from tests.deadline import DEADLINE
from tests.observability.test_collect import worker_provider


class Work(Command[str]):
    pass


@pytest.fixture
def obs() -> Iterator[Observability]:
    obs = observability.enable()
    yield obs
    observability.disable()


async def test_spans_already_there_return_at_once(obs: Observability) -> None:
    with obs.tracer.start_as_current_span("step"):
        pass
    found = await obs.wait_for_spans(name="step", timeout=DEADLINE)
    assert [r.name for r in found] == ["step"]
    assert isinstance(found[0], SpanRecord)


async def test_a_span_ended_later_on_this_loop_wakes_the_waiter(obs: Observability) -> None:
    bus = MessageBus()
    bus.on_command(Work, lambda command: "done")
    obs.observe(bus)
    async with bus:
        waiter = asyncio.create_task(obs.wait_for_spans(name="command *", timeout=DEADLINE))
        await asyncio.sleep(0)  # a turn: the waiter subscribes and finds nothing yet
        assert not waiter.done()
        async with bus.session("s") as session:
            await session.execute(Work())
        found = await waiter
    assert [(r.name, r.session_id) for r in found] == [("command Work", session.id)]


async def test_spans_ended_on_another_thread_wake_the_waiter(obs: Observability) -> None:
    started = threading.Event()

    def make_spans() -> None:
        started.wait(DEADLINE)
        for n in range(3):
            with obs.tracer.start_as_current_span(f"thread span {n}"):
                pass

    thread = threading.Thread(target=make_spans)
    thread.start()
    try:
        waiter = asyncio.create_task(obs.wait_for_spans(3, name="thread span *", timeout=DEADLINE))
        await asyncio.sleep(0)
        started.set()
        found = await waiter
    finally:
        thread.join(DEADLINE)
    assert sorted(r.name for r in found) == ["thread span 0", "thread span 1", "thread span 2"]


async def test_spans_of_another_process_arrive_through_the_collector(obs: Observability) -> None:
    # The official exporter on another thread, posting to the receiver's thread.
    provider = worker_provider(obs.collect())

    def export() -> None:
        with provider.get_tracer("worker").start_as_current_span("command Work"):
            pass

    waiter = asyncio.create_task(
        obs.wait_for_spans(
            name="command Work",
            where=lambda r: r.attributes.get("service.name") == "worker-7",
            timeout=DEADLINE,
        )
    )
    await asyncio.sleep(0)
    await asyncio.to_thread(export)
    found = await waiter
    assert [r.attributes["service.name"] for r in found] == ["worker-7"]
    provider.shutdown()


async def test_filters_choose_what_counts(obs: Observability) -> None:
    for name in ("a", "b", "a"):
        with obs.tracer.start_as_current_span(name):
            pass
    assert len(await obs.wait_for_spans(2, name="a", timeout=DEADLINE)) == 2
    assert len(await obs.wait_for_spans(where=lambda r: r.name == "b", timeout=DEADLINE)) == 1


async def test_a_timeout_says_what_was_seen(obs: Observability) -> None:
    with obs.tracer.start_as_current_span("command Work"):
        pass
    with pytest.raises(SpanWaitTimeoutError) as caught:
        await obs.wait_for_spans(2, name="command Work", session=None, timeout=0.05)
    error = caught.value
    assert isinstance(error, TimeoutError)
    assert isinstance(error, ObservabilityError)
    assert error.wanted == 2
    assert error.timeout == 0.05
    assert [r.name for r in error.seen] == ["command Work"]
    message = str(error)
    assert "2 finished spans named 'command Work'" in message
    assert "1 matched ('command Work')" in message
    assert "OTEL_EXPORTER_OTLP_ENDPOINT" in message


async def test_a_timeout_with_nothing_seen_says_so(obs: Observability) -> None:
    with pytest.raises(SpanWaitTimeoutError, match="none matched, of 0 finished spans"):
        await obs.wait_for_spans(name="never", session="s1", timeout=0.01)


async def test_it_leaves_no_listener_behind(obs: Observability) -> None:
    before = len(obs.buffer._listeners)
    with pytest.raises(SpanWaitTimeoutError):
        await obs.wait_for_spans(name="never", timeout=0.01)
    assert len(obs.buffer._listeners) == before


@pytest.mark.parametrize(("count", "timeout"), [(0, 1.0), (1, 0.0)])
async def test_bad_arguments_are_refused(obs: Observability, count: int, timeout: float) -> None:
    with pytest.raises(ValueError, match="must be"):
        await obs.wait_for_spans(count, timeout=timeout)
