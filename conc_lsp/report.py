"""The concurrency report: the conc-anal seed's six-part analysis, generated.

For a target (the whole module, a line range, or a function or class by its
qualified name) the report gives, from the flow facts and the rules' findings:

1. the shared state that more than one task can touch, with its writers and
   readers (and the task entry points that reach them) and the lock that
   guards it, or ``UNGUARDED``;
2. every checkpoint and look-alike of the target, per function, in the seed's
   ``L325: await lock.acquire() <- CHECKPOINT`` notation;
3. for each finding, an interleaved trace of two tasks built from the
   finding's own lines, with the race window named by its step numbers;
4. the class of each bug (TOCTOU, stale reference, lifetime mismatch, missing
   guard, atomicity gap; deadlock and ineffective timeout where none of the
   seed's five fits) with the rule that found it;
5. fixes: the rule's quick fix as a unified diff where there is one, a sketch
   otherwise, with the trace steps it removes, trade-offs, risk and effort;
6. a one-paragraph summary on top.

Pure analysis: no LSP types. `render_markdown` gives the seed's section 6
layout, `to_json` the same content as data. Line references are kept as
``[[L12]]`` tokens in the texts and become links (``[L12](file.py#L12)``) in
markdown and plain ``L12`` in JSON.
"""

from __future__ import annotations

import ast
import difflib
import io
import re
import tokenize
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from conc_lsp.analysis.facts import name_words
from conc_lsp.analysis.flow import Event, EventKind, FunctionFacts, ModuleFacts, exclusive
from conc_lsp.analysis.model import (
    Finding,
    Hint,
    HintKind,
    Location,
    ModuleAnalysis,
    TextEdit,
)
from conc_lsp.analysis.text import apply_edits, utf8_to_codepoint
from conc_lsp.config import Settings
from conc_lsp.labels import context_tags

INITIALISERS = frozenset({"__init__", "__post_init__", "__new__"})
SPAWN_METHODS = frozenset({"start", "start_soon", "create_task", "ensure_future"})
ACCESS_KINDS = (EventKind.READ, EventKind.WRITE, EventKind.TEST)
# A semaphore or capacity limiter lets several tasks in: it guards no state.
NOT_MUTEX_WORDS = frozenset({"sem", "sems", "semaphore", "semaphores", "limiter", "limiters"})
MUTEX_WORDS = frozenset(
    {"lock", "locks", "rlock", "rlocks", "mutex", "mutexes", "mtx", "lk", "condition", "cond"}
)
REF = re.compile(r"\[\[L(\d+)\]\]")
CODE_WIDTH = 72
# Which finding's race the summary leads with: the races first, then the hangs.
PRIORITY = (
    "CONC204",
    "CONC201",
    "CONC202",
    "CONC301",
    "CONC203",
    "CONC302",
    "CONC101",
    "CONC103",
    "CONC102",
    "CONC401",
    "CONC110",
)


# -- the report's data ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Target:
    """What the report is about: ``module``, ``function`` (a qualname, function or
    class) or ``range`` (0-based, inclusive lines)."""

    kind: str = "module"
    qualname: str | None = None
    start: int | None = None
    end: int | None = None

    @classmethod
    def function(cls, qualname: str) -> Target:
        return cls("function", qualname=qualname)

    @classmethod
    def lines(cls, start: int, end: int) -> Target:
        return cls("range", start=min(start, end), end=max(start, end))

    def label(self, name: str) -> str:
        if self.kind == "function":
            return f"{self.qualname}"
        if self.kind == "range" and self.start is not None and self.end is not None:
            return f"{name}:{self.start + 1}-{self.end + 1}"
        return name


@dataclass(slots=True)
class StateRow:
    state: str
    scope: str  # "class attribute", "instance attribute", "module global"
    writers: list[str]
    readers: list[str]
    guard: str | None  # the lock's description, None for UNGUARDED
    exceptions: list[str]  # accesses without the guard: "[[L41]] in `run_ctx`"
    held_at: list[int]  # for UNGUARDED: lines where some lock is held
    lines: list[int]  # every access (0-based)

    @property
    def guard_text(self) -> str:
        if self.guard is None:
            if self.held_at:
                where = ", ".join(_ref(line) for line in self.held_at)
                return f"UNGUARDED (a lock is held at {where} only)"
            return "UNGUARDED"
        if self.exceptions:
            return f"{self.guard}, except {', '.join(self.exceptions)}"
        return self.guard


@dataclass(slots=True)
class Mark:
    line: int
    code: str
    mark: str
    kind: str
    is_checkpoint: bool


@dataclass(slots=True)
class FunctionMarks:
    function: str
    line: int
    marks: list[Mark]


@dataclass(slots=True)
class Step:
    number: int
    task: str
    line: int | None
    code: str | None
    text: str


@dataclass(slots=True)
class Trace:
    tasks: list[str]  # one sentence per task: who runs what
    steps: list[Step]
    window: tuple[int, int] | None
    window_text: str
    roles: dict[str, int] = field(default_factory=dict)  # role -> step number

    def step(self, role: str) -> int | None:
        return self.roles.get(role)

    def steps_text(self, first: str, last: str | None = None) -> str:
        """`step 3` / `steps 3-5` for two roles (the ones that exist)."""
        numbers = [n for n in (self.roles.get(first), self.roles.get(last or first)) if n]
        if not numbers:
            return "the window"
        low, high = min(numbers), max(numbers)
        return f"step {low}" if low == high else f"steps {low}-{high}"

    @property
    def window_words(self) -> str:
        if self.window is None:
            return "the window"
        low, high = self.window
        return f"step {low}" if low == high else f"steps {low}-{high}"


@dataclass(slots=True)
class ProposedFix:
    title: str
    # "diff" (the rule's quick fix), "sketch-diff" (a generated diff), "pseudocode"
    # (generated), "sketch" (the rule documentation's example)
    kind: str
    diff: str
    sketch: str
    closes: str
    tradeoffs: str
    risk: str
    effort: str  # simple | moderate | complex
    safe: bool | None = None
    edits: tuple[TextEdit, ...] = ()  # the diff's edits (not rendered)


@dataclass(slots=True)
class FindingReport:
    code: str
    name: str
    severity: str
    function: str
    line: int
    message: str
    classification: str
    explanation: str
    trace: Trace
    fixes: list[ProposedFix]
    related: list[tuple[int, str]]


@dataclass(slots=True)
class Report:
    target: str
    path: str
    link: str | None
    summary: str
    state: list[StateRow]
    checkpoints: list[FunctionMarks]
    findings: list[FindingReport]
    notes: list[str] = field(default_factory=list)


class TargetNotFound(ValueError):
    """The qualname names no function or class of the module."""


# -- module knowledge ----------------------------------------------------------


def _ref(line: int) -> str:
    return f"[[L{line + 1}]]"


def _code(text: str) -> str:
    text = " ".join(text.split())
    if len(text) > CODE_WIDTH:
        text = text[: CODE_WIDTH - 3] + "..."
    return text


def _short(qualname: str) -> str:
    return qualname.rsplit(".", 1)[-1]


def _is_mutex(text: str) -> bool:
    head = re.split(r"[(\[]", text, maxsplit=1)[0].strip()
    words = name_words(head.rsplit(".", 1)[-1])
    if any(word in NOT_MUTEX_WORDS for word in words):
        return False
    return any(word in MUTEX_WORDS for word in words)


def _own_nodes(root: ast.AST) -> Iterator[ast.AST]:
    """The nodes of a function body, without the nested definitions."""
    stack = list(ast.iter_child_nodes(root))
    while stack:
        node = stack.pop()
        yield node
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)):
            stack.extend(ast.iter_child_nodes(node))


def _unparse(node: ast.AST) -> str:
    try:
        return ast.unparse(node)
    except Exception:  # noqa: BLE001 - odd trees must not break the report
        return "?"


@dataclass(slots=True)
class _Access:
    function: FunctionFacts
    event: Event
    locks: frozenset[str]
    use: bool = False  # a method call on the state (`self.ev.set()`), counted as a read

    @property
    def line(self) -> int:
        return self.event.location.line

    @property
    def writes(self) -> bool:
        return self.event.kind is EventKind.WRITE and not self.use


