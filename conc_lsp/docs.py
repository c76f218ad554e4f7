"""The README's rule and fix tables, generated from the rules (as
``docs/rules.md`` is from their docstrings by ``conc-lsp rule --docs``).

    python -m conc_lsp.docs    # rewrite the generated blocks of README.md

A test fails while the README's blocks differ from what this writes.
"""

from __future__ import annotations

import sys
from pathlib import Path

from conc_lsp.rules import all_rules

README = Path(__file__).parent.parent / "README.md"
BLOCKS = ("rules", "fixes")


def rules_table() -> str:
    lines = ["| code | name | flags |", "|---|---|---|"]
    for rule in all_rules().values():
        name = f"{rule.name} (opt-in)" if rule.opt_in else rule.name
        lines.append(f"| {rule.code} | {name} | {rule.brief} |")
    return "\n".join(lines)


def fixes_table() -> str:
    lines = ["| rule | fix | safety |", "|---|---|---|"]
    for rule in all_rules().values():
        lines += [f"| {rule.code} | {fix} | {safety} |" for fix, safety in rule.fixes_offered]
    return "\n".join(lines)


def generated(block: str) -> str:
    return rules_table() if block == "rules" else fixes_table()


def with_tables(text: str) -> str:
    """``text`` (the README) with each generated block rewritten."""
    for block in BLOCKS:
        start, end = f"<!-- {block}:start -->", f"<!-- {block}:end -->"
        before, found, rest = text.partition(start)
        if not found or end not in rest:
            raise ValueError(f"README.md has no {start} ... {end} block")
        text = f"{before}{start}\n{generated(block)}\n{end}{rest.partition(end)[2]}"
    return text


def main() -> int:
    text = README.read_text(encoding="utf-8")
    new = with_tables(text)
    if new != text:
        README.write_text(new, encoding="utf-8")
    print(f"{README}: {'updated' if new != text else 'unchanged'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
