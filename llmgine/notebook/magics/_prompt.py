"""A cell's text as a prompt (``{name}`` substitution), and the answer in each format.

Substitution reads names, not expressions: ``{topic}``, ``{doc.title}``, ``{In[3]}``,
``{Out[2]}``. ``{{topic}}`` sends ``{topic}`` literally, and any other brace is text:
prompts are full of code and JSON, which must pass through untouched (so
``{"a": {"b": 1}}`` stays as it is, where ``str.format`` rules would collapse its ``}}``
and read ``{"a"`` as a field). The escape applies only where a brace would otherwise be
read as a field, for the same reason.

A field that does not resolve (a misspelt name, a missing attribute, ``In[99]``) is sent
as written, not dropped or refused: a prompt about code (``f"{x}"``, ``\\textbf{word}``)
holds such fields on purpose. `fill` reports each one, with the closest defined name
(``difflib``), so the magic can warn in the cell's output before the call is made.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

__all__ = [
    "FORMATS",
    "Filled",
    "Format",
    "Unresolved",
    "answer_code",
    "answer_json",
    "fill",
    "strip_fence",
    "substitute",
]

Format = Literal["markdown", "text", "code", "json", "html"]
FORMATS: Final[tuple[Format, ...]] = ("markdown", "text", "code", "json", "html")

_FIELD = r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*(?:\[-?\d+\])?"
_TEMPLATE = re.compile(r"\{\{(" + _FIELD + r")\}\}|\{(" + _FIELD + r")\}")
_INDEX = re.compile(r"^(?P<path>[^\[]+)(?:\[(?P<index>-?\d+)\])?$")
_FENCE = re.compile(r"```[ \t]*(?P<lang>[\w+#.-]*)[^\n]*\n(?P<body>.*?)```", re.DOTALL)


@dataclass(frozen=True)
class Unresolved:
    """A ``{field}`` that did not resolve: why, and the closest field that would."""

    field: str
    reason: str
    suggestion: str | None = None

    def __str__(self) -> str:
        hint = f" (did you mean {{{self.suggestion}}}?)" if self.suggestion else ""
        return f"{{{self.field}}}: {self.reason}{hint}"


@dataclass(frozen=True)
class Filled:
    """A prompt with its fields replaced, and the fields left as written."""

    text: str
    unresolved: tuple[Unresolved, ...] = ()

    def warning(self) -> str:
        """What to tell the user about `unresolved` (empty when every field resolved)."""
        if not self.unresolved:
            return ""
        lines = ["llmgine: the prompt was sent with these fields as written:"]
        lines += [f"  {u}" for u in self.unresolved]
        example = self.unresolved[0].field
        lines.append(
            f"Fix the name (or define it) and run the cell again; write {{{{{example}}}}} "
            "to send the braces on purpose."
        )
        return "\n".join(lines)


def _closest(word: str, candidates: Iterable[str]) -> str | None:
    """The candidate closest to ``word``; private (``_``) names only when ``word`` is."""
    names = [c for c in candidates if isinstance(c, str) and (word[0] == "_" or c[0] != "_")]
    found = difflib.get_close_matches(word, names, n=1, cutoff=0.6)
    return found[0] if found else None


def _lookup(field: str, namespace: Mapping[str, Any]) -> tuple[Any, Unresolved | None]:
    match = _INDEX.match(field)
    if match is None:  # pragma: no cover - _FIELD only matches what _INDEX parses
        return None, Unresolved(field, "is not a name")
    first, *attributes = match["path"].split(".")
    if first not in namespace:
        near = _closest(first, namespace)
        suggestion = field.replace(first, near, 1) if near else None
        return None, Unresolved(field, f"{first} is not defined", suggestion)
    value, path = namespace[first], first
    for attribute in attributes:
        try:
            value = getattr(value, attribute)
        except AttributeError:
            near = _closest(attribute, dir(value))
            suggestion = field.replace(f"{path}.{attribute}", f"{path}.{near}", 1) if near else None
            reason = f"{path} ({type(value).__name__}) has no attribute {attribute!r}"
            return None, Unresolved(field, reason, suggestion)
        except Exception as exc:  # a property that raises: the field does not resolve
            return None, Unresolved(field, f"reading {path}.{attribute} raised {_kind(exc)}")
        path = f"{path}.{attribute}"
    if match["index"] is not None:
        try:
            value = value[int(match["index"])]
        except (IndexError, KeyError):
            return None, Unresolved(field, f"{path} has no item {match['index']}")
        except Exception as exc:  # not indexable, or its __getitem__ raised
            reason = f"{path} ({type(value).__name__}) cannot be indexed ({_kind(exc)})"
            return None, Unresolved(field, reason)
    return value, None


def _kind(exc: BaseException) -> str:
    # The type only: an exception's message may hold anything, a key included.
    return type(exc).__name__


def fill(text: str, namespace: Mapping[str, Any]) -> Filled:
    """``text`` with each ``{field}`` that resolves in ``namespace`` replaced by its str(),
    ``{{field}}`` by ``{field}``, and the fields that did not resolve (kept as written)."""
    unresolved: dict[str, Unresolved] = {}

    def replace(match: re.Match[str]) -> str:
        escaped = match.group(1)
        if escaped is not None:
            return "{" + escaped + "}"
        field = match.group(2)
        value, problem = _lookup(field, namespace)
        if problem is None:
            try:
                return str(value)
            except Exception as exc:
                problem = Unresolved(field, f"str() of its value raised {_kind(exc)}")
        unresolved.setdefault(field, problem)
        return match.group(0)

    return Filled(_TEMPLATE.sub(replace, text), tuple(unresolved.values()))


def substitute(text: str, namespace: Mapping[str, Any]) -> str:
    """`fill`'s text only."""
    return fill(text, namespace).text


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
