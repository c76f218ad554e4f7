"""The rules: one module per rule; each module's docstring is its documentation."""

from __future__ import annotations

import importlib
import pkgutil
from functools import cache
from types import ModuleType

from conc_lsp.rules.base import Rule


@cache
def all_rules() -> dict[str, Rule]:
    """Every rule, by code, in code order."""
    found: dict[str, Rule] = {}
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda module: module.name):
        if not info.name.startswith("conc"):
            continue
        module: ModuleType = importlib.import_module(f"{__name__}.{info.name}")
        doc = (module.__doc__ or "").strip()
        body = doc.split("\n", 1)[1] if "\n" in doc else ""
        summary = body.split("## What it does", 1)[-1].strip().split("\n\n", 1)[0]
        rule = Rule(
            code=module.CODE,
            name=module.NAME,
            severity=module.SEVERITY,
            check=module.check,
            doc=doc,
            summary=" ".join(summary.split()),
            uses_resolution=getattr(module, "USES_RESOLUTION", False),
        )
        found[rule.code] = rule
    return found


def find_rule(code_or_name: str) -> Rule | None:
    wanted = code_or_name.strip()
    for rule in all_rules().values():
        if wanted.upper() == rule.code or wanted.lower() == rule.name:
            return rule
    return None
