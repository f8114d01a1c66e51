"""A cell's text as a prompt: ``{name}`` substitution, its escape, and the warning a
field that does not resolve gets in the cell's output."""

from __future__ import annotations

from typing import Any

import pytest
from IPython.utils.capture import capture_output

from llmgine.notebook.magics import _magics
from llmgine.notebook.magics._prompt import fill, substitute
from tests.notebook.magics_helpers import Shell, output_data, scripted

pytestmark = pytest.mark.usefixtures("magics")  # the shell's magics, reset after each test


def sent_text(model: Any, call: int = 0) -> str:
    text: str = model.adapter.requests[call].messages[-1].text
    return text


def warnings_shown(captured: Any) -> list[str]:
    """The warnings displayed in the cell's output (text and HTML, the same words)."""
    pages = list(output_data(captured, "text/html"))
    texts = [
        str(o.data["text/plain"])
        for o in captured.outputs
        if 'class="llmgine-warning"' in str(o.data.get("text/html", ""))
    ]
    assert len(texts) == sum('class="llmgine-warning"' in page for page in pages)
    return texts


def test_names_are_substituted_and_other_braces_kept(shell: Shell) -> None:
    model = scripted(shell, "echo", "ok")
    with capture_output():
        shell.run("note = 'magma'", store_history=True)
        first = shell.ip.execution_count - 1
        shell.run("6 * 7", store_history=True)
        second = shell.ip.execution_count - 1
        shell.user_ns["topic"] = "lava"
        cell = (
            f"{{topic}} {{In[{first}]}} {{Out[{second}]}} {{unknown}} {{{{topic}}}} "
            '{"a": {"b": 1}} lone { brace'
        )
        shell.cell("echo", cell)
    sent = sent_text(model)
    assert sent == 'lava note = \'magma\' 42 {unknown} {topic} {"a": {"b": 1}} lone { brace'


def test_a_misspelt_name_is_sent_as_written_after_a_warning_naming_the_closest(
    shell: Shell,
) -> None:
    model = scripted(shell, "spelt", "ok")
    shell.user_ns["topic"] = "lava"
    with capture_output() as captured:
        shell.cell("spelt", "Tell me about {topc}.")
    assert sent_text(model) == "Tell me about {topc}."  # sent as written
    [warning] = warnings_shown(captured)
    assert "{topc}: topc is not defined (did you mean {topic}?)" in warning
    assert "{{topc}}" in warning  # how to send the braces on purpose
    # The warning comes first: the user reads it while the answer streams below it.
    assert captured.outputs[0].data["text/plain"] == warning


def test_escaped_braces_and_json_are_not_flagged(shell: Shell) -> None:
    model = scripted(shell, "quiet", "ok", "ok")
    with capture_output() as captured:
        shell.cell("quiet", 'Fill {{topc}} in this JSON: {"a": 1, "b": {"c": [1, 2]}}')
        shell.cell("quiet", "{ spaced } {1} {'quoted'} {a-b} {}")
    assert warnings_shown(captured) == []
    assert sent_text(model, 0) == 'Fill {topc} in this JSON: {"a": 1, "b": {"c": [1, 2]}}'
    assert sent_text(model, 1) == "{ spaced } {1} {'quoted'} {a-b} {}"


def test_attributes_and_cell_numbers_that_do_not_resolve_are_named(shell: Shell) -> None:
    model = scripted(shell, "fields", "ok")
    shell.user_ns["doc"] = type("Doc", (), {"title": "Dune"})()
    with capture_output() as captured:
        shell.cell("fields", "{doc.titel} {In[9999]} {doc.title} {topc} {topc}")
    [warning] = warnings_shown(captured)
    assert "{doc.titel}: doc (Doc) has no attribute 'titel' (did you mean {doc.title}?)" in (
        warning
    )
    assert "{In[9999]}: In has no item 9999" in warning
    assert warning.count("{topc}:") == 1  # once per field, however often it appears
    assert sent_text(model) == "{doc.titel} {In[9999]} Dune {topc} {topc}"


def test_in_a_terminal_the_warning_is_printed(
    shell: Shell, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_magics, "uses_text_output", lambda shell: True)
    scripted(shell, "printed", "ok")
    with capture_output() as captured:
        shell.cell("printed", "About {nothing_like_it}")
    assert captured.outputs == []
    assert "{nothing_like_it}: nothing_like_it is not defined" in captured.stdout
    assert "did you mean" not in captured.stdout  # no name is close


def test_the_compare_command_and_comparisons_warn_too(shell: Shell) -> None:
    shell.user_ns["topic"] = "lava"
    with capture_output() as captured:
        shell.line('compare "About {topik}" fast fast2')
        shell.cell("fast,fast2", "About {topik}")
    warnings = warnings_shown(captured)
    assert len(warnings) == 2
    assert all("did you mean {topic}?" in w for w in warnings)


def test_fill_reports_each_unresolved_field_with_the_closest_name() -> None:
    class Doc:
        title = "Dune"

        @property
        def secret(self) -> str:
            raise ValueError("sk-abcdefghijklmnopqrstuvwxyz123456")

    class Unprintable:
        def __str__(self) -> str:
            raise RuntimeError("no")

    namespace = {"doc": Doc(), "items": [1, 2], "n": 3, "odd": Unprintable(), "_private": 1}
    assert substitute("{doc.title} {items[-1]} {n}", namespace) == "Dune 2 3"
    filled = fill("{doc.missing} {items[5]} {n[0]} {n + 1} {doc.secret} {odd} {privat}", namespace)
    assert filled.text == "{doc.missing} {items[5]} {n[0]} {n + 1} {doc.secret} {odd} {privat}"
    reasons = {u.field: (u.reason, u.suggestion) for u in filled.unresolved}
    assert reasons == {
        "doc.missing": ("doc (Doc) has no attribute 'missing'", None),
        "items[5]": ("items has no item 5", None),
        "n[0]": ("n (int) cannot be indexed (TypeError)", None),
        "doc.secret": ("reading doc.secret raised ValueError", None),  # the type, no message
        "odd": ("str() of its value raised RuntimeError", None),
        "privat": ("privat is not defined", None),  # private names are not suggested
    }
    assert fill("{_privat}", namespace).unresolved[0].suggestion == "_private"
    assert fill("{itmes[0]}", namespace).unresolved[0].suggestion == "items[0]"
    assert fill("all {n} fine", namespace).warning() == ""
