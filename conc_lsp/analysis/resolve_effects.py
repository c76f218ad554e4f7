"""The resolver's answers to the path walker (what each await, `async with`
and `async for` of a function really does, found with jedi), and the words
of its verdicts."""

from __future__ import annotations

import ast
import time
from typing import TYPE_CHECKING, Any

from conc_lsp.analysis.control_paths import PathResult, decorator_name, returns_at
from conc_lsp.analysis.model import Resolution, Verdict
from conc_lsp.analysis.resolve_cache import FunctionVerdict

if TYPE_CHECKING:
    from jedi.api.classes import Name

    from conc_lsp.analysis.resolve import Resolver
    from conc_lsp.analysis.resolve_sources import Source


class BudgetSpent(Exception):
    """The pass's time budget ran out."""


class JediEffects:
    """The PathWalker's callbacks, answered by resolving with jedi."""

    def __init__(self, resolver: Resolver, path: str, source: Source, depth: int) -> None:
        self.resolver = resolver
        self.path = path
        self.source = source
        self.depth = depth
        self.found: dict[int, Resolution] = {}

    def _names(self, expression: ast.expr) -> list[Name]:
        if time.monotonic() > self.resolver._deadline:
            raise BudgetSpent
        return self.resolver._infer(self.path, self.source, expression)

    def awaited(self, node: ast.Await) -> Verdict:
        local, found = self.resolver.local_awaited(
            self.path, self.source, node.value, self.depth + 1
        )
        if not local:
            names = self._names(node.value)
            if not names:
                return Verdict.UNKNOWN
            found = self.resolver.awaited_any(names, node.value, self.depth + 1)
        if found is None:
            return Verdict.UNKNOWN
        self.found[id(node)] = found
        return found.verdict

    def entered(self, item: ast.withitem) -> Verdict:
        found = self._with(item)
        return found.enter or Verdict.UNKNOWN if found else Verdict.UNKNOWN

    def exited(self, item: ast.withitem) -> Verdict:
        found = self._with(item)
        return found.exit or Verdict.UNKNOWN if found else Verdict.UNKNOWN

    def _with(self, item: ast.withitem) -> Resolution | None:
        if id(item) in self.found:
            return self.found[id(item)]
        names = self._names(item.context_expr)
        found = self.resolver._entered(names[0], item.context_expr) if names else None
        if found is not None:
            self.found[id(item)] = found
            self.found[id(item.context_expr)] = found  # the walker notes the expression
        return found

    def iterated(self, iterable: ast.expr) -> Verdict:
        names = self._names(iterable)
        found = self.resolver._iterated(names[0]) if names else None
        if found is None:
            return Verdict.UNKNOWN
        self.found[id(iterable)] = found
        return found.verdict


def table_entry(name: Name) -> Any:
    try:
        # jedi loads only when resolving (start-up cost)
        from conc_lsp.knowledge import lookup
    except ImportError:  # pragma: no cover - the table ships with the package
        return None
    full = name.full_name
    if not full:
        return None
    entry = lookup(full)
    if entry is not None:
        return entry
    module = name.module_name or ""
    if module and full.startswith(module + ".") and "." in module:
        # trio._core._run.open_nursery -> trio.open_nursery
        return lookup(f"{module.split('.', 1)[0]}.{full[len(module) + 1 :]}")
    return None


def library_awaited(entry: Any, expression: ast.expr) -> Resolution | None:
    """What awaiting a library callee the knowledge table knows does."""
    behaviour = entry.await_
    if behaviour is None:
        return None  # e.g. awaiting something the table only knows as a class
    verdict = Verdict(behaviour)
    if verdict is Verdict.MAY_NOT_YIELD and _gathers_coroutines(entry.name, expression):
        verdict = Verdict.ALWAYS  # its one fast path is gather() of nothing
    return _from_table(entry, verdict, behaviour_words(verdict))


