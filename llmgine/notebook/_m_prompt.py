"""A cell's text as a prompt (``{name}`` substitution), and the answer in each format.

Substitution reads names, not expressions: ``{topic}``, ``{doc.title}``, ``{In[3]}``,
``{Out[2]}``. A name that does not resolve is left as written, ``{{topic}}`` keeps
``{topic}`` literally, and any other brace is text: prompts are full of code and JSON,
which must pass through untouched (so ``{"a": {"b": 1}}`` stays as it is, where
``str.format`` rules would collapse its ``}}``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any, Final, Literal

__all__ = ["FORMATS", "Format", "answer_code", "answer_json", "strip_fence", "substitute"]

Format = Literal["markdown", "text", "code", "json", "html"]
FORMATS: Final[tuple[Format, ...]] = ("markdown", "text", "code", "json", "html")

_FIELD = r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*(?:\[-?\d+\])?"
_TEMPLATE = re.compile(r"\{\{(" + _FIELD + r")\}\}|\{(" + _FIELD + r")\}")
_INDEX = re.compile(r"^(?P<path>[^\[]+)(?:\[(?P<index>-?\d+)\])?$")
_FENCE = re.compile(r"```[ \t]*(?P<lang>[\w+#.-]*)[^\n]*\n(?P<body>.*?)```", re.DOTALL)
_MISSING: Final = object()


def _lookup(field: str, namespace: Mapping[str, Any]) -> Any:
    match = _INDEX.match(field)
    if match is None:  # pragma: no cover - _FIELD only matches what _INDEX parses
        return _MISSING
    first, *attributes = match["path"].split(".")
    if first not in namespace:
        return _MISSING
    value = namespace[first]
    try:
        for attribute in attributes:
            value = getattr(value, attribute)
        if match["index"] is not None:
            value = value[int(match["index"])]
    except (AttributeError, KeyError, IndexError, TypeError):
        return _MISSING  # does not resolve: leave the text as the user wrote it
    return value


def substitute(text: str, namespace: Mapping[str, Any]) -> str:
    """``text`` with each ``{name}`` that resolves in ``namespace`` replaced by its str()."""

    def replace(match: re.Match[str]) -> str:
        escaped = match.group(1)
        if escaped is not None:
            return "{" + escaped + "}"
        value = _lookup(match.group(2), namespace)
        return match.group(0) if value is _MISSING else str(value)

    return _TEMPLATE.sub(replace, text)


def strip_fence(text: str) -> tuple[str, str]:
    """The first fenced block of ``text`` and its language, or the whole text and ""."""
    match = _FENCE.search(text)
    if match is None:
        return text.strip(), ""
    return match["body"].rstrip("\n"), match["lang"]


def answer_code(text: str) -> tuple[str, str]:
    """The code an answer holds (its first fenced block, else all of it) and its
    language (``python`` when the fence names none)."""
    code, language = strip_fence(text)
    return code, language or "python"


def answer_json(text: str) -> Any:
    """The JSON value an answer holds (fenced or not).

    Raises:
        ValueError: the answer is not JSON; the message says where it stops parsing.
    """
    body, _ = strip_fence(text)
    try:
        return json.loads(body)
    except json.JSONDecodeError as exc:
        raise ValueError(
            f"the answer is not valid JSON ({exc.msg} at line {exc.lineno}, column "
            f"{exc.colno}); ask for JSON only in the prompt, or use -f text"
        ) from exc
