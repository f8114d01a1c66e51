"""Drift: a recorded call run again live, and what changed in its answer.

`Recorded` in ``mode="compare"`` sends every call to the live model and compares the
answer with the recording of the same request (never replacing it). Each comparison is a
`Drift` kept in a `DriftReport`: the recorded and the live answer's text, tool calls
(name and arguments; call ids are left out, they differ on every run), usage (input and
output tokens) and finish reason, whether each changed, and a ``status``: ``"same"``,
``"changed"`` or ``"new"`` (nothing recorded for that request).

A drift shows itself as a unified or side-by-side diff (`Drift.diff`), and in a notebook
as a side-by-side HTML table; the report as a summary table (`DriftReport.summary` is a
pandas DataFrame) followed by the diff of each changed call. Everything shown in HTML or
Markdown is escaped: an answer is data, never markup.
"""

from __future__ import annotations

import difflib
import html
import json
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from llmgine._extras import require
from llmgine.llm import LLMRequest, LLMResponse

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["Drift", "DriftAnswer", "DriftReport", "DriftStatus", "request_label"]

DriftStatus = Literal["same", "changed", "new"]
SUMMARY_COLUMNS = (
    "label",
    "status",
    "text_changed",
    "tools_changed",
    "usage_changed",
    "input_tokens_delta",
    "output_tokens_delta",
    "finish_changed",
)
_LABEL_WIDTH = 60
_WRAP = 60  # characters of a line in a side-by-side column
_STYLE = (
    "<style>"
    ".llmgine-drift table.diff{border-collapse:collapse;font-family:monospace;font-size:12px}"
    ".llmgine-drift table.diff td{padding:0 4px;vertical-align:top;text-align:left}"
    ".llmgine-drift .diff_next{display:none}"
    ".llmgine-drift table.summary{border-collapse:collapse}"
    ".llmgine-drift table.summary th,.llmgine-drift table.summary td"
    "{padding:2px 8px;text-align:left;border-bottom:1px solid #ddd}"
    ".llmgine-drift tr.changed td{background:#fff2a8}"
    ".llmgine-drift td.diff_header{color:#888}"
    ".llmgine-drift .diff_add{background:#d4f8d4}"
    ".llmgine-drift .diff_chg{background:#fff2a8}"
    ".llmgine-drift .diff_sub{background:#ffd6d6}"
    "</style>"
)


def request_label(request: LLMRequest, width: int = _LABEL_WIDTH) -> str:
    """A short name for a request: its last user message's text, on one line, cut to
    ``width`` characters (``"(after tools) ..."`` when tool results followed it)."""
    after_tools = bool(request.messages) and request.messages[-1].role == "tool"
    text = next((m.text for m in reversed(request.messages) if m.role == "user"), "")
    text = " ".join(text.split()) or "(no user text)"
    if after_tools:
        text = f"(after tools) {text}"
    return text if len(text) <= width else text[: width - 1] + "…"


def _arguments(call: Any) -> str:
    if call.invalid_arguments is not None:
        return str(call.invalid_arguments)
    return json.dumps(call.arguments, sort_keys=True, ensure_ascii=False)


@dataclass(frozen=True)
class DriftAnswer:
    """What is compared of one answer (recorded or live). ``tool_calls`` are ``(name,
    arguments as JSON with sorted keys)``; ``response`` is the whole `LLMResponse`."""

    text: str
    tool_calls: tuple[tuple[str, str], ...]
    input_tokens: int | None
    output_tokens: int | None
    finish_reason: str
    cost_usd: float | None
    response: LLMResponse = field(repr=False, compare=False)

    @classmethod
    def of(cls, response: LLMResponse) -> DriftAnswer:
        return cls(
            text=response.text,
            tool_calls=tuple((c.name, _arguments(c)) for c in response.tool_calls),
            input_tokens=response.usage.input_tokens,
            output_tokens=response.usage.output_tokens,
            finish_reason=response.finish_reason,
            cost_usd=response.cost_usd,
            response=response,
        )

    def lines(self) -> list[str]:
        """The text's lines, then one line per tool call: what the diffs compare."""
        lines = self.text.splitlines() if self.text else []
        lines += [f"→ tool call {name} {arguments}" for name, arguments in self.tool_calls]
        return lines


def _delta(recorded: int | None, live: int | None) -> int | None:
    return None if recorded is None or live is None else live - recorded


def _tokens(recorded: int | None, live: int | None) -> str:
    delta = _delta(recorded, live)
    shown = f"{recorded if recorded is not None else '?'} → {live if live is not None else '?'}"
    return shown if not delta else f"{shown} ({delta:+d})"


