"""Facts for the rules: what each function does, in order.

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
import enum
import re
from collections.abc import Iterator
from dataclasses import dataclass, field, replace

from conc_lsp.analysis.facts import (
    ACM_DECORATORS,
    AEXIT_NAMES,
    ScopeEffect,
    after_scope_assignment,
    callee,
    inside_scope,
    is_lock_text,
    name_words,
    scope_effect,
)
from conc_lsp.analysis.libraries import ImportTable, imports_of, last_name
from conc_lsp.analysis.model import EMPTY_CONTEXT, Context, HintKind, Location, Resolution, Verdict
from conc_lsp.analysis.text import end_position, utf8_to_codepoint

MUTATING_METHODS = frozenset(
    {
        "pop",
        "popitem",
        "popleft",
        "append",
        "appendleft",
        "extend",
        "insert",
        "remove",
        "clear",
        "update",
        "setdefault",
        "add",
        "discard",
    }
)
READING_METHODS = frozenset({"get", "keys", "values", "items", "copy", "count", "index"})
CONTAINER_CALLS = frozenset(
    {
        "dict",
        "list",
        "set",
        "deque",
        "defaultdict",
        "OrderedDict",
        "Counter",
        "WeakValueDictionary",
        "WeakKeyDictionary",
        "WeakSet",
    }
)


class EventKind(enum.Enum):
    CHECKPOINT = "checkpoint"
    CALL = "call"
    READ = "read"
    TEST = "test"
    WRITE = "write"


@dataclass(slots=True)
class Event:
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
        return [event for event in self.events if event.kind is EventKind.CHECKPOINT]

    def checkpoints_between(self, first: Event, second: Event) -> list[Event]:
        """Checkpoints after ``first`` and before ``second`` on a path through both."""
        return [
            event
            for event in self.events[first.order + 1 : second.order]
            if event.kind is EventKind.CHECKPOINT
            and not exclusive(event, first)
            and not exclusive(event, second)
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

    @property
    def libraries(self) -> frozenset[str]:
        return self.table.libraries

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
        for function in self.functions:
            if function.qualname == qualname:
                return function
        return None

    def calls(self, method: str) -> Iterator[tuple[FunctionFacts, Event]]:
        for function in self.functions:
            for event in function.events:
                if event.kind is EventKind.CALL and event.method == method:
                    yield function, event

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


MUTEX_WORDS = frozenset({"lock", "locks", "rlock", "rlocks", "mutex", "mutexes", "lk", "mtx"})


# Resolved types that one task holds at a time (a Condition holds its lock).
MUTEX_TYPES = frozenset(
    f"{library}.{name}"
    for library in ("trio", "anyio", "asyncio")
    for name in ("Lock", "StrictFIFOLock", "Condition")
)


def is_mutex_expression(text: str) -> bool:
    """A lock that one task holds at a time (not a semaphore or limiter, which
    let several in): only a mutex guards state against other tasks."""
    head = re.split(r"[(\[]", text, maxsplit=1)[0].strip()
    return any(word in MUTEX_WORDS for word in name_words(head.rsplit(".", 1)[-1]))


def is_lock_expression(text: str) -> bool:
    """Whether an expression's text names a lock (see ``facts.is_lock_text``)."""
    return is_lock_text(text)


def _text(node: ast.AST) -> str:
    # Dotted names are most of what is asked for; ast.unparse is slow.
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        parts = [node.attr]
        value = node.value
        while isinstance(value, ast.Attribute):
            parts.append(value.attr)
            value = value.value
        if isinstance(value, ast.Name):
            parts.append(value.id)
            return ".".join(reversed(parts))
    try:
        return ast.unparse(node)
    except Exception:  # noqa: BLE001 - unparse of odd trees must not break the analysis
        return "?"


