"""Resolve only the checkpoints whose verdict an enabled rule reads.

jedi is what `check --resolve` waits for, and most checkpoints' verdicts are
read by no rule: with the default rules only the `async with` items (their
sides shape the flow events) and the checkpoints of timeout bodies (CONC110)
matter; CONC111 reads those of functions in trio / anyio modules and of
`while True:` loops; CONC101-CONC104 those on cleanup paths. Rather than a
list of what each rule reads (which would drift from the rules), the rules
are run and asked: their view of the module gets a mapping of resolutions
that notes every checkpoint looked up. Those are resolved and the rules run
again with the answers, which may lead them to look up more (CONC110 reads
the next checkpoint of a body only when the first never yields), until they
ask for nothing new. In the last run every checkpoint a rule read had its
real verdict, so their findings are those of resolving everything.
"""

from __future__ import annotations

import ast
import time
from typing import Any

from conc_lsp.analysis.flow import module_facts
from conc_lsp.analysis.model import Anchor, HintKey, Resolution
from conc_lsp.analysis.resolve import DocumentResolution, Resolver
from conc_lsp.config import Settings
from conc_lsp.diagnose import ParsedModule, parse_module
from conc_lsp.rules import all_rules

MAX_ROUNDS = 8  # rules that keep asking for more stop here (each round adds some)


class AskedResolutions(dict[Anchor, Resolution]):
    """Resolutions by anchor that note every anchor looked up; true even when
    empty, so that the rules take the module as resolved."""

    def __init__(self, known: dict[Anchor, Resolution]) -> None:
        super().__init__(known)
        self.asked: set[Anchor] = set()

    def __bool__(self) -> bool:
        return True

    def get(self, key: Anchor, default: Any = None) -> Any:
        self.asked.add(key)
        return super().get(key, default)

    def __getitem__(self, key: Anchor) -> Resolution:
        self.asked.add(key)
        return super().__getitem__(key)

    def __contains__(self, key: object) -> bool:
        if isinstance(key, tuple):
            self.asked.add(key)
        return super().__contains__(key)


def asked_checkpoints(
    tree: ast.Module,
    lines: list[str],
    settings: Settings,
    path: str | None,
    known: dict[Anchor, Resolution],
) -> set[Anchor]:
    """The checkpoints (by anchor) whose resolution the enabled rules read,
    given what is ``known`` so far."""
    asked = AskedResolutions(known)
    facts = module_facts(tree, lines, resolved=asked, path=path)
    for rule in all_rules().values():
        if not settings.rule_enabled(rule.code, path, opt_in=rule.opt_in):
            continue
        try:
            for _ in rule.check(facts):
                pass
        except Exception:  # noqa: BLE001 - check_lines reports a broken rule
            continue
    return asked.asked


def resolve_for_rules(
    resolver: Resolver,
    lines: list[str],
    path: str,
    settings: Settings,
    budget: float,
    rules_path: str | None = None,
    parsed: ParsedModule | None = None,
) -> DocumentResolution:
    """Resolve the checkpoints of a document that the enabled rules read
    (``rules_path``: the path the rules see, for per-file settings; ``parsed``:
    ``lines`` already parsed, for the rules to check next)."""
    started = time.monotonic()
    if parsed is None or parsed.lines is not lines:
        parsed = parse_module(lines)
    keys = parsed.keys
    if not keys:  # no checkpoint at all
        return DocumentResolution(complete=True)
    tree = parsed.tree
    # What earlier runs found: often all the rules ask for (one round, no jedi).
    result = resolver.known(lines, path)
    wanted = set(result.attempted)
    known = _by_anchor(keys, result.resolutions)
    for _round in range(MAX_ROUNDS):
        asked = asked_checkpoints(tree, lines, settings, rules_path, known)
        new = {keys[anchor] for anchor in asked if anchor in keys} - wanted
        if not new:
            break
        wanted |= new
        left = max(budget - (time.monotonic() - started), 0.0)
        result = resolver.resolve_lines(lines, path, left, wanted=wanted, hint_keys=keys)
        if not result.complete:
            break
        known = _by_anchor(keys, result.resolutions)
    result.seconds = time.monotonic() - started
    return result


def _by_anchor(
    keys: dict[Anchor, HintKey], found: dict[HintKey, Resolution]
) -> dict[Anchor, Resolution]:
    return {anchor: found[key] for anchor, key in keys.items() if key in found}
