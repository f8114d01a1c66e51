"""The magics' words: the line commands and their help, and the cell magic's options.

Kept apart from `_magics` so the magic reads as what it does; ``%%llmgine?`` and
``%llmgine help`` are built from the tables here, so the help cannot drift from what parses.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable
from typing import Any, TypeVar

from IPython.core.error import UsageError
from IPython.core.magic_arguments import argument, magic_arguments

from llmgine.errors import MagicUsageError
from llmgine.notebook.magics._prompt import FORMATS

__all__ = ["COMMANDS", "cell_arguments", "help_text", "parse_cell_line"]


COMMANDS = {
    "models": "the providers: which have a key, which are offline",
    "use MODEL": "the default model of later cells (a spec or a Model in your namespace)",
    "events": "the bus's events, live (an EventStream)",
    "trace [SESSION]": "a session's spans as a waterfall (default: the last cell that "
    "called a model, a comparison included)",
    "spans [SESSION]": "the recorded spans, as a DataFrame",
    "events-df [SESSION]": "the recorded bus events, as a DataFrame",
    'compare "PROMPT" MODEL MODEL...': "one prompt to several models, side by side",
    "sessions": "the named conversations (--session) and their turns",
    "reset": "forget conversations, the default model, recording settings, and recorded "
    "spans and events",
    "local [start [MODEL] | stop [PID]]": "this user's local model servers (model, address, "
    "pid, memory, age); start one (default smollm2) or stop them",
    "record [PATH.jsonl [--overwrite] | off]": "record cells' calls into a cassette (answers "
    "already there are reused; --overwrite calls every model again)",
    "replay [PATH.jsonl | off]": "answer cells from a cassette only: no model is called, no "
    "key needed; a call not recorded fails its cell and shows what differs",
    "cache [on | off | clear | stats]": "the response cache (SQLite, in your cache "
    "directory): reuse answers to repeated calls; empty it; what it holds",
    "sweep DATA --models M,M [--score SPEC]... [-o NAME]": "every row of DATA (a "
    "DataFrame, list, or .csv/.jsonl path) to every model, scored, as a live grid (a "
    "SweepView); -o keeps the SweepResult. --score: exact, exact:COLUMN, contains, "
    "contains:TEXT, regex:PATTERN, json, close[:TOL], judge:MODEL; also --column, "
    "--template, --temperature 0,0.7, --system, --max-tokens, --repeats, --budget USD, "
    "--store PATH",
    "help": "this list",
}


def help_text() -> str:
    width = max(len(c) for c in COMMANDS)
    lines = ["%llmgine commands:"]
    lines += [f"  %llmgine {c.ljust(width)}  {what}" for c, what in COMMANDS.items()]
    lines += [
        "SESSION: a --session NAME, or a session id; an unknown one lists those recorded.",
        "",
        "%%llmgine [MODEL ...] [options] sends the cell as a prompt (%%llmgine? lists the",
        "options). {name} in the cell is replaced from your namespace; an unknown name is",
        "sent as written, after a warning naming the closest defined one; {{name}} sends",
        "{name} on purpose. Comparing models (MODEL MODEL, or MODEL,MODEL): one that fails",
        "shows its error in its column and the others answer; the cell fails only when",
        "every model fails.",
        "",
        "%%llmgine sweep --models M,M [--score SPEC]... sweeps the cell's lines, a prompt",
        "each (or, with --data NAME, the cell is a template filled from each row of NAME).",
    ]
    return "\n".join(lines)


F = TypeVar("F", bound=Callable[..., Any])

# The cell magic's options, in the order ``%%llmgine?`` lists them.
_CELL_OPTIONS: list[tuple[tuple[str, ...], dict[str, Any]]] = [
    (
        ("models",),
        {
            "nargs": "*",
            "default": [],
            "metavar": "MODEL",
            "help": "provider:model; several (joined by commas or spaces) are compared side "
            "by side, and one that fails shows its error in its column (the name of a "
            "llmgine Model in your namespace works too); default: %%llmgine use's, else "
            "$LLMGINE_MODEL, else the local model where it is installed (local:smollm2), else "
            "the offline demo:llmgine-demo",
        },
    ),
    (
        ("-f", "--format"),
        {
            "choices": FORMATS,
            "default": None,
            "help": "how to show the answer (default markdown); code also offers it as the "
            "next cell",
        },
    ),
    (("-o", "--output"), {"metavar": "NAME", "help": "store the LLMResponse in NAME"}),
    (("--system",), {"help": "a system prompt"}),
    (("--temperature",), {"type": float, "help": "sampling temperature"}),
    (("--max-tokens",), {"type": int, "help": "the most tokens to generate"}),
    (
        ("--tools",),
        {
            "metavar": "NAME,...",
            "help": "functions or llmgine Tools from your namespace the model may call (run "
            "by the tool loop)",
        },
    ),
    (
        ("--tool-choice",),
        {
            "metavar": "CHOICE",
            "help": "with --tools: auto (the model decides; the default), required (it must "
            "call a tool in the first round, and may answer after), none, or the name of "
            "the tool it must call first",
        },
    ),
    (("--max-rounds",), {"type": int, "default": 8, "help": "with --tools: the most model calls"}),
    (
        ("--session",),
        {
            "metavar": "NAME",
            "help": "a named conversation: later cells with the same NAME continue it",
        },
    ),
]


def cell_arguments(fn: F) -> F:
    """IPython's ``@magic_arguments()`` and one ``@argument`` per option (so the options
    parse with argparse and ``%%llmgine?`` shows them); typed, as IPython's are not."""
    for names, options in reversed(_CELL_OPTIONS):
        fn = argument(*names, **options)(fn)  # type: ignore[no-untyped-call]
    decorated: F = magic_arguments()(fn)  # type: ignore[no-untyped-call]
    return decorated


def parse_cell_line(magic: Callable[..., Any], line: str) -> Any:
    """The cell magic's arguments, split as a POSIX shell does: IPython's own splitting
    (``parse_argstring``) keeps the quotes, so ``--system "Be brief."`` would send them."""
    try:
        words = shlex.split(line)
    except ValueError as exc:
        raise MagicUsageError(f"cannot read the magic's line ({exc}); check its quotes") from exc
    parser: Any = getattr(magic, "parser")  # noqa: B009 - set by @magic_arguments()
    try:  # intermixed: models may come before and after options (a b -o x c)
        return parser.parse_intermixed_args(words)
    except UsageError as exc:  # argparse's message, with our class (no traceback either)
        raise MagicUsageError(f"{exc}; %%llmgine? lists the options") from exc
