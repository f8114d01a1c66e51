"""The tool loop: model, tools, model, ... until the model answers without tool calls.

Each round is one model call; the tool calls it asks for run concurrently through a
`ToolManager`, and their results (in call order, failures as error results the model can
react to) go back in the next request. The assistant message of each round is the
response's parts exactly as they came (reasoning with its signatures, tool calls with
Gemini's thought signatures), which the providers need to continue.

The loop stops when the model answers without tool calls (``"answered"``), when a tool made
with ``ends_loop=True`` succeeded (``"final_tool"``), or after ``max_rounds`` model calls
that all asked for tools: then the last round's tools have run (so the conversation is
valid to continue) and `ToolLoopLimitError` is raised, carrying the result so far.

A ``tool_choice`` that forces a tool (``"required"``, ``ToolName``) applies to the first
round only; later rounds send ``"auto"``, or a model that obeys could never answer (agent
frameworks reset it the same way). The exception is a forced choice that can itself end
the loop: ``"required"`` when an ``ends_loop`` tool is among the tools, or the ``ToolName``
of one; it stays, so the model keeps being held to the "answer" tool, as the recorded
conversations of pydantic-ai's output tools do.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncGenerator, Callable, Iterable
from types import TracebackType
from typing import Any

from llmgine.bus import Event, MessageBus, Payload, Session
from llmgine.errors import ToolLoopLimitError
from llmgine.llm import (
    ChatMessage,
    LLMRequest,
    LLMResponse,
    Model,
    Prompt,
    StreamItem,
    ToolCallPart,
    ToolName,
    ToolResultPart,
    Usage,
    get_model,
    tracer_for,
)
from llmgine.tools._events import (
    StopReason,
    ToolLoopFinished,
    ToolLoopRoundFinished,
    ToolLoopRoundStarted,
)
from llmgine.tools._manager import ToolManager
from llmgine.tools._tool import Tool

__all__ = [
    "RoundStart",
    "ToolLoopItem",
    "ToolLoopResult",
    "ToolLoopStream",
    "ToolResultItem",
    "run_tool_loop",
    "stream_tool_loop",
]


class ToolLoopResult(Payload):
    """What a tool loop did: the final response, the whole conversation (the prompt's
    messages first), every round's response and every tool result, in order."""

    loop_id: str
    response: LLMResponse
    messages: list[ChatMessage]
    responses: list[LLMResponse]
    tool_results: list[ToolResultPart]
    rounds: int
    stop_reason: StopReason

    @property
    def text(self) -> str:
        """The final response's text."""
        return self.response.text

    @property
    def usage(self) -> Usage:
        """The tokens of every round, added up."""
        total = Usage()
        for response in self.responses:
            total = total + response.usage
        return total

    @property
    def cost_usd(self) -> float | None:
        """The cost of every round added up (None when no round's cost is known)."""
        costs = [r.cost_usd for r in self.responses if r.cost_usd is not None]
        return sum(costs) if costs else None


class RoundStart(Payload):
    """Stream item: round ``round`` begins (its model stream follows)."""

    round: int


class ToolResultItem(Payload):
    """Stream item: a tool call of round ``round`` ended (results arrive as the calls
    finish; ``index`` is the call's place in the round, the order the model is sent)."""

    round: int
    index: int
    call: ToolCallPart
    result: ToolResultPart


ToolLoopItem = StreamItem | RoundStart | ToolResultItem | ToolLoopResult


class ToolLoopStream:
    """A tool loop in progress: iterate for `RoundStart`, each round's model `StreamItem`s,
    `ToolResultItem`s, and last the `ToolLoopResult` (also ``.result`` afterwards).

    Example:
        async with stream_tool_loop(model, "Weather in Paris?", [get_weather]) as loop:
            async for item in loop:
                if isinstance(item, TextDelta):
                    print(item.text, end="")
        print(loop.result.rounds)
    """

    def __init__(self, items: AsyncGenerator[ToolLoopItem, None]) -> None:
        self._items = items
        self.result: ToolLoopResult | None = None

    def __aiter__(self) -> ToolLoopStream:
        return self

    async def __anext__(self) -> ToolLoopItem:
        item = await self._items.__anext__()
        if isinstance(item, ToolLoopResult):
            self.result = item
        return item

    async def get_result(self) -> ToolLoopResult:
        """Run the rest of the loop and return its result."""
        async for _ in self:
            pass
        if self.result is None:  # pragma: no cover - the loop always ends with a result
            raise RuntimeError("the tool loop ended without a result")
        return self.result

    async def aclose(self) -> None:
        """Stop the loop: the model stream is closed and running tools are cancelled."""
        await self._items.aclose()

    async def __aenter__(self) -> ToolLoopStream:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


