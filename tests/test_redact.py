"""The redacting log filter on llmgine's loggers."""

from __future__ import annotations

import logging

import pytest

from llmgine._redact import (
    _KEY_WORDS,
    _TRIGGER_SCAN,
    _TRIGGERS,
    _WORD_SCAN,
    REDACTED,
    Redactor,
    add_credential,
    redact_text,
    redacting_logger,
)

KEY = "sk-proj-" + "Zz9Yy8Xx7Ww6Vv5Uu4Tt3Ss2"


def test_llmgine_loggers_redact_messages_arguments_and_tracebacks(
    caplog: pytest.LogCaptureFixture,
) -> None:
    log = redacting_logger("llmgine.test")
    assert redacting_logger("llmgine.test") is log
    assert len(log.filters) == 1  # attached once
    try:
        raise PermissionError(f"401 for {KEY}")
    except PermissionError as exc:
        with caplog.at_level(logging.ERROR, logger="llmgine.test"):
            log.error("call failed: %s (%d tries)", exc, 3, exc_info=exc)
    assert KEY not in caplog.text
    assert f"call failed: 401 for {REDACTED} (3 tries)" in caplog.text
    assert "PermissionError" in caplog.text  # the traceback is kept, redacted


def test_strings_remembered_as_clean_are_checked_again_once_a_secret_is_added() -> None:
    redactor = Redactor(from_env=False)
    secret = "team-passphrase-42"
    text = f"deploy with {secret}"
    assert redactor.is_clean("chat gpt-4o-mini", text)  # remembered as clean
    assert redactor.is_clean(text)
    redactor.add_secret(secret)
    assert not redactor.is_clean(text)
    assert not redactor.is_clean("fine", f"key sk-{'a' * 20}")  # a key shape is never clean
    long_text = "x" * 10_000  # too long to remember, still checked
    assert redactor.is_clean(long_text)
    assert long_text not in redactor._clean


def test_a_handed_credential_is_known_to_redactors_made_before_it() -> None:
    earlier = Redactor(from_env=False)
    token = "opaque-7c1e-handed-token"
    assert earlier.is_clean(f"echo {token}")  # remembered as clean: must be checked again
    assert add_credential(token)
    assert earlier.text(f"echo {token}") == f"echo {REDACTED}"
    assert Redactor(from_env=False).text(token) == REDACTED


def test_headers_env_and_urls_handed_to_mcp_and_stores_are_redacted() -> None:
    from llmgine.context import SQLContextStore
    from llmgine.tools import McpServer

    bearer, api_key, env_token = "mcp-bearer-9f2a71", "mcp-xkey-11b3c8", "child-env-4d77e0"
    McpServer.http(
        "http://user:url-pass-5e81@127.0.0.1:9/mcp",
        headers={"Authorization": f"Bearer {bearer}", "x-api-key": api_key, "Accept": "json"},
    )
    McpServer.stdio("true", env={"SERVICE_TOKEN": env_token, "LANG": "C.UTF-8"})
    SQLContextStore("postgresql://llm:db-pass-72c4e1@127.0.0.1:9/test")
    for secret in (bearer, api_key, env_token, "url-pass-5e81", "db-pass-72c4e1"):
        assert redact_text(f"seen {secret} here") == f"seen {REDACTED} here", secret
    assert redact_text("C.UTF-8 json") == "C.UTF-8 json"  # not credentials: left alone


def test_a_credential_too_short_to_redact_is_refused_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="llmgine"):
        assert not add_credential("abc12")
    assert "cannot be redacted" in caplog.text
    assert not add_credential("   ")


SHAPELESS = "zq7Wm3PvRt9Lx4Nc"  # a known secret with none of the pre-scan's words in it
QUOTED = 'qz"7Wm3\\PvRt9L'  # one that JSON escapes


@pytest.mark.parametrize(
    ("document", "hidden"),
    [
        (f'{{"note": "{SHAPELESS}"}}', SHAPELESS),  # only a known value: no word to find
        ('{"note": "qz\\"7Wm3\\\\PvRt9L"}', QUOTED),  # the same, as JSON escapes it
        ('{"COOKIE": "zz-plain-value"}', "zz-plain-value"),  # a sensitive key, upper case
        ('{"\u212aey": 1, "api_\u212aey": "zz-plain-value"}', "zz-plain-value"),  # Kelvin K
        (f'{{"n": "{KEY}"}}', KEY),  # a key's shape
    ],
)
def test_json_pre_scan_lets_nothing_secret_through(document: str, hidden: str) -> None:
    redactor = Redactor([SHAPELESS, QUOTED], from_env=False)
    out = redactor.json(document)
    assert hidden not in out
    assert REDACTED in out


def test_json_with_nothing_secret_shaped_comes_back_as_it_is() -> None:
    redactor = Redactor([SHAPELESS], from_env=False)
    document = '{"type": "app.Echo", "data": {"id": "3f2a", "n": 5, "note": "zq7Wm3"}}'
    assert redactor.json(document) is document


def test_the_pre_scans_find_every_word_they_stand_for() -> None:
    for word in _TRIGGERS:
        assert _TRIGGER_SCAN.search(word), word
    for word in (*_TRIGGERS, *_KEY_WORDS):
        assert _WORD_SCAN.search(word), word


@pytest.mark.parametrize(
    "text",
    [
        "Authorization: Bearer abcdefghijklmnopqrstuvwxyz123456",
        "curl -H 'authorization: bearer Zm9vYmFyYmF6cXV4MTIzNDU2' https://api",
        'api_key="sk-abcdefghijklmnopqrstuvwx" and token=abcdefgh12345',
        "Bearer abcdefghijklmnop",
    ],
)
def test_redacting_redacted_text_changes_nothing(text: str) -> None:
    once = redact_text(text)
    assert REDACTED in once
    assert redact_text(once) == once  # text logged after being redacted once stays readable