class _Module:
    """What the report needs to know about the whole module, computed once."""

    def __init__(self, facts: ModuleFacts, lines: list[str]) -> None:
        self.facts = facts
        self.lines = lines
        self.functions = [f for f in facts.functions]
        self.by_qualname = {f.qualname: f for f in self.functions}
        names: dict[str, int] = {}
        for function in self.functions:
            names[_short(function.qualname)] = names.get(_short(function.qualname), 0) + 1
        self._name_counts = names
        self.entries = self._task_entries()
        self.callees = self._call_graph()
        self.reached_by = self._reach()
        # By function object: overloads share a qualname.
        self.origins = {id(f): self._lock_origins(f) for f in self.functions}
        self._locks: dict[int, list[frozenset[str]]] = {}
        self._takes: dict[tuple[int, str], bool] = {}
        self.yields = {id(f): self._yield_ends(f) for f in self.functions}

    # names -------------------------------------------------------------------

    def display(self, qualname: str) -> str:
        short = _short(qualname)
        return short if self._name_counts.get(short, 0) <= 1 else qualname

    def source(self, line: int) -> str:
        return self.lines[line].strip() if 0 <= line < len(self.lines) else ""

    def function_at(self, location: Location) -> FunctionFacts | None:
        """The innermost function whose lines hold ``location``."""
        best: FunctionFacts | None = None
        for function in self.functions:
            first, last = _span(function)
            if first <= location.line <= last and (best is None or _span(best)[0] <= first):
                best = function
        return best

    def event_at(
        self,
        function: FunctionFacts,
        location: Location,
        kinds: Iterable[EventKind],
        after: int = -1,
        before: int | None = None,
    ) -> Event | None:
        """The event of one of ``kinds`` at ``location`` (else on its line), with
        its order between ``after`` and ``before``: the exit checkpoint of an
        `async with` has the location of its entry."""
        wanted = tuple(kinds)
        same_line = None
        for event in function.events:
            if event.kind not in wanted or event.order <= after:
                continue
            if before is not None and event.order >= before:
                continue
            if event.location == location:
                return event
            if same_line is None and event.location.line == location.line:
                same_line = event
        return same_line

    # tasks and calls ---------------------------------------------------------

    def _resolve(self, caller: FunctionFacts, text: str) -> FunctionFacts | None:
        """The function a callee text names: `self._run`, `cls.run_ctx`,
        `_Cache.run_ctx`, `relay`, `actor.handle_peer` (a unique method name)."""
        text = text.split("(", 1)[0].strip()
        if not text:
            return None
        name = text.rsplit(".", 1)[-1]
        candidates = [f for f in self.functions if f.name == name]
        if not candidates:
            return None
        if "." not in text:
            nested = f"{caller.qualname}.<locals>.{name}"
            if nested in self.by_qualname:
                return self.by_qualname[nested]
            top = [f for f in candidates if f.qualname == name]
            return top[0] if top else (candidates[0] if len(candidates) == 1 else None)
        base = text.rsplit(".", 1)[0]
        if base in ("self", "cls"):
            own = [f for f in candidates if f.class_name == caller.class_name]
            return own[0] if own else None
        exact = [f for f in candidates if f.qualname == text or f.qualname.endswith("." + text)]
        if exact:
            return exact[0]
        return candidates[0] if len(candidates) == 1 else None

    def _task_entries(self) -> dict[str, list[tuple[FunctionFacts, Event]]]:
        entries: dict[str, list[tuple[FunctionFacts, Event]]] = {}
        for function in self.functions:
            for event in function.events:
                if event.kind is not EventKind.CALL or event.method not in SPAWN_METHODS:
                    continue
                target = self._resolve(function, event.argument or "")
                if target is not None:
                    entries.setdefault(target.qualname, []).append((function, event))
        return entries

    def _call_graph(self) -> dict[str, set[str]]:
        graph: dict[str, set[str]] = {}
        for function in self.functions:
            callees = graph.setdefault(function.qualname, set())
            for event in function.events:
                if event.kind is not EventKind.CALL or not event.method:
                    continue
                if event.method in SPAWN_METHODS:
                    continue
                text = f"{event.receiver}.{event.method}" if event.receiver else event.method
                target = self._resolve(function, text)
                if target is not None and target is not function:
                    callees.add(target.qualname)
            prefix = f"{function.qualname}.<locals>."
            for other in self.functions:  # nested functions: called or handed out
                if other.qualname.startswith(prefix) and "." not in other.qualname[len(prefix) :]:
                    callees.add(other.qualname)
        return graph

    def _reach(self) -> dict[str, set[str]]:
        reached: dict[str, set[str]] = {}
        for entry in self.entries:
            seen = {entry}
            pending = [entry]
            while pending:
                current = pending.pop()
                reached.setdefault(current, set()).add(entry)
                for callee in self.callees.get(current, ()):
                    if callee not in seen:
                        seen.add(callee)
                        pending.append(callee)
        return reached

    def actor(self, qualname: str) -> str:
        """A function for the table: `run_ctx (task)`, `process (in task serve_listener)`."""
        name = f"`{self.display(qualname)}`"
        if qualname in self.entries:
            return f"{name} (task)"
        entries = sorted(self.reached_by.get(qualname, ()))
        if entries:
            tasks = ", ".join(f"`{self.display(entry)}`" for entry in entries)
            return f"{name} (in task {tasks})"
        return name

    # locks -------------------------------------------------------------------

    def _lock_origins(self, function: FunctionFacts) -> dict[str, str]:
        """`lock` -> `_Cache.locks[ctx_key]` for `lock = _Cache.locks.setdefault(ctx_key, ...)`."""
        origins: dict[str, str] = {}
        for node in _own_nodes(function.node):
            if not (
                isinstance(node, ast.Assign)
                and len(node.targets) == 1
                and isinstance(node.targets[0], ast.Name)
            ):
                continue
            value = node.value
            origin = None
            if (
                isinstance(value, ast.Call)
                and isinstance(value.func, ast.Attribute)
                and value.func.attr in ("setdefault", "get")
                and value.args
            ):
                origin = f"{_unparse(value.func.value)}[{_unparse(value.args[0])}]"
            elif isinstance(value, ast.Subscript):
                origin = _unparse(value)
            if origin is not None and _is_mutex(origin):
                origins[node.targets[0].id] = origin
        return origins

    def lock_name(self, function: FunctionFacts, text: str) -> str:
        """How a lock is shown: by where it comes from, with the local name."""
        origin = self.origins.get(id(function), {}).get(text)
        return f"`{origin}` (`{text}`)" if origin else f"`{text}`"

    def lock_identity(self, function: FunctionFacts, text: str) -> str:
        return self.origins.get(id(function), {}).get(text, text)

    def _yield_ends(self, function: FunctionFacts) -> list[tuple[int, int]]:
        ends = []
        for node in _own_nodes(function.node):
            if isinstance(node, (ast.Yield, ast.YieldFrom)):
                ends.append(((node.end_lineno or node.lineno) - 1, node.end_col_offset or 0))
        return sorted(ends)

    def switches_between(self, function: FunctionFacts, first: Event, second: Event) -> bool:
        """A checkpoint or a `yield` lies between two events of one path."""
        for event in function.events[first.order + 1 : second.order]:
            if event.kind is EventKind.CHECKPOINT and not exclusive(event, second):
                return True
        start = (first.location.end_line, first.location.end_column)
        end = (second.location.line, second.location.column)
        return any(start < position <= end for position in self.yields[id(function)])

    def locks(self, function: FunctionFacts) -> list[frozenset[str]]:
        """The mutexes held at each event, by identity.

        Besides ``Event.guards`` (the `async with lock:` blocks), a lock taken
        with `await x.acquire()` is held until an `x.release()` on the same
        path, and still counts as held after the release until the next
        checkpoint or `yield`: no other task can run before then. A task
        started with `await nursery.start(fn)` runs under the starter's locks
        until it calls `task_status.started()`.
        """
        cached = self._locks.get(id(function))
        if cached is not None:
            return cached
        self._locks[id(function)] = []  # cycles of `start` see no inherited locks
        events = function.events
        acquires: dict[str, list[Event]] = {}
        releases: dict[str, list[Event]] = {}
        for event in events:
            if event.kind is not EventKind.CALL or not event.receiver:
                continue
            if not _is_mutex(event.receiver):
                continue
            if event.method == "acquire" and event.awaited:
                acquires.setdefault(event.receiver, []).append(event)
            elif event.method == "release":
                releases.setdefault(event.receiver, []).append(event)
        inherited = self._inherited(function)
        result: list[frozenset[str]] = []
        for event in events:
            held = {
                self.lock_identity(function, guard)
                for guard in event.guards
                if guard not in acquires and _is_mutex(guard)
            }
            for name, taken in acquires.items():
                if any(
                    self._held(function, acquire, event, releases.get(name, []))
                    for acquire in taken
                ):
                    held.add(self.lock_identity(function, name))
            if inherited is not None and event.order < inherited[0]:
                held |= inherited[1]
            result.append(frozenset(held))
        self._locks[id(function)] = result
        return result

    def _held(
        self, function: FunctionFacts, acquire: Event, event: Event, releases: list[Event]
    ) -> bool:
        if acquire.order >= event.order or exclusive(acquire, event):
            return False
        between = [
            release
            for release in releases
            if acquire.order < release.order < event.order
            and not exclusive(release, event)
            and not exclusive(release, acquire)
        ]
        if not between:
            return True
        return not self.switches_between(function, between[-1], event)

    def _inherited(self, function: FunctionFacts) -> tuple[int, frozenset[str]] | None:
        """(order of `task_status.started()`, locks the starter holds) for a task
        started with `await nursery.start(...)`."""
        starters = [
            (spawner, event)
            for spawner, event in self.entries.get(function.qualname, [])
            if event.method == "start" and event.awaited
        ]
        if not starters:
            return None
        started = next(
            (
                event
                for event in function.events
                if event.kind is EventKind.CALL and event.method == "started"
            ),
            None,
        )
        if started is None:
            return None
        held: frozenset[str] | None = None
        for spawner, event in starters:
            locks = self.locks(spawner)
            at = locks[event.order] if event.order < len(locks) else frozenset()
            held = at if held is None else held & at
        return started.order, held or frozenset()

    def takes(self, function: FunctionFacts, identity: str) -> bool:
        """The function itself takes the lock (acquire or `async with`)."""
        key = (id(function), identity)
        cached = self._takes.get(key)
        if cached is None:
            cached = self._takes[key] = self._takes_lock(function, identity)
        return cached

    def _takes_lock(self, function: FunctionFacts, identity: str) -> bool:
        for event in function.events:
            if (
                event.kind is EventKind.CALL
                and event.method == "acquire"
                and event.receiver
                and self.lock_identity(function, event.receiver) == identity
            ):
                return True
            if any(
                self.lock_identity(function, guard) == identity for guard in event.guards
            ) and any(guard not in self._acquired(function) for guard in event.guards):
                return True
        return False

    def _acquired(self, function: FunctionFacts) -> set[str]:
        return {
            event.receiver
            for event in function.events
            if event.kind is EventKind.CALL and event.method == "acquire" and event.receiver
        }

    def lock_display(self, identity: str) -> str:
        for function in self.functions:
            for name, origin in self.origins[id(function)].items():
                if origin == identity:
                    return f"`{origin}` (`{name}`)"
        return f"`{identity}`"

    # state -------------------------------------------------------------------

    def state_of_receiver(self, function: FunctionFacts, receiver: str) -> str | None:
        head = receiver.split("[", 1)[0].split("(", 1)[0]
        parts = head.split(".")
        if len(parts) >= 2 and parts[0] in ("self", "cls") and function.class_name:
            return f"{function.class_name}.{parts[1]}"
        if len(parts) >= 2 and parts[0] in self.facts.classes:
            return f"{parts[0]}.{parts[1]}"
        if parts[0] in self.facts.state_globals:
            return parts[0]
        return None

    def accesses(self) -> dict[str, list[_Access]]:
        """Shared-state accesses outside initialisers, by state."""
        found: dict[str, list[_Access]] = {}
        for function in self.functions:
            if function.name in INITIALISERS:
                continue
            locks = self.locks(function)
            nodes: set[int] = set()
            for event in function.events:
                if event.kind in ACCESS_KINDS and event.state:
                    if event.state in self.by_qualname:
                        continue  # `_Cache.run_ctx`: a method, not state
                    nodes.add(id(event.node))
                    found.setdefault(event.state, []).append(
                        _Access(function, event, locks[event.order])
                    )
            for event in function.events:
                if event.kind is not EventKind.CALL or not event.receiver:
                    continue
                if id(event.node) in nodes:
                    continue
                state = self.state_of_receiver(function, event.receiver)
                if state is None or state in self.by_qualname:
                    continue
                found.setdefault(state, []).append(
                    _Access(function, event, locks[event.order], use=True)
                )
        return found

    def initialised(self) -> set[str]:
        return {
            event.state
            for function in self.functions
            if function.name in INITIALISERS
            for event in function.events
            if event.kind is EventKind.WRITE and event.state
        }


def _span(function: FunctionFacts) -> tuple[int, int]:
    node = function.node
    first = min([node.lineno, *(d.lineno for d in node.decorator_list)]) - 1
    return first, (node.end_lineno or node.lineno) - 1


# -- target --------------------------------------------------------------------


@dataclass(slots=True)
class _Scope:
    functions: list[FunctionFacts]
    first: int | None = None  # line range of a `range` target
    last: int | None = None

    def has_line(self, line: int) -> bool:
        if self.first is not None and self.last is not None:
            return self.first <= line <= self.last
        return any(_span(f)[0] <= line <= _span(f)[1] for f in self.functions)

    def has_event(self, function: FunctionFacts, event: Event) -> bool:
        if self.first is not None and self.last is not None:
            return self.first <= event.location.line <= self.last
        return function in self.functions


def _scope(module: _Module, target: Target) -> _Scope:
    if target.kind == "function":
        wanted = target.qualname or ""
        chosen = [
            f
            for f in module.functions
            if f.qualname == wanted
            or f.qualname.startswith(wanted + ".")  # methods, nested functions
        ]
        if not chosen:
            raise TargetNotFound(f"no function or class `{wanted}` in this module")
        return _Scope(chosen)
    if target.kind == "range" and target.start is not None and target.end is not None:
        chosen = [
            f for f in module.functions if _span(f)[0] <= target.end and _span(f)[1] >= target.start
        ]
        return _Scope(chosen, target.start, target.end)
    return _Scope(list(module.functions))


# -- 1. shared state -----------------------------------------------------------


def _state_rows(module: _Module, scope: _Scope) -> list[StateRow]:
    rows = []
    initialised = module.initialised()
    for state, accesses in module.accesses().items():
        if not any(access.writes for access in accesses):
            continue
        if not any(access.function.is_async for access in accesses):
            continue
        if not any(scope.has_event(access.function, access.event) for access in accesses):
            continue
        accesses.sort(key=lambda access: (access.line, access.event.location.column))
        writers: list[str] = []
        readers: list[str] = []
        for access in accesses:
            bucket = writers if access.writes else readers
            name = module.actor(access.function.qualname)
            if name not in bucket:
                bucket.append(name)
        guard, exceptions, held_at = _guard(module, accesses)
        owner = accesses[0].event.owner
        if owner == "<module>":
            scope_name = "module global"
        elif state in initialised or any(
            _unparse(access.event.node).startswith("self.") for access in accesses
        ):
            scope_name = "instance attribute"
        else:
            scope_name = "class attribute"
        rows.append(
            StateRow(
                state=state,
                scope=scope_name,
                writers=writers,
                readers=readers,
                guard=guard,
                exceptions=exceptions,
                held_at=held_at,
                lines=sorted({access.line for access in accesses}),
            )
        )
    rows.sort(key=lambda row: row.lines[0])
    return rows


def _guard(module: _Module, accesses: list[_Access]) -> tuple[str | None, list[str], list[int]]:
    """The lock that guards the state, the accesses that break it, and (when
    there is none) where some lock is held.

    A lock guards the state when every access by the functions that take that
    lock happens while they hold it: those functions follow the protocol.
    Accesses elsewhere without it are listed as exceptions (the seed's
    `_Cache.values`: guarded by the `ctx_key` lock, except where `run_ctx`
    pops it).
    """
    candidates: set[str] = set()
    for access in accesses:
        candidates |= access.locks
    best: tuple[int, str, list[_Access]] | None = None
    for identity in sorted(candidates):
        takers = [a for a in accesses if module.takes(a.function, identity)]
        if not takers or not all(identity in a.locks for a in takers):
            continue
        covered = sum(1 for a in accesses if identity in a.locks)
        if best is None or covered > best[0]:
            best = (covered, identity, [a for a in accesses if identity not in a.locks])
    if best is None:
        held = sorted({a.line for a in accesses if a.locks})
        return None, [], held
    _, identity, breaking = best
    exceptions = []
    for access in breaking:
        text = f"{_ref(access.line)} in `{module.display(access.function.qualname)}`"
        if text not in exceptions:
            exceptions.append(text)
    return module.lock_display(identity), exceptions, []


# -- 2. checkpoints ------------------------------------------------------------


def _marks(module: _Module, scope: _Scope, hints: list[Hint]) -> list[FunctionMarks]:
    waiters = _waiters(module)
    by_function: dict[str, list[Mark]] = {}
    names = {f.qualname for f in scope.functions}
    for hint in sorted(hints, key=lambda h: (h.keyword_line, h.keyword_column)):
        if hint.function not in names:
            continue
        if scope.first is not None and not scope.has_line(hint.keyword_line):
            continue
        by_function.setdefault(hint.function, []).append(_mark(module, hint, waiters))
    result = []
    for qualname, marks in by_function.items():
        function = module.by_qualname[qualname]
        result.append(FunctionMarks(qualname, _span(function)[0], marks))
    result.sort(key=lambda item: item.line)
    return result


