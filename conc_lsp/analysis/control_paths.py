"""Does every path through a function reach a checkpoint?

A must-analysis over one function's syntax tree: walking the statements in
order, a path is *checkpointed* once it has passed a construct that surely
checkpoints. Where a path leaves the function normally (a ``return`` or the
end of the body) without being checkpointed, that is an *escape*. How much
each await / async with / async for is worth comes from a callback (the
resolver, or the syntactic default: every one checkpoints).

Exceptions are not escapes: trio's rule that an async function checkpoints
holds on the paths that return normally. Nested functions and classes do not
run where they are defined and are skipped. Pure Python; no jedi here.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Protocol

from conc_lsp.analysis.model import Verdict


class Effects(Protocol):
    """What each checkpoint-like construct is worth."""

    def awaited(self, node: ast.Await) -> Verdict: ...

    def entered(self, item: ast.withitem) -> Verdict: ...

    def exited(self, item: ast.withitem) -> Verdict: ...

    def iterated(self, iterable: ast.expr) -> Verdict: ...


class Syntactic:
    """Every await, async with (enter and exit) and async for checkpoints."""

    def awaited(self, node: ast.Await) -> Verdict:
        return Verdict.UNKNOWN

    def entered(self, item: ast.withitem) -> Verdict:
        return Verdict.UNKNOWN

    def exited(self, item: ast.withitem) -> Verdict:
        return Verdict.UNKNOWN

    def iterated(self, iterable: ast.expr) -> Verdict:
        return Verdict.UNKNOWN


@dataclass(frozen=True, slots=True)
class Weak:
    """A construct on some path that does not surely checkpoint."""

    line: int  # 0-based
    node: ast.AST
    verdict: Verdict


# How far a path has got: the state of the walk. Where paths meet, the
# lowest wins.
NONE = 0  # no checkpoint yet
FAST = 1  # only constructs that may not yield (an asyncio fast path)
SURE = 2  # a checkpoint for certain
State = int


@dataclass(slots=True)
class PathResult:
    """The checkpoint-free ways out of a function (or loop body)."""

    escapes: list[int] = field(default_factory=list)  # 0-based lines of returns / the end
    fast_escapes: list[int] = field(default_factory=list)  # ... past a fast path only
    possible: bool = False  # some construct may checkpoint
    weak: list[Weak] = field(default_factory=list)  # constructs that do not surely checkpoint

    @property
    def verdict(self) -> Verdict:
        if self.escapes:
            return Verdict.SOMETIMES if self.possible else Verdict.NEVER
        return Verdict.MAY_NOT_YIELD if self.fast_escapes else Verdict.ALWAYS

    @property
    def all_escapes(self) -> list[int]:
        return sorted(set(self.escapes) | set(self.fast_escapes))


@dataclass(slots=True)
class _Loop:
    breaks: list[State] = field(default_factory=list)  # the state at each break
    continues: list[tuple[int, State]] = field(default_factory=list)


class PathWalker:
    """Walks one function body; see the module docstring."""

    def __init__(self, effects: Effects) -> None:
        self.effects = effects
        self.result = PathResult()
        self._loops: list[_Loop] = []
        self._protected = 0  # enclosing finally / async with exits that surely checkpoint

    # -- entry points --------------------------------------------------------

    def function(self, node: ast.AsyncFunctionDef) -> PathResult:
        end = self.block(node.body, NONE)
        if end is not None and end < SURE:
            self._escape(node.end_lineno or node.lineno, end)
        return self.result

    def loop_iteration(self, loop: ast.While | ast.For | ast.AsyncFor) -> list[int]:
        """Lines where one iteration of ``loop`` ends (its end or a ``continue``)
        without a checkpoint; an ``async for`` header that checkpoints counts."""
        start = NONE
        if isinstance(loop, ast.AsyncFor):
            start = self._note(loop.iter, self.effects.iterated(loop.iter))
        if isinstance(loop, ast.While):
            start = self.expression(loop.test, start)
        frame = _Loop()
        self._loops.append(frame)
        end = self.block(loop.body, start)
        self._loops.pop()
        lines = [line for line, state in frame.continues if state < SURE]
        if end is not None and end < SURE:
            lines.append((loop.body[-1].end_lineno or loop.lineno) - 1)
        return lines

    # -- statements ----------------------------------------------------------

    def block(self, body: list[ast.stmt], state: State) -> State | None:
        """The state after ``body``; None when it never completes."""
        current: State | None = state
        for statement in body:
            if current is None:
                break  # unreachable code
            current = self.statement(statement, current)
        return current

    def statement(self, node: ast.stmt, state: State) -> State | None:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            for decorator in node.decorator_list:
                state = self.expression(decorator, state)
            return state
        if isinstance(node, ast.Return):
            if node.value is not None:
                state = self.expression(node.value, state)
            if state < SURE:
                self._escape(node.lineno, state)
            return None
        if isinstance(node, ast.Raise):
            for part in (node.exc, node.cause):
                if part is not None:
                    self.expression(part, state)
            return None
        if isinstance(node, ast.Break):
            if self._loops:
                self._loops[-1].breaks.append(state)
            return None
        if isinstance(node, ast.Continue):
            if self._loops:
                self._loops[-1].continues.append((node.lineno - 1, state))
            return None
        if isinstance(node, ast.If):
            state = self.expression(node.test, state)
            return _join(self.block(node.body, state), self.block(node.orelse, state))
        if isinstance(node, (ast.While, ast.For, ast.AsyncFor)):
            return self._loop(node, state)
        if isinstance(node, (ast.Try, ast.TryStar)):
            return self._try(node, state)
        if isinstance(node, (ast.With, ast.AsyncWith)):
            return self._with(node, state)
        if isinstance(node, ast.Match):
            state = self.expression(node.subject, state)
            outcomes = []
            for case in node.cases:
                entry = self.expression(case.guard, state) if case.guard is not None else state
                outcomes.append(self.block(case.body, entry))
            outcomes.append(state)  # no case matched
            return _join(*outcomes)
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.expr):
                state = self.expression(child, state)
        return state

    def _loop(self, node: ast.While | ast.For | ast.AsyncFor, state: State) -> State | None:
        forever = False
        if isinstance(node, ast.While):
            state = self.expression(node.test, state)
            forever = isinstance(node.test, ast.Constant) and bool(node.test.value)
        else:
            state = self.expression(node.iter, state)
            if isinstance(node, ast.AsyncFor):
                # Each step, the last one (which ends the loop) included, runs __anext__.
                state = max(state, self._note(node.iter, self.effects.iterated(node.iter)))
        frame = _Loop()
        self._loops.append(frame)
        end = self.block(node.body, state)
        self._loops.pop()
        if forever:
            return _join(*frame.breaks) if frame.breaks else None
        if isinstance(node, ast.For) and _never_empty(node.iter):
            # The body runs at least once: the loop ends after an iteration.
            ended = _join(end, *(left for _, left in frame.continues))
            if ended is None:  # every iteration breaks, returns or raises
                return _join(*frame.breaks)
            state = ended
        after_else = self.block(node.orelse, state)  # zero iterations, or no break
        return _join(after_else, *frame.breaks)

    def _try(self, node: ast.Try | ast.TryStar, state: State) -> State | None:
        protects = False
        if node.finalbody:
            # A finally that surely checkpoints covers every way out of the try.
            probe = PathWalker(self.effects)
            probe._loops = [_Loop() for _ in self._loops]
            protects = probe.block(node.finalbody, NONE) == SURE
        if protects:
            self._protected += 1
        body = self.block(node.body, state)
        outcomes = [self.block(node.orelse, body) if body is not None else None]
        for handler in node.handlers:
            # The exception may come before any checkpoint of the body.
            outcomes.append(self.block(handler.body, state))
        if protects:
            self._protected -= 1
        joined = _join(*outcomes)
        if node.finalbody:
            entry = joined if joined is not None else state
            after = self.block(node.finalbody, entry)
            return None if joined is None else after
        return joined

    def _with(self, node: ast.With | ast.AsyncWith, state: State) -> State | None:
        exits_checkpoint = False
        for item in node.items:
            state = self.expression(item.context_expr, state)
            if isinstance(node, ast.AsyncWith):
                state = max(state, self._note(item.context_expr, self.effects.entered(item)))
                exit_verdict = self.effects.exited(item)
                exits_checkpoint = exits_checkpoint or exit_verdict.guaranteed
                self.result.possible = self.result.possible or exit_verdict.possible
        if exits_checkpoint:
            self._protected += 1
        after = self.block(node.body, state)
        if exits_checkpoint:
            self._protected -= 1
            # Exceptions are swallowed by some context managers: leaving
            # by any route passes the exit, which checkpoints.
            return SURE if after is not None else None
        return after

    # -- expressions ---------------------------------------------------------

    def expression(self, node: ast.expr | None, state: State) -> State:
        """The state after evaluating ``node``: raised by the awaits in it that
        run on every evaluation."""
        if node is None:
            return state
        for child, certain in _evaluated(node, True):
            if isinstance(child, ast.Await):
                level = self._note(child, self.effects.awaited(child))
                if certain:
                    state = max(state, level)
            elif isinstance(child, ast.comprehension) and child.is_async:
                self._note(child.iter, self.effects.iterated(child.iter))
        return state

    def _note(self, node: ast.AST, verdict: Verdict) -> State:
        """Record a construct; the state it brings a path to."""
        if verdict.possible:
            self.result.possible = True
        if verdict.guaranteed:
            return SURE
        self.result.weak.append(Weak(getattr(node, "lineno", 1) - 1, node, verdict))
        return FAST if verdict is Verdict.MAY_NOT_YIELD else NONE

    def _escape(self, lineno: int, state: State) -> None:
        if not self._protected:
            target = self.result.fast_escapes if state == FAST else self.result.escapes
            target.append(lineno - 1)


def _never_empty(iterable: ast.expr) -> bool:
    """`range(10)`, `range(1, 4)`, `("a", "b")`: literals that give at least one item."""
    if isinstance(iterable, (ast.Tuple, ast.List, ast.Set)):
        return bool(iterable.elts) and not any(isinstance(e, ast.Starred) for e in iterable.elts)
    if not (
        isinstance(iterable, ast.Call)
        and isinstance(iterable.func, ast.Name)
        and iterable.func.id == "range"
        and 1 <= len(iterable.args) <= 3
        and not iterable.keywords
    ):
        return False
    try:
        bounds = [ast.literal_eval(argument) for argument in iterable.args]
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return False
    if not all(type(bound) is int for bound in bounds) or (len(bounds) == 3 and bounds[2] == 0):
        return False
    return bool(range(*bounds))  # not len(): a huge range overflows it


def _join(*states: State | None) -> State | None:
    """The state where paths meet: the lowest of them."""
    live = [state for state in states if state is not None]
    if not live:
        return None
    return min(live)


_SKIPPED = (ast.Lambda, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)


def _evaluated(node: ast.AST, certain: bool) -> Iterator[tuple[ast.AST, bool]]:
    """Sub-expressions in evaluation order, with whether each surely runs."""
    if isinstance(node, _SKIPPED):
        return
    if isinstance(node, ast.IfExp):
        yield from _evaluated(node.test, certain)
        yield from _evaluated(node.body, False)
        yield from _evaluated(node.orelse, False)
        return
    if isinstance(node, ast.BoolOp):
        yield from _evaluated(node.values[0], certain)
        for value in node.values[1:]:
            yield from _evaluated(value, False)
        return
    if isinstance(node, (ast.ListComp, ast.SetComp, ast.GeneratorExp, ast.DictComp)):
        first, *rest = node.generators
        yield from _evaluated(first.iter, certain)
        yield first, certain
        inner: list[ast.AST] = [*first.ifs]
        for generator in rest:
            inner.extend([generator.iter, generator, *generator.ifs])
        if isinstance(node, ast.DictComp):
            inner.extend([node.key, node.value])
        else:
            inner.append(node.elt)
        for part in inner:
            if isinstance(part, ast.comprehension):
                yield part, False
            else:
                yield from _evaluated(part, False)
        return
    for child in ast.iter_child_nodes(node):
        yield from _evaluated(child, certain)
    yield node, certain


def is_generator(node: ast.AsyncFunctionDef) -> bool:
    """An async generator (a `yield` of its own, not of a nested function)."""
    stack: list[ast.AST] = list(node.body)
    while stack:
        child = stack.pop()
        if isinstance(child, (ast.Yield, ast.YieldFrom)):
            return True
        if not isinstance(child, _SKIPPED):
            stack.extend(ast.iter_child_nodes(child))
    return False


def returns_at(node: ast.AsyncFunctionDef, line: int) -> bool:
    """Whether a `return` of ``node`` starts on 0-based ``line`` (else an escape
    there is the end of the body)."""
    return any(
        isinstance(child, ast.Return) and child.lineno - 1 == line for child in ast.walk(node)
    )


def decorator_name(decorator: ast.expr) -> str:
    """`asynccontextmanager` of `@contextlib.asynccontextmanager` or `@fixture(scope=...)`."""
    node = decorator.func if isinstance(decorator, ast.Call) else decorator
    if isinstance(node, ast.Attribute):
        return node.attr
    return node.id if isinstance(node, ast.Name) else ""