def _manager(
    tools: ToolManager | Iterable[Tool | Callable[..., Any]],
    bus: MessageBus | None,
    session: Session | None,
) -> ToolManager:
    if isinstance(tools, ToolManager):
        return tools
    return ToolManager(tools, bus=bus, session=session)


async def _loop(
    model: Model | str,
    prompt: Prompt,
    tools: ToolManager | Iterable[Tool | Callable[..., Any]],
    *,
    max_rounds: int,
    bus: MessageBus | None,
    session: Session | None,
    streaming: bool,
    params: dict[str, Any],
) -> AsyncGenerator[ToolLoopItem, None]:
    manager = _manager(tools, bus, session)
    session = session if session is not None else manager.session
    bus = session.bus if session is not None else (bus if bus is not None else manager.bus)
    owned = isinstance(model, str)
    # A model made here works for the loop's bus: traced while that bus is observed.
    chosen = get_model(model, tracer=tracer_for(bus)) if isinstance(model, str) else model
    loop_id = uuid.uuid4().hex

    async def publish(event: Event) -> None:
        if bus is not None:
            event.session_id = session.id if session is not None else None
            await bus.publish(event)

    request = chosen.request(prompt, **params)
    request = request.model_copy(update={"tools": manager.specs()})
    later = _later_rounds(request, manager)
    messages = list(request.messages)
    responses: list[LLMResponse] = []
    results: list[ToolResultPart] = []

    async def finish(reason: StopReason) -> ToolLoopResult:
        result = ToolLoopResult(
            loop_id=loop_id,
            response=responses[-1],
            messages=messages,
            responses=responses,
            tool_results=results,
            rounds=len(responses),
            stop_reason=reason,
        )
        await publish(
            ToolLoopFinished(
                loop_id=loop_id, rounds=result.rounds, stop_reason=reason, usage=result.usage
            )
        )
        return result

    try:
        for round in range(max_rounds):
            await publish(
                ToolLoopRoundStarted(
                    loop_id=loop_id, round=round, provider=chosen.provider, model=chosen.name
                )
            )
            yield RoundStart(round=round)
            base = request if round == 0 else later
            current = base.model_copy(update={"messages": list(messages)})
            if streaming:
                async with chosen.stream(current) as stream:
                    async for item in stream:
                        yield item
                response = stream.response
                if response is None:  # pragma: no cover - a finished stream has its response
                    raise RuntimeError("the model stream ended without a response")
            else:
                response = await chosen.generate(current)
            responses.append(response)
            messages.append(response.message)
            calls = response.tool_calls
            if not calls:
                await publish(
                    ToolLoopRoundFinished(
                        loop_id=loop_id,
                        round=round,
                        tool_calls=0,
                        failed_tool_calls=0,
                        finish_reason=response.finish_reason,
                    )
                )
                yield await finish("answered")
                return
            done: list[ToolResultPart | None] = [None] * len(calls)
            each = manager.execute_as_completed(calls, round=round, loop_id=loop_id)
            async with contextlib.aclosing(each):
                async for index, outcome in each:
                    done[index] = outcome
                    yield ToolResultItem(
                        round=round, index=index, call=calls[index], result=outcome
                    )
            ordered = [r for r in done if r is not None]
            results.extend(ordered)
            messages.append(ChatMessage.tool_results(ordered))
            failed = sum(r.is_error for r in ordered)
            await publish(
                ToolLoopRoundFinished(
                    loop_id=loop_id,
                    round=round,
                    tool_calls=len(calls),
                    failed_tool_calls=failed,
                    finish_reason=response.finish_reason,
                )
            )
            if any(_ends_loop(manager, c, r) for c, r in zip(calls, ordered, strict=True)):
                yield await finish("final_tool")
                return
        limited = await finish("max_rounds")
        raise ToolLoopLimitError(
            f"the model was still calling tools after max_rounds={max_rounds} model calls; "
            "raise max_rounds, give the model clearer instructions, or continue the "
            "conversation from error.result.messages",
            result=limited,
        )
    finally:
        if owned:
            await chosen.aclose()