class _Walker:
    def __init__(
        self,
        module: ast.Module,
        lines: list[str],
        table: ImportTable,
        resolved: dict[tuple[int, int, HintKind], Resolution] | None = None,
    ) -> None:
        self.lines = lines
        self.table = table
        self.resolved = resolved or {}
        self.functions: list[FunctionFacts] = []
        classes, declared_global = _definitions(module)
        self.classes = frozenset(classes)
        self.state_globals = frozenset(_state_globals(module) | declared_global)
        self._ids = 0

    def _new_id(self) -> int:
        self._ids += 1
        return self._ids

    def resolution(self, item: ast.withitem) -> Resolution | None:
        """What resolving found for one item of an `async with`, if anything."""
        if not self.resolved:
            return None
        anchor = item.optional_vars if item.optional_vars is not None else item.context_expr
        return self.resolved.get((*end_position(self.lines, anchor), HintKind.ASYNC_WITH))

    def span(self, node: ast.AST) -> Location:
        line: int = node.lineno  # type: ignore[attr-defined]
        end_line: int = node.end_lineno or line  # type: ignore[attr-defined]
        return Location(
            line - 1,
            utf8_to_codepoint(self.lines[line - 1], node.col_offset),  # type: ignore[attr-defined]
            end_line - 1,
            utf8_to_codepoint(self.lines[end_line - 1], node.end_col_offset or 0),  # type: ignore[attr-defined]
        )

    # -- module --------------------------------------------------------------

    def walk_module(self, module: ast.Module) -> None:
        self._definitions(module.body, prefix="", class_name=None)

    def _definitions(self, body: list[ast.stmt], prefix: str, class_name: str | None) -> None:
        for statement in body:
            if isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef)):
                self._function(statement, prefix, class_name)
            elif isinstance(statement, ast.ClassDef):
                self._definitions(statement.body, f"{prefix}{statement.name}.", statement.name)
            elif isinstance(statement, (ast.If, ast.Try, ast.TryStar, ast.With)):
                for block in _blocks(statement):
                    self._definitions(block, prefix, class_name)

    def _function(
        self, node: ast.FunctionDef | ast.AsyncFunctionDef, prefix: str, class_name: str | None
    ) -> None:
        is_async = isinstance(node, ast.AsyncFunctionDef)
        facts = FunctionFacts(
            qualname=f"{prefix}{node.name}",
            name=node.name,
            node=node,
            class_name=class_name,
            is_async=is_async,
            is_acm=is_async
            and any(
                last_name(self.table.resolve(callee(decorator))) in ACM_DECORATORS
                for decorator in node.decorator_list
            ),
        )
        self.functions.append(facts)
        walk = _FunctionWalk(self, facts)
        walk.block(node.body, _State(context=Context(in_aexit=node.name in AEXIT_NAMES)))


@dataclass(frozen=True, slots=True)
class _State:
    context: Context = EMPTY_CONTEXT
    path: tuple[tuple[int, int], ...] = ()
    guards: frozenset[str] = frozenset()
    testing: bool = False
    handler: int = 0
    cleanup_block: int = 0


