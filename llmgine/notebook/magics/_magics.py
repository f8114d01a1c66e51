"""The ``%%llmgine`` and ``%llmgine`` magics: ``%load_ext llmgine``.

    %%llmgine demo:llmgine-demo -o answer
    Tell me about {topic}.

The cell's text is the prompt (``{name}`` filled in by `_prompt`; a name that does not
resolve is sent as written, after a warning in the cell's output); the answer streams
into the cell's output. Several models (``demo:a,openai:gpt-4o-mini``) open a
`CompareView`. The line magic has commands: ``%llmgine models``, ``use``, ``events``,
``trace``, ``spans``, ``events-df``, ``compare``, ``sessions``, ``reset``, ``local``,
``record``, ``replay``, ``cache``, ``sweep``, ``help`` (listed in `_arguments`; ``local``
is in `_local`, the recording commands in `_recording`, ``sweep`` (and ``%%llmgine
sweep``, a cell of prompts) in `_sweep`). How the synchronous magics
drive the asynchronous calls is explained in `_loop`; what they own, in `_workbench`.

Errors show as one short message (what went wrong, what to do next) and fail the cell:
the exceptions here render without a traceback (IPython's ``_render_traceback_``). A
comparison is the exception: a model that fails (even before its call: no key, an
unknown provider or name) fails its column, and the cell fails only when every model
failed, when there is nothing to compare and a "Run all" should stop.
"""

from __future__ import annotations

import atexit
import shlex
from typing import Any

import pandas as pd
from IPython.core.interactiveshell import InteractiveShell
from IPython.core.magic import Magics, line_cell_magic, magics_class

from llmgine import observability
from llmgine.errors import CellFailedError, MagicUsageError
from llmgine.llm import ChatMessage, LLMResponse, Model, ToolName, list_providers
from llmgine.notebook._compare_view import CompareView
from llmgine.notebook.magics._arguments import COMMANDS, cell_arguments, help_text, parse_cell_line
from llmgine.notebook.magics._display import (
    AnswerDisplay,
    answer_bundle,
    describe_error,
    footer_text,
    provenance,
    provider_note,
    replace,
    show,
    show_warning,
    uses_text_output,
)
from llmgine.notebook.magics._local import local_command
from llmgine.notebook.magics._prompt import Format, answer_code, answer_json, fill
from llmgine.notebook.magics._recording import cache_command, record_command, replay_command
from llmgine.notebook.magics._sweep import run_sweep
from llmgine.notebook.magics._workbench import CellAnswer, CellRequest, Workbench
from llmgine.tools import Tool

__all__ = [
    "LLMgineMagics",
    "load_ipython_extension",
    "unload_ipython_extension",
]


