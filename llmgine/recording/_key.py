"""The canonical request: what a recording is looked up by, and how two requests differ.

A request's canonical form keeps what can change the answer (the model as
``provider:name``, the messages, tools, tool choice, response format, the sampling
parameters, reasoning and provider options) and leaves out what cannot (``timeout``,
``stream``: streamed and unstreamed calls share one recording). It is plain JSON data:

- fields that are None, empty lists and empty dicts are dropped, so a request that leaves
  a field unset and one that sets it to its empty default are the same key, and a
  recording survives a new optional field;
- JSON text inside tool calls (``arguments``, ``invalid_arguments``) is parsed, so
  ``{"a": 1}`` and ``{"a":1}`` are the same arguments;
- dict order never matters: the key is the SHA-256 of the JSON dumped with sorted keys.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from llmgine.llm import LLMRequest

__all__ = ["canonical_json", "canonical_request", "request_differences", "request_key"]

# Request fields left out of the key: they change how the answer is fetched, not what it is.
IGNORED_FIELDS = frozenset({"model", "stream", "timeout"})
_JSON_TEXT_KEYS = frozenset({"arguments", "invalid_arguments"})


def _parsed_json(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def _canonical(value: Any, key: str | None = None) -> Any:
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            c = _canonical(v, k)
            if c is None or c == [] or c == {}:
                continue
            out[k] = c
        return out
    if isinstance(value, list | tuple):
        return [_canonical(v) for v in value]
    if isinstance(value, str) and key in _JSON_TEXT_KEYS:
        return _parsed_json(value)
    return value


def canonical_request(request: LLMRequest, model: str) -> dict[str, Any]:
    """``request`` as the plain JSON data its recording is keyed by; ``model`` is
    ``"provider:name"`` (the model the call goes to, whatever ``request.model`` says)."""
    dumped = request.model_dump(mode="json", exclude=set(IGNORED_FIELDS))
    canonical: dict[str, Any] = _canonical(dumped)
    canonical["model"] = model
    return canonical


def canonical_json(canonical: dict[str, Any]) -> str:
    """The one JSON text of a canonical request: sorted keys, no spaces."""
    return json.dumps(canonical, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def request_key(request: LLMRequest | dict[str, Any], model: str | None = None) -> str:
    """The recording key of a request: the hex SHA-256 of its canonical JSON. Takes an
    `LLMRequest` with its ``model`` (``"provider:name"``), or a canonical request."""
    if isinstance(request, LLMRequest):
        if model is None:
            raise TypeError("request_key(LLMRequest, model) needs model='provider:name'")
        request = canonical_request(request, model)
    return hashlib.sha256(canonical_json(request).encode()).hexdigest()


_SHOWN = 80  # characters of a differing value shown


def _show(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, ensure_ascii=False)
    return text if len(text) <= _SHOWN else text[: _SHOWN - 3] + "..."


def _walk(path: str, recorded: Any, asked: Any, out: list[tuple[str, Any, Any]]) -> None:
    if isinstance(recorded, dict) and isinstance(asked, dict):
        for k in sorted(set(recorded) | set(asked)):
            _walk(f"{path}.{k}" if path else k, recorded.get(k), asked.get(k), out)
    elif isinstance(recorded, list) and isinstance(asked, list):
        for i in range(max(len(recorded), len(asked))):
            r = recorded[i] if i < len(recorded) else None
            a = asked[i] if i < len(asked) else None
            _walk(f"{path}[{i}]", r, a, out)
    elif recorded != asked:
        out.append((path, recorded, asked))


def request_differences(recorded: dict[str, Any], asked: dict[str, Any]) -> list[str]:
    """Each field where two canonical requests differ, as ``"path: recorded X, this request
    Y"`` (``(unset)`` for a field only one of them has), in field order."""
    found: list[tuple[str, Any, Any]] = []
    _walk("", recorded, asked, found)
    lines = []
    for path, r, a in found:
        shown_r = "(unset)" if r is None else _show(r)
        shown_a = "(unset)" if a is None else _show(a)
        lines.append(f"{path}: recorded {shown_r}, this request {shown_a}")
    return lines


def difference_count(recorded: dict[str, Any], asked: dict[str, Any]) -> int:
    """How many leaf fields differ (what "nearest" means)."""
    found: list[tuple[str, Any, Any]] = []
    _walk("", recorded, asked, found)
    return len(found)
