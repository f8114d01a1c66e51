"""The llmgine message bus: typed commands and events, sessions, resilience, backpressure.

Example:
    from llmgine.bus import Command, Event, MessageBus

    class Greet(Command[str]):
        name: str

    class Greeted(Event):
        text: str

    bus = MessageBus()
    bus.on_command(Greet, lambda cmd: f"hello {cmd.name}")
    result = await bus.execute(Greet(name="ada"))       # result.value == "hello ada"
    await bus.publish(Greeted(text=result.value), wait=True)
"""

from llmgine.bus._bus import MessageBus
from llmgine.bus._default import default_bus, set_default_bus
from llmgine.bus._delivery import (
    CommandMiddleware,
    CommandNext,
    Delivery,
    EventMiddleware,
    EventNext,
    HandlerFailure,
    MessageFilter,
)
from llmgine.bus._json import from_json, to_json
from llmgine.bus._messages import (
    Command,
    CommandFailed,
    CommandResult,
    ErrorInfo,
    Event,
    EventHandlerFailed,
    Message,
    Payload,
    SessionEnded,
    SessionStarted,
    message_type_name,
)
from llmgine.bus._observer import BusObserver
from llmgine.bus._polymorphic import Polymorphic
from llmgine.bus._registry import CommandHandler, EventHandler, Subscription
from llmgine.bus._resilience import (
    BreakerPolicy,
    BreakerState,
    CircuitBreaker,
    CommandPolicy,
    DeadLetter,
    DeadLetterQueue,
    RetryPolicy,
)
from llmgine.bus._scheduler import ScheduledEvent
from llmgine.bus._session import Session
from llmgine.bus._stats import BusStats, LatencySummary
from llmgine.bus._transport import (
    BackpressureStrategy,
    Deliver,
    LocalTransport,
    QueueStats,
    Transport,
)

__all__ = [
    "BackpressureStrategy",
    "BreakerPolicy",
    "BreakerState",
    "BusObserver",
    "BusStats",
    "CircuitBreaker",
    "Command",
    "CommandFailed",
    "CommandHandler",
    "CommandMiddleware",
    "CommandNext",
    "CommandPolicy",
    "CommandResult",
    "DeadLetter",
    "DeadLetterQueue",
    "Deliver",
    "Delivery",
    "ErrorInfo",
    "Event",
    "EventHandler",
    "EventHandlerFailed",
    "EventMiddleware",
    "EventNext",
    "HandlerFailure",
    "LatencySummary",
    "LocalTransport",
    "Message",
    "MessageBus",
    "MessageFilter",
    "Payload",
    "Polymorphic",
    "QueueStats",
    "RetryPolicy",
    "ScheduledEvent",
    "Session",
    "SessionEnded",
    "SessionStarted",
    "Subscription",
    "Transport",
    "default_bus",
    "from_json",
    "message_type_name",
    "set_default_bus",
    "to_json",
]
