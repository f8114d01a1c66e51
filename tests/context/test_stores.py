"""The ContextStore contract, on every backend: memory, SQLite, PostgreSQL."""

from __future__ import annotations

import asyncio

import pytest

from llmgine.bus import MessageBus
from llmgine.context import (
    ContextStore,
    ContextStoreError,
    MemoryContextStore,
    UnknownSessionError,
)
from llmgine.llm import ChatMessage, TextPart, ToolResultPart
from tests.context.conftest import Backend
from tests.context.samples import check_numbered, every_part_kind, numbered_turn


async def test_every_part_kind_round_trips_to_equal_models(store: ContextStore) -> None:
    messages = every_part_kind()
    await store.append("chat", messages)
    loaded = await store.load("chat")
    assert loaded == messages
    assert loaded[1].parts[1].data == bytes(range(256))  # type: ignore[union-attr]


async def test_appends_accumulate_in_order_and_sessions_stay_apart(store: ContextStore) -> None:
    first, second = numbered_turn("a", 0), numbered_turn("a", 1)
    await store.append("a", first)
    await store.append("b", [ChatMessage.user("other")])
    await store.append("a", second)
    await store.append("a", [])  # nothing to add is not an error
    assert await store.load("a") == first + second
    assert await store.load("b") == [ChatMessage.user("other")]
    assert await store.sessions() == ["a", "b"]


async def test_loaded_messages_are_copies(store: ContextStore) -> None:
    message = ChatMessage.user("original")
    await store.append("s", [message])
    part = message.parts[0]
    assert isinstance(part, TextPart)
    part.text = "changed later"
    loaded = await store.load("s")
    loaded[0].parts.clear()
    assert await store.load("s") == [ChatMessage.user("original")]


async def test_unknown_session_loads_empty_and_get_says_what_to_do(store: ContextStore) -> None:
    assert await store.load("nobody") == []
    with pytest.raises(UnknownSessionError, match=r"'nobody'.*store\.sessions") as caught:
        await store.get("nobody")
    assert isinstance(caught.value, KeyError)
    assert caught.value.session_id == "nobody"
    assert str(caught.value).startswith("no conversation is stored for session 'nobody'")
    await store.append("known", [ChatMessage.user("hi")])
    assert await store.get("known") == [ChatMessage.user("hi")]


async def test_replace_delete_and_sessions(store: ContextStore) -> None:
    await store.append("s", numbered_turn("w", 0) + numbered_turn("w", 1))
    await store.append("t", [ChatMessage.user("t")])
    kept = [ChatMessage.system("sys"), *numbered_turn("w", 1)]
    await store.replace("s", kept)
    assert await store.load("s") == kept
    await store.append("s", [ChatMessage.user("after")])  # appends continue after a replace
    assert await store.load("s") == [*kept, ChatMessage.user("after")]
    await store.replace("s", [])
    assert await store.sessions() == ["t"]
    assert await store.delete("t") is True
    assert await store.delete("t") is False
    assert await store.sessions() == []


async def test_a_bus_session_is_accepted_for_its_id(store: ContextStore, bus: MessageBus) -> None:
    async with bus.session("chat") as session:
        await store.append(session, [ChatMessage.user("hi")])
        assert await store.load(session.id) == [ChatMessage.user("hi")]
        assert await store.sessions() == [session.id]


async def test_concurrent_tasks_append_whole_turns_exactly_once(backend: Backend) -> None:
    # Two store objects on the same data (two engines, two pools, for SQL backends) and
    # many tasks each: every turn must land once, whole, in its writer's order.
    async with backend.open() as one, backend.open() as two:
        stores = [one, two] if backend.persistent else [one, one]
        turns = 8

        async def writer(name: str, target: ContextStore) -> None:
            for index in range(turns):
                await target.append("shared", numbered_turn(name, index))

        names = [f"w{i}" for i in range(6)]
        await asyncio.gather(*(writer(name, stores[i % 2]) for i, name in enumerate(names)))
        check_numbered(await one.load("shared"), dict.fromkeys(names, turns))
        assert await stores[1].load("shared") == await one.load("shared")


async def test_bad_input_is_refused_and_nothing_is_written(store: ContextStore) -> None:
    with pytest.raises(TypeError, match=r"item 1 .* is a str .*ChatMessage.user"):
        await store.append("s", [ChatMessage.user("ok"), "not a message"])  # type: ignore[list-item]
    unstorable = ChatMessage.tool_results([ToolResultPart(call_id="c", content=object())])
    with pytest.raises(ContextStoreError, match=r"cannot be stored as JSON.*JSON-able"):
        await store.append("s", [ChatMessage.user("ok"), unstorable])
    with pytest.raises(ContextStoreError, match="cannot be stored as JSON"):
        await store.replace("s", [unstorable])
    with pytest.raises(ValueError, match="1 to 255 characters"):
        await store.load("")
    with pytest.raises(ValueError, match="1 to 255 characters"):
        await store.append("x" * 256, [ChatMessage.user("hi")])
    with pytest.raises(TypeError, match=r"session id .* or a llmgine\.bus\.Session"):
        await store.load(42)  # type: ignore[arg-type]
    assert await store.sessions() == []


async def test_a_closed_store_says_so_and_closes_twice(backend: Backend) -> None:
    store = backend.open()
    await store.append("s", [ChatMessage.user("hi")])
    await store.aclose()
    await store.aclose()
    calls = [
        store.append("s", [ChatMessage.user("x")]),
        store.load("s"),
        store.replace("s", []),
        store.sessions(),
        store.delete("s"),
    ]
    for call in calls:
        with pytest.raises(ContextStoreError, match="closed"):
            await call


async def test_persistent_stores_keep_history_across_reopening(backend: Backend) -> None:
    async with backend.open() as store:
        await store.append("s", every_part_kind())
    async with backend.open() as reopened:
        expected = every_part_kind() if backend.persistent else []
        assert await reopened.load("s") == expected


def test_memory_store_repr() -> None:
    assert repr(MemoryContextStore()) == "<MemoryContextStore 0 sessions>"