def _waiters(module: _Module) -> dict[str, list[str]]:
    """Event name -> the functions that wait for it (directly or via a method)."""
    found: dict[str, list[str]] = {}
    for function in module.functions:
        for event in function.events:
            if (
                event.kind is EventKind.CALL
                and event.method == "wait"
                and event.awaited
                and event.receiver
            ):
                name = event.receiver.rsplit(".", 1)[-1].split("[", 1)[0]
                waiting = found.setdefault(name, [])
                if function.qualname not in waiting:
                    waiting.append(function.qualname)
    return found


def _mark(module: _Module, hint: Hint, waiters: dict[str, list[str]]) -> Mark:
    kind = hint.kind
    tags = context_tags(hint.context, bounded_call=hint.bounded_call)
    suffix = "".join(f" · {tag}" for tag in tags)
    if kind is HintKind.AWAIT:
        code, mark = f"await {hint.code}", "CHECKPOINT" + suffix
    elif kind is HintKind.ASYNC_WITH:
        code = f"async with {hint.code}"
        if hint.waits_for_children:
            mark = "CHECKPOINT (enter) · waits for children on exit"
        elif hint.releases_on_exit:
            mark = "CHECKPOINT (enter; the exit only releases)"
        else:
            mark = "CHECKPOINT (enter and exit)"
        mark += suffix
    elif kind is HintKind.ASYNC_FOR:
        code, mark = f"async for ... in {hint.code}", "CHECKPOINT (each iteration)" + suffix
    elif kind is HintKind.ACM_YIELD:
        code, mark = hint.code, "SUSPEND (caller runs)"
    elif kind is HintKind.LOCK_RELEASE:
        code, mark = hint.code, "(not a checkpoint, but changes lock state)"
    elif kind is HintKind.EVENT_SET:
        receiver = hint.code.split("(", 1)[0].rsplit(".", 1)[0]
        name = receiver.rsplit(".", 1)[-1].split("[", 1)[0]
        woken = [module.display(q) for q in waiters.get(name, []) if q != hint.function]
        who = ", ".join(f"`{w}`" for w in woken) if woken else "waiters"
        code, mark = hint.code, f"(wakes {who}, no switch yet)"
    else:
        started = _spawned(module, hint)
        code = hint.code
        mark = (
            f"(schedules `{started}`, no switch yet)"
            if started
            else "(schedules a task, no switch yet)"
        )
    return Mark(hint.keyword_line, _code(code), mark, kind.value, kind.is_checkpoint)


def _spawned(module: _Module, hint: Hint) -> str | None:
    function = module.by_qualname.get(hint.function)
    if function is None:
        return None
    for event in function.events:
        if (
            event.kind is EventKind.CALL
            and event.method in SPAWN_METHODS
            and event.location.end_line == hint.line
        ):
            target = module._resolve(function, event.argument or "")
            return module.display(target.qualname) if target else (event.argument or None)
    return None


# -- 3. race traces ------------------------------------------------------------


class _TraceBuilder:
    def __init__(self, module: _Module) -> None:
        self.module = module
        self.steps: list[Step] = []
        self.roles: dict[str, int] = {}

    def add(
        self, task: str, line: int | None, text: str, role: str | None = None, code: bool = True
    ) -> int:
        number = len(self.steps) + 1
        source = None
        if line is not None and code:
            source = _strip_comment(self.module.source(line))
            if source.endswith(("(", "[", "{", "\\")):
                source += " ..."
            source = _code(source)
        self.steps.append(Step(number, task, line, source, text))
        if role is not None:
            self.roles[role] = number
        return number

    def build(self, tasks: list[str], window: tuple[int, int] | None, window_text: str) -> Trace:
        return Trace(tasks, self.steps, window, window_text, self.roles)


def _entry_words(module: _Module, access: Event | None, *, gone: bool) -> str:
    if access is None:
        return ""
    target = f"`{access.state}[{access.key}]`" if access.key else f"`{access.state}`"
    if gone:
        return f"{target} → gone ({'KeyError' if access.key else 'changed'})"
    if access.kind is EventKind.WRITE:
        return f"writes {target}, which STILL EXISTS from before"
    return f"{target} → STILL EXISTS"


def _target(event: Event) -> str:
    return f"`{event.state}[{event.key}]`" if event.key else f"`{event.state}`"


def _first(events: Iterable[Event]) -> Event | None:
    return next(iter(events), None)


def _other_function(
    module: _Module, exclude: FunctionFacts, states: list[str]
) -> FunctionFacts | None:
    """The function (not ``exclude``) that touches the most of ``states``."""
    best: tuple[int, FunctionFacts] | None = None
    for function in module.functions:
        if function is exclude or function.name in INITIALISERS:
            continue
        touched = {
            event.state
            for event in function.events
            if event.kind in ACCESS_KINDS and event.state in states
        }
        if touched and (best is None or len(touched) > best[0]):
            best = (len(touched), function)
    return best[1] if best else None


def _trace(module: _Module, finding: Finding) -> Trace:
    function = module.by_qualname.get(finding.function)
    builder = _TraceBuilder(module)
    try:
        if function is not None:
            maker = _TRACES.get(finding.code)
            if maker is not None:
                trace = maker(module, builder, function, finding)
                if trace is not None:
                    return trace
    except Exception:  # noqa: BLE001 - a trace that cannot be built falls back to the lines
        pass
    return _generic_trace(module, _TraceBuilder(module), finding)


def _generic_trace(module: _Module, b: _TraceBuilder, finding: Finding) -> Trace:
    """The finding's line and its related lines, in line order."""
    items = [(finding.location.line, finding.message, finding.function)]
    for related in finding.related:
        holder = module.function_at(related.location)
        items.append(
            (
                related.location.line,
                related.message,
                holder.qualname if holder else finding.function,
            )
        )
    items.sort(key=lambda item: item[0])
    labels: dict[str, str] = {finding.function: "Task A"}
    for line, text, owner in items:
        label = labels.setdefault(
            owner, "Task B" if len(labels) == 1 else f"Task {chr(65 + len(labels))}"
        )
        b.add(label, line, _first_sentence(text))
    tasks = [f"{label} runs `{qualname}`." for qualname, label in labels.items()]
    window = (1, len(b.steps)) if b.steps else None
    return b.build(tasks, window, "the lines the finding names")


def _first_sentence(text: str) -> str:
    return text.split(": ", 1)[0] if len(text) > 120 else text


def _trace_atomicity(
    module: _Module, b: _TraceBuilder, function: FunctionFacts, finding: Finding
) -> Trace | None:
    if finding.message.startswith("iterating"):
        return _trace_loop(module, b, function, finding)
    second = module.event_at(function, finding.location, [EventKind.WRITE])
    if second is None or len(finding.related) < 2:
        return None
    first = module.event_at(function, finding.related[0].location, [EventKind.WRITE])
    if first is None:
        return None
    checkpoint = module.event_at(
        function, finding.related[1].location, [EventKind.CHECKPOINT], first.order, second.order
    )
    if checkpoint is None:
        checkpoint = _first(function.checkpoints_between(first, second))
    a = "Task A"
    verb1 = "removes" if first.removal else "writes"
    b.add(a, first.location.line, f"{verb1} {_target(first)}", "first")
    if checkpoint is not None:
        b.add(
            a,
            checkpoint.location.line,
            f"{_checkpoint_words(module, checkpoint)}: Task A is switched out "
            f"before it {'removes' if second.removal else 'writes'} {_target(second)}",
            "checkpoint",
        )
    other = _other_function(module, function, [first.state or "", second.state or ""])
    tasks = [f"Task A runs `{function.qualname}`."]
    if other is not None:
        tasks.append(f"Task B runs `{other.qualname}`.")
        seen_first = _first(
            e for e in other.events if e.kind in ACCESS_KINDS and e.state == first.state
        )
        after = seen_first.order if seen_first is not None else -1
        seen_second = _first(
            e
            for e in other.events
            if e.kind in ACCESS_KINDS and e.state == second.state and e.order > after
        ) or _first(e for e in other.events if e.kind in ACCESS_KINDS and e.state == second.state)
        for event, role in sorted(
            [(e, r) for e, r in ((seen_first, "b1"), (seen_second, "b2")) if e is not None],
            key=lambda pair: pair[0].order,
        ):
            if event.state == first.state:
                words = (
                    _entry_words(module, event, gone=True)
                    if first.removal
                    else f"{_target(event)} → the new value"
                )
            else:
                words = (
                    _entry_words(module, event, gone=False)
                    if second.removal
                    else f"{_target(event)} → still the old value"
                )
            b.add("Task B", event.location.line, words, role)
    else:
        tasks.append(
            f"Task B is another task running `{function.qualname}` or a reader of the state."
        )
        b.add(
            "Task B",
            None,
            f"reads {_target(first)} and {_target(second)}: sees one updated, the other not",
            "b1",
        )
    verb2 = "removes" if second.removal else "writes"
    b.add(a, second.location.line, f"{verb2} {_target(second)}", "second")
    last_b = max(b.roles.get("b1", 0), b.roles.get("b2", 0))
    window = (b.roles.get("checkpoint", 1), last_b or b.roles["second"] - 1)
    state1 = "gone" if first.removal else "updated"
    state2 = "still exists" if second.removal else "still holds its old value"
    return b.build(tasks, window, f"{_target(first)} {state1} while {_target(second)} {state2}")


def _trace_loop(
    module: _Module, b: _TraceBuilder, function: FunctionFacts, finding: Finding
) -> Trace | None:
    loop = next(
        (loop for loop in function.loops if loop.location.line == finding.location.line), None
    )
    if loop is None:
        return None
    state = loop.state
    checkpoint = (
        module.event_at(function, finding.related[0].location, [EventKind.CHECKPOINT])
        if finding.related
        else None
    )
    b.add("Task A", loop.location.line, f"starts iterating `{state}`", "first")
    if checkpoint is not None:
        b.add(
            "Task A",
            checkpoint.location.line,
            f"{_checkpoint_words(module, checkpoint)}: Task A is switched out "
            "in the middle of the loop",
            "checkpoint",
        )
    writer: tuple[FunctionFacts, Event] | None = None
    for other in module.functions:
        if other is function or other.name in INITIALISERS:
            continue
        for event in other.events:
            if (
                event.kind is EventKind.WRITE
                and event.state == state
                and (event.key is not None or event.method is not None or event.removal)
                and (writer is None or (event.removal and not writer[1].removal))
            ):
                writer = (other, event)
    tasks = [f"Task A runs `{function.qualname}`."]
    if writer is not None:
        other, event = writer
        tasks.append(f"Task B runs `{other.qualname}`.")
        verb = "removes an entry of" if event.removal else "adds to"
        b.add("Task B", event.location.line, f"{verb} `{state}`", "b1")
    else:
        tasks.append("Task B is any task that changes the container.")
        b.add("Task B", None, f"changes `{state}`", "b1")
    b.add(
        "Task A",
        loop.location.line,
        "next iteration → `RuntimeError: ... changed size during iteration`, or an entry "
        "skipped or seen twice",
        "second",
    )
    return b.build(
        tasks,
        (b.roles.get("checkpoint", 1), b.roles["b1"]),
        f"`{state}` changes while Task A is in the middle of iterating it",
    )


def _checkpoint_words(module: _Module, checkpoint: Event) -> str:
    """`CHECKPOINT`, or `exit of `async with x` → CHECKPOINT` for the exit of a block."""
    if checkpoint.exit:
        text = _strip_comment(module.source(checkpoint.location.line))
        head = text.rstrip(":") if text.startswith("async with") else text
        return f"exit of `{_code(head)}` → CHECKPOINT"
    return "CHECKPOINT"


def _strip_comment(text: str) -> str:
    """A source line without its trailing comment (tokenized, so `"#"` in strings stays)."""
    if "#" not in text:
        return text
    try:
        for token in tokenize.generate_tokens(io.StringIO(text).readline):
            if token.type == tokenize.COMMENT:
                return text[: token.start[1]].rstrip()
    except (tokenize.TokenError, IndentationError, SyntaxError):
        pass
    return text


def _trace_check_then_act(
    module: _Module, b: _TraceBuilder, function: FunctionFacts, finding: Finding
) -> Trace | None:
    action = module.event_at(function, finding.location, [EventKind.WRITE, EventKind.READ])
    if action is None or len(finding.related) < 2:
        return None
    check = module.event_at(
        function, finding.related[0].location, [EventKind.TEST, EventKind.READ], -1, action.order
    )
    checkpoint = module.event_at(
        function,
        finding.related[1].location,
        [EventKind.CHECKPOINT],
        check.order if check is not None else -1,
        action.order,
    )
    target = _target(action)
    reads = check is not None and check.kind is EventKind.READ
    verb, same = ("reads", "the same value") if reads else ("checks", "the same answer")
    b.add("Task A", finding.related[0].location.line, f"{verb} {target}", "check")
    b.add(
        "Task A",
        finding.related[1].location.line,
        ("CHECKPOINT" if checkpoint is None else _checkpoint_words(module, checkpoint))
        + ": Task A is switched out",
        "checkpoint",
    )
    tasks = [f"Task A runs `{function.qualname}`."]
    if action.kind is EventKind.WRITE:
        tasks.append(f"Task B runs `{function.qualname}` too.")
        b.add("Task B", finding.related[0].location.line, f"{verb} {target}: {same}", "b1")
        b.add("Task B", action.location.line, _act_words(action), "b2")
    else:
        writer = _first(
            e
            for other in module.functions
            if other is not function and other.name not in INITIALISERS
            for e in other.events
            if e.kind is EventKind.WRITE and e.state == action.state
        )
        owner = module.function_at(writer.location) if writer else None
        tasks.append(
            f"Task B runs `{owner.qualname}`." if owner else "Task B is any task that changes it."
        )
        b.add(
            "Task B",
            writer.location.line if writer else None,
            f"changes {target}",
            "b1",
        )
    b.add(
        "Task A",
        action.location.line,
        f"{_act_words(action)} on the strength of step {b.roles['check']}, which no longer holds",
        "act",
    )
    last = max(b.roles.get("b1", 0), b.roles.get("b2", 0))
    return b.build(
        tasks,
        (b.roles["checkpoint"], last),
        f"{target} changes between Task A's check and its action",
    )


