"""Precision of `conc-lsp check` on real code: findings, a judging sheet, the figures.

Step 1, collect and sample (the corpus comes from benchmarks/real_corpus.py):

    .venv/bin/python benchmarks/precision.py [--corpus /work/corpus] [--resolve]
        [--out /work/judging] [--per-rule 15] [--seed 12]

runs the installed `conc-lsp check --format json` over every project folder of
the corpus (paths relative to the corpus), writes every finding to
OUT/findings[-resolve].json and a random sample, stratified so that every rule
gets up to --per-rule findings (fixed seed), to OUT/sheet[-resolve].md: rule,
path:line, message and the code around the finding.

Step 2, the figures from a judged file:

    .venv/bin/python benchmarks/precision.py --judgements /work/judging/round0.tsv

The judgements file is TSV, one finding a line: ``path:line<TAB>CODE<TAB>
verdict<TAB>reason`` where verdict is ``true`` (a real hazard), ``deliberate``
(true but intended or harmless by design) or ``wrong`` (the rule's claim about
the code is false). Lines starting with ``#`` are comments. Prints per rule
true / deliberate / wrong and precision = true / (true + wrong). With
--findings FILE it also lists the judged findings that FILE no longer has and
counts FILE's findings nobody judged yet (re-run after a rule change).

Step 3, what changed between two runs (plain against --resolve, before/after):

    .venv/bin/python benchmarks/precision.py --compare BEFORE.json AFTER.json
"""

from __future__ import annotations

import argparse
import collections
import json
import random
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

DEFAULT_CORPUS = Path("/work/corpus")
DEFAULT_OUT = Path("/work/judging")
VERDICTS = ("true", "deliberate", "wrong")
CONTEXT_BEFORE = 10
CONTEXT_AFTER = 5

Finding = dict[str, Any]


def conc_lsp_executable() -> str:
    """The conc-lsp next to this Python (the venv's), else the one on PATH."""
    beside = Path(sys.executable).with_name("conc-lsp")
    found = str(beside) if beside.exists() else shutil.which("conc-lsp")
    if found is None:
        sys.exit("precision: conc-lsp is not installed")
    return found


def every_rule() -> str:
    """Every registered rule, opt-in ones included: `--select` for judging them all."""
    from conc_lsp.rules import all_rules  # the installed conc-lsp, beside this Python

    return ",".join(sorted(all_rules()))


def collect(corpus: Path, resolve: bool, select: str | None = None) -> list[Finding]:
    """Every finding of every project folder of the corpus, paths relative to it."""
    findings: list[Finding] = []
    for project in sorted(p for p in corpus.iterdir() if p.is_dir()):
        command = [conc_lsp_executable(), "check", "--format", "json", project.name]
        if select:
            command += ["--select", select]
        command.append("--resolve" if resolve else "--no-resolve")
        done = subprocess.run(command, cwd=corpus, capture_output=True, text=True)
        if done.returncode not in (0, 1):
            sys.exit(f"precision: conc-lsp failed on {project.name}: {done.stderr[-2000:]}")
        found = json.loads(done.stdout or "[]")
        print(f"{project.name:28} {len(found):4} findings")
        findings.extend(found)
    return findings


def stratified_sample(findings: list[Finding], per_rule: int, seed: int) -> list[Finding]:
    by_rule: dict[str, list[Finding]] = collections.defaultdict(list)
    for finding in findings:
        by_rule[finding["code"]].append(finding)
    rng = random.Random(seed)
    sample: list[Finding] = []
    for code in sorted(by_rule):
        group = by_rule[code]
        sample.extend(rng.sample(group, min(per_rule, len(group))))
    return sample


def code_around(corpus: Path, finding: Finding) -> str:
    lines = (corpus / finding["path"]).read_text(encoding="utf-8", errors="replace").splitlines()
    line = int(finding["line"])
    first = max(1, line - CONTEXT_BEFORE)
    last = min(len(lines), line + CONTEXT_AFTER)
    return "\n".join(
        f"{'>' if n == line else ' '}{n:5} {lines[n - 1]}" for n in range(first, last + 1)
    )


def write_sheet(corpus: Path, sample: list[Finding], sheet: Path) -> None:
    parts = [
        "# Judging sheet\n",
        "Verdicts: true (real hazard) / deliberate (true, intended)"
        " / wrong (the claim is false).\n",
    ]
    for number, finding in enumerate(sample, 1):
        parts.append(
            f"## {number}. {finding['code']} {finding['path']}:{finding['line']}\n\n"
            f"{finding['message']}\n\n```python\n{code_around(corpus, finding)}\n```\n"
        )
    sheet.write_text("\n".join(parts), encoding="utf-8")


