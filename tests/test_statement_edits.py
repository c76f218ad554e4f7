"""Keystrokes inside a long function re-parse one statement (issue 15): the
hints, problems and stale counts stay those of the chunk path, and those of a
fresh analysis whenever the text parses."""

from __future__ import annotations

import pytest

from conc_lsp.analysis import statement_edit
from conc_lsp.analysis.parse import Analyzer
from tests import edit_fuzzer, statement_fuzzer


@pytest.mark.parametrize("seed", range(6))
def test_random_keystrokes_in_a_long_function(seed: int) -> None:
    assert statement_fuzzer.run(seed, edits=120) == 120


@pytest.mark.parametrize(("seed", "encoding"), [(7, "utf-16"), (8, "utf-8"), (9, "utf-16")])
def test_differential_fuzzer_with_every_chunk_keeping_its_tree(
    seed: int, encoding: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """tests/edit_fuzzer.py's edits (CR / LF joins, class splits, several
    changes a notification) with statement edits on every chunk."""
    monkeypatch.setattr(statement_edit, "MIN_LINES", 1)
    outcome = edit_fuzzer.run(seed, encoding, 120)
    assert outcome.drifts == []
    assert outcome.compared >= 10


FUNCTION = (
    "\n\nasync def f(self):\n"
    "    await trio.sleep(1)\n"
    "    self.users -= 1\n"
    "    await self.done.wait()\n"
)


def test_broken_statement_under_blank_lines_at_the_top() -> None:
    """The chunk path keeps blank lines above a broken function apart (their
    own piece): the statement edit gives way, problems stay the same."""
    pair = statement_fuzzer.Pair.open(FUNCTION, min_lines=1)
    pair.edit((4, 4), (4, 4), "(")  # `(self.users -= 1`: broken, and blank lines above
    fast, reference = pair.analyses()
    assert fast.problems and fast == reference
    pair.edit((4, 4), (4, 5), "")
    assert pair.analyses()[0] == pair.analyses()[1]


def test_edits_of_one_notification_carry_the_hints_of_the_last_request() -> None:
    """A statement edit then another edit that breaks the function, with no
    request between: the broken function keeps the hints it had at the last
    request moved through both edits, as the chunk path does."""
    pair = statement_fuzzer.Pair.open("import trio" + FUNCTION, min_lines=1)
    pair.hints()
    pair.edit((3, 15), (3, 16), "")  # trio.sleep -> tio.sleep: a statement edit
    pair.edit((4, 0), (4, 0), "    x = (\n")  # a new line that breaks the function
    fast, reference = pair.analyses()
    assert fast.stale_hints and fast == reference
    assert any(hint.code == "trio.sleep(1)" for hint in fast.hints)


CALLS = (
    "import trio\n\n\nasync def f(self, key):\n"
    "    value = await self.fetch(key, 1)\n"
    "    with trio.CancelScope(shield=True):\n"
    "        await trio.sleep(0)\n"
    "    await self.done.wait()\n"
    "    if key:\n"
    "        await self.flush(key)\n"
    "\n\nasync def g():\n"
    "    await trio.sleep(1)\n"
)


def _taken(
    pair: statement_fuzzer.Pair, start: tuple[int, int], end: tuple[int, int], text: str
) -> bool:
    """Apply the edit; whether the statement edit took it (the fast path)."""
    counts = statement_fuzzer.Counts()
    with statement_fuzzer.counting(counts):
        pair.edit(start, end, text)
    fast, reference = pair.analyses()
    assert fast == reference
    if statement_fuzzer.parses(pair.fast.lines):
        assert fast.hints == Analyzer(list(pair.fast.lines)).analysis().hints
    else:
        assert fast.problems
    statement_fuzzer.kept_statement_lines(pair.fast.analyzer.chunks)
    return any(counts.results)


def test_enter_and_backspace_inside_brackets_take_the_statement_edit() -> None:
    """Lines added or removed inside one statement: the statement is parsed
    again, what follows moves (hints, tree lines, the next function)."""
    pair = statement_fuzzer.Pair.open(CALLS, min_lines=1)
    pair.hints()
    after_key = pair.fast.lines[4].index("key,") + 4
    assert _taken(pair, (4, after_key), (4, after_key), "\n        ")  # Enter after `key,`
    assert pair.fast.lines[5] == "         1)"
    # Later edits below the moved lines: found by the moved tree lines.
    sleep = pair.fast.lines[7].index("(0)") + 1
    assert _taken(pair, (7, sleep), (7, sleep + 1), "")  # `trio.sleep(0)` -> `trio.sleep()`
    assert _taken(pair, (7, sleep), (7, sleep), "0")
    assert _taken(pair, (4, after_key), (5, 8), "")  # Backspace: the line joins back
    assert pair.fast.lines == CALLS.split("\n")
    assert _taken(pair, (4, after_key), (4, after_key), "\n        2,\n        key,")  # a paste
    flush = pair.fast.lines[11].index("(") + 1
    assert _taken(pair, (11, flush), (11, flush), "\n            ")  # in a nested block
    assert pair.fast.lines[12] == "            key)"


def test_line_changes_that_break_the_statement_use_the_chunk_path() -> None:
    pair = statement_fuzzer.Pair.open(CALLS, min_lines=1)
    pair.hints()
    assert not _taken(pair, (4, 10), (4, 10), "\n")  # Enter outside brackets: broken
    assert not _taken(pair, (4, 10), (5, 0), "")  # back
    assert _taken(pair, (5, 0), (5, 0), "\n")  # a blank line above: parsed with the one above
    assert not _taken(pair, (8, 26), (9, 0), "")  # two statements joined: broken


def test_the_fuzzer_presses_enter_inside_statements() -> None:
    counts = statement_fuzzer.Counts()
    for seed in range(3):
        statement_fuzzer.run(seed, edits=120, counts=counts)
    assert counts.fast_line_changes >= 5


def test_a_new_line_typed_below_a_statement_takes_the_statement_edit() -> None:
    """Enter at the end of a statement, a statement typed on the new line key
    by key, then taken back: the statement and the blank lines below it (up
    to its next sibling) are parsed again; a statement that ends a block
    ends the blocks holding it where the new statements end."""
    pair = statement_fuzzer.Pair.open(CALLS, min_lines=1)
    pair.hints()
    end = len(pair.fast.lines[4])
    assert _taken(pair, (4, end), (4, end), "\n    ")  # Enter: a blank line below
    typed = "await trio.sleep(2)"
    for column, character in enumerate("await trio.sleep", start=4):
        assert _taken(pair, (5, column), (5, column), character)
    assert _taken(pair, (5, 20), (5, 20), "()")  # the editor closes the bracket
    assert _taken(pair, (5, 21), (5, 21), "2")
    assert pair.fast.lines[5] == f"    {typed}"
    assert any(hint.code == "trio.sleep(2)" for hint in pair.analyses()[0].hints)
    assert _taken(pair, (5, 4), (5, 4 + len(typed)), "")
    assert _taken(pair, (4, end), (5, 4), "")  # Backspace: the blank line goes
    assert pair.fast.lines == CALLS.split("\n")
    # Backspace at the start of the statement below a blank line: the blank
    # line and that statement join (two statements parsed again).
    assert _taken(pair, (4, end), (4, end), "\n")
    assert _taken(pair, (5, 0), (6, 0), "")
    assert pair.fast.lines == CALLS.split("\n")
    # The last statement of `f`, inside an `if`: Enter below it is taken; a
    # line typed there may belong to either block or to none (the chunk path).
    end = len(pair.fast.lines[9])
    assert _taken(pair, (9, end), (9, end), "\n        ")
    assert _taken(pair, (9, end), (9, end), "\n    ")
    assert not _taken(pair, (10, 8), (10, 8), "await trio.sleep(3)")
