"""`CompareView`: one prompt to several models at once, their answers side by side.

Each model's answer streams into its own column; below them a table of latency, time to
first token, tokens and cost per model, and a plotly bar chart of the timings. The calls
run concurrently (the slowest model sets the wall time).

A model that fails, however it fails (no key, an unknown provider, an error from the
provider, a timeout, an answer that cannot be read), fails *its column only*: the column
shows the error as the workbench shows errors (short, redacted, what to do next), the
table and the chart mark it failed, `run` returns the exception as that model's value,
and the other models answer as usual. A comparison is for seeing models side by side, and
one model's missing key says nothing about the others' answers.

Every call is a `Generate` command on a bus, in a session of its own (``session_id``, so
``%llmgine trace`` can show it): the view installs a session-scoped service for its
models, so it works on any bus (the magics pass theirs) or, without one, on a private bus
for the run.

A run comes apart into three public steps, because widgets are not thread-safe and the
calls may run on another thread's loop: `run_emitting` makes the calls and only *emits*
`ColumnUpdate`s, `apply_update` takes one into the view's state, and `refresh` shows that
state in the widgets. ``await view.run()`` does all three on the awaiting loop's thread;
the ``%%llmgine`` magic runs `run_emitting` on its loop thread and applies and refreshes
on the cell's thread.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import html
import logging
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import ipywidgets as widgets  # type: ignore[import-untyped]
import plotly.graph_objects as go  # type: ignore[import-untyped]

from llmgine.bus import MessageBus
from llmgine.llm import (
    ChatMessage,
    Generate,
    LLMRequest,
    LLMResponse,
    LLMStreamDelta,
    Model,
    Prompt,
    get_model,
)
from llmgine.notebook._static_image import figure_png, png_html
from llmgine.notebook.magics._bus import WorkbenchService
from llmgine.notebook.magics._display import answer_note, describe_error, replay_note

__all__ = ["ColumnUpdate", "CompareView"]

_log = logging.getLogger(__name__)

Status = Literal["waiting", "streaming", "done", "failed"]
_REQUEST_FIELDS = frozenset(LLMRequest.model_fields) - {"messages", "model", "stream"}


@dataclass(frozen=True)
class ColumnUpdate:
    """What the run emits: column ``index`` started, got text, answered or failed
    (``index`` -1 with ``kind="finished"``: the whole run ended after ``wall_ms``)."""

    index: int
    kind: Literal["started", "delta", "done", "failed", "finished"]
    text: str = ""
    response: LLMResponse | None = None
    error: BaseException | None = None
    wall_ms: float | None = None


@dataclass
class _Column:
    label: str
    entry: str | Model
    status: Status = "waiting"
    text: str = ""
    response: LLMResponse | None = None
    error: BaseException | None = None
    called: bool = False  # its model was asked (a column can fail before that)


def _labels(entries: Sequence[str | Model]) -> list[str]:
    labels: list[str] = []
    for entry in entries:
        base = entry if isinstance(entry, str) else entry.spec
        label, n = base, 1
        while label in labels:  # the same model twice (e.g. with other options)
            n += 1
            label = f"{base} ({n})"
        labels.append(label)
    return labels


def _seconds(ms: float | None) -> str:
    return "" if ms is None else f"{ms / 1000:.2f}"


class CompareView(widgets.VBox):  # type: ignore[misc]
    """One prompt, several models, side by side; each answer streams into its column.

    Args:
        models: ``"provider:model"`` specs and/or `Model` objects.
        prompt: a string or messages, sent to every model.
        bus: the bus to run the calls on (it must run on the loop that awaits `run`);
            by default a private bus for the run.
        refresh_interval: seconds between widget updates while answers stream.
        request_params: request fields for every call (temperature, max_tokens, ...).

    A model that fails shows its error in its column; `run` returns that exception as
    the model's value and never raises for a model's failure, even when every model
    fails (check the values). The bus session the calls run in is ``session_id``. To run
    the calls on another thread's loop, use `run_emitting` there and `apply_update` and
    `refresh` on the widgets' thread (see the module docstring).

    Example:
        view = CompareView(["demo:a", "openai:gpt-4o-mini"], "Explain RAFT in 3 lines.")
        display(view)
        results = await view.run()      # {"demo:a": LLMResponse, ...}, errors as values
    """

    def __init__(
        self,
        models: Sequence[str | Model],
        prompt: Prompt,
        *,
        bus: MessageBus | None = None,
        refresh_interval: float = 0.1,
        **request_params: Any,
    ) -> None:
        if not models:
            raise ValueError("CompareView needs at least one model, e.g. ['demo:a', 'demo:b']")
        unknown = set(request_params) - _REQUEST_FIELDS
        if unknown:
            raise TypeError(
                f"unknown request fields {sorted(unknown)}; valid ones are "
                f"{', '.join(sorted(_REQUEST_FIELDS))}"
            )
        if refresh_interval < 0:
            raise ValueError(f"refresh_interval cannot be negative, got {refresh_interval}")
        self.prompt = prompt
        self.bus = bus
        self.request_params = request_params
        self.refresh_interval = refresh_interval
        self.columns = [_Column(label, e) for label, e in zip(_labels(models), models, strict=True)]
        self.results: dict[str, LLMResponse | BaseException] = {}
        self.wall_ms: float | None = None
        self.session_id = uuid.uuid4().hex
        self._started = False
        self._header = widgets.HTML()
        self._titles = [widgets.HTML() for _ in self.columns]
        self._bodies = [widgets.HTML() for _ in self.columns]
        columns = [widgets.VBox([t, b]) for t, b in zip(self._titles, self._bodies, strict=True)]
        for column in columns:  # stable names for styling and browser tests
            column.add_class("llmgine-compare-column")
        grid = widgets.GridBox(
            columns,
            layout=widgets.Layout(
                grid_template_columns=f"repeat({len(self.columns)}, minmax(0, 1fr))",
                grid_gap="12px",
            ),
        )
        self._table = widgets.HTML()
        self._chart = go.FigureWidget(self.figure())
        self._charted: tuple[Any, ...] = ()
        self._png: tuple[tuple[Any, ...], bytes | None] | None = None
        super().__init__([self._header, grid, self._table, self._chart])
        self.add_class("llmgine-compare")
        self.refresh()

    # -- running -----------------------------------------------------------------------

    @property
    def called(self) -> bool:
        """Whether any model was asked (not every column failed before its call)."""
        return any(c.called for c in self.columns)

    def fail_column(self, index: int, error: BaseException) -> None:
        """Mark column ``index`` failed before the run, with ``error`` shown in it: for a
        model that could not even be made (the magics resolve names and specs themselves).
        The run leaves that column as it is and returns ``error`` as its value."""
        if self._started:
            raise RuntimeError("columns can only be failed before the view runs")
        self.apply_update(ColumnUpdate(index, "failed", error=error))

    async def run(self) -> dict[str, LLMResponse | BaseException]:
        """Ask every model at once; returns each model's response, or its exception."""
        last = 0.0

        def emit(update: ColumnUpdate) -> None:
            nonlocal last
            self.apply_update(update)
            now = time.monotonic()
            if now - last >= self.refresh_interval:
                self.refresh()
                last = now

        try:
            return await self.run_emitting(emit)
        finally:
            self.refresh()

    async def run_emitting(
        self, emit: Callable[[ColumnUpdate], None]
    ) -> dict[str, LLMResponse | BaseException]:
        """Ask every model at once, as `run` does, without touching the widgets: each change
        is passed to ``emit`` as a `ColumnUpdate` (from this loop's thread), for the caller
        to hand to `apply_update` and `refresh` on the thread that owns the widgets."""
        if self._started:
            raise RuntimeError("this CompareView has already run; make a new one to run again")
        self._started = True
        if not any(c.error is None for c in self.columns):  # all failed before their calls
            emit(ColumnUpdate(-1, "finished", wall_ms=0.0))
            return {c.label: c.error for c in self.columns if c.error is not None}
        bus = self.bus if self.bus is not None else MessageBus()
        made: list[Model] = []
        started = time.perf_counter()
        try:
            if self.bus is None:
                await bus.start()
            async with bus.session("compare", session_id=self.session_id) as session:
                service = WorkbenchService(
                    bus, session=session, delta_interval=min(0.05, self.refresh_interval)
                )
                service.install()
                calls: dict[str, int] = {}

                def on_delta(event: LLMStreamDelta) -> None:
                    index = calls.get(event.call_id)
                    if index is not None and event.text:
                        emit(ColumnUpdate(index, "delta", text=event.text))

                session.on_event(LLMStreamDelta, on_delta)

                async def ask(index: int, column: _Column) -> LLMResponse | BaseException:
                    if column.error is not None:  # failed before the run (fail_column)
                        return column.error
                    try:
                        if isinstance(column.entry, Model):
                            model = column.entry
                        else:
                            model = get_model(column.entry)
                            made.append(model)
                        request = model.request(self.prompt, **self.request_params)
                        key = service.register(model)
                        command = Generate(request=request, model=key, stream=True)
                        calls[command.id] = index
                        emit(ColumnUpdate(index, "started"))
                        response = (await session.execute(command)).unwrap()
                    except Exception as exc:  # shown in its column; the others carry on
                        emit(ColumnUpdate(index, "failed", error=exc))
                        return exc
                    emit(ColumnUpdate(index, "done", response=response))
                    return response

                outcomes = await asyncio.gather(
                    *(ask(i, column) for i, column in enumerate(self.columns))
                )
        finally:
            for model in made:
                try:
                    await model.aclose()
                except Exception as exc:  # its answer is in; the run must not lose it
                    _log.warning(
                        "after the comparison, closing %s failed: %s",
                        model.spec,
                        describe_error(exc),
                    )
            if self.bus is None:
                await bus.stop()
        wall_ms = (time.perf_counter() - started) * 1000
        emit(ColumnUpdate(-1, "finished", wall_ms=wall_ms))
        return {c.label: o for c, o in zip(self.columns, outcomes, strict=True)}

    def apply_update(self, update: ColumnUpdate) -> None:
        """Take one update from `run_emitting` into the view's state (shown at the next
        `refresh`). Call it on the thread that owns the widgets."""
        if update.kind == "finished":
            self.wall_ms = update.wall_ms
            return
        column = self.columns[update.index]
        if update.kind == "started":
            column.status, column.called = "streaming", True
        elif update.kind == "delta":
            # Deltas are events, delivered after the call's own result may have arrived:
            # a finished column already has the whole text, but a failed one keeps what
            # streamed before its error.
            if column.status == "streaming" or (column.status == "failed" and column.called):
                column.text += update.text
        elif update.kind == "done" and update.response is not None:
            column.status, column.response = "done", update.response
            column.text = update.response.text
            self.results[column.label] = update.response
        elif update.kind == "failed" and update.error is not None:
            column.status, column.error = "failed", update.error
            self.results[column.label] = update.error

    # -- showing -----------------------------------------------------------------------

    def refresh(self) -> None:
        """Show the current state in the widgets (on the thread that owns them)."""
        self._header.value = self._header_html()
        for column, title, body in zip(self.columns, self._titles, self._bodies, strict=True):
            title.value = _title_html(column)
            body.value = _body_html(column)
        self._table.value = self._table_html()
        charted = tuple((c.status, c.response and c.response.latency_ms) for c in self.columns)
        if charted != self._charted:
            self._charted = charted
            latency, first = self._timings()
            with self._chart.batch_update():
                self._chart.data[0].y = latency
                self._chart.data[1].y = first
                self._chart.layout.annotations = self._failed_marks()

    def _timings(self) -> tuple[list[float | None], list[float | None]]:
        def s(ms: float | None) -> float | None:
            return None if ms is None else ms / 1000

        responses = [c.response for c in self.columns]
        return (
            [s(r.latency_ms) if r else None for r in responses],
            [s(r.time_to_first_token_ms) if r else None for r in responses],
        )

    def _failed_marks(self) -> list[dict[str, Any]]:
        """A "failed" label where a failed model's bars would be: it has no timings, and
        an empty slot alone would read as "instant"."""
        return [
            {
                "x": c.label,
                "y": 0,
                "yref": "y",
                "text": f"failed: {type(c.error).__name__}",
                "showarrow": False,
                "yanchor": "bottom",
                "font": {"color": "#b00020", "size": 11},
            }
            for c in self.columns
            if c.status == "failed" and c.error is not None
        ]

    def figure(self) -> Any:
        """The timings as a plotly ``Figure``: latency and time to first token per model
        (a failed model is labelled failed, with no bars)."""
        labels = [c.label for c in self.columns]
        latency, first = self._timings()
        return go.Figure(
            data=[
                go.Bar(name="latency (s)", x=labels, y=latency),
                go.Bar(name="time to first token (s)", x=labels, y=first),
            ],
            layout=go.Layout(
                barmode="group",
                height=260,
                margin={"l": 40, "r": 10, "t": 30, "b": 40},
                title={"text": "Timings", "font": {"size": 13}},
                yaxis={"title": {"text": "seconds"}, "rangemode": "tozero"},
                annotations=self._failed_marks(),
            ),
        )

    def _rows(self) -> list[list[str]]:
        rows = []
        for c in self.columns:
            r = c.response
            rows.append(
                [
                    c.label,
                    _status(c),
                    _seconds(r.latency_ms) if r else "",
                    _seconds(r.time_to_first_token_ms) if r else "",
                    str(r.usage.input_tokens) if r else "",
                    str(r.usage.output_tokens) if r else "",
                    "" if r is None or r.cost_usd is None else f"${r.cost_usd:.4f}",
                ]
            )
        return rows

    _HEADINGS = ("model", "status", "latency (s)", "first token (s)", "in", "out", "cost")

    def _summary(self) -> str:
        done = sum(c.status in ("done", "failed") for c in self.columns)
        state = f"{done}/{len(self.columns)} answered"
        if self.wall_ms is not None:
            state = f"done in {self.wall_ms / 1000:.2f} s"
        failed = sum(c.status == "failed" for c in self.columns)
        if failed:
            state += f", {failed} failed"
        return f"{len(self.columns)} models, {state}"

    def _prompt_text(self) -> str:
        if isinstance(self.prompt, str):
            return self.prompt
        if isinstance(self.prompt, LLMRequest):
            return " ".join(m.text for m in self.prompt.messages if m.role == "user")
        messages = [self.prompt] if isinstance(self.prompt, ChatMessage) else self.prompt
        return " ".join(m.text for m in messages if m.role == "user")

    def _header_html(self) -> str:
        prompt = html.escape(_clip(self._prompt_text(), 300))
        return f"<b>Compare</b> · {html.escape(self._summary())}<br><i>{prompt}</i>"

    def _table_html(self) -> str:
        head = "".join(f"<th>{h}</th>" for h in self._HEADINGS)
        body = "".join(
            "<tr>" + "".join(f"<td>{html.escape(v)}</td>" for v in row) + "</tr>"
            for row in self._rows()
        )
        return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"

    # -- text representations, for saved notebooks (GitHub, nbval) ---------------------

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any]:
        # ipywidgets cuts text/plain to 110 characters; a saved notebook (and nbval) keeps
        # the whole comparison as text, and the HTML and markdown next to the live view.
        # Once the run has ended, the timings chart as a PNG too (image/png, and in the HTML,
        # which GitHub and nbviewer prefer), made once: see `llmgine.notebook.chart`.
        bundle: dict[str, Any] = super()._repr_mimebundle_(**kwargs) or {}
        bundle["text/plain"] = repr(self)
        png = self.png()
        if png is not None:
            bundle["image/png"] = base64.b64encode(png).decode("ascii")
        bundle["text/html"] = self._repr_html_()
        bundle["text/markdown"] = self._repr_markdown_()
        return bundle

    def png(self) -> bytes | None:
        """The timings chart as a PNG once the run has ended (None before, or where no image
        can be made), made once."""
        key = (self.wall_ms, *((c.label, c.status, c.response) for c in self.columns))
        if self.wall_ms is not None and (self._png is None or self._png[0] != key):
            self._png = (key, figure_png(self.figure()))
        return None if self._png is None or self.wall_ms is None else self._png[1]

    def __repr__(self) -> str:
        lines = [f"CompareView: {self._summary()}", f"prompt: {_clip(self._prompt_text(), 200)}"]
        for column in self.columns:
            facts: list[str] = [_status(column)]
            r = column.response
            if r is not None:
                facts.append(f"{_seconds(r.latency_ms)} s")
                if r.time_to_first_token_ms is not None:
                    facts.append(f"first token {_seconds(r.time_to_first_token_ms)} s")
                facts.append(f"{r.usage.input_tokens} in / {r.usage.output_tokens} out tokens")
                if r.cost_usd is not None:
                    facts.append(f"${r.cost_usd:.4f}")
                if (kind := _kind(r)) is not None:
                    facts.append(kind)
            lines += ["", f"== {column.label} ({', '.join(facts)})", _column_text(column)]
        return "\n".join(lines)

    def _repr_markdown_(self) -> str:
        parts = [f"**Compare** · {self._summary()}", "", f"> {_clip(self._prompt_text(), 300)}"]
        for column in self.columns:
            kind = _kind(column.response) if column.response else None
            note = f" · *{kind}*" if kind else ""
            parts += [
                "",
                f"#### {column.label} · {_status(column)}{note}",
                "",
                _column_text(column),
            ]
        parts += ["", "| " + " | ".join(self._HEADINGS) + " |"]
        parts.append("|" + "---|" * len(self._HEADINGS))
        parts += ["| " + " | ".join(row) + " |" for row in self._rows()]
        return "\n".join(parts)

    def _repr_html_(self) -> str:
        cells = "".join(
            f'<td style="vertical-align:top">{_title_html(c)}<br>{_body_html(c)}</td>'
            for c in self.columns
        )
        chart = png_html(self.png(), f"Timings: {self._summary()}")  # once the run ended
        return (
            f"<div>{self._header_html()}<table><tr>{cells}</tr></table>{self._table_html()}"
            f"{chart}</div>"
        )


