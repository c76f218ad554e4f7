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
    line: int  # 0-based, where the lens goes (the first decorator or the `def`/`class`)
    checkpoints: int
    findings: int
    kind: str  # "function" | "class"


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
            found.append(
                LensTarget(
                    function.qualname,
                    span(function)[0],
                    checkpoints,
                    counts.get(function.qualname, 0),
                    "function",
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
        line = _class_line(lines, owner, span(methods[0])[0])
        if line is None:
            continue
        checkpoints = sum(
            1
            for method in methods
            for e in method.events
            if e.kind is EventKind.CHECKPOINT and not e.exit
        )
        total = sum(count for qualname, count in counts.items() if qualname.startswith(owner + "."))
        found.append(LensTarget(owner, line, checkpoints, total, "class"))
    found.sort(key=lambda target: (target.line, target.qualname))
    return found


def _class_line(lines: list[str], qualname: str, method_line: int) -> int | None:
    """The line of `class Name` (or its first decorator) above a method."""
    name = qualname.rsplit(".", 1)[-1]
    indent = len(indentation(lines[method_line])) if method_line < len(lines) else 0
    for index in range(method_line, -1, -1):
        line = lines[index]
        if not line.strip() or len(indentation(line)) >= indent:
            continue
        if re.match(r"\s*class\s+" + re.escape(name) + r"\b", line):
            while index > 0 and lines[index - 1].strip().startswith("@"):
                index -= 1
            return index
        if not line.lstrip().startswith(("#", "@", ")", "]", "}")):
            indent = len(indentation(line))
    return None
