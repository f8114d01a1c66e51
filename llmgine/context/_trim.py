"""Trimming a conversation to a token budget without breaking it.

A conversation is cut into *turn groups*: each non-system message starts a group, except
that a ``tool`` message joins the group before it, and an assistant message's group also
holds every later message up to the last tool result answering one of its calls. Dropping
or keeping whole groups is what guarantees that a tool call never loses its result (which
every provider rejects). System messages are never dropped.

A trimmed view starts at a user message whenever the conversation has one to start at
(Anthropic and Gemini reject a conversation that opens with the model's turn): kept turns
that answer a dropped user message go too when a later user message can lead; when none
can (the newest turns are all one long tool loop), the user message they answer is kept
in front of them, and its middle rounds are what is dropped.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from llmgine.context._tokens import TokenCounter, estimate_tokens
from llmgine.errors import BudgetTooSmallError
from llmgine.llm import ChatMessage, ToolResultPart

__all__ = ["Overflow", "trim_to_budget", "turn_groups"]

Overflow = Literal["raise", "keep_newest"]
"""What `trim_to_budget` does when the system instructions plus the newest turn alone
exceed the budget: ``"raise"`` a `BudgetTooSmallError`, or ``"keep_newest"``: return them
anyway (over budget) and let the provider decide."""


def turn_groups(messages: Sequence[ChatMessage]) -> list[list[int]]:
    """The indices of the non-system messages, cut into groups that must stay together.

    A tool result is tied to the most recent earlier call with its id (some providers reuse
    ids such as ``call_0`` from turn to turn), so a repeated id binds the right pair.
    """
    latest_call: dict[str, int] = {}
    reach: dict[int, int] = {}  # group start candidate -> last index it must extend to
    previous: int | None = None
    for index, message in enumerate(messages):
        if message.role == "system":
            continue
        if message.role == "tool" and previous is not None:
            reach[previous] = max(reach.get(previous, previous), index)
        for part in message.parts:
            if isinstance(part, ToolResultPart) and part.call_id in latest_call:
                call_at = latest_call[part.call_id]
                reach[call_at] = max(reach.get(call_at, call_at), index)
        for call in message.tool_calls:
            latest_call[call.id] = index
        previous = index

    groups: list[list[int]] = []
    open_until = -1
    for index, message in enumerate(messages):
        if message.role == "system":
            continue
        if groups and index <= open_until:
            groups[-1].append(index)
        else:
            groups.append([index])
        open_until = max(open_until, reach.get(index, index))
    return groups


def _counted(count: TokenCounter, message: ChatMessage) -> int:
    tokens = count(message)
    if not isinstance(tokens, int) or tokens < 0:
        raise ValueError(
            f"the token counter {count!r} returned {tokens!r} for a {message.role} message; "
            f"it must return a non-negative int"
        )
    return tokens


def trim_to_budget(
    messages: Sequence[ChatMessage],
    budget: int,
    *,
    count: TokenCounter = estimate_tokens,
    overflow: Overflow = "raise",
) -> list[ChatMessage]:
    """The newest whole turns that fit in ``budget`` tokens, with every system message.

    The oldest turn groups are dropped first; a group is kept or dropped as a whole, so an
    assistant message with tool calls stays with the tool messages answering them. The
    view starts at a user message when the conversation has one before it: turns that
    answer a dropped user message keep that message in front of them (taking its tokens
    from the budget), so a long tool loop loses its middle rounds, not its question. Kept
    messages are the same objects, in their original order.

    Args:
        messages: the conversation, oldest first.
        budget: the most tokens the result may count (by ``count``).
        count: tokens per message; `estimate_tokens` by default.
        overflow: when the system messages plus the newest group (with the user message
            it answers, if it does not start with one) exceed the budget, ``"raise"`` (the
            default) or ``"keep_newest"`` to return them anyway.

    Raises:
        BudgetTooSmallError: the system messages and the newest group (with its user
            message) do not fit, and ``overflow`` is ``"raise"``.
        ValueError: ``budget`` is negative, or ``count`` returned a negative number.
    """
    if isinstance(budget, bool) or not isinstance(budget, int) or budget < 0:
        raise ValueError(f"budget must be a non-negative int of tokens, got {budget!r}")
    if overflow not in ("raise", "keep_newest"):
        raise ValueError(f"overflow must be 'raise' or 'keep_newest', got {overflow!r}")
    tokens = [_counted(count, message) for message in messages]
    keep = {i for i, message in enumerate(messages) if message.role == "system"}
    system = sum(tokens[i] for i in keep)
    groups = turn_groups(messages)
    if not groups:
        if system > budget:
            _overflowed(overflow, budget, system, 0, 0)
        return list(messages)
    costs = [sum(tokens[i] for i in group) for group in groups]
    led = [messages[group[0]].role == "user" for group in groups]

    # Kept: groups[first:], and, when groups[first] does not start with a user message, the
    # nearest earlier group that does (`anchor`, the user message those turns answer).
    first = len(groups) - 1
    anchor = _anchor(led, first)
    used = system + costs[first] + (costs[anchor] if anchor is not None else 0)
    if used > budget:
        size = len(groups[first]) + (len(groups[anchor]) if anchor is not None else 0)
        _overflowed(overflow, budget, system, used - system, size)  # or keep them anyway
    else:
        while first > 0:  # older groups, newest first, while they fit
            older = first - 1
            if older == anchor:  # it is already kept: the run is whole again
                first, anchor = older, None
                continue
            if led[older]:  # (only when groups[first] is led too: else it were the anchor)
                grown, extra = None, costs[older]
            elif anchor is not None:
                grown, extra = anchor, costs[older]
            else:
                grown = _anchor(led, older)
                extra = costs[older] + (costs[grown] if grown is not None else 0)
            if used + extra > budget:
                break
            used += extra
            first, anchor = older, grown
    for g in range(first, len(groups)):
        keep.update(groups[g])
    if anchor is not None:
        keep.update(groups[anchor])
    return [message for i, message in enumerate(messages) if i in keep]


def _anchor(led: list[bool], first: int) -> int | None:
    """The group of the user message that group ``first`` answers, if it needs one."""
    if led[first]:
        return None
    return next((g for g in range(first - 1, -1, -1) if led[g]), None)


def _overflowed(overflow: Overflow, budget: int, system: int, newest: int, size: int) -> None:
    if overflow == "keep_newest":
        return
    messages = f"{size} message" + "s" * (size != 1)
    newest_text = f" and the newest turn ({newest} tokens, {messages})" if size else ""
    raise BudgetTooSmallError(
        f"the system instructions ({system} tokens){newest_text} need {system + newest} "
        f"tokens, more than the budget of {budget}; raise the budget, shorten them, or pass "
        f"overflow='keep_newest' to send them anyway",
        budget=budget,
        needed=system + newest,
    )
