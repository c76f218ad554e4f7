"""The rules: one module per rule (``concNNN_name.py``), each binding its
``Rule`` instance to ``RULE``; the module's docstring is its documentation."""

from __future__ import annotations

import importlib
import os
from functools import cache
from typing import Protocol

from conc_lsp.rules.base import Rule
from conc_lsp.rules.index import RULES


@cache
def all_rules() -> dict[str, Rule]:
    """Every rule, by code, in code order."""
    found = [_rule_in(name) for name in _rule_modules()]
    return dict(sorted((rule.code, rule) for rule in found))


class RuleSelection(Protocol):
    """What decides which rules run (``conc_lsp.config.Settings``)."""

    def rule_enabled(self, code: str, path: str | None = None, *, opt_in: bool = False) -> bool: ...


def enabled_rules(selection: RuleSelection, path: str | None = None) -> list[Rule]:
    """The rules that run for ``path``, in code order, importing only their modules."""
    if not _index_is_current():
        return [
            rule
            for rule in all_rules().values()
            if selection.rule_enabled(rule.code, path, opt_in=rule.opt_in)
        ]
    return [
        _rule_in(module)
        for code, (module, opt_in) in RULES.items()
        if selection.rule_enabled(code, path, opt_in=opt_in)
    ]


def rule_for(code: str) -> Rule | None:
    """The rule of ``code``, importing only its module."""
    if code in RULES and _index_is_current():
        return _rule_in(RULES[code][0])
    return all_rules().get(code)


def known_codes() -> list[str]:
    """Every rule's code, without importing the rules when the index is current."""
    return list(RULES) if _index_is_current() else list(all_rules())


@cache
def _rule_in(name: str) -> Rule:
    module = importlib.import_module(f"{__name__}.{name}")
    rule = getattr(module, "RULE", None)
    if not isinstance(rule, Rule):
        raise TypeError(f"{module.__name__} binds no Rule to RULE")
    return rule


@cache
def _index_is_current() -> bool:
    """The folder holds the modules the index names, no more, no fewer."""
    return set(_rule_modules()) == {module for module, _opt_in in RULES.values()}


@cache
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
