"""Redaction: API keys and other secrets never reach a span, an event row, a log or export.

Two nets, applied to text: the exact values of secrets llmgine knows (environment variables
whose names look like credentials, anything passed to `add_secret`, and every credential
llmgine is handed, such as ``api_key=``, which `add_credential` makes known to every
`Redactor` the moment it is handed over, whatever its shape), and patterns that
match the shapes of common keys (OpenAI/Anthropic ``sk-...``, Google ``AIza...``, bearer
tokens, ``api_key=...`` and ``"x-api-key": "..."`` pairs). Mappings are redacted by key too:
the value under a key such as ``authorization`` or ``api_key`` is replaced whatever it is.

A cheap substring pre-check skips the regular expressions for text that cannot match, so
redacting ordinary text costs a few C-level scans.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = [
    "REDACTED",
    "RedactingFilter",
    "Redactor",
    "add_credential",
    "add_credentials_in",
    "add_secret",
    "default_redactor",
    "redact",
    "redact_text",
    "redacting_logger",
]

REDACTED = "[REDACTED]"

_SECRET_ENV = re.compile(r"(API_?KEY|TOKEN|SECRET|PASSWORD|CREDENTIALS?)$", re.IGNORECASE)
_SENSITIVE_KEY = re.compile(
    r"^(x-)?(api[-_]?key|authorization|proxy-authorization|x-goog-api-key|password|passwd|"
    r"secret|client[-_]secret|access[-_]token|refresh[-_]token|token|cookie|set-cookie)$",
    re.IGNORECASE,
)
_PATTERNS = re.compile(
    "|".join(
        [
            r"sk-[A-Za-z0-9_\-]{16,}",  # OpenAI, Anthropic (sk-ant-...), many compatibles
            r"AIza[0-9A-Za-z_\-]{30,}",  # Google API keys
            r"(?:gsk|xai|hf|ghp|gho|github_pat|glpat)[_-][A-Za-z0-9_\-]{16,}",
            # key=value, "key": "value" and "Authorization: Bearer x" forms: the key stays.
            r"(?P<key>(?i:(?<![A-Za-z])(?:x-)?(?:api[-_]?key|x-goog-api-key|authorization"
            r"|access[-_]token|client[-_]secret|password|secret|token)[\"']?\s*[:=]\s*[\"']?"
            # Not the word "bearer" itself: "Bearer [REDACTED]" stays as it is (idempotent).
            r"(?:bearer\s+)?))(?!\[REDACTED\])(?!(?i:bearer)\s)[^\s\"',;&}]{6,}",
            r"(?P<bearer>(?i:bearer)\s+)[A-Za-z0-9._~+/=\-]{8,}",
        ]
    )
)
# A JSON object key that `Redactor.value` redacts the value of, found in JSON text.
_SENSITIVE_JSON_KEY = re.compile(
    '"' + _SENSITIVE_KEY.pattern.removeprefix("^").removesuffix("$") + r'"\s*:', re.IGNORECASE
)
# Every key _SENSITIVE_KEY matches contains one of these (case-insensitively).
_KEY_WORDS = ("key", "auth", "pass", "secret", "token", "cookie")
# Every pattern above contains one of these (case-insensitively): if none is in the text,
# no pattern can match and the regular expression is skipped.
_TRIGGERS: tuple[str, ...] = ("sk-", "aiza", "gsk", "xai", "hf_", "hf-", "gh", "glpat")
_TRIGGERS += ("bearer", "key", "auth", "token", "secret", "password")
# One C-level scan of the lowered text instead of a Python loop over each word, written as
# a trie (a branch per first letter) so most positions cost one character test: about
# three times cheaper on a short message than the plain alternation. `_WORD_SCAN` also
# finds every `_KEY_WORDS` word ("pass" covers "password"); a test checks both cover
# their words.
_TRIGGER_SCAN = re.compile(
    r"a(?:iza|uth)|bearer|g(?:h|lpat|sk)|hf[-_]|key|password|s(?:ecret|k-)|token|xai"
)
_WORD_SCAN = re.compile(
    r"a(?:iza|uth)|bearer|cookie|g(?:h|lpat|sk)|hf[-_]|key|pass|s(?:ecret|k-)|token|xai"
)


# Credentials llmgine was handed (api_key=, an MCP server's headers, a database URL's
# password): every Redactor redacts these, including ones made before the credential
# arrived, so a custom redactor given to observability still hides a key passed later.
_handed: tuple[str, ...] = ()
_handed_version = 0
_handed_lock = threading.Lock()
MIN_CREDENTIAL_LENGTH = 6  # shorter values are ordinary words more often than keys


def add_credential(value: str) -> bool:
    """Make ``value``, a credential llmgine was handed, known to every `Redactor`.

    Returns whether it will be redacted: values under `MIN_CREDENTIAL_LENGTH` characters
    are not (they would blank out ordinary words), and a warning says so.
    """
    global _handed, _handed_version
    if not isinstance(value, str) or not value.strip():
        return False
    if len(value) < MIN_CREDENTIAL_LENGTH:
        logging.getLogger("llmgine").warning(
            "a credential of %d characters was handed to llmgine; values under %d characters "
            "cannot be redacted without blanking ordinary text, so this one may appear in "
            "spans, events and logs: use a longer key",
            len(value),
            MIN_CREDENTIAL_LENGTH,
        )
        return False
    with _handed_lock:
        if value not in _handed:
            _handed = (*_handed, value)
            _handed_version += 1
    return True


def add_credentials_in(values: Mapping[str, str]) -> None:
    """`add_credential` for each value of ``values`` (headers, a child process's
    environment) stored under a credential's name (``Authorization``, ``x-api-key``,
    ``*_TOKEN``, ...); the token of an ``Authorization: Bearer ...`` value too."""
    for name, value in values.items():
        if _SENSITIVE_KEY.match(name) or _SECRET_ENV.search(name):
            add_credential(value)
            scheme, _, token = value.partition(" ")
            if token and scheme.lower() in ("bearer", "basic", "token"):
                add_credential(token.strip())


_CLEAN_CACHE_SIZE = 4096
_CLEAN_CACHE_MAX_LENGTH = 256  # long texts (message content) rarely repeat: not worth keeping


def _replace(match: re.Match[str]) -> str:
    kept = match.group("key") or match.group("bearer") or ""
    return kept + REDACTED


class Redactor:
    """Replaces secrets in text and in nested values with ``[REDACTED]``; thread-safe."""

    def __init__(self, secrets: Iterable[str] = (), *, from_env: bool = True) -> None:
        self._lock = threading.Lock()
        self._own: tuple[str, ...] = ()  # add_secret's and the environment's
        self._secrets: tuple[str, ...] = ()  # those and the handed credentials
        self._in_json: tuple[str, ...] = ()  # the ones JSON escapes, as escaped
        self._known: tuple[str, ...] = ()  # both of the above
        self._version = -1
        # Strings already found to hold no secret. Span attributes repeat (model names,
        # operations, span names), so most checks become one set lookup. Cleared whenever
        # a secret is added, and when it grows past its bound.
        self._clean: set[str] = set()
        if from_env:
            self.add_env_secrets()
        for secret in secrets:
            self.add_secret(secret)

    def add_secret(self, value: str) -> None:
        """Redact this exact value from now on (values under 8 characters are refused:
        they would redact ordinary words)."""
        if not isinstance(value, str) or len(value) < 8:
            raise ValueError(
                "a secret to redact must be a string of at least 8 characters; shorter ones "
                "would blank out ordinary text"
            )
        with self._lock:
            if value not in self._own:
                self._own = (*self._own, value)
                self._version = -1  # rebuild the combined list on next use

    def _refresh(self) -> None:
        with self._lock:
            version = _handed_version
            # Longest first, so a secret that contains another is removed whole.
            self._secrets = tuple(sorted({*self._own, *_handed}, key=len, reverse=True))
            # How the secrets that JSON escapes (a quote, a backslash) look inside JSON.
            escaped = (json.dumps(s, ensure_ascii=False)[1:-1] for s in self._secrets)
            self._in_json = tuple(e for e in escaped if e not in self._secrets)
            self._known = self._secrets + self._in_json
            self._clean = set()
            self._version = version

    def add_env_secrets(self, environ: Mapping[str, str] | None = None) -> None:
        """Redact the values of environment variables named like credentials
        (``*_API_KEY``, ``*_TOKEN``, ``*_SECRET``, ``*_PASSWORD``)."""
        for name, value in (os.environ if environ is None else environ).items():
            if _SECRET_ENV.search(name) and len(value) >= 8:
                self.add_secret(value)

    def text(self, text: str) -> str:
        """``text`` with every secret replaced."""
        if self._version != _handed_version:
            self._refresh()
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, REDACTED)
        if _TRIGGER_SCAN.search(text.lower()) is not None:
            text = _PATTERNS.sub(_replace, text)
        return text

    def is_clean(self, *texts: str) -> bool:
        """True when none of ``texts`` holds anything to redact. Strings found clean are
        remembered, so repeated ones (span names, models) cost one set lookup."""
        if self._version != _handed_version:
            self._refresh()
        clean = self._clean
        for text in texts:
            if text in clean:
                continue
            if self.text(text) != text:
                return False
            if len(clean) >= _CLEAN_CACHE_SIZE:
                clean.clear()
            if len(text) <= _CLEAN_CACHE_MAX_LENGTH:
                clean.add(text)
        return True

    def json(self, text: str) -> str:
        """A JSON document with every secret replaced, by the rules of `value`: strings
        anywhere in it, and whatever is stored under a sensitive key. Text that holds no
        secret and no sensitive key comes back as it is, without being parsed."""
        if self._version != _handed_version:
            self._refresh()
        lowered = text.lower()
        if _WORD_SCAN.search(lowered) is None:
            # No pattern's trigger and no sensitive key's word: only a known secret's value
            # (as it is, or as JSON escapes it) could be in it. Most messages end here.
            for secret in self._known:
                if secret in text:
                    break
            else:
                return text
        keyed = any(w in lowered for w in _KEY_WORDS) and _SENSITIVE_JSON_KEY.search(text)
        escaped = any(secret in text for secret in self._in_json)
        if not keyed and not escaped and self.text(text) == text:
            return text
        return json.dumps(self.value(self._keys(json.loads(text))), ensure_ascii=False)

    def _keys(self, value: Any) -> Any:
        """``value`` with secrets replaced in its mappings' keys (a map keyed by API key)."""
        if isinstance(value, dict):
            return {
                self.text(k) if isinstance(k, str) else k: self._keys(v) for k, v in value.items()
            }
        if isinstance(value, list):
            return [self._keys(v) for v in value]
        return value

    def value(self, value: Any) -> Any:
        """A copy of ``value`` (str, mapping, list, tuple; others as they are) with secrets
        replaced, including every value stored under a sensitive key."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, Mapping):
            return {
                k: REDACTED
                if isinstance(k, str) and _SENSITIVE_KEY.match(k) and v
                else self.value(v)
                for k, v in value.items()
            }
        if isinstance(value, list | tuple):
            return type(value)(self.value(v) for v in value)
        return value


default_redactor = Redactor()


def redact(value: Any) -> Any:
    """Redact with the default redactor (see `Redactor.value`)."""
    return default_redactor.value(value)


def redact_text(text: str) -> str:
    """Redact one string with the default redactor."""
    return default_redactor.text(text)


def add_secret(value: str) -> None:
    """Teach the default redactor one more exact secret (e.g. a key passed in code)."""
    default_redactor.add_secret(value)


class RedactingFilter(logging.Filter):
    """A logging filter that redacts a record's message, arguments and traceback text.

    Attached to llmgine's own loggers, so an exception message carrying a key is logged
    with the key replaced, whatever handler the application configured.
    """

    def __init__(self, redactor: Redactor | None = None) -> None:
        super().__init__()
        self._redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        redactor = self._redactor or default_redactor
        # Format first, then redact the text: an argument's str() is where a key shows up.
        record.msg = redactor.text(record.getMessage())
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = redactor.text(_FORMATTER.formatException(record.exc_info))
        return True


_FORMATTER = logging.Formatter()


def redacting_logger(name: str) -> logging.Logger:
    """``logging.getLogger(name)`` with a `RedactingFilter` attached (once)."""
    logger = logging.getLogger(name)
    if not any(isinstance(f, RedactingFilter) for f in logger.filters):
        logger.addFilter(RedactingFilter())
    return logger