def _act_words(event: Event) -> str:
    target = _target(event)
    if event.kind is EventKind.READ:
        return f"uses {target}"
    if event.removal:
        return f"removes {target}" if event.key else f"takes an item out of {target}"
    if event.method:
        return f"changes {target}"
    return f"writes {target}"


def _trace_counter(
    module: _Module, b: _TraceBuilder, function: FunctionFacts, finding: Finding
) -> Trace | None:
    if finding.message.startswith("the lock is chosen"):
        return _trace_lock_key(module, b, function, finding)
    counter = module.event_at(function, finding.location, [EventKind.WRITE])
    if counter is None or not counter.augmented or not finding.related:
        return None
    keyed = module.event_at(
        function, finding.related[0].location, [EventKind.READ, EventKind.WRITE, EventKind.TEST]
    )
    key = keyed.key if keyed is not None else "key"
    state = counter.state
    decrement: tuple[FunctionFacts, Event] | None = None
    test: tuple[FunctionFacts, Event] | None = None
    for other in module.functions:
        for event in other.events:
            if event.state != state or event.key is not None:
                continue
            if (
                decrement is None
                and event.kind is EventKind.WRITE
                and event.augmented
                and "-=" in module.source(event.location.line)
            ):
                decrement = (other, event)
            if (
                test is None
                and event.kind is EventKind.TEST
                and (
                    decrement is None
                    or event.order > decrement[1].order
                    or other is not decrement[0]
                )
            ):
                test = (other, event)
    b.add("Task A", counter.location.line, f"one user of `{key}` `k1`: `{state}` is 1", "a_inc")
    b.add("Task B", counter.location.line, f"one user of another `{key}` `k2`: 2", "b_inc")
    if decrement is not None:
        b.add("Task A", decrement[1].location.line, "the user of `k1` leaves: 1", "a_dec")
    if test is not None:
        b.add(
            "Task A",
            test[1].location.line,
            "not zero → `k1`'s entries are not torn down, although `k1` has no user left",
            "a_test",
        )
    last = b.roles.get("a_test", b.roles.get("a_dec", b.roles["b_inc"]))
    return b.build(
        [
            f"Task A runs `{function.qualname}` for one `{key}` (`k1`); Task B runs it for "
            f"another (`k2`)."
        ],
        (b.roles["b_inc"], last),
        "`k1`'s count includes Task B's user of `k2`",
    )


def _trace_lock_key(
    module: _Module, b: _TraceBuilder, function: FunctionFacts, finding: Finding
) -> Trace | None:
    """CONC203's second form: a lock chosen by another key than the state it guards."""
    kinds = [EventKind.READ, EventKind.WRITE, EventKind.TEST]
    lock = module.event_at(function, finding.location, kinds)
    if lock is None or not finding.related:
        return None
    state = module.event_at(function, finding.related[0].location, kinds)
    if state is None:
        return None
    lock_key, key = lock.key or "key", state.key or "key"
    b.add("Task A", lock.location.line, f"takes the lock of its `{lock_key}` `a`", "a_lock")
    b.add(
        "Task B",
        lock.location.line,
        f"takes the lock of another `{lock_key}` `b`: a different lock, so it does not wait",
        "b_lock",
    )
    b.add("Task A", state.location.line, f"uses {_target(state)} for `{key}` `k`", "a_use")
    b.add(
        "Task B",
        state.location.line,
        f"uses {_target(state)} for the same `{key}` `k` at the same time",
        "b_use",
    )
    return b.build(
        [
            f"Task A and Task B run `{function.qualname}` for the same `{key}` and different "
            f"`{lock_key}`s."
        ],
        (b.roles["b_lock"], b.roles["b_use"]),
        f"two tasks hold two locks over one entry of `{state.state}`",
    )


def _trace_lock_lifetime(
    module: _Module, b: _TraceBuilder, function: FunctionFacts, finding: Finding
) -> Trace | None:
    removal = module.event_at(function, finding.location, [EventKind.WRITE])
    if removal is None or len(finding.related) < 3:
        return None
    task = module.function_at(finding.related[0].location)
    spawner = module.function_at(finding.related[2].location)
    if task is None or spawner is None:
        return None
    late = module.event_at(task, finding.related[0].location, [EventKind.WRITE])
    start = module.event_at(spawner, finding.related[2].location, [EventKind.CALL])
    if late is None or start is None:
        return None
    t = f"{module.display(task.qualname)}"
    starter = "Task A starts" if spawner is function else f"`{spawner.qualname}` starts"
    tasks = [
        f"Task A and Task B run `{function.qualname}`; `{t}` is the task {starter} "
        f"at {_ref(start.location.line)}."
    ]
    a = "Task A"
    if spawner is function:
        acquire = _first(
            e
            for e in function.events[: start.order]
            if e.kind is EventKind.CALL
            and e.method == "acquire"
            and e.awaited
            and e.receiver
            and not exclusive(e, start)
        )
        lock_text = acquire.receiver if acquire is not None and acquire.receiver else None
        if acquire is not None and lock_text:
            b.add(
                a,
                acquire.location.line,
                f"acquires {module.lock_name(function, lock_text)}",
                "acquire",
            )
        begin = acquire.order if acquire is not None else 0
        for event in function.events[begin : start.order]:
            if (
                event.kind is EventKind.WRITE
                and event.owner == removal.owner
                and not exclusive(event, start)
                and not _is_lock_state(event.state)
            ):
                b.add(a, event.location.line, f"creates {_target(event)}", "create")
        created = [
            _target(e)
            for e in task.events
            if e.kind is EventKind.WRITE
            and not e.removal
            and e.owner == removal.owner
            and not _is_lock_state(e.state)
        ]
        which = f", which creates {', '.join(dict.fromkeys(created))}" if created else ""
        b.add(a, start.location.line, f"starts `{t}`{which}", "start")
        release = _first(
            e
            for e in function.events[start.order : removal.order]
            if e.kind is EventKind.CALL
            and e.method == "release"
            and not exclusive(e, start)
            and (lock_text is None or e.receiver == lock_text)
        )
        if release is not None:
            b.add(
                a,
                release.location.line,
                f"releases `{release.receiver}` (not a checkpoint)",
                "release",
            )
        yielded = _yield_between(module, function, start.location.line, removal.location.line)
        if yielded is not None:
            b.add(a, yielded, "yields to the caller → SUSPEND (caller runs)", "yield")
            b.add(a, None, "the caller's block ends → the teardown runs", "teardown")
    setter = _first(
        e
        for e in reversed(function.events[: removal.order])
        if e.kind is EventKind.CALL
        and e.method == "set"
        and e.receiver
        and not exclusive(e, removal)
    )
    wait: Event | None = None
    if setter is not None and setter.receiver:
        name = setter.receiver.rsplit(".", 1)[-1]
        wait = _first(
            e
            for e in task.events
            if e.kind is EventKind.CALL
            and e.method == "wait"
            and e.awaited
            and e.receiver
            and e.receiver.rsplit(".", 1)[-1] == name
        )
        woken = f"wakes `{t}`" if wait is not None else "wakes the waiters"
        b.add(a, setter.location.line, f"sets `{setter.receiver}`: {woken}, no switch yet", "set")
    b.add(a, removal.location.line, f"pops the lock from `{removal.state}`", "pop")
    if wait is not None:
        b.add(t, wait.location.line, f"wakes from `{wait.receiver}.wait()`", "wake")
    removals = [
        e
        for e in task.events[late.order :]
        if e.kind is EventKind.WRITE
        and e.removal
        and e.owner == removal.owner
        and not _is_lock_state(e.state)
    ]
    b.add(t, late.location.line, f"removes {_target(late)}", "late")
    after = _first(
        e
        for e in task.events[late.order + 1 :]
        if e.kind is EventKind.CHECKPOINT and not exclusive(e, late)
    )
    later = _first(e for e in removals[1:] if after is not None and e.order > after.order)
    if after is not None:
        b.add(
            t,
            after.location.line,
            f"{_checkpoint_words(module, after)}: `{t}` is switched out",
            "checkpoint",
        )
    creator = _lock_creator(module, removal)
    first_b: int | None = None
    if creator is not None and creator[0] is not function:
        tasks[0] = (
            f"Task A runs `{function.qualname}`, Task B `{creator[0].qualname}`; `{t}` is the "
            f"task {starter} at {_ref(start.location.line)}."
        )
    if creator is not None:
        owner, event = creator
        first_b = b.add(
            "Task B",
            event.location.line,
            f"creates a NEW lock in `{removal.state}` (the old one was popped)",
            "new_lock",
        )
        acquire_b = _first(
            e
            for e in owner.events[event.order :]
            if e.kind is EventKind.CALL and e.method == "acquire" and e.awaited
        )
        if acquire_b is not None:
            b.add("Task B", acquire_b.location.line, "acquires it at once", "acquire_b")
        begin = acquire_b.order if acquire_b is not None else event.order
        seen = _first(
            e
            for e in owner.events[begin:]
            if e.kind in ACCESS_KINDS and e.state == late.state and e.key == late.key
        )
        if seen is not None:
            if after is not None:
                b.add(
                    "Task B", seen.location.line, _entry_words(module, seen, gone=True), "sees_gone"
                )
            else:
                verb = "writes" if seen.kind is EventKind.WRITE else "reads"
                b.add(
                    "Task B",
                    seen.location.line,
                    f"{verb} {_target(seen)}, which STILL EXISTS and is about to be removed",
                    "sees_gone",
                )
        if later is not None:
            still = _first(
                e
                for e in owner.events[begin:]
                if e.kind in ACCESS_KINDS and e.state == later.state and e.key == later.key
            )
            if still is not None:
                b.add(
                    "Task B",
                    still.location.line,
                    _entry_words(module, still, gone=False),
                    "sees_still",
                )
    if first_b is None:
        first_b = b.add(
            "Task B",
            None,
            f"creates a NEW lock for the same key in `{removal.state}` and takes it at once",
            "new_lock",
        )
    last_b = len(b.steps)
    if after is None:
        # The task removes the state only when it next runs: Task B got in first.
        moved = [b.steps[b.roles[role] - 1] for role in ("wake", "late") if role in b.roles]
        b.steps = [step for step in b.steps if all(step is not other for other in moved)]
        _renumber(b)
        for step in moved:
            role = "wake" if step.text.startswith("wakes") else "late"
            text = f"removes {_target(late)} under Task B's feet" if role == "late" else step.text
            b.add(t, step.line, text, role)
        window = (b.roles["pop"], len(b.steps))
        text = f"Task B holds a new lock and uses {_target(late)} while `{t}` is about to remove it"
        return b.build(tasks, window, text)
    if later is not None:
        stolen = (
            " (the entry Task B just wrote)"
            if b.roles.get("sees_still")
            and b.steps[b.roles["sees_still"] - 1].text.startswith("writes")
            else ""
        )
        b.add(t, later.location.line, f"removes {_target(later)}{stolen}", "later")
    window = (b.roles["late"], last_b)
    text = f"{_target(late)} is gone"
    if later is not None:
        text += f" while {_target(later)} still exists"
    text += ", and Task B holds a new lock"
    return b.build(tasks, window, text)


def _renumber(b: _TraceBuilder) -> None:
    mapping = {}
    for index, step in enumerate(b.steps, 1):
        mapping[step.number] = index
        step.number = index
    b.roles = {role: mapping[number] for role, number in b.roles.items() if number in mapping}


def _is_lock_state(state: str | None) -> bool:
    return bool(state) and _is_mutex((state or "").rsplit(".", 1)[-1])


def _lock_creator(module: _Module, removal: Event) -> tuple[FunctionFacts, Event] | None:
    """Where a lock entry of the same map is created (`locks.setdefault(k, Lock())`)."""
    for function in module.functions:
        if function.name in INITIALISERS:
            continue
        for event in function.events:
            if (
                event.kind is EventKind.WRITE
                and event.state == removal.state
                and not event.removal
                and event.key is not None
            ):
                return function, event
    return None


def _yield_between(module: _Module, function: FunctionFacts, after: int, before: int) -> int | None:
    for node in _own_nodes(function.node):
        if isinstance(node, (ast.Yield, ast.YieldFrom)) and after < node.lineno - 1 < before:
            candidates = [
                n.lineno - 1
                for n in _own_nodes(function.node)
                if isinstance(n, (ast.Yield, ast.YieldFrom)) and after < n.lineno - 1 < before
            ]
            return min(candidates)
    return None


