"""Each rule's fixture pinned as a snapshot: every finding's `line:col CODE
message`, its related lines, and its quick fix as a diff.

A change of wording, position or fix shows up in review as a change of
`tests/snapshots/concNNN.txt`. After an intended change, refresh them:

    python tests/test_rule_snapshots.py --update
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from conc_lsp.analysis.text import split_lines
from conc_lsp.config import Settings
from conc_lsp.diagnose import check_lines
from conc_lsp.report import unified_diff
from conc_lsp.rules import all_rules

ROOT = Path(__file__).parent
FIXTURES = ROOT / "fixtures" / "rules"
SNAPSHOTS = ROOT / "snapshots"


def snapshot(code: str) -> str:
    """The findings of ``code`` on its fixture, as reviewed text."""
    path = FIXTURES / f"{code.lower()}.py"
    lines = split_lines(path.read_text(encoding="utf-8"))
    result = check_lines(lines, Settings(select=(code,)), path.name, fixes=True)
    out = [f"# {code} on tests/fixtures/rules/{path.name}"]
    for found in result.findings:
        if found.code != code:
            continue
        where = found.location
        out.append("")
        out.append(
            f"{where.line + 1}:{where.column + 1} {found.code} [{found.severity.value}] "
            f"{found.message}"
        )
        for related in found.related:
            out.append(f"    related {related.location.line + 1}: {related.message}")
        if found.fix is not None:
            safety = "safe" if found.fix.safe else "unsafe"
            out.append(f"    fix ({safety}): {found.fix.title}")
            diff = unified_diff(lines, found.fix.edits, path.name)
            out.extend(f"    {line}".rstrip() for line in diff.split("\n")[2:])
    return "\n".join(out) + "\n"


@pytest.mark.parametrize("code", sorted(all_rules()))
def test_rule_snapshot(code: str) -> None:
    stored = SNAPSHOTS / f"{code.lower()}.txt"
    assert stored.exists(), f"no snapshot for {code}: run python {__file__} --update"
    assert snapshot(code) == stored.read_text(encoding="utf-8"), (
        f"{code}'s findings changed: review, then python {__file__} --update"
    )


def update() -> None:
    SNAPSHOTS.mkdir(exist_ok=True)
    for code in sorted(all_rules()):
        target = SNAPSHOTS / f"{code.lower()}.txt"
        text = snapshot(code)
        changed = not target.exists() or target.read_text(encoding="utf-8") != text
        target.write_text(text, encoding="utf-8")
        print(f"{target.relative_to(ROOT.parent)}: {'updated' if changed else 'unchanged'}")


if __name__ == "__main__":
    if sys.argv[1:] != ["--update"]:
        sys.exit(f"usage: python {sys.argv[0]} --update")
    update()
