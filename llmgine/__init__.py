"""llmgine: an asyncio message bus, observability and a unified LLM interface.

The bus lives in `llmgine.bus`; the most used names are re-exported here.
"""

import logging
from typing import Any

from llmgine.bus import (
    Command,
    CommandResult,
    Event,
    MessageBus,
    Session,
    default_bus,
)
from llmgine.errors import LLMgineError

__version__ = "0.1.0"

# A library's loggers stay silent unless the application configures logging (otherwise
# Python's last-resort handler prints llmgine's warnings, e.g. into notebook cells).
_log = logging.getLogger("llmgine")
if not any(isinstance(h, logging.NullHandler) for h in _log.handlers):  # once, even on reload
    _log.addHandler(logging.NullHandler())


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext llmgine``: the ``%llmgine`` and ``%%llmgine`` magics (see
    `llmgine.notebook`)."""
    from llmgine._extras import require

    require("notebook", "%load_ext llmgine")
    from llmgine.notebook.magics import load_ipython_extension as load

    load(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    """``%unload_ext llmgine``."""
    from llmgine.notebook.magics import unload_ipython_extension as unload

    unload(ipython)


__all__ = [
    "Command",
    "CommandResult",
    "Event",
    "LLMgineError",
    "MessageBus",
    "Session",
    "__version__",
    "default_bus",
    "load_ipython_extension",
    "unload_ipython_extension",
]