def _trace_set_then_mutate(
    module: _Module, b: _TraceBuilder, function: FunctionFacts, finding: Finding
) -> Trace | None:
    mutation = module.event_at(function, finding.location, [EventKind.WRITE])
    if mutation is None or len(finding.related) < 2:
        return None
    setter = module.event_at(function, finding.related[0].location, [EventKind.CALL])
    waiter = module.function_at(finding.related[1].location)
    if setter is None or waiter is None:
        return None
    woken = module.display(waiter.qualname)
    b.add(
        "Task A",
        setter.location.line,
        f"sets `{setter.receiver}`: wakes `{woken}`, no switch yet",
        "set",
    )
    b.add("Task A", mutation.location.line, f"changes {_target(mutation)}", "mutate")
    after = _first(
        e
        for e in function.events[mutation.order + 1 :]
        if e.kind is EventKind.CHECKPOINT and not exclusive(e, mutation)
    )
    if after is not None:
        b.add(
            "Task A",
            after.location.line,
            f"{_checkpoint_words(module, after)}: Task A is switched out",
            "switch",
        )
    else:
        b.add(
            "Task A",
            None,
            "returns: Task A gives up the CPU at its caller's next checkpoint",
            "switch",
        )
    name = (setter.receiver or "").rsplit(".", 1)[-1]
    wait = _first(
        e
        for e in waiter.events
        if e.kind is EventKind.CALL and e.method == "wait" and (e.receiver or "").endswith(name)
    )
    if wait is not None:
        b.add("Task B", wait.location.line, f"wakes from `{wait.receiver}.wait()`", "wake")
    if mutation.removal and mutation.key:
        seen = f"gone (KeyError): removed at step {b.roles['mutate']}"
    elif mutation.removal:
        seen = f"emptied at step {b.roles['mutate']}"
    else:
        seen = (
            f"the value of step {b.roles['mutate']}, not the one set before step {b.roles['set']}"
        )
    b.add("Task B", finding.related[1].location.line, f"reads {_target(mutation)} → {seen}", "read")
    return b.build(
        [f"Task A runs `{function.qualname}`; Task B waits in `{waiter.qualname}`."],
        (b.roles["mutate"], b.roles["read"]),
        f"{_target(mutation)} changes after the hand-over, before the waiter reads it",
    )


def _trace_set_not_guaranteed(
    module: _Module, b: _TraceBuilder, function: FunctionFacts, finding: Finding
) -> Trace | None:
    wait = module.event_at(function, finding.location, [EventKind.CHECKPOINT])
    if wait is None or not finding.related:
        return None
    setter_function = module.function_at(finding.related[0].location)
    if setter_function is None:
        return None
    setter = module.event_at(setter_function, finding.related[0].location, [EventKind.CALL])
    if setter is None:
        return None
    b.add("Task A", finding.location.line, f"waits for `{setter.receiver}`", "wait")
    before = [
        e
        for e in setter_function.events[: setter.order]
        if e.kind is EventKind.CHECKPOINT and not exclusive(e, setter)
    ]
    setter_name = module.display(setter_function.qualname)
    if before:
        b.add(
            "Task B",
            before[-1].location.line,
            f"{_checkpoint_words(module, before[-1])}: raises (an error, or "
            "`Cancelled` when its scope is cancelled)",
            "raise",
        )
    else:
        b.add("Task B", None, f"`{setter_name}` fails or is cancelled before its `.set()`", "raise")
    b.add("Task B", setter.location.line, "is skipped", "skip")
    b.add("Task A", finding.location.line, "waits forever", "hang")
    return b.build(
        [f"Task A runs `{function.qualname}`; Task B runs `{setter_function.qualname}`."],
        (b.roles["raise"], b.roles["hang"]),
        f"the wakeup is lost: nothing sets `{setter.receiver}` any more",
    )


def _trace_unbounded_wait(
    module: _Module, b: _TraceBuilder, function: FunctionFacts, finding: Finding
) -> Trace | None:
    checkpoint = module.event_at(function, finding.location, [EventKind.CHECKPOINT])
    if checkpoint is None:
        return None
    where = "`finally`" if checkpoint.context.in_finally else "cleanup"
    b.add("Task A", None, f"is cancelled, or its body ends → the {where} runs", "enter")
    b.add("Task A", finding.location.line, "waits, with no timeout", "wait")
    setters = _setters_for(module, function, checkpoint)
    if setters:
        owner, event = setters[0]
        b.add(
            "Task B",
            event.location.line,
            f"would set `{event.receiver}` in `{owner.qualname}`, but is stuck, failed or was "
            "cancelled first",
            "setter",
        )
        tasks = [f"Task A runs `{function.qualname}`; Task B runs `{owner.qualname}`."]
    else:
        b.add("Task B", None, "the task Task A waits for never gets there", "setter")
        tasks = [f"Task A runs `{function.qualname}`; Task B is the task it waits for."]
    b.add("Task A", finding.location.line, "still waiting: the teardown hangs", "hang")
    return b.build(tasks, (b.roles["wait"], b.roles["hang"]), "the wait has no bound")


def _setters_for(
    module: _Module, function: FunctionFacts, checkpoint: Event
) -> list[tuple[FunctionFacts, Event]]:
    """The `.set()` calls that would end an awaited wait, also through a method
    (`await actor.wait_for_no_more_peers()` waits on `no_more_peers`)."""
    call = function.events[checkpoint.order - 1] if checkpoint.order else None
    if call is None or call.kind is not EventKind.CALL:
        return []
    names: set[str] = set()
    if call.method == "wait" and call.receiver:
        names.add(call.receiver.rsplit(".", 1)[-1])
    else:
        text = f"{call.receiver}.{call.method}" if call.receiver else (call.method or "")
        inner = module._resolve(function, text)
        if inner is not None:
            names |= {
                (e.receiver or "").rsplit(".", 1)[-1]
                for e in inner.events
                if e.kind is EventKind.CALL and e.method == "wait" and e.receiver
            }
    found = []
    for other in module.functions:
        for event in other.events:
            if (
                event.kind is EventKind.CALL
                and event.method == "set"
                and event.receiver
                and event.receiver.rsplit(".", 1)[-1] in names
                and other.name not in INITIALISERS
            ):
                found.append((other, event))
    return found


def _trace_unshielded(
    module: _Module, b: _TraceBuilder, function: FunctionFacts, finding: Finding
) -> Trace | None:
    b.add(
        "Task B",
        None,
        "cancels the scope Task A runs in (an error in a sibling, a timeout, shutdown)",
        "cancel",
    )
    b.add("Task A", None, "unwinds → the cleanup runs", "enter")
    b.add(
        "Task A",
        finding.location.line,
        "CHECKPOINT, unshielded: `Cancelled` is raised here at once",
        "checkpoint",
    )
    if finding.related:
        line = finding.related[0].location.line
        b.add("Task A", line, "never runs, nor the rest of the cleanup", "skipped")
    else:
        b.add("Task A", None, "the rest of the cleanup never runs", "skipped")
    return b.build(
        [f"Task A runs `{function.qualname}`; Task B is whatever cancels it."],
        (b.roles["checkpoint"], b.roles["skipped"]),
        "the cleanup stops half-way",
    )


def _trace_await_in_except(
    module: _Module, b: _TraceBuilder, function: FunctionFacts, finding: Finding
) -> Trace | None:
    checkpoint = module.event_at(function, finding.location, [EventKind.CHECKPOINT])
    caught = checkpoint.context.in_except if checkpoint is not None else None
    handler = f"`except {caught}`" if caught else "the `except` handler"
    b.add("Task A", None, f"enters {handler}", "enter")
    b.add("Task A", finding.location.line, f"CHECKPOINT in {handler}", "checkpoint")
    b.add(
        "Task B",
        None,
        "cancels Task A's scope → `Cancelled` is raised at that checkpoint",
        "cancel",
    )
    tasks = [f"Task A runs `{function.qualname}`; Task B is whatever cancels it."]
    if finding.related:
        line = finding.related[0].location.line
        b.add("Task A", line, "is skipped", "skipped")
        release = module.event_at(function, finding.related[0].location, [EventKind.CALL])
        if release is not None and release.method == "release" and release.receiver:
            acquire = _first(
                e
                for e in function.events
                if e.kind is EventKind.CALL
                and e.method == "acquire"
                and e.receiver == release.receiver
            )
            if acquire is not None:
                b.add(
                    "Task C",
                    acquire.location.line,
                    f"the next task to take `{release.receiver}` waits forever",
                    "blocked",
                )
                tasks[0] = (
                    f"Task A and Task C run `{function.qualname}`; "
                    "Task B is whatever cancels Task A."
                )
    last = b.roles.get("blocked", b.roles.get("skipped", b.roles["checkpoint"]))
    return b.build(
        tasks,
        (b.roles["checkpoint"], last),
        "a cancellation at the await skips what the handler had still to release",
    )


def _trace_pipe(
    module: _Module, b: _TraceBuilder, function: FunctionFacts, finding: Finding
) -> Trace | None:
    start = finding.related[0].location.line if finding.related else None
    if start is not None:
        b.add("Task A", start, "starts the child with its output on a pipe", "start")
    b.add(
        "Task A",
        finding.location.line,
        "waits for the child to exit; nobody reads the pipe",
        "wait",
    )
    b.add("child", None, "writes 64 KiB: the pipe is full, its `write()` blocks", "full")
    b.add("child", None, "cannot exit → the wait never returns", "hang")
    return b.build(
        [f"Task A runs `{function.qualname}`; the child is the process it started."],
        (b.roles["wait"], b.roles["hang"]),
        "Task A waits for the child, the child waits for a reader",
    )


def _trace_timeout(
    module: _Module, b: _TraceBuilder, function: FunctionFacts, finding: Finding
) -> Trace | None:
    b.add("Task A", finding.location.line, "enters the timeout scope", "enter")
    b.add(
        "Task A", None, "runs the body: no checkpoint, so no cancellation can be delivered", "body"
    )
    b.add("Task A", None, "leaves the scope: the deadline was never checked", "leave")
    return b.build(
        [f"Task A runs `{function.qualname}` (one task: the timeout cannot fire)."],
        (b.roles["body"], b.roles["leave"]),
        "the body runs to its end whatever the deadline",
    )


TraceMaker = Callable[[_Module, _TraceBuilder, FunctionFacts, Finding], "Trace | None"]

_TRACES: dict[str, TraceMaker] = {
    "CONC101": _trace_unbounded_wait,
    "CONC102": _trace_unshielded,
    "CONC103": _trace_await_in_except,
    "CONC110": _trace_timeout,
    "CONC201": _trace_atomicity,
    "CONC202": _trace_check_then_act,
    "CONC203": _trace_counter,
    "CONC204": _trace_lock_lifetime,
    "CONC301": _trace_set_then_mutate,
    "CONC302": _trace_set_not_guaranteed,
    "CONC401": _trace_pipe,
}


# -- 4. classification ---------------------------------------------------------


def _classify(finding: Finding) -> tuple[str, str]:
    code = finding.code
    if code == "CONC201":
        if finding.message.startswith("iterating"):
            return (
                "atomicity gap",
                "iterating a shared container and the other tasks' changes to it are not "
                "atomic: the loop checkpoints between its steps.",
            )
        return (
            "atomicity gap",
            "two writes that belong together have a checkpoint between them.",
        )
    if code == "CONC202":
        return (
            "TOCTOU",
            "time of check to time of use: the state changes between the check and the action "
            "based on it.",
        )
    if code == "CONC203":
        if finding.message.startswith("the lock is chosen"):
            return (
                "missing guard",
                "the lock is keyed differently from the state: two tasks can touch one entry "
                "under two locks.",
            )
        return (
            "lifetime mismatch",
            "one counter for all keys decides the lifetime of each key's entry: the entries live "
            "as long as any key has users.",
        )
    if code == "CONC204":
        return (
            "lifetime mismatch",
            "the lock has a shorter lifetime than the state it protects: it is popped while "
            "another task still tears that state down.",
        )
    if code == "CONC301":
        return (
            "stale reference",
            "the woken task reads state that the setter has already changed: it acts on a "
            "hand-over that is no longer there.",
        )
    if code == "CONC302":
        return (
            "deadlock",
            "a lost wakeup: the `.set()` the waiter depends on can be skipped by an error or a "
            "cancellation.",
        )
    if code == "CONC101":
        return (
            "deadlock",
            "an unbounded wait in cleanup: if the setter never fires, the teardown hangs.",
        )
    if code == "CONC102":
        return (
            "atomicity gap",
            "the cleanup should run as a whole, but its first checkpoint is where a "
            "cancellation stops it.",
        )
    if code == "CONC103":
        return (
            "atomicity gap",
            "the await in the handler and the release after it should go together; a "
            "cancellation at the await skips the release.",
        )
    if code == "CONC401":
        return (
            "deadlock",
            "the parent waits for the child, the child waits for someone to read its pipe.",
        )
    if code == "CONC110":
        return (
            "ineffective timeout",
            "a timeout scope whose body never checkpoints cannot fire.",
        )
    return ("unclassified", "")


