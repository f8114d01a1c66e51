"""The redacting log filter on llmgine's loggers."""

from __future__ import annotations

import logging

import pytest

from llmgine._redact import REDACTED, Redactor, redacting_logger

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
