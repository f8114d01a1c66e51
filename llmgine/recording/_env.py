"""How `get_model` chooses a recording store and mode: its ``recording=`` and
``recording_mode=`` arguments, else ``LLMGINE_CASSETTE`` and ``LLMGINE_CASSETTE_MODE``.

- ``recording=False``: no recording, whatever the environment says.
- ``recording=`` a store, a path (``.jsonl``: a `Cassette`; else a `SQLiteCache`) or
  True (the default `SQLiteCache`): that store, in ``recording_mode``, else
  ``$LLMGINE_CASSETTE_MODE``, else ``read-write``.
- otherwise ``$LLMGINE_CASSETTE`` (a path, as above) in the same mode; or, with only
  ``recording_mode=`` given, the default `SQLiteCache` in that mode.
- ``$LLMGINE_CASSETTE_MODE`` without a store is an error: replay was asked for, and
  nothing to replay from was named.

Stores named by a path are shared by every model that names the same file.
"""

from __future__ import annotations

import os
from pathlib import Path

from llmgine.errors import LLMConfigurationError, LLMError
from llmgine.llm import LLMRequest, LLMResponse, ResponseStream
from llmgine.recording._store import RecordingStore
from llmgine.recording._wrapper import RecordingMode, checked_mode, open_store

__all__ = ["CASSETTE_MODE_VARIABLE", "CASSETTE_VARIABLE", "Unavailable", "recording_for"]

CASSETTE_VARIABLE = "LLMGINE_CASSETTE"
CASSETTE_MODE_VARIABLE = "LLMGINE_CASSETTE_MODE"

RecordingOption = RecordingStore | str | os.PathLike[str] | bool | None

_SHARED: dict[Path, RecordingStore] = {}


def _shared(path: str | os.PathLike[str]) -> RecordingStore:
    resolved = Path(path).expanduser().resolve()
    store = _SHARED.get(resolved)
    if store is None:
        store = _SHARED[resolved] = open_store(path)
    return store


def recording_for(
    recording: RecordingOption, mode: str | None
) -> tuple[RecordingStore, RecordingMode] | None:
    """The store and mode `get_model` wraps its model in, or None for none."""
    if recording is False:
        return None
    env_mode = os.environ.get(CASSETTE_MODE_VARIABLE) or None
    if mode is not None:
        chosen = checked_mode(mode, "recording_mode")
    elif env_mode is not None:
        chosen = checked_mode(env_mode, f"${CASSETTE_MODE_VARIABLE}")
    else:
        chosen = "read-write"
    if chosen == "off":
        return None
    if isinstance(recording, RecordingStore):
        return recording, chosen
    if recording is True:
        return _shared(open_store(None).label), chosen
    if recording is not None:
        return _shared(recording), chosen
    env_path = os.environ.get(CASSETTE_VARIABLE)
    if env_path:
        return _shared(env_path), chosen
    if mode is not None:
        return _shared(open_store(None).label), chosen
    if env_mode is not None:
        raise LLMConfigurationError(
            f"${CASSETTE_MODE_VARIABLE} is {env_mode!r} but no cassette is named: set "
            f"${CASSETTE_VARIABLE} to the cassette's path (answers.jsonl), pass "
            f"recording= to get_model, or unset ${CASSETTE_MODE_VARIABLE}"
        )
    return None


class Unavailable:
    """The model a recording stands in front of when it cannot be made here (no key, no
    SDK): every call that reaches it raises why. Replayed calls never do."""

    def __init__(self, provider: str, name: str, error: LLMError) -> None:
        self._provider = provider
        self._name = name
        self.error = error

    @property
    def provider(self) -> str:
        return self._provider

    @property
    def name(self) -> str:
        return self._name

    async def generate(self, request: LLMRequest, /) -> LLMResponse:
        raise self.error.with_traceback(None)

    def stream(self, request: LLMRequest, /) -> ResponseStream:
        raise self.error.with_traceback(None)

    def __repr__(self) -> str:
        return f"<Unavailable {self._provider}:{self._name}: {type(self.error).__name__}>"
