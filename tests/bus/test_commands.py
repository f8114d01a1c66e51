"""Commands: one handler, a result, failures, middleware, scopes."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from llmgine.bus import (
    Command,
    CommandFailed,
    CommandNext,
    CommandResult,
    ErrorInfo,
    Event,
    MessageBus,
)
from llmgine.errors import CommandFailedError, HandlerRegistrationError, NoHandlerError


class Add(Command[int]):
    a: int
    b: int


class AddTwice(Add):
    pass


class Fail(Command[None]):
    reason: str = "bad input"


class Note(Event):
    pass


async def test_sync_and_async_handlers_return_typed_results(bus: MessageBus) -> None:
    async def add(cmd: Add) -> int:
        await asyncio.sleep(0)
        return cmd.a + cmd.b

    bus.on_command(Add, add)
    result = await bus.execute(Add(a=1, b=2, session_id="s"))
    assert result.success
    assert result.value == 3
    assert result.unwrap() == 3
    assert result.error is None
    assert result.attempts == 1
    assert result.session_id == "s"
    assert result.command_type.endswith("Add")
    assert result.duration_ms >= 0


async def test_a_command_has_exactly_one_handler(bus: MessageBus) -> None:
    sub = bus.on_command(Add, lambda c: 1)
    with pytest.raises(HandlerRegistrationError, match="already has a handler"):
        bus.on_command(Add, lambda c: 2)
    sub.remove()
    bus.on_command(Add, lambda c: 3)
    assert (await bus.execute(Add(a=0, b=0))).value == 3


async def test_a_base_class_handler_runs_subclasses_unless_one_is_more_specific(
    bus: MessageBus,
) -> None:
    bus.on_command(Add, lambda c: c.a + c.b)
    assert (await bus.execute(AddTwice(a=1, b=1))).value == 2
    bus.on_command(AddTwice, lambda c: 2 * (c.a + c.b))
    assert (await bus.execute(AddTwice(a=1, b=1))).value == 4
    assert (await bus.execute(Add(a=1, b=1))).value == 2


async def test_a_missing_handler_is_a_failed_result_and_a_failure_event(
    bus: MessageBus,
) -> None:
    failed: list[CommandFailed] = []
    bus.on_event(CommandFailed, failed.append)
    result = await bus.execute(Add(a=1, b=1))
    assert not result.success
    assert isinstance(result.exception, NoHandlerError)
    assert result.error is not None
    assert "bus.on_command(Add, handler)" in result.error.message
    assert [f.command_id for f in failed] == [result.command_id]
    with pytest.raises(NoHandlerError):
        result.unwrap()


async def test_a_raising_handler_gives_a_failed_result_with_the_error(bus: MessageBus) -> None:
    def fail(cmd: Fail) -> None:
        raise ValueError(cmd.reason)

    failed: list[CommandFailed] = []
    bus.on_event(CommandFailed, failed.append)
    bus.on_command(Fail, fail)
    result = await bus.execute(Fail(session_id="s1"))
    assert not result.success
    assert result.error is not None
    assert result.error.type == "builtins.ValueError"
    assert result.error.message == "bad input"
    assert "fail" in result.error.traceback
    assert failed[0].error == result.error
    assert failed[0].session_id == "s1"
    assert failed[0].attempts == 1
    stats = bus.stats()
    assert (stats.commands_executed, stats.commands_succeeded, stats.commands_failed) == (1, 0, 1)


async def test_cancelling_the_caller_propagates_and_is_not_a_failure(bus: MessageBus) -> None:
    entered = asyncio.Event()

    async def hang(cmd: Fail) -> None:
        entered.set()
        await asyncio.Event().wait()

    bus.on_command(Fail, hang)
    task = asyncio.create_task(bus.execute(Fail()))
    await entered.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert bus.stats().commands_failed == 0


async def test_command_middleware_wraps_execution(bus: MessageBus) -> None:
    trail: list[str] = []

    async def audit(cmd: Command[Any], call_next: CommandNext) -> Any:
        trail.append(f"before:{type(cmd).__name__}")
        try:
            value = await call_next(cmd)
        except Exception as exc:
            trail.append(f"error:{exc}")
            raise
        trail.append(f"after:{value}")
        return value

    async def double(cmd: Command[Any], call_next: CommandNext) -> Any:
        return 2 * await call_next(cmd)

    bus.on_command(Add, lambda c: c.a + c.b)
    sub = bus.add_command_middleware(audit)
    bus.add_command_middleware(double)
    assert (await bus.execute(Add(a=1, b=2))).value == 6
    assert trail == ["before:Add", "after:6"]
    failed = await bus.execute(Fail())
    assert not failed.success
    assert trail[-1].startswith("error:no handler")
    sub.remove()
    trail.clear()
    assert (await bus.execute(Add(a=1, b=2))).value == 6
    assert trail == []


async def test_a_session_handler_takes_precedence_for_its_session(bus: MessageBus) -> None:
    bus.on_command(Add, lambda c: c.a + c.b)
    async with bus.session("s") as session:
        session.on_command(Add, lambda c: -1)
        assert (await session.execute(Add(a=1, b=1))).value == -1
        assert (await bus.execute(Add(a=1, b=1))).value == 2
    assert (await bus.execute(Add(a=1, b=1, session_id=session.id))).value == 2


async def test_execute_checks_its_arguments(bus: MessageBus) -> None:
    with pytest.raises(TypeError, match="publish"):
        await bus.execute(Note())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="positive"):
        await bus.execute(Add(a=1, b=1), timeout=0)


async def test_unwrap_of_a_value_less_failure_says_what_failed() -> None:
    # A result without the exception object, as one read back from JSON is.
    result = CommandResult[int](
        command_id="c1",
        command_type="Fail",
        success=False,
        error=ErrorInfo(type="ValueError", message="bad input"),
    )
    with pytest.raises(CommandFailedError, match="Fail failed: ValueError: bad input"):
        result.unwrap()


def test_a_failure_result_keeps_its_exception_and_describes_it() -> None:
    error = KeyError("missing")
    result = CommandResult[int].failure(
        error, command_id="c1", command_type="Fail", attempts=3, session_id="s1"
    )
    assert not result.success
    assert result.exception is error
    assert result.error is not None
    assert (result.error.type, result.attempts, result.session_id) == ("builtins.KeyError", 3, "s1")
    with pytest.raises(KeyError) as raised:
        result.unwrap()
    assert raised.value is error
