"""The ``%%llmgine`` and ``%llmgine`` magics behind ``%load_ext llmgine``.

How to use them is in the `llmgine.notebook` docstring. What lives where:

- ``_magics``: the magics themselves, and the extension's load and unload hooks;
- ``_arguments``: the line commands, the cell magic's options, and the help built from them;
- ``_prompt``: a cell's text as a prompt (``{name}`` substitution), the answer's formats;
- ``_workbench``: what the magics of one shell own (loop thread, bus, sessions, default
  model) and how a cell is answered;
- ``_loop``: the event loop on a background thread, and why a magic needs one;
- ``_local``: ``%llmgine local``, the local model's servers;
- ``_recording``: ``%llmgine record``, ``replay`` and ``cache``: cassettes and the cache;
- ``_sweep``: ``%llmgine sweep`` and ``%%llmgine sweep``: a sweep shown as a `SweepView`;
- ``_bus``: model calls as ``Generate`` commands on the workbench's bus;
- ``_display``: answers shown in a notebook or a terminal, and errors as short messages.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from llmgine.notebook.magics._magics import load_ipython_extension, unload_ipython_extension

__all__ = ["load_ipython_extension", "unload_ipython_extension"]


def __getattr__(name: str) -> Any:
    # Loaded on first use, not on import: `CompareView` calls its models through
    # `_bus.WorkbenchService` and the magics show comparisons in a `CompareView`, so
    # importing `_magics` here would make importing `CompareView` first a circular import.
    if name not in __all__:
        raise AttributeError(f"module 'llmgine.notebook.magics' has no attribute {name!r}")
    value = getattr(importlib.import_module("llmgine.notebook.magics._magics"), name)
    globals()[name] = value
    return value
