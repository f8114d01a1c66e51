"""`wait_for_spans`: wait, on the event loop, until the buffer holds the spans you expect.

Spans reach the buffer from anywhere: this loop's own (handed over when it is idle, see
`RedactingFanout`), other threads', and other processes' through the `SpanCollector`'s
receiver thread. Polling ``spans_df`` on a timer would cost a frame per tick and answer
late; instead a buffer listener wakes the waiter with ``call_soon_threadsafe`` (the one
asyncio call that any thread may make), and the waiter looks again only when a matching
span has ended.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Literal

from llmgine.errors import SpanWaitTimeoutError
from llmgine.observability._buffer import SpanBuffer, SpanRecord
from llmgine.observability._frames import SpanFilter, span_filter

__all__ = ["SpanFilter", "wait_for_spans"]

LISTED = 10  # spans named in a timeout's message at most


async def wait_for_spans(
    buffer: SpanBuffer,
    *,
    count: int,
    name: str | None,
    session: str | None,
    where: SpanFilter | None,
    timeout: float,
) -> list[SpanRecord]:
    """The finished spans matching the filters, once at least ``count`` are in ``buffer``;
    see `Observability.wait_for_spans`."""
    if count < 1:
        raise ValueError(f"wait_for_spans(count=) must be at least 1, got {count}")
    if timeout <= 0:
        raise ValueError(f"wait_for_spans(timeout=) must be positive seconds, got {timeout}")
    matches = span_filter(name=name, session=session, where=where) or _every
    loop = asyncio.get_running_loop()
    arrived = asyncio.Event()

    def wake() -> None:
        with contextlib.suppress(RuntimeError):  # the waiter's loop closed meanwhile
            loop.call_soon_threadsafe(arrived.set)

    def listener(what: Literal["start", "end"], record: SpanRecord) -> None:
        if what == "end" and matches(record):
            wake()

    unsubscribe = buffer.subscribe(listener)  # before the first look: nothing slips by
    found: list[SpanRecord] = []
    try:
        async with asyncio.timeout(timeout):
            while True:
                arrived.clear()  # before looking, so a span ending after the look wakes us
                found = [r for r in buffer.finished() if matches(r)]
                if len(found) >= count:
                    return found
                await arrived.wait()
    except TimeoutError:
        raise SpanWaitTimeoutError(
            _timeout_message(found, count, name, session, where, timeout, len(buffer)),
            wanted=count,
            seen=found,
            timeout=timeout,
        ) from None
    finally:
        unsubscribe()


def _timeout_message(
    found: list[SpanRecord],
    count: int,
    name: str | None,
    session: str | None,
    where: SpanFilter | None,
    timeout: float,
    in_buffer: int,
) -> str:
    wanted = f"{count} finished span{'s' if count != 1 else ''}"
    if name is not None:
        wanted += f" named {name!r}"
    if session is not None:
        wanted += f" of session {session!r}"
    if where is not None:
        wanted += " passing where="
    listed = ", ".join(_described(r) for r in found[:LISTED])
    if len(found) > LISTED:
        listed += f" and {len(found) - LISTED} more"
    seen = f"{len(found)} matched ({listed})" if found else "none matched"
    return (
        f"waited {timeout:g} s for {wanted}; {seen}, of {in_buffer} finished spans in the "
        "buffer. Spans of another process arrive only if it exports to obs.collect()'s "
        "endpoint (OTEL_EXPORTER_OTLP_ENDPOINT); else wait longer (timeout=) or check the "
        "filters against obs.spans_df()"
    )


def _described(record: SpanRecord) -> str:
    service = record.attributes.get("service.name")
    return f"{record.name!r}" + (f" from {service}" if isinstance(service, str) else "")


def _every(record: SpanRecord) -> bool:
    return True
