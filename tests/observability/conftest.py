"""Observability tests: each gets a fresh bus and leaves observability switched off."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from llmgine import observability
from llmgine.observability import semconv


@pytest.fixture(autouse=True)
def _observability_off(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    # The machine's environment must not switch capture or OTLP export on behind a test.
    for name in (
        semconv.CAPTURE_CONTENT_ENV,
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    ):
        monkeypatch.delenv(name, raising=False)
    observability.disable()
    yield
    observability.disable()
