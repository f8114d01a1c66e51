"""Scorers: what turns a sweep's answer into a number in a ``score.<name>`` column.

A `Scorer` has a ``name`` (its column is ``score.<name>``), ``extra_columns`` it also fills
(may be empty) and ``async score(row, response)``. ``row`` is the input row: the prompt's
input fields by name, ``"prompt"`` (the rendered text) and any other column of the data
(``"expected"``, ...). It returns a float (a bool counts as 1.0 / 0.0), None when the
score does not apply to the row (no expected value), or `Scored` to fill extra columns too.

A wrong answer is a score (0), never an exception. A scorer that cannot score a row (a
user's function raised or returned something that is not a score, the row lacks the column
the scorer reads) raises `llmgine.errors.ScorerError` naming the scorer; the sweep records
it as that row's score error and goes on. A scorer that cannot be built (a bad regex, an
unknown ``--score`` form) is a ``ValueError`` at once, before any call is made.

Built in: `exact_match`, `contains`, `regex`, `json_valid`, `numeric_close`, `scorer` (any
function of the row and the response, sync or async) and `llm_judge` (in ``_judge``).
`parse_scorer` reads the short forms a magic's ``--score`` takes.
"""

from __future__ import annotations

import importlib
import inspect
import json
import math
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from pydantic import BaseModel, ValidationError

from llmgine.errors import MissingExtraError, ScorerError
from llmgine.llm._response import LLMResponse

__all__ = [
    "FunctionScorer",
    "Scored",
    "Scorer",
    "contains",
    "exact_match",
    "json_valid",
    "numeric_close",
    "parse_scorer",
    "regex",
    "scorer",
]

Row = Mapping[str, Any]
ScoreValue = float | bool | int | None
ScoreFn = Callable[[Row, LLMResponse], "ScoreValue | Scored | Awaitable[ScoreValue | Scored]"]


@dataclass(frozen=True)
class Scored:
    """A score with more columns: ``extras`` maps column names (each one of the scorer's
    ``extra_columns``, e.g. ``"score.judge.reason"``) to their values for this row."""

    value: float | None
    extras: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class Scorer(Protocol):
    """What a sweep calls to score each answer (see the module docstring)."""

    name: str
    extra_columns: tuple[str, ...]

    async def score(self, row: Row, response: LLMResponse) -> float | Scored | None: ...


class FunctionScorer:
    """A `Scorer` around a function ``fn(row, response)``, sync or async, returning a float,
    a bool, an int, None or `Scored`. Made by `scorer` and by every built-in.

    Anything ``fn`` raises becomes a `ScorerError` naming the scorer (the original is its
    ``__cause__``), and so does a result that is not a score (a string, NaN is allowed and
    read as None). A sync ``fn`` runs on the event loop: keep it quick, or make it async.
    """

    def __init__(self, fn: ScoreFn, *, name: str, extra_columns: tuple[str, ...] = ()) -> None:
        if not name or not isinstance(name, str):
            raise ValueError(f"a scorer needs a non-empty name, got {name!r}")
        self.fn = fn
        self.name = name
        self.extra_columns = extra_columns

    def __repr__(self) -> str:
        return f"<Scorer {self.name}>"

    async def score(self, row: Row, response: LLMResponse) -> float | Scored | None:
        try:
            result = self.fn(row, response)
            if inspect.isawaitable(result):
                result = await result
        except ScorerError:
            raise
        except Exception as exc:
            raise ScorerError(
                f"scorer {self.name!r} raised {type(exc).__name__}: {exc}", scorer=self.name
            ) from exc
        if isinstance(result, Scored):
            return Scored(_as_score(result.value, self.name), dict(result.extras))
        return _as_score(result, self.name)


def _as_score(value: object, name: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, int | float) or _is_numpy_number(value):
        number = float(value)  # type: ignore[arg-type]
        return None if math.isnan(number) else number
    raise ScorerError(
        f"scorer {name!r} returned {value!r} ({type(value).__name__}); a score is a float, "
        "a bool, an int or None (does not apply)",
        scorer=name,
    )


def _is_numpy_number(value: object) -> bool:
    return type(value).__module__ == "numpy" and hasattr(value, "__float__")


def scorer(fn: ScoreFn, name: str | None = None) -> FunctionScorer:
    """Any function of the row and the response as a scorer; sync or async.

    Example:
        def short(row, response):
            return len(response.text) < 200     # True/False become 1.0/0.0

        async def grounded(row, response):
            return await my_checker(row["context"], response.text)

        sweep(..., scorers=[scorer(short), scorer(grounded, name="grounded")])
    """
    if not callable(fn):
        raise TypeError(f"scorer() takes a function of (row, response), got {fn!r}")
    return FunctionScorer(fn, name=name or getattr(fn, "__name__", "") or "custom")