class _FunctionWalk:
    def __init__(self, walker: _Walker, facts: FunctionFacts) -> None:
        self.walker = walker
        self.facts = facts
        self.after_yield = False
        self.held: set[str] = set()  # locks held through acquire()/release()
        self.open_scopes: list[Scope] = []
        self.open_loops: list[Loop] = []
        self.scope_names: dict[str, ScopeEffect] = {}
        self.globals: set[str] = set()
        self.teardown_block = 0
        self.awaited_calls: set[int] = set()

    # -- events --------------------------------------------------------------

    def emit(self, kind: EventKind, node: ast.AST, where: _State, **details: object) -> Event:
        context = where.context
        cleanup_block = where.cleanup_block
        if self.after_yield and not context.acm_teardown:
            context = replace(context, acm_teardown=True)
        if self.after_yield and not cleanup_block:
            cleanup_block = self.teardown_block
        event = Event(
            kind=kind,
            location=self.walker.span(node),
            context=context,
            path=where.path,
            order=len(self.facts.events),
            guards=where.guards | frozenset(self.held),
            node=node,
            handler=where.handler,
            cleanup_block=cleanup_block,
            **details,  # type: ignore[arg-type]
        )
        self.facts.events.append(event)
        if kind is EventKind.CHECKPOINT:
            for scope in self.open_scopes:
                scope.checkpoints += 1
            for loop in self.open_loops:
                loop.checkpoints.append(event)
        return event

    # -- statements ----------------------------------------------------------

    def block(self, body: list[ast.stmt], state: _State) -> None:
        for statement in body:
            self.statement(statement, state)
            context = after_scope_assignment(statement, self.scope_names, state.context)
            if context is not state.context:
                state = replace(state, context=context)

    def statement(self, node: ast.stmt, state: _State) -> None:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for default in [*node.args.defaults, *node.args.kw_defaults]:
                if default is not None:
                    self.expression(default, state)
            self.walker._function(node, f"{self.facts.qualname}.<locals>.", None)
            return
        if isinstance(node, ast.ClassDef):
            self.walker._definitions(
                node.body, f"{self.facts.qualname}.<locals>.{node.name}.", node.name
            )
            return
        if isinstance(node, ast.Global):
            self.globals.update(node.names)
            return
        if isinstance(node, ast.If):
            self.expression(node.test, replace(state, testing=True))
            # In an acm, a branch runs *instead of* the other: a `yield` in one
            # does not make the other teardown.
            before = self.after_yield
            self.block(node.body, self._branch(state, node, 0))
            body_yielded, self.after_yield = self.after_yield, before
            self.block(node.orelse, self._branch(state, node, 1))
            self.after_yield = self.after_yield or body_yielded
            return
        if isinstance(node, ast.While):
            self.expression(node.test, replace(state, testing=True))
            self.block(node.body, state)
            self.block(node.orelse, state)
            return
        if isinstance(node, (ast.For, ast.AsyncFor)):
            self._for(node, state)
            return
        if isinstance(node, (ast.Try, ast.TryStar)):
            self._try(node, state)
            return
        if isinstance(node, (ast.With, ast.AsyncWith)):
            self._with(node, state)
            return
        if isinstance(node, ast.Match):
            self.expression(node.subject, state)
            for index, case in enumerate(node.cases):
                branch = self._branch(state, node, index)
                if case.guard is not None:
                    self.expression(case.guard, replace(branch, testing=True))
                self.block(case.body, branch)
            return
        if isinstance(node, ast.Assert):
            self.expression(node.test, replace(state, testing=True))
            return
        if isinstance(node, ast.Assign):
            self.expression(node.value, state)
            for target in node.targets:
                self.target(target, state)
            return
        if isinstance(node, ast.AugAssign):
            self.expression(node.value, state)
            self.target(node.target, state, augmented=True)
            return
        if isinstance(node, ast.AnnAssign):
            if node.value is not None:
                self.expression(node.value, state)
                self.target(node.target, state)
            return
        if isinstance(node, ast.Delete):
            for target in node.targets:
                self.target(target, state, deleting=True)
            return
        for child in _children(node):
            if isinstance(child, ast.expr):
                self.expression(child, state)
        if isinstance(node, ast.Expr) and isinstance(node.value, (ast.Yield, ast.YieldFrom)):
            pass

    def _branch(self, state: _State, node: ast.AST, index: int) -> _State:
        return replace(state, path=(*state.path, (id(node), index)))

    def _for(self, node: ast.For | ast.AsyncFor, state: _State) -> None:
        self.expression(node.iter, state)
        iterated = _iterated_state(node.iter, self)
        loop = None
        if iterated is not None:
            loop = Loop(self.walker.span(node.iter), iterated)
            self.facts.loops.append(loop)
            self.open_loops.append(loop)
        if isinstance(node, ast.AsyncFor):
            self.emit(EventKind.CHECKPOINT, node.iter, state)
        self.target(node.target, state)
        self.block(node.body, state)
        if loop is not None:
            self.open_loops.remove(loop)
        self.block(node.orelse, state)

    def _try(self, node: ast.Try | ast.TryStar, state: _State) -> None:
        self.block(node.body, state)
        for index, handler in enumerate(node.handlers):
            caught = _text(handler.type) if handler.type is not None else ""
            if isinstance(node, ast.TryStar):
                caught = f"*{caught}"
            handler_id = self.walker._new_id()
            branch = self._branch(state, node, index + 1)
            self.block(
                handler.body,
                replace(
                    branch,
                    context=replace(branch.context, in_except=caught),
                    handler=handler_id,
                    cleanup_block=handler_id,
                ),
            )
        self.block(node.orelse, self._branch(state, node, 0))
        if node.finalbody:
            self.block(
                node.finalbody,
                replace(
                    state,
                    context=replace(state.context, in_finally=True),
                    cleanup_block=self.walker._new_id(),
                ),
            )

    def _with(self, node: ast.With | ast.AsyncWith, state: _State) -> None:
        is_async = isinstance(node, ast.AsyncWith)
        inner = state
        exits: list[ast.withitem] = []
        opened: list[Scope] = []
        saved_names = self.scope_names
        for item in node.items:
            self.expression(item.context_expr, inner)
            found = self.walker.resolution(item) if is_async else None
            if is_async:
                # Resolved, a side that never yields is no checkpoint (a
                # nursery's enter, asyncio.timeout's both sides).
                if found is None or found.enter is not Verdict.NEVER:
                    self.emit(EventKind.CHECKPOINT, item.context_expr, inner)
                # A lock's (semaphore's, limiter's) __aexit__ only releases it:
                # leaving `async with lock:` is no checkpoint.
                if found is not None and found.exit is not None:
                    if found.exit is not Verdict.NEVER:
                        exits.append(item)
                elif not is_lock_expression(_text(item.context_expr)):
                    exits.append(item)
            if item.optional_vars is not None:
                self.target(item.optional_vars, inner)
            effect = scope_effect(item.context_expr, self.walker.table)
            context = inside_scope(inner.context, effect)
            guards = inner.guards
            text = _text(item.context_expr)
            mutex = is_mutex_expression(text) or (
                found is not None and found.callee in MUTEX_TYPES
            )
            if mutex and not effect.is_cancel_scope:
                guards = guards | {text}
            inner = replace(inner, context=context, guards=guards)
            if effect.is_cancel_scope:
                if isinstance(item.optional_vars, ast.Name):
                    self.scope_names = {**self.scope_names, item.optional_vars.id: effect}
                if effect.bounded or _is_timeout_call(item.context_expr, self.walker.table):
                    scope = Scope(self.walker.span(item.context_expr), text, node=node)
                    self.facts.scopes.append(scope)
                    opened.append(scope)
        self.open_scopes.extend(opened)
        self.block(node.body, inner)
        for scope in opened:
            self.open_scopes.remove(scope)
        self.scope_names = saved_names
        for item in reversed(exits):
            self.emit(EventKind.CHECKPOINT, item.context_expr, state, exit=True)

    # -- expressions ---------------------------------------------------------

    def target(
        self, node: ast.expr, state: _State, *, augmented: bool = False, deleting: bool = False
    ) -> None:
        if isinstance(node, (ast.Tuple, ast.List)):
            for element in node.elts:
                self.target(element, state, deleting=deleting)
            return
        if isinstance(node, ast.Starred):
            self.target(node.value, state)
            return
        if isinstance(node, ast.Subscript):
            self.expression(node.slice, state)
            found = self.state_of(node.value)
            if found is None:
                self.expression(node.value, state)
                return
            name, owner = found
            if augmented:
                self.emit(
                    EventKind.READ, node, state, state=name, owner=owner, key=_text(node.slice)
                )
            self.emit(
                EventKind.WRITE,
                node,
                state,
                state=name,
                owner=owner,
                key=_text(node.slice),
                removal=deleting,
            )
            return
        if isinstance(node, ast.Attribute):
            found = self.state_of(node)
            if found is None:
                self.expression(node.value, state)
                return
            name, owner = found
            if augmented:
                self.emit(EventKind.READ, node, state, state=name, owner=owner)
            self.emit(
                EventKind.WRITE,
                node,
                state,
                state=name,
                owner=owner,
                removal=deleting,
                augmented=augmented,
            )
            return
        if isinstance(node, ast.Name) and node.id in self.globals:
            if augmented:
                self.emit(EventKind.READ, node, state, state=node.id, owner="<module>")
            self.emit(
                EventKind.WRITE, node, state, state=node.id, owner="<module>", augmented=augmented
            )

    def state_of(self, node: ast.expr) -> tuple[str, str] | None:
        """The shared state an expression names, with its owner."""
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            base = node.value.id
            if base in ("self", "cls") and self.facts.class_name:
                return f"{self.facts.class_name}.{node.attr}", self.facts.class_name
            if base in ("self", "cls"):
                return f"{base}.{node.attr}", base
            if base in self.walker.classes:
                return f"{base}.{node.attr}", base
            return None
        if isinstance(node, ast.Name) and (
            node.id in self.walker.state_globals or node.id in self.globals
        ):
            return node.id, "<module>"
        return None

    def expression(self, root: ast.expr, state: _State) -> None:
        """Emit the events of an expression in evaluation order (post-order)."""
        # Iterative post-order: (node, children_done)
        stack: list[tuple[ast.AST, bool, _State]] = [(root, False, state)]
        while stack:
            node, done, current = stack.pop()
            if isinstance(node, ast.Lambda):
                continue  # runs later, if at all
            if not done:
                if isinstance(node, _POST_VISITED):
                    stack.append((node, True, current))
                children = _children(node)
                inner = current
                if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                    # `self.d.pop(k)` is one access, not a read of self.d then a call.
                    if self.state_of(node.func.value) is not None:
                        children = [*node.args, *(k.value for k in node.keywords)]
                elif isinstance(node, ast.Subscript) and self.state_of(node.value) is not None:
                    children = [node.slice]
                elif isinstance(node, ast.Compare) and _membership_state(node, self):
                    children = [node.left]
                elif isinstance(node, ast.Await) and isinstance(node.value, ast.Call):
                    self.awaited_calls.add(id(node.value))
                for child in reversed(children):
                    if isinstance(child, (ast.expr, ast.comprehension)) and self._worth(child):
                        stack.append((child, False, inner))
                continue
            self._after_children(node, current)

    def _worth(self, node: ast.AST) -> bool:
        """Whether a child can produce an event: constants never do, and a name or
        a dotted chain only when it names shared state (`trio.sleep` does not)."""
        if isinstance(node, ast.Constant):
            return False
        if isinstance(node, ast.Name):
            return node.id in self.walker.state_globals or node.id in self.globals
        if isinstance(node, ast.Attribute):
            base: ast.expr = node
            while isinstance(base, ast.Attribute):
                base = base.value
            if isinstance(base, ast.Name):
                return (
                    base.id in ("self", "cls")
                    or base.id in self.walker.classes
                    or base.id in self.walker.state_globals
                    or base.id in self.globals
                )
        return True

    def _after_children(self, node: ast.AST, state: _State) -> None:
        if isinstance(node, ast.Await):
            self.emit(EventKind.CHECKPOINT, node, state, awaited=True)
            value = node.value
            if (
                isinstance(value, ast.Call)
                and isinstance(value.func, ast.Attribute)
                and value.func.attr == "acquire"
            ):
                self.held.add(_text(value.func.value))
            return
        if isinstance(node, (ast.Yield, ast.YieldFrom)):
            if self.facts.is_acm and not self.after_yield:
                self.after_yield = True
                self.teardown_block = self.walker._new_id()
            return
        if isinstance(node, ast.comprehension) and node.is_async:
            self.emit(EventKind.CHECKPOINT, node.iter, state)
            return
        if isinstance(node, ast.Call):
            self._call(node, state)
            return
        if isinstance(node, ast.Compare):
            membership = _membership_state(node, self)
            if membership is not None:
                name, owner = membership
                self.emit(
                    EventKind.TEST, node, state, state=name, owner=owner, key=_text(node.left)
                )
            return
        if isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Load):
            found = self.state_of(node.value)
            if found is not None:
                kind = EventKind.TEST if state.testing else EventKind.READ
                self.emit(kind, node, state, state=found[0], owner=found[1], key=_text(node.slice))
            return
        if isinstance(node, (ast.Attribute, ast.Name)) and isinstance(node.ctx, ast.Load):
            found = self.state_of(node)
            if found is not None:
                kind = EventKind.TEST if state.testing else EventKind.READ
                self.emit(kind, node, state, state=found[0], owner=found[1])

    def _call(self, node: ast.Call, state: _State) -> None:
        func = node.func
        awaited = id(node) in self.awaited_calls
        method = func.attr if isinstance(func, ast.Attribute) else None
        receiver = _text(func.value) if isinstance(func, ast.Attribute) else None
        resolved = self.walker.table.resolve(func)
        if isinstance(func, ast.Attribute):
            found = self.state_of(func.value)
            if found is not None and method is not None:
                name, owner = found
                key = _text(node.args[0]) if node.args else None
                if method in MUTATING_METHODS:
                    self.emit(
                        EventKind.WRITE,
                        node,
                        state,
                        state=name,
                        owner=owner,
                        key=key,
                        method=method,
                        removal=method
                        in ("pop", "popitem", "popleft", "remove", "discard", "clear"),
                        has_default=len(node.args) > 1,
                    )
                elif method in READING_METHODS:
                    kind = EventKind.TEST if state.testing else EventKind.READ
                    self.emit(
                        kind,
                        node,
                        state,
                        state=name,
                        owner=owner,
                        key=key,
                        method=method,
                        has_default=len(node.args) > 1,
                    )
        self.emit(
            EventKind.CALL,
            node,
            state,
            method=method or (func.id if isinstance(func, ast.Name) else None),
            receiver=receiver,
            callee=resolved,
            awaited=awaited,
            argument=_text(node.args[0]) if node.args else None,
            arguments=len(node.args) + len(node.keywords),
        )
        if method == "release" and receiver in self.held:
            self.held.discard(receiver)


