"""`ToolManager`: the registry, threads and the loop, the concurrency limit, timeouts,
parallel calls in call order, failures as error results, bus events and tool spans."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from llmgine import observability
from llmgine.bus import Event, MessageBus
from llmgine.llm import ToolCallPart, ToolResultPart
from llmgine.observability import semconv
from llmgine.tools import (
    DuplicateToolError,
    ExecuteTool,
    Tool,
    ToolCallFailed,
    ToolCallFinished,
    ToolCallStarted,
    ToolError,
    ToolManager,
    UnknownToolError,
    tool,
)


def call(name: str, index: int = 0, **arguments: Any) -> ToolCallPart:
    return ToolCallPart(id=f"call_{index}", name=name, arguments=arguments)


def add(a: int, b: int = 1) -> int:
    """Add two numbers."""
    return a + b


async def collect(bus: MessageBus) -> list[Event]:
    """Every event the bus delivers from now on (read it after ``bus.drain()``)."""
    seen: list[Event] = []
    bus.on_event(Event, seen.append)
    return seen


@pytest.fixture
def observed() -> Iterator[observability.Observability]:
    obs = observability.enable()
    yield obs
    observability.disable()


# -- the registry --------------------------------------------------------------------------


def test_register_get_and_list_tools() -> None:
    manager = ToolManager([add])
    made = manager.register(lambda text: text.upper(), name="shout")
    assert isinstance(made, Tool)
    assert "add" in manager
    assert "shout" in manager
    assert 42 not in manager
    assert len(manager) == 2
    assert [t.name for t in manager] == ["add", "shout"]
    assert [s.name for s in manager.specs()] == ["add", "shout"]
    assert manager.get("add").description == "Add two numbers."
    assert manager.register(manager.get("add"), name="plus").name == "plus"
    assert repr(manager) == "<ToolManager ['add', 'shout', 'plus']>"
    manager.unregister("shout")
    assert "shout" not in manager


def test_duplicates_and_unknown_names_are_clear_errors() -> None:
    manager = ToolManager([add])
    with pytest.raises(DuplicateToolError, match=r"already registered.*another name"):
        manager.register(add)
    with pytest.raises(UnknownToolError, match=r"no tool named 'sub'; the tools are: add"):
        manager.get("sub")
    with pytest.raises(UnknownToolError, match=r"\(none\)"):
        ToolManager().unregister("x")


async def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="max_concurrency"):
        ToolManager(max_concurrency=0)
    with pytest.raises(ValueError, match="timeout"):
        ToolManager(timeout=0)
    async with MessageBus() as one, MessageBus() as other, one.session("s") as session:
        with pytest.raises(ValueError, match="another bus"):
            ToolManager(bus=other, session=session)
    with pytest.raises(ToolError, match="needs a bus"):
        ToolManager().install()


# -- where tools run -----------------------------------------------------------------------


async def test_sync_tools_run_in_a_thread_and_async_tools_on_the_loop() -> None:
    loop_thread = threading.get_ident()

    def sync_tool() -> int:
        return threading.get_ident()

    async def async_tool() -> int:
        return threading.get_ident()

    manager = ToolManager([sync_tool, async_tool])
    in_thread, on_loop = await manager.execute_all([call("sync_tool", 0), call("async_tool", 1)])
    assert in_thread.content != loop_thread
    assert on_loop.content == loop_thread
    assert not in_thread.is_error


async def test_at_most_max_concurrency_tools_run_at_once(bus: MessageBus) -> None:
    gates = [asyncio.Event() for _ in range(5)]
    started: asyncio.Queue[int] = asyncio.Queue()
    active = peak = 0

    async def hold(n: int) -> int:
        nonlocal active, peak
        active += 1
        peak = max(peak, active)
        started.put_nowait(n)
        await gates[n].wait()
        active -= 1
        return n

    events = await collect(bus)
    manager = ToolManager([hold], bus=bus, max_concurrency=2)
    running = asyncio.create_task(manager.execute_all([call("hold", n, n=n) for n in range(5)]))
    assert {await started.get(), await started.get()} == {0, 1}
    for n in range(5):  # each release lets exactly one waiting call in
        gates[n].set()
        if n + 2 < 5:
            assert await started.get() == n + 2
    results = await running
    assert [r.content for r in results] == [0, 1, 2, 3, 4]
    assert peak == 2

    await bus.drain()
    outstanding = most = 0
    for event in events:
        if isinstance(event, ToolCallStarted):
            outstanding += 1
        elif isinstance(event, ToolCallFinished):
            outstanding -= 1
        most = max(most, outstanding)
    assert most == 2
    assert sum(isinstance(e, ToolCallFinished) for e in events) == 5


async def test_parallel_calls_return_in_call_order_whatever_order_they_finish() -> None:
    gates = [asyncio.Event() for _ in range(3)]
    finished: list[int] = []
    done = [asyncio.Event() for _ in range(3)]

    async def step(n: int) -> str:
        await gates[n].wait()
        finished.append(n)
        done[n].set()
        return f"result {n}"

    manager = ToolManager([step])
    running = asyncio.create_task(manager.execute_all([call("step", n, n=n) for n in range(3)]))
    for n in (2, 1, 0):
        gates[n].set()
        await done[n].wait()
    results = await running
    assert finished == [2, 1, 0]
    assert [r.call_id for r in results] == ["call_0", "call_1", "call_2"]
    assert [r.content for r in results] == ["result 0", "result 1", "result 2"]


async def test_as_completed_yields_each_result_with_its_call_index() -> None:
    gate = asyncio.Event()

    async def slow() -> str:
        await gate.wait()
        return "slow"

    async def fast() -> str:
        return "fast"

    manager = ToolManager([slow, fast])
    seen = []
    async for index, result in manager.execute_as_completed([call("slow", 0), call("fast", 1)]):
        seen.append((index, result.content))
        gate.set()  # only once the fast one came back
    assert seen == [(1, "fast"), (0, "slow")]


# -- timeouts ------------------------------------------------------------------------------


async def test_an_async_tool_past_its_timeout_becomes_a_timeout_error(bus: MessageBus) -> None:
    never = asyncio.Event()

    async def stuck() -> None:
        await never.wait()

    events = await collect(bus)
    result = await ToolManager([stuck], bus=bus, timeout=0.05).execute(call("stuck"))
    assert result.is_error
    assert "timed out after 0.05 s and was cancelled" in result.text
    await bus.drain()
    [failed] = [e for e in events if isinstance(e, ToolCallFailed)]
    assert (failed.error_kind, failed.error_type) == ("timeout", "ToolTimeoutError")


async def test_a_tool_timeout_overrides_the_managers_and_sync_tools_are_abandoned() -> None:
    release = threading.Event()
    finished = threading.Event()

    @tool(timeout=0.05)
    def blocking() -> str:
        release.wait(10)
        finished.set()
        return "late"

    try:
        result = await ToolManager([blocking], timeout=None).execute(call("blocking"))
        assert result.is_error
        assert "timed out after 0.05 s" in result.text
        assert not finished.is_set()  # the thread is still blocked: abandoned, not killed
    finally:
        release.set()
    await asyncio.to_thread(finished.wait, 10)
    assert finished.is_set()


async def test_no_timeout_lets_a_tool_take_its_time() -> None:
    @tool(timeout=float("inf"))
    async def patient() -> str:
        return "done"

    assert (await ToolManager([patient], timeout=0.01).execute(call("patient"))).content == "done"
    assert (await ToolManager([add], timeout=None).execute(call("add", a=1))).content == 2


async def test_a_tools_own_timeout_error_is_an_exception_not_a_timeout(bus: MessageBus) -> None:
    async def flaky() -> None:
        raise TimeoutError("upstream timed out")

    events = await collect(bus)
    result = await ToolManager([flaky], bus=bus).execute(call("flaky"))
    assert result.text == "Error: tool 'flaky' failed: TimeoutError: upstream timed out"
    await bus.drain()
    [failed] = [e for e in events if isinstance(e, ToolCallFailed)]
    assert failed.error_kind == "exception"


# -- failures become results ---------------------------------------------------------------


async def test_every_kind_of_failure_is_a_structured_error_result(bus: MessageBus) -> None:
    def explode(reason: str) -> None:
        raise ValueError(f"cannot: {reason}")

    def opaque() -> object:
        return object()

    events = await collect(bus)
    manager = ToolManager([add, explode, opaque], bus=bus)
    calls = [
        call("nope", 0),
        call("add", 1, a="not a number"),
        ToolCallPart.from_json_arguments("call_2", "add", '{"a": 1'),
        call("explode", 3, reason="no fuel"),
        call("opaque", 4),
        call("add", 5, a="2"),
    ]
    results = await manager.execute_all(calls)
    assert [r.is_error for r in results] == [True, True, True, True, True, False]
    assert all(isinstance(r, ToolResultPart) for r in results)
    assert [r.name for r in results] == ["nope", "add", "add", "explode", "opaque", "add"]
    unknown, invalid, not_json, raised, unreadable, ok = (r.text for r in results)
    assert unknown == (
        "Error: there is no tool named 'nope'. The tools are: add, explode, opaque. "
        "Call one of those, or answer without a tool."
    )
    assert invalid.startswith("Error: invalid arguments for tool 'add': a: Input should be")
    assert invalid.endswith("Call 'add' again with arguments that match its schema.")
    assert "are not a JSON object (but 7 characters of other text)" in not_json
    assert raised == "Error: tool 'explode' failed: ValueError: cannot: no fuel"
    assert "could not be read" in unreadable
    assert ok == "3"

    await bus.drain()
    failed = {e.call_id: e for e in events if isinstance(e, ToolCallFailed)}
    assert {k: v.error_kind for k, v in failed.items()} == {
        "call_0": "unknown_tool",
        "call_1": "invalid_arguments",
        "call_2": "invalid_arguments",
        "call_3": "exception",
        "call_4": "bad_result",
    }
    assert failed["call_3"].error_type == "ValueError"
    assert failed["call_3"].error is not None
    assert "cannot: no fuel" in failed["call_3"].error.message
    finished = {e.call_id: e for e in events if isinstance(e, ToolCallFinished)}
    assert [finished[f"call_{i}"].ok for i in range(6)] == [False] * 5 + [True]
    assert finished["call_3"].error_type == "ValueError"
    assert finished["call_5"].error_type is None
    assert all(e.duration_ms >= 0 for e in finished.values())


async def test_secrets_in_a_tool_error_are_redacted_before_the_model_sees_them() -> None:
    def leaky() -> None:
        raise RuntimeError("bad key sk-proj-abcdefghijklmnopqrstuvwxyz0123456789")

    result = await ToolManager([leaky]).execute(call("leaky"))
    assert "abcdefghijklmnopqrstuvwxyz" not in result.text
    assert result.text.startswith("Error: tool 'leaky' failed: RuntimeError: bad key ")


async def test_cancellation_propagates_and_is_not_a_tool_error(bus: MessageBus) -> None:
    entered = asyncio.Event()
    cancelled = asyncio.Event()

    async def wait_forever() -> None:
        entered.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    events = await collect(bus)
    manager = ToolManager([wait_forever, add], bus=bus, timeout=None)
    running = asyncio.create_task(
        manager.execute_all([call("wait_forever", 0), call("add", 1, a=1)])
    )
    await entered.wait()
    running.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running
    assert cancelled.is_set()
    await bus.drain()
    assert not [e for e in events if isinstance(e, ToolCallFailed)]


async def test_a_tool_that_raises_cancelled_error_itself_propagates_too() -> None:
    async def cancels() -> None:
        raise asyncio.CancelledError

    with pytest.raises(asyncio.CancelledError):
        await ToolManager([cancels, add]).execute_all([call("cancels", 0), call("add", 1, a=1)])


# -- the bus and the trace -----------------------------------------------------------------


async def test_events_carry_the_session_id_and_the_command_runs_tools(bus: MessageBus) -> None:
    events = await collect(bus)
    async with bus.session("chat") as session:
        manager = ToolManager([add], session=session)
        assert manager.bus is bus
        subscription = manager.install()
        outcome = await session.execute(ExecuteTool(call=call("add", a=2, b=3)))
        assert outcome.unwrap() == ToolResultPart(call_id="call_0", name="add", content=5)
        subscription.remove()
    tool_events = [e for e in events if isinstance(e, ToolCallStarted | ToolCallFinished)]
    assert [type(e).__name__ for e in tool_events] == ["ToolCallStarted", "ToolCallFinished"]
    assert {e.session_id for e in tool_events} == {session.id}

    on_bus = ToolManager([add], bus=bus)
    subscription = on_bus.install()
    outcome = await bus.execute(ExecuteTool(call=call("add", a=1)))
    assert outcome.unwrap().content == 2
    subscription.remove()


async def test_each_execution_is_a_tool_span(observed: observability.Observability) -> None:
    def explode() -> None:
        raise ValueError("boom")

    manager = ToolManager([add, explode])
    await manager.execute_all([call("add", 0, a=1), call("explode", 1), call("ghost", 2)])
    spans = {s.name: s for s in observed.buffer.finished()}
    ok = spans["execute_tool add"]
    assert ok.status == "ok"
    assert ok.attributes[semconv.TOOL_CALL_ID] == "call_0"
    assert ok.attributes[semconv.TOOL_DESCRIPTION] == "Add two numbers."
    failed = spans["execute_tool explode"]
    assert failed.status == "error"
    assert failed.attributes[semconv.ERROR_TYPE] == "builtins.ValueError"
    unknown = spans["execute_tool ghost"]
    assert unknown.attributes[semconv.ERROR_TYPE] == "llmgine.errors.UnknownToolError"