def _column(row: Row, column: str, name: str) -> Any:
    """The row's value in ``column``; None for a missing value (None, NaN, pandas NA)."""
    if column not in row:
        raise ScorerError(
            f"scorer {name!r} reads the column {column!r}, which the row does not have (it "
            f"has {', '.join(map(repr, row)) or 'none'}); add it to the data or name another "
            "column",
            scorer=name,
        )
    value = row[column]
    return None if is_missing(value) else value


def is_missing(value: object) -> bool:
    """None, NaN, or pandas' NA / NaT: a cell with no value."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return True
    return type(value).__name__ in ("NAType", "NaTType")


def _normalise(text: str, *, strip: bool, case: bool) -> str:
    text = text.strip() if strip else text
    return text if case else text.casefold()


def exact_match(
    column: str = "expected", *, strip: bool = True, case: bool = False, name: str = "exact"
) -> FunctionScorer:
    """1.0 when the answer equals the row's ``column`` (whitespace around it stripped and
    case ignored, unless ``strip=False`` / ``case=True``), else 0.0; None when the row has
    no expected value there."""

    def score(row: Row, response: LLMResponse) -> float | None:
        expected = _column(row, column, name)
        if expected is None:
            return None
        same = _normalise(response.text, strip=strip, case=case) == _normalise(
            str(expected), strip=strip, case=case
        )
        return 1.0 if same else 0.0

    return FunctionScorer(score, name=name)


def contains(
    text: str | None = None,
    *,
    column: str | None = None,
    case: bool = False,
    name: str = "contains",
) -> FunctionScorer:
    """1.0 when the answer contains ``text`` (a fixed string) or the row's ``column`` (the
    expected answer, per row), case ignored unless ``case=True``; else 0.0. Give one of
    the two; with neither, the ``"expected"`` column. None when that column is empty."""
    if text is not None and column is not None:
        raise ValueError("contains() takes a text or a column=, not both")
    if text is None and column is None:
        column = "expected"
    if text is not None and not text:
        raise ValueError("contains() needs a non-empty text (every answer contains '')")

    def score(row: Row, response: LLMResponse) -> float | None:
        needle = text if column is None else _column(row, column, name)
        if needle is None or str(needle) == "":
            return None
        found = _normalise(str(needle), strip=False, case=case) in _normalise(
            response.text, strip=False, case=case
        )
        return 1.0 if found else 0.0

    return FunctionScorer(score, name=name)


def regex(pattern: str | re.Pattern[str], *, flags: int = 0, name: str = "regex") -> FunctionScorer:
    """1.0 when ``pattern`` matches somewhere in the answer (`re.search`), else 0.0. An
    invalid pattern is a ``ValueError`` now, saying where it is wrong."""
    try:
        compiled = re.compile(pattern, flags) if isinstance(pattern, str) else pattern
    except re.error as exc:
        raise ValueError(f"invalid regular expression {pattern!r}: {exc}") from exc

    def score(row: Row, response: LLMResponse) -> float:
        return 1.0 if compiled.search(response.text) else 0.0

    return FunctionScorer(score, name=name)


_FENCE = re.compile(r"^\s*```[A-Za-z0-9_-]*\s*\n(.*?)\n?\s*```\s*$", re.DOTALL)


def _json_text(text: str) -> str:
    """The answer without a single Markdown code fence around it (```json ... ```)."""
    fenced = _FENCE.match(text)
    return fenced.group(1) if fenced else text


def json_valid(
    model_or_schema: type[BaseModel] | Mapping[str, Any] | None = None, *, name: str = "json"
) -> FunctionScorer:
    """1.0 when the answer is JSON (one Markdown code fence around it is allowed) that
    validates against ``model_or_schema``, else 0.0.

    ``model_or_schema`` is a pydantic model class, a JSON schema (a dict; validated with
    the ``jsonschema`` package, which must be installed: ``pip install jsonschema``) or
    None (any valid JSON). A schema that is itself invalid is a ``ValueError`` now.
    """
    check: Callable[[str], bool]
    if model_or_schema is None:

        def check(text: str) -> bool:
            try:
                json.loads(text)
            except ValueError:
                return False
            return True

    elif isinstance(model_or_schema, type) and issubclass(model_or_schema, BaseModel):
        model = model_or_schema

        def check(text: str) -> bool:
            try:
                model.model_validate_json(text)
            except ValidationError:
                return False
            return True

    elif isinstance(model_or_schema, Mapping):
        check = _schema_check(dict(model_or_schema))
    else:
        raise TypeError(
            "json_valid() takes a pydantic model class, a JSON schema (a dict) or None, got "
            f"{model_or_schema!r}"
        )

    def score(row: Row, response: LLMResponse) -> float:
        return 1.0 if check(_json_text(response.text)) else 0.0

    return FunctionScorer(score, name=name)


def _schema_check(schema: dict[str, Any]) -> Callable[[str], bool]:
    try:
        jsonschema: Any = importlib.import_module("jsonschema")  # an optional package
    except ImportError as exc:
        raise MissingExtraError(
            "json_valid() with a JSON schema needs the jsonschema package, which is not "
            "installed: pip install jsonschema (or pass a pydantic model class instead)",
            extra="jsonschema",
            module="jsonschema",
        ) from exc
    validator_class = jsonschema.validators.validator_for(schema)
    try:
        validator_class.check_schema(schema)
    except jsonschema.SchemaError as exc:
        raise ValueError(f"json_valid(): the JSON schema is invalid: {exc.message}") from exc
    validator = validator_class(schema)

    def check(text: str) -> bool:
        try:
            data = json.loads(text)
        except ValueError:
            return False
        return bool(validator.is_valid(data))

    return check


# A number as people and models write it: -3, 1,234.5, .5, 6.02e23 (thousands commas dropped).
_NUMBER = re.compile(r"[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)?(?:\.\d+)?(?:[eE][-+]?\d+)?")


def first_number(text: str) -> float | None:
    """The first number written in ``text`` (``"about 1,234.5 m"`` gives 1234.5), or None."""
    for match in _NUMBER.finditer(text):
        found = match.group(0)
        if any(ch.isdigit() for ch in found.split("e")[0].split("E")[0]):
            try:
                return float(found.replace(",", ""))
            except ValueError:
                continue
    return None


def numeric_close(
    column: str = "expected",
    *,
    tolerance: float = 1e-9,
    relative: float = 0.0,
    name: str = "close",
) -> FunctionScorer:
    """1.0 when the first number in the answer is within ``tolerance`` of the row's
    ``column`` (absolute) or within ``relative`` of it (a fraction: 0.01 is 1%), else 0.0
    (also when the answer has no number); None when the row has no expected value.

    The expected value may be a number or text holding one. Text with no number in it is
    a `ScorerError` (the data is wrong, not the answer).
    """
    if tolerance < 0 or relative < 0 or math.isnan(tolerance) or math.isnan(relative):
        raise ValueError(
            f"numeric_close() needs tolerance >= 0 and relative >= 0, got {tolerance}, {relative}"
        )

    def score(row: Row, response: LLMResponse) -> float | None:
        value = _column(row, column, name)
        if value is None:
            return None
        expected = float(value) if isinstance(value, int | float) else first_number(str(value))
        if expected is None:
            raise ScorerError(
                f"scorer {name!r}: the row's {column!r} is {value!r}, which holds no number",
                scorer=name,
            )
        answer = first_number(response.text)
        if answer is None:
            return 0.0
        close = abs(answer - expected) <= max(tolerance, relative * abs(expected))
        return 1.0 if close else 0.0

    return FunctionScorer(score, name=name)


SCORER_FORMS = """\
  exact            the answer equals the "expected" column (case and outer spaces ignored)
  exact:COLUMN     ... equals that column
  contains         the answer contains the "expected" column
  contains:TEXT    the answer contains TEXT (case ignored)
  regex:PATTERN    the pattern matches somewhere in the answer
  json             the answer is valid JSON
  close            the first number in the answer equals "expected" (within 1e-9)
  close:0.01       ... within 0.01 of it
  close:1%         ... within 1% of it
  judge:MODEL      MODEL (a spec, "openai:gpt-4o-mini") grades each answer, 0 to 1, by a
                   general rubric: correct, answers the prompt, agrees with "expected"
