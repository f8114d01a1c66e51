"""``%llmgine record``, ``replay`` and ``cache``: where the cells' models get their answers.

* ``%llmgine record answers.jsonl`` records the cells' calls into a cassette beside the
  notebook (`llmgine.recording.Cassette`), in ``read-write`` mode: a call already in the
  cassette is answered from it, any other is made and recorded. So running the notebook
  again costs only its new calls, and shows the answers a replay will give.
  ``--overwrite`` is the ``record`` mode instead: every call is made and its recording
  replaced (to record again after a model changed).
* ``%llmgine replay answers.jsonl`` answers the cells from the cassette only: no model is
  called (no key needed) and a call with no recording fails its cell with the
  `RecordingMissError`'s message: the nearest recorded request and what differs.
* ``%llmgine record off`` / ``%llmgine replay off`` stop using the cassette; cells go
  back to the cache if it is on, else to what ``$LLMGINE_CASSETTE`` says, else to live
  calls.
* ``%llmgine cache on|off|clear|stats``: the SQLite response cache in the user's cache
  directory (`llmgine.recording.SQLiteCache`) in ``read-write`` mode; ``clear`` empties
  it, ``stats`` shows its recordings, size, and this kernel's hits and misses. A cassette,
  while one is set, is used instead of the cache.

Without a word, each command says what is in use. ``%llmgine reset`` turns all of it off.

It applies to the models cells name by spec (``%%llmgine openai:gpt-4o-mini``) and the
default model: they are made with ``get_model(spec, recording=..., recording_mode=...)``,
so the recording sits inside their tracing and a hit is a span with ``llmgine.cache.hit``.
A `Model` of yours (``%%llmgine mine``) that records nothing itself is wrapped in a
`Recorded` outside its own tracing: it replays too, but its hits leave no span.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from llmgine import observability
from llmgine._semconv import CACHE_HIT, CACHE_SOURCE
from llmgine.errors import MagicUsageError
from llmgine.llm import Model
from llmgine.recording import Recorded, RecordingMode, RecordingStore, SQLiteCache
from llmgine.recording._env import recording_for

if TYPE_CHECKING:
    from llmgine.notebook.magics._workbench import Workbench

__all__ = [
    "CACHE_USAGE",
    "RECORD_USAGE",
    "REPLAY_USAGE",
    "Recordings",
    "cache_command",
    "record_command",
    "replay_command",
]

RECORD_USAGE = "%llmgine record [PATH.jsonl [--overwrite] | off]"
REPLAY_USAGE = "%llmgine replay [PATH.jsonl | off]"
CACHE_USAGE = "%llmgine cache [on | off | clear | stats]"
_CASSETTE_SUFFIXES = (".jsonl", ".ndjson")
_MODE_NOTES = {
    "read-write": "answers from it where recorded, records the rest",
    "record": "every call made and its recording replaced",
    "replay": "answers from it only; no model is called",
}


class Recordings:
    """What the workbench's models record into or replay from: a cassette (``path``, as
    typed, and ``mode``), else the cache when it is on, else nothing set here."""

    def __init__(self) -> None:
        self.cassette: str | None = None
        self.mode: RecordingMode = "read-write"
        self.cache = False
        self._wrapped: dict[tuple[int, tuple[str, str]], tuple[Model, Model]] = {}

    def key(self) -> tuple[str, RecordingMode] | None:
        """(store, mode) in use, or None: what the models made for it are cached by."""
        if self.cassette is not None:
            return self.cassette, self.mode
        if self.cache:
            return "cache", "read-write"
        return None

    def options(self) -> dict[str, Any]:
        """`get_model`'s ``recording=`` and ``recording_mode=`` (none: the environment's)."""
        if self.cassette is not None:
            return {"recording": self.cassette, "recording_mode": self.mode}
        if self.cache:
            return {"recording": True, "recording_mode": "read-write"}
        return {}

    def store(self) -> RecordingStore | None:
        """The store in use (shared with every `get_model` naming the same file)."""
        options = self.options()
        if not options:
            return None
        found = recording_for(options["recording"], options["recording_mode"])
        return found[0] if found is not None else None

    def apply(self, model: Model) -> Model:
        """``model`` (one of yours) answering from the store in use: wrapped in a
        `Recorded` unless it records already, or nothing is set here."""
        key = self.key()
        store = self.store()
        if key is None or store is None or model.find(Recorded) is not None:
            return model
        made = self._wrapped.get((id(model), key))
        if made is None or made[0] is not model:
            wrapped = Model(Recorded(model.wrapped, store, mode=key[1]), defaults=model.defaults)
            self._wrapped[(id(model), key)] = made = (model, wrapped)
        return made[1]

    def reset(self) -> None:
        self.cassette, self.mode, self.cache = None, "read-write", False
        self._wrapped.clear()

    def describe(self) -> str:
        """One line: where cells' answers come from."""
        if self.cassette is not None:
            what = "replay from" if self.mode == "replay" else "record into"
            line = f"llmgine: cells {what} {self.cassette} ({self.mode}: {_MODE_NOTES[self.mode]})"
            if self.cache:
                line += "; the cache is on, and used again after %llmgine record off"
            return line
        if self.cache:
            return f"llmgine: cells use the response cache ({_MODE_NOTES['read-write']})"
        env = os.environ.get("LLMGINE_CASSETTE")
        if env:
            mode = os.environ.get("LLMGINE_CASSETTE_MODE") or "read-write"
            return f"llmgine: no recording set here; $LLMGINE_CASSETTE={env} ({mode}) applies"
        return "llmgine: cells call their models (no cassette, cache off)"


