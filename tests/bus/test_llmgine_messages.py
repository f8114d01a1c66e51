"""Every message class llmgine defines round-trips through JSON, every field populated.

The classes are found by walking `Message`'s subclasses after importing every llmgine
module, and populated from their declared field types, so a class added later is covered
without touching this file (if it cannot be built, the test says so).
"""

from __future__ import annotations

import enum
import importlib
import json
import pkgutil
import subprocess
import sys
import types
from collections.abc import Iterator
from datetime import date, datetime, time, timedelta, timezone
from typing import Annotated, Any, Literal, TypeVar, Union, get_args, get_origin

import pytest
from pydantic import BaseModel, ValidationError

import llmgine
from llmgine.bus import Message, from_json, message_type_name, to_json
from llmgine.bus._polymorphic import PolymorphicMarker
from llmgine.errors import MessageSerializationError
from llmgine.llm import ChatMessage, Generate, LLMRequest
from tests.deadline import DEADLINE

for _module in pkgutil.walk_packages(llmgine.__path__, "llmgine."):
    if not _module.name.endswith("__main__"):
        importlib.import_module(_module.name)


def _subclasses(cls: type[Any]) -> Iterator[type[Any]]:
    for sub in cls.__subclasses__():
        yield sub
        yield from _subclasses(sub)


def llmgine_classes(base: type[Any]) -> list[type[Any]]:
    found = {
        c
        for c in _subclasses(base)
        if c.__module__.startswith("llmgine.")
        and c.__pydantic_generic_metadata__["origin"] is None  # not Command[int] and such
    }
    return sorted(found, key=lambda c: f"{c.__module__}.{c.__qualname__}")


MESSAGE_CLASSES = llmgine_classes(Message)

# -- populated values from declared types --------------------------------------------------

_ANY_VALUE = {"text": "any", "list": [1, 2.5, None, True, "x"], "nested": {"k": {"v": [1]}}}
_SCALARS: dict[Any, list[Any]] = {
    bool: [True],
    int: [7],
    float: [2.5, float("inf")],
    str: ["some text"],
    bytes: [b"\x00\xff raw"],
    datetime: [datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=timezone(timedelta(hours=2)))],
    date: [date(2026, 1, 2)],
    time: [time(3, 4, 5)],
    timedelta: [timedelta(seconds=90.5)],
    type(None): [None],
}


