"""What JSON would not bring back as it was: the value checks behind `to_json`.

`check_message` walks a message along its declared field types, once per value:

* a value in a field typed ``Any`` (``metadata`` and the like) must be one of JSON's own
  types (str, int, float, bool, None, lists, str-keyed dicts); anything else (bytes,
  tuples, sets, datetimes, models, non-string keys...) comes back as something else, so
  it raises `Lossy` naming where it is;
* a subclass instance in a field declared as its base, a value of a union whose members
  JSON does not tell apart, and a container of another type than JSON gives back (a
  tuple in a ``Sequence`` field, a default that was never validated) may come back as
  the base, as the first member that accepts the JSON, as a list; `check_message`
  returns True for those, and the caller reads the JSON back and compares
  (`difference`, `explain`) to refuse only what really changes.

`Polymorphic` fields, discriminated unions and unions whose members are written as
different kinds of JSON (``Literal[...] | Model | None``) need no reading back. A check is
compiled once per model class; a type with nothing to check (``str``, ``int | None``)
costs nothing per message.
"""

from __future__ import annotations

import collections
import collections.abc
import dataclasses
import datetime as dt
import decimal
import enum
import pathlib
import types
import uuid
from collections.abc import Callable
from typing import Annotated, Any, Literal, TypeVar, Union, get_args, get_origin

from pydantic import BaseModel, Discriminator
from pydantic.fields import FieldInfo

from llmgine._redact import redact_text
from llmgine.bus._messages import _LOSSLESS_JSON
from llmgine.bus._polymorphic import PolymorphicMarker

__all__ = ["Lossy", "check_message", "difference", "explain", "is_lossless"]


def is_lossless(cls: type[BaseModel]) -> bool:
    return all(cls.model_config.get(k) == v for k, v in _LOSSLESS_JSON.items())


# A check raises Lossy, or returns whether the value must be read back to be sure.
Check = Callable[[Any], bool]


class Lossy(Exception):
    """A value JSON would not bring back; ``path`` is filled in on the way out."""

    def __init__(self, problem: str, fix: str) -> None:
        super().__init__(problem)
        self.problem = problem
        self.fix = fix
        self.path: list[str] = []


_ANY_FIX = (
    "Fields typed Any (such as metadata) carry JSON-compatible values only: str, int, "
    "float, bool, None, and lists and str-keyed dicts of them. Convert it first (e.g. "
    "base64.b64encode(data).decode(), list(items), moment.isoformat(), "
    "model.model_dump(mode='json')), or declare a typed field for it on the message class."
)
_JSON_SCALARS = frozenset({str, int, float, bool, type(None)})


def _short(value: Any) -> str:
    """A value as error messages show it: short, and with secrets (keys, tokens) hidden."""
    text = redact_text(repr(value))
    return text if len(text) <= 60 else text[:57] + "..."


def _json_value(value: Any) -> bool:
    """A value in an ``Any`` field: JSON's own types only, or it comes back changed."""
    if type(value) in _JSON_SCALARS or _plain_json(value):
        return False
    _find_lossy(value)  # raises, saying where
    return False


def _plain_json(value: Any) -> bool:
    """Whether ``value`` is JSON's own types all the way down (the fast, common answer)."""
    scalars = _JSON_SCALARS
    stack = [value]
    while stack:
        node = stack.pop()
        kind = type(node)
        if kind is dict:
            for key, item in node.items():
                if type(key) is not str:
                    return False
                if type(item) not in scalars:
                    stack.append(item)
        elif kind is list:
            for item in node:
                if type(item) not in scalars:
                    stack.append(item)
        elif kind not in scalars:
            return False
    return True


def _find_lossy(value: Any) -> None:
    """Raise `Lossy` for the first value JSON would change, with its path."""
    kind = type(value)
    if kind in _JSON_SCALARS:
        return
    if kind is list:
        for index, item in enumerate(value):
            if type(item) not in _JSON_SCALARS:
                try:
                    _find_lossy(item)
                except Lossy as exc:
                    exc.path.append(f"[{index}]")
                    raise
        return
    if kind is dict:
        for key, item in value.items():
            if type(key) is not str:
                raise Lossy(
                    f"has the key {_short(key)} ({type(key).__name__}), which JSON turns "
                    "into a string",
                    _ANY_FIX,
                )
            if type(item) not in _JSON_SCALARS:
                try:
                    _find_lossy(item)
                except Lossy as exc:
                    exc.path.append(f"[{key!r}]")
                    raise
        return
    comes_back = _comes_back_as(value)
    raise Lossy(
        f"holds {_short(value)} (type {kind.__name__}), "
        + (f"which JSON would read back as {comes_back}" if comes_back else "not a JSON value"),
        _ANY_FIX,
    )


