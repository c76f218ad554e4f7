"""flake8-async as a differential oracle: cleanup blocks it flags that conc-lsp does not.

Runs flake8-async (pinned in the venv: ``pip install flake8-async==26.8.1``)
with ASYNC102 (await in finally / cancelled handler / __aexit__), ASYNC120
(checkpoint in an except that would discard the exception) and ASYNC300 (task
created and dropped) over every project of the corpus (benchmarks/real_corpus.py),
then the installed `conc-lsp check`. For each flake8-async finding it finds the
cleanup block around the line (the innermost ``finally`` body, ``except``
handler or ``__aexit__`` function; the line itself for ASYNC300) and lists
the blocks with no conc-lsp finding inside.

    .venv/bin/python benchmarks/flake8_async_oracle.py [--corpus /work/corpus]
        [--out /work/judging] [--rerun]

flake8-async is slow on this box, so its output is cached in
OUT/flake8_async.txt (--rerun runs it again). Writes OUT/oracle_uncovered.json.
"""

from __future__ import annotations

import argparse
import ast
import collections
import json
import re
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

from precision import collect, every_rule

DEFAULT_CORPUS = Path("/work/corpus")
DEFAULT_OUT = Path("/work/judging")
ORACLE_CODES = ("ASYNC102", "ASYNC120", "ASYNC300")
FLAKE8_LINE = re.compile(
    r"^(?P<path>.+?):(?P<line>\d+):(?P<col>\d+): (?P<code>ASYNC\d+) (?P<message>.*)$"
)


@dataclass(frozen=True)
class Block:
    path: str
    first: int
    last: int
    kind: str


@dataclass
class OracleFinding:
    path: str
    line: int
    code: str
    message: str


def run_flake8_async(corpus: Path, cache: Path, rerun: bool) -> list[OracleFinding]:
    if rerun or not cache.exists():
        executable = Path(sys.executable).with_name("flake8-async")
        lines: list[str] = []
        for project in sorted(p for p in corpus.iterdir() if p.is_dir()):
            files = sorted(str(p.relative_to(corpus)) for p in project.rglob("*.py"))
            done = subprocess.run(
                [str(executable), f"--enable={','.join(ORACLE_CODES)}", *files],
                cwd=corpus,
                capture_output=True,
                text=True,
            )
            lines.extend(done.stdout.splitlines())
            print(
                f"flake8-async {project.name}: {len(done.stdout.splitlines())} findings", flush=True
            )
        cache.write_text("\n".join(lines) + "\n", encoding="utf-8")
    found: list[OracleFinding] = []
    for raw in cache.read_text(encoding="utf-8").splitlines():
        match = FLAKE8_LINE.match(raw)
        if match and match["code"] in ORACLE_CODES:
            found.append(
                OracleFinding(match["path"], int(match["line"]), match["code"], match["message"])
            )
    return found


def cleanup_blocks(tree: ast.AST, path: str) -> list[Block]:
    """Every finally body, except handler and __aexit__ of a module."""
    blocks: list[Block] = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.Try, ast.TryStar)) and node.finalbody:
            last = node.finalbody[-1]
            blocks.append(
                Block(path, node.finalbody[0].lineno, last.end_lineno or last.lineno, "finally")
            )
        elif isinstance(node, ast.ExceptHandler):
            blocks.append(Block(path, node.lineno, node.end_lineno or node.lineno, "except"))
        elif isinstance(node, ast.AsyncFunctionDef) and node.name == "__aexit__":
            blocks.append(Block(path, node.lineno, node.end_lineno or node.lineno, "__aexit__"))
    return blocks


def enclosing_block(blocks: list[Block], finding: OracleFinding) -> Block:
    if finding.code == "ASYNC300":
        return Block(finding.path, finding.line, finding.line, "statement")
    around = [b for b in blocks if b.first <= finding.line <= b.last]
    if not around:
        return Block(finding.path, finding.line, finding.line, "line")
    return min(around, key=lambda b: b.last - b.first)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--rerun", action="store_true", help="run flake8-async again")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    oracle = run_flake8_async(args.corpus, args.out / "flake8_async.txt", args.rerun)
    conc = collect(args.corpus, resolve=False, select=every_rule())
    conc_lines: dict[str, list[int]] = collections.defaultdict(list)
    for conc_finding in conc:
        conc_lines[conc_finding["path"]].append(int(conc_finding["line"]))

    blocks_of: dict[str, list[Block]] = {}
    flagged: dict[Block, list[OracleFinding]] = collections.defaultdict(list)
    for finding in oracle:
        if finding.path not in blocks_of:
            source = (args.corpus / finding.path).read_text(encoding="utf-8", errors="replace")
            blocks_of[finding.path] = cleanup_blocks(ast.parse(source), finding.path)
        flagged[enclosing_block(blocks_of[finding.path], finding)].append(finding)

    uncovered = {
        block: found
        for block, found in flagged.items()
        if not any(block.first <= line <= block.last for line in conc_lines[block.path])
    }
    per_code: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    for block, found in flagged.items():
        for code in sorted({f.code for f in found}):
            per_code[code]["uncovered" if block in uncovered else "covered"] += 1
    print(
        f"\n{len(oracle)} flake8-async findings in {len(flagged)} blocks;"
        f" {len(conc)} conc-lsp findings"
    )
    for code, counter in sorted(per_code.items()):
        print(
            f"{code}: {counter['covered']} blocks covered by conc-lsp, {counter['uncovered']} not"
        )
    print("\nblocks with no conc-lsp finding:")
    for block, found in sorted(uncovered.items(), key=lambda item: (item[0].path, item[0].first)):
        codes = ",".join(sorted({f.code for f in found}))
        lines = [f.line for f in found]
        print(f"  {block.path}:{block.first}-{block.last} {block.kind} {codes} (lines {lines})")
    (args.out / "oracle_uncovered.json").write_text(
        json.dumps(
            [
                {"block": asdict(b), "findings": [asdict(f) for f in found]}
                for b, found in uncovered.items()
            ],
            indent=1,
        ),
        encoding="utf-8",
    )


if __name__ == "__main__":
    main()
