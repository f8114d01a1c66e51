"""`ConversationContext`: one session's history on a store, and the view for the next call."""

from __future__ import annotations

from llmgine.bus import Session, SessionEnded, Subscription
from llmgine.context._store import ContextStore, SessionRef, session_key
from llmgine.context._tokens import TokenCounter, estimate_tokens
from llmgine.context._trim import Overflow, trim_to_budget
from llmgine.llm import ChatMessage

__all__ = ["ConversationContext"]


class ConversationContext:
    """A session's conversation on a store, with a token budget for what is sent.

    Nothing is cached: every call reads the store, so several processes (or contexts) can
    share one session. `messages` trims a *view*; the stored history stays whole unless
    you `compact` it.

    Args:
        store: where the history lives.
        session: a session id, or a bus `Session`.
        budget: the default token budget of `messages`; ``None`` sends everything.
        count: tokens per message (`estimate_tokens` by default).
        overflow: what trimming does when the system messages and newest turn alone exceed
            the budget (see `trim_to_budget`).
        clear_on_end: with a bus `Session`, delete the history when the session ends, for
            conversations that must not outlive it.

    Example:
        async with open_store("chats.db") as store:
            ctx = ConversationContext(store, "chat-1", budget=8_000)
            await ctx.add(ChatMessage.system("Be brief."), ChatMessage.user("Hi!"))
            reply = await model.generate(await ctx.messages())
            await ctx.add(reply.message)
    """

    def __init__(
        self,
        store: ContextStore,
        session: SessionRef,
        *,
        budget: int | None = None,
        count: TokenCounter = estimate_tokens,
        overflow: Overflow = "raise",
        clear_on_end: bool = False,
    ) -> None:
        if not isinstance(store, ContextStore):
            raise TypeError(
                f"store must be a ContextStore (e.g. open_store('memory:')), "
                f"not {type(store).__name__}"
            )
        self.store = store
        self.session_id = session_key(session)
        self.budget = budget
        self.count = count
        self.overflow: Overflow = overflow
        self._on_end: Subscription | None = None
        if clear_on_end:
            if not isinstance(session, Session):
                raise TypeError(
                    "clear_on_end=True needs a llmgine.bus.Session to watch, not a session "
                    "id; pass the session itself, or call `await ctx.clear()` yourself"
                )
            self._on_end = session.on_event(SessionEnded, self._session_ended)

    def __repr__(self) -> str:
        return f"<ConversationContext {self.session_id!r} budget={self.budget} on {self.store!r}>"

    async def _session_ended(self, event: SessionEnded) -> None:
        await self.clear()

    async def add(self, *messages: ChatMessage) -> None:
        """Append ``messages`` to the session's history, together."""
        await self.store.append(self.session_id, messages)

    async def history(self) -> list[ChatMessage]:
        """Every stored message, untrimmed."""
        return await self.store.load(self.session_id)

    async def messages(self, *, budget: int | None = None) -> list[ChatMessage]:
        """The history trimmed to ``budget`` tokens (default: this context's budget):
        what to send with the next request.

        Raises:
            BudgetTooSmallError: the system messages and the newest turn do not fit and
                ``overflow`` is ``"raise"``.
        """
        history = await self.history()
        budget = self.budget if budget is None else budget
        if budget is None:
            return history
        return trim_to_budget(history, budget, count=self.count, overflow=self.overflow)

    async def compact(self, *, budget: int | None = None) -> list[ChatMessage]:
        """Trim the *stored* history to the budget (dropping old turns for good); returns
        what was kept. Appends made meanwhile by other writers may be lost."""
        if budget is None and self.budget is None:
            raise ValueError("compact() needs a budget: pass budget= or give the context one")
        kept = await self.messages(budget=budget)
        await self.store.replace(self.session_id, kept)
        return kept

    async def clear(self) -> None:
        """Delete the session's history."""
        await self.store.delete(self.session_id)
