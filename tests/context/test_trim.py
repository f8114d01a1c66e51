"""Trimming to a token budget: whole turn groups, system messages kept, the budget met."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmgine.context import BudgetTooSmallError, Overflow, estimate_tokens, trim_to_budget
from llmgine.context._tokens import MEDIA_TOKENS, MESSAGE_OVERHEAD_TOKENS
from llmgine.llm import (
    ChatMessage,
    FilePart,
    ImagePart,
    Part,
    ReasoningPart,
    TextPart,
    ToolCallPart,
    ToolResultPart,
)


def one_token(message: ChatMessage) -> int:
    return 1


def tool_turn(*call_ids: str) -> list[ChatMessage]:
    calls = [ToolCallPart(id=c, name="f", arguments={"x": c}) for c in call_ids]
    results = [ChatMessage.tool_results([ToolResultPart(call_id=c, content=c)]) for c in call_ids]
    return [ChatMessage.assistant([TextPart(text="checking"), *calls]), *results]


def test_estimate_counts_text_tool_json_and_media() -> None:
    overhead = MESSAGE_OVERHEAD_TOKENS
    assert estimate_tokens(ChatMessage.user("")) == overhead
    assert estimate_tokens(ChatMessage.user("abcd")) == overhead + 1
    assert estimate_tokens(ChatMessage.user("abcde")) == overhead + 2
    call = ToolCallPart(id="c", name="lookup", arguments={"q": "x"})  # {"q":"x"}: 9 chars
    assert estimate_tokens(ChatMessage.assistant([call])) == overhead + 2 + 3
    result = ToolResultPart(call_id="c", content={"a": 1})  # {"a": 1}: 8 chars
    assert estimate_tokens(ChatMessage.tool_results([result])) == overhead + 2
    thinking = ReasoningPart(text="x" * 40, signature="s" * 400)  # signatures are not text
    assert estimate_tokens(ChatMessage.assistant([thinking])) == overhead + 10
    media: list[Part] = [
        ImagePart(data=b"\x00" * 100_000, media_type="image/png"),
        FilePart(url="https://example.com/a.pdf"),
    ]
    assert estimate_tokens(ChatMessage.user(media)) == overhead + 2 * MEDIA_TOKENS


def test_oldest_turns_go_first_and_system_messages_stay() -> None:
    system = ChatMessage.system("rules")
    users = [ChatMessage.user(str(i)) for i in range(5)]
    assert trim_to_budget([system, *users], 3, count=one_token) == [system, *users[-2:]]
    assert trim_to_budget([system, *users], 6, count=one_token) == [system, *users]
    assert trim_to_budget([], 0) == []


def test_a_system_message_in_the_middle_is_kept_in_place() -> None:
    a, b, c = (ChatMessage.user(x) for x in "abc")
    late_rules = ChatMessage.system("new rules")
    assert trim_to_budget([a, late_rules, b, c], 3, count=one_token) == [late_rules, b, c]


def test_a_tool_call_and_its_results_go_or_stay_together() -> None:
    user = ChatMessage.user("q")
    turn = tool_turn("c1", "c2")  # three messages
    answer = ChatMessage.assistant("done")
    conversation = [user, *turn, answer]
    assert trim_to_budget(conversation, 5, count=one_token) == conversation
    # Not half a turn; and the answer keeps the question it answers in front of it.
    assert trim_to_budget(conversation, 4, count=one_token) == [user, answer]


def test_a_result_after_an_interruption_still_binds_its_call() -> None:
    call, result = tool_turn("c1")
    interruption, answer = ChatMessage.user("hurry up"), ChatMessage.assistant("done")
    conversation = [ChatMessage.user("q"), call, interruption, result, answer]
    assert trim_to_budget(conversation, 5, count=one_token) == conversation
    assert trim_to_budget(conversation, 4, count=one_token) == [conversation[0], answer]


def test_a_tool_message_without_its_call_never_leads_the_view() -> None:
    # Its call was lost (say, trimmed by an earlier version of the history): the result
    # joins the turn before it, so the view never starts with an unanswerable result.
    orphan = ChatMessage.tool_results([ToolResultPart(call_id="gone", content="x")])
    answer = ChatMessage.assistant("done")
    assert trim_to_budget([orphan, answer], 1, count=one_token) == [answer]


def test_the_view_starts_at_a_user_message_when_there_is_one() -> None:
    question, later = ChatMessage.user("q"), ChatMessage.user("and then?")
    rounds = [tool_turn(f"c{i}") for i in range(4)]  # one long tool loop: 2 messages each
    loop = [question, *[m for r in rounds for m in r]]
    # The newest rounds, behind the question they answer: the middle rounds go first.
    assert trim_to_budget(loop, 5, count=one_token) == [question, *rounds[2], *rounds[3]]
    assert trim_to_budget(loop, 4, count=one_token) == [question, *rounds[3]]
    with pytest.raises(BudgetTooSmallError, match=r"newest turn \(3 tokens, 3 messages\)"):
        trim_to_budget(loop, 2, count=one_token)
    assert trim_to_budget(loop, 2, count=one_token, overflow="keep_newest") == [
        question,
        *rounds[3],
    ]
    # A later user message can lead: the turns answering an earlier one are not kept.
    chat = [question, ChatMessage.assistant("a"), later, ChatMessage.assistant("b")]
    assert trim_to_budget(chat, 3, count=one_token) == chat[2:]
    # A result whose call is gone joins the user message before it, which still leads.
    orphan = ChatMessage.tool_results([ToolResultPart(call_id="gone", content="x")])
    answer = ChatMessage.assistant("done")
    with pytest.raises(BudgetTooSmallError, match=r"newest turn \(3 tokens, 3 messages\)"):
        trim_to_budget([question, orphan, answer], 2, count=one_token)
    assert trim_to_budget([question, orphan, answer], 3, count=one_token) == [
        question,
        orphan,
        answer,
    ]


def test_a_reused_call_id_binds_the_latest_call() -> None:
    first, second = tool_turn("call_0"), tool_turn("call_0")  # ids restart each turn
    kept = trim_to_budget([*first, *second], 2, count=one_token)
    assert kept == second
    assert kept[0] is second[0]


def test_too_small_a_budget_raises_or_keeps_the_newest_as_asked() -> None:
    system = ChatMessage.system("s")
    turn = tool_turn("c1", "c2")
    question = ChatMessage.user("q")
    with pytest.raises(BudgetTooSmallError, match=r"newest turn .*4 messages") as caught:
        trim_to_budget([system, question, *turn], 4, count=one_token)
    assert (caught.value.budget, caught.value.needed) == (4, 5)  # the question counts too
    assert "overflow='keep_newest'" in str(caught.value)
    kept = trim_to_budget([system, question, *turn], 3, count=one_token, overflow="keep_newest")
    assert kept == [system, question, *turn]
    with pytest.raises(BudgetTooSmallError, match=r"system instructions \(2 tokens\) need 2"):
        trim_to_budget([system, system], 1, count=one_token)
    assert trim_to_budget([system], 0, count=one_token, overflow="keep_newest") == [system]
    with pytest.raises(BudgetTooSmallError, match=r"newest turn \(1 tokens, 1 message\) need"):
        trim_to_budget([ChatMessage.user("x")], 0, count=one_token)


@pytest.mark.parametrize("budget", [-1, True, 2.5, None])
def test_budget_must_be_a_non_negative_int(budget: object) -> None:
    with pytest.raises(ValueError, match="budget must be a non-negative int"):
        trim_to_budget([], budget)  # type: ignore[arg-type]


def test_bad_overflow_and_bad_counters_are_refused() -> None:
    with pytest.raises(ValueError, match="overflow must be"):
        trim_to_budget([], 1, overflow="drop")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="returned -1 for a user message"):
        trim_to_budget([ChatMessage.user("x")], 10, count=lambda m: -1)


# -- properties -------------------------------------------------------------------------

texts = st.text(alphabet="abcdefgh ", max_size=30)
call_ids = st.sampled_from(["c0", "c1", "c2", "c3"])  # few, so ids repeat across turns


@st.composite
def conversations(draw: st.DrawFn) -> list[ChatMessage]:
    messages = [ChatMessage.system(draw(texts)) for _ in range(draw(st.integers(0, 2)))]
    for _ in range(draw(st.integers(0, 7))):
        kind = draw(st.sampled_from(["user", "assistant", "tools", "system", "orphan"]))
        if kind == "user":
            messages.append(ChatMessage.user(draw(texts)))
        elif kind == "assistant":
            messages.append(ChatMessage.assistant(draw(texts)))
        elif kind == "system":
            messages.append(ChatMessage.system(draw(texts)))
        elif kind == "orphan":  # a result whose call may not be there
            result = ToolResultPart(call_id=draw(call_ids), content=draw(texts))
            messages.append(ChatMessage.tool_results([result]))
        else:
            ids = draw(st.lists(call_ids, min_size=1, max_size=3, unique=True))
            calls: list[Part] = [
                ToolCallPart(id=i, name="f", arguments={"x": draw(texts)}) for i in ids
            ]
            messages.append(ChatMessage.assistant(calls))
            if draw(st.booleans()):  # a user interrupts before the results come back
                messages.append(ChatMessage.user(draw(texts)))
            answered = draw(st.permutations(ids))[: draw(st.integers(0, len(ids)))]
            results = [ToolResultPart(call_id=i, content=draw(texts)) for i in answered]
            if draw(st.booleans()):
                messages.extend(ChatMessage.tool_results([r]) for r in results)
            elif results:
                messages.append(ChatMessage.tool_results(results))
    return messages


def call_result_pairs(messages: Sequence[ChatMessage]) -> list[tuple[int, int]]:
    """(index of the call, index of its result): the latest earlier call with that id."""
    pairs = []
    for r, message in enumerate(messages):
        for part in message.parts:
            if isinstance(part, ToolResultPart):
                calls = [
                    c for c in range(r) if part.call_id in {t.id for t in messages[c].tool_calls}
                ]
                if calls:
                    pairs.append((calls[-1], r))
    return pairs


def segment_start(messages: Sequence[ChatMessage], end: int) -> int:
    """Where the smallest unbreakable run of turns ending at ``end`` starts."""
    pairs = call_result_pairs(messages)
    start = end
    while True:
        earlier = [c for c, r in pairs if c < start <= r]
        non_system_before = [i for i in range(start) if messages[i].role != "system"]
        if messages[start].role == "tool" and non_system_before:
            earlier.append(non_system_before[-1])
        if not earlier:
            return start
        start = min(earlier)


@settings(max_examples=300, deadline=None, report_multiple_bugs=False)
@given(conversations(), st.integers(0, 250), st.sampled_from(["raise", "keep_newest"]))
def test_trimming_never_splits_a_call_and_fits_when_it_can(
    messages: list[ChatMessage], budget: int, overflow: Overflow
) -> None:
    tokens = [estimate_tokens(m) for m in messages]
    system = {i for i, m in enumerate(messages) if m.role == "system"}
    turns = [i for i in range(len(messages)) if i not in system]
    start_of = {i: segment_start(messages, i) for i in turns}

    def segment(start: int | None) -> set[int]:
        return {i for i in turns if start_of[i] == start} if start is not None else set()

    def anchor_for(start: int) -> int | None:
        """The nearest earlier run that starts with a user message, when ``start``'s does not."""
        if messages[start].role == "user":
            return None
        led = [g for g in set(start_of.values()) if g < start and messages[g].role == "user"]
        return max(led) if led else None

    def cost(indices: set[int]) -> int:
        return sum(tokens[i] for i in indices)

    newest: set[int] = set()
    if turns:
        last = start_of[turns[-1]]
        newest = segment(last) | segment(anchor_for(last))
    needed = cost(system | newest)
    if overflow == "raise" and needed > budget:
        with pytest.raises(BudgetTooSmallError) as caught:
            trim_to_budget(messages, budget, overflow=overflow)
        assert caught.value.needed == needed
        return
    kept = trim_to_budget(messages, budget, overflow=overflow)
    kept_at = [i for i, m in enumerate(messages) if any(m is k for k in kept)]
    assert kept == [messages[i] for i in kept_at]  # the same objects, in order
    assert system <= set(kept_at)
    for call, result in call_result_pairs(messages):
        assert (call in kept_at) == (result in kept_at), (call, result)
    used = cost(set(kept_at))
    if needed > budget:  # keep_newest: exactly the system messages and the newest turn
        assert set(kept_at) == system | newest
        return
    assert used <= budget
    if not turns:
        return
    # The kept turns: a run of whole turns up to the newest, behind the user message it
    # answers when it does not start with one (so the view leads with a user message
    # whenever the conversation has one to lead with).
    suffix = [i for i in turns if all(j in kept_at for j in turns if j >= i)]
    assert suffix, "the newest turn is always kept"
    first = suffix[0]
    assert start_of[first] == first
    anchor = anchor_for(first)
    assert set(kept_at) - system - set(suffix) == segment(anchor)
    # And the next older turn would not have fit.
    position = turns.index(first)
    if position > 0:
        older = start_of[turns[position - 1]]
        assert older != anchor
        grow = cost(segment(older))
        if anchor is None:
            grow += cost(segment(anchor_for(older)))
        assert used + grow > budget
