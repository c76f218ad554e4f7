"""The module as a program of tasks: which functions run as tasks and who
reaches them, which locks are held at each event, and who touches which
shared state.

Computed once per module and shared by the rules' report stories and the
concurrency report (its shared-state table and guards).
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from dataclasses import dataclass

from conc_lsp.analysis.events import Event, EventKind, FunctionFacts, ModuleFacts, exclusive
from conc_lsp.analysis.locks import is_mutex
from conc_lsp.analysis.model import Location
from conc_lsp.analysis.tree import own_nodes, unparse

INITIALISERS = frozenset({"__init__", "__post_init__", "__new__"})


SPAWN_METHODS = frozenset({"start", "start_soon", "create_task", "ensure_future"})


ACCESS_KINDS = (EventKind.READ, EventKind.WRITE, EventKind.TEST)


def short_name(qualname: str) -> str:
    return qualname.rsplit(".", 1)[-1]


@dataclass(slots=True)
class Access:
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


class Program:
    """What the report needs to know about the whole module, computed once."""

    def __init__(self, facts: ModuleFacts, lines: list[str]) -> None:
        self.facts = facts
        self.lines = lines
        self.functions = [f for f in facts.functions]
        self.by_qualname = {f.qualname: f for f in self.functions}
        names: dict[str, int] = {}
        self._by_name: dict[str, list[FunctionFacts]] = {}  # `resolve` looks up by last name
        self._nested: dict[str, list[FunctionFacts]] = {}  # qualname -> its own nested functions
        for function in self.functions:
            names[short_name(function.qualname)] = names.get(short_name(function.qualname), 0) + 1
            self._by_name.setdefault(function.name, []).append(function)
            outer, nested, name = function.qualname.rpartition(".<locals>.")
            if nested and "." not in name:
                self._nested.setdefault(outer, []).append(function)
        self._name_counts = names
        self._acquires: dict[int, set[str]] = {}
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
        short = short_name(qualname)
        return short if self._name_counts.get(short, 0) <= 1 else qualname

    def source(self, line: int) -> str:
        return self.lines[line].strip() if 0 <= line < len(self.lines) else ""

    def function_at(self, location: Location) -> FunctionFacts | None:
        """The innermost function whose lines hold ``location``."""
        best: FunctionFacts | None = None
        for function in self.functions:
            first, last = span(function)
            if first <= location.line <= last and (best is None or span(best)[0] <= first):
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

    def resolve(self, caller: FunctionFacts, text: str) -> FunctionFacts | None:
        """The function a callee text names: `self._run`, `cls.run_ctx`,
        `_Cache.run_ctx`, `relay`, `actor.handle_peer` (a unique method name)."""
        text = text.split("(", 1)[0].strip()
        if not text:
            return None
        name = text.rsplit(".", 1)[-1]
        candidates = self._by_name.get(name, [])
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
                target = self.resolve(function, event.argument or "")
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
                target = self.resolve(function, text)
                if target is not None and target is not function:
                    callees.add(target.qualname)
            for other in self._nested.get(function.qualname, []):  # called or handed out
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
        for node in own_nodes(function.node):
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
                origin = f"{unparse(value.func.value)}[{unparse(value.args[0])}]"
            elif isinstance(value, ast.Subscript):
                origin = unparse(value)
            if origin is not None and is_mutex(origin):
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
        for node in own_nodes(function.node):
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
            if not is_mutex(event.receiver):
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
                if guard not in acquires and is_mutex(guard)
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
        found = self._acquires.get(id(function))
        if found is None:
            found = self._acquires[id(function)] = {
                event.receiver
                for event in function.events
                if event.kind is EventKind.CALL and event.method == "acquire" and event.receiver
            }
        return found

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

    def accesses(self) -> dict[str, list[Access]]:
        """Shared-state accesses outside initialisers, by state."""
        found: dict[str, list[Access]] = {}
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
                        Access(function, event, locks[event.order])
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
                    Access(function, event, locks[event.order], use=True)
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


def program_of(facts: ModuleFacts, lines: list[str]) -> Program:
    """The module's program, built once per facts and lines and shared (the
    report, and fixes that read it, ask for it once per finding)."""
    found = facts.memo.get("program")
    if not isinstance(found, Program) or (found.lines is not lines and found.lines != lines):
        found = facts.memo["program"] = Program(facts, lines)
    return found


def span(function: FunctionFacts) -> tuple[int, int]:
    node = function.node
    first = min([node.lineno, *(d.lineno for d in node.decorator_list)]) - 1
    return first, (node.end_lineno or node.lineno) - 1