def _comes_back_as(value: Any) -> str | None:
    if isinstance(value, enum.Enum):
        return "its plain value"
    if isinstance(value, bytes | bytearray):
        return "a base64 string"
    if isinstance(value, list | tuple | set | frozenset | collections.deque):
        return "a list"
    if isinstance(value, BaseModel | dict) or dataclasses.is_dataclass(value):
        return "a dict"
    if isinstance(value, bool | int | float):
        return f"a plain {type(value).__mro__[-2].__name__}"
    if isinstance(value, _STRINGS):
        return "a string"
    return None


# Container origins, and the type JSON validation makes of each.
_SEQUENCES: dict[Any, type] = {
    list: list,
    set: set,
    frozenset: frozenset,
    collections.deque: collections.deque,
    collections.abc.Sequence: list,
    collections.abc.MutableSequence: list,
    collections.abc.Set: set,
    collections.abc.MutableSet: set,
}
_MAPPINGS = {dict, collections.abc.Mapping, collections.abc.MutableMapping}
_STRINGS = (
    str,
    bytes,
    bytearray,
    dt.date,
    dt.time,
    dt.timedelta,
    uuid.UUID,
    decimal.Decimal,
    pathlib.PurePath,
)
_ITERABLES = (list, tuple, set, frozenset, collections.deque)
_DISCRIMINATED = object()  # a top-level field's discriminator, as Annotated metadata


def _is_union(annotation: Any) -> bool:
    return get_origin(annotation) in (Union, types.UnionType)


def _is_discriminator(meta: Any) -> bool:
    return (
        meta is _DISCRIMINATED
        or isinstance(meta, Discriminator)
        or (isinstance(meta, FieldInfo) and meta.discriminator is not None)
    )


def _shape(value: Any) -> str | None:
    """The kind of JSON a value is written as (None: cannot tell)."""
    if isinstance(value, enum.Enum):
        return _shape(value.value)
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, _STRINGS):
        return "string"
    if isinstance(value, BaseModel | dict) or dataclasses.is_dataclass(value):
        return "object"
    if isinstance(value, list | tuple | set | frozenset | collections.deque):
        return "array"
    return None


def _shapes(annotation: Any) -> set[str]:
    """The kinds of JSON a type is written as; "any" when it could be anything."""
    origin = get_origin(annotation)
    if origin is Annotated:
        return _shapes(get_args(annotation)[0])
    if _is_union(annotation):
        return set().union(*(_shapes(arg) for arg in get_args(annotation)))
    if origin is Literal:
        return {_shape(v) or "any" for v in get_args(annotation)}
    if origin in _SEQUENCES or origin is tuple:
        return {"array"}
    if origin in _MAPPINGS:
        return {"object"}
    if annotation is type(None):
        return {"null"}
    if isinstance(annotation, type):
        if issubclass(annotation, enum.Enum):
            return {_shape(m.value) or "any" for m in annotation}
        if issubclass(annotation, bool):
            return {"bool"}
        if issubclass(annotation, int | float):
            return {"number"}
        if issubclass(annotation, _STRINGS):
            return {"string"}
        if issubclass(annotation, BaseModel | dict) or dataclasses.is_dataclass(annotation):
            return {"object"}
        if issubclass(annotation, list | tuple | set | frozenset):
            return {"array"}
    return {"any"}


