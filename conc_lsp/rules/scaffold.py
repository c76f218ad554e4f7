"""Write the skeleton of a new rule: its module and its fixture.

    python -m conc_lsp.rules.scaffold CONC205 lock-held-across-yield

creates ``conc_lsp/rules/conc205_lock_held_across_yield.py`` (the ``Rule``
subclass, its evidence, docstring sections, check, trace and fix wording)
and ``tests/fixtures/rules/conc205.py`` (positive and negative cases to fill
in). The registry finds the rule by itself; the architecture and fixture
tests say what is still missing, and
``python tests/test_rule_snapshots.py --update`` writes its snapshot.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

RULES = Path(__file__).parent
FIXTURES = RULES.parent.parent / "tests" / "fixtures" / "rules"

MODULE = '''"""{code} {name}

## What it does
TODO: one paragraph: what the rule flags.

## Why is this bad?
TODO: what goes wrong at run time, with the interleaving that shows it.

## Example
```python
TODO
```

## Use instead
```python
TODO
```

## Fix
TODO: the fix, and whether it is safe.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from conc_lsp.analysis.events import Event, FunctionFacts, ModuleFacts
from conc_lsp.analysis.program import Program
from conc_lsp.rules.base import Detection, Evidence, Rule, Words
from conc_lsp.rules.story import Trace, TraceBuilder


@dataclass(frozen=True, slots=True)
class {evidence}(Evidence):
    """What a finding rests on."""

    checkpoint: Event


class {cls}(Rule):
    code = "{code}"
    name = "{name}"
    category = "TODO"  # TOCTOU, stale reference, lifetime mismatch, missing guard, ...
    explanation = "TODO: why this is that class of bug."
    effort = "simple"
    sketch_title = "TODO: the fix in a few words"
    rank = {rank}

    def check(self, module: ModuleFacts) -> Iterator[Detection]:
        for function in module.functions:
            for checkpoint in function.checkpoints:
                if False:  # TODO: the condition
                    yield self.detect(
                        function,
                        checkpoint.location,
                        "TODO: message",
                        {evidence}(checkpoint),
                    )

    def trace(
        self, program: Program, b: TraceBuilder, function: FunctionFacts, detection: Detection
    ) -> Trace | None:
        evidence = detection.evidence
        if not isinstance(evidence, {evidence}):
            return None
        b.add("Task A", evidence.checkpoint.location.line, "TODO", "first")
        b.add("Task B", None, "TODO", "second")
        return b.build(
            [f"Task A runs `{{function.qualname}}`."], (1, 2), "TODO: the race window"
        )

    def words(self, evidence: Evidence, trace: Trace) -> Words:
        return Words("TODO: how the fix closes the window", "TODO: trade-offs", "TODO: risk")


RULE = {cls}()
'''

FIXTURE = '''"""{code} {name}: positive cases carry an expect comment, negative ones none."""

import anyio
import asyncio
import trio

# case: +
# TODO

# case: -
# TODO
'''


def scaffold(code: str, name: str) -> list[Path]:
    if not re.fullmatch(r"CONC[0-9]{3}", code) or not re.fullmatch(r"[a-z]+(-[a-z]+)*", name):
        raise ValueError("usage: CONCNNN lower-case-name")
    stem = f"{code.lower()}_{name.replace('-', '_')}"
    module = RULES / f"{stem}.py"
    fixture = FIXTURES / f"{code.lower()}.py"
    if module.exists() or fixture.exists() or list(RULES.glob(f"{code.lower()}_*")):
        raise FileExistsError(f"{code} exists already")
    words = name.split("-")
    cls = "".join(word.capitalize() for word in words)
    module.write_text(
        MODULE.format(code=code, name=name, cls=cls, evidence=f"{cls}Evidence", rank=int(code[4:])),
        encoding="utf-8",
    )
    fixture.write_text(FIXTURE.format(code=code, name=name), encoding="utf-8")
    index = RULES / "index.py"
    if index.exists():
        _add_to_index(index, code, stem)
        return [module, fixture, index]
    return [module, fixture]


def _add_to_index(index: Path, code: str, stem: str) -> None:
    """The new rule's line in index.py's table, in code order (a rule starts as
    on by default, as the template's class does)."""
    lines = index.read_text(encoding="utf-8").splitlines(keepends=True)
    entry = f'    "{code}": ("{stem}", False),\n'
    rows = [n for n, line in enumerate(lines) if re.match(r'    "CONC[0-9]{3}": ', line)]
    later = [n for n in rows if lines[n][5:12] > code]
    position = later[0] if later else rows[-1] + 1
    lines.insert(position, entry)
    index.write_text("".join(lines), encoding="utf-8")


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    try:
        written = scaffold(argv[0].upper(), argv[1].lower())
    except (ValueError, FileExistsError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    for path in written:
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