"""

JUDGE_RUBRIC = (
    "The answer is correct and answers the prompt. When a reference answer is given, the "
    "answer agrees with it (wording may differ). Score 1 for fully right, 0 for wrong or "
    "off-topic, in between for partly right."
)


def parse_scorer(spec: str) -> Scorer:
    """The scorer a short form names, as a magic's ``--score`` takes it (``"exact"``,
    ``"contains:Paris"``, ``"regex:^\\d+$"``, ``"json"``, ``"close:0.01"``,
    ``"judge:openai:gpt-4o-mini"``, ...).

    An unknown or malformed form is a ``ValueError`` listing every form.
    """
    kind, sep, arg = spec.strip().partition(":")
    kind = kind.strip().lower()
    if kind == "exact":
        return exact_match(arg.strip() or "expected")
    if kind == "contains":
        return contains(arg) if arg else contains()
    if kind == "regex" and arg:
        return regex(arg)
    if kind == "json" and not sep:
        return json_valid()
    if kind == "close":
        return _parse_close(spec, arg.strip())
    if kind == "judge" and arg.strip():
        from llmgine.sweep._judge import llm_judge  # it imports this module

        return llm_judge(arg.strip(), JUDGE_RUBRIC)
    raise ValueError(f"unknown scorer {spec!r}; the forms are:\n{SCORER_FORMS}")


def _parse_close(spec: str, arg: str) -> FunctionScorer:
    if not arg:
        return numeric_close()
    try:
        if arg.endswith("%"):
            return numeric_close(tolerance=0.0, relative=float(arg[:-1]) / 100)
        return numeric_close(tolerance=float(arg))
    except ValueError:
        pass
    raise ValueError(
        f"scorer {spec!r}: {arg!r} is not a tolerance (a number such as 0.01, or a percentage "
        f"such as 1%); the forms are:\n{SCORER_FORMS}"
    )
