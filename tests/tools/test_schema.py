"""Tools from Python functions: the JSON schema from type hints and docstrings, validation
and coercion of the model's arguments, and the errors a bad definition gets."""

from __future__ import annotations

import enum
import functools
import inspect
from typing import Annotated, Any, Literal

import pytest
from pydantic import BaseModel, ConfigDict, Field

from llmgine.llm import ToolSpec
from llmgine.tools import (
    Tool,
    ToolArgumentsError,
    ToolDefinitionError,
    clean_schema,
    tool,
)


class Units(enum.Enum):
    CELSIUS = "c"
    FAHRENHEIT = "f"


class Address(BaseModel):
    """A postal address."""

    street: str
    city: str = "Paris"


class Loose(BaseModel):
    model_config = ConfigDict(extra="allow")

    name: str


class TreeNode(BaseModel):
    value: int
    children: list[TreeNode] = []


class Inner(BaseModel):
    depth: int


class Outer(BaseModel):
    inner: Inner


class Ping(BaseModel):
    pong: Pong | None = None


class Pong(BaseModel):
    ping: Ping | None = None


class Opaque:
    """A class pydantic knows nothing about."""


# -- docstrings ----------------------------------------------------------------------------


def google(city: str, days: int = 1) -> str:
    """Forecast the weather.

    Uses the best source available.

    Args:
        city: The city's name,
            e.g. "Paris".
        days: How many days ahead.

    Returns:
        The forecast.
    """
    return city


def numpy(city: str, days: int = 1) -> str:
    """Forecast the weather.

    Uses the best source available.

    Parameters
    ----------
    city : str
        The city's name,
        e.g. "Paris".
    days : int, optional
        How many days ahead.

    Returns
    -------
    str
        The forecast.
    """
    return city


def rest(city: str, days: int = 1) -> str:
    """Forecast the weather.

    Uses the best source available.

    :param city: The city's name,
        e.g. "Paris".
    :param days: How many days ahead.
    :returns: The forecast.
    """
    return city


@pytest.mark.parametrize("fn", [google, numpy, rest], ids=["google", "numpy", "rest"])
def test_each_docstring_style_gives_the_same_descriptions(fn: Any) -> None:
    made = Tool.from_function(fn)
    assert made.name == fn.__name__
    assert made.description == "Forecast the weather.\n\nUses the best source available."
    assert made.parameters == {
        "type": "object",
        "properties": {
            "city": {"type": "string", "description": 'The city\'s name, e.g. "Paris".'},
            "days": {"type": "integer", "default": 1, "description": "How many days ahead."},
        },
        "required": ["city"],
        "additionalProperties": False,
    }


def test_an_explicit_description_and_name_win_and_no_docstring_means_empty() -> None:
    made = Tool.from_function(google, name="forecast", description="Weather, briefly.")
    assert (made.name, made.description) == ("forecast", "Weather, briefly.")

    def bare(x: int) -> int:
        return x

    assert Tool.from_function(bare).description == ""
    assert Tool.from_function(bare).spec() == ToolSpec(
        name="bare",
        description="",
        parameters={
            "type": "object",
            "properties": {"x": {"type": "integer"}},
            "required": ["x"],
            "additionalProperties": False,
        },
    )


# -- types ---------------------------------------------------------------------------------


def rich(
    city: str,
    needed_or_null: str | None,
    units: Literal["c", "f"] = "c",
    scale: Units = Units.CELSIUS,
    address: Address | None = None,
    maybe: int | None = None,
    tags: list[str] = [],  # noqa: B006 - a default the schema shows, never mutated
    weights: dict[str, float] | None = None,
    title: str = "untitled",
    anything: Any = None,
) -> str:
    """Everything at once.

    Args:
        address: Where to deliver.
        title: A property named like the schema keyword.
    """
    return city