def read_judgements(path: Path) -> list[tuple[str, str, str, str]]:
    """(location, code, verdict, reason) per judged line of a TSV file."""
    judged: list[tuple[str, str, str, str]] = []
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not raw.strip() or raw.startswith("#"):
            continue
        fields = raw.split("\t")
        if len(fields) < 3 or fields[2] not in VERDICTS:
            sys.exit(
                f"precision: {path}:{number}: expected 'path:line<TAB>CODE<TAB>verdict<TAB>reason'"
            )
        judged.append((fields[0], fields[1], fields[2], fields[3] if len(fields) > 3 else ""))
    return judged


def print_figures(judged: list[tuple[str, str, str, str]]) -> None:
    counts: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    for _, code, verdict, _ in judged:
        counts[code][verdict] += 1
        counts["all"][verdict] += 1
    print(f"{'rule':8} {'true':>5} {'delib':>5} {'wrong':>5} {'precision':>9}")
    for code in sorted(counts, key=lambda c: (c == "all", c)):
        c = counts[code]
        decided = c["true"] + c["wrong"]
        precision = f"{c['true'] / decided:.2f}" if decided else "-"
        print(f"{code:8} {c['true']:5} {c['deliberate']:5} {c['wrong']:5} {precision:>9}")


def finding_key(finding: Finding) -> str:
    return f"{finding['path']}:{finding['line']}\t{finding['code']}"


def report_stale(judged: list[tuple[str, str, str, str]], findings_file: Path) -> None:
    """Judged findings the findings file no longer has, and its findings nobody judged."""
    current = {finding_key(f) for f in json.loads(findings_file.read_text())}
    judged_keys = {f"{loc}\t{code}" for loc, code, _, _ in judged}
    gone = [
        (loc, code, verdict) for loc, code, verdict, _ in judged if f"{loc}\t{code}" not in current
    ]
    by_verdict = collections.Counter(verdict for _, _, verdict in gone)
    print(f"\njudged findings no longer reported: {len(gone)} {dict(by_verdict)}")
    for loc, code, verdict in gone:
        print(f"  {verdict:10} {code} {loc}")
    unjudged = collections.Counter(key.split("\t")[1] for key in current - judged_keys)
    print(f"findings not judged yet: {sum(unjudged.values())} {dict(sorted(unjudged.items()))}")


def compare(before_file: Path, after_file: Path) -> None:
    """Findings only in one of two findings files (e.g. plain against --resolve)."""
    before = {finding_key(f): f for f in json.loads(before_file.read_text())}
    after = {finding_key(f): f for f in json.loads(after_file.read_text())}
    for title, keys, source in (
        (f"only in {before_file.name}", sorted(before.keys() - after.keys()), before),
        (f"only in {after_file.name}", sorted(after.keys() - before.keys()), after),
    ):
        print(f"{title}: {len(keys)}")
        for key in keys:
            print(f"  {key.replace(chr(9), ' ')}  {source[key]['message'][:100]}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--resolve", action="store_true", help="run check with --resolve")
    parser.add_argument(
        "--select",
        default=None,
        help="rules to run (default: every rule, opt-in ones included; 'default': the defaults)",
    )
    parser.add_argument("--per-rule", type=int, default=15)
    parser.add_argument("--seed", type=int, default=12)
    parser.add_argument("--judgements", type=Path, help="print the figures of this judged TSV")
    parser.add_argument("--findings", type=Path, help="with --judgements: findings JSON to compare")
    parser.add_argument(
        "--compare",
        type=Path,
        nargs=2,
        metavar=("BEFORE", "AFTER"),
        help="list the findings only in one of two findings JSON files",
    )
    args = parser.parse_args()
    if args.compare:
        compare(*args.compare)
        return
    if args.judgements:
        judged = read_judgements(args.judgements)
        print_figures(judged)
        if args.findings:
            report_stale(judged, args.findings)
        return
    suffix = "-resolve" if args.resolve else ""
    select = None if args.select == "default" else args.select or every_rule()
    findings = collect(args.corpus, args.resolve, select)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"findings{suffix}.json").write_text(
        json.dumps(findings, indent=1), encoding="utf-8"
    )
    sample = stratified_sample(findings, args.per_rule, args.seed)
    write_sheet(args.corpus, sample, args.out / f"sheet{suffix}.md")
    per_rule = collections.Counter(f["code"] for f in findings)
    print(
        f"{len(findings)} findings: " + ", ".join(f"{c} {n}" for c, n in sorted(per_rule.items()))
    )
    print(f"sample of {len(sample)} in {args.out / f'sheet{suffix}.md'}")


if __name__ == "__main__":
    main()