def _cassette_path(word: str, usage: str) -> str:
    if Path(word).suffix not in _CASSETTE_SUFFIXES:
        raise MagicUsageError(
            f"{word!r} is not a cassette: a cassette is a JSON-lines file ending in .jsonl "
            f"(e.g. {usage.split()[0]} {usage.split()[1]} answers.jsonl); for the SQLite "
            "response cache use %llmgine cache on"
        )
    return word


def _count(workbench: Workbench, store: RecordingStore, usage: str) -> int:
    try:
        return workbench.loop.run(store.count())
    except ValueError as exc:  # a line that is not a recording: the message says which
        raise MagicUsageError(f"{exc}; usage: {usage}") from exc


def _store_of(path: str) -> RecordingStore:
    found = recording_for(path, "read-write")
    assert found is not None  # a path and a mode other than off always give a store
    return found[0]


def _too_many(words: list[str], usage: str) -> None:
    raise MagicUsageError(f"too many arguments ({' '.join(words)}); usage: {usage}")


def record_command(workbench: Workbench, rest: list[str]) -> None:
    """``%llmgine record ...`` (``rest``: the words after ``record``)."""
    recordings = workbench.recordings
    overwrite = "--overwrite" in rest
    words = [w for w in rest if w != "--overwrite"]
    unknown = [w for w in words if w.startswith("-")]
    if unknown:
        raise MagicUsageError(
            f"unknown option {unknown[0]!r}; usage: {RECORD_USAGE} (--overwrite: call every "
            "model and replace its recording, instead of answering from what is recorded)"
        )
    if len(words) > 1:
        _too_many(words, RECORD_USAGE)
    if words == ["off"]:
        if overwrite:
            raise MagicUsageError(f"--overwrite goes with a cassette's path; usage: {RECORD_USAGE}")
        _off(workbench)
        return
    if words:
        path = _cassette_path(words[0], RECORD_USAGE)
        count = _count(workbench, _store_of(path), RECORD_USAGE)
        recordings.cassette, recordings.mode = path, "record" if overwrite else "read-write"
        print(recordings.describe() + f"; {count} recording(s) there now")
        return
    if overwrite:
        raise MagicUsageError(f"--overwrite goes with a cassette's path; usage: {RECORD_USAGE}")
    print(recordings.describe())


