"""Which `Observability` is enabled now (``None`` when off): read by `current()` and the
module-level span helpers (for code of yours). The LLM layer and the tools never read it:
they are handed a tracer (see `llmgine._tracing`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from llmgine.observability._setup import Observability

current: Observability | None = None
