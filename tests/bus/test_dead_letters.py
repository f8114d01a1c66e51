"""The dead-letter queue: commands that failed for good, kept for inspection and replay."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import pytest

from llmgine.bus import (
    Command,
    CommandFailed,
    CommandPolicy,
    MessageBus,
    RetryPolicy,
    message_type_name,
)
from llmgine.errors import NoHandlerError


class Ship(Command[str]):
    order: int = 0


class Bill(Command[int]):
    pass


class Warehouse:
    """A command handler that fails until the test fixes it."""

    def __init__(self) -> None:
        self.broken = True
        self.calls = 0

    def __call__(self, cmd: Ship) -> str:
        self.calls += 1
        if self.broken:
            raise RuntimeError(f"warehouse offline (call {self.calls})")
        return f"shipped {cmd.order}"


async def no_sleep(delay: float) -> None:
    return None


async def test_a_command_without_a_handler_is_dead_lettered(bus: MessageBus) -> None:
    command = Ship(order=1)

    result = await bus.execute(command)

    assert not result.success
    assert len(bus.dead_letters) == 1
    letter = bus.dead_letters.get(command.id)
    assert letter.command is command
    assert isinstance(letter.exception, NoHandlerError)
    assert letter.error.type == "llmgine.errors.NoHandlerError"
    assert "bus.on_command(Ship, handler)" in letter.error.message
    assert letter.attempts == 1
    assert letter.replays == 0
    assert letter.failed_at.tzinfo is not None
    assert abs((datetime.now(UTC) - letter.failed_at).total_seconds()) < 60


async def test_a_raising_handler_is_dead_lettered_with_its_exception(bus: MessageBus) -> None:
    bus.on_command(Ship, Warehouse())
    command = Ship()

    result = await bus.execute(command)

    letter = bus.dead_letters.get(command.id)
    assert letter.exception is result.exception
    assert isinstance(letter.exception, RuntimeError)
    assert letter.error == result.error
    assert letter.error.message == "warehouse offline (call 1)"
    assert "RuntimeError" in letter.error.traceback
    assert letter.attempts == 1


async def test_exhausted_retries_are_dead_lettered_with_their_attempts(bus: MessageBus) -> None:
    warehouse = Warehouse()
    bus.on_command(Ship, warehouse)
    bus.set_policy(Ship, CommandPolicy(retry=RetryPolicy(attempts=4, sleep=no_sleep)))
    command = Ship()

    await bus.execute(command)

    letter = bus.dead_letters.get(command.id)
    assert letter.attempts == 4
    assert letter.error.message == "warehouse offline (call 4)"  # the last error
    assert warehouse.calls == 4


async def test_successful_and_retried_commands_are_not_dead_lettered(bus: MessageBus) -> None:
    warehouse = Warehouse()
    warehouse.broken = False
    bus.on_command(Ship, warehouse)

    assert (await bus.execute(Ship())).success
    assert len(bus.dead_letters) == 0
    assert list(bus.dead_letters) == []


async def test_command_failed_is_published_with_the_commands_session(bus: MessageBus) -> None:
    seen: list[CommandFailed] = []
    bus.on_event(CommandFailed, seen.append)
    bus.on_command(Ship, Warehouse())

    async with bus.session("checkout") as session:
        in_session = Ship()
        await session.execute(in_session)
    at_bus_level = Bill()
    await bus.execute(at_bus_level)

    assert [e.command_id for e in seen] == [in_session.id, at_bus_level.id]
    first, second = seen
    assert first.session_id == session.id
    assert first.command_type == message_type_name(Ship)
    assert first.error.type == "builtins.RuntimeError"
    assert first.attempts == 1
    assert second.session_id is None
    assert second.error.type == "llmgine.errors.NoHandlerError"


async def test_replay_after_registering_the_handler_succeeds_and_removes_it(
    bus: MessageBus,
) -> None:
    command = Ship(order=7)
    await bus.execute(command)
    assert command.id in bus.dead_letters
    bus.on_command(Ship, lambda cmd: f"shipped {cmd.order}")

    result = await bus.dead_letters.replay(command.id)

    assert result.success, result.error
    assert result.value == "shipped 7"
    assert result.command_id == command.id
    assert command.id not in bus.dead_letters
    assert len(bus.dead_letters) == 0


async def test_replay_after_fixing_the_handler(bus: MessageBus) -> None:
    warehouse = Warehouse()
    bus.on_command(Ship, warehouse)
    command = Ship(order=3)
    await bus.execute(command)
    warehouse.broken = False

    result = await bus.dead_letters.replay(command.id)

    assert result.value == "shipped 3"
    assert len(bus.dead_letters) == 0
    assert bus.stats().commands_succeeded == 1


async def test_a_failing_replay_keeps_one_entry_and_counts_replays(bus: MessageBus) -> None:
    warehouse = Warehouse()
    bus.on_command(Ship, warehouse)
    command = Ship()
    await bus.execute(command)

    first = await bus.dead_letters.replay(command.id)
    second = await bus.dead_letters.replay(command.id)

    assert not first.success
    assert not second.success
    assert len(bus.dead_letters) == 1
    letter = bus.dead_letters.get(command.id)
    assert letter.replays == 2
    assert letter.error.message == "warehouse offline (call 3)"  # the newest failure
    assert letter.exception is second.exception
    assert warehouse.calls == 3


async def test_replay_all_replays_in_order_and_keeps_what_still_fails(bus: MessageBus) -> None:
    warehouse = Warehouse()
    bus.on_command(Ship, warehouse)
    ship_a, bill, ship_b = Ship(order=1), Bill(), Ship(order=2)
    commands: list[Command[Any]] = [ship_a, bill, ship_b]
    for command in commands:
        await bus.execute(command)
    warehouse.broken = False  # Bill still has no handler

    results = await bus.dead_letters.replay_all()

    assert [r.command_id for r in results] == [ship_a.id, bill.id, ship_b.id]
    assert [r.success for r in results] == [True, False, True]
    assert [letter.command.id for letter in bus.dead_letters] == [bill.id]
    assert bus.dead_letters.get(bill.id).replays == 1


async def test_replay_all_on_an_empty_queue(bus: MessageBus) -> None:
    assert await bus.dead_letters.replay_all() == []


async def test_bounded_queue_evicts_the_oldest_and_counts_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="llmgine.bus")
    async with MessageBus(dead_letter_size=2) as bus:
        commands = [Ship(order=i) for i in range(5)]
        for command in commands:
            await bus.execute(command)

        assert len(bus.dead_letters) == 2
        assert bus.dead_letters.maxlen == 2
        assert [d.command.id for d in bus.dead_letters] == [commands[3].id, commands[4].id]
        assert bus.dead_letters.evicted == 3
        stats = bus.stats()
        assert stats.dead_letters == 2
        assert stats.dead_letters_evicted == 3
        assert stats.commands_failed == 5

    evictions = [r.getMessage() for r in caplog.records if "evicted command" in r.getMessage()]
    assert len(evictions) == 3
    assert commands[0].id in evictions[0]
    assert "dead_letter_size" in evictions[0]
    assert all(r.levelno == logging.WARNING for r in caplog.records if "evicted" in r.getMessage())


async def test_a_failing_replay_does_not_evict_anything() -> None:
    async with MessageBus(dead_letter_size=2) as bus:
        first, second = Ship(), Ship()
        await bus.execute(first)
        await bus.execute(second)

        await bus.dead_letters.replay(first.id)

        assert bus.dead_letters.evicted == 0
        assert {d.command.id for d in bus.dead_letters} == {first.id, second.id}


async def test_get_remove_and_clear(bus: MessageBus) -> None:
    commands = [Ship(order=i) for i in range(3)]
    for command in commands:
        await bus.execute(command)

    assert commands[1].id in bus.dead_letters
    assert bus.dead_letters.get(commands[1].id).command is commands[1]
    removed = bus.dead_letters.remove(commands[1].id)
    assert removed.command is commands[1]
    assert commands[1].id not in bus.dead_letters
    assert [d.command for d in bus.dead_letters] == [commands[0], commands[2]]

    assert bus.dead_letters.clear() == 2
    assert len(bus.dead_letters) == 0
    assert bus.dead_letters.clear() == 0
    assert bus.stats().dead_letters == 0


UNKNOWN = r"no dead letter for command 'nope'.*list\(bus.dead_letters\)"


@pytest.mark.parametrize("operation", ["get", "remove"])
async def test_unknown_command_id_raises_a_helpful_key_error(
    bus: MessageBus, operation: str
) -> None:
    await bus.execute(Ship())
    with pytest.raises(KeyError, match=UNKNOWN):
        getattr(bus.dead_letters, operation)("nope")
    assert len(bus.dead_letters) == 1


async def test_replaying_an_unknown_command_id_raises_a_helpful_key_error(
    bus: MessageBus,
) -> None:
    with pytest.raises(KeyError, match=UNKNOWN):
        await bus.dead_letters.replay("nope")
    assert bus.stats().commands_executed == 0


def test_dead_letter_size_must_be_positive() -> None:
    with pytest.raises(ValueError, match="dead-letter queue size must be at least 1, got 0"):
        MessageBus(dead_letter_size=0)
