"""From a Python function to the JSON schema of its arguments, and back to a call.

One pydantic model per function, built from its signature (annotations, defaults) and its
docstring (Google, NumPy or reST parameter descriptions), both validates the arguments a
model sends and produces the schema the model sees, so the two cannot disagree. The schema
is then cleaned for providers (`clean_schema`): ``$defs`` inlined (kept only for recursive
models, which cannot be inlined), no ``title`` noise, ``additionalProperties: false`` on
every object with fixed properties.

Validation errors never quote the values a model sent unless the caller says content is
captured (``show_values``; a `ToolManager` passes its tracer's content capture): they reach
spans, bus events, JSONL and the console, where content is recorded only then. Without
capture an error names each field and what is wrong, with any value a validator's own
words repeat cut out; with capture the values are shown, redacted like any recorded
content (whole under keys such as ``password``).
"""

from __future__ import annotations

import copy
import functools
import inspect
import json
import typing
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any

import docstring_parser
from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model
from pydantic.fields import FieldInfo
from pydantic_core import PydanticSerializationError, core_schema, to_jsonable_python

from llmgine._redact import REDACTED, redact, redact_text
from llmgine.errors import ToolArgumentsError, ToolDefinitionError

__all__ = [
    "FunctionSignature",
    "argument_errors",
    "clean_schema",
    "function_signature",
    "parse_docstring",
]

# Keywords whose value is a map of name -> schema, one schema, or a list of schemas. Every
# other keyword's value (default, enum, const, examples, ...) is data and is left alone, so
# a property or default *named* "title" survives the cleaning.
_SCHEMA_MAPS = ("properties", "patternProperties", "$defs", "definitions", "dependentSchemas")
_SCHEMA_ONE = (
    "items",
    "additionalProperties",
    "not",
    "contains",
    "propertyNames",
    "if",
    "then",
    "else",
    "unevaluatedItems",
    "unevaluatedProperties",
)
_SCHEMA_LISTS = ("anyOf", "oneOf", "allOf", "prefixItems")
_DEFS_PREFIX = "#/$defs/"
# hide_input_in_errors: pydantic's own error text (kept as the __cause__) never shows the
# values either; they are in `ValidationError.errors()`, which `argument_errors` filters.
_MODEL_CONFIG = ConfigDict(extra="forbid", protected_namespaces=(), hide_input_in_errors=True)
# Error types whose message is pydantic's template filled from the schema (limits, expected
# literals, types): it cannot carry the input. Other messages (a validator's ValueError or
# assertion, a custom error, a union tag) are free text that may repeat what was sent.
_TEMPLATED = frozenset(typing.get_args(core_schema.ErrorType)) - {
    "value_error",
    "assertion_error",
    "union_tag_invalid",
}
_INPUT_SHOWN = 80  # characters of a wrong value shown (with capture on)
_CUT = "<value hidden>"


def parse_docstring(fn: Callable[..., Any]) -> tuple[str, dict[str, str]]:
    """The description of ``fn`` and of each parameter, from its docstring in Google,
    NumPy or reST style (detected); parameter sections are not part of the description."""
    target = fn.func if isinstance(fn, functools.partial) else fn
    doc = inspect.getdoc(target)
    if not doc:
        return "", {}
    parsed = docstring_parser.parse(doc)
    description = (parsed.description or "").strip()
    params = {
        p.arg_name: " ".join(line.strip() for line in p.description.splitlines()).strip()
        for p in parsed.params
        if p.description
    }
    return description, params


def _hint_target(fn: Callable[..., Any]) -> Any:
    """What ``typing.get_type_hints`` should read for ``fn`` (its annotations' home)."""
    if isinstance(fn, functools.partial):
        return _hint_target(fn.func)
    if isinstance(fn, type):
        return typing.cast(Any, fn).__init__
    if inspect.isfunction(fn) or inspect.ismethod(fn):
        return fn
    return type(fn).__call__  # a callable object: its __call__ holds the annotations


def _type_hints(fn: Callable[..., Any], where: str) -> dict[str, Any]:
    try:
        return typing.get_type_hints(_hint_target(fn), include_extras=True)
    except NameError as exc:
        raise ToolDefinitionError(
            f"the annotations of {where} name something that cannot be found ({exc}); "
            "define the types it uses at module level (not inside a function), or import "
            "them where the function is defined"
        ) from exc


def _jsonable(value: Any) -> bool:
    try:
        to_jsonable_python(value)
    except PydanticSerializationError:
        return False
    return True


def _described(annotation: Any) -> bool:
    """Whether ``Annotated[..., Field(description=...)]`` already describes the parameter
    (it wins over the docstring, as a ``Field`` default does)."""
    if typing.get_origin(annotation) is not Annotated:
        return False
    return any(isinstance(m, FieldInfo) and m.description for m in annotation.__metadata__)


@dataclass(frozen=True)
class _Param:
    field: str  # the pydantic field (may differ from the name, see _field_name)
    name: str  # the parameter's name: the key in the model's arguments
    positional_only: bool


