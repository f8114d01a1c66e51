"""`RateLimit`: what a provider said is left of the caller's rate limits, with an answer.

Providers tell every successful answer how much of the caller's request and token budgets
is left, in headers: a caller that reads them can slow down *before* it is refused with a
429 (`llmgine.sweep` does). `rate_limit_from_headers` reads them into one neutral shape:

* OpenAI (and servers that copy its headers): ``x-ratelimit-{limit,remaining,reset}-
  {requests,tokens}``; a reset is a duration, ``"1s"``, ``"6m0s"``, ``"20ms"``.
* Anthropic: ``anthropic-ratelimit-{requests,tokens,input-tokens,output-tokens}-
  {limit,remaining,reset}``; a reset is an RFC 3339 time, ``"2026-04-05T14:28:37Z"``, on
  the server's clock, so it is measured from the answer's own ``date`` header when it has
  one (a local clock a few seconds off would otherwise move it). Of its token budgets the
  tightest is kept (the smallest share left; on a tie the combined ``tokens`` one): any of
  them running out refuses the next call.
* Gemini sends none (its quota shows only as a 429 with ``RetryInfo``); neither do local
  OpenAI-compatible servers. Their answers have ``rate_limit=None``.

Only headers of those names (and ``date``) are ever read, never ``authorization``,
cookies or ids, and only their numbers are kept. A value that does not parse is left out
(None), never an error: a call never fails over its rate-limit headers.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from llmgine.bus import Payload

__all__ = ["RateLimit", "duration_seconds", "rate_limit_from_headers"]


class RateLimit(Payload):
    """The caller's rate limits as a provider reported them with one answer.

    ``*_remaining`` is what is left of the request or token budget, ``*_limit`` its size,
    ``*_reset_s`` the seconds (from when the answer arrived) until it is whole again. A
    value the provider did not send is None.
    """

    requests_limit: int | None = None
    requests_remaining: int | None = None
    requests_reset_s: float | None = None
    tokens_limit: int | None = None
    tokens_remaining: int | None = None
    tokens_reset_s: float | None = None


@dataclass(frozen=True, slots=True)
class _Budget:
    limit: int | None
    remaining: int | None
    reset_s: float | None

    def share_left(self) -> float:
        """What fraction is left (1 when unknown): how the tightest budget is chosen."""
        if self.remaining is None:
            return 1.0
        if self.limit:
            return self.remaining / self.limit
        return 1.0 if self.remaining > 0 else 0.0


_NO_BUDGET = _Budget(None, None, None)


# Each budget as its (limit, remaining, reset) header names, tightest chosen per kind.
_REQUESTS = (
    ("x-ratelimit-limit-requests", "x-ratelimit-remaining-requests", "x-ratelimit-reset-requests"),
    (
        "anthropic-ratelimit-requests-limit",
        "anthropic-ratelimit-requests-remaining",
        "anthropic-ratelimit-requests-reset",
    ),
)
_TOKENS = (
    ("x-ratelimit-limit-tokens", "x-ratelimit-remaining-tokens", "x-ratelimit-reset-tokens"),
    *(
        (
            f"anthropic-ratelimit-{kind}-limit",
            f"anthropic-ratelimit-{kind}-remaining",
            f"anthropic-ratelimit-{kind}-reset",
        )
        for kind in ("tokens", "input-tokens", "output-tokens")
    ),
)
_PREFIXES = ("x-ratelimit-", "anthropic-ratelimit-")

_UNIT_SECONDS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ms|us|µs|ns|h|m|s)")
_DURATION = re.compile(rf"(?:{_DURATION_PART.pattern})+")


def duration_seconds(text: str) -> float | None:
    """A Go-style duration (``"6m0s"``, ``"20ms"``, ``"1h2m3.5s"``) or a plain number of
    seconds, in seconds; None if it is neither."""
    text = text.strip()
    try:
        seconds = float(text)
    except ValueError:
        if not _DURATION.fullmatch(text):
            return None
        seconds = sum(float(n) * _UNIT_SECONDS[unit] for n, unit in _DURATION_PART.findall(text))
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


def _reset_seconds(text: str, now: datetime) -> float | None:
    """A reset as seconds from ``now``: a duration (OpenAI) or a time (Anthropic); a time
    already past is 0."""
    seconds = duration_seconds(text)
    if seconds is not None:
        return seconds
    try:
        when = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return max(0.0, (_utc(when) - now).total_seconds())


def _utc(when: datetime) -> datetime:
    """``when`` with its offset; one without (RFC 3339 always has one; an HTTP date of
    ``-0000`` parses without) is taken as UTC, so the two can be subtracted."""
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def _sent_at(headers: Mapping[str, str]) -> datetime | None:
    """The answer's ``date`` header (an HTTP date, always UTC), or None."""
    text = next((v for k, v in headers.items() if k.lower() == "date"), None)
    try:
        return _utc(parsedate_to_datetime(text)) if text else None
    except (TypeError, ValueError):
        return None


def _count(text: str | None) -> int | None:
    if text is None:
        return None
    try:
        value = int(text.strip())
    except ValueError:
        return None
    return value if value >= 0 else None


def _tightest(
    headers: Mapping[str, str], names: Iterable[tuple[str, str, str]], now: datetime
) -> _Budget | None:
    budgets = []
    for limit, remaining, reset in names:
        reset_text = headers.get(reset)
        budget = _Budget(
            limit=_count(headers.get(limit)),
            remaining=_count(headers.get(remaining)),
            reset_s=None if reset_text is None else _reset_seconds(reset_text, now),
        )
        if budget != _NO_BUDGET:
            budgets.append(budget)
    known = [b for b in budgets if b.remaining is not None]
    if known:
        return min(known, key=_Budget.share_left)  # the first of equals: the combined one
    return budgets[0] if budgets else None


def rate_limit_from_headers(
    headers: Mapping[str, str], *, now: datetime | None = None
) -> RateLimit | None:
    """The `RateLimit` an answer's ``headers`` report (OpenAI's or Anthropic's; names in
    any case), or None when they report none. ``now`` is when the answer was sent
    (default: its ``date`` header, else the current time): Anthropic's resets are times,
    turned into seconds from it."""
    ours = {k.lower(): v for k, v in headers.items() if k.lower().startswith(_PREFIXES)}
    if not ours:
        return None
    now = _utc(now or _sent_at(headers) or datetime.now(UTC))
    requests = _tightest(ours, _REQUESTS, now)
    tokens = _tightest(ours, _TOKENS, now)
    if requests is None and tokens is None:
        return None
    requests, tokens = requests or _NO_BUDGET, tokens or _NO_BUDGET
    return RateLimit(
        requests_limit=requests.limit,
        requests_remaining=requests.remaining,
        requests_reset_s=requests.reset_s,
        tokens_limit=tokens.limit,
        tokens_remaining=tokens.remaining,
        tokens_reset_s=tokens.reset_s,
    )
