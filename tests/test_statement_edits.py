"""Keystrokes inside a long function re-parse one statement (issue 15): the
hints, problems and stale counts stay those of the chunk path, and those of a
fresh analysis whenever the text parses."""

from __future__ import annotations

import pytest

from conc_lsp.analysis import statement_edit
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