# Nodes that emit an event once their children are done.
_POST_VISITED = (
    ast.Await,
    ast.Yield,
    ast.YieldFrom,
    ast.comprehension,
    ast.Call,
    ast.Compare,
    ast.Subscript,
    ast.Attribute,
    ast.Name,
)
_SKIPPED = (ast.expr_context, ast.operator, ast.boolop, ast.unaryop, ast.cmpop, ast.Constant)


def _children(node: ast.AST) -> list[ast.AST]:
    """Child nodes that can hold events (faster than ast.iter_child_nodes)."""
    found: list[ast.AST] = []
    for name in node._fields:
        value = getattr(node, name, None)
        if isinstance(value, list):
            found.extend(
                item
                for item in value
                if isinstance(item, ast.AST) and not isinstance(item, _SKIPPED)
            )
        elif isinstance(value, ast.AST) and not isinstance(value, _SKIPPED):
            found.append(value)
    return found


def _blocks(statement: ast.stmt) -> list[list[ast.stmt]]:
    if isinstance(statement, ast.If):
        return [statement.body, statement.orelse]
    if isinstance(statement, (ast.Try, ast.TryStar)):
        return [
            statement.body,
            *[handler.body for handler in statement.handlers],
            statement.orelse,
            statement.finalbody,
        ]
    if isinstance(statement, ast.With):
        return [statement.body]
    return []


