"""Apply every offered fix to a copy of the trio and anyio sources.

For each file of the corpus (copied to a temporary folder; the installed
packages are never touched) this applies every fix conc-lsp offers, safe and
unsafe, one round at a time as `conc-lsp check --unsafe-fixes` does, and
checks that:

  - every resulting file still compiles (`compile()`);
  - the number of findings drops by exactly the number of fixes applied
    (a fix removes its own finding and adds none).

Prints the counts per rule and exits 1 on any violation.

    .venv/bin/python benchmarks/fix_corpus.py
"""

from __future__ import annotations

import collections
import importlib.util
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path

from conc_lsp.analysis.text import apply_edits, split_lines
from conc_lsp.config import Settings
from conc_lsp.diagnose import check_lines, choose_fixes
from conc_lsp.sources import read_source

PACKAGES = ("trio", "anyio")


def main() -> int:
    failures: list[str] = []
    applied_by_rule: collections.Counter[str] = collections.Counter()
    offered_by_rule: collections.Counter[str] = collections.Counter()
    findings_before = findings_after = files_changed = 0
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as scratch:
        for name in PACKAGES:
            spec = importlib.util.find_spec(name)
            if spec is None or not spec.submodule_search_locations:
                sys.exit(f"fix_corpus: {name} is not installed")
            shutil.copytree(spec.submodule_search_locations[0], Path(scratch) / name)
        for path in sorted(Path(scratch).rglob("*.py")):
            lines = split_lines(read_source(path))
            result = check_lines(lines, Settings(), str(path), fixes=True)
            before = len(result.findings)
            findings_before += before
            offered_by_rule.update(f.code for f in result.findings if f.fix is not None)
            applied_here = 0
            for _ in range(10):  # rounds, as --fix does
                chosen = choose_fixes(result.findings, unsafe=True)
                if not chosen:
                    break
                edits = [edit for finding in chosen if finding.fix for edit in finding.fix.edits]
                new_lines = apply_edits(lines, edits)
                count_before = len(result.findings)
                result = check_lines(new_lines, Settings(), str(path), fixes=True)
                if count_before - len(result.findings) != len(chosen):
                    failures.append(
                        f"{path.relative_to(scratch)}: {len(chosen)} fix(es) "
                        f"({', '.join(f.code for f in chosen)}) took findings from "
                        f"{count_before} to {len(result.findings)}"
                    )
                applied_by_rule.update(f.code for f in chosen)
                applied_here += len(chosen)
                lines = new_lines
            findings_after += len(result.findings)
            if applied_here:
                files_changed += 1
                text = "\n".join(lines)
                path.write_text(text, encoding="utf-8")
                try:
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        compile(text, str(path), "exec")
                except SyntaxError as error:
                    failures.append(f"{path.relative_to(scratch)} no longer compiles: {error}")
    elapsed = time.perf_counter() - started
    applied = sum(applied_by_rule.values())
    print(f"files changed: {files_changed}")
    print(f"findings before: {findings_before}, after: {findings_after}, fixes applied: {applied}")
    print(f"drop equals fixes applied: {findings_before - findings_after == applied}")
    print("fixes offered / applied per rule:")
    for code in sorted(offered_by_rule | applied_by_rule):
        print(f"  {code}  {offered_by_rule[code]:>4} / {applied_by_rule[code]:>4}")
    print(f"time: {elapsed:.1f} s")
    if findings_before - findings_after != applied:
        failures.append("the total drop differs from the fixes applied")
    for failure in failures:
        print(f"FAIL: {failure}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
