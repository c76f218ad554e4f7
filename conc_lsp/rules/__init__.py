"""The rules: one module per rule (``concNNN_name.py``), each binding its
``Rule`` instance to ``RULE``; the module's docstring is its documentation."""

from __future__ import annotations

import importlib
import pkgutil
from functools import cache

from conc_lsp.rules.base import Rule


@cache
def all_rules() -> dict[str, Rule]:
    """Every rule, by code, in code order."""
    found: dict[str, Rule] = {}
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda module: module.name):
        if not info.name.startswith("conc"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        rule = getattr(module, "RULE", None)
        if not isinstance(rule, Rule):
            raise TypeError(f"{module.__name__} binds no Rule to RULE")
        found[rule.code] = rule
    return dict(sorted(found.items()))


def find_rule(code_or_name: str) -> Rule | None:
    wanted = code_or_name.strip()
    for rule in all_rules().values():
        if wanted.upper() == rule.code or wanted.lower() == rule.name:
            return rule
    return None


def fixable_codes() -> frozenset[str]:
    """The rules that offer a quick fix (they override ``Rule.fix``)."""
    return frozenset(code for code, rule in all_rules().items() if type(rule).fix is not Rule.fix)


def opt_in_codes() -> frozenset[str]:
    return frozenset(code for code, rule in all_rules().items() if rule.opt_in)
