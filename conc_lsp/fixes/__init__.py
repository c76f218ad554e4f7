"""Quick fixes: libcst transformations of one function, turned into minimal edits.

Each fix works on the source of the function that holds the finding only
(libcst on a whole file costs seconds), parses it with libcst, transforms
it, and keeps from the result only the lines that changed: comments and
formatting elsewhere are untouched, byte for byte.
"""

from __future__ import annotations

from collections.abc import Callable

from conc_lsp.analysis.flow import ModuleFacts
from conc_lsp.analysis.model import Finding, Fix
from conc_lsp.fixes import transforms
from conc_lsp.fixes.transforms import FixContext

FixMaker = Callable[[Finding, ModuleFacts, FixContext], Fix | None]

FIXERS: dict[str, FixMaker] = {
    "CONC101": transforms.bound_wait,
    "CONC102": transforms.shield_cleanup,
    "CONC103": transforms.release_in_finally,
    "CONC110": transforms.remove_pointless_scope,
    "CONC111": transforms.insert_checkpoints,
    "CONC201": transforms.close_gap,
    "CONC202": transforms.atomic_pop,
    "CONC203": transforms.per_key_counter,
    "CONC302": transforms.set_in_finally,
    "CONC401": transforms.drain_pipes,
}

FIXABLE = frozenset(FIXERS)

__all__ = ["FIXABLE", "FIXERS", "FixContext", "fix_for"]


def fix_for(finding: Finding, facts: ModuleFacts, context: FixContext) -> Fix | None:
    """The quick fix of a finding, or None when no sound mechanical fix exists."""
    maker = FIXERS.get(finding.code)
    if maker is None:
        return None
    try:
        return maker(finding, facts, context)
    except Exception:  # noqa: BLE001 - a fix that cannot be computed is simply not offered
        return None
