"""``%llmgine sweep`` and ``%%llmgine sweep``: a sweep from a cell, shown as a `SweepView`.

    %llmgine sweep questions --models demo:a,openai:gpt-4o-mini --score exact -o result

    %%llmgine sweep --models demo:a,demo:b --score contains:Paris
    What is the capital of France?
    Name the city on the Seine.

    %%llmgine sweep --data questions --models demo:a --score exact
    Answer in one word: {question}

The line form sweeps DATA (a DataFrame, a list of prompts or dicts in the namespace, or a
``.csv`` / ``.jsonl`` path); the cell form sweeps the cell's lines, one prompt each, or,
with ``--data NAME``, fills the cell (a template) from each row of NAME. The sweep runs on
the magics' loop thread, on their bus (so every call is traced, and a clicked cell shows
its span), while the grid fills on the cell's thread, as `CompareView`'s columns do.
"""

from __future__ import annotations

import argparse
import os
import shlex
from typing import Any, NoReturn

from llmgine.errors import CellFailedError, MagicUsageError
from llmgine.llm import Model, provider_info

__all__ = ["SWEEP_USAGE", "run_sweep", "sweep_parser"]

SWEEP_USAGE = (
    "%llmgine sweep DATA --models M1,M2 [--score SPEC]... [-o NAME]   (DATA: a DataFrame, a "
    "list or a .csv/.jsonl path); or %%llmgine sweep --models M1,M2 with a prompt a line "
    "(or --data NAME and a template as the cell)"
)
PROMPT_COLUMNS = ("prompt", "question", "text", "input")  # a DataFrame's, without --column


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise MagicUsageError(f"%llmgine sweep: {message}. Usage: {SWEEP_USAGE}")


def sweep_parser() -> argparse.ArgumentParser:
    """The options of ``%llmgine sweep`` (``%llmgine help`` lists them)."""
    parser = _Parser(prog="%llmgine sweep", add_help=False)
    add = parser.add_argument
    add("data", nargs="?", help="a DataFrame, list or .csv/.jsonl path (the line form)")
    add("--models", required=True, action="append", help="models, joined by commas")
    add("--score", action="append", default=[], metavar="SPEC", help="a scorer, repeatable")
    add("--data", dest="data_option", metavar="NAME", help="the cell form: rows for the template")
    add("--column", help="the DataFrame's prompt column")
    add("--template", help="a template over the data's fields ('Q: {question}')")
    add("--system", help="a system prompt")
    add("--temperature", help="one or more temperatures, joined by commas (a grid)")
    add("--max-tokens", type=int)
    add("--repeats", type=int, default=1)
    add("--concurrency", type=int, default=8)
    add("--budget", type=float, metavar="USD")
    add("--store", metavar="PATH", help="where answers are kept (default: the user's cache)")
    add("-o", "--output", metavar="NAME", help="store the SweepResult in NAME")
    return parser


def _models(words: list[str], namespace: dict[str, Any]) -> list[str | Model]:
    """Specs stay specs (the sweep makes and traces them); a name is a Model (or a spec
    string) from the namespace."""
    models: list[str | Model] = []
    for token in (t.strip() for word in words for t in word.split(",")):
        if not token:
            continue
        if ":" in token:
            provider_info(token.partition(":")[0])  # an unknown provider fails here, clearly
            models.append(token)
            continue
        value = namespace.get(token)
        if isinstance(value, Model) or (isinstance(value, str) and ":" in value):
            models.append(value)
        else:
            raise MagicUsageError(
                f"--models {token}: {token!r} is neither a model spec ('provider:model', "
                "e.g. 'demo:llmgine-demo') nor a llmgine Model in your namespace"
            )
    return models


def _data(name: str, namespace: dict[str, Any]) -> Any:
    if name in namespace:
        return namespace[name]
    if name.endswith((".csv", ".jsonl")) and os.path.exists(name):
        return name
    raise MagicUsageError(
        f"no {name!r} in your namespace (nor a .csv/.jsonl file of that name): give a "
        "DataFrame, a list of prompts or dicts, or a path"
    )


def _column(data: Any, args: Any) -> str | None:
    if args.column is not None or args.template is not None:
        return str(args.column) if args.column is not None else None
    columns = getattr(data, "columns", None)
    if columns is None:
        return None
    for name in PROMPT_COLUMNS:
        if name in columns:
            return name
    raise MagicUsageError(
        f"which column holds the prompts? Give --column NAME or --template '...{{name}}...'; "
        f"the DataFrame's columns: {', '.join(map(str, columns))}"
    )