def _field_name(name: str, index: int, taken: set[str]) -> str:
    # Names pydantic refuses or that shadow BaseModel attributes (`json`, `copy`, `schema`,
    # `_private`, `model_*`) become an internal field name with the real name as alias.
    if not name.startswith("_") and not name.startswith("model_") and not hasattr(BaseModel, name):
        return name
    field = f"arg{index}"
    while field in taken:
        field += "_"
    return field


@dataclass(frozen=True)
class FunctionSignature:
    """What `function_signature` finds: the arguments model, the cleaned schema, the
    description, and how validated arguments map back onto a call."""

    model: type[BaseModel]
    parameters: dict[str, Any]
    description: str
    params: tuple[_Param, ...]

    def bind(
        self, tool: str, arguments: Mapping[str, Any], *, show_values: bool = False
    ) -> tuple[list[Any], dict[str, Any]]:
        """Validate (and coerce) ``arguments``; return the call's positional and keyword
        arguments. Raises `ToolArgumentsError`, naming each field that is wrong (and,
        with ``show_values``, quoting what was sent, redacted)."""
        if not isinstance(arguments, Mapping):
            raise ToolArgumentsError(
                f"the arguments for tool {tool!r} must be a JSON object, got "
                f"{type(arguments).__name__}",
                tool=tool,
                errors=[{"loc": [], "msg": "expected an object", "type": "object_type"}],
            )
        try:
            validated = self.model.model_validate(dict(arguments))
        except ValidationError as exc:
            captured = show_values
            errors = argument_errors(exc, values=captured)
            error = ToolArgumentsError(
                f"invalid arguments for tool {tool!r}: {_describe(errors)}",
                tool=tool,
                errors=errors,
            )
            # pydantic's error hides inputs but not a validator's words, which may repeat
            # them: it is attached (and so in tracebacks) only when content is captured.
            raise error from (exc if captured else None)
        args: list[Any] = []
        kwargs: dict[str, Any] = {}
        for param in self.params:
            value = getattr(validated, param.field)
            if param.positional_only:
                args.append(value)
            else:
                kwargs[param.name] = value
        return args, kwargs


def argument_errors(exc: ValidationError, *, values: bool = False) -> list[dict[str, Any]]:
    """A pydantic validation error as plain, JSON-able data: location, message and type
    of each wrong field, never the values sent, unless ``values`` (content is captured);
    then also the ``input`` (redacted, shortened) of each field that was not missing."""
    out: list[dict[str, Any]] = []
    for error in exc.errors(include_url=False):
        loc = list(error["loc"])
        given = to_jsonable_python(error.get("input"), fallback=repr)
        shown = _redacted_at(loc, given) if values else None
        message = error["msg"]
        if error["type"] not in _TEMPLATED:
            if values:  # only what redaction removed from the input goes from the words
                removed = set(_leaves(given)) - set(_leaves(shown))
                message = redact_text(_without(message, removed, REDACTED))
            else:
                message = _without(message, _leaves(given), _CUT)
        item: dict[str, Any] = {"loc": loc, "msg": message, "type": error["type"]}
        if values and error["type"] != "missing":
            text = json.dumps(shown, ensure_ascii=False)
            item["input"] = text if len(text) <= _INPUT_SHOWN else text[: _INPUT_SHOWN - 3] + "..."
        out.append(item)
    return out


def _redacted_at(loc: list[Any], value: Any) -> Any:
    """``value`` redacted as recorded content is, knowing where it sits: under a key such
    as ``password`` or ``authorization`` it is replaced whole."""
    nested = value
    for part in reversed(loc):
        nested = {str(part): nested}
    found = redact(nested)
    for part in loc:
        if not isinstance(found, dict):
            break  # redacted whole, above this point
        found = found[str(part)]
    return found


def _leaves(value: Any) -> list[str]:
    """The scalar values in ``value`` as text (not its keys: those are names, which errors
    show anyway as locations)."""
    if isinstance(value, dict):
        return [leaf for v in value.values() for leaf in _leaves(v)]
    if isinstance(value, list):
        return [leaf for v in value for leaf in _leaves(v)]
    if isinstance(value, bool) or value is None:
        return []
    return [str(value)]


def _without(message: str, values: Iterable[str], mark: str) -> str:
    """A free-text message with each of ``values`` it repeats replaced by ``mark`` (values
    of under three characters cannot be told from ordinary words, and say little)."""
    for leaf in sorted(set(values), key=len, reverse=True):
        if len(leaf) >= 3:
            message = message.replace(leaf, mark)
    return message


def _describe(errors: list[dict[str, Any]]) -> str:
    parts = []
    for error in errors:
        where = ".".join(str(part) for part in error["loc"]) or "(arguments)"
        got = f" (got {error['input']})" if "input" in error else ""
        parts.append(f"{where}: {error['msg']}{got}")
    return "; ".join(parts)