def test_optional_literal_enum_nested_model_lists_dicts_and_defaults() -> None:
    props = Tool.from_function(rich).parameters["properties"]
    assert props["city"] == {"type": "string"}
    assert props["units"] == {"type": "string", "enum": ["c", "f"], "default": "c"}
    assert props["scale"] == {"type": "string", "enum": ["c", "f"], "default": "c"}
    assert props["address"] == {
        "anyOf": [
            {
                "type": "object",
                "description": "A postal address.",
                "properties": {
                    "street": {"type": "string"},
                    "city": {"type": "string", "default": "Paris"},
                },
                "required": ["street"],
                "additionalProperties": False,
            },
            {"type": "null"},
        ],
        "default": None,
        "description": "Where to deliver.",
    }
    assert props["maybe"] == {"anyOf": [{"type": "integer"}, {"type": "null"}], "default": None}
    assert props["needed_or_null"] == {"anyOf": [{"type": "string"}, {"type": "null"}]}
    assert props["tags"] == {"type": "array", "items": {"type": "string"}, "default": []}
    assert props["weights"]["anyOf"][0] == {
        "type": "object",
        "additionalProperties": {"type": "number"},
    }
    assert props["title"] == {
        "type": "string",
        "default": "untitled",
        "description": "A property named like the schema keyword.",
    }
    assert props["anything"] == {"default": None}
    schema = Tool.from_function(rich).parameters
    assert schema["required"] == ["city", "needed_or_null"]
    assert "$defs" not in schema
    assert "title" not in schema
    assert "title" not in str({k: v for k, v in props.items() if k != "title"})


def test_a_recursive_model_keeps_its_definition_as_a_reference() -> None:
    def grow(root: TreeNode) -> int:
        return root.value

    schema = Tool.from_function(grow).parameters
    assert schema["properties"]["root"] == {"$ref": "#/$defs/TreeNode"}
    assert schema["$defs"]["TreeNode"] == {
        "type": "object",
        "properties": {
            "value": {"type": "integer"},
            "children": {"type": "array", "items": {"$ref": "#/$defs/TreeNode"}, "default": []},
        },
        "required": ["value"],
        "additionalProperties": False,
    }


def test_nested_models_inline_and_mutual_recursion_stays_referenced() -> None:
    def f(outer: Outer, ping: Ping) -> None:
        return None

    schema = Tool.from_function(f).parameters
    assert schema["properties"]["outer"]["properties"]["inner"] == {
        "type": "object",
        "properties": {"depth": {"type": "integer"}},
        "required": ["depth"],
        "additionalProperties": False,
    }
    assert schema["properties"]["ping"] == {"$ref": "#/$defs/Ping"}
    assert set(schema["$defs"]) == {"Ping", "Pong"}
    assert "Inner" not in schema["$defs"]


def test_a_model_that_allows_extra_fields_says_so() -> None:
    def keep(item: Loose) -> str:
        return item.name

    assert Tool.from_function(keep).parameters["properties"]["item"]["additionalProperties"]


def test_field_and_annotated_descriptions_and_a_default_the_schema_cannot_show() -> None:
    marker = object()

    def f(
        a: Annotated[int, Field(ge=0, description="from Annotated")],
        b: str = Field("x", description="from Field"),
        c: object = marker,
    ) -> Any:
        """Docstring.

        Args:
            a: loses to Annotated.
            b: loses to Field.
        """
        return a, b, c

    made = Tool.from_function(f)
    props = made.parameters["properties"]
    assert props["a"] == {"type": "integer", "minimum": 0, "description": "from Annotated"}
    assert props["b"] == {"type": "string", "default": "x", "description": "from Field"}
    assert "default" not in props["c"]
    assert made.parameters["required"] == ["a"]


def test_names_pydantic_reserves_are_kept_for_the_model() -> None:
    def f(json: int, schema: str = "s", _private: int = 0, model_name: str = "m") -> Any:
        return json, schema, _private, model_name

    made = Tool.from_function(f)
    assert list(made.parameters["properties"]) == ["json", "schema", "_private", "model_name"]
    assert made.parameters["required"] == ["json"]


# -- validation and coercion --------------------------------------------------------------


async def test_arguments_are_coerced_before_the_function_runs() -> None:
    seen: list[Any] = []

    async def record(
        count: int, scale: Units, address: Address, tags: list[str], when: float = 0.5
    ) -> str:
        seen.extend([count, scale, address, tags, when])
        return "ok"

    made = Tool.from_function(record)
    await made.run({"count": "3", "scale": "f", "address": {"street": "Rue"}, "tags": ["a", "b"]})
    assert seen == [3, Units.FAHRENHEIT, Address(street="Rue", city="Paris"), ["a", "b"], 0.5]


