"""`Recorded`: the model wrapper that answers from recordings and records live answers.

It sits inside `Traced` (``Model → Retrying → Traced → Recorded → provider``), so a hit
is still a span: the span shows ``llmgine.cache.hit``, a cost of 0 and the original cost,
where a wrapper outside `Traced` would answer before any span was made and leave no trace
of the call. `Retrying` stays outside it: a hit never fails, and a replay miss
(`RecordingMissError`) is not retried.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, Literal, get_args

from llmgine.errors import LLMConfigurationError, RecordingMissError
from llmgine.llm import (
    LanguageModel,
    LLMRequest,
    LLMResponse,
    ResponseStream,
    StreamAssembler,
    StreamItem,
    WrapperModel,
)
from llmgine.llm._testing import response_items
from llmgine.recording._cassette import Cassette
from llmgine.recording._drift import Drift, DriftAnswer, DriftReport, request_label
from llmgine.recording._key import (
    canonical_request,
    difference_count,
    request_differences,
    request_key,
)
from llmgine.recording._sqlite import SQLiteCache
from llmgine.recording._store import Recording, RecordingStore

__all__ = ["MODES", "PACES", "Pace", "Recorded", "RecordingMode", "open_store"]

RecordingMode = Literal["off", "read-write", "replay", "record", "compare"]
Pace = Literal["instant", "recorded"]
MODES: tuple[str, ...] = get_args(RecordingMode)
PACES: tuple[str, ...] = get_args(Pace)
_SHOWN_DIFFERENCES = 20


def open_store(store: RecordingStore | str | os.PathLike[str] | None) -> RecordingStore:
    """``store`` as a `RecordingStore`: a path ending in ``.jsonl`` is a `Cassette`, any
    other path a `SQLiteCache`, None the default `SQLiteCache` in the user's cache dir."""
    if isinstance(store, RecordingStore):
        return store
    if store is None:
        return SQLiteCache()
    if isinstance(store, str | os.PathLike):
        path = Path(store)
        return Cassette(path) if path.suffix in (".jsonl", ".ndjson") else SQLiteCache(path)
    raise TypeError(
        f"a recording store is a Cassette, a SQLiteCache or a path (.jsonl: a cassette; "
        f"else a SQLite file); got {type(store).__name__}"
    )


def checked_mode(mode: str, where: str = "mode") -> RecordingMode:
    if mode not in MODES:
        raise LLMConfigurationError(
            f"{where} is {mode!r}; a recording mode is one of {', '.join(MODES)} ('off': "
            f"always call the model; 'read-write': answer from recordings, record what is "
            f"missing; 'replay': recordings only, a missing one is an error; 'record': "
            f"always call the model and record the answer; 'compare': always call the model "
            f"and compare its answer with the recording, recording nothing)"
        )
    return mode  # type: ignore[return-value]