@dataclass(frozen=True)
class Drift:
    """One call compared: the request's ``key`` and ``label``, the ``model``
    (``"provider:name"``), the ``recorded`` answer (None: nothing was recorded) and the
    ``live`` one, and whether the call streamed."""

    key: str
    label: str
    model: str
    recorded: DriftAnswer | None
    live: DriftAnswer
    streamed: bool = False

    @property
    def text_changed(self) -> bool:
        return self.recorded is not None and self.recorded.text != self.live.text

    @property
    def tools_changed(self) -> bool:
        return self.recorded is not None and self.recorded.tool_calls != self.live.tool_calls

    @property
    def usage_changed(self) -> bool:
        r, live = self.recorded, self.live
        return r is not None and (r.input_tokens, r.output_tokens) != (
            live.input_tokens,
            live.output_tokens,
        )

    @property
    def finish_changed(self) -> bool:
        return self.recorded is not None and self.recorded.finish_reason != self.live.finish_reason

    @property
    def input_tokens_delta(self) -> int | None:
        """Live minus recorded input tokens (None: nothing recorded, or a count unknown)."""
        r = self.recorded
        return None if r is None else _delta(r.input_tokens, self.live.input_tokens)

    @property
    def output_tokens_delta(self) -> int | None:
        r = self.recorded
        return None if r is None else _delta(r.output_tokens, self.live.output_tokens)

    @property
    def status(self) -> DriftStatus:
        if self.recorded is None:
            return "new"
        aspects = (self.text_changed, self.tools_changed, self.usage_changed)
        return "changed" if any(aspects) or self.finish_changed else "same"

    @property
    def changed(self) -> bool:
        return self.status == "changed"

    def row(self) -> dict[str, Any]:
        """One row of the summary table."""
        return {name: getattr(self, name) for name in SUMMARY_COLUMNS}

    def _heading(self) -> str:
        streamed = ", streamed" if self.streamed else ""
        return f"{self.status}: {self.label} ({self.model}, key {self.key[:12]}{streamed})"

    def _facts(self) -> list[str]:
        r, live = self.recorded, self.live
        if r is None:
            return [
                f"usage: input {live.input_tokens}, output {live.output_tokens}; "
                f"finish: {live.finish_reason}"
            ]
        finish = (
            r.finish_reason
            if not self.finish_changed
            else (f"{r.finish_reason} → {live.finish_reason}")
        )
        return [
            f"usage: input {_tokens(r.input_tokens, live.input_tokens)}, "
            f"output {_tokens(r.output_tokens, live.output_tokens)}",
            f"finish: {finish}",
        ]

    def diff(self, style: Literal["unified", "side-by-side"] = "unified") -> str:
        """The recorded and the live answer's text and tool calls as a diff (``"unified"``,
        or ``"side-by-side"`` in two columns), under a heading, with usage and finish."""
        out = [self._heading()]
        if self.recorded is None:
            out.append("no recording of this request; the live answer:")
            out += [f"  {line}" for line in self.live.lines()]
        elif not (self.text_changed or self.tools_changed):
            out.append("text and tool calls: unchanged")
        elif style == "side-by-side":
            out += _side_by_side(self.recorded.lines(), self.live.lines())
        elif style == "unified":
            out += difflib.unified_diff(
                self.recorded.lines(), self.live.lines(), "recorded", "live", lineterm=""
            )
        else:
            raise ValueError(f"style is {style!r}; it is 'unified' or 'side-by-side'")
        return "\n".join(out + self._facts())

    def __str__(self) -> str:
        return self.diff()

    def _html_body(self) -> str:
        heading = f"<p><b>{html.escape(self._heading())}</b></p>"
        live = self.live.lines()
        recorded = ["(no recording)"] if self.recorded is None else self.recorded.lines()
        table = difflib.HtmlDiff(wrapcolumn=_WRAP).make_table(
            recorded, live, "recorded", "live"
        )  # HtmlDiff escapes &, < and > in the lines
        facts = "".join(f"<div>{html.escape(line)}</div>" for line in self._facts())
        return heading + table + facts

    def _repr_html_(self) -> str:
        return f"{_STYLE}<div class='llmgine-drift'>{self._html_body()}</div>"

    def _repr_markdown_(self) -> str:
        return f"**{_markdown(self._heading())}**\n\n{_fenced(self.diff())}"