async def test_bad_arguments_name_each_wrong_field() -> None:
    made = Tool.from_function(rich)
    with pytest.raises(ToolArgumentsError) as caught:
        await made.run({"units": "kelvin", "needed_or_null": None, "surprise": 1})
    error = caught.value
    assert error.tool == "rich"
    where = {tuple(e["loc"]): e for e in error.errors}
    assert set(where) == {("city",), ("units",), ("surprise",)}
    assert where[("city",)]["type"] == "missing"
    assert where[("surprise",)]["type"] == "extra_forbidden"
    assert not any("input" in e for e in error.errors)  # no content capture: no values
    message = str(error)
    assert "city: Field required" in message
    assert "units: Input should be 'c' or 'f'" in message
    assert "kelvin" not in message


async def test_with_content_capture_the_wrong_values_are_shown_and_shortened() -> None:
    # show_values: what a ToolManager passes when its tracer captures content.
    made = Tool.from_function(rich)
    with pytest.raises(ToolArgumentsError) as caught:
        await made.run({"units": "kelvin", "needed_or_null": None}, show_values=True)
    where = {tuple(e["loc"]): e for e in caught.value.errors}
    assert "input" not in where[("city",)]
    assert where[("units",)]["input"] == '"kelvin"'
    assert '(got "kelvin")' in str(caught.value)
    with pytest.raises(ToolArgumentsError) as caught:
        await Tool.from_function(google).run({"city": "x", "days": "many " * 50}, show_values=True)
    assert caught.value.errors[0]["input"].endswith("...")
    assert len(caught.value.errors[0]["input"]) == 80


async def test_arguments_must_be_an_object() -> None:
    made = Tool.from_function(google)
    with pytest.raises(ToolArgumentsError, match="must be a JSON object"):
        await made.run(["Paris"])  # type: ignore[arg-type]


async def test_positional_only_and_reserved_names_reach_the_function() -> None:
    def f(first: int, /, json: str, _hidden: bool = False) -> Any:
        return (first, json, _hidden)

    made = Tool.from_function(f)
    assert await made.run({"first": "1", "json": "j", "_hidden": True}) == (1, "j", True)


async def test_a_reserved_name_never_collides_with_a_real_parameter() -> None:
    def f(arg1: int, json: int) -> Any:
        return arg1, json

    assert await Tool.from_function(f).run({"arg1": 1, "json": 2}) == (1, 2)


async def test_a_sync_function_returning_a_coroutine_is_awaited() -> None:
    async def later(x: int) -> int:
        return x * 10

    def start(x: int) -> Any:
        return later(x)

    assert await Tool.from_function(start).run({"x": 2}) == 20


async def test_parameters_without_annotations_take_any_json() -> None:
    def loose(a, b=2):  # type: ignore[no-untyped-def]
        return [a, b]

    made = Tool.from_function(loose)
    assert made.parameters["properties"] == {"a": {}, "b": {"default": 2}}
    assert await made.run({"a": {"nested": [1]}}) == [{"nested": [1]}, 2]


# -- what cannot be a tool ----------------------------------------------------------------


def test_star_args_and_kwargs_are_refused_with_the_fix() -> None:
    def star(*values: int) -> int:
        return sum(values)

    def stars(**values: int) -> int:
        return sum(values.values())

    with pytest.raises(ToolDefinitionError, match=r"takes \*values.*named parameters"):
        Tool.from_function(star)
    with pytest.raises(ToolDefinitionError, match=r"takes \*\*values"):
        Tool.from_function(stars)


def test_unknown_and_unsupported_types_are_refused_clearly() -> None:
    def uses_local(x: Missing) -> None:  # type: ignore[name-defined]  # noqa: F821
        return None

    with pytest.raises(ToolDefinitionError, match="module level"):
        Tool.from_function(uses_local)

    def opaque(x: Opaque) -> None:
        return None

    with pytest.raises(ToolDefinitionError, match="pydantic cannot validate"):
        Tool.from_function(opaque)


def test_names_must_suit_every_provider() -> None:
    with pytest.raises(ToolDefinitionError, match="1-64 letters"):
        Tool.from_function(lambda x: x)
    with pytest.raises(ToolDefinitionError, match="1-64 letters"):
        Tool.from_function(google, name="has space")
    with pytest.raises(ToolDefinitionError, match="no __name__"):
        Tool.from_function(functools.partial(google, days=2))
    with pytest.raises(ToolDefinitionError, match="from a function"):
        Tool.from_function(42)  # type: ignore[arg-type]
    with pytest.raises(ToolDefinitionError, match="already a Tool"):
        Tool.from_function(Tool.from_function(google))
    with pytest.raises(ToolDefinitionError, match="timeout must be positive"):
        Tool.from_function(google, timeout=0)


