"""Keystrokes inside a long function re-parse one statement (issue 15): the
hints, problems and stale counts stay those of the chunk path, and those of a
fresh analysis whenever the text parses."""

from __future__ import annotations

import pytest

from tests import statement_fuzzer


@pytest.mark.parametrize("seed", range(8))
def test_random_keystrokes_in_a_long_function(seed: int) -> None:
    assert statement_fuzzer.run(seed, edits=150) == 150