def _clip(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


_ERROR_STYLE = "color:#b00020;white-space:pre-wrap"


def _status(column: _Column) -> str:
    if column.status == "failed" and column.error is not None:
        return f"failed ({type(column.error).__name__})"
    return column.status


def _column_text(column: _Column) -> str:
    if column.status == "failed" and column.error is not None:
        error = describe_error(column.error)
        return f"{error}\n\n(streamed before the error) {column.text}" if column.text else error
    return column.text or ("(waiting)" if column.status == "waiting" else "")


@functools.cache
def _markdown() -> Any:
    from markdown_it import MarkdownIt

    return MarkdownIt("commonmark", {"html": False}).enable("table")


def _kind(response: LLMResponse) -> str | None:
    """What kind of model answered, and where a replayed answer came from."""
    notes = [note for note in (answer_note(response), replay_note(response)) if note]
    return " · ".join(notes) or None


def _title_html(column: _Column) -> str:
    badge = ""
    kind = _kind(column.response) if column.response is not None else None
    if kind:
        badge = f' <span style="opacity:.7">({kind})</span>'
    return f"<b>{html.escape(column.label)}</b> · {html.escape(_status(column))}{badge}"


def _body_html(column: _Column) -> str:
    if column.status == "failed" and column.error is not None:
        message = html.escape(describe_error(column.error))
        shown = f'<div class="llmgine-compare-error" style="{_ERROR_STYLE}">{message}</div>'
        if column.text:  # what streamed before the error is kept, marked as partial
            partial = html.escape(column.text)
            shown += (
                f'<div style="opacity:.7;white-space:pre-wrap"><i>streamed before the '
                f"error:</i> {partial}</div>"
            )
        return shown
    if not column.text:
        return "<div><i>…</i></div>"
    # Answers are markdown, as %%llmgine renders them; raw HTML in them stays escaped.
    return f'<div class="llmgine-compare-answer">{_markdown().render(column.text)}</div>'