def _sweep_inputs(args: Any, body: str | None, namespace: dict[str, Any]) -> dict[str, Any]:
    if body is None:  # the line form
        if args.data is None:
            raise MagicUsageError(f"%llmgine sweep needs DATA. Usage: {SWEEP_USAGE}")
        data = _data(args.data, namespace)
        if isinstance(data, str):  # a path: read now, to pick its prompt column
            import pandas as pd

            data = pd.read_csv(data) if data.endswith(".csv") else pd.read_json(data, lines=True)
        return {"data": data, "column": _column(data, args), "template": args.template}
    if args.data is not None:
        raise MagicUsageError(
            f"%%llmgine sweep takes its prompts from the cell (or --data NAME); got {args.data!r}"
        )
    text = body.strip()
    if args.data_option is not None:
        if not text:
            raise MagicUsageError("with --data, the cell is the template: 'Q: {question}'")
        data = _data(args.data_option, namespace)
        return {"data": data, "template": text}
    prompts = [line.strip() for line in text.splitlines() if line.strip()]
    if not prompts:
        raise MagicUsageError("the cell is empty: write the prompts below, one a line")
    return {"data": prompts}


def build_sweep(args: Any, body: str | None, namespace: dict[str, Any], bus: Any) -> Any:
    """The `Sweep` the magic's words describe (on the magics' ``bus``)."""
    from llmgine.sweep import Sweep, parse_scorer

    try:
        scorers = [parse_scorer(spec) for spec in args.score]
    except ValueError as exc:
        raise MagicUsageError(f"--score: {exc}") from exc
    grid: dict[str, Any] = {}
    if args.temperature is not None:
        try:
            grid["temperature"] = [float(t) for t in args.temperature.split(",") if t.strip()]
        except ValueError:
            raise MagicUsageError(
                f"--temperature {args.temperature}: give numbers joined by commas (0,0.7)"
            ) from None
    if args.max_tokens is not None:
        grid["max_tokens"] = [args.max_tokens]
    if args.system is not None:
        grid["system"] = [args.system]
    try:
        return Sweep(
            models=_models(args.models, namespace),
            grid=grid,
            scorers=scorers,
            repeats=args.repeats,
            concurrency=args.concurrency,
            budget_usd=args.budget,
            store=args.store,
            bus=bus,
            progress=False,  # the grid shows the progress
            **_sweep_inputs(args, body, namespace),
        )
    except (ValueError, TypeError) as exc:
        raise MagicUsageError(f"%llmgine sweep: {exc}") from exc


def run_sweep(magics: Any, line: str, body: str | None) -> None:
    """``%llmgine sweep`` (``body`` None) or ``%%llmgine sweep`` (the cell's text)."""
    from llmgine.notebook._sweep_view import SweepView
    from llmgine.notebook.magics._display import describe_error, replace, show, uses_text_output

    try:
        words = shlex.split(line)
    except ValueError as exc:
        raise MagicUsageError(f"cannot read the command line ({exc}); check its quotes") from exc
    args = sweep_parser().parse_args(words)
    workbench = magics.workbench
    sweep = build_sweep(args, body, magics.namespace, workbench.bus)
    view = SweepView(sweep, refresh_interval=workbench.update_interval)
    workbench.last_session_id = sweep.session_id  # %llmgine trace shows the sweep
    handle = None if uses_text_output(magics.ipython) else show(view, update=True)
    try:
        result = workbench.loop.stream(
            view.run_emitting,
            view.apply_update,
            view.refresh,
            interval=workbench.update_interval,
        )
    except Exception as exc:  # the sweep itself failed (a row's error is data, not this)
        raise CellFailedError(describe_error(exc), exc) from exc
    if args.output:
        magics.namespace[args.output] = result
    metadata = {
        "llmgine": {
            "sweep": {
                "rows": result.done,
                "total": result.total,
                "errors": int(result.df["error_type"].notna().sum()) if result.done else 0,
                "spent_usd": result.spent_usd,
                "stopped": result.stopped,
                "session_id": result.session_id,
            }
        }
    }
    if handle is not None:  # the saved output's text and HTML show the finished sweep
        replace(handle, view, metadata=metadata)
    else:
        print(repr(view))
