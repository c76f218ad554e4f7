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
import re
import unicodedata
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from itertools import accumulate
from operator import add

from conc_lsp.analysis.libraries import ImportTable
from conc_lsp.analysis.library_choice import (
    ANYIO,
    LEVEL_TRIGGERED,
    TRIO,
    families,
    function_library,
)
from conc_lsp.analysis.model import Context, Hint, HintKind, Location, Resolution, Verdict
from conc_lsp.analysis.text import end_position

# The characters of a name in ASCII source.
NAME_CHARACTERS = re.compile(r"[A-Za-z0-9_]*")


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


@dataclass(slots=True, eq=False)
class FunctionFacts:
    """One function's facts. Its events, loops and scopes come from a walk of
    its body made on first use (``walk``, set by ``flow.py``): the default
    rules read the events of few functions, so most are never walked."""

    qualname: str
    name: str
    node: ast.FunctionDef | ast.AsyncFunctionDef
    class_name: str | None
    is_async: bool
    is_acm: bool
    memo: dict[str, object] = field(default_factory=dict)  # per-function caches of the rules
    walk: Callable[[FunctionFacts], None] | None = None  # fills the three lists below, once
    # False when no `with` of the function opens a timeout scope: ``scopes`` is
    # then empty without a walk.
    may_have_scopes: bool = True
    found_events: list[Event] = field(default_factory=list)
    found_loops: list[Loop] = field(default_factory=list)
    found_scopes: list[Scope] = field(default_factory=list)

    def walked(self) -> FunctionFacts:
        """The facts, once the walk has run (it runs at most once)."""
        walk = self.walk
        if walk is not None:
            self.walk = None  # first: the walk reads its own events as it goes
            walk(self)
        return self

    # The three lists below are read in the rules' inner loops: no call once walked.

    @property
    def events(self) -> list[Event]:
        if self.walk is not None:
            self.walked()
        return self.found_events

    @property
    def loops(self) -> list[Loop]:
        """The `for` loops over shared state."""
        if self.walk is not None:
            self.walked()
        return self.found_loops

    @property
    def scopes(self) -> list[Scope]:
        """The bounded cancel scopes (`with move_on_after(...)`); without a
        `with` that opens one, empty without a walk."""
        if self.walk is not None and self.may_have_scopes:
            self.walked()
        return self.found_scopes

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
    # The module's hints, from the walk that lists the events (``flow.py``): the
    # functions whose events nobody has read yet are walked once for both.
    walk_hints: Callable[[], list[Hint]] | None = None

    def hints(self) -> list[Hint]:
        """The module's hints (of the parsed tree the facts come from)."""
        return self.walk_hints() if self.walk_hints is not None else []

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

    def functions_naming(
        self,
        words: frozenset[str],
        accept: Callable[[str], bool],
        among: list[FunctionFacts] | None = None,
    ) -> list[FunctionFacts]:
        """The functions (of ``among``, default all), in order, whose lines hold
        a name that contains one of ``words`` (any case) and that ``accept``
        takes: `functions_naming(LOCK_WORDS, is_lock_text)`. The names of a
        function's events (its states, methods, receivers) all stand in its own
        lines, so a rule looking for an event named so can skip the other
        functions without walking them."""
        functions = self.functions if among is None else among
        if not functions:
            return []
        names = self._names()
        text, lowered, backwards = names.text, names.lowered, names.backwards
        # All functions: the whole text at once (the lines between them count for none).
        spans = None if among is None else [names.span(function.node) for function in among]
        searched = [(0, len(text))] if spans is None else _merged(spans)
        found: list[int] = []  # where accepted names start
        accepted: dict[str, bool] = {}
        for word in _shortest(words):
            for low, high in searched:
                at = lowered.find(word, low, high)
                while at >= 0:
                    start = len(text) - _name_end(backwards, len(text) - at)
                    end = _name_end(text, at)
                    name = text[start:end]
                    taken = accepted.get(name)
                    if taken is None:
                        taken = accepted[name] = accept(name)
                    if taken:
                        found.append(at)
                    at = lowered.find(word, max(end, at + 1), high)
        if not found:
            return []
        starts = names.starts
        lines = sorted({bisect.bisect_right(starts, at) for at in found})  # 1-based
        return [
            function
            for function in functions
            if _any_between(lines, function.node.lineno, function.node.end_lineno)
        ]

    def _names(self) -> _NameText:
        memo = self.memo.get("name-text")
        if not isinstance(memo, _NameText):
            memo = self.memo["name-text"] = _NameText.of(self.lines)
        return memo

    def source(self, span: Location) -> str:
        """The first line of the source at ``span``, stripped."""
        if 0 <= span.line < len(self.lines):
            return self.lines[span.line].strip()
        return ""


@dataclass(frozen=True, slots=True)
class _NameText:
    """A module's text as the parser reads its names (NFKC; any other non-ASCII
    character a `?`), in lower case and backwards too, with its line lengths."""

    text: str
    lowered: str
    backwards: str
    starts: list[int]  # where each line starts

    @classmethod
    def of(cls, lines: list[str]) -> _NameText:
        text = "\n".join(lines)
        if not text.isascii():
            lines = [
                line
                if line.isascii()
                else unicodedata.normalize("NFKC", line).encode("ascii", "replace").decode("ascii")
                for line in lines
            ]
            text = "\n".join(lines)
        # A line starts after the lines before it and their line ends (in C: many lines).
        starts = [0, *map(add, accumulate(map(len, lines)), range(1, len(lines)))]
        return cls(text, text.lower(), text[::-1], starts)

    def span(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> tuple[int, int]:
        """The offsets of the node's lines, from the start of the first to the end of the last."""
        after = node.end_lineno or node.lineno  # 0-based index of the line after
        return self.starts[node.lineno - 1], (
            self.starts[after] if after < len(self.starts) else len(self.text)
        )


def _name_end(text: str, at: int) -> int:
    """Where the name characters from ``at`` end."""
    match = NAME_CHARACTERS.match(text, at)
    return match.end() if match else at


@lru_cache(maxsize=64)
def _shortest(words: frozenset[str]) -> frozenset[str]:
    """The words in lower case, less those holding another ("lock" finds "locks")."""
    lowered = {word.lower() for word in words}
    return frozenset(
        word for word in lowered if not any(other != word and other in word for other in lowered)
    )


def _merged(spans: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    """Offset ranges, sorted, overlapping ones joined (a nested function's lies in its parent's)."""
    merged: list[tuple[int, int]] = []
    for low, high in sorted(spans):
        if merged and low <= merged[-1][1]:
            if high > merged[-1][1]:
                merged[-1] = (merged[-1][0], high)
        else:
            merged.append((low, high))
    return merged


def _any_between(ordered: list[int], first: int, last: int | None) -> bool:
    """Whether a number of ``ordered`` lies in [first, last]."""
    index = bisect.bisect_left(ordered, first)
    return index < len(ordered) and ordered[index] <= (last or first)


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