# -- 5. fixes ------------------------------------------------------------------

_EFFORT = {
    "CONC101": "simple",
    "CONC102": "simple",
    "CONC103": "simple",
    "CONC110": "simple",
    "CONC201": "simple",
    "CONC202": "simple",
    "CONC203": "moderate",
    "CONC204": "complex",
    "CONC301": "moderate",
    "CONC302": "simple",
    "CONC401": "simple",
}


def unified_diff(lines: list[str], edits: Iterable[TextEdit], name: str) -> str:
    """The change that ``edits`` make, as a unified diff of ``name``."""
    new = apply_edits(lines, list(edits))
    diff = difflib.unified_diff(
        lines, new, fromfile=f"a/{name}", tofile=f"b/{name}", n=2, lineterm=""
    )
    return "\n".join(diff)


def _sketch_diff(
    title: str, lines: list[str], edits: Sequence[TextEdit], name: str, effort: str
) -> ProposedFix:
    """A sketch shown as the diff of its edits (the words are filled in later)."""
    return ProposedFix(
        title=title,
        kind="sketch-diff",
        diff=unified_diff(lines, edits, name),
        sketch="",
        closes="",
        tradeoffs="",
        risk="",
        effort=effort,
        edits=tuple(edits),
    )


def _fixes(
    module: _Module, finding: Finding, trace: Trace, name: str, lines: list[str]
) -> list[ProposedFix]:
    code = finding.code
    effort = _EFFORT.get(code, "moderate")
    closes, tradeoffs, risk = _fix_words(module, finding, trace)
    fixes: list[ProposedFix] = []
    if finding.fix is not None and finding.fix.edits:
        diff = unified_diff(lines, finding.fix.edits, name)
        if diff:
            fixes.append(
                ProposedFix(
                    title=finding.fix.title,
                    kind="diff",
                    diff=diff,
                    sketch="",
                    closes=closes,
                    tradeoffs=tradeoffs,
                    risk=risk
                    + (
                        ""
                        if finding.fix.safe
                        else " The quick fix is marked unsafe: it changes behaviour on purpose."
                    ),
                    effort=effort,
                    safe=finding.fix.safe,
                    edits=finding.fix.edits,
                )
            )
    if code == "CONC204":
        sketch = _sketch_unpublish(module, finding, name, lines)
        if sketch is not None:
            fixes.append(sketch)
    if code == "CONC203" and finding.message.startswith("the lock is chosen"):
        sketch = _sketch_lock_key(module, finding, name, lines)
        if sketch is not None:
            fixes.append(sketch)
    elif code == "CONC203" and not fixes:  # the quick fix is this same rewrite
        sketch = _sketch_counter(module, finding, trace, name, lines)
        if sketch is not None:
            fixes.append(sketch)
    if code == "CONC301":
        sketch = _sketch_leave_state(module, finding, trace, name, lines)
        if sketch is not None:
            fixes.append(sketch)
    if code == "CONC302" and not fixes and _set_after_cleanup_checkpoint(finding):
        shielded = _sketch_shield_before_set(module, finding, trace)
        if shielded is not None:
            fixes.append(shielded)
    if not fixes:
        fixes.append(
            ProposedFix(
                title=_sketch_title(code),
                kind="sketch",
                diff="",
                sketch=_rule_example(code),
                closes=closes,
                tradeoffs=tradeoffs,
                risk=risk,
                effort=effort,
            )
        )
    return fixes


def _set_after_cleanup_checkpoint(finding: Finding) -> bool:
    """CONC302 on a `.set()` already in a `finally`, but after a checkpoint there."""
    return (
        "in a `finally`, but after" in finding.message
        or "`except BaseException`, but after" in (finding.message)
    )


def _sketch_shield_before_set(
    module: _Module, finding: Finding, trace: Trace
) -> ProposedFix | None:
    """CONC302 when the `.set()` is in a `finally` after a checkpoint: shield and
    bound that checkpoint (pseudocode: the lines between stay as they are)."""
    raising = trace.step("raise")
    skipped = trace.step("skip")
    if raising is None or skipped is None:
        return None
    checkpoint = trace.steps[raising - 1]
    setter = trace.steps[skipped - 1]
    if checkpoint.line is None or setter.line is None:
        return None
    library = next((lib for lib in ("trio", "anyio") if lib in module.facts.libraries), None)
    if library is None:
        return None
    statement = _strip_comment(module.source(checkpoint.line))
    setter_text = _strip_comment(module.source(setter.line))
    sketch = (
        f"finally:\n"
        f"    ...\n"
        f"    with {library}.move_on_after(5, shield=True):  # L{checkpoint.line + 1}\n"
        f"        {statement}\n"
        f"    ...\n"
        f"    {setter_text}  # L{setter.line + 1}: now always reached"
    )
    return ProposedFix(
        title=f"Shield and bound the checkpoint before the `.set()` ({_ref(checkpoint.line)})",
        kind="pseudocode",
        diff="",
        sketch=sketch,
        closes="",
        tradeoffs="",
        risk="",
        effort=_EFFORT["CONC302"],
    )


def _sketch_title(code: str) -> str:
    return {
        "CONC101": "Bound the wait (and shield it on a cancellable cleanup path)",
        "CONC102": "Shield and bound the cleanup",
        "CONC103": "Move the release into a `finally`",
        "CONC110": "Remove the scope, or give its body a checkpoint",
        "CONC201": "Bring the two writes together, before the checkpoint",
        "CONC202": "Re-check after the await, or use the atomic form",
        "CONC203": "Count per key",
        "CONC204": "Tie the lock's lifetime to the teardown",
        "CONC301": "Leave the state alone until the waiter has read it",
        "CONC302": "Set the event in a `finally` of the setter",
        "CONC401": "Drain the pipes, or send them to DEVNULL",
    }.get(code, "Sketch")


def _rule_example(code: str) -> str:
    """The rule documentation's "Use instead" code, as the sketch."""
    from conc_lsp.rules import all_rules

    rule = all_rules().get(code)
    if rule is None:
        return ""
    match = re.search(r"## Use instead\s*```python\n(.*?)```", rule.doc, re.DOTALL)
    return match.group(1).rstrip() if match else ""


def _fix_words(module: _Module, finding: Finding, trace: Trace) -> tuple[str, str, str]:
    """How the fix closes the window (by trace step), its trade-offs and its risk."""
    code = finding.code
    s = trace.steps_text
    window = trace.window_words
    if code == "CONC201" and finding.message.startswith("iterating"):
        return (
            f"Task A iterates over a snapshot, so Task B's change ({s('b1')}) no longer "
            f"reaches the running loop; {s('second')} cannot fail.",
            "A copy per iteration (memory and time proportional to the container); the loop "
            "may visit an entry another task removed meanwhile.",
            "Code in the loop must tolerate entries that are already gone (re-check before "
            "using one).",
        )
    if code == "CONC201":
        return (
            f"The second write moves before the checkpoint ({s('checkpoint')}): both happen "
            f"with no switch between, so Task B ({s('b1', 'b2')}) sees both updates or neither: "
            f"the window ({window}) is gone.",
            "The second write now runs earlier, also on the paths the first one runs on "
            "(errors included, when the first is in a `finally`).",
            "Code between the two writes that still needs the second state (here the checkpoint "
            "itself, e.g. a context manager's exit) no longer finds it; review it before "
            "applying.",
        )
    if code == "CONC202":
        return (
            f"Task A re-checks after the checkpoint ({s('checkpoint')}) or acts atomically, so "
            f"the change Task B made ({s('b1', 'b2')}) is seen before the action "
            f"({s('act')}).",
            'One more test per call; the losing task must handle the "someone else got '
            'there first" case.',
            "When the re-check fails the action is skipped: make sure the caller copes "
            "(a connection is not returned, a value is not created).",
        )
    if code == "CONC203" and finding.message.startswith("the lock is chosen"):
        return (
            f"The lock is chosen by the state's own key: at {s('b_lock')} Task B takes the same "
            f"lock as Task A and waits, so {s('a_use')} and {s('b_use')} no longer overlap.",
            "Tasks with different keys of the old kind but the same state key now serialise.",
            "Code that relied on the broader lock (one lock per actor / host) for other state "
            "loses that exclusion: check what else the old lock guarded.",
        )
    if code == "CONC203":
        return (
            f"Each key counts its own users: Task B's increment ({s('b_inc')}) no longer "
            f"raises Task A's count, so {s('a_test')} sees zero and tears the entry down.",
            "The counter becomes a mapping; every reader of it changes, and an entry should be "
            "deleted when it reaches zero or the mapping grows.",
            "A reader still treating it as an `int` breaks at run time; deleting the entry at "
            "zero must happen in the same step as the test (no checkpoint between).",
        )
    if code == "CONC204":
        return (
            f"The entries are removed by the last user in one step with no checkpoint, before "
            f"the lock is popped ({s('pop')}): `{_lock_task(trace)}` no longer removes anything "
            f"after waking, so the window ({window}) is gone: Task B finds neither entry and "
            "starts afresh.",
            "The started task no longer owns the cleanup of the entries; the old context's exit "
            "may overlap a new context for the same key.",
            "If two contexts for one key must never overlap, Task B must instead wait (under the "
            "lock) for an event the started task sets at its very end. Popping a lock that other "
            "tasks wait on still lets a newcomer create a second lock: keep the lock, or pop it "
            "only when no task waits for it.",
        )
    if code == "CONC301":
        return (
            f"The change of {s('mutate')} no longer happens between the hand-over "
            f"({s('set')}) and the read ({s('read')}): the waiter reads what was set.",
            "The old value stays until the next update (or until the waiter clears it).",
            "Several waiters may read the value; if each value must be consumed once, use a "
            "memory channel instead of shared state and an event.",
        )
    if code == "CONC302" and _set_after_cleanup_checkpoint(finding):
        return (
            f"The checkpoint of {s('raise')} is shielded and bounded: neither a cancellation nor "
            f"a hang there skips the `.set()` of {s('skip')}, so the wait of {s('wait')} ends.",
            "The cleanup before the `.set()` can delay a cancellation by up to the bound.",
            "A cleanup step that needs longer than the bound is cut short (log it).",
        )
    if code == "CONC302":
        return (
            f"The `.set()` runs in a `finally`, so the error or cancellation of {s('raise')} "
            f"no longer skips it ({s('skip')}): the wait of {s('wait')} ends.",
            "The event is set on failure too: the waiter must check whether the work succeeded.",
            'A waiter that treats the event as "done successfully" proceeds after a failure.',
        )
    if code == "CONC101":
        return (
            f'The wait of {s("wait")} gets a deadline: {s("hang")} becomes "gives up after T '
            'seconds" and the teardown goes on.',
            "Teardown can finish with the other side still running (log it); T must be longer "
            "than a normal teardown.",
            "Shielding without the bound would make the hang worse: keep both.",
        )
    if code == "CONC102":
        return (
            f"The cleanup from {s('checkpoint')} on runs shielded and bounded: the cancellation "
            f"of {s('cancel')} cannot stop it half-way, so {s('skipped')} runs.",
            "The cleanup can delay the cancellation by up to the bound.",
            "A cleanup that hangs inside the shield is ended only by the bound: keep it short.",
        )
    if code == "CONC103":
        return (
            f"The release runs in a `finally`: a cancellation at {s('checkpoint')} no longer "
            f"skips it ({s('skipped')}).",
            "None beyond one more indentation level.",
            "The release now also runs when the await raises, so it must be valid in that state "
            "(it is for a lock taken before the `try`).",
        )
    if code == "CONC401":
        return (
            f"The pipes are read while waiting, so the child of {s('full')} never blocks and "
            f"{s('hang')} cannot happen.",
            "`communicate()` keeps the whole output in memory; DEVNULL drops it.",
            "Very large output: stream it instead of buffering it.",
        )
    if code == "CONC110":
        return (
            f"No scope pretends to bound {s('body')}.",
            "None: the scope did nothing.",
            "If the body was meant to be bounded, it needs a checkpoint instead.",
        )
    return (f"Removes {window}.", "Review by hand.", "Review by hand.")


def _lock_task(trace: Trace) -> str:
    for step in trace.steps:
        if step.task not in ("Task A", "Task B", "Task C", "child"):
            return step.task
    return "the started task"


def _statement_of(function: FunctionFacts, node: ast.AST) -> ast.stmt | None:
    from conc_lsp.rules.conc201_atomicity_gap import function_parents

    parents = function_parents(function)
    while node in parents and not isinstance(node, ast.stmt):
        node = parents[node][0]
    return node if isinstance(node, ast.stmt) else None


def _indent(line: str) -> str:
    return line[: len(line) - len(line.lstrip())]


def _delete_statements(
    function: FunctionFacts, statements: list[ast.stmt], lines: list[str]
) -> list[TextEdit]:
    """Edits that delete whole statements; a block left empty gets a `pass`."""
    from conc_lsp.rules.conc201_atomicity_gap import function_parents

    parents = function_parents(function)
    doomed = {id(statement) for statement in statements}
    edits = []
    for statement in statements:
        first = statement.lineno - 1
        last = (statement.end_lineno or statement.lineno) - 1
        parent = parents.get(statement)
        block: list[ast.stmt] = getattr(parent[0], parent[1], []) if parent else []
        if block and all(id(other) in doomed for other in block) and block[0] is statement:
            text = f"{_indent(lines[first])}pass"
            edits.append(TextEdit((first, 0), (last, len(lines[last])), text))
        else:
            edits.append(TextEdit((first, 0), (last + 1, 0), ""))
    return edits