def library_entered(entry: Any) -> Resolution:
    """`async with` on a library object the table knows (it has enter or exit)."""
    enter = Verdict(entry.enter) if entry.enter else Verdict.UNKNOWN
    exit_ = Verdict(entry.exit) if entry.exit else Verdict.UNKNOWN
    sides = f"enter {behaviour_words(enter)}, exit {behaviour_words(exit_)}"
    return _from_table(entry, combined(enter, exit_), sides, enter, exit_)


def library_iterated(entry: Any) -> Resolution:
    """`async for` over a library object the table knows (it has iteration)."""
    verdict = Verdict(entry.iteration)
    return _from_table(entry, verdict, f"each step {behaviour_words(verdict)}")


def _from_table(
    entry: Any,
    verdict: Verdict,
    behaviour: str,
    enter: Verdict | None = None,
    exit_: Verdict | None = None,
) -> Resolution:
    return Resolution(
        verdict,
        entry.name,
        library_reason(entry.name, verdict, entry.note),
        (f"`{entry.name}`: {behaviour}: {entry.note} ({entry.source})",),
        enter,
        exit_,
        fast_path_of(entry.name, verdict),
    )


def _gathers_coroutines(name: str, expression: ast.expr) -> bool:
    """`asyncio.gather(fetch(), other())`: the coroutines are wrapped in new tasks
    that have not run yet, so awaiting the result always suspends (the table's
    "may not yield" is for `gather()` of nothing or of finished futures)."""
    return (
        name == "asyncio.gather"
        and isinstance(expression, ast.Call)
        and any(isinstance(argument, ast.Call) for argument in expression.args)
    )


def combined(enter: Verdict, exit_: Verdict) -> Verdict:
    """One verdict for an async with: it checkpoints if either side does."""
    if enter.guaranteed or exit_.guaranteed:
        return Verdict.ALWAYS if Verdict.UNKNOWN not in (enter, exit_) else Verdict.UNKNOWN
    if Verdict.SOMETIMES in (enter, exit_):
        return Verdict.SOMETIMES
    if Verdict.MAY_NOT_YIELD in (enter, exit_):
        return Verdict.MAY_NOT_YIELD
    return Verdict.NEVER


def behaviour_words(verdict: Verdict) -> str:
    return {
        Verdict.ALWAYS: "always checkpoints",
        Verdict.SOMETIMES: "checkpoints on some paths only",
        Verdict.NEVER: "never yields",
        Verdict.MAY_NOT_YIELD: "may return without yielding (fast path)",
        Verdict.UNKNOWN: "not known",
        Verdict.ASSUMED: "not known",
    }[verdict]


def fast_path_of(name: str, verdict: Verdict) -> str:
    """The library whose fast path a table entry's may-not-yield verdict is."""
    return name.split(".", 1)[0] if verdict is Verdict.MAY_NOT_YIELD else ""


def library_reason(name: str, verdict: Verdict, note: str) -> str:
    if verdict is Verdict.MAY_NOT_YIELD:
        return f"{fast_path_of(name, verdict)} fast path"
    if verdict is Verdict.NEVER:
        return f"{name} never yields"
    return ""


def function_words(verdict: Verdict, result: PathResult, node: ast.AsyncFunctionDef) -> str:
    if verdict is Verdict.ALWAYS:
        return "every path reaches a checkpoint"
    if verdict is Verdict.NEVER:
        return "no path reaches a checkpoint"
    if verdict is Verdict.MAY_NOT_YIELD:
        lines = ", ".join(f"L{line + 1}" for line in sorted(set(result.fast_escapes))[:4])
        return f"may return without yielding, through a fast path only (at {lines})"
    lines = ", ".join(f"L{line + 1}" for line in sorted(set(result.escapes))[:4])
    return f"can return without a checkpoint (at {lines})"


ABSTRACT_BASES = frozenset({"ABC", "Protocol", "ABCMeta"})


