"""No rule's cost grows with the square of a function's length (issue 15).

Counted, not timed: the Python calls a rule makes on one method of N lines
and on one of 2N lines (deterministic on any machine). Linear work doubles;
quadratic work quadruples.
"""

from __future__ import annotations

import pytest

from conc_lsp.analysis.flow import module_facts
from conc_lsp.analysis.text import split_lines
from conc_lsp.diagnose import module_tree
from conc_lsp.rules import all_rules
from tests.long_code import counted_calls, long_methods

LINES = 500


def _rule_calls(code: str, lines: int) -> int:
    text = split_lines(long_methods(lines, lines))
    tree, _ = module_tree(text)
    facts = module_facts(tree, text)
    rule = all_rules()[code]
    return counted_calls(lambda: list(rule.check(facts)))


@pytest.mark.parametrize("code", sorted(all_rules()))
def test_rule_cost_grows_linearly_with_function_length(code: str) -> None:
    short = _rule_calls(code, LINES)
    long = _rule_calls(code, 2 * LINES)
    assert long <= 2.3 * short, (code, short, long)


def test_facts_cost_grows_linearly_with_function_length() -> None:
    def facts_calls(lines: int) -> int:
        text = split_lines(long_methods(lines, lines))
        tree, _ = module_tree(text)
        return counted_calls(lambda: module_facts(tree, text))

    short = facts_calls(LINES)
    assert facts_calls(2 * LINES) <= 2.3 * short
