"""Commands across processes: NATS request/reply on ``<prefix>.cmd.<type>``.

A bus with a `NatsTransport` that executes a command it has no handler for sends the
command (serialised with its class, every secret redacted: `_wire`) as a NATS request; a
bus that registered a handler for that exact type subscribes with the queue group named
after the type, so the server hands each request to one worker of the group. The worker
runs it as its own ``bus.execute`` would (its handler, middleware, policy, observers,
counts and dead letters; `MessageBus._answer`) and replies with JSON: the value (by the
command's declared result type) or the error's type, message and traceback, which the
caller raises as `RemoteCommandError` inside its own policy, so its timeout, retries and
breaker wrap the remote call. Requests go through the connection's `Requests` (one reply
subscription for all of them).

A handler that waits runs in a task of its own, up to ``concurrency`` at once, so a slow
one does not hold up the others. A plain function that returns its value holds the loop
while it runs anyway, so such a command (`CommandRunner.runs_at_once`) is answered in the
subscription's callback, in arrival order, without a task and the loop turn it costs.

Request/reply is at most once: a worker that dies mid-handler never answers, and the
caller sees a timeout (its policy's, else ``command_timeout``). A retry policy then sends
the command again, to another worker: at least once, so such handlers should be
idempotent. No worker at all is a `NoHandlerError` at once (the server says so).

A session's own handler (``session.on_command``, in the process that opened the session
or in one that joined it with ``bus.on_session``) serves ``<prefix>.cmd.<type>.s.<session>``
in a queue group of its own. A command carrying a ``session_id`` asks that subject first
and, when nobody serves it, the type's subject: the session's handler ahead of the bus's,
as in one process. A command without a session asks the type's subject only.

With observability on, the request carries the caller's W3C ``traceparent``, and the
worker executes under it: its command span is a child of the caller's.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import re
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import nats.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription as NatsSubscription
from pydantic import BaseModel, TypeAdapter

from llmgine._redact import redacting_logger
from llmgine.bus._commands import Answer
from llmgine.bus._json import from_json
from llmgine.bus._messages import Command, ErrorInfo, message_type_name
from llmgine.bus.nats._requests import Requests
from llmgine.bus.nats._trace import trace_headers, traced_context, untraced
from llmgine.bus.nats._wire import wire_message, wire_reply
from llmgine.errors import (
    CommandTimeoutError,
    MessageSerializationError,
    NoHandlerError,
    RemoteCommandError,
    TransportError,
)

__all__ = ["CommandRouter"]

log = redacting_logger("llmgine.bus.nats")

Execute = Callable[[Command[Any]], Awaitable[Answer]]
# What is served: a command type, for the whole bus (None) or for one session.
Served = tuple[type[Command[Any]], str | None]
_PLAIN_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
_NO_HANDLER = f"{NoHandlerError.__module__}.{NoHandlerError.__qualname__}"
# A success, as `_Reply.model_dump_json` writes it, around the value's JSON.
_SUCCEEDED, _NO_ERROR = b'{"success":true,"value":', b',"error":null}'


class _Reply(BaseModel):
    """What a worker answers: the value as JSON, or the error."""

    success: bool
    value: Any = None
    error: ErrorInfo | None = None


def session_token(session_id: str) -> str:
    """A session id as one subject token: itself when it is plain (a uuid's hex), else a
    digest, so dots, spaces or wildcards in an id cannot change the subject's shape."""
    if _PLAIN_ID.fullmatch(session_id):
        return session_id
    return "h" + hashlib.sha256(session_id.encode()).hexdigest()[:32]


@functools.cache
def _result_adapter(cls: type[Command[Any]]) -> TypeAdapter[Any]:
    """The command's declared result type (``R`` of ``Command[R]``), to read values back
    as that type; ``Any`` when it declares none."""
    for base in cls.__mro__:
        meta = getattr(base, "__pydantic_generic_metadata__", None)
        if meta and meta["origin"] is Command and meta["args"]:
            return TypeAdapter(meta["args"][0])
    return TypeAdapter(Any)


class CommandRouter:
    """One `NatsTransport`'s command traffic: the requests it sends, the types it serves."""

    def __init__(
        self,
        prefix: str,
        *,
        concurrency: int,
        command_timeout: float,
        connection: Callable[[], Awaitable[Requests]],
    ) -> None:
        self.prefix = prefix
        self._connection = connection  # the transport's requests, connected on first use
        self.concurrency = concurrency
        self.command_timeout = command_timeout
        self._execute: Execute | None = None
        self._at_once: Callable[[type[Command[Any]]], bool] = lambda cls: False
        self._served: set[Served] = set()
        self._subs: dict[Served, NatsSubscription] = {}
        self._nc: Client | None = None
        self._slots: asyncio.Semaphore | None = None
        self._running: set[asyncio.Task[None]] = set()
        self._changes: set[asyncio.Task[None]] = set()
        self._subjects: dict[type[Command[Any]], str] = {}
        self._inline = 0  # commands being answered at once, in a subscription's callback
        self.requests = self.answered = 0

    def subject(self, cls: type[Command[Any]], session_id: str | None = None) -> str:
        """Where commands of ``cls`` are asked: the type's subject, or one session's."""
        subject = self._subjects.get(cls)
        if subject is None:
            from llmgine.bus.nats._transport import _token

            subject = f"{self.prefix}.cmd.{_token(message_type_name(cls))}"
            self._subjects[cls] = subject
        return subject if session_id is None else f"{subject}.s.{session_token(session_id)}"

    def attach(self, execute: Execute, at_once: Callable[[type[Command[Any]]], bool]) -> None:
        self._execute, self._at_once = execute, at_once

    @property
    def served(self) -> frozenset[type[Command[Any]]]:
        """The command types this bus answers for others (its sessions' aside)."""
        return frozenset(cls for cls, session in self._served if session is None)

    @property
    def running(self) -> int:
        """Commands from others being handled now."""
        return len(self._running) + self._inline

    # -- serving -----------------------------------------------------------------------

    def serve(self, cls: type[Command[Any]], session_id: str | None = None) -> Callable[[], None]:
        """Answer requests for ``cls`` (in one session, if given) once connected; returns
        what stops it."""
        key = (cls, session_id)
        self._served.add(key)
        self._later(self._subscribe_served())

        def stop() -> None:
            self._served.discard(key)
            sub = self._subs.pop(key, None)
            if sub is not None:
                self._later(sub.unsubscribe())

        return stop

    async def stop_session(self, session_id: str) -> None:
        """Stop answering for one session (it ended), and let the server know before
        returning, so a request sent after this goes to the type's workers."""
        await self.settled()
        keys = [key for key in self._served if key[1] == session_id]
        subs = [sub for key in keys if (sub := self._subs.pop(key, None)) is not None]
        self._served.difference_update(keys)
        nc = self._nc
        if not subs or nc is None or nc.is_closed:
            return
        with contextlib.suppress(nats.errors.Error):  # a connection gone serves nothing
            for sub in subs:
                await sub.unsubscribe()
            await nc.flush()

    def _later(self, work: Coroutine[Any, Any, None]) -> None:
        """Subscribe or unsubscribe now if connected on a running loop (registration is
        synchronous), else at the next connection."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        if loop is None or self._nc is None or self._nc.is_closed:
            work.close()
            return
        task = loop.create_task(work)
        self._changes.add(task)
        task.add_done_callback(self._changes.discard)

    async def connected(self, nc: Client) -> None:
        """A new connection: serve every registered type on it (its `Requests` are the
        transport's, given to `execute` by ``connection``)."""
        self._nc, self._subs = nc, {}
        self._slots = asyncio.Semaphore(self.concurrency)
        self._running = set()
        await self._subscribe_served()

    async def settled(self) -> None:
        """Wait for subscriptions being made or removed (so a request finds them)."""
        while self._changes:
            await asyncio.gather(*list(self._changes), return_exceptions=True)

    async def ready(self) -> None:
        """Serve every registered type, and let the server know before returning."""
        await self.settled()
        await self._subscribe_served()

    async def _subscribe_served(self) -> None:
        nc = self._nc
        if nc is None:
            return
        for key in list(self._served):
            if key not in self._subs:
                cls, session_id = key
                subject = self.subject(cls, session_id)
                # The queue group is the type (or the type in one session): each request
                # goes to one worker of it.
                queue = message_type_name(cls) + subject[len(self.subject(cls)) :]
                on_request = (
                    self._on_request
                    if session_id is not None
                    else functools.partial(self._on_type_request, cls)
                )
                self._subs[key] = await nc.subscribe(subject, queue=queue, cb=on_request)
        await nc.flush()  # the server knows the subscriptions before anyone asks

    async def _on_type_request(self, cls: type[Command[Any]], msg: Msg) -> None:
        if not self._at_once(cls):
            await self._on_request(msg)
            return
        # Its handler holds the loop until it returns anyway: answered here, in the order
        # the requests came, without a task (and its loop turn) of its own.
        self._inline += 1
        try:
            await self._answer(msg, task=False)
        finally:
            self._inline -= 1

    async def _on_request(self, msg: Msg) -> None:
        assert self._slots is not None
        await self._slots.acquire()  # at most `concurrency` handlers at once
        self._running.add(asyncio.get_running_loop().create_task(self._answer(msg)))

    async def _answer(self, msg: Msg, *, task: bool = True) -> None:
        token = traced_context(msg.headers)
        try:
            reply = await self._run(msg.data)
        finally:
            untraced(token)
            if task:
                assert self._slots is not None
                self._slots.release()
                # Here rather than in a done callback: one loop turn less a command.
                self._running.discard(asyncio.current_task())
        nc = self._nc
        if msg.reply and nc is not None and not nc.is_closed:
            try:
                await nc.publish(msg.reply, reply)
                self.answered += 1
            except nats.errors.Error as exc:
                log.warning("could not send a command's reply over NATS (%r)", exc)

    async def _run(self, data: bytes) -> bytes:
        assert self._execute is not None, "attach() must be called before serving"
        try:
            command = from_json(data)
            if not isinstance(command, Command):
                raise MessageSerializationError(f"a {type(command).__name__} is not a command")
            succeeded, value = await self._execute(command)
            if succeeded:
                # What _Reply(success=True, value=...).model_dump_json() writes, in one pass.
                value = _result_adapter(type(command)).dump_json(value)
                return wire_reply((_SUCCEEDED + value + _NO_ERROR).decode())
            error = value.error
        except Exception as exc:
            error = ErrorInfo.from_exception(exc)
        return wire_reply(_Reply(success=False, error=error).model_dump_json())

    async def stop_serving(self) -> None:
        """Take no new requests; let the handlers running finish and reply."""
        await self.settled()
        subs, self._subs = list(self._subs.values()), {}
        for sub in subs:
            # The requests already delivered here still run; a connection already gone
            # brings no more.
            with contextlib.suppress(nats.errors.Error):
                await sub.drain()  # type: ignore[no-untyped-call]
        while self._running:
            await asyncio.gather(*list(self._running), return_exceptions=True)

    # -- requesting --------------------------------------------------------------------

    async def execute(self, command: Command[Any]) -> Any:
        """Run ``command`` in a worker that serves its type; its value, or raise."""
        return await self.request(await self._connection(), command)

    async def request(self, requests: Requests, command: Command[Any]) -> Any:
        """Send ``command`` to a worker (its session's first, if it has one); its value, or
        raise what failed."""
        cls = type(command)
        if self._changes:  # only while a subscription is being made or removed
            await self.settled()
        self.requests += 1
        data, headers = wire_message(command), trace_headers() or None
        try:
            msg = None
            if command.session_id is not None:
                with contextlib.suppress(nats.errors.NoRespondersError):  # then the type's
                    msg = await requests.request(
                        self.subject(cls, command.session_id),
                        data,
                        timeout=self.command_timeout,
                        headers=headers,
                    )
            if msg is None:
                msg = await requests.request(
                    self.subject(cls), data, timeout=self.command_timeout, headers=headers
                )
        except nats.errors.NoRespondersError as exc:
            in_session = "" if command.session_id is None else ", nor its session's handler,"
            raise NoHandlerError(
                f"no handler is registered for {cls.__name__} in this process, and no worker"
                f"{in_session} serves it over NATS: register one with "
                f"bus.on_command({cls.__name__}, handler), here or in a worker "
                "(`llmgine worker module:setup`)"
            ) from exc
        except nats.errors.TimeoutError as exc:
            raise CommandTimeoutError(
                f"no worker answered {cls.__name__} within {self.command_timeout:g}s "
                "(command_timeout); a worker that died mid-command never answers. Give "
                f"{cls.__name__} a CommandPolicy with a timeout and a retry to try another "
                "worker"
            ) from exc
        except nats.errors.ConnectionClosedError as exc:
            raise TransportError(
                f"the NATS connection closed before a worker answered {cls.__name__} (was the "
                "bus stopped?); start the bus again and execute it again if it is safe to"
            ) from exc
        except nats.errors.Error as exc:
            raise TransportError(f"could not send {cls.__name__} over NATS: {exc!r}") from exc
        data = msg.data
        if data.startswith(_SUCCEEDED) and data.endswith(_NO_ERROR):
            # A worker's success as _run writes it: read the value as the result type at once.
            try:
                return _result_adapter(cls).validate_json(data[len(_SUCCEEDED) : -len(_NO_ERROR)])
            except ValueError:
                pass  # not that layout after all (or not the result type): read it in full
        try:
            reply = _Reply.model_validate_json(data)
        except ValueError as exc:
            raise MessageSerializationError(
                f"the reply to {cls.__name__} is not a command result: {msg.data[:80]!r}"
            ) from exc
        if reply.success:
            try:
                return _result_adapter(cls).validate_python(reply.value)
            except ValueError as exc:  # e.g. a secret redacted where a number was
                raise MessageSerializationError(
                    f"the reply to {cls.__name__} does not hold its result type: {exc}"
                ) from exc
        error = reply.error or ErrorInfo(type="unknown", message="the worker sent no error")
        if error.type == _NO_HANDLER:  # the worker's handler was removed meanwhile
            name = message_type_name(cls)
            raise NoHandlerError(f"{name}: the worker had no handler: {error.message}")
        raise RemoteCommandError(
            f"{cls.__name__} failed in a worker: {error.type}: {error.message}",
            remote_type=error.type,
            remote_message=error.message,
            remote_traceback=error.traceback,
        )