# -- the decorator, callables, remote tools ------------------------------------------------


def test_the_decorator_returns_a_tool_that_still_calls_like_the_function() -> None:
    @tool
    def double(x: int) -> int:
        """Twice x."""
        return 2 * x

    @tool(name="triple_it", ends_loop=True, timeout=5, strict=True)
    async def triple(x: int) -> int:
        return 3 * x

    assert isinstance(double, Tool)
    assert double(4) == 8  # no validation, no thread: the function itself
    assert double.__doc__ == "Twice x."
    assert str(inspect.signature(double)) == "(x: 'int') -> 'int'"
    assert (triple.name, triple.ends_loop, triple.timeout, triple.is_async) == (
        "triple_it",
        True,
        5,
        True,
    )
    assert triple.spec().strict is True
    assert repr(double) == "<Tool double (sync)>"
    assert repr(triple) == "<Tool triple_it (async)>"
    assert double.arguments_model is not None
    assert double.renamed("twice").name == "twice"
    assert double.name == "double"


async def test_callable_objects_and_partials_become_tools() -> None:
    class Adder:
        """Adds a fixed amount."""

        def __init__(self, amount: int) -> None:
            self.amount = amount

        async def __call__(self, x: int) -> int:
            return x + self.amount

    made = Tool.from_function(Adder(10), name="add_ten")
    assert made.is_async
    assert made.description == "Adds a fixed amount."
    assert await made.run({"x": "5"}) == 15

    partial = Tool.from_function(functools.partial(google, days=2), name="two_days")
    assert partial.description.startswith("Forecast the weather.")
    assert partial.parameters["properties"]["days"]["default"] == 2


async def test_a_remote_tool_checks_only_for_an_object() -> None:
    received: list[dict[str, Any]] = []

    async def call(arguments: dict[str, Any]) -> Any:
        received.append(arguments)
        return {"ok": True}

    schema = {"properties": {"q": {"type": "string"}}, "required": ["q"]}
    remote = Tool.from_schema("search", "Search the web.", schema, call)
    assert remote.parameters == {"type": "object", **schema}
    assert remote.spec().description == "Search the web."
    assert remote.arguments_model is None
    assert await remote.run({"anything": 1}) == {"ok": True}
    assert received == [{"anything": 1}]
    with pytest.raises(ToolArgumentsError, match="JSON object"):
        await remote.run("q")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="remote tool"):
        remote(q="x")
    assert repr(remote) == "<Tool search (remote)>"
    with pytest.raises(ToolDefinitionError, match="type 'object'"):
        Tool.from_schema("bad", "", {"type": "array"}, call)
    with pytest.raises(ToolDefinitionError, match="async function"):
        Tool.from_schema("bad", "", {}, "not callable")  # type: ignore[arg-type]
    with pytest.raises(ToolDefinitionError, match="either a Python function or a remote"):
        Tool("neither", "", {})


# -- cleaning a schema by hand ------------------------------------------------------------


def test_clean_schema_inlines_references_and_keeps_data_alone() -> None:
    schema = {
        "title": "Args",
        "type": "object",
        "properties": {
            "where": {"$ref": "#/$defs/Place", "description": "the field's own words"},
            "title": {"title": "Title", "type": "string", "default": "title"},
            "pick": {"oneOf": [{"$ref": "#/$defs/Place"}, {"type": "null"}]},
            "data": {"type": "object", "properties": {}, "additionalProperties": True},
        },
        "$defs": {
            "Place": {
                "title": "Place",
                "description": "the model's words",
                "type": "object",
                "properties": {"name": {"title": "Name", "type": "string"}},
                "examples": [{"title": "kept, it is data"}],
            }
        },
    }
    place = {
        "description": "the model's words",
        "type": "object",
        "properties": {"name": {"type": "string"}},
        "examples": [{"title": "kept, it is data"}],
        "additionalProperties": False,
    }
    assert clean_schema(schema) == {
        "type": "object",
        "properties": {
            "where": {**place, "description": "the field's own words"},
            "title": {"type": "string", "default": "title"},
            "pick": {"oneOf": [place, {"type": "null"}]},
            "data": {"type": "object", "properties": {}, "additionalProperties": True},
        },
        "additionalProperties": False,
    }
