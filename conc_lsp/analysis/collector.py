"""The hints of one parsed piece of code: the one walk (``walk.py``) run for
hints alone over the code outside functions, entering each function and
class where it stands.

Statements and expressions whose lines hold none of the keywords that can
start a hint are skipped without a visit: that keeps the walk far cheaper
than the parse itself.
"""

from __future__ import annotations

import ast

from conc_lsp.analysis.fragments import top_level_imports
from conc_lsp.analysis.keywords import keyword_line_counts, line_starts_of
from conc_lsp.analysis.libraries import ImportTable
from conc_lsp.analysis.model import Hint
from conc_lsp.analysis.walk import FunctionWalk
from conc_lsp.analysis.walk_events import FlowModule
from conc_lsp.analysis.walk_hints import MODULE, HintRecorder, WalkedFunction


class Collector:
    """Collects the hints of one parsed module fragment.

    ``lines`` are the lines the tree was parsed from; ``column_offset`` is
    added to every column (for fragments that were dedented before parsing)
    and ``prefix`` to every function name (for methods parsed apart from
    their class).
    """

    walk_type: type[FunctionWalk] = FunctionWalk

    def __init__(
        self,
        lines: list[str],
        table: ImportTable,
        keyword_counts: list[int],
        *,
        column_offset: int = 0,
        prefix: str = "",
    ) -> None:
        self.recorder = HintRecorder(lines, table, keyword_counts, column_offset=column_offset)
        self.flow = FlowModule(lines, table, frozenset(), frozenset())
        self.prefix = prefix

    @property
    def hints(self) -> list[Hint]:
        return self.recorder.hints

    def walk(self, function: WalkedFunction, prefix: str) -> FunctionWalk:
        """A walk for hints of the code of ``function``."""
        return self.walk_type(function, self.flow, hints=self.recorder, prefix=prefix)

    def collect(self, tree: ast.Module) -> list[Hint]:
        self.walk(MODULE, self.prefix).walk_body(tree.body)
        return self.hints


def tree_hints(tree: ast.Module, lines: list[str]) -> list[Hint]:
    """The hints of a whole parsed module (the chunked analysis of
    ``parse.py`` gives the same for text that parses)."""
    counts = keyword_line_counts("\n".join(lines), line_starts_of(lines))
    table = ImportTable.from_facts(top_level_imports(tree))
    return Collector(lines, table, counts).collect(tree)
