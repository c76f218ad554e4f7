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
