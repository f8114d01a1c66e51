"""ConversationContext: a session's history on a store, trimmed for the next request."""

from __future__ import annotations

import pytest

from llmgine.bus import MessageBus
from llmgine.context import (
    BudgetTooSmallError,
    ContextStore,
    ConversationContext,
    MemoryContextStore,
)
from llmgine.llm import ChatMessage, LLMRequest, get_model
from tests.context.conftest import Backend


def one_token(message: ChatMessage) -> int:
    return 1


async def test_messages_are_the_trimmed_view_and_history_stays_whole(store: ContextStore) -> None:
    ctx = ConversationContext(store, "chat", budget=3, count=one_token)
    system = ChatMessage.system("be brief")
    turns = [ChatMessage.user(str(i)) for i in range(4)]
    await ctx.add(system, *turns[:2])
    await ctx.add(*turns[2:])
    assert await ctx.messages() == [system, *turns[-2:]]
    assert await ctx.messages(budget=10) == [system, *turns]
    assert await ctx.history() == [system, *turns]
    assert await ConversationContext(store, "chat").messages() == [system, *turns]  # no budget


async def test_compact_persists_the_trim_and_clear_forgets(store: ContextStore) -> None:
    ctx = ConversationContext(store, "chat", count=one_token)
    turns = [ChatMessage.user(str(i)) for i in range(4)]
    await ctx.add(*turns)
    with pytest.raises(ValueError, match="compact\\(\\) needs a budget"):
        await ctx.compact()
    assert await ctx.compact(budget=1) == turns[-1:]
    assert await store.load("chat") == turns[-1:]
    await ctx.clear()
    assert await store.sessions() == []


async def test_two_contexts_on_one_session_see_each_other(backend: Backend) -> None:
    # Nothing is cached: a second context (here a second store on the same database, as
    # another process would have) sees every message at once.
    async with backend.open() as one, backend.open() as two:
        if not backend.persistent:
            two = one
        first, second = ConversationContext(one, "s"), ConversationContext(two, "s")
        await first.add(ChatMessage.user("from first"))
        await second.add(ChatMessage.assistant("from second"))
        assert [m.text for m in await first.messages()] == ["from first", "from second"]


async def test_a_budget_too_small_raises_unless_told_to_keep_the_newest() -> None:
    store = MemoryContextStore()
    await store.append("s", [ChatMessage.system("rules"), ChatMessage.user("question")])
    with pytest.raises(BudgetTooSmallError):
        await ConversationContext(store, "s", budget=1, count=one_token).messages()
    lenient = ConversationContext(store, "s", budget=1, count=one_token, overflow="keep_newest")
    assert len(await lenient.messages()) == 2


async def test_a_bus_session_can_take_its_history_with_it(bus: MessageBus) -> None:
    store = MemoryContextStore()
    async with bus.session("chat") as session:
        ctx = ConversationContext(store, session, clear_on_end=True)
        kept = ConversationContext(store, "elsewhere")
        assert ctx.session_id == session.id
        await ctx.add(ChatMessage.user("hi"))
        await kept.add(ChatMessage.user("stays"))
        assert await store.sessions() == sorted([session.id, "elsewhere"])
    assert await store.sessions() == ["elsewhere"]


async def test_a_session_kept_after_it_ends_by_default(bus: MessageBus) -> None:
    store = MemoryContextStore()
    async with bus.session("chat") as session:
        await ConversationContext(store, session).add(ChatMessage.user("hi"))
    assert await store.load(session.id) == [ChatMessage.user("hi")]


async def test_the_model_gets_the_trimmed_view_and_its_answer_is_kept(
    store: ContextStore,
) -> None:
    requests: list[LLMRequest] = []

    def answer(request: LLMRequest) -> str:
        requests.append(request)
        return "Seven."

    model = get_model("test:scripted", responses=[answer])
    ctx = ConversationContext(store, "chat", budget=2, count=one_token)
    system, question = ChatMessage.system("Be brief."), ChatMessage.user("Name a prime.")
    await ctx.add(system, ChatMessage.user("old"), ChatMessage.assistant("old answer"))
    await ctx.add(question)
    reply = await model.generate(await ctx.messages())
    await ctx.add(reply.message)
    assert [r.messages for r in requests] == [[system, question]]
    history = await ctx.history()
    assert len(history) == 5
    assert history[-1] == reply.message
    assert history[-1].text == "Seven."


def test_misuse_is_refused_with_the_fix() -> None:
    with pytest.raises(TypeError, match="store must be a ContextStore"):
        ConversationContext({}, "s")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"clear_on_end=True needs a llmgine\.bus\.Session"):
        ConversationContext(MemoryContextStore(), "s", clear_on_end=True)
    ctx = ConversationContext(MemoryContextStore(), "s", budget=5)
    assert repr(ctx) == "<ConversationContext 's' budget=5 on <MemoryContextStore 0 sessions>>"