def in_abstract_class(source: Source, node: ast.AsyncFunctionDef) -> bool:
    """A method of an abstract class or a protocol (`AbstractAsyncContextManager`,
    `class Stream(ABC)`): jedi lands there when it cannot tell the object's real
    class, whose override is what runs (contextlib's `__aenter__` returns self;
    an `@asynccontextmanager`'s runs the generator)."""
    for klass in source.classes.values():
        if not any(item is node for item in klass.body):
            continue
        if klass.name.startswith("Abstract"):
            return True
        bases = {decorator_name(base) for base in klass.bases}
        bases |= {decorator_name(keyword.value) for keyword in klass.keywords}
        return bool(bases & ABSTRACT_BASES)
    return False


def override_point(node: ast.AsyncFunctionDef, source: Source) -> bool:
    """An abstract method, a `...` or `raise NotImplementedError` body, or a
    method whose body is only `pass`: what runs is an override, not this. A
    module-level `async def noop(): pass` is a real function that never yields."""
    if any(decorator_name(item) == "abstractmethod" for item in node.decorator_list):
        return True
    body = [
        statement
        for statement in node.body
        if not (
            isinstance(statement, ast.Expr)
            and isinstance(statement.value, ast.Constant)
            and isinstance(statement.value.value, str)
        )
    ]
    if not body or all(
        isinstance(statement, ast.Expr)
        and isinstance(statement.value, ast.Constant)
        and statement.value.value is Ellipsis
        for statement in body
    ):
        return True
    if any(isinstance(statement, ast.Raise) for statement in body) and all(
        isinstance(statement, (ast.Raise, ast.Pass)) for statement in body
    ):
        return True
    in_class = any(node in klass.body for klass in source.classes.values())
    return in_class and all(isinstance(statement, ast.Pass) for statement in body)


def described(
    result: PathResult,
    found_by: dict[int, Resolution],
    node: ast.AsyncFunctionDef,
    short: str,
    where: str,
) -> FunctionVerdict:
    """A function's verdict from its walk, with the reason and chain shown for it."""
    verdict = result.verdict
    # No way out without a checkpoint, and no checkpoint: it never returns
    # normally (or, inside a cycle, not yet known). What a call is worth
    # in the fixpoint; shown as "always" once the cycle is done.
    vacuous = not result.all_escapes and not result.possible
    next_round = Verdict.ASSUMED if vacuous else verdict
    fast_path = ""
    if next_round is Verdict.ASSUMED:
        reason = f"{short} never returns normally"
    elif verdict is Verdict.ALWAYS:
        reason = "always reaches a checkpoint"
    elif verdict is Verdict.NEVER:
        reason = f"{short} never yields"
    elif verdict is Verdict.MAY_NOT_YIELD:
        found = next(
            (
                found_by[id(weak.node)]
                for weak in result.weak
                if weak.verdict is Verdict.MAY_NOT_YIELD and id(weak.node) in found_by
            ),
            None,
        )
        fast = found.callee if found is not None else ""
        fast_path = found.fast_path if found is not None else ""
        place = f"{fast_path} fast path" if fast_path else "a fast path"
        reason = f"{short}: {place} in {fast}" if fast else f"{short}: a fast path"
    else:
        first = min(result.escapes)
        ending = (node.end_lineno or node.lineno) - 1
        if first == ending and not returns_at(node, first):
            reason = f"{short} can end without one"
            via = next(
                (
                    found_by[id(weak.node)].reason
                    for weak in result.weak
                    if id(weak.node) in found_by and found_by[id(weak.node)].reason
                ),
                "",
            )
            if via:
                reason += f": {via}"
        else:
            reason = f"{short} returns at L{first + 1} without one"
    chain = [f"`{short}` ({where}): {function_words(verdict, result, node)}"]
    for weak in result.weak[:3]:
        found = found_by.get(id(weak.node))
        if found is not None and found.chain:
            chain.extend(f"  {step}" for step in found.chain[:2])
    return FunctionVerdict(next_round, short, where, reason, tuple(chain), fast_path)
