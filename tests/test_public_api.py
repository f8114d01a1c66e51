"""The public face: every package's __all__ is sorted, complete and importable."""

from __future__ import annotations

import importlib
import inspect

import pytest

import llmgine
from llmgine import errors

PUBLIC_MODULES = [
    "llmgine",
    "llmgine.bus",
    "llmgine.errors",
    "llmgine.context",
    "llmgine.llm",
    "llmgine.local",
    "llmgine.notebook",
    "llmgine.observability",
    "llmgine.recording",
    "llmgine.sweep",
    "llmgine.tools",
]


@pytest.mark.parametrize("name", PUBLIC_MODULES)
def test_all_is_sorted_unique_and_resolves(name: str) -> None:
    module = importlib.import_module(name)
    exported = list(module.__all__)
    assert exported == sorted(exported, key=str)
    assert len(set(exported)) == len(exported)
    for attr in exported:
        assert hasattr(module, attr), f"{name}.__all__ names missing {attr}"


@pytest.mark.parametrize("name", PUBLIC_MODULES)
def test_public_classes_and_functions_are_exported(name: str) -> None:
    """Anything public defined in a package's private modules is in its __all__."""
    module = importlib.import_module(name)
    for attr, value in vars(module).items():
        if attr.startswith("_") or inspect.ismodule(value):
            continue
        if getattr(value, "__module__", "").startswith("llmgine") and name != "llmgine":
            assert attr in module.__all__, f"{name}.{attr} is public but not in __all__"


def test_every_error_is_an_llmgine_error_and_drawn_in_the_tree() -> None:
    for attr in errors.__all__:
        cls = getattr(errors, attr)
        assert issubclass(cls, errors.LLMgineError)
        assert attr in (errors.__doc__ or ""), f"{attr} is missing from the drawn tree"


def test_version_is_exposed() -> None:
    assert llmgine.__version__.count(".") == 2
