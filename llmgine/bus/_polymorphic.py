"""`Polymorphic[Base]`: a field that holds any subclass of a model, carried by class name.

A field declared as ``Base`` and given a ``Sub`` instance is written to JSON with only the
fields ``Base`` declares and read back as a ``Base``: pydantic validates by the declared
type. A closed set of subclasses is best written as a discriminated union; an open one
(plugins, one options class per provider, subclasses yet to be written) cannot be listed,
so the value travels in an envelope naming its class, ``{"type": "module.QualName",
"data": {...}}`` (the same shape as a message), and comes back as that class.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import pydantic_core
from pydantic import BaseModel, PlainSerializer, ValidationInfo, WrapValidator

__all__ = ["Polymorphic", "PolymorphicMarker"]

T = TypeVar("T")


class PolymorphicMarker:
    """The metadata that marks a `Polymorphic` field (read by `to_json`'s checks)."""

    __slots__ = ("base",)

    def __init__(self, base: type[BaseModel]) -> None:
        self.base = base

    def __repr__(self) -> str:
        return f"Polymorphic[{self.base.__name__}]"


def class_name(cls: type[Any]) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def _subclasses(base: type[BaseModel]) -> Iterator[type[BaseModel]]:
    yield base
    for sub in base.__subclasses__():
        yield from _subclasses(sub)


def _lookup(base: type[BaseModel], name: str) -> type[BaseModel] | None:
    found = None
    for cls in _subclasses(base):
        if class_name(cls) == name:
            found = cls  # the later definition wins, as for a notebook cell run again
    return found


def find_subclass(base: type[BaseModel], name: str) -> type[BaseModel]:
    """The subclass of ``base`` named ``name``; llmgine's own modules are imported on
    demand (e.g. a provider's options class), nothing else is."""
    found = _lookup(base, name)
    if found is None and name.startswith("llmgine."):
        module = name
        while "." in module and found is None:
            module = module.rpartition(".")[0]
            try:
                importlib.import_module(module)
            except ImportError:
                continue
            found = _lookup(base, name)
    if found is None:
        raise ValueError(
            f"no subclass of {base.__name__} is known as {name!r}; import the module that "
            "defines it before reading this data"
        )
    return found


def _polymorphic(base: type[BaseModel]) -> Any:
    def dump(value: BaseModel) -> dict[str, Any]:
        # "data" is typed Any, so pydantic serialises it by its own class: every field.
        return {"type": class_name(type(value)), "data": value}

    def load(value: Any, handler: Any, info: ValidationInfo) -> BaseModel:
        if isinstance(value, base):
            return value
        if (
            isinstance(value, dict)
            and value.keys() == {"type", "data"}
            and isinstance(value["type"], str)
        ):
            cls = find_subclass(base, value["type"])
            if info.mode == "json":
                # Read the data as JSON too, so base64 bytes and the like come back.
                text = pydantic_core.to_json(value["data"], inf_nan_mode="constants")
                return cls.model_validate_json(text)
            return cls.model_validate(value["data"])
        raise ValueError(
            f"expected a {base.__name__} (an instance of it or of a subclass), or its JSON "
            f'form {{"type": "module.Class", "data": {{...}}}}; got {type(value).__name__}'
        )

    return Annotated[
        base,
        PolymorphicMarker(base),
        PlainSerializer(dump, return_type=dict[str, Any]),
        WrapValidator(load),
    ]


if TYPE_CHECKING:
    # To a type checker, Polymorphic[Base] is Base.
    Polymorphic = Annotated[T, ...]
else:

    class Polymorphic:
        """A field holding any subclass of a pydantic model, which JSON keeps.

        ``Polymorphic[Base]`` writes the value with its class name and every field, and
        reads it back as that class (a subclass defined in an llmgine module is imported
        if need be; any other must be imported by the reader first).

        Example:
            class Shape(Payload):
                name: str

            class Circle(Shape):
                radius: float

            class Drawn(Event):
                shapes: list[Polymorphic[Shape]]

            from_json(to_json(Drawn(shapes=[Circle(name="c", radius=1)])))  # a Circle
        """

        def __class_getitem__(cls, base: Any) -> Any:
            if not (isinstance(base, type) and issubclass(base, BaseModel)):
                raise TypeError(
                    f"Polymorphic[...] takes a pydantic model class, got {base!r}; for a "
                    "closed set of types use a discriminated union"
                )
            return _polymorphic(base)
