"""The Jupyter workbench: ``%load_ext llmgine`` magics and live widgets.

    %load_ext llmgine
    %%llmgine demo:llmgine-demo
    Tell me about volcanoes.

Widgets: `EventStream` (the bus's events, live), `TraceView` (a session's spans as a
waterfall), `CompareView` (one prompt, several models, side by side), and `dashboard`
(the three in a Panel app). Every widget also renders as text/HTML, for saved notebooks.
Needs the ``notebook`` extra: ``pip install "llmgine[notebook]"``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from llmgine.notebook._compare import CompareView
    from llmgine.notebook._dashboard import dashboard
    from llmgine.notebook._events import EventStream
    from llmgine.notebook._magics import load_ipython_extension, unload_ipython_extension
    from llmgine.notebook._trace import TraceView

__all__ = [
    "CompareView",
    "EventStream",
    "TraceView",
    "dashboard",
    "load_ipython_extension",
    "unload_ipython_extension",
]

# Loaded on first use: importing llmgine.notebook must not pull in ipywidgets, plotly and
# panel for a program that only wants one of them.
_HOMES = {
    "CompareView": "llmgine.notebook._compare",
    "EventStream": "llmgine.notebook._events",
    "TraceView": "llmgine.notebook._trace",
    "dashboard": "llmgine.notebook._dashboard",
    "load_ipython_extension": "llmgine.notebook._magics",
    "unload_ipython_extension": "llmgine.notebook._magics",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'llmgine.notebook' has no attribute {name!r}")
    from llmgine._extras import require

    require("notebook", f"llmgine.notebook.{name}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value
    return value
