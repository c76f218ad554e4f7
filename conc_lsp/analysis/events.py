"""The rules' facts: what each function does, in order, as *events*.

``flow.py`` walks a module to produce them; the rules, the fixes and the
report read them. For every function the walker lists events in
(approximate) execution order: checkpoints (an ``async with`` gives one on
entry and one on exit), calls, and reads, tests and writes of shared state:
module globals that hold containers or are declared ``global``, class
attributes, ``self``/``cls`` attributes, and the containers they hold (with
the key they are indexed by). Each event carries its cancellation context,
the locks held, and the branch path it is on, so that rules can tell two
events on exclusive branches apart.
"""

from __future__ import annotations

import ast
import bisect
import enum
from collections.abc import Iterator
from dataclasses import dataclass, field

from conc_lsp.analysis.libraries import ImportTable
from conc_lsp.analysis.library_choice import (
    ANYIO,
    LEVEL_TRIGGERED,
    TRIO,
    families,
    function_library,
)
from conc_lsp.analysis.model import Context, HintKind, Location, Resolution, Verdict
from conc_lsp.analysis.text import end_position


class EventKind(enum.Enum):
    CHECKPOINT = "checkpoint"
    CALL = "call"
    READ = "read"
    TEST = "test"
    WRITE = "write"


@dataclass(slots=True)
class Event:
    """One thing a function does, in execution order (``order``), with where it
    is (``location``, ``node``), its cancellation ``context``, the mutexes held
    (``guards``: the `async with` blocks around it) and its branch ``path``.

    Which fields each kind sets (the rest keep their defaults):

    - CHECKPOINT: ``exit`` and ``entry_block`` (the exit of an `async with`),
      ``awaited`` (an `await`), ``handler``, ``cleanup_block``.
    - CALL: ``method``, ``receiver``, ``callee``, ``awaited``, ``argument``,
      ``arguments``, ``handler``, ``cleanup_block``.
    - READ: ``state``, ``owner``, ``key``, ``method`` (a reading method such
      as `get`), ``has_default``.
    - TEST: ``state``, ``owner``, ``key`` (`k in d`, `if self.x:`).
    - WRITE: ``state``, ``owner``, ``key``, ``method`` (a mutating method such
      as `pop`), ``removal``, ``augmented``, ``has_default``.
    """

    kind: EventKind
    location: Location
    context: Context
    path: tuple[tuple[int, int], ...]
    order: int
    guards: frozenset[str]
    node: ast.AST
    state: str | None = None  # "Cache.values"
    owner: str | None = None  # "Cache" or "<module>"
    key: str | None = None  # "ctx_key" for Cache.values[ctx_key]
    method: str | None = None  # calls and method-based accesses: "pop"
    receiver: str | None = None  # calls: "self._closed" of self._closed.set()
    callee: str | None = None  # calls: resolved dotted name
    awaited: bool = False
    exit: bool = False  # the exit checkpoint of an `async with`
    removal: bool = False  # pop / del / discard / remove / clear
    has_default: bool = False  # pop(k, default) / get(k, default)
    augmented: bool = False  # `x += 1`: a read-modify-write
    argument: str | None = None  # calls: the first positional argument's text
    arguments: int = 0  # calls: how many arguments
    handler: int = 0  # id of the innermost except handler (0: none)
    cleanup_block: int = 0  # id of the innermost finally / handler / teardown block
    entry_block: int = 0  # an `async with` exit: the cleanup block it was entered in


@dataclass(slots=True)
class Loop:
    """A `for` over shared state, with the checkpoints in its body."""

    location: Location
    state: str
    checkpoints: list[Event] = field(default_factory=list)


@dataclass(slots=True)
class Scope:
    """A bounded cancel scope (`with move_on_after(...)`) and its body's checkpoints."""

    location: Location
    name: str
    checkpoints: int = 0
    node: ast.With | ast.AsyncWith | None = None


@dataclass(slots=True)
class FunctionFacts:
    qualname: str
    name: str
    node: ast.FunctionDef | ast.AsyncFunctionDef
    class_name: str | None
    is_async: bool
    is_acm: bool
    events: list[Event] = field(default_factory=list)
    loops: list[Loop] = field(default_factory=list)
    scopes: list[Scope] = field(default_factory=list)
    memo: dict[str, object] = field(default_factory=dict)  # per-function caches of the rules

    @property
    def checkpoints(self) -> list[Event]:
        """The checkpoint events, in order (computed once; do not change the list)."""
        return self._checkpoints()[0]

    def _checkpoints(self) -> tuple[list[Event], list[int]]:
        memo = self.memo.get("checkpoints")
        # Keyed by the number of events: the walker is still appending while it runs.
        if not isinstance(memo, tuple) or memo[0] != len(self.events):
            found = [event for event in self.events if event.kind is EventKind.CHECKPOINT]
            memo = self.memo["checkpoints"] = (
                len(self.events),
                found,
                [event.order for event in found],
            )
        return memo[1], memo[2]

    def checkpoints_in(self, cleanup_block: int) -> list[Event]:
        """The checkpoints of one cleanup block (``Event.cleanup_block``), in order."""
        memo = self.memo.get("checkpoints-by-block")
        if not isinstance(memo, tuple) or memo[0] != len(self.events):
            blocks: dict[int, list[Event]] = {}
            for event in self.checkpoints:
                blocks.setdefault(event.cleanup_block, []).append(event)
            memo = self.memo["checkpoints-by-block"] = (len(self.events), blocks)
        found: list[Event] = memo[1].get(cleanup_block, [])
        return found

    def checkpoints_between(self, first: Event, second: Event) -> list[Event]:
        """Checkpoints after ``first`` and before ``second`` on a path through both."""
        found, orders = self._checkpoints()
        start = bisect.bisect_right(orders, first.order)
        stop = bisect.bisect_left(orders, second.order, start)
        return [
            event
            for event in found[start:stop]
            if not exclusive(event, first) and not exclusive(event, second)
        ]