def _membership_state(node: ast.Compare, walk: _FunctionWalk) -> tuple[str, str] | None:
    if len(node.ops) == 1 and isinstance(node.ops[0], (ast.In, ast.NotIn)):
        return walk.state_of(node.comparators[0])
    return None


def _iterated_state(node: ast.expr, walk: _FunctionWalk) -> str | None:
    """`for x in self.d` / `.items()` / `.keys()` / `.values()`: not over a copy."""
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
        if node.func.attr in ("items", "keys", "values") and not node.args:
            found = walk.state_of(node.func.value)
            return found[0] if found else None
        return None
    found = walk.state_of(node)
    return found[0] if found else None


def _is_timeout_call(node: ast.expr, table: ImportTable) -> bool:
    if not isinstance(node, ast.Call):
        return False
    return last_name(table.resolve(node.func)) in (
        "move_on_after",
        "move_on_at",
        "fail_after",
        "fail_at",
        "timeout",
        "timeout_at",
    )


def _state_globals(module: ast.Module) -> set[str]:
    """Module-level names bound to mutable containers."""
    names: set[str] = set()
    for statement in module.body:
        targets: list[ast.expr] = []
        value: ast.expr | None = None
        if isinstance(statement, ast.Assign):
            targets, value = statement.targets, statement.value
        elif isinstance(statement, ast.AnnAssign) and statement.value is not None:
            targets, value = [statement.target], statement.value
        if value is not None and _is_container(value):
            names.update(target.id for target in targets if isinstance(target, ast.Name))
    return names