class Recorded(WrapperModel):
    """Answers calls from a `RecordingStore` and records live answers in it.

    Modes: ``"off"`` (call the model, record nothing), ``"read-write"`` (the default:
    answer from a recording when there is one; otherwise call the model and record its
    answer), ``"replay"`` (recordings only: no model is called, and a request with no
    recording is a `RecordingMissError` naming the nearest recorded request and every
    field where it differs), ``"record"`` (always call the model, replacing any
    recording), ``"compare"`` (always call the model and return its answer, compare it
    with the recording of the same request and keep the comparison, a `Drift`, in
    ``drift``, a `DriftReport`; nothing is recorded). Failed calls are not recorded.

    Calls are looked up by their canonical request (`request_key`): streamed and
    unstreamed calls of one request share a recording. A streamed hit replays the
    recorded stream items (a call recorded without streaming: the items its answer would
    have streamed), at once (``pace="instant"``) or as they were timed
    (``pace="recorded"``). A hit's `LLMResponse` has ``replayed_from`` (the store's
    label), ``cache_hit=True``, ``cost_usd=0`` and the recorded cost in
    ``original_cost_usd``; a live answer has ``cache_hit=False``.

    In compare mode the live answer has ``cache_hit=False`` and ``drift`` (``"same"``,
    ``"changed"`` or ``"new"``), and its span ``llmgine.cache.drift``. ``drift=`` hands in
    the report to add to (by default a new one; several models may share one).

    ``sleep`` and ``clock`` pace a recorded-pace replay (tests pass their own).

    Example:
        model = get_model("openai:gpt-4o-mini", recording="a.jsonl", recording_mode="replay")
        # which builds, inside the tracing so that a hit is a span too:
        model = Model(Retrying(Traced(Recorded(ProviderModel(adapter, "gpt-4o-mini"),
                                               Cassette("a.jsonl"), mode="replay"))))
    """

    def __init__(
        self,
        wrapped: LanguageModel,
        store: RecordingStore | str | os.PathLike[str] | None = None,
        *,
        mode: RecordingMode = "read-write",
        pace: Pace = "instant",
        drift: DriftReport | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        super().__init__(wrapped)
        self.store = open_store(store)
        self.mode: RecordingMode = checked_mode(mode)
        if pace not in PACES:
            raise ValueError(f"pace is {pace!r}; it is one of {', '.join(PACES)}")
        self.pace: Pace = pace
        self.drift = drift if drift is not None else DriftReport()
        self._sleep = sleep
        self._clock = clock

    @property
    def spec(self) -> str:
        return f"{self.provider}:{self.name}"

    def __repr__(self) -> str:
        return f"<Recorded {self.spec} {self.mode} {self.store.label}>"

    def _replayed(self, recording: Recording, started: float) -> LLMResponse:
        response = recording.llm_response()
        response.original_cost_usd = response.cost_usd
        response.cost_usd = 0.0
        response.replayed_from = self.store.label
        response.cache_hit = True
        response.latency_ms = (self._clock() - started) * 1000
        response.time_to_first_token_ms = None
        return response

    async def _record(
        self,
        key: str,
        request: dict[str, Any],
        response: LLMResponse,
        items: list[tuple[float, StreamItem]],
        *,
        streamed: bool,
    ) -> None:
        recording = Recording.of(key, request, response, items, streamed=streamed)
        await self.store.put(recording)

    async def _lookup(self, key: str) -> Recording | None:
        if self.mode in ("read-write", "replay"):
            return await self.store.get(key)
        return None

    async def _compare(
        self, key: str, request: LLMRequest, response: LLMResponse, *, streamed: bool
    ) -> LLMResponse:
        """Compare the live ``response`` with the recording under ``key`` (if any) and keep
        the `Drift`; the store is only read."""
        recording = await self.store.get(key)
        drift = Drift(
            key=key,
            label=request_label(request),
            model=self.spec,
            recorded=DriftAnswer.of(recording.llm_response()) if recording else None,
            live=DriftAnswer.of(response),
            streamed=streamed,
        )
        self.drift.add(drift)
        response.cache_hit = False
        response.drift = drift.status
        return response

    async def generate(self, request: LLMRequest, /) -> LLMResponse:
        if self.mode == "off":
            return await self.wrapped.generate(request)
        if self.mode == "compare":
            key = request_key(canonical_request(request, self.spec))
            response = await self.wrapped.generate(request)
            return await self._compare(key, request, response, streamed=False)
        started = self._clock()
        canonical = canonical_request(request, self.spec)
        key = request_key(canonical)
        recording = await self._lookup(key)
        if recording is not None:
            return self._replayed(recording, started)
        if self.mode == "replay":
            raise await self._miss(key, canonical)
        response = await self.wrapped.generate(request)
        # A whole answer arrives at once: its items are timed at its end.
        end = response.latency_ms if response.latency_ms is not None else 0.0
        items = [(end, item) for item in response_items(response)]
        await self._record(key, canonical, response, items, streamed=False)
        response.cache_hit = False
        return response

    def stream(self, request: LLMRequest, /) -> ResponseStream:
        if self.mode == "off":
            return self.wrapped.stream(request)
        return _RecordedStream(self, request).stream()

    async def _paced(self, recording: Recording) -> AsyncIterator[StreamItem]:
        started = self._clock()
        for at_ms, item in recording.stream_items():
            if self.pace == "recorded":
                wait = at_ms / 1000 - (self._clock() - started)
                if wait > 0:
                    await self._sleep(wait)
            yield item

    async def _miss(self, key: str, canonical: dict[str, Any]) -> RecordingMissError:
        recordings = await self.store.recordings()
        same_model = [r for r in recordings if r.model == self.spec]
        candidates = same_model or recordings
        where = f"no recording of this {self.spec} request in {self.store.label}"
        fix = (
            "Record it: run once with recording_mode='read-write' (or LLMGINE_CASSETTE_MODE="
            "read-write) where the model can be called, or change the request back."
        )
        if not candidates:
            return RecordingMissError(
                f"{where}, which holds no recordings (replay mode calls no model). {fix}",
                key=key,
                store=self.store.label,
                provider=self.provider,
                model=self.name,
            )
        nearest = min(candidates, key=lambda r: (difference_count(r.request, canonical), r.key))
        differences = request_differences(nearest.request, canonical)
        shown = "\n".join(f"  - {line}" for line in differences[:_SHOWN_DIFFERENCES])
        more = len(differences) - _SHOWN_DIFFERENCES
        if more > 0:
            shown += f"\n  ... and {more} more"
        return RecordingMissError(
            f"{where} (replay mode calls no model; {len(recordings)} recording(s) there). "
            f"The nearest recorded request (key {nearest.key[:12]}) differs in "
            f"{len(differences)} field(s):\n{shown}\n{fix}",
            key=key,
            store=self.store.label,
            nearest=nearest.request,
            differences=differences,
            provider=self.provider,
            model=self.name,
        )


class _RecordedStream:
    """One streamed call through `Recorded`: the recorded items on a hit, else the live
    stream's items, timed and recorded when it ends."""

    def __init__(self, owner: Recorded, request: LLMRequest) -> None:
        self.owner = owner
        self.request = request
        self.started = owner._clock()
        self.hit: Recording | None = None
        self.inner: ResponseStream | None = None

    def stream(self) -> ResponseStream:
        owner = self.owner
        assembler = StreamAssembler(owner.provider, owner.name)
        return ResponseStream(self._items(), assembler).then(self._response)

    async def _items(self) -> AsyncIterator[StreamItem]:
        owner = self.owner
        canonical = canonical_request(self.request, owner.spec)
        key = request_key(canonical)
        self.hit = await owner._lookup(key)
        if self.hit is not None:
            async for item in owner._paced(self.hit):
                yield item
            return
        if owner.mode == "replay":
            raise await owner._miss(key, canonical)
        inner = self.inner = owner.wrapped.stream(self.request)
        items: list[tuple[float, StreamItem]] = []
        clock, started = owner._clock, owner._clock()
        try:
            async for item in inner:
                items.append(((clock() - started) * 1000, item))
                yield item
        finally:
            await inner.aclose()  # a reader that stopped early: the live stream stops too
        assert inner.response is not None
        if owner.mode == "compare":
            await owner._compare(key, self.request, inner.response, streamed=True)
        else:
            await owner._record(key, canonical, inner.response, items, streamed=True)

    def _response(self, assembled: LLMResponse) -> LLMResponse:
        if self.hit is not None:
            response = self.owner._replayed(self.hit, self.started)
            response.latency_ms = assembled.latency_ms
            response.time_to_first_token_ms = assembled.time_to_first_token_ms
            return response
        # The live stream's response carries what the layers under this one added (cost).
        live = self.inner.response if self.inner is not None else None
        response = live or assembled
        response.cache_hit = False
        return response