def _side_by_side(left: list[str], right: list[str], width: int = _WRAP) -> list[str]:
    """Two columns, as ``sdiff`` shows them: `` `` same, ``|`` changed, ``<`` only
    recorded, ``>`` only live; long lines wrap within their column."""
    rows = [f"{'recorded':<{width}}   live"]
    matcher = difflib.SequenceMatcher(a=left, b=right, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        mark = {"equal": " ", "replace": "|", "delete": "<", "insert": ">"}[tag]
        for k in range(max(i2 - i1, j2 - j1)):
            a = left[i1 + k] if i1 + k < i2 else ""
            b = right[j1 + k] if j1 + k < j2 else ""
            a_parts, b_parts = _wrapped(a, width), _wrapped(b, width)
            for n in range(max(len(a_parts), len(b_parts))):
                pa = a_parts[n] if n < len(a_parts) else ""
                pb = b_parts[n] if n < len(b_parts) else ""
                rows.append(f"{pa:<{width}} {mark if n == 0 else ' '} {pb}".rstrip())
    return rows


def _wrapped(line: str, width: int) -> list[str]:
    """``line`` cut into pieces of at most ``width`` characters, at spaces where it can
    be (indentation kept)."""
    pieces = textwrap.wrap(line, width, replace_whitespace=False, break_on_hyphens=False)
    return [piece.rstrip() for piece in pieces] or [""]


def _markdown(text: str) -> str:
    """``text`` safe inside Markdown: HTML escaped, table pipes and emphasis quoted."""
    text = html.escape(" ".join(text.split()))
    for char in "\\`*_[]|#":
        text = text.replace(char, "\\" + char)
    return text


def _fenced(text: str) -> str:
    """``text`` in a code fence longer than any run of backticks in it."""
    longest, run = 0, 0
    for char in text:
        run = run + 1 if char == "`" else 0
        longest = max(longest, run)
    fence = "`" * max(3, longest + 1)
    return f"{fence}diff\n{text}\n{fence}"


class DriftReport:
    """The comparisons `Recorded` made in ``mode="compare"``, in the order they ended.

    ``records`` holds every `Drift`; ``changed``, ``new`` and ``same`` those of each
    status. ``summary()`` is a pandas DataFrame with one row per call (``label``,
    ``status``, ``text_changed``, ``tools_changed``, ``usage_changed``,
    ``input_tokens_delta``, ``output_tokens_delta``, ``finish_changed``). In a notebook the
    report shows the summary table, then a side-by-side diff of each changed call.

    Example:
        model = get_model("openai:gpt-4o-mini", recording="answers.jsonl",
                          recording_mode="compare")
        ...  # run the notebook's calls
        report = model.find(Recorded).drift
        report              # the summary table and the diffs
        assert not report.changed
    """

    def __init__(self) -> None:
        self.records: list[Drift] = []

    def add(self, drift: Drift) -> None:
        self.records.append(drift)

    def clear(self) -> None:
        self.records.clear()

    def __len__(self) -> int:
        return len(self.records)

    def __iter__(self) -> Iterator[Drift]:
        return iter(list(self.records))

    def __getitem__(self, index: int) -> Drift:
        return self.records[index]

    def _of(self, status: DriftStatus) -> list[Drift]:
        return [d for d in self.records if d.status == status]

    @property
    def changed(self) -> list[Drift]:
        """The calls whose answer changed."""
        return self._of("changed")

    @property
    def new(self) -> list[Drift]:
        """The calls with no recording to compare with."""
        return self._of("new")

    @property
    def same(self) -> list[Drift]:
        return self._of("same")

    def rows(self) -> list[dict[str, Any]]:
        """The summary table's rows as dicts (no pandas needed)."""
        return [d.row() for d in self.records]

    def summary(self) -> pd.DataFrame:
        """One row per call: label, status and what changed (needs pandas, which comes
        with the ``observability`` extra)."""
        require("observability", "DriftReport.summary()")
        import pandas as pd

        frame = pd.DataFrame(self.rows(), columns=list(SUMMARY_COLUMNS))
        for column in ("input_tokens_delta", "output_tokens_delta"):
            frame[column] = frame[column].astype("Int64")
        return frame

    def counts(self) -> dict[str, int]:
        """How many calls of each status."""
        return {status: len(self._of(status)) for status in ("same", "changed", "new")}

    def _line(self) -> str:
        counts = self.counts()
        return (
            f"{len(self.records)} call(s) compared: {counts['same']} same, "
            f"{counts['changed']} changed, {counts['new']} new"
        )

    def __repr__(self) -> str:
        return f"<DriftReport: {self._line()}>"

    def __str__(self) -> str:
        rows = [[str(v) if v is not None else "" for v in r.values()] for r in self.rows()]
        table = [list(SUMMARY_COLUMNS), *rows]
        widths = [max(len(row[i]) for row in table) for i in range(len(SUMMARY_COLUMNS))]
        lines = [
            "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
            for row in table
        ]
        diffs = [d.diff() for d in self.changed]
        return "\n\n".join([self._line(), "\n".join(lines), *diffs])

    def _repr_html_(self) -> str:
        head = "".join(f"<th>{html.escape(c)}</th>" for c in SUMMARY_COLUMNS)
        body = "".join(
            f"<tr class='{r['status']}'>"
            + "".join(f"<td>{html.escape('' if v is None else str(v))}</td>" for v in r.values())
            + "</tr>"
            for r in self.rows()
        )
        changed = "".join(f"<hr>{d._html_body()}" for d in self.changed)
        return (
            f"{_STYLE}<div class='llmgine-drift'><p>{html.escape(self._line())}</p>"
            f"<table class='summary'><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
            f"{changed}</div>"
        )

    def _repr_markdown_(self) -> str:
        head = "| " + " | ".join(SUMMARY_COLUMNS) + " |"
        rule = "|" + "---|" * len(SUMMARY_COLUMNS)
        rows = [
            "| " + " | ".join(_markdown("" if v is None else str(v)) for v in r.values()) + " |"
            for r in self.rows()
        ]
        diffs = [_fenced(d.diff()) for d in self.changed]
        return "\n\n".join([_markdown(self._line()), "\n".join([head, rule, *rows]), *diffs])
