"""Which `Observability` is enabled now (``None`` when off): read by the span helpers."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from llmgine.observability._setup import Observability

current: Observability | None = None
