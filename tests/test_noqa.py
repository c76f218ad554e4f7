"""Where "Disable CODE for this line" puts its `# noqa: CODE` (conc_lsp/noqa.py)."""

from __future__ import annotations

import ast

from conc_lsp import diagnose, noqa
from conc_lsp.analysis.model import Finding, Location, Severity
from conc_lsp.noqa import comment_lines, noqa_edit


def applied(lines: list[str], line: int, code: str) -> list[str] | None:
    edit = noqa_edit(lines, line, code, comment_lines(lines))
    if edit is None:
        return None
    text = lines[edit.line]
    return [
        *lines[: edit.line],
        text[: edit.start] + edit.text + text[edit.end :],
        *lines[edit.line + 1 :],
    ]


def finding(line: int, code: str = "CONC101") -> Finding:
    return Finding(code, "name", "message", Location(line, 0, line, 1), Severity.WARNING, "f")


def test_the_pattern_is_the_one_the_rules_honour() -> None:
    assert noqa.NOQA.pattern == diagnose.NOQA.pattern
    assert noqa.NOQA.flags == diagnose.NOQA.flags


def test_added_comment_silences_the_finding() -> None:
    lines = ["async def f(ev):", "    await ev.wait()   ", "    x = 1"]
    new = applied(lines, 1, "CONC101")
    assert new == ["async def f(ev):", "    await ev.wait()  # noqa: CONC101", "    x = 1"]
    ast.parse("\n".join(new))
    assert diagnose.suppressed(finding(1), new)
    assert not diagnose.suppressed(finding(1, "CONC102"), new)


def test_joins_an_existing_noqa_and_keeps_other_comments() -> None:
    lines = ["x = 1  # noqa: E501  # why"]
    assert applied(lines, 0, "CONC101") == ["x = 1  # noqa: E501, CONC101  # why"]
    lines = ["x = 1  # type: ignore[misc]"]
    assert applied(lines, 0, "CONC101") == ["x = 1  # type: ignore[misc]  # noqa: CONC101"]
    # already silenced: nothing to add
    assert applied(["x = 1  # noqa"], 0, "CONC101") is None
    assert applied(["x = 1  # noqa: CONC1"], 0, "CONC101") is None


def test_no_comment_where_python_allows_none() -> None:
    continued = ["async def f(ev):", "    await \\", "        ev.wait()"]
    assert applied(continued, 1, "CONC101") is None
    assert applied(continued, 2, "CONC101") is not None
    in_string = ['x = """start', "middle", '"""', "y = 1"]
    assert applied(in_string, 0, "CONC101") is None
    assert applied(in_string, 1, "CONC101") is None
    assert applied(in_string, 2, "CONC101") is not None
    # inside brackets a comment is fine
    bracket = ["x = f(", "    1,", ")"]
    assert applied(bracket, 0, "CONC101") == ["x = f(  # noqa: CONC101", "    1,", ")"]


def test_text_that_does_not_tokenize_falls_back_to_a_safe_guess() -> None:
    broken = ["def f(:", "    x = (", "    y = 1 \\"]
    assert comment_lines(broken) is None
    assert applied(broken, 1, "CONC101") == [
        "def f(:",
        "    x = (  # noqa: CONC101",
        "    y = 1 \\",
    ]
    assert applied(broken, 2, "CONC101") is None
