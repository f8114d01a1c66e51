"""`ToolManager`: the tools of a bus or a session, and how they are executed.

Execution never raises for a tool's failure: an unknown tool, arguments that are not a
JSON object or fail validation, a timeout, an exception or an unserialisable return value
all become a `ToolResultPart` with ``is_error=True`` whose content tells the model what
went wrong, a `ToolCallFailed` event, and an error on the tool's span. Cancellation is not
a failure: `asyncio.CancelledError` propagates.

A timeout stops an async tool (it is cancelled), but not a sync tool's thread, which
Python cannot stop: the model, the `ToolCallFailed` event and the span are told it may
still be running and its effects may still happen, and when the thread ends a log line
and a `ToolCallLateFinished` event report it (so does a thread whose call was cancelled).

Invalid arguments are described by field and problem; the values the model sent appear
(redacted) only when content capture is on, as everywhere content is recorded (see
`llmgine.tools._schema`).

Each execution is a span made by the manager's `CallTracer`, given to it or else its bus's
(see `llmgine._tracing`): a manager never looks for observability.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncGenerator, Callable, Iterable, Iterator, Sequence
from typing import Any

from pydantic_core import PydanticSerializationError, to_jsonable_python

from llmgine._redact import redact_text, redacting_logger
from llmgine._tracing import CallTracer, tracer_for
from llmgine.bus import Command, ErrorInfo, Event, MessageBus, Session, Subscription
from llmgine.errors import (
    DuplicateToolError,
    ToolArgumentsError,
    ToolError,
    ToolTimeoutError,
    UnknownToolError,
)
from llmgine.llm import ToolCallPart, ToolResultPart, ToolSpec
from llmgine.tools._events import (
    ToolCallFailed,
    ToolCallFinished,
    ToolCallLateFinished,
    ToolCallStarted,
    ToolErrorKind,
)
from llmgine.tools._thread import Listener, ThreadRun
from llmgine.tools._tool import Tool

__all__ = ["ExecuteTool", "ToolManager"]

log = redacting_logger("llmgine.tools")


class ExecuteTool(Command[ToolResultPart]):
    """Run one tool call through the `ToolManager` installed on the bus or session."""

    call: ToolCallPart


class _BadResult(TypeError):
    """A tool returned something that cannot be sent to a model."""


def _content(name: str, value: Any) -> Any:
    if isinstance(value, str):
        return value
    try:
        return to_jsonable_python(value)
    except PydanticSerializationError as exc:
        raise _BadResult(
            f"tool {name!r} returned a {type(value).__name__}, which is not JSON-able; return "
            "text, JSON-able data, a dataclass or a pydantic model"
        ) from exc


class ToolManager:
    """The tools a model may call, for a bus or a session, and their execution.

    Sync tools run in a worker thread, async tools on the event loop. At most
    ``max_concurrency`` tools run at once (across every caller of this manager); each run
    gets ``timeout`` seconds unless the tool sets its own (None: no limit). A sync tool's
    thread cannot be stopped: past its timeout it is abandoned (and no longer counted),
    reported as possibly still running, and its end is logged and published as
    `ToolCallLateFinished`. With a ``bus`` (or a ``session``, whose bus it uses) each
    execution publishes `ToolCallStarted`, `ToolCallFailed` when it failed, and
    `ToolCallFinished`, with the session's id.

    Each execution is a span made by ``tracer``: by default the bus's
    (``llmgine.llm.tracer_for(bus)``, traced while observability observes that bus), or,
    with no bus, the one observability plugs in whenever it is enabled.

    Example:
        manager = ToolManager([get_weather, search], bus=bus, timeout=10)
        results = await manager.execute_all(response.tool_calls)   # in call order
    """

    def __init__(
        self,
        tools: Iterable[Tool | Callable[..., Any]] = (),
        *,
        bus: MessageBus | None = None,
        session: Session | None = None,
        max_concurrency: int = 8,
        timeout: float | None = 30.0,
        tracer: CallTracer | None = None,
    ) -> None:
        if max_concurrency < 1:
            raise ValueError(f"max_concurrency must be at least 1, got {max_concurrency}")
        if timeout is not None and not timeout > 0:
            raise ValueError(f"timeout must be positive seconds or None, got {timeout}")
        if session is not None and bus is not None and bus is not session.bus:
            raise ValueError("the session belongs to another bus; pass the session alone")
        self.session = session
        self.bus = session.bus if session is not None else bus
        self.tracer: CallTracer = tracer if tracer is not None else tracer_for(self.bus)
        self.max_concurrency = max_concurrency
        self.timeout = timeout
        self._tools: dict[str, Tool] = {}
        self._slots = asyncio.Semaphore(max_concurrency)
        self._late: set[asyncio.Task[None]] = set()  # publishing late finishes
        for item in tools:
            self.register(item)

    # -- the registry ---------------------------------------------------------------------

    def register(self, tool: Tool | Callable[..., Any], *, name: str | None = None) -> Tool:
        """Add a tool (a `Tool`, or a function made into one); returns the `Tool`."""
        if isinstance(tool, Tool):
            made = tool if name is None or name == tool.name else tool.renamed(name)
        else:
            made = Tool.from_function(tool, name=name)
        if made.name in self._tools:
            raise DuplicateToolError(
                f"a tool named {made.name!r} is already registered; unregister it first, or "
                f"register this one under another name (register(..., name='...'))"
            )
        self._tools[made.name] = made
        return made

    def unregister(self, name: str) -> None:
        """Remove the tool ``name``."""
        self.get(name)
        del self._tools[name]

    def get(self, name: str) -> Tool:
        """The tool ``name``; `UnknownToolError` (listing the known ones) if there is none."""
        found = self._tools.get(name)
        if found is None:
            raise UnknownToolError(
                f"there is no tool named {name!r}; the tools are: {self._known()}"
            )
        return found

    def _known(self) -> str:
        return ", ".join(sorted(self._tools)) or "(none)"

    def __contains__(self, name: object) -> bool:
        return name in self._tools

    def __iter__(self) -> Iterator[Tool]:
        return iter(list(self._tools.values()))

    def __len__(self) -> int:
        return len(self._tools)

    def __repr__(self) -> str:
        return f"<ToolManager {list(self._tools)}>"

    def specs(self) -> list[ToolSpec]:
        """The tools as a request declares them, in registration order."""
        return [t.spec() for t in self._tools.values()]

    def install(self) -> Subscription:
        """Answer `ExecuteTool` commands on the session (if given) or the bus; ``remove()``
        the result to uninstall."""
        if self.session is not None:
            return self.session.on_command(ExecuteTool, self._handle)
        if self.bus is None:
            raise ToolError("install() needs a bus: ToolManager(..., bus=bus) or session=")
        return self.bus.on_command(ExecuteTool, self._handle)

    async def _handle(self, command: ExecuteTool) -> ToolResultPart:
        return await self.execute(command.call)

    # -- execution ------------------------------------------------------------------------

    async def execute(
        self, call: ToolCallPart, *, round: int | None = None, loop_id: str | None = None
    ) -> ToolResultPart:
        """Run one tool call; a failure comes back as an error result, never raised."""
        async with self._slots:
            return await self._execute(call, round, loop_id)

    async def execute_all(
        self,
        calls: Sequence[ToolCallPart],
        *,
        round: int | None = None,
        loop_id: str | None = None,
    ) -> list[ToolResultPart]:
        """Run tool calls concurrently (up to ``max_concurrency``); results in call order."""
        tasks = [
            asyncio.ensure_future(self.execute(c, round=round, loop_id=loop_id)) for c in calls
        ]
        try:
            return list(await asyncio.gather(*tasks))
        finally:
            await _cancel_unfinished(tasks)

    async def execute_as_completed(
        self,
        calls: Sequence[ToolCallPart],
        *,
        round: int | None = None,
        loop_id: str | None = None,
    ) -> AsyncGenerator[tuple[int, ToolResultPart], None]:
        """Run tool calls concurrently; yield ``(index of the call, result)`` as each ends.

        Closing the iterator early cancels the calls still running.
        """
        tasks: dict[asyncio.Future[ToolResultPart], int] = {
            asyncio.ensure_future(self.execute(c, round=round, loop_id=loop_id)): i
            for i, c in enumerate(calls)
        }
        pending: set[asyncio.Future[ToolResultPart]] = set(tasks)
        try:
            while pending:
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                for task in sorted(done, key=tasks.__getitem__):
                    yield tasks[task], task.result()
        finally:
            await _cancel_unfinished(list(tasks))

    async def _execute(
        self, call: ToolCallPart, round: int | None, loop_id: str | None
    ) -> ToolResultPart:
        where = {"round": round, "loop_id": loop_id}
        await self._publish(ToolCallStarted(call_id=call.id, tool_name=call.name, **where))
        started = time.perf_counter()
        found = self._tools.get(call.name)
        arguments = call.arguments if call.invalid_arguments is None else call.invalid_arguments
        try:
            with self.tracer.tool_span(
                call.name,
                call_id=call.id,
                arguments=arguments,
                description=found.description if found else None,
                session_id=self.session.id if self.session is not None else None,
            ) as span:
                content = await self._run(call, where, started)
                span.result(content)
        except Exception as exc:  # every failure goes back to the model; BaseException not
            duration = (time.perf_counter() - started) * 1000
            kind, message = self._explain(call, exc)
            await self._publish(
                ToolCallFailed(
                    call_id=call.id,
                    tool_name=call.name,
                    error_kind=kind,
                    error_type=type(exc).__name__,
                    message=message,
                    error=ErrorInfo.from_exception(exc),
                    **where,
                )
            )
            await self._publish(
                ToolCallFinished(
                    call_id=call.id,
                    tool_name=call.name,
                    duration_ms=duration,
                    ok=False,
                    error_type=type(exc).__name__,
                    **where,
                )
            )
            return ToolResultPart(call_id=call.id, name=call.name, content=message, is_error=True)
        duration = (time.perf_counter() - started) * 1000
        await self._publish(
            ToolCallFinished(
                call_id=call.id, tool_name=call.name, duration_ms=duration, ok=True, **where
            )
        )
        return ToolResultPart(call_id=call.id, name=call.name, content=content)

    async def _run(self, call: ToolCallPart, where: dict[str, Any], started: float) -> Any:
        found = self.get(call.name)
        if call.invalid_arguments is not None:
            text = call.invalid_arguments
            if self.tracer.capture_content:  # the text is content: shown only if captured
                shown = redact_text(text if len(text) <= 200 else text[:197] + "...")
                what = f": {shown!r}"
            else:
                what = f" (but {len(text)} characters of other text)"
            raise ToolArgumentsError(
                f"the arguments for tool {call.name!r} are not a JSON object{what}",
                tool=call.name,
                errors=[{"loc": [], "msg": "not a JSON object", "type": "json_invalid"}],
            )
        limit = found.timeout if found.timeout is not None else self.timeout
        quote_values = self.tracer.capture_content  # argument errors quote them only then
        threads: list[ThreadRun] = []
        try:
            if limit is None or math.isinf(limit):
                return _content(
                    found.name,
                    await found._invoke(call.arguments, threads.append, show_values=quote_values),
                )
            scope = asyncio.timeout(limit)
            try:
                async with scope:
                    value = await found._invoke(
                        call.arguments, threads.append, show_values=quote_values
                    )
            except TimeoutError as exc:
                if not scope.expired():
                    raise  # the tool's own TimeoutError: an exception like any other
                raise self._timed_out(found, limit, threads, call, where, started) from exc
        except asyncio.CancelledError:
            for thread in threads:  # the caller gave up; the thread cannot be stopped
                thread.abandon(self._late_listener(call, where, started, "cancelled"))
            raise
        return _content(found.name, value)

    def _timed_out(
        self,
        found: Tool,
        limit: float,
        threads: list[ThreadRun],
        call: ToolCallPart,
        where: dict[str, Any],
        started: float,
    ) -> ToolTimeoutError:
        """The truth about a run that ran out of time: an async tool was cancelled; a sync
        tool's thread and a remote server's work cannot be stopped."""
        head = f"tool {found.name!r} timed out after {limit:g} s"
        if threads:
            late = self._late_listener(call, where, started, "timeout")
            if threads[0].abandon(late):
                message = (
                    f"{head}; it runs in a thread, which cannot be stopped, so it may still "
                    "be running and its effects may still happen"
                )
            else:
                message = (
                    f"{head}; its thread ended just after, so its effects have happened, "
                    "but its result was not used"
                )
            return ToolTimeoutError(message, tool=found.name, timeout=limit, may_still_run=True)
        if found.function is None:
            message = (
                f"{head}; the call was abandoned, but the server may still complete it, so "
                "its effects may still happen"
            )
            return ToolTimeoutError(message, tool=found.name, timeout=limit, may_still_run=True)
        return ToolTimeoutError(f"{head} and was cancelled", tool=found.name, timeout=limit)

    def _late_listener(
        self, call: ToolCallPart, where: dict[str, Any], started: float, reason: str
    ) -> Listener:
        """What reports a given-up thread's end: a log line (from the thread), and a
        `ToolCallLateFinished` event published on the event loop, if it still runs."""
        loop = asyncio.get_running_loop()

        def ended(error: BaseException | None) -> None:
            seconds = time.perf_counter() - started
            how = "finished" if error is None else f"failed ({type(error).__name__}: {error})"
            gave_up = "timed out" if reason == "timeout" else "was cancelled"
            log.warning(
                "tool %r (call %s) %s %.2f s after it started; its call had %s, so the "
                "model was not given this outcome",
                call.name,
                call.id,
                how,
                seconds,
                gave_up,
            )
            if self.bus is None:
                return
            event = ToolCallLateFinished(
                call_id=call.id,
                tool_name=call.name,
                reason="timeout" if reason == "timeout" else "cancelled",
                ok=error is None,
                duration_ms=seconds * 1000,
                error_type=None if error is None else type(error).__name__,
                error=None if error is None else ErrorInfo.from_exception(error),
                **where,
            )
            try:
                loop.call_soon_threadsafe(self._publish_late, event)
            except RuntimeError:  # the loop closed before the thread ended
                log.warning(
                    "no ToolCallLateFinished event for call %s: its event loop has closed",
                    call.id,
                )

        return ended

    def _publish_late(self, event: ToolCallLateFinished) -> None:
        task = asyncio.get_running_loop().create_task(self._publish_logged(event))
        self._late.add(task)  # a reference, so the task is not collected half-way
        task.add_done_callback(self._late.discard)

    async def _publish_logged(self, event: ToolCallLateFinished) -> None:
        try:
            await self._publish(event)
        except Exception:  # nobody awaits this task: say why the event is missing
            log.exception("could not publish ToolCallLateFinished for call %s", event.call_id)

    def _explain(self, call: ToolCallPart, exc: Exception) -> tuple[ToolErrorKind, str]:
        """The kind of failure, and what the model is told (so it can correct itself)."""
        name = call.name
        if isinstance(exc, UnknownToolError):
            return "unknown_tool", (
                f"Error: there is no tool named {name!r}. The tools are: {self._known()}. "
                "Call one of those, or answer without a tool."
            )
        if isinstance(exc, ToolArgumentsError):
            return "invalid_arguments", (
                f"Error: {redact_text(str(exc))}. Call {name!r} again with arguments that "
                "match its schema."
            )
        if isinstance(exc, ToolTimeoutError):
            advice = (
                "Check whether it took effect before calling it again, or answer without it."
                if exc.may_still_run
                else "Try again with a smaller request, or answer without it."
            )
            return "timeout", f"Error: {exc}. {advice}"
        if isinstance(exc, _BadResult):
            return "bad_result", f"Error: tool {name!r} failed: its result could not be read."
        return "exception", (
            f"Error: tool {name!r} failed: {type(exc).__name__}: {redact_text(str(exc))}"
        )

    async def _publish(self, event: Event) -> None:
        if self.bus is None:
            return
        if self.session is not None:
            event.session_id = self.session.id
        await self.bus.publish(event)


async def _cancel_unfinished(tasks: Sequence[asyncio.Future[Any]]) -> None:
    """Cancel and wait for the tasks that have not finished (after a failure or a cancel),
    so none is left running unseen."""
    unfinished = [t for t in tasks if not t.done()]
    for task in unfinished:
        task.cancel()
    if unfinished:
        await asyncio.gather(*unfinished, return_exceptions=True)