def _definitions(module: ast.Module) -> tuple[set[str], set[str]]:
    """Class names (nested ones too) and names declared `global`, walking statements only."""
    classes: set[str] = set()
    declared: set[str] = set()
    pending: list[ast.AST] = list(module.body)
    while pending:
        node = pending.pop()
        if isinstance(node, ast.ClassDef):
            classes.add(node.name)
        elif isinstance(node, ast.Global):
            declared.update(node.names)
        for name in ("body", "orelse", "finalbody", "handlers", "cases"):
            children = getattr(node, name, None)
            if children:
                pending.extend(children)
    return classes, declared


def _is_container(node: ast.expr) -> bool:
    if isinstance(node, (ast.Dict, ast.List, ast.Set, ast.DictComp, ast.ListComp, ast.SetComp)):
        return True
    if isinstance(node, ast.Call):
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
        return name in CONTAINER_CALLS
    return False


def module_facts(
    module: ast.Module,
    lines: list[str],
    table: ImportTable | None = None,
    resolved: dict[tuple[int, int, HintKind], Resolution] | None = None,
) -> ModuleFacts:
    """The rules' view of a parsed module; ``resolved`` (by checkpoint anchor)
    refines it: `async with` sides that never yield, locks known by type."""
    if table is None:
        facts = [fact for statement in module.body for fact in imports_of(statement)]
        table = ImportTable.from_facts(facts)
    walker = _Walker(module, lines, table, resolved)
    walker.walk_module(module)
    return ModuleFacts(
        functions=walker.functions,
        table=table,
        lines=lines,
        classes=walker.classes,
        state_globals=walker.state_globals,
        resolved=resolved or {},
    )
