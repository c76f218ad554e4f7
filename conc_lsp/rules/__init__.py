"""The rules: one module per rule (``concNNN_name.py``), each binding its
``Rule`` instance to ``RULE``; the module's docstring is its documentation."""

from __future__ import annotations

import importlib
import os
from functools import cache

from conc_lsp.rules.base import Rule


@cache
def all_rules() -> dict[str, Rule]:
    """Every rule, by code, in code order."""
    found: dict[str, Rule] = {}
    for name in _rule_modules():
        module = importlib.import_module(f"{__name__}.{name}")
        rule = getattr(module, "RULE", None)
        if not isinstance(rule, Rule):
            raise TypeError(f"{module.__name__} binds no Rule to RULE")
        found[rule.code] = rule
    return dict(sorted(found.items()))


def _rule_modules() -> list[str]:
    """The rule modules' names, sorted: ``concNNN_*.py`` files and ``concNNN_*/``
    packages (a scan of the folder: pkgutil's import costs more, start-up cost)."""
    names = set()
    for folder in __path__:
        for entry in os.scandir(folder):
            if not entry.name.startswith("conc"):
                continue
            if entry.name.endswith(".py") and entry.is_file():
                names.add(entry.name.removesuffix(".py"))
            elif entry.is_dir() and os.path.isfile(os.path.join(entry.path, "__init__.py")):
                names.add(entry.name)
    return sorted(names)


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