def _compile(annotation: Any) -> Check | None:
    """The check for values of one declared type; None when the type needs none."""
    origin = get_origin(annotation)
    if origin is Annotated:
        inner, *meta = get_args(annotation)
        if any(isinstance(m, PolymorphicMarker) for m in meta):
            return _polymorphic_value
        if _is_union(inner) and any(_is_discriminator(m) for m in meta):
            return _union_check(inner, discriminated=True)
        return _compile(inner)
    if annotation is Any or annotation is object or isinstance(annotation, TypeVar):
        return _json_value
    if _is_union(annotation):
        return _union_check(annotation, discriminated=False)
    if isinstance(annotation, type):
        if issubclass(annotation, BaseModel):
            return _model_check(annotation)
        if dataclasses.is_dataclass(annotation):
            declared = annotation
            return lambda value: type(value) is not declared
        if annotation in (list, set, frozenset, tuple):
            return _items_check(_json_value, annotation)  # a bare container holds Any
        if annotation is dict:
            return _json_value
        return None
    args = get_args(annotation)
    if origin in _SEQUENCES:
        return _items_check(_compile(args[0]) if args else _json_value, _SEQUENCES[origin])
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return _items_check(_compile(args[0]), tuple)
        return _positional_check([_compile(a) for a in args])
    if origin in _MAPPINGS:
        key, value = args or (Any, Any)
        value_check = _compile(value)
        if value_check is _json_value and key in (str, Any, object):
            return _json_value  # a dict of JSON values is itself one (checked in one pass)
        return _mapping_check(key is Any or key is object, value_check)
    return None  # scalars, Literal, ...: pydantic brings them back as they were


def _items_check(item_check: Check | None, made: type) -> Check:
    """Items of a container that JSON reads back as ``made`` (a ``Sequence[X]`` as a list).

    A value of another type (a tuple where ``Sequence`` is declared, a default that was
    never validated) is read back to see whether it survives.
    """

    def check(value: Any) -> bool:
        verify = type(value) is not made
        if verify and not isinstance(value, _ITERABLES):
            return True
        if item_check is None:
            return verify
        for index, item in enumerate(value):
            try:
                verify = item_check(item) or verify
            except Lossy as exc:
                exc.path.append(f"[{index}]")
                raise
        return verify

    return check


def _positional_check(checks: list[Check | None]) -> Check:
    def check(value: Any) -> bool:
        if type(value) is not tuple:
            return True
        verify = False
        for index, (item, item_check) in enumerate(zip(value, checks, strict=False)):
            if item_check is not None:
                try:
                    verify = item_check(item) or verify
                except Lossy as exc:
                    exc.path.append(f"[{index}]")
                    raise
        return verify

    return check


def _mapping_check(any_keys: bool, value_check: Check | None) -> Check:
    def check(value: Any) -> bool:
        if type(value) is not dict:
            if not isinstance(value, collections.abc.Mapping):
                return True
            verify = True  # JSON reads any mapping back as a dict
        else:
            verify = False
        if not any_keys and value_check is None:
            return verify
        for key, item in value.items():
            if any_keys and type(key) is not str:
                raise Lossy(
                    f"has the key {_short(key)} ({type(key).__name__}), which JSON turns "
                    "into a string",
                    _ANY_FIX,
                )
            if value_check is not None:
                try:
                    verify = value_check(item) or verify
                except Lossy as exc:
                    exc.path.append(f"[{key!r}]")
                    raise
        return verify

    return check


def _union_check(union: Any, *, discriminated: bool) -> Check | None:
    members = [arg for arg in get_args(union) if arg is not type(None)]
    if len(members) == 1:  # X | None
        inner = _compile(members[0])
        if inner is None:
            return None
        only = inner
        return lambda value: value is not None and only(value)
    if discriminated:
        by_class = {_bare(m): _compile(m) for m in members}

        def tagged(value: Any) -> bool:
            if value is None:
                return False
            if type(value) not in by_class:
                return True  # a subclass of a member: its tag is its base's
            member_check = by_class[type(value)]
            return member_check(value) if member_check is not None else False

        return tagged
    shapes = [_shapes(m) for m in members]
    every = [s for member in shapes for s in member]
    if "any" in every or len(every) != len(set(every)):
        # Members JSON may not tell apart: read the value back to see which one it is.
        return lambda value: value is not None
    by_shape = {s: _compile(m) for m, member in zip(members, shapes, strict=True) for s in member}

    def check(value: Any) -> bool:
        shape = _shape(value)
        if shape == "null":
            return False
        if shape not in by_shape:
            return True
        member_check = by_shape[shape]
        return member_check(value) if member_check is not None else False

    return check


def _bare(annotation: Any) -> Any:
    return get_args(annotation)[0] if get_origin(annotation) is Annotated else annotation


def _model_check(declared: type[BaseModel]) -> Check:
    def check(value: Any) -> bool:
        if not isinstance(value, BaseModel):
            return True
        # A subclass in a field declared as its base comes back as the base, unless the
        # field restores it some other way: read it back to find out.
        return check_message(value) or type(value) is not declared

    return check


