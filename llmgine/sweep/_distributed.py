"""A sweep on a bus that carries commands to other processes (NATS): the live calls of
the models given as specs are made by worker processes.

Each such model gets, per repeat, a second caller beside the in-process one:
``Model(Recorded(RemoteModel(bus, spec)))``. The sweep asks it when the row's answer is not
in the store yet; the `RemoteModel` executes a `Generate(model=spec)` on the bus outside
the sweep's session (inside it, the sweep's own `Service` would answer it), which the bus
sends to a worker (`llmgine worker llmgine.llm:worker`), and the `Recorded` around it
stores the answer in the notebook's store. A stored row is answered by the in-process
caller, as in one process (its GenAI span shows the cache hit), and never leaves the
notebook.

Spans: a live row's span is a command span around the request (`SpanCatcher.worker_call`),
current while the worker runs it, so the worker's GenAI span is its child and one call is
one GenAI span.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any

from llmgine.bus import MessageBus
from llmgine.llm import Model, RemoteModel
from llmgine.llm._model import REQUEST_FIELDS
from llmgine.recording import Recorded, RecordingStore
from llmgine.sweep._wiring import RepeatStore, SpanCatcher

__all__ = ["WORKER_KEY", "worker_callers"]

WORKER_KEY = "{key}.worker"  # the session's key of a model's worker caller


def worker_callers(
    bus: MessageBus,
    specs: Sequence[str | None],
    repeats: int,
    store: RecordingStore,
    tracer: SpanCatcher,
    model_options: Mapping[str, Any] | None,
) -> dict[tuple[int, int], Model]:
    """The worker caller of each model given as a spec (``specs[m]``; None for a `Model`,
    which cannot travel and stays in this process), by (model, repeat)."""
    provider_options = sorted(set(model_options or {}) - REQUEST_FIELDS)
    if provider_options and any(specs):
        warnings.warn(
            f"model_options {provider_options} configure the provider, which the workers "
            "make with their own settings: these are not sent to them. Configure the "
            "workers (their environment) instead.",
            stacklevel=3,
        )
    callers: dict[tuple[int, int], Model] = {}
    for m, spec in enumerate(specs):
        if spec is None:
            continue
        remote = RemoteModel(bus, spec, around=tracer.worker_call)
        for r in range(repeats):
            callers[m, r] = Model(Recorded(remote, RepeatStore(store, r)))
    return callers
