"""pytest plugin (``-p tests.readme_support``): README blocks run as the scripts they are.

pytest-markdown-docs runs each ```python block of README.md in a fresh namespace named
``fence``, a module it does not register; pydantic needs the module of a class that
parametrises a generic (``Command[str]``) to be importable. A README block is a script, so
it runs as ``__main__``, exactly as ``python example.py`` would run it.
"""

from __future__ import annotations

from typing import Any


def pytest_markdown_docs_globals() -> dict[str, Any]:
    return {"__name__": "__main__"}