def _sketch_unpublish(
    module: _Module, finding: Finding, name: str, lines: list[str]
) -> ProposedFix | None:
    """CONC204: the last user removes the entries itself, in one step, before it
    wakes the task and pops the lock; the task only exits its context."""
    function = module.by_qualname.get(finding.function)
    if function is None or not finding.related:
        return None
    removal = module.event_at(function, finding.location, [EventKind.WRITE])
    task = module.function_at(finding.related[0].location)
    late = module.event_at(task, finding.related[0].location, [EventKind.WRITE]) if task else None
    if removal is None or task is None or late is None:
        return None
    removals = [
        e
        for e in task.events[late.order :]
        if e.kind is EventKind.WRITE
        and e.removal
        and e.owner == removal.owner
        and not _is_lock_state(e.state)
        and e.key is not None
    ]
    keys = {e.key for e in function.events if e.key}
    if not removals or any(e.key not in keys for e in removals):
        return None
    removed = {(e.state, e.key) for e in removals}
    woken = _woken_at(task, function, removal) or _last_checkpoint_before(task, late)
    if any(
        e.kind in ACCESS_KINDS
        and not e.removal
        and (e.state, e.key) in removed
        and (woken is None or e.order > woken.order)
        and e.order < removals[-1].order
        for e in task.events
    ):
        return None  # the task still uses the entries after waking: they must stay
    setter = _first(
        e
        for e in reversed(function.events[: removal.order])
        if e.kind is EventKind.CALL and e.method == "set" and not exclusive(e, removal)
    )
    anchor_event = setter or removal
    anchor = _statement_of(function, anchor_event.node)
    if anchor is None:
        return None
    # The entry that holds the event must be read before it is removed: insert
    # after a statement that reads it, if any, else before the anchor.
    insert_at = anchor.lineno - 1
    indent = _indent(lines[insert_at])
    new_lines = []
    statements: list[ast.stmt] = []
    owner_text = _owner_text(function, removal)
    for event in removals:
        statement = _statement_of(task, event.node)
        if statement is None:
            return None
        call = event.node if isinstance(event.node, ast.Call) else None
        text = _unparse(call) if call is not None else _unparse(statement)
        if isinstance(event.node, ast.Subscript):
            text = f"del {_unparse(event.node)}"
        text = _respell(text, task, owner_text)
        new_lines.append(f"{indent}{text}")
        if all(statement is not other for other in statements):
            statements.append(statement)
    edits = _delete_statements(task, statements, lines)
    edits.append(TextEdit((insert_at, 0), (insert_at, 0), "\n".join(new_lines) + "\n"))
    diff = unified_diff(lines, edits, name)
    if not diff:
        return None
    return ProposedFix(
        title=(
            f"Remove the entries in `{function.qualname}`, in one step before the lock goes; "
            f"`{task.qualname}` only exits its context"
        ),
        kind="sketch-diff",
        diff=diff,
        sketch="",
        closes="",
        tradeoffs="",
        risk="",
        effort=_EFFORT["CONC204"],
        edits=tuple(edits),
    )


def _woken_at(task: FunctionFacts, function: FunctionFacts, removal: Event) -> Event | None:
    """The checkpoint where ``task`` waits for an event ``function`` sets before ``removal``."""
    names = {
        (e.receiver or "").rsplit(".", 1)[-1]
        for e in function.events[: removal.order]
        if e.kind is EventKind.CALL and e.method == "set" and e.receiver
    }
    for event in task.events:
        if (
            event.kind is EventKind.CALL
            and event.method == "wait"
            and event.awaited
            and (event.receiver or "").rsplit(".", 1)[-1] in names
            and event.order + 1 < len(task.events)
        ):
            return task.events[event.order + 1]
    return None


def _last_checkpoint_before(function: FunctionFacts, event: Event) -> Event | None:
    found = None
    for other in function.events[: event.order]:
        if other.kind is EventKind.CHECKPOINT and not exclusive(other, event):
            found = other
    return found


def _owner_text(function: FunctionFacts, event: Event) -> str:
    """How ``function`` spells the owner of ``event``'s state (`_Cache`, `self`)."""
    text = _unparse(event.node)
    return text.split(".", 1)[0] if "." in text else (event.owner or "")


def _respell(text: str, task: FunctionFacts, owner: str) -> str:
    for base in ("cls.", "self."):
        if text.startswith(base) and owner and owner != base[:-1]:
            return owner + "." + text[len(base) :]
    return text


def counter_rewrite(
    facts: ModuleFacts, finding: Finding, lines: list[str]
) -> tuple[str, tuple[TextEdit, ...]] | None:
    """CONC203's per-key counter as edits (the quick fix shares the report's rewrite)."""
    proposed = _sketch_counter(_Module(facts, lines), finding, None, "", lines)
    if proposed is None or not proposed.edits:
        return None
    return proposed.title, proposed.edits


def _sketch_counter(
    module: _Module, finding: Finding, trace: Trace | None, name: str, lines: list[str]
) -> ProposedFix | None:
    """CONC203: index the counter by the key of the state it counts."""
    function = module.by_qualname.get(finding.function)
    if function is None or not finding.related:
        return None
    counter = module.event_at(function, finding.location, [EventKind.WRITE])
    keyed = module.event_at(
        function, finding.related[0].location, [EventKind.READ, EventKind.WRITE, EventKind.TEST]
    )
    if counter is None or keyed is None or not keyed.key or not counter.state:
        return None
    key = keyed.key
    attribute = counter.state.rsplit(".", 1)[-1]
    pattern = re.compile(
        r"(?<![\w.])((?:self|cls|"
        + re.escape(counter.owner or "")
        + r")\."
        + re.escape(attribute)
        + r")(?![\w\[])"
        if counter.owner != "<module>"
        else r"(?<![\w.])(" + re.escape(attribute) + r")(?![\w\[])"
    )
    edits: list[TextEdit] = []
    touched: set[int] = set()
    for other in module.functions:
        if other.name in INITIALISERS:
            continue
        if not any(e.key == key for e in other.events):
            continue
        for event in other.events:
            if event.state != counter.state or event.key is not None:
                continue
            line = event.location.line
            if line in touched:
                continue
            touched.add(line)
            new = pattern.sub(lambda m: f"{m.group(1)}[{key}]", lines[line])
            if new != lines[line]:
                edits.append(TextEdit((line, 0), (line, len(lines[line])), new))
    declaration = _declaration(module, counter, lines)
    if declaration is not None:
        line, text = declaration
        edits.append(TextEdit((line, 0), (line, len(lines[line])), text))
        if "collections.defaultdict" in text:
            edits.append(_import_collections(lines))
    if not edits:
        return None
    return _sketch_diff(
        f"Count per `{key}`: `{counter.state}[{key}]`",
        lines,
        edits,
        name,
        _EFFORT["CONC203"],
    )


def _sketch_lock_key(
    module: _Module, finding: Finding, name: str, lines: list[str]
) -> ProposedFix | None:
    """CONC203's lock form: choose the lock by the key of the state it guards."""
    function = module.by_qualname.get(finding.function)
    if function is None or not finding.related:
        return None
    kinds = [EventKind.READ, EventKind.WRITE, EventKind.TEST]
    lock = module.event_at(function, finding.location, kinds)
    state = module.event_at(function, finding.related[0].location, kinds)
    if lock is None or state is None or not state.key:
        return None
    node = lock.node
    key: ast.expr | None = None
    if isinstance(node, ast.Subscript):
        key = node.slice
    elif isinstance(node, ast.Call) and node.args:
        key = node.args[0]
    if key is None or key.lineno != key.end_lineno:
        return None
    line = key.lineno - 1
    start = utf8_to_codepoint(lines[line], key.col_offset)
    end = utf8_to_codepoint(lines[line], key.end_col_offset or key.col_offset)
    edits = (TextEdit((line, start), (line, end), state.key),)
    return _sketch_diff(
        f"Choose the lock by `{state.key}`, the key of the state it guards",
        lines,
        edits,
        name,
        "simple",
    )


def _import_collections(lines: list[str]) -> TextEdit:
    """`import collections` before the module's first top-level import."""
    for index, line in enumerate(lines):
        if line.startswith(("import ", "from ")) and not line.startswith("from __future__"):
            return TextEdit((index, 0), (index, 0), "import collections\n")
    return TextEdit((0, 0), (0, 0), "import collections\n")


def _declaration(module: _Module, counter: Event, lines: list[str]) -> tuple[int, str] | None:
    """The line that creates the counter, rewritten as a per-key count."""
    attribute = (counter.state or "").rsplit(".", 1)[-1]
    class_name = counter.owner if counter.owner != "<module>" else None
    for index, line in enumerate(lines):
        stripped = line.strip()
        match = re.match(
            r"(?:self\.)?" + re.escape(attribute) + r"\s*(?::\s*[^=]+)?=\s*0\s*(#.*)?$", stripped
        )
        if match is None:
            continue
        if class_name is not None and not _inside_class(lines, index, class_name):
            continue
        prefix = "self." if stripped.startswith("self.") else ""
        imported = any(
            re.match(r"from collections import .*\bdefaultdict\b", text) for text in lines
        )
        factory = "defaultdict(int)" if imported else "collections.defaultdict(int)"
        return index, f"{_indent(line)}{prefix}{attribute} = {factory}  # one count per key"
    return None


def _inside_class(lines: list[str], index: int, class_name: str) -> bool:
    indent = len(_indent(lines[index]))
    for line in reversed(lines[:index]):
        if not line.strip():
            continue
        if len(_indent(line)) < indent:
            if re.match(r"\s*class\s+" + re.escape(class_name) + r"\b", line):
                return True
            if re.match(r"\s*(class|def|async\s+def)\b", line):
                if line.lstrip().startswith("class"):
                    return False
                indent = len(_indent(line))
                continue
            indent = len(_indent(line))
    return False


def _sketch_leave_state(
    module: _Module, finding: Finding, trace: Trace, name: str, lines: list[str]
) -> ProposedFix | None:
    """CONC301: do not change the handed-over state between the set and the read."""
    function = module.by_qualname.get(finding.function)
    if function is None:
        return None
    mutation = module.event_at(function, finding.location, [EventKind.WRITE])
    if mutation is None:
        return None
    statement = _statement_of(function, mutation.node)
    if statement is None or statement.lineno != (statement.end_lineno or statement.lineno):
        return None
    edits = _delete_statements(function, [statement], lines)
    return _sketch_diff(
        f"Do not change {_target(mutation)} after the hand-over",
        lines,
        edits,
        name,
        _EFFORT["CONC301"],
    )


# -- the report ----------------------------------------------------------------


def _target_findings(
    module: _Module, scope: _Scope, target: Target, findings: list[Finding]
) -> list[Finding]:
    if target.kind == "module":
        return list(findings)
    chosen = []
    for finding in findings:
        lines = [finding.location.line, *(r.location.line for r in finding.related)]
        if any(scope.has_line(line) for line in lines):
            chosen.append(finding)
    return chosen


def build_report(
    lines: list[str],
    target: Target | None = None,
    *,
    settings: Settings | None = None,
    path: str | None = None,
    name: str | None = None,
    link: str | None = None,
    result: Any = None,
    analysis: ModuleAnalysis | None = None,
) -> Report:
    """The report for ``target`` (the whole module by default).

    ``name`` is how the file is called in the report and its diffs (the path
    by default); ``link`` is the address line references link to (no links
    when None). ``result`` is a ``diagnose.CheckResult`` of these lines, when
    the caller already has one; ``analysis`` the hint analysis.
    """
    from conc_lsp.analysis.parse import analyse_lines
    from conc_lsp.diagnose import check_lines, with_fixes

    settings = settings or Settings()
    target = target or Target()
    name = name or path or "<module>"
    if result is None:
        result = check_lines(lines, settings, path)
    if result.facts is None:  # pragma: no cover - check_lines always gives facts
        raise ValueError("no facts for this text")
    if analysis is None:
        analysis = analyse_lines(lines)
    module = _Module(result.facts, lines)
    scope = _scope(module, target)
    chosen = _target_findings(module, scope, target, result.findings)
    fixed: dict[tuple[str, int, int], Finding] = {}
    for line in sorted({finding.location.line for finding in chosen}):
        for found in with_fixes(result, lines, settings, line, line):
            fixed[(found.code, found.location.line, found.location.column)] = found
    reports = []
    for finding in chosen:
        finding = fixed.get((finding.code, finding.location.line, finding.location.column), finding)
        trace = _trace(module, finding)
        classification, explanation = _classify(finding)
        fixes = _fixes(module, finding, trace, name, lines)
        for fix in fixes:
            if not fix.closes:
                fix.closes, fix.tradeoffs, fix.risk = _fix_words(module, finding, trace)
        reports.append(
            FindingReport(
                code=finding.code,
                name=finding.name,
                severity=finding.severity.value,
                function=finding.function,
                line=finding.location.line,
                message=finding.message,
                classification=classification,
                explanation=explanation,
                trace=trace,
                fixes=fixes,
                related=[(r.location.line, r.message) for r in finding.related],
            )
        )
    state = _state_rows(module, scope)
    marks = _marks(module, scope, analysis.hints)
    notes = [
        f"line {p.line + 1}: syntax error ({p.message}); lines {p.start_line + 1}-{p.end_line} "
        "are not analysed"
        for p in result.problems
    ]
    label = target.label(name)
    report = Report(
        target=label,
        path=name,
        link=link,
        summary="",
        state=state,
        checkpoints=marks,
        findings=reports,
        notes=notes,
    )
    report.summary = _summary(report)
    return report