def alternatives(annotation: Any, depth: int = 0) -> list[Any]:
    """Values of a declared type, non-default where there is a choice: one per union
    member, literal value, subclass of a `Polymorphic` base, and so on."""
    if depth > 6:
        raise RecursionError(f"{annotation!r} nests too deeply to populate")
    origin = get_origin(annotation)
    args = get_args(annotation)
    if origin is Annotated:
        marker = next((m for m in args[1:] if isinstance(m, PolymorphicMarker)), None)
        if marker is not None:
            return [
                v
                for cls in [marker.base, *llmgine_classes(marker.base)]
                for v in instances(cls, depth + 1)
            ]
        return alternatives(args[0], depth)
    if origin in (Union, types.UnionType):
        members = [a for a in args if a is not type(None)]
        return [v for m in members for v in alternatives(m, depth)]
    if origin is Literal:
        return list(args)
    if origin in (list, set, frozenset, tuple) or annotation in (list, set, frozenset):
        if origin is tuple and not (len(args) == 2 and args[1] is Ellipsis):
            return [tuple(alternatives(a, depth)[0] for a in args)]
        items = alternatives(args[0], depth) if args else [_ANY_VALUE]
        return [(origin or annotation)(items)]
    if origin is dict or annotation is dict:
        key, value = args or (str, Any)
        values = alternatives(value, depth)
        keys = [
            f"key{i}" if key in (str, Any) else alternatives(key)[0] for i in range(len(values))
        ]
        return [dict(zip(keys, values, strict=True))]
    if annotation is Any or annotation is object or isinstance(annotation, TypeVar):
        return [_ANY_VALUE]
    if annotation in _SCALARS:
        return _SCALARS[annotation]
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return list(annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return instances(annotation, depth + 1)
    raise TypeError(f"no sample for {annotation!r}: teach alternatives() this type")


_BUILT: dict[type[BaseModel], list[BaseModel]] = {}
# Fields a model validator forbids beside the others: a part holds bytes *or* a URL.
MAY_LEAVE_OUT = {("ImagePart", "url"), ("FilePart", "url")}


def instances(cls: type[BaseModel], depth: int = 0) -> list[BaseModel]:
    """Instances of ``cls`` with every field set, together covering every alternative."""
    if cls in _BUILT:
        return _BUILT[cls]
    fields = {
        name: alternatives(_declared(info), depth)
        for name, info in cls.model_fields.items()
        if info.exclude is not True
    }
    count = max((len(v) for v in fields.values()), default=1)
    built = [_build(cls, {n: v[k % len(v)] for n, v in fields.items()}) for k in range(count)]
    _BUILT[cls] = built
    return built


def _declared(info: Any) -> Any:
    return Annotated[(info.annotation, *info.metadata)] if info.metadata else info.annotation


def _build(cls: type[BaseModel], values: dict[str, Any]) -> BaseModel:
    try:
        return cls(**values)
    except ValidationError as exc:
        error = exc
    left_out = {f for c, f in MAY_LEAVE_OUT if c == cls.__qualname__}
    if left_out:
        return cls(**{n: v for n, v in values.items() if n not in left_out})
    raise AssertionError(
        f"cannot build a populated {cls.__qualname__} from its declared field types: "
        f"{error}. If a validator forbids a combination of fields, name the field to leave "
        "out in MAY_LEAVE_OUT."
    )


# -- the tests -----------------------------------------------------------------------------


def test_the_walk_finds_llmgine_s_messages() -> None:
    names = {c.__name__ for c in MESSAGE_CLASSES}
    expected = {"Generate", "ExecuteTool", "LLMCallCompleted", "ToolLoopFinished"}
    assert expected | {"SessionEnded", "CommandFailed", "EventHandlerFailed"} <= names


@pytest.mark.parametrize("cls", MESSAGE_CLASSES, ids=message_type_name)
def test_every_llmgine_message_round_trips_populated(cls: type[Message]) -> None:
    for message in instances(cls):
        assert isinstance(message, Message)
        text = to_json(message)
        back = from_json(text)
        assert type(back) is cls
        assert back == message
        assert to_json(back) == text  # the same JSON again: nothing changed on the way


@pytest.mark.parametrize("cls", MESSAGE_CLASSES, ids=message_type_name)
def test_every_llmgine_message_round_trips_with_its_defaults(cls: type[Message]) -> None:
    # Defaults are not validated, so a default of the wrong shape (a tuple for a list)
    # would only show here.
    required = {
        n: alternatives(_declared(i))[0] for n, i in cls.model_fields.items() if i.is_required()
    }
    message = cls(**required)
    back = from_json(to_json(message))
    assert back == message


def test_generate_keeps_each_provider_s_options_class_and_fields() -> None:
    from llmgine.llm.providers.anthropic import AnthropicOptions
    from llmgine.llm.providers.gemini import GeminiOptions
    from llmgine.llm.providers.openai import OpenAIOptions

    request = LLMRequest(
        messages=[ChatMessage.user("hi")],
        options=[
            OpenAIOptions(api="responses", reasoning_effort="high", metadata={"k": "v"}),
            AnthropicOptions(top_k=5, betas=["b1"], cache_control="1h"),
            GeminiOptions(thinking_budget=100, safety_settings=[{"category": "c"}]),
        ],
    )
    back = from_json(to_json(Generate(request=request, model="openai:gpt-4o-mini")))
    assert isinstance(back, Generate)
    assert back.request.options == request.options
    assert [type(o) for o in back.request.options] == [
        OpenAIOptions,
        AnthropicOptions,
        GeminiOptions,
    ]
    # And in Python, as pydantic's own dump and validate see it.
    assert LLMRequest.model_validate(request.model_dump()).options == request.options


def test_a_reader_that_never_imported_the_provider_still_reads_its_options() -> None:
    from llmgine.llm.providers.openai import OpenAIOptions

    command = Generate(
        request=LLMRequest(messages=[ChatMessage.user("hi")], options=[OpenAIOptions(store=True)])
    )
    reader = (
        "import sys, llmgine.llm\n"
        "from llmgine.bus import from_json\n"
        "assert 'llmgine.llm.providers.openai' not in sys.modules\n"
        "options = from_json(sys.stdin.read()).request.options\n"
        "print(type(options[0]).__name__, options[0].store)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", reader],
        input=to_json(command),
        capture_output=True,
        text=True,
        timeout=DEADLINE,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["OpenAIOptions", "True"]


def test_options_in_python_must_still_be_options_objects() -> None:
    with pytest.raises(ValidationError, match="ProviderOptions"):
        LLMRequest(messages=[], options=[{"provider": "openai"}])
    data = json.loads(to_json(Generate(request=LLMRequest(messages=[]))))
    data["data"]["request"]["options"] = [{"type": "nowhere.Options", "data": {}}]
    with pytest.raises(MessageSerializationError, match="import the module"):
        from_json(json.dumps(data))


def test_samples_are_really_populated() -> None:
    # Guards the builder: a message whose fields all kept their defaults would prove little.
    for cls in MESSAGE_CLASSES:
        for message in instances(cls):
            unset = {
                n
                for n, info in cls.model_fields.items()
                if info.exclude is not True and n not in message.model_fields_set
            }
            assert not unset, f"{cls.__qualname__} left {unset} unset"
