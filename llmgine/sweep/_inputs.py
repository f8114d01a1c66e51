"""A sweep's inputs as rows: strings, dicts into a template, a DataFrame, a CSV/JSONL file."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["InputRow", "input_fields", "load_inputs"]

InputRow = dict[str, Any]  # the input fields, plus "prompt": the rendered text


def _render(template: str, row: Mapping[str, Any], index: int) -> str:
    try:
        return template.format(**row)
    except KeyError as exc:
        name = exc.args[0]
        raise ValueError(
            f"the template {template!r} names {{{name}}}, which input row {index} does not "
            f"have (its fields: {', '.join(map(str, row)) or 'none'}); add the field to the "
            f"data or change the template"
        ) from None
    except (IndexError, ValueError) as exc:
        raise ValueError(
            f"the template {template!r} cannot be filled from input row {index}: {exc}; "
            f"name every field, as in 'Translate {{text}} to {{lang}}' (double braces for a "
            f"literal brace)"
        ) from None


def _read_path(path: Path) -> Any:
    import pandas as pd

    if not path.exists():
        raise FileNotFoundError(f"no input file at {path}; give a CSV or JSONL file that exists")
    if path.suffix == ".csv":
        return pd.read_csv(path)
    if path.suffix in (".jsonl", ".ndjson"):
        return pd.read_json(path, lines=True)
    raise ValueError(
        f"an input file is .csv or .jsonl (one JSON object a line); got {path.name}: "
        "load it yourself and pass a DataFrame or a list"
    )


def load_inputs(
    data: Any, *, template: str | None = None, column: str | None = None
) -> list[InputRow]:
    """The input rows of ``data``, each with its rendered ``"prompt"``.

    ``data``: a list of strings (each a prompt; its field is ``text``), a list of dicts
    (with ``template``, or each dict's own ``"prompt"``), a pandas DataFrame (``column``:
    the prompt column; or ``template`` over its columns) or the path of a CSV or JSONL
    file (read as a DataFrame).
    """
    if isinstance(data, str | os.PathLike):
        data = _read_path(Path(data))
    if type(data).__name__ == "DataFrame" and hasattr(data, "to_dict"):
        if column is not None and template is not None:
            raise ValueError("give column= (the prompt column) or template=, not both")
        if column is not None:
            if column not in data.columns:
                raise ValueError(
                    f"the DataFrame has no column {column!r}; its columns: "
                    f"{', '.join(map(str, data.columns))}"
                )
            template = "{" + column + "}"
        records = [{str(k): v for k, v in r.items()} for r in data.to_dict("records")]
        if template is None:
            raise ValueError(
                "a DataFrame needs column= (the column holding the prompts) or template= "
                "(e.g. 'Translate {text} to {lang}' over its columns)"
            )
        return [{**r, "prompt": _render(template, r, i)} for i, r in enumerate(records)]
    if column is not None:
        raise ValueError("column= is for a DataFrame; for a list of dicts give template=")
    if not isinstance(data, Sequence) or isinstance(data, bytes):
        raise TypeError(
            "inputs are a list of strings, a list of dicts (with template=), a pandas "
            f"DataFrame or a CSV/JSONL path; got {type(data).__name__}"
        )
    rows: list[InputRow] = []
    for i, item in enumerate(data):
        if isinstance(item, str):
            fields = {"text": item}
            rows.append({**fields, "prompt": _render(template or "{text}", fields, i)})
        elif isinstance(item, Mapping):
            fields = {str(k): v for k, v in item.items()}
            if template is None:
                if "prompt" not in fields:
                    raise ValueError(
                        f"input row {i} is a dict with no 'prompt' field, and no template= "
                        "was given: give template= (e.g. 'Translate {text} to {lang}')"
                    )
                rows.append(fields)
            else:
                rows.append({**fields, "prompt": _render(template, fields, i)})
        else:
            raise TypeError(
                f"input row {i} is a {type(item).__name__}; a list of inputs holds strings or dicts"
            )
    if not rows:
        raise ValueError("the inputs are empty: give at least one prompt")
    return rows


def input_fields(rows: Sequence[InputRow]) -> list[str]:
    """Every input field (not "prompt"), in order of first appearance."""
    seen: dict[str, None] = {}
    for row in rows:
        for name in row:
            if name != "prompt":
                seen.setdefault(name, None)
    return list(seen)