def _plural(count: int, word: str, plural: str | None = None) -> str:
    return f"{count} {word if count == 1 else (plural or word + 's')}"


def _summary(report: Report) -> str:
    parts: list[str] = []
    rows = report.state
    unguarded = [row for row in rows if row.guard is None]
    if rows:
        text = f"{_plural(len(rows), 'piece')} of shared state that more than one task can touch"
        if unguarded:
            names = _some(f"`{row.state}`" for row in unguarded)
            text += f", {len(unguarded)} of them UNGUARDED ({names})"
        guards: dict[str, list[StateRow]] = {}
        for row in rows:
            if row.guard is not None:
                guards.setdefault(row.guard, []).append(row)
        for guard, guarded in guards.items():
            names = _some((f"`{row.state}`" for row in guarded), " and ")
            text += f"; {names} guarded by {guard}"
            breaks = [e for row in guarded for e in row.exceptions]
            if breaks:
                text += " except at " + ", ".join(breaks)
        parts.append(text)
    else:
        parts.append("no shared state that more than one task can touch")
    checkpoints = sum(1 for f in report.checkpoints for m in f.marks if m.is_checkpoint)
    suspends = sum(1 for f in report.checkpoints for m in f.marks if m.kind == "acm-yield")
    alike = sum(
        1
        for f in report.checkpoints
        for m in f.marks
        if not m.is_checkpoint and m.kind != "acm-yield"
    )
    counts = [_plural(checkpoints, "checkpoint")]
    if suspends:
        counts.append(_plural(suspends, "suspend (acm `yield`)", "suspends (acm `yield`)"))
    if alike:
        counts.append(_plural(alike, "look-alike"))
    text = ", ".join(counts[:-1]) + (" and " if len(counts) > 1 else "") + counts[-1]
    text += f" in {_plural(len(report.checkpoints), 'function')}"
    parts.append(text)
    findings = report.findings
    if findings:
        groups: dict[str, list[str]] = {}
        for item in findings:
            groups.setdefault(item.classification, []).append(f"{item.code} at {_ref(item.line)}")
        described = "; ".join(
            f"{_plural(len(items), name, _plural_class(name))} ({_some(items)})"
            for name, items in groups.items()
        )
        parts.append(f"{_plural(len(findings), 'finding')}: {described}")
    else:
        parts.append("no findings, so no race window to trace")
    sentence = f"`{report.target}`: " + "; ".join(parts) + "."
    if findings:
        lead = min(findings, key=_seriousness)
        sentence += (
            f" The most serious is {lead.code} ({lead.classification}) at {_ref(lead.line)}: "
            f"{lead.trace.window_text} ({lead.trace.window_words} of its trace)."
        )
    return sentence


def _some(items: Iterable[str], separator: str = ", ", most: int = 5) -> str:
    """At most ``most`` items, then how many more."""
    listed = list(items)
    if len(listed) <= most:
        return separator.join(listed)
    return ", ".join(listed[:most]) + f" and {len(listed) - most} more"


def _seriousness(item: FindingReport) -> tuple[float, int]:
    """Sort key: the races first (a loop over shared state after the other races),
    then the hangs."""
    rank: float = PRIORITY.index(item.code) if item.code in PRIORITY else len(PRIORITY)
    if item.code == "CONC201" and item.message.startswith("iterating"):
        rank = PRIORITY.index("CONC203") + 0.5
    return rank, item.line


def _plural_class(name: str) -> str:
    if name == "TOCTOU":
        return "TOCTOUs"
    if name.endswith("y"):
        return name[:-1] + "ies"
    if name.endswith("ch"):
        return name + "es"
    return name + "s"


# -- rendering -----------------------------------------------------------------


def _capital(text: str) -> str:
    return text if text.isupper() else text[:1].upper() + text[1:]


def _links(text: str, link: str | None) -> str:
    if link is None:
        return REF.sub(lambda m: f"L{m.group(1)}", text)
    return REF.sub(lambda m: f"[L{m.group(1)}]({link}#L{m.group(1)})", text)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_markdown(report: Report) -> str:
    """The report in the seed's section 6 layout."""
    out: list[str] = [f"## Concurrency analysis: `{report.target}`", "", report.summary, ""]
    for note in report.notes:
        out += [f"> {note}", ""]
    out += ["### Shared state", ""]
    if report.state:
        out += ["| State | Writers | Readers | Guard |", "|---|---|---|---|"]
        for row in report.state:
            out.append(
                "| "
                + " | ".join(
                    _cell(cell)
                    for cell in (
                        f"`{row.state}`",
                        ", ".join(row.writers) or "-",
                        ", ".join(row.readers) or "-",
                        row.guard_text,
                    )
                )
                + " |"
            )
    else:
        out.append("No state that more than one task can touch.")
    out += ["", "### Checkpoints", ""]
    if report.checkpoints:
        for marks in report.checkpoints:
            out += [f"`{marks.function}` ({_ref(marks.line)}):", ""]
            for mark in marks.marks:
                out.append(f"- {_ref(mark.line)}: `{mark.code}` <- {mark.mark}")
            out.append("")
    else:
        out += ["No checkpoint in the target.", ""]
    out += ["### Race trace", ""]
    if not report.findings:
        out += ["No finding: nothing to trace.", ""]
    for index, item in enumerate(report.findings, 1):
        out += [f"#### {index}. {item.code} {item.name} at {_ref(item.line)}", ""]
        out += [" ".join(item.trace.tasks), ""]
        for step in item.trace.steps:
            where = f" {_ref(step.line)}" if step.line is not None else ""
            code = f" `{step.code}`" if step.code else ""
            sep = " —" if code else ""
            out.append(f"- [{step.task}] {step.number}.{where}{code}{sep} {step.text}")
        out.append("")
        if item.trace.window is not None:
            out += [f"**Race window: {item.trace.window_words}**: {item.trace.window_text}.", ""]
    out += ["### Classification", ""]
    if not report.findings:
        out += ["No finding."]
    for index, item in enumerate(report.findings, 1):
        out.append(
            f"{index}. **{_capital(item.classification)}** "
            f"({item.code} {item.name}, {_ref(item.line)} in `{item.function}`): "
            f"{item.explanation} Here: {item.message}"
        )
    out += ["", "### Fixes", ""]
    if not report.findings:
        out += ["Nothing to fix.", ""]
    for index, item in enumerate(report.findings, 1):
        for fix in item.fixes:
            kind = {
                "diff": "quick fix",
                "sketch-diff": "sketch",
                "sketch": "sketch, from the rule's documentation",
                "pseudocode": "sketch (pseudocode)",
            }[fix.kind]
            out += [
                f"#### {index}. {item.code} at {_ref(item.line)}: {fix.title} [{fix.effort}]",
                "",
                f"*{kind}*" + ("" if fix.safe is not False else " (unsafe)"),
                "",
            ]
            if fix.diff:
                out += ["```diff", fix.diff, "```", ""]
            elif fix.sketch:
                out += ["```python", fix.sketch, "```", ""]
            out += [
                f"- **How it closes the window**: {fix.closes}",
                f"- **Trade-offs**: {fix.tradeoffs}",
                f"- **Risk**: {fix.risk}",
                f"- **Effort**: {fix.effort}",
                "",
            ]
    text = "\n".join(out).rstrip() + "\n"
    return _links(text, report.link)


def to_json(report: Report) -> dict[str, Any]:
    """The same content as data (line numbers 1-based, texts without links)."""

    def plain(text: str) -> str:
        return _links(text, None)

    return {
        "target": report.target,
        "path": report.path,
        "summary": plain(report.summary),
        "notes": [plain(note) for note in report.notes],
        "shared_state": [
            {
                "state": row.state,
                "scope": row.scope,
                "writers": [plain(w).replace("`", "") for w in row.writers],
                "readers": [plain(r).replace("`", "") for r in row.readers],
                "guard": plain(row.guard).replace("`", "") if row.guard else None,
                "guard_text": plain(row.guard_text).replace("`", ""),
                "unguarded_accesses": [plain(e).replace("`", "") for e in row.exceptions],
                "lines": [line + 1 for line in row.lines],
            }
            for row in report.state
        ],
        "checkpoints": [
            {
                "function": item.function,
                "line": item.line + 1,
                "marks": [
                    {
                        "line": mark.line + 1,
                        "code": mark.code,
                        "mark": mark.mark,
                        "kind": mark.kind,
                        "checkpoint": mark.is_checkpoint,
                    }
                    for mark in item.marks
                ],
            }
            for item in report.checkpoints
        ],
        "findings": [
            {
                "code": item.code,
                "name": item.name,
                "severity": item.severity,
                "function": item.function,
                "line": item.line + 1,
                "message": item.message,
                "related": [{"line": line + 1, "message": text} for line, text in item.related],
                "classification": item.classification,
                "explanation": item.explanation,
                "trace": {
                    "tasks": [plain(task) for task in item.trace.tasks],
                    "steps": [
                        {
                            "step": step.number,
                            "task": step.task,
                            "line": step.line + 1 if step.line is not None else None,
                            "code": step.code,
                            "text": plain(step.text),
                        }
                        for step in item.trace.steps
                    ],
                    "window": list(item.trace.window) if item.trace.window else None,
                    "window_text": plain(item.trace.window_text),
                },
                "fixes": [
                    {
                        "title": plain(fix.title),
                        "kind": fix.kind,
                        "diff": fix.diff or None,
                        "sketch": fix.sketch or None,
                        "closes": plain(fix.closes),
                        "tradeoffs": plain(fix.tradeoffs),
                        "risk": plain(fix.risk),
                        "effort": fix.effort,
                        "safe": fix.safe,
                    }
                    for fix in item.fixes
                ],
            }
            for item in report.findings
        ],
    }


# -- code lens data ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LensTarget:
    """An async function, or a class with async methods, and its counts."""

    qualname: str
    line: int  # 0-based, where the lens goes (the first decorator or the `def`/`class`)
    checkpoints: int
    findings: int
    kind: str  # "function" | "class"


def lens_targets(facts: ModuleFacts, findings: list[Finding], lines: list[str]) -> list[LensTarget]:
    """Code lens targets: every async function and every class with async methods."""
    found: list[LensTarget] = []
    counts: dict[str, int] = {}
    for finding in findings:
        counts[finding.function] = counts.get(finding.function, 0) + 1
    classes: dict[str, list[FunctionFacts]] = {}
    for function in facts.functions:
        checkpoints = sum(
            1 for e in function.events if e.kind is EventKind.CHECKPOINT and not e.exit
        )
        if function.is_async:
            found.append(
                LensTarget(
                    function.qualname,
                    _span(function)[0],
                    checkpoints,
                    counts.get(function.qualname, 0),
                    "function",
                )
            )
        if function.class_name and function.qualname.endswith(
            f"{function.class_name}.{function.name}"
        ):
            owner = function.qualname[: -len(function.name) - 1]
            classes.setdefault(owner, []).append(function)
    for owner, methods in classes.items():
        if not any(method.is_async for method in methods):
            continue
        line = _class_line(lines, owner, _span(methods[0])[0])
        if line is None:
            continue
        checkpoints = sum(
            1
            for method in methods
            for e in method.events
            if e.kind is EventKind.CHECKPOINT and not e.exit
        )
        total = sum(count for qualname, count in counts.items() if qualname.startswith(owner + "."))
        found.append(LensTarget(owner, line, checkpoints, total, "class"))
    found.sort(key=lambda target: (target.line, target.qualname))
    return found


def _class_line(lines: list[str], qualname: str, method_line: int) -> int | None:
    """The line of `class Name` (or its first decorator) above a method."""
    name = qualname.rsplit(".", 1)[-1]
    indent = len(_indent(lines[method_line])) if method_line < len(lines) else 0
    for index in range(method_line, -1, -1):
        line = lines[index]
        if not line.strip() or len(_indent(line)) >= indent:
            continue
        if re.match(r"\s*class\s+" + re.escape(name) + r"\b", line):
            while index > 0 and lines[index - 1].strip().startswith("@"):
                index -= 1
            return index
        if not line.lstrip().startswith(("#", "@", ")", "]", "}")):
            indent = len(_indent(line))
    return None


__all__ = [
    "FindingReport",
    "LensTarget",
    "Report",
    "StateRow",
    "Target",
    "TargetNotFound",
    "build_report",
    "lens_targets",
    "render_markdown",
    "to_json",
    "unified_diff",
]