@magics_class
class LLMgineMagics(Magics):
    """The magics of one shell, over that shell's `Workbench`."""

    def __init__(self, shell: Any, workbench: Workbench) -> None:
        super().__init__(shell)
        self.workbench = workbench

    @property
    def ipython(self) -> InteractiveShell:
        if self.shell is None:  # pragma: no cover - IPython always sets it
            raise RuntimeError("the llmgine magics are not attached to a shell")
        return self.shell

    @property
    def namespace(self) -> dict[str, Any]:
        user_ns: dict[str, Any] = self.ipython.user_ns
        return user_ns

    @cell_arguments
    @line_cell_magic
    def llmgine(self, line: str, cell: str | None = None) -> Any:
        """Ask a model. The cell is the prompt: {name}, {obj.attr}, {In[3]}, {Out[2]} are
        replaced from your namespace (an unknown name is sent as written, after a warning
        naming the closest defined one; {{name}} sends {name} on purpose; other braces, as
        in JSON, are text). The answer streams into the output. Several models are
        compared side by side: one that fails shows its error in its column, and the cell
        fails only if all fail. %llmgine help lists the line commands (models, use,
        events, trace, spans, events-df, compare, sessions, reset, local, record, replay,
        cache)."""
        if cell is None:
            return self._command(line)
        command, _, rest = line.strip().partition(" ")
        if command == "sweep":  # %%llmgine sweep: the cell's prompts, swept
            run_sweep(self, rest, cell)
            return None
        self._cell(parse_cell_line(LLMgineMagics.llmgine, line), cell)
        return None

    # -- the cell magic ----------------------------------------------------------------

    def _model(self, token: str | None) -> Model:
        try:
            return self.workbench.resolve(token, self.namespace)
        except Exception as exc:  # any failure to make the model: one short message
            raise CellFailedError(describe_error(exc), exc) from exc

    def _prompt(self, text: str) -> str:
        """``text`` with its fields filled in; fields that do not resolve are sent as
        written, and the cell's output says which, with the closest defined name."""
        filled = fill(text, self.namespace)
        if filled.unresolved:
            show_warning(filled.warning(), text_mode=uses_text_output(self.ipython))
        return filled.text

    def _tools(self, names: str | None) -> list[Tool]:
        tools: list[Tool] = []
        for name in (n.strip() for n in (names or "").split(",")):
            if not name:
                continue
            value = self.namespace.get(name)
            if isinstance(value, Tool):
                tools.append(value)
            elif callable(value):
                tools.append(Tool.from_function(value, name=name))
            else:
                found = "nothing" if value is None else f"a {type(value).__name__}"
                raise MagicUsageError(
                    f"--tools {name}: {name!r} is {found} in your namespace; define a function "
                    "(or a llmgine.tools.Tool) by that name first"
                )
        return tools

    def _tool_choice(self, choice: str, tools: list[Tool]) -> str | ToolName:
        names = [t.name for t in tools]
        if not tools:
            raise MagicUsageError("--tool-choice needs --tools: name the tools to choose from")
        if choice in ("auto", "required", "none"):
            return choice
        if choice in names:
            return ToolName(name=choice)
        raise MagicUsageError(
            f"--tool-choice {choice}: use auto, required, none, or one of the tools given "
            f"with --tools ({', '.join(names)})"
        )

    def _cell(self, args: Any, cell: str) -> None:
        fmt: Format = args.format or "markdown"
        tokens = [t.strip() for word in args.models for t in word.split(",") if t.strip()]
        prompt = self._prompt(cell).strip()
        if not prompt:
            raise MagicUsageError("the cell is empty: write the prompt below the %%llmgine line")
        params = {
            k: v
            for k, v in {"temperature": args.temperature, "max_tokens": args.max_tokens}.items()
            if v is not None
        }
        tools = self._tools(args.tools)
        if args.tool_choice is not None:
            params["tool_choice"] = self._tool_choice(args.tool_choice, tools)
        if len(tokens) > 1:
            unsupported = [
                flag
                for flag, given in (
                    ("--tools", bool(tools)),
                    ("--session", args.session is not None),
                    ("-f", fmt not in ("markdown", "text")),
                )
                if given
            ]
            if unsupported:
                raise MagicUsageError(
                    f"{', '.join(unsupported)} cannot be used when comparing several models; "
                    "name one model to use them"
                )
            self._compare(tokens, prompt, system=args.system, output=args.output, **params)
            return
        model = self._model(tokens[0] if tokens else None)
        request = CellRequest(
            model=model,
            prompt=prompt,
            system=args.system,
            params=params,
            tools=tools,
            max_rounds=args.max_rounds,
            session=self.workbench.session(args.session) if args.session else None,
        )
        shown = AnswerDisplay(model.spec, fmt, text_mode=uses_text_output(self.ipython))
        shown.start()
        answer = self._stream(request, shown)
        if args.output:
            self.namespace[args.output] = answer.response
        self._finish(answer, shown, fmt, session=args.session)

    def _stream(self, request: CellRequest, shown: AnswerDisplay) -> CellAnswer:
        workbench = self.workbench
        try:
            return workbench.loop.stream(
                lambda emit: workbench.answer(request, emit),
                shown.add,
                shown.refresh,
                interval=workbench.update_interval,
            )
        except Exception as exc:
            shown.fail()
            raise CellFailedError(describe_error(exc), exc) from exc
        except KeyboardInterrupt:
            shown.fail()
            raise

    def _finish(
        self, answer: CellAnswer, shown: AnswerDisplay, fmt: Format, *, session: str | None
    ) -> None:
        response: LLMResponse = answer.response
        metadata = provenance(
            response,
            format=fmt,
            rounds=answer.rounds,
            session=session,
            session_id=answer.session_id,
        )
        footer = footer_text(response, rounds=answer.rounds)
        data: Any = None
        if fmt == "json":
            try:
                data = answer_json(response.text)
            except ValueError as exc:
                shown.finish(answer_bundle(response.text, "text"), metadata, footer)
                raise CellFailedError(describe_error(exc), exc) from exc
        shown.finish(answer_bundle(response.text, fmt, data), metadata, footer)
        if fmt == "code":
            self.ipython.set_next_input(answer_code(response.text)[0], replace=False)

    def _compare(
        self,
        tokens: list[str],
        prompt: str,
        *,
        system: str | None,
        output: str | None,
        **params: Any,
    ) -> None:
        """Compare the models ``tokens`` name. A token that names no model it can make
        (no key, an unknown provider or name) becomes its column's error, as a failed
        call does; the cell fails only when every model failed."""
        workbench = self.workbench
        entries: list[str | Model] = []
        unmade: dict[int, Exception] = {}
        for index, token in enumerate(tokens):
            try:
                entries.append(workbench.resolve(token, self.namespace))
            except Exception as exc:  # shown in its column; the others still run
                entries.append(token)
                unmade[index] = exc
        messages: str | list[ChatMessage] = prompt
        if system:
            messages = [ChatMessage.system(system), ChatMessage.user(prompt)]
        view = CompareView(
            entries,
            messages,
            bus=workbench.bus,
            refresh_interval=workbench.update_interval,
            **params,
        )
        for index, error in unmade.items():
            view.fail_column(index, error)
        if len(unmade) < len(entries):  # models will be called: this is the last cell's trace
            workbench.last_session_id = view.session_id
        text_mode = uses_text_output(self.ipython)
        handle = None if text_mode else show(view, update=True)
        try:
            # The calls run on the workbench's loop; the widgets change on this thread.
            results = workbench.loop.stream(
                view.run_emitting,
                view.apply_update,
                view.refresh,
                interval=workbench.update_interval,
            )
        except Exception as exc:  # the run itself failed (not a model): the bus, say
            raise CellFailedError(describe_error(exc), exc) from exc
        metadata = {
            "llmgine": {
                "compare": {
                    label: provenance(r)
                    if isinstance(r, LLMResponse)
                    else {"error": type(r).__name__, "message": describe_error(r)}
                    for label, r in results.items()
                },
                "wall_ms": view.wall_ms,
                "session_id": view.session_id,
            }
        }
        if handle is not None:  # the saved output's text and HTML show the final answers
            replace(handle, view, metadata=metadata)
        else:
            print(repr(view))
        if output:
            self.namespace[output] = results
        failed = {label: r for label, r in results.items() if isinstance(r, BaseException)}
        if len(failed) == len(results):
            first = next(iter(failed.values()))
            lines = [f"all {len(results)} models failed (their columns say why):"]
            lines += [
                f"  {label}: {describe_error(exc).splitlines()[0]}" for label, exc in failed.items()
            ]
            raise CellFailedError("\n".join(lines), first) from first

    # -- the line commands -------------------------------------------------------------

    def _command(self, line: str) -> Any:
        try:
            words = shlex.split(line)
        except ValueError as exc:
            raise MagicUsageError(
                f"cannot read the command line ({exc}); check its quotes"
            ) from exc
        command, rest = (words[0], words[1:]) if words else ("help", [])
        handler = {
            "models": self._models,
            "use": self._use,
            "events": self._events,
            "trace": self._trace,
            "spans": self._spans,
            "events-df": self._events_df,
            "compare": self._compare_command,
            "sessions": self._sessions,
            "reset": self._reset,
            "local": self._local,
            "record": self._record,
            "replay": self._replay,
            "cache": self._cache,
            "sweep": self._sweep,
            "help": self._help,
        }.get(command)
        if handler is None:
            names = ", ".join(c.split()[0] for c in COMMANDS)
            raise MagicUsageError(
                f"unknown command {command!r}; the commands are {names}. To send a prompt, "
                "use the cell magic %%llmgine."
            )
        return handler(rest)

    def _at_most(self, command: str, rest: list[str], count: int) -> None:
        if len(rest) > count:
            usage = next(c for c in COMMANDS if c.split()[0] == command)
            raise MagicUsageError(f"too many arguments for {command}; usage: %llmgine {usage}")

    def _help(self, rest: list[str]) -> None:
        print(help_text())

    def _models(self, rest: list[str]) -> pd.DataFrame:
        self._at_most("models", rest, 0)
        default = self.workbench.default_label().partition(":")[0]
        return pd.DataFrame(
            [
                {
                    "provider": info.name,
                    "description": info.description,
                    "has_key": info.has_key,
                    "offline": info.offline,
                    "key_variables": ", ".join(info.key_variables),
                    "extra": info.extra or "",
                    "default": info.name == default,
                }
                for info in list_providers()
            ]
        )

    def _use(self, rest: list[str]) -> None:
        self._at_most("use", rest, 1)
        if rest:
            model = self._model(rest[0])
            self.workbench.default = model if ":" not in rest[0] else rest[0]
        label = self.workbench.default_label()
        provider = label.partition(":")[0]
        offline = provider in {i.name for i in list_providers() if i.offline}
        note = provider_note(provider) or ("offline" if offline else None)
        print(f"llmgine: cells use {label}" + (f" ({note})" if note else ""))

    def _session_id(self, name: str | None) -> str | None:
        return None if name is None else self.workbench.find_session(name)

    def _observability(self) -> observability.Observability:
        current = observability.current()
        if current is None:
            raise MagicUsageError(
                "observability is off (llmgine.observability.disable() was called); "
                "%reload_ext llmgine switches it on again"
            )
        return current

    def _spans(self, rest: list[str]) -> pd.DataFrame:
        self._at_most("spans", rest, 1)
        return self._observability().spans_df(session=self._session_id(next(iter(rest), None)))

    def _events_df(self, rest: list[str]) -> pd.DataFrame:
        self._at_most("events-df", rest, 1)
        return self._observability().events_df(session=self._session_id(next(iter(rest), None)))

    def _events(self, rest: list[str]) -> Any:
        self._at_most("events", rest, 0)
        from llmgine.notebook import EventStream  # the widget modules load on first use

        return EventStream(self.workbench.bus)

    def _trace(self, rest: list[str]) -> Any:
        self._at_most("trace", rest, 1)
        from llmgine.notebook import TraceView

        session = self._session_id(rest[0]) if rest else self.workbench.last_session_id
        return TraceView(session=session, bus=self.workbench.bus)

    def _compare_command(self, rest: list[str]) -> None:
        if len(rest) < 3:
            raise MagicUsageError(
                'usage: %llmgine compare "PROMPT" MODEL MODEL... (at least two models), e.g. '
                '%llmgine compare "Name three primes." demo:a demo:b'
            )
        prompt = self._prompt(rest[0])
        self._compare(rest[1:], prompt, system=None, output=None)

    def _sessions(self, rest: list[str]) -> pd.DataFrame:
        self._at_most("sessions", rest, 0)
        rows = [
            {
                "session": s.name,
                "turns": s.turns,
                "model": s.model,
                "system": s.system or "",
                "session_id": s.session_id,
            }
            for s in self.workbench.sessions.values()
        ]
        return pd.DataFrame(rows, columns=["session", "turns", "model", "system", "session_id"])

    def _local(self, rest: list[str]) -> pd.DataFrame | None:
        return local_command(self.workbench, rest)

    def _record(self, rest: list[str]) -> None:
        record_command(self.workbench, rest)

    def _replay(self, rest: list[str]) -> None:
        replay_command(self.workbench, rest)

    def _cache(self, rest: list[str]) -> pd.DataFrame | None:
        return cache_command(self.workbench, rest)

    def _sweep(self, rest: list[str]) -> None:
        run_sweep(self, shlex.join(rest), None)

    def _reset(self, rest: list[str]) -> None:
        self._at_most("reset", rest, 0)
        self.workbench.reset()
        print(f"llmgine: reset; cells use {self.workbench.default_label()}")


def _loaded(ipython: Any) -> LLMgineMagics | None:
    magics = ipython.magics_manager.registry.get(LLMgineMagics.__name__)
    return magics if isinstance(magics, LLMgineMagics) else None


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext llmgine``: start the workbench (loop thread, bus, observability) and
    register the magics. Loading again does nothing."""
    if _loaded(ipython) is not None:
        return
    workbench = Workbench()
    workbench.start()
    atexit.register(workbench.close)  # a kernel shutting down stops the thread cleanly
    ipython.register_magics(LLMgineMagics(ipython, workbench))


def unload_ipython_extension(ipython: Any) -> None:
    """``%unload_ext llmgine``: stop the workbench and remove the magics."""
    magics = _loaded(ipython)
    if magics is None:
        return
    manager = ipython.magics_manager
    manager.registry.pop(LLMgineMagics.__name__, None)
    for kind in ("line", "cell"):
        manager.magics[kind].pop("llmgine", None)
    atexit.unregister(magics.workbench.close)
    magics.workbench.close()
