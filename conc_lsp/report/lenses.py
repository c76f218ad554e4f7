"""Code lens data: an async function, or a class with async methods, and its counts."""

from __future__ import annotations

import re
from dataclasses import dataclass

from conc_lsp.analysis.events import EventKind, FunctionFacts, ModuleFacts
from conc_lsp.analysis.model import Finding
from conc_lsp.analysis.program import span
from conc_lsp.rules.story import indentation


@dataclass(frozen=True, slots=True)
class LensTarget:
    """An async function, or a class with async methods, and its counts."""

    qualname: str
    line: int  # 0-based: the first line of the definition (its first decorator, if any)
    checkpoints: int
    findings: int
    kind: str  # "function" | "class"
    header: int = -1  # 0-based: the `def` / `class` line, where the lens goes
    end: int = -1  # 0-based: its last line (a class: its last method's)

    @property
    def lens_line(self) -> int:
        return self.header if self.header >= 0 else self.line

    def contains(self, line: int) -> bool:
        return self.line <= line <= max(self.end, self.lens_line)


def lens_targets(facts: ModuleFacts, findings: list[Finding], lines: list[str]) -> list[LensTarget]:
    """Code lens targets: every async function and every class with async methods."""
    found: list[LensTarget] = []
    counts: dict[str, int] = {}
    for finding in findings:
        counts[finding.function] = counts.get(finding.function, 0) + 1
    classes: dict[str, list[FunctionFacts]] = {}
    for function in facts.functions:
        checkpoints = sum(
            1 for e in function.events if e.kind is EventKind.CHECKPOINT and not e.exit
        )
        if function.is_async:
            first, last = span(function)
            found.append(
                LensTarget(
                    function.qualname,
                    first,
                    checkpoints,
                    counts.get(function.qualname, 0),
                    "function",
                    header=function.node.lineno - 1,
                    end=last,
                )
            )
        if function.class_name and function.qualname.endswith(
            f"{function.class_name}.{function.name}"
        ):
            owner = function.qualname[: -len(function.name) - 1]
            classes.setdefault(owner, []).append(function)
    for owner, methods in classes.items():
        if not any(method.is_async for method in methods):
            continue
        place = _class_line(lines, owner, span(methods[0])[0])
        if place is None:
            continue
        line, header = place
        checkpoints = sum(
            1
            for method in methods
            for e in method.events
            if e.kind is EventKind.CHECKPOINT and not e.exit
        )
        total = sum(count for qualname, count in counts.items() if qualname.startswith(owner + "."))
        end = max(span(method)[1] for method in methods)
        found.append(LensTarget(owner, line, checkpoints, total, "class", header=header, end=end))
    found.sort(key=lambda target: (target.line, target.qualname))
    return found


def _class_line(lines: list[str], qualname: str, method_line: int) -> tuple[int, int] | None:
    """(its first decorator's line or its own, the `class Name` line) above a method."""
    name = qualname.rsplit(".", 1)[-1]
    indent = len(indentation(lines[method_line])) if method_line < len(lines) else 0
    for index in range(method_line, -1, -1):
        line = lines[index]
        if not line.strip() or len(indentation(line)) >= indent:
            continue
        if re.match(r"\s*class\s+" + re.escape(name) + r"\b", line):
            header = index
            while index > 0 and lines[index - 1].strip().startswith("@"):
                index -= 1
            return index, header
        if not line.lstrip().startswith(("#", "@", ")", "]", "}")):
            indent = len(indentation(line))
    return None
