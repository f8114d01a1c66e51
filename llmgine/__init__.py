"""llmgine: an asyncio message bus, observability and a unified LLM interface.

The bus lives in `llmgine.bus`; the most used names are re-exported here.
"""

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

__all__ = [
    "Command",
    "CommandResult",
    "Event",
    "LLMgineError",
    "MessageBus",
    "Session",
    "__version__",
    "default_bus",
]
