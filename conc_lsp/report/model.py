"""The report's data: what ``build`` fills in and ``render`` writes out."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from conc_lsp.rules.story import ProposedFix, Step, Trace, ref

REF = re.compile(r"\[\[L(\d+)\]\]")


@dataclass(frozen=True, slots=True)
class Target:
    """What the report is about: ``module``, ``function`` (a qualname, function or
    class) or ``range`` (0-based, inclusive lines)."""

    kind: str = "module"
    qualname: str | None = None
    start: int | None = None
    end: int | None = None

    @classmethod
    def function(cls, qualname: str) -> Target:
        return cls("function", qualname=qualname)

    @classmethod
    def lines(cls, start: int, end: int) -> Target:
        return cls("range", start=min(start, end), end=max(start, end))

    def label(self, name: str) -> str:
        if self.kind == "function":
            return f"{self.qualname}"
        if self.kind == "range" and self.start is not None and self.end is not None:
            return f"{name}:{self.start + 1}-{self.end + 1}"
        return name


@dataclass(slots=True)
class StateRow:
    state: str
    scope: str  # "class attribute", "instance attribute", "module global"
    writers: list[str]
    readers: list[str]
    guard: str | None  # the lock's description, None for UNGUARDED
    exceptions: list[str]  # accesses without the guard: "[[L41]] in `run_ctx`"
    held_at: list[int]  # for UNGUARDED: lines where some lock is held
    lines: list[int]  # every access (0-based)

    @property
    def guard_text(self) -> str:
        if self.guard is None:
            if self.held_at:
                where = ", ".join(ref(line) for line in self.held_at)
                return f"UNGUARDED (a lock is held at {where} only)"
            return "UNGUARDED"
        if self.exceptions:
            return f"{self.guard}, except {', '.join(self.exceptions)}"
        return self.guard


@dataclass(slots=True)
class Mark:
    line: int
    code: str
    mark: str
    kind: str
    is_checkpoint: bool


@dataclass(slots=True)
class FunctionMarks:
    function: str
    line: int
    marks: list[Mark]


@dataclass(slots=True)
class FindingReport:
    code: str
    name: str
    severity: str
    function: str
    line: int
    message: str
    classification: str
    explanation: str
    trace: Trace
    fixes: list[ProposedFix]
    related: list[tuple[int, str]]
    rank: float = 0.0  # the rule's seriousness: lower comes first in the summary


@dataclass(slots=True)
class Report:
    target: str
    path: str
    link: str | None
    summary: str
    state: list[StateRow]
    checkpoints: list[FunctionMarks]
    findings: list[FindingReport]
    notes: list[str] = field(default_factory=list)


class TargetNotFound(ValueError):
    """The qualname names no function or class of the module."""


__all__ = [
    "REF",
    "FindingReport",
    "FunctionMarks",
    "Mark",
    "ProposedFix",
    "Report",
    "StateRow",
    "Step",
    "Target",
    "TargetNotFound",
    "Trace",
]