def _later_rounds(request: LLMRequest, manager: ToolManager) -> LLMRequest:
    """The request of the rounds after the first: a forced tool choice relaxed to "auto",
    unless the tool it forces can end the loop (see the module docstring)."""
    choice = request.tool_choice
    if choice == "required":
        keep = any(t.ends_loop for t in manager)
    elif isinstance(choice, ToolName):
        keep = choice.name in manager and manager.get(choice.name).ends_loop
    else:
        return request
    return request if keep else request.model_copy(update={"tool_choice": "auto"})


def _ends_loop(manager: ToolManager, call: ToolCallPart, result: ToolResultPart) -> bool:
    return not result.is_error and call.name in manager and manager.get(call.name).ends_loop


def _check(max_rounds: int) -> None:
    if max_rounds < 1:
        raise ValueError(f"max_rounds must be at least 1, got {max_rounds}")


async def run_tool_loop(
    model: Model | str,
    prompt: Prompt,
    tools: ToolManager | Iterable[Tool | Callable[..., Any]],
    *,
    max_rounds: int = 8,
    bus: MessageBus | None = None,
    session: Session | None = None,
    **params: Any,
) -> ToolLoopResult:
    """Run model -> tools -> model rounds until the model answers without tool calls.

    Args:
        model: a `Model` or a ``"provider:model"`` spec (a model made from a spec is traced
            through the bus's tracer, as the tools are, and closed at the end).
        prompt: a string, messages or an `LLMRequest` (its ``tools`` are replaced by the
            manager's; its other fields are kept every round, except a ``tool_choice``
            that forces a tool: ``"required"`` or ``ToolName`` applies to the first round
            only, later rounds send ``"auto"`` so the model can answer. It stays when the
            forced tool can end the loop: ``"required"`` with an ``ends_loop`` tool among
            the tools, or the ``ToolName`` of one).
        tools: a `ToolManager`, or tools and functions to make one of.
        max_rounds: at most this many model calls.
        bus / session: where round events go (`ToolLoopRoundStarted`, ...), and, when
            ``tools`` is not a manager, tool events too; by default the manager's.
        params: request fields for every round (temperature, max_tokens, ...;
            ``tool_choice`` as above).

    Raises:
        ToolLoopLimitError: still calling tools after ``max_rounds``; ``.result`` holds
            the conversation so far. Errors of the model calls propagate as they are.

    Example:
        result = await run_tool_loop("openai:gpt-4o-mini", "Weather in Paris?", [get_weather])
        print(result.text, result.rounds, result.usage)
    """
    _check(max_rounds)
    items = _loop(
        model,
        prompt,
        tools,
        max_rounds=max_rounds,
        bus=bus,
        session=session,
        streaming=False,
        params=params,
    )
    async with contextlib.aclosing(ToolLoopStream(items)) as loop:
        return await loop.get_result()


def stream_tool_loop(
    model: Model | str,
    prompt: Prompt,
    tools: ToolManager | Iterable[Tool | Callable[..., Any]],
    *,
    max_rounds: int = 8,
    bus: MessageBus | None = None,
    session: Session | None = None,
    **params: Any,
) -> ToolLoopStream:
    """`run_tool_loop`, streamed: each round's model stream, tool results as they finish,
    and last the `ToolLoopResult` (see `ToolLoopStream`). A forced ``tool_choice`` applies
    to the first round only, as in `run_tool_loop`."""
    _check(max_rounds)
    return ToolLoopStream(
        _loop(
            model,
            prompt,
            tools,
            max_rounds=max_rounds,
            bus=bus,
            session=session,
            streaming=True,
            params=params,
        )
    )
