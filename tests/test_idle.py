"""`when_idle`: work that waits for a turn of the loop with nothing else ready, bounded."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable

import pytest

from llmgine import _idle
from llmgine._idle import MAX_TURNS, is_stopping, ready_callbacks, when_idle


async def test_work_waits_until_the_request_is_fully_written() -> None:
    # An HTTP client yields between a request's headers and its body; the server waits
    # for the body, so work must not run in between.
    order: list[str] = []
    response = asyncio.get_running_loop().create_future()

    async def client() -> None:
        order.append("headers")
        await asyncio.sleep(0)  # the client's checkpoint between the two writes
        order.append("body")
        await response  # now the loop waits for the network: idle

    task = asyncio.create_task(client())
    when_idle(asyncio.get_running_loop(), lambda: order.append("work"))
    when_idle(asyncio.get_running_loop(), lambda: response.set_result(None))
    await task
    assert order == ["headers", "body", "work"]


async def test_a_loop_that_is_never_idle_still_gets_the_work_done_within_max_turns() -> None:
    turns = 0
    ran_at: list[int] = []

    async def busy() -> None:
        nonlocal turns
        for _ in range(4 * MAX_TURNS):
            turns += 1
            await asyncio.sleep(0)

    task = asyncio.create_task(busy())
    when_idle(asyncio.get_running_loop(), lambda: ran_at.append(turns))
    await task
    assert len(ran_at) == 1
    assert 1 <= ran_at[0] <= MAX_TURNS + 1


def test_work_whose_turn_comes_as_the_loop_stops_runs_before_it_stops() -> None:
    ran: list[str] = []
    loop = asyncio.new_event_loop()
    try:
        loop.call_soon(loop.stop)  # as run_until_complete does when its coroutine ends
        when_idle(loop, lambda: ran.append("work"))
        loop.call_soon(lambda: None)  # something else ready: the loop is not idle
        loop.run_forever()  # returns after this turn: the work must have run in it
    finally:
        loop.close()
    assert ran == ["work"]


async def test_a_loop_without_a_visible_ready_queue_gets_the_work_at_its_next_turn() -> None:
    class OtherLoop:  # e.g. uvloop: no `_ready` to look at
        def __init__(self) -> None:
            self.soon: list[object] = []

        def call_soon(self, fn: object, *args: object) -> None:
            self.soon.append(fn)

    other = OtherLoop()
    work = lambda: None  # noqa: E731
    when_idle(other, work)  # type: ignore[arg-type]
    assert other.soon == [work]


async def test_pieces_of_work_run_together_in_order_at_the_first_idle_turn() -> None:
    loop = asyncio.get_running_loop()
    order: list[str] = []
    done = loop.create_future()
    when_idle(loop, lambda: order.append("first"))
    when_idle(loop, lambda: order.append("second"))
    when_idle(loop, lambda: done.set_result(len(order)))
    assert await done == 2  # one turn: they did not take each other for activity
    assert order == ["first", "second"]


async def test_failing_work_is_reported_and_the_rest_still_runs() -> None:
    loop = asyncio.get_running_loop()
    reported: list[dict[str, object]] = []
    loop.set_exception_handler(lambda _loop, context: reported.append(context))
    done = loop.create_future()

    def broken() -> None:
        raise RuntimeError("idle bug")

    try:
        when_idle(loop, broken)
        when_idle(loop, lambda: done.set_result("ran"))
        assert await done == "ran"
    finally:
        loop.set_exception_handler(None)
    assert len(reported) == 1
    assert isinstance(reported[0]["exception"], RuntimeError)
    assert "idle-time work" in str(reported[0]["message"])


@pytest.mark.parametrize("make", [asyncio.new_event_loop, asyncio.SelectorEventLoop])
def test_the_asyncio_internals_when_idle_reads_still_mean_what_it_needs(
    make: Callable[[], asyncio.AbstractEventLoop],
) -> None:
    # llmgine._idle reads asyncio's private BaseEventLoop._ready and _stopping (nothing
    # public says whether other callbacks are ready). If this fails, a Python release
    # changed them and when_idle has fallen back to the next turn: update llmgine/_idle.py.
    loop = make()
    try:
        ready = ready_callbacks(loop)
        assert ready is not None, (
            f"{type(loop).__name__} has no deque `_ready` any more (Python "
            f"{sys.version.split()[0]}): update ready_callbacks() in llmgine/_idle.py"
        )
        seen: list[tuple[str, int, bool]] = []

        def look(label: str) -> None:
            seen.append((label, len(ready), is_stopping(loop)))

        def alone() -> None:
            look("alone")
            loop.stop()
            look("after stop()")

        loop.call_soon(look, "busy")
        loop.call_soon(lambda: None)
        loop.call_soon(loop.call_soon, alone)  # next turn, with nothing beside it
        loop.run_forever()
    finally:
        loop.close()
    assert seen == [("busy", 2, False), ("alone", 0, False), ("after stop()", 0, True)], (
        f"asyncio's `_ready` / `_stopping` no longer behave as llmgine/_idle.py expects "
        f"(Python {sys.version.split()[0]}): {seen}"
    )


def test_an_asyncio_loop_without_its_ready_queue_is_logged_and_still_served(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # What a Python release that moved `_ready` would look like at run time.
    monkeypatch.setattr(_idle, "_warned", False)
    monkeypatch.setattr(_idle, "ready_callbacks", lambda loop: None)
    loop = asyncio.new_event_loop()
    try:
        ran: list[str] = []
        when_idle(loop, lambda: ran.append("work"))
        when_idle(loop, lambda: ran.append("more"))
        loop.call_soon(loop.stop)
        loop.run_forever()
    finally:
        loop.close()
    assert ran == ["work", "more"]
    warnings = [r for r in caplog.records if "llmgine._idle" in r.getMessage()]
    assert len(warnings) == 1  # once, not per piece of work
    assert "next turn" in warnings[0].getMessage()