def replay_command(workbench: Workbench, rest: list[str]) -> None:
    """``%llmgine replay ...`` (``rest``: the words after ``replay``)."""
    recordings = workbench.recordings
    if len(rest) > 1:
        _too_many(rest, REPLAY_USAGE)
    if rest == ["off"]:
        _off(workbench)
        return
    if not rest:
        print(recordings.describe())
        return
    path = _cassette_path(rest[0], REPLAY_USAGE)
    if not Path(path).expanduser().is_file():
        raise MagicUsageError(
            f"no cassette {path!r} (from the folder {Path.cwd().name!r}): record it first with "
            f"%llmgine record {path}, where the models can be called, or check the path"
        )
    store = _store_of(path)
    count = _count(workbench, store, REPLAY_USAGE)
    if count == 0:
        raise MagicUsageError(
            f"the cassette {path!r} holds no recordings, so every cell would fail: record "
            f"into it first with %llmgine record {path}"
        )
    recordings.cassette, recordings.mode = path, "replay"
    print(recordings.describe() + f"; {count} recording(s)")


def _off(workbench: Workbench) -> None:
    recordings = workbench.recordings
    was = recordings.cassette
    recordings.cassette, recordings.mode = None, "read-write"
    if was is None:
        print("llmgine: no cassette was set; " + recordings.describe().removeprefix("llmgine: "))
    else:
        print(f"llmgine: {was} no longer used; " + recordings.describe().removeprefix("llmgine: "))


def cache_command(workbench: Workbench, rest: list[str]) -> pd.DataFrame | None:
    """``%llmgine cache ...`` (``rest``: the words after ``cache``)."""
    recordings = workbench.recordings
    action, arguments = (rest[0], rest[1:]) if rest else ("status", [])
    if arguments:
        _too_many(rest, CACHE_USAGE)
    if action == "status":
        state = "on" if recordings.cache else "off"
        print(f"llmgine: the response cache is {state} ({_cache_label()}). " + _status(recordings))
        return None
    if action in ("on", "off"):
        recordings.cache = action == "on"
        print(f"llmgine: the response cache is {action}. " + _status(recordings))
        return None
    if action == "clear":
        store = _cache_store()
        count = workbench.loop.run(store.count())
        workbench.loop.run(store.clear())
        print(f"llmgine: the response cache is empty ({count} recording(s) removed)")
        return None
    if action == "stats":
        return _stats(workbench)
    raise MagicUsageError(
        f"unknown cache command {action!r}; usage: {CACHE_USAGE} (on: answer repeated calls "
        "from the cache and record new ones; clear: empty it; stats: what it holds)"
    )


def _status(recordings: Recordings) -> str:
    return recordings.describe().removeprefix("llmgine: ").capitalize()


def _cache_store() -> SQLiteCache:
    found = recording_for(True, "read-write")
    assert found is not None
    assert isinstance(found[0], SQLiteCache)
    return found[0]


def _cache_label() -> str:
    """The cache's file, with the home directory as ``~`` (a notebook's output is shared)."""
    path = _cache_store().path
    try:
        return "~/" + str(path.relative_to(Path.home()))
    except ValueError:
        return str(path)


def _stats(workbench: Workbench) -> pd.DataFrame:
    """The cache's recordings and size; this kernel's hits from it, and its misses (live
    calls that asked a recording store first, whichever one)."""
    store = _cache_store()
    count = workbench.loop.run(store.count())
    size = sum(p.stat().st_size for p in (store.path, Path(f"{store.path}-wal")) if p.is_file())
    hits = misses = 0
    current = observability.current()
    frame = current.spans_df() if current is not None else None
    hit_column, source_column = f"attributes.{CACHE_HIT}", f"attributes.{CACHE_SOURCE}"
    if frame is not None and hit_column in frame.columns:
        asked: list[Any] = frame[hit_column].tolist()
        sources: list[Any] = (
            frame[source_column].tolist() if source_column in frame.columns else [None] * len(asked)
        )
        for hit, source in zip(asked, sources, strict=True):
            if hit is None or pd.isna(hit):  # a call no recording store was asked for
                continue
            if bool(hit):
                hits += int(source == store.label)
            else:
                misses += 1
    row = {
        "cache": _cache_label(),
        "on": workbench.recordings.cache,
        "recordings": count,
        "size_kb": round(size / 1024, 1),
        "hits": hits,
        "misses": misses,
    }
    return pd.DataFrame([row])
