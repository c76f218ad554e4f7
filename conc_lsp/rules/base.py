"""What every rule is: one class that owns its detection, message, fixes and
its part of the concurrency report, sharing typed evidence between them.

A rule's ``check`` yields ``Detection``s: the plain ``Finding`` (what the
editor and the command line show) and the rule's own ``Evidence`` (the
events, lines and names the finding rests on). The fix and the report story
read the evidence, never the message text. Evidence stays in the process
that computed it; only the finding crosses to the editor.
"""

from __future__ import annotations

import ast
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from conc_lsp.analysis.events import Event, FunctionFacts, ModuleFacts
from conc_lsp.analysis.model import (
    Finding,
    Fix,
    HintKind,
    Location,
    Related,
    Severity,
    Verdict,
)
from conc_lsp.analysis.program import Program
from conc_lsp.rules.story import ProposedFix, Trace, TraceBuilder

if TYPE_CHECKING:
    from conc_lsp.fixes.context import FixContext

WAIT_METHODS = frozenset({"wait", "join", "receive", "acquire", "wait_closed"})
EFFORTS = ("simple", "moderate", "complex")


@dataclass(frozen=True, slots=True)
class Evidence:
    """What a finding rests on; each rule subclasses it with its own fields."""


@dataclass(frozen=True, slots=True)
class Detection:
    """A finding and the evidence behind it."""

    finding: Finding
    evidence: Evidence


@dataclass(frozen=True, slots=True)
class Words:
    """How a fix closes the race window (by trace step), its trade-offs, its risk."""

    closes: str
    tradeoffs: str
    risk: str


class Rule:
    """One rule: subclass it in ``conc_lsp/rules/concNNN_name.py`` and bind an
    instance to the module's ``RULE``; the module docstring is its documentation
    (*What it does / Why is this bad? / Example / Use instead / Fix*)."""

    code: ClassVar[str]
    name: ClassVar[str]
    severity: ClassVar[Severity] = Severity.WARNING
    opt_in: ClassVar[bool] = False  # runs only when selected by its code or `ALL`
    uses_resolution: ClassVar[bool] = False  # reads what jedi found (worth resolving for)
    # The report: the seed's class of bug, why, the fix's effort, its sketch's title,
    # and where the rule's findings rank among the others (lower is more serious).
    category: ClassVar[str]
    explanation: ClassVar[str]
    effort: ClassVar[str]
    sketch_title: ClassVar[str]
    rank: ClassVar[float]

    # -- documentation --------------------------------------------------------

    @property
    def doc(self) -> str:
        return (sys.modules[type(self).__module__].__doc__ or "").strip()

    @property
    def summary(self) -> str:
        """The first paragraph of *What it does*, on one line."""
        body = self.doc.split("\n", 1)[1] if "\n" in self.doc else ""
        summary = body.split("## What it does", 1)[-1].strip().split("\n\n", 1)[0]
        return " ".join(summary.split())

    @property
    def use_instead(self) -> str:
        """The documentation's *Use instead* code (the report's fallback sketch)."""
        match = re.search(r"## Use instead\s*```python\n(.*?)```", self.doc, re.DOTALL)
        return match.group(1).rstrip() if match else ""

    # -- detection ------------------------------------------------------------

    def check(self, module: ModuleFacts) -> Iterator[Detection]:
        raise NotImplementedError

    def detect(
        self,
        function: FunctionFacts,
        location: Location,
        message: str,
        evidence: Evidence,
        related: list[tuple[Location, str]] | None = None,
        severity: Severity | None = None,
    ) -> Detection:
        """A finding of this rule, with its evidence (``severity``: when this
        finding is louder or quieter than the rule's default)."""
        found = Finding(
            code=self.code,
            name=self.name,
            message=message,
            location=location,
            severity=severity or self.severity,
            function=function.qualname,
            related=tuple(Related(where, text) for where, text in related or []),
        )
        return Detection(found, evidence)

    # -- fix ------------------------------------------------------------------

    def fix(self, detection: Detection, module: ModuleFacts, context: FixContext) -> Fix | None:
        """The quick fix, or None when no sound mechanical fix exists."""
        return None

    # -- the concurrency report ----------------------------------------------

    def classify(self, evidence: Evidence) -> tuple[str, str]:
        """The seed's class of bug and why (some rules have several forms)."""
        return self.category, self.explanation

    def seriousness(self, evidence: Evidence) -> float:
        return self.rank

    def trace(
        self, program: Program, b: TraceBuilder, function: FunctionFacts, detection: Detection
    ) -> Trace | None:
        """The race trace; None falls back to the finding's lines in order."""
        return None

    def words(self, evidence: Evidence, trace: Trace) -> Words:
        window = trace.window_words
        return Words(f"Removes {window}.", "Review by hand.", "Review by hand.")

    def sketches(
        self,
        program: Program,
        detection: Detection,
        trace: Trace,
        name: str,
        lines: list[str],
        has_quick_fix: bool,
    ) -> list[ProposedFix]:
        """Fixes beyond the quick fix, shown in the report (generated diffs, pseudocode)."""
        return []


def is_wait_call(call: Event) -> bool:
    """`Event.wait`, `Condition.wait`, `Process.wait`, `receive`, `acquire`, `join`,
    and any `wait*` / `*_wait` / `wait_for_*` name, whatever it is reached through."""
    name = call.method or ""
    if call.callee and call.callee.startswith(("asyncio.wait_for", "trio.sleep", "anyio.sleep")):
        return False
    if name in WAIT_METHODS and call.receiver is not None:
        return True
    return name.startswith("wait") or name.endswith("_wait") or name == "sleep_forever"


def describe(call: Event | None, fallback: str) -> str:
    if call is None:
        return fallback
    receiver = f"{call.receiver}." if call.receiver else ""
    return f"{receiver}{call.method}()"


def checkpoint_words(checkpoint: Event) -> str:
    """`the checkpoint at line 12`, or `the exit of the async with at line 12`."""
    line = checkpoint.location.line + 1
    if checkpoint.exit:
        return f"the exit of the `async with` at line {line}"
    return f"the checkpoint at line {line}"


def checkpoint_verdict(module: ModuleFacts, function: FunctionFacts, event: Event) -> Verdict:
    """What resolving the callee of a checkpoint event found (unknown when unresolved)."""
    if not module.resolved:
        return Verdict.UNKNOWN
    node = event.node
    if isinstance(node, ast.Await):
        return module.verdict_of(node, HintKind.AWAIT)
    memo = function.memo.get("with-anchors")
    anchors: dict[int, tuple[ast.withitem, ast.expr]]
    if isinstance(memo, dict):
        anchors = memo
    else:
        anchors = {}
        for child in ast.walk(function.node):
            if isinstance(child, ast.AsyncWith):
                for item in child.items:
                    anchor = item.optional_vars or item.context_expr
                    anchors[id(item.context_expr)] = (item, anchor)
        function.memo["with-anchors"] = anchors
    if id(node) in anchors:
        item, anchor = anchors[id(node)]
        found = module.resolution_of(anchor, HintKind.ASYNC_WITH)
        if found is None:
            return Verdict.UNKNOWN
        side = found.exit if event.exit else found.enter
        return side or found.verdict
    return module.verdict_of(node, HintKind.ASYNC_FOR)