def _polymorphic_value(value: Any) -> bool:
    if not isinstance(value, BaseModel):
        return True
    return check_message(value) or not is_lossless(type(value))


_PLANS: dict[type[BaseModel], tuple[tuple[str, Check], ...]] = {}


def _field_checks(cls: type[BaseModel]) -> tuple[tuple[str, Check], ...]:
    checks = []
    for name, info in cls.model_fields.items():
        if info.exclude is True:
            continue  # never written
        meta = list(info.metadata)
        if info.discriminator is not None:
            meta.append(_DISCRIMINATED)
        annotation = Annotated[(info.annotation, *meta)] if meta else info.annotation
        check = _compile(annotation)
        if check is not None:
            checks.append((name, check))
    _PLANS[cls] = plan = tuple(checks)
    return plan


def check_message(model: BaseModel) -> bool:
    cls = type(model)
    plan = _PLANS.get(cls)
    if plan is None:
        plan = _field_checks(cls)
    verify = False
    values = model.__dict__
    for name, check in plan:
        try:
            verify = check(values.get(name)) or verify
        except Lossy as exc:
            exc.path.append(f".{name}")
            raise
    extra = model.__pydantic_extra__
    if extra:
        for name, item in extra.items():
            try:
                _json_value(item)
            except Lossy as exc:
                exc.path.append(f".{name}")
                raise
    return verify


# -- reading back, when the value decides ------------------------------------------------


def difference(a: Any, b: Any) -> tuple[str, Any, Any] | None:
    """Where ``b`` (read back) first differs from ``a`` (written): path and both values."""
    if type(a) is not type(b):
        return "", a, b
    found: tuple[str, Any, Any] | None = None
    if isinstance(a, BaseModel):
        names = [n for n, info in type(a).model_fields.items() if info.exclude is not True]
        for name in names:
            if found := difference(a.__dict__.get(name), b.__dict__.get(name)):
                return f".{name}{found[0]}", found[1], found[2]
        extra_a, extra_b = a.__pydantic_extra__ or {}, b.__pydantic_extra__ or {}
        if extra_a != extra_b:
            return "", a, b
        return None
    if isinstance(a, dict):
        if a.keys() != b.keys():
            return "", a, b
        for key in a:
            if found := difference(a[key], b[key]):
                return f"[{key!r}]{found[0]}", found[1], found[2]
        return None
    if isinstance(a, list | tuple):
        if len(a) != len(b):
            return "", a, b
        for index, (x, y) in enumerate(zip(a, b, strict=True)):
            if found := difference(x, y):
                return f"[{index}]{found[0]}", found[1], found[2]
        return None
    if isinstance(a, float) and a != a and b != b:
        return None  # NaN is NaN
    return None if a == b else ("", a, b)


def explain(a: Any, b: Any) -> str:
    wrote, read = type(a).__name__, type(b).__name__
    if isinstance(a, BaseModel) and isinstance(b, BaseModel) and type(a) is not type(b):
        if isinstance(a, type(b)):
            return (
                f"holds {_short(a)}, a subclass of the declared {read}: JSON keeps only "
                f"what {read} declares and reads back {_short(b)}. Declare the field as "
                f"{wrote}, as a discriminated union of the classes it may hold, or as "
                f"llmgine.bus.Polymorphic[{read}] to carry any subclass by name."
            )
        return (
            f"holds {_short(a)}, which JSON reads back as {_short(b)}: the union's "
            f"members {wrote} and {read} look alike in JSON. Give each member a "
            "`kind: Literal[...]` field and declare the union with "
            "Field(discriminator='kind') (or as llmgine.bus.Polymorphic[<their common "
            "base>])."
        )
    containers = (list, tuple, set, frozenset, collections.deque, dict)
    if isinstance(a, containers) and isinstance(b, containers) and type(a) is not type(b):
        return (
            f"holds {_short(a)}, a {wrote}, which JSON reads back as a {read}: store a "
            f"{read} there, or declare the field's type as {wrote}[...] (a default value "
            "is not validated, so it must be of that type too)."
        )
    if type(a) is not type(b):
        return (
            f"holds {_short(a)} ({wrote}), which JSON reads back as {_short(b)} ({read}). "
            "Declare one type for the field, or a union whose members JSON tells apart "
            "(e.g. a discriminated union)."
        )
    return f"holds {_short(a)}, which JSON reads back as {_short(b)}."