@dataclass(slots=True)
class ModuleFacts:
    functions: list[FunctionFacts]
    table: ImportTable
    lines: list[str]
    classes: frozenset[str]
    state_globals: frozenset[str]
    # What resolving the callees found, by the checkpoint's anchor: the end
    # (0-based line, code-point column) of the await / context manager /
    # iterable, and its kind. Empty when nothing was resolved.
    resolved: dict[tuple[int, int, HintKind], Resolution] = field(default_factory=dict)
    # The async library the module runs under ("trio", "anyio", "asyncio"), None
    # when unknown or mixed (see ``analysis/library_choice.py``).
    library: str | None = None
    memo: dict[str, object] = field(default_factory=dict)  # per-module caches of the rules

    @property
    def libraries(self) -> frozenset[str]:
        """The async libraries among the module's imports."""
        return self.table.libraries

    def library_of(self, function: FunctionFacts) -> str | None:
        """The library ``function`` runs under: the module's, else (a module
        importing several) the one whose names the function uses."""
        if self.library is not None:
            return self.library
        memo = function.memo.get("library")
        if memo is None:
            found = function_library(function.node, self.table)
            if found is None:  # names no library: the level-triggered one imported, if any
                found = next((name for name in (TRIO, ANYIO) if name in self.families), None)
            memo = function.memo["library"] = found or ""
        return str(memo) or None

    @property
    def families(self) -> frozenset[str]:
        """The library families imported (tractor counts as trio)."""
        return families(self.table.libraries)

    def level_triggered(self, function: FunctionFacts) -> bool:
        """Cancellation raises again at every checkpoint of a cancelled scope
        (trio, anyio); False for asyncio and for an unknown library."""
        return self.library_of(function) in LEVEL_TRIGGERED

    def resolution_of(self, node: ast.AST, kind: HintKind) -> Resolution | None:
        """The resolution of the checkpoint anchored at the end of ``node``."""
        if not self.resolved:
            return None
        return self.resolved.get((*end_position(self.lines, node), kind))

    def verdict_of(self, node: ast.AST, kind: HintKind) -> Verdict:
        """How surely the checkpoint at ``node`` checkpoints (unknown when unresolved)."""
        found = self.resolution_of(node, kind)
        return found.verdict if found is not None else Verdict.UNKNOWN

    def function(self, qualname: str) -> FunctionFacts | None:
        """The first function named ``qualname`` (overloads share one)."""
        memo = self.memo.get("functions-by-qualname")
        if not isinstance(memo, dict):
            by_name: dict[str, FunctionFacts] = {}
            for function in self.functions:
                by_name.setdefault(function.qualname, function)
            memo = self.memo["functions-by-qualname"] = by_name
        found: FunctionFacts | None = memo.get(qualname)
        return found

    def functions_named(self, name: str) -> list[FunctionFacts]:
        """Every function whose own name is ``name`` (`stop` of `Server.stop`), in order."""
        memo = self.memo.get("functions-by-name")
        if not isinstance(memo, dict):
            by_name: dict[str, list[FunctionFacts]] = {}
            for function in self.functions:
                by_name.setdefault(function.name, []).append(function)
            memo = self.memo["functions-by-name"] = by_name
        found: list[FunctionFacts] = memo.get(name, [])
        return found

    def calls(self, method: str) -> Iterator[tuple[FunctionFacts, Event]]:
        """The calls of ``method`` (`x.method()` or `method()`), in order."""
        memo = self.memo.get("calls-by-method")
        if not isinstance(memo, dict):
            by_method: dict[str | None, list[tuple[FunctionFacts, Event]]] = {}
            for function in self.functions:
                for event in function.events:
                    if event.kind is EventKind.CALL:
                        by_method.setdefault(event.method, []).append((function, event))
            memo = self.memo["calls-by-method"] = by_method
        found: list[tuple[FunctionFacts, Event]] = memo.get(method, [])
        return iter(found)

    def source(self, span: Location) -> str:
        """The first line of the source at ``span``, stripped."""
        if 0 <= span.line < len(self.lines):
            return self.lines[span.line].strip()
        return ""


def exclusive(first: Event, second: Event) -> bool:
    """True when the two events sit on different branches of one `if`/`try`/`match`."""
    if not first.path or not second.path:
        return False
    branches = dict(first.path)
    return any(branches.get(node, branch) != branch for node, branch in second.path)


def event_name(receiver: str | None) -> str:
    """The last name of a receiver: `self._closed` -> `_closed`; for pairing waits and sets."""
    if not receiver:
        return ""
    return receiver.rsplit(".", 1)[-1].split("[", 1)[0]
