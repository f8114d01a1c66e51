"""`Workbench`: what the magics of one IPython shell own, and how a cell is answered.

One loop thread (see `_loop` for why), one started `MessageBus` on it with a
`WorkbenchService` answering `Generate`, observability watching that bus, the named
conversations (``--session``) on a `MemoryContextStore`, and the default model.

The bus is the workbench's own, not `llmgine.bus.default_bus()`: a bus binds to the loop
it first runs on, and the default bus belongs to the user's code on the kernel's loop
(``await default_bus().execute(...)`` in a cell), which ours must not take away.

Each cell runs in a bus session (a named conversation reuses its session id cell after
cell), so its spans group under one root and `%llmgine trace` can show it:
``last_session_id`` is the session of the last cell that called a model (a comparison's
included), and `find_session` turns what the user typed into a session id, or refuses it
with the sessions there are, since a mistyped id would otherwise show an empty trace.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from llmgine import observability
from llmgine.bus import MessageBus
from llmgine.context import ConversationContext, MemoryContextStore
from llmgine.errors import LLMConfigurationError, MagicUsageError
from llmgine.llm import (
    ChatMessage,
    LLMResponse,
    LLMStreamDelta,
    Model,
    default_model,
    get_model,
    provider_info,
)
from llmgine.notebook.magics._bus import BusModel, WorkbenchService
from llmgine.notebook.magics._display import Chunk, Note
from llmgine.notebook.magics._loop import LoopThread
from llmgine.notebook.magics._recording import Recordings
from llmgine.observability import Observability
from llmgine.tools import Tool, ToolCallFailed, ToolCallFinished, ToolCallStarted, run_tool_loop

__all__ = ["CellAnswer", "CellRequest", "NamedSession", "Workbench"]

Emit = Callable[[Chunk | Note], None]
_LISTED_SESSIONS = 8  # how many sessions an unknown-session error names


@dataclass
class NamedSession:
    """A conversation that successive cells continue (``--session NAME``)."""

    name: str
    session_id: str
    context: ConversationContext
    system: str | None = None
    turns: int = 0
    model: str = ""


@dataclass(frozen=True)
class CellRequest:
    """One cell's call, resolved on the cell's thread before it is submitted."""

    model: Model
    prompt: str
    system: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    tools: list[Tool] = field(default_factory=list)
    max_rounds: int = 8
    session: NamedSession | None = None


@dataclass(frozen=True)
class CellAnswer:
    response: LLMResponse
    rounds: int
    session_id: str


def _spec_of(model: str | Model) -> str:
    return model if isinstance(model, str) else model.spec


class Workbench:
    """The loop thread, bus, service, conversations and default model of one shell."""

    def __init__(self) -> None:
        self.loop = LoopThread()
        self.bus = MessageBus()
        self.service = WorkbenchService(self.bus)
        self.store = MemoryContextStore()
        self.sessions: dict[str, NamedSession] = {}
        self.default: str | Model | None = None
        self.last_session_id: str | None = None
        self.update_interval = 0.1
        self.recordings = Recordings()  # %llmgine record / replay / cache
        self._made: dict[tuple[str, tuple[str, str] | None], Model] = {}
        self._owned_observability: Observability | None = None

    def __repr__(self) -> str:
        return f"<Workbench default={self.default_label()!r} sessions={len(self.sessions)}>"

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> None:
        """Start the loop thread and the bus on it; switch observability on for the bus
        (or, when it is already on, add the bus to what it observes)."""
        self.loop.start()
        self.loop.run(self._start())
        current = observability.current()
        if current is None:
            self._owned_observability = observability.enable(self.bus)
        else:
            current.observe(self.bus)

    async def _start(self) -> None:
        await self.bus.start()
        self.service.install()

    def close(self) -> None:
        """Close the models made here, stop the bus and the loop thread, and switch
        observability off if it was switched on here."""
        if self.loop.running:
            self.loop.run(self._close())
        current = observability.current()
        if current is not None:
            current.unobserve(self.bus)
            if current is self._owned_observability:
                observability.disable()
        self._owned_observability = None
        self.loop.stop()

    async def _close(self) -> None:
        made, self._made = list(self._made.values()), {}
        for model in made:
            await model.aclose()
        await self.store.aclose()
        await self.bus.stop()

    @property
    def update_interval(self) -> float:
        """Seconds between display updates while an answer streams (0: every delta)."""
        return self._update_interval

    @update_interval.setter
    def update_interval(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError(f"update_interval cannot be negative, got {seconds}")
        self._update_interval = seconds
        # The service batches deltas on the same clock: finer batches than the display
        # shows would only cost events.
        self.service.delta_interval = seconds

    # -- models ------------------------------------------------------------------------

    def default_label(self) -> str:
        """The default model's spec: `use`'s, else ``$LLMGINE_MODEL``, else the local
        model where it is installed, else the demo."""
        if self.default is not None:
            return _spec_of(self.default)
        return default_model()

    def resolve(self, token: str | None, namespace: Mapping[str, Any]) -> Model:
        """The model ``token`` names: a `Model` (or spec string) in ``namespace``, or a
        ``provider:model`` spec; None is the default model.

        Raises:
            LLMConfigurationError: ``token`` names neither; UnknownProviderError,
                MissingCredentialsError as `get_model` raises them.
        """
        if token is None:
            if isinstance(self.default, Model):
                return self.recordings.apply(self.default)
            return self._made_model(self.default_label())
        if ":" not in token:
            value = namespace.get(token)
            if isinstance(value, Model):
                return self.recordings.apply(value)
            if isinstance(value, str) and ":" in value:
                return self._made_model(value)
            raise LLMConfigurationError(
                f"{token!r} is neither a model spec ('provider:model', e.g. "
                f"'demo:llmgine-demo') nor a llmgine Model in your namespace; "
                "%llmgine models lists the providers"
            )
        return self._made_model(token)

    def _made_model(self, spec: str) -> Model:
        """The model of ``spec``, made once per recording setting (`Recordings`): the
        recording sits inside its tracing, so a replayed call is a span too."""
        key = (spec, self.recordings.key())
        made = self._made.get(key)
        if made is None:
            provider_info(spec.partition(":")[0])  # an unknown provider fails here, clearly
            made = self._made[key] = get_model(spec, **self.recordings.options())
        return made

    # -- conversations -----------------------------------------------------------------

    def session(self, name: str) -> NamedSession:
        """The named conversation ``name`` (started on first use)."""
        named = self.sessions.get(name)
        if named is None:
            session_id = f"llmgine-{name}-{uuid.uuid4().hex[:8]}"
            context = ConversationContext(self.store, session_id)
            named = self.sessions[name] = NamedSession(name, session_id, context)
        return named

    def reset(self) -> None:
        """Forget the conversations, the default model, the recording settings and what
        observability recorded."""
        named, self.sessions = list(self.sessions.values()), {}
        self.recordings.reset()
        if named:
            self.loop.run(self._forget(named))
        self.default = None
        self.last_session_id = None
        current = observability.current()
        if current is not None:
            current.clear()

    async def _forget(self, named: list[NamedSession]) -> None:
        for conversation in named:
            await conversation.context.clear()

    def recorded_sessions(self) -> list[tuple[str, str]]:
        """The sessions whose spans are recorded, most recent first, as (what to type,
        what it is): a named conversation by its name, any other session by its id."""
        current = observability.current()
        frame = current.spans_df() if current is not None else None
        kind = f"attributes.{observability.semconv.SPAN_KIND}"
        label = f"attributes.{observability.semconv.SESSION_NAME}"
        names = {s.session_id: s.name for s in self.sessions.values()}
        found: dict[str, str] = {}
        if frame is not None and kind in frame.columns:
            roots = frame[(frame[kind] == "session") & frame["session_id"].notna()]
            roots = roots.sort_values("start_time", ascending=False)
            for session_id, name, start in zip(
                roots["session_id"], roots[label], roots["start_time"], strict=True
            ):
                typed = names.get(session_id, session_id)
                what = f"--session {typed}" if typed in self.sessions else str(name)
                found.setdefault(typed, f"{what}, started {start:%H:%M:%S} UTC")
        for name in names.values():
            found.setdefault(name, f"--session {name}, no spans recorded")
        return list(found.items())

    def find_session(self, name: str) -> str:
        """The session id ``name`` stands for: a named conversation (``--session NAME``),
        a session whose spans are recorded, or one open on the bus.

        Raises:
            MagicUsageError: no such session; the message lists the recorded ones.
        """
        named = self.sessions.get(name)
        if named is not None:
            return named.session_id
        recorded = self.recorded_sessions()
        if any(typed == name for typed, _ in recorded) or any(
            s.id == name for s in self.bus.sessions
        ):
            return name
        if not recorded:
            raise MagicUsageError(
                f"no session {name!r}: none is recorded yet. Run a %%llmgine cell first, "
                "or give no SESSION for the last cell's"
            )
        width = max(len(typed) for typed, _ in recorded[:_LISTED_SESSIONS])
        lines = [f"no session {name!r}. The sessions recorded, most recent first:"]
        lines += [f"  {typed.ljust(width)}  {what}" for typed, what in recorded[:_LISTED_SESSIONS]]
        if len(recorded) > _LISTED_SESSIONS:
            lines.append(f"  ... and {len(recorded) - _LISTED_SESSIONS} more (%llmgine spans)")
        lines.append("Pass one of these, or no SESSION for the last cell's.")
        raise MagicUsageError("\n".join(lines))

    # -- answering ---------------------------------------------------------------------

    async def answer(self, cell: CellRequest, emit: Emit) -> CellAnswer:
        """Answer one cell on the loop: every model call a `Generate` on the bus, in the
        cell's session; text and tool progress go to ``emit`` as they happen."""
        named = cell.session
        session_id = named.session_id if named is not None else uuid.uuid4().hex
        name = f"llmgine {named.name}" if named is not None else "llmgine cell"
        self.last_session_id = session_id

        def on_delta(event: LLMStreamDelta) -> None:
            if event.text:
                emit(Chunk(event.text))

        def on_tool_started(event: ToolCallStarted) -> None:
            emit(Note(f"calling {event.tool_name}"))

        def on_tool_failed(event: ToolCallFailed) -> None:
            emit(Note(f"{event.tool_name} failed: {event.message}"))

        def on_tool_finished(event: ToolCallFinished) -> None:
            if event.ok:
                emit(Note(f"{event.tool_name} answered in {event.duration_ms:.0f} ms"))

        async with self.bus.session(name, session_id=session_id) as session:
            session.on_event(LLMStreamDelta, on_delta)
            session.on_event(ToolCallStarted, on_tool_started)
            session.on_event(ToolCallFailed, on_tool_failed)
            session.on_event(ToolCallFinished, on_tool_finished)
            history = await named.context.history() if named is not None else []
            system = cell.system
            if system is None and named is not None:
                system = named.system
            user = ChatMessage.user(cell.prompt)
            messages = [ChatMessage.system(system)] if system else []
            messages += [*history, user]
            model = Model(BusModel(session, self.service.register(cell.model), cell.model))
            if cell.tools:
                result = await run_tool_loop(
                    model,
                    messages,
                    cell.tools,
                    session=session,
                    max_rounds=cell.max_rounds,
                    **cell.params,
                )
                response, rounds = result.response, result.rounds
                new = result.messages[len(messages) - 1 :]
            else:
                response = await model.generate(messages, **cell.params)
                rounds, new = 1, [user, response.message]
            if named is not None:
                await named.context.add(*new)
                named.turns += 1
                named.system = system
                named.model = cell.model.spec
        return CellAnswer(response, rounds, session_id)
