"""Static HTML for the widgets (what a saved notebook shows on GitHub and in nbval) and the
front-end assets shipped in ``llmgine/notebook/static/``."""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from html import escape
from importlib import resources

__all__ = ["asset", "counts_line", "html_table"]


@functools.cache
def asset(name: str) -> str:
    """The text of a shipped front-end file (read from the package, never a CDN)."""
    return resources.files("llmgine.notebook").joinpath("static", name).read_text("utf-8")


def counts_line(counts: dict[str, int]) -> str:
    """``seen 1,234 · kept 500 · …`` from a dict of counts."""
    return " · ".join(f"{name} {value:,}" for name, value in counts.items())


def html_table(
    css_class: str,
    caption: str,
    columns: Sequence[str],
    rows: Iterable[tuple[str, Sequence[str]]],
    *,
    note: str = "",
) -> str:
    """A plain HTML table, every cell escaped; ``rows`` are (row class, cells)."""
    head = "".join(f"<th>{escape(c)}</th>" for c in columns)
    body = "".join(
        f'<tr class="{escape(row_class)}">'
        + "".join(f"<td>{escape(c)}</td>" for c in cells)
        + "</tr>"
        for row_class, cells in rows
    )
    footer = f"<p><small>{escape(note)}</small></p>" if note else ""
    return (
        f'<div class="{escape(css_class)}"><table>'
        f'<caption style="text-align:left">{escape(caption)}</caption>'
        f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>{footer}</div>"
    )
