"""A grid of request parameters: a dict of lists, every combination."""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from typing import Any

from llmgine.llm._model import REQUEST_FIELDS

__all__ = ["expand_grid"]


def expand_grid(grid: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    """Every combination of ``grid``'s values, in order (the first key varies slowest).

    Keys are request fields (``temperature``, ``max_tokens``, ...) or ``system`` (a system
    prompt variant). A value that is not a list or tuple is the one value of its key. No
    grid (or an empty one) is one parameter set, ``{}``.
    """
    if not grid:
        return [{}]
    allowed = REQUEST_FIELDS | {"system"}
    unknown = sorted(set(grid) - allowed)
    if unknown:
        raise ValueError(
            f"grid parameters {unknown} are not request fields; use 'system' (a system "
            f"prompt) or one of: {', '.join(sorted(REQUEST_FIELDS))}"
        )
    values: list[list[Any]] = []
    for name, value in grid.items():
        options = list(value) if isinstance(value, list | tuple) else [value]
        if not options:
            raise ValueError(f"grid parameter {name!r} has no values; give at least one")
        values.append(options)
    names = list(grid)
    return [dict(zip(names, combo, strict=True)) for combo in itertools.product(*values)]