def function_signature(
    fn: Callable[..., Any], name: str, description: str | None = None
) -> FunctionSignature:
    """The arguments model and JSON schema of ``fn``.

    Parameters without an annotation accept any JSON value (``Any``). ``*args`` and
    ``**kwargs`` are refused: a model cannot be told what they take.
    """
    where = f"tool {name!r} ({getattr(fn, '__qualname__', repr(fn))})"
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError) as exc:
        raise ToolDefinitionError(f"cannot read the signature of {where}: {exc}") from exc
    hints = _type_hints(fn, where)
    doc_description, doc_params = parse_docstring(fn)
    fields: dict[str, Any] = {}
    params: list[_Param] = []
    for index, param in enumerate(signature.parameters.values()):
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            raise ToolDefinitionError(
                f"{where} takes {'*' if param.kind is param.VAR_POSITIONAL else '**'}"
                f"{param.name}, which cannot be described to a model; give the tool named "
                "parameters (wrap it in a function with explicit ones)"
            )
        annotation = hints.get(param.name, Any)
        field = _field_name(param.name, index, set(fields) | set(signature.parameters))
        overrides: dict[str, Any] = {}
        if field != param.name:
            overrides["alias"] = param.name
        default = param.default
        if isinstance(default, FieldInfo):  # `x: int = Field(3, description=...)`
            if default.description is None and param.name in doc_params:
                overrides["description"] = doc_params[param.name]
            annotation = Annotated[annotation, default]
            info = Field(**overrides)
        else:
            if param.name in doc_params and not _described(annotation):
                overrides["description"] = doc_params[param.name]
            if default is param.empty:
                info = Field(**overrides)
            elif _jsonable(default):
                info = Field(default=default, **overrides)
            else:  # the schema cannot show it; a factory keeps it out of the schema
                factory = functools.partial(copy.copy, default)
                info = Field(default_factory=factory, **overrides)
        fields[field] = (annotation, info)
        params.append(_Param(field, param.name, param.kind is param.POSITIONAL_ONLY))
    try:
        model = create_model(name, __config__=_MODEL_CONFIG, **fields)
        schema = model.model_json_schema(by_alias=True)
    except Exception as exc:  # pydantic's schema errors share no base class worth naming
        raise ToolDefinitionError(
            f"{where} has a parameter type pydantic cannot validate or describe ({exc}); "
            "use plain types, Optional/Literal/Enum, lists, dicts, TypedDicts, dataclasses "
            "or pydantic models"
        ) from exc
    chosen = doc_description if description is None else description
    return FunctionSignature(model, clean_schema(schema), chosen, tuple(params))


def clean_schema(schema: Mapping[str, Any]) -> dict[str, Any]:
    """A provider-friendly copy of a JSON schema (see the module docstring)."""
    defs: dict[str, Any] = dict(schema.get("$defs", {}))
    recursive = _recursive(defs)
    root = {k: v for k, v in schema.items() if k != "$defs"}
    out: dict[str, Any] = _clean(root, defs, recursive, ())
    if recursive:
        kept = {name: _clean(defs[name], defs, recursive, (name,)) for name in sorted(recursive)}
        out["$defs"] = kept
    return out


def _refs(node: Any) -> set[str]:
    found: set[str] = set()
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith(_DEFS_PREFIX):
            found.add(ref[len(_DEFS_PREFIX) :])
        for value in node.values():
            found |= _refs(value)
    elif isinstance(node, list):
        for value in node:
            found |= _refs(value)
    return found


def _recursive(defs: dict[str, Any]) -> set[str]:
    """The definitions that refer back to themselves (directly or not): they stay refs."""
    graph = {name: _refs(body) for name, body in defs.items()}
    recursive: set[str] = set()
    for start in graph:
        seen: set[str] = set()
        todo = list(graph[start])
        while todo:
            name = todo.pop()
            if name == start:
                recursive.add(start)
                break
            if name not in seen and name in graph:
                seen.add(name)
                todo.extend(graph[name])
    return recursive


def _clean(node: Any, defs: dict[str, Any], recursive: set[str], stack: tuple[str, ...]) -> Any:
    if not isinstance(node, dict):
        return node
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith(_DEFS_PREFIX):
        name = ref[len(_DEFS_PREFIX) :]
        if name in defs and name not in recursive and name not in stack:
            # The field's own keywords (its description, default) win over the model's.
            siblings = {k: v for k, v in node.items() if k != "$ref"}
            inlined = _clean(copy.deepcopy(defs[name]), defs, recursive, (*stack, name))
            return {**inlined, **_clean(siblings, defs, recursive, stack)}
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "title":
            continue
        if key in _SCHEMA_MAPS and isinstance(value, dict):
            out[key] = {k: _clean(v, defs, recursive, stack) for k, v in value.items()}
        elif key in _SCHEMA_ONE and isinstance(value, dict):
            out[key] = _clean(value, defs, recursive, stack)
        elif key in _SCHEMA_LISTS and isinstance(value, list):
            out[key] = [_clean(v, defs, recursive, stack) for v in value]
        else:
            out[key] = value
    if out.get("type") == "object" and "properties" in out and "additionalProperties" not in out:
        out["additionalProperties"] = False
    return out
