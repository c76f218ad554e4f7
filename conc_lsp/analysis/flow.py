"""A module's facts for the rules (``events.py``): what each function does,
in order, from the one walk (``walk.py``).

For every function the walker lists *events* in (approximate) execution
order: checkpoints (an ``async with`` gives one on entry and one on exit),
calls, and reads, tests and writes of shared state: module globals that hold
containers or are declared ``global``, class attributes, ``self``/``cls``
attributes, and the containers they hold (with the key they are indexed by).
Each event carries its cancellation context, the locks held, and the branch
path it is on, so that rules can tell two events on exclusive branches apart.
"""

from __future__ import annotations

import ast
from functools import partial

from conc_lsp import log
from conc_lsp.analysis.checkpoints import AEXIT_NAMES
from conc_lsp.analysis.events import FunctionFacts, ModuleFacts
from conc_lsp.analysis.fragments import top_level_imports
from conc_lsp.analysis.function_list import opens_timeout_scope, outline
from conc_lsp.analysis.libraries import ImportTable
from conc_lsp.analysis.library_choice import module_library
from conc_lsp.analysis.model import Hint, HintKind, Resolution
from conc_lsp.analysis.shapes import state_globals
from conc_lsp.analysis.walk import FunctionWalk, is_acm
from conc_lsp.analysis.walk_events import FlowModule
from conc_lsp.analysis.walk_hints import MODULE, HintRecorder, WalkedFunction


class _Walker:
    """Lists a module's functions; each is walked (``walk.py``) on first use of its events."""

    def __init__(
        self,
        module: ast.Module,
        lines: list[str],
        table: ImportTable,
        resolved: dict[tuple[int, int, HintKind], Resolution] | None = None,
    ) -> None:
        self.table = table
        self.functions: list[FunctionFacts] = []
        self.outline = outline(module)
        self.classes = frozenset(self.outline.classes)
        self.state_globals = frozenset(state_globals(module) | self.outline.declared_global)
        self.flow = FlowModule(lines, table, self.classes, self.state_globals, resolved)

    @classmethod
    def of(
        cls,
        module: ast.Module,
        lines: list[str],
        table: ImportTable | None = None,
        resolved: dict[tuple[int, int, HintKind], Resolution] | None = None,
    ) -> _Walker:
        """The walker of a module, its functions listed."""
        if table is None:  # the imports the hints resolve names with (``parse.py``)
            table = ImportTable.from_facts(top_level_imports(module))
        walker = cls(module, lines, table, resolved)
        walker.walk_module()
        return walker

    def walk_module(self) -> None:
        for definition in self.outline.functions:
            node = definition.node
            is_async = isinstance(node, ast.AsyncFunctionDef)
            facts = FunctionFacts(
                qualname=definition.qualname,
                name=node.name,
                node=node,
                class_name=definition.class_name,
                is_async=is_async,
                is_acm=is_async and is_acm(node, self.table),
                # not a method of the walker: that would make each function's
                # facts a cycle (walker -> functions -> facts -> walker), freed
                # only by the cyclic collector, with its tree
                walk=partial(walk_function, self.flow),
                may_have_scopes=any(
                    opens_timeout_scope(each, self.table) for each in definition.withs
                ),
            )
            self.functions.append(facts)

    def walk_with_hints(self, module: ast.Module) -> list[Hint]:
        """The module's hints; the functions not walked yet are walked once for
        their events and their hints."""
        recorder = HintRecorder(self.flow.lines, self.table)
        listed = {id(facts.node): facts for facts in self.functions}
        walk = FunctionWalk(MODULE, self.flow, hints=recorder, listed=listed)
        try:
            walk.walk_body(module.body)
        except RecursionError:  # deeper than Python's stack: keep what was found so far
            log.warning("the module nests too deeply: hints and facts cut")
        return recorder.hints


def walk_function(flow: FlowModule, facts: FunctionFacts) -> None:
    """Walk one function for its events (on first use of them)."""
    node = facts.node
    function = WalkedFunction(
        facts.qualname, facts.is_acm, node.name in AEXIT_NAMES, facts.is_async
    )
    try:
        FunctionWalk(function, flow, facts=facts).walk_body(node.body)
    except RecursionError:  # deeper than Python's stack: keep the events found so far
        log.warning("line %d: `%s` nests too deeply: facts cut", node.lineno, facts.qualname)


def module_facts(
    module: ast.Module,
    lines: list[str],
    table: ImportTable | None = None,
    resolved: dict[tuple[int, int, HintKind], Resolution] | None = None,
    path: str | None = None,
) -> ModuleFacts:
    """The rules' view of a parsed module; ``resolved`` (by checkpoint anchor)
    refines it: `async with` sides that never yield, locks known by type;
    ``path`` lets the module's package tell its library when its imports do not."""
    return _facts(_Walker.of(module, lines, table, resolved), module, path)


def _facts(walker: _Walker, module: ast.Module, path: str | None) -> ModuleFacts:
    lines, table = walker.flow.lines, walker.table
    return ModuleFacts(
        functions=walker.functions,
        table=table,
        lines=lines,
        classes=walker.classes,
        state_globals=walker.state_globals,
        resolved=walker.flow.resolved,
        library=module_library(table, lines, path),
        walk_hints=partial(walker.walk_with_hints, module),
    )
