"""Recorded model calls: replay answers offline, cache them, commit them with a notebook.

One mechanism, a recorded-response store. `Recorded` wraps a model and looks each call up
by its canonical request (`request_key`: the model, messages, tools, tool choice,
response format, sampling parameters, reasoning and provider options; not ``timeout`` or
``stream``; dict order and whitespace in JSON tool arguments do not matter). Modes:
``off``, ``read-write`` (serve hits, call and record misses), ``replay`` (hits only; a
miss is a `llmgine.errors.RecordingMissError` showing the nearest recorded request and
each field that differs), ``record`` (always call, overwrite), ``compare`` (see Drift
below). Streamed and unstreamed
calls of one request share a recording; a streamed hit replays the recorded items, at
once or at the recorded pace (``pace=``).

Stores: `SQLiteCache` (the default, ``$XDG_CACHE_HOME/llmgine/cache.sqlite3``, safe for
several processes) and `Cassette` (a JSON-lines file to commit beside a notebook: one
interaction per line, keys sorted, lines in key order). Nothing stored holds a
credential: no headers are kept and everything passes the redactor first.

A hit says so: ``response.replayed_from`` (the store), ``cache_hit``, ``cost_usd == 0``
with ``original_cost_usd`` kept, and its span carries ``llmgine.cache.hit`` and
``llmgine.cache.original_cost_usd``.

Drift: ``mode="compare"`` re-runs recorded calls live to check that a model update broke
nothing. Every call goes to the model and returns its live answer, which is compared with
the recording of the same request; the recording is never changed. Each comparison is a
`Drift` (the request's key and a short label; recorded and live text, tool calls with
their arguments, input and output tokens, finish reason; what changed; ``status``
``"same"``, ``"changed"`` or ``"new"`` when nothing was recorded), kept in the wrapper's
`DriftReport` (``model.find(Recorded).drift``). ``report.summary()`` is a DataFrame, one
row per call; ``report.changed`` the calls that drifted; ``drift.diff()`` a unified or
side-by-side diff; in a notebook the report shows the table and side-by-side diffs. The
answer says ``drift`` too, and its span ``llmgine.cache.drift``.

Example:
    from llmgine.llm import get_model
    from llmgine.recording import Cassette

    model = get_model("openai:gpt-4o-mini", recording=Cassette("answers.jsonl"),
                      recording_mode="replay")     # no key needed: answers from the file

Or set ``LLMGINE_CASSETTE=answers.jsonl`` and ``LLMGINE_CASSETTE_MODE=replay`` and leave
the code as it is: `get_model` honours them.

Checking for drift (the model is called, with its key):

    model = get_model("openai:gpt-4o-mini", recording="answers.jsonl",
                      recording_mode="compare")      # or LLMGINE_CASSETTE_MODE=compare
    ...                                              # the notebook's calls
    report = model.find(Recorded).drift
    report.summary()                                 # label, status, what changed
    for drift in report.changed:
        print(drift.diff("side-by-side"))
"""

from __future__ import annotations

from llmgine.recording._cassette import Cassette
from llmgine.recording._drift import Drift, DriftAnswer, DriftReport, DriftStatus, request_label
from llmgine.recording._env import CASSETTE_MODE_VARIABLE, CASSETTE_VARIABLE
from llmgine.recording._key import canonical_request, request_differences, request_key
from llmgine.recording._sqlite import SQLiteCache, default_cache_path
from llmgine.recording._store import Recording, RecordingStore
from llmgine.recording._wrapper import MODES, Pace, Recorded, RecordingMode, open_store

__all__ = [  # noqa: RUF022 - plainly sorted, as tests/test_public_api.py checks
    "CASSETTE_MODE_VARIABLE",
    "CASSETTE_VARIABLE",
    "Cassette",
    "Drift",
    "DriftAnswer",
    "DriftReport",
    "DriftStatus",
    "MODES",
    "Pace",
    "Recorded",
    "Recording",
    "RecordingMode",
    "RecordingStore",
    "SQLiteCache",
    "canonical_request",
    "default_cache_path",
    "open_store",
    "request_differences",
    "request_key",
    "request_label",
]
