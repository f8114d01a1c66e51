"""The llmgine tools the MCP tests serve (from a subprocess or in-process) and compare with
what comes back through an MCP client."""

from __future__ import annotations

from typing import Literal

from llmgine.tools._manager import ToolManager


def add(a: int, b: int) -> int:
    """Add two integers.

    Args:
        a: The first.
        b: The second.
    """
    return a + b


async def greet(name: str, style: Literal["plain", "loud"] = "plain") -> str:
    """Greet someone by name.

    Args:
        name: Who to greet.
        style: How.
    """
    text = f"Hello, {name}!"
    return text.upper() if style == "loud" else text


def split_words(text: str) -> list[str]:
    """The words of a text."""
    return text.split()


def summary(numbers: list[float]) -> dict[str, float]:
    """The count and sum of some numbers."""
    return {"count": len(numbers), "sum": sum(numbers)}


def divide(a: float, b: float) -> float:
    """Divide a by b."""
    if b == 0:
        raise ValueError("cannot divide by zero")
    return a / b


def build_manager() -> ToolManager:
    """A fresh manager holding the tools above."""
    return ToolManager([add, greet, split_words, summary, divide], timeout=10)
