"""Does this await really checkpoint? Follow callees to their definitions with jedi.

For each checkpoint of a document (await, async with, async for), jedi finds
what the callee is: a library primitive is looked up in the knowledge table
(``conc_lsp/knowledge/apis.toml``); a user's own ``async def`` is analysed
(``analysis/control_paths.py``) to see whether every path reaches a checkpoint,
following its own awaits the same way, across modules, with recursion and
cycles handled. Results are cached per function and dropped when its file
changes.

Nothing is imported or executed: jedi reads source files. It reads the
packages of the interpreter the user configured (which jedi then runs to ask
for its paths), or else those of the interpreter running conc-lsp, never one
found in the workspace.
"""

from __future__ import annotations

import ast
import logging
import os
import time
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from conc_lsp.analysis.control_paths import (
    PathResult,
    PathWalker,
    decorator_name,
    is_generator,
    returns_at,
)
from conc_lsp.analysis.fragments import PARSE_ERRORS, parse_fragment
from conc_lsp.analysis.jedi_setup import make_environment, speed_up_parso
from conc_lsp.analysis.model import Hint, HintKey, HintKind, Resolution, Verdict, anchor_keys
from conc_lsp.analysis.parse import analyse_lines
from conc_lsp.analysis.resolve_effects import (
    BudgetSpent,
    JediEffects,
    behaviour_words,
    combined,
    function_words,
    library_reason,
    override_point,
    table_entry,
)
from conc_lsp.analysis.text import end_position, split_lines, utf8_to_codepoint

if TYPE_CHECKING:
    import jedi
    from jedi.api.classes import Name

logger = logging.getLogger("conc_lsp")

ACM_DECORATORS = frozenset({"asynccontextmanager", "acm"})
KEPT_SOURCES = 256  # files whose trees, jedi scripts and verdicts stay cached
MAX_CYCLE_ROUNDS = 4
MAX_DEPTH = 12  # helpers followed below one await
MAX_CANDIDATES = 4  # callees of one await followed when jedi finds several


@dataclass(frozen=True, slots=True)
class FunctionVerdict:
    """Whether a call of an ``async def`` checkpoints."""

    verdict: Verdict
    qualname: str
    where: str  # "helpers.py:12"
    reason: str  # "returns at L40 without one", "never yields"
    chain: tuple[str, ...]


@dataclass(slots=True)
class DocumentResolution:
    """The resolved checkpoints of one document version."""

    resolutions: dict[HintKey, Resolution] = field(default_factory=dict)
    total: int = 0  # checkpoints in the document
    resolved: int = 0  # checkpoints whose callee jedi found
    complete: bool = True  # False when the time budget ran out
    seconds: float = 0.0


@dataclass(slots=True)
class _Source:
    stamp: tuple[int, int] | str  # (mtime_ns, size) of a file, or its text for a buffer
    lines: list[str]
    tree: ast.Module | None
    functions: dict[int, ast.AsyncFunctionDef | ast.FunctionDef]  # by 1-based def line
    classes: dict[int, ast.ClassDef]
    script: jedi.Script | None = None
    verdicts: dict[int, FunctionVerdict] = field(default_factory=dict)


class Resolver:
    """Resolves checkpoints for documents of one workspace; keeps its caches."""

    def __init__(self, root: str | None = None, interpreter: str | None = None) -> None:
        # jedi loads only when resolving (start-up cost)
        import jedi

        speed_up_parso()
        self.environment = make_environment(interpreter)
        self.project = jedi.Project(
            root or os.getcwd(), environment_path=interpreter or None, smart_sys_path=True
        )
        self._sources: OrderedDict[str, _Source] = OrderedDict()  # most recent last
        self._in_progress: dict[tuple[str, int], Verdict] = {}
        self._assumed: set[tuple[str, int]] = set()  # in-progress verdicts relied on
        self._deadline = float("inf")

    # -- documents -----------------------------------------------------------

    def resolve_lines(
        self,
        lines: list[str],
        path: str | None,
        budget: float = 5.0,
        first_lines: tuple[int, int] | None = None,
    ) -> DocumentResolution:
        """Resolve every checkpoint of a document's text (``path`` may not exist on disk).

        Checkpoints on ``first_lines`` (0-based, end exclusive: what the
        editor shows) go first; the rest follow while the budget lasts.
        """
        started = time.monotonic()
        self._deadline = started + budget
        result = DocumentResolution()
        key = path or "<buffer>"
        source = self._buffer(key, lines)
        if source.tree is None:
            return result
        keys = anchor_keys(analyse_lines(lines).hints)
        targets = list(_checkpoint_nodes(source.tree, lines))
        result.total = len(targets)
        if first_lines is not None:
            low, high = first_lines
            targets.sort(key=lambda target: not low <= target.line < high)
        try:
            for target in targets:
                hint_key = keys.get((target.line, target.column, target.kind))
                if hint_key is None:
                    continue
                resolution = self._resolve_target(key, source, target)
                if resolution is not None:
                    result.resolved += 1
                    result.resolutions[hint_key] = resolution
        except BudgetSpent:
            result.complete = False
        result.seconds = time.monotonic() - started
        return result

    def forget(self, path: str) -> None:
        self._sources.pop(path, None)

    # -- sources -------------------------------------------------------------

    def _buffer(self, key: str, lines: list[str]) -> _Source:
        text = "\n".join(lines)
        cached = self._sources.get(key)
        if cached is not None and cached.stamp == text:
            self._sources.move_to_end(key)
            return cached
        source = _make_source(text, lines)
        self._keep(key, source)
        return source

    def _keep(self, key: str, source: _Source) -> None:
        self._sources[key] = source
        self._sources.move_to_end(key)
        while len(self._sources) > KEPT_SOURCES:
            self._sources.popitem(last=False)

    def _file(self, path: str) -> _Source | None:
        try:
            status = os.stat(path)
        except OSError:
            return None
        stamp = (status.st_mtime_ns, status.st_size)
        cached = self._sources.get(path)
        if cached is not None and cached.stamp == stamp:
            self._sources.move_to_end(path)
            return cached
        if isinstance(cached, _Source) and isinstance(cached.stamp, str):
            return cached  # an open buffer: its text wins over the disk
        try:
            with open(path, encoding="utf-8", errors="replace") as handle:
                text = handle.read()
        except OSError:
            return None
        source = _make_source(text, split_lines(text))
        source.stamp = stamp
        self._keep(path, source)
        return source

    def _script(self, key: str, source: _Source) -> jedi.Script:
        if source.script is None:
            # jedi loads only when resolving (start-up cost)
            import jedi

            path = None if key == "<buffer>" else key
            source.script = jedi.Script(
                "\n".join(source.lines),
                path=path,
                project=self.project,
                environment=self.environment,
            )
        return source.script

    # -- one checkpoint ------------------------------------------------------

    def _resolve_target(self, key: str, source: _Source, target: _Target) -> Resolution | None:
        if time.monotonic() > self._deadline:
            raise BudgetSpent
        names = self._infer(key, source, target.expression)
        if not names:
            return None
        name = names[0]
        if target.kind is HintKind.AWAIT:
            return self.awaited_any(names, target.expression, depth=0)
        if target.kind is HintKind.ASYNC_WITH:
            return self._entered(name, target.expression)
        return self._iterated(name)

    def _infer(self, key: str, source: _Source, expression: ast.expr) -> list[Name]:
        """What the callee of ``expression`` (or the expression itself) is."""
        node = expression.func if isinstance(expression, ast.Call) else expression
        if isinstance(node, ast.Attribute):
            line = node.end_lineno or node.lineno
            text = source.lines[line - 1] if line - 1 < len(source.lines) else ""
            column = utf8_to_codepoint(text, node.end_col_offset or 0) - len(node.attr)
        elif isinstance(node, ast.Name):
            line = node.lineno
            text = source.lines[line - 1] if line - 1 < len(source.lines) else ""
            column = utf8_to_codepoint(text, node.col_offset)
        else:
            return []
        try:
            script = self._script(key, source)
            names: list[Name] = script.infer(line, column)
        except Exception as error:  # noqa: BLE001 - jedi fails on odd code; we fall back
            logger.debug("jedi could not infer %s:%d:%d: %r", key, line, column, error)
            return []
        return names

    def awaited_any(self, names: list[Name], expression: ast.expr, depth: int) -> Resolution | None:
        """What awaiting a callee that may be any of ``names`` does: a union or
        overrides that disagree make it *sometimes*; one unknown makes it unknown."""
        found: list[Resolution] = []
        seen: set[tuple[str, int | None]] = set()
        for name in names[:MAX_CANDIDATES]:
            identity = (str(name.module_path), name.line)
            if identity in seen:
                continue
            seen.add(identity)
            resolution = self._awaited(name, expression, depth)
            if resolution is None:
                return None
            found.append(resolution)
        if not found:
            return None
        if len({resolution.verdict for resolution in found}) == 1:
            return found[0]
        callees = " | ".join(dict.fromkeys(resolution.callee for resolution in found))
        chain = tuple(step for resolution in found for step in resolution.chain[:1])
        return Resolution(Verdict.SOMETIMES, callees, "one of several callees", chain)

    def _awaited(self, name: Name, expression: ast.expr, depth: int) -> Resolution | None:
        entry = table_entry(name)
        if entry is not None:
            behaviour = entry.await_
            if behaviour is None and isinstance(expression, ast.Call):
                return None  # e.g. awaiting something the table only knows as a class
            if behaviour is None:
                return None
            verdict = Verdict(behaviour)
            return Resolution(
                verdict,
                entry.name,
                library_reason(entry.name, verdict, entry.note),
                (f"`{entry.name}`: {behaviour_words(verdict)}: {entry.note} ({entry.source})",),
            )
        if name.type != "function":
            return None
        function = self._function_verdict(name, depth)
        if function is None:
            return None
        verdict = function.verdict
        if verdict is Verdict.ASSUMED and not self._in_progress:
            verdict = Verdict.ALWAYS  # vacuously: it never returns without one
        return Resolution(verdict, function.qualname, function.reason, function.chain)

    def _entered(self, name: Name, expression: ast.expr) -> Resolution | None:
        entry = table_entry(name)
        if entry is not None and (entry.enter is not None or entry.exit is not None):
            enter = Verdict(entry.enter) if entry.enter else Verdict.UNKNOWN
            exit_ = Verdict(entry.exit) if entry.exit else Verdict.UNKNOWN
            overall = combined(enter, exit_)
            return Resolution(
                overall,
                entry.name,
                library_reason(entry.name, overall, entry.note),
                (
                    f"`{entry.name}`: enter {behaviour_words(enter)}, exit "
                    f"{behaviour_words(exit_)}: {entry.note} ({entry.source})",
                ),
                enter=enter,
                exit=exit_,
            )
        # A class of the user's with async __aenter__ / __aexit__.
        klass = self._class_of(name)
        if klass is not None:
            path, node = klass
            entering = self._method_verdict(path, node, "__aenter__")
            leaving = self._method_verdict(path, node, "__aexit__")
            if entering is None and leaving is None:
                return None
            enter_verdict = entering.verdict if entering else Verdict.UNKNOWN
            exit_verdict = leaving.verdict if leaving else Verdict.UNKNOWN
            overall = combined(enter_verdict, exit_verdict)
            parts = [part for part in (entering, leaving) if part is not None]
            chain = tuple(item for part in parts for item in part.chain)
            reason = next((part.reason for part in parts if not part.verdict.guaranteed), "")
            return Resolution(
                overall, node.name, reason, chain, enter=enter_verdict, exit=exit_verdict
            )
        return None

    def _iterated(self, name: Name) -> Resolution | None:
        entry = table_entry(name)
        if entry is None or entry.iteration is None:
            return None
        verdict = Verdict(entry.iteration)
        return Resolution(
            verdict,
            entry.name,
            library_reason(entry.name, verdict, entry.note),
            (
                f"`{entry.name}`: each step {behaviour_words(verdict)}: {entry.note} "
                f"({entry.source})",
            ),
        )

    # -- functions -----------------------------------------------------------

    def _function_verdict(self, name: Name, depth: int) -> FunctionVerdict | None:
        path = str(name.module_path) if name.module_path else None
        if path is None or not path.endswith(".py") or name.line is None:
            return None
        source = self._file(path)
        if source is None:
            return None
        node = source.functions.get(name.line)
        if not isinstance(node, ast.AsyncFunctionDef) or is_generator(node):
            return None  # a sync def returning an awaitable, or an async generator
        if override_point(node, source):
            return None  # abstract, protocol or stub: its overrides decide (unknown)
        if any(decorator_name(d) in ACM_DECORATORS for d in node.decorator_list):
            return None
        return self._verdict_of(path, source, node, name.full_name or node.name, depth)

    def _method_verdict(
        self, path: str, klass: ast.ClassDef, method: str
    ) -> FunctionVerdict | None:
        source = self._file(path)
        if source is None:
            return None
        for statement in klass.body:
            if isinstance(statement, ast.AsyncFunctionDef) and statement.name == method:
                return self._verdict_of(path, source, statement, f"{klass.name}.{method}", depth=0)
        return None

    def _class_of(self, name: Name) -> tuple[str, ast.ClassDef] | None:
        if name.type not in ("instance", "class") or name.module_path is None:
            return None
        path = str(name.module_path)
        if not path.endswith(".py") or name.line is None:
            return None
        source = self._file(path)
        if source is None:
            return None
        klass = source.classes.get(name.line)
        return (path, klass) if klass is not None else None

    def _verdict_of(
        self,
        path: str,
        source: _Source,
        node: ast.AsyncFunctionDef,
        qualname: str,
        depth: int,
    ) -> FunctionVerdict:
        cached = source.verdicts.get(node.lineno)
        if cached is not None:
            return cached
        key = (path, node.lineno)
        short = qualname.rsplit(".", 1)[-1] if "." in qualname else qualname
        where = f"{os.path.basename(path)}:{node.lineno}"
        if key in self._in_progress:  # recursion: assume, then check the assumption
            self._assumed.add(key)
            return FunctionVerdict(self._in_progress[key], short, where, "", ())
        if depth > MAX_DEPTH:
            return FunctionVerdict(Verdict.UNKNOWN, short, where, "too deep to follow", ())
        outer = self._assumed
        # Recursion: start from "returns only after a checkpoint, brings none
        # of its own" and walk again with each result until it holds (the
        # least fixpoint of both "may return without" and "may checkpoint").
        assumed = Verdict.ASSUMED
        verdict = FunctionVerdict(Verdict.UNKNOWN, short, where, "", ())
        for _round in range(MAX_CYCLE_ROUNDS):
            self._in_progress[key] = assumed
            self._assumed = set()
            try:
                verdict, found = self._walk_function(path, source, node, short, where, depth)
            finally:
                del self._in_progress[key]
            if key not in self._assumed or found == assumed:
                break
            assumed = found
        pending = self._assumed - {key}  # assumptions about callers still being walked
        self._assumed = outer | pending
        if not pending:
            source.verdicts[node.lineno] = verdict
        return verdict

    def _walk_function(
        self,
        path: str,
        source: _Source,
        node: ast.AsyncFunctionDef,
        short: str,
        where: str,
        depth: int,
    ) -> tuple[FunctionVerdict, Verdict]:
        effects = JediEffects(self, path, source, depth)
        result: PathResult = PathWalker(effects).function(node)
        verdict = result.verdict
        # No way out without a checkpoint, and no checkpoint: it never returns
        # normally (or, inside a cycle, not yet known). What a call is worth
        # in the fixpoint; shown as "always" once the cycle is done.
        vacuous = not result.all_escapes and not result.possible
        next_round = Verdict.ASSUMED if vacuous else verdict
        if next_round is Verdict.ASSUMED:
            reason = f"{short} never returns normally"
        elif verdict is Verdict.ALWAYS:
            reason = "always reaches a checkpoint"
        elif verdict is Verdict.NEVER:
            reason = f"{short} never yields"
        elif verdict is Verdict.MAY_NOT_YIELD:
            found = next(
                (
                    effects.found[id(weak.node)]
                    for weak in result.weak
                    if weak.verdict is Verdict.MAY_NOT_YIELD and id(weak.node) in effects.found
                ),
                None,
            )
            fast = found.callee if found is not None else ""
            # A helper of the user's (`inner`, no dot) names its library in its own reason.
            library = fast.split(".", 1)[0] if "." in fast else fast_path_library(found)
            place = f"{library} fast path" if library else "a fast path"
            reason = f"{short}: {place} in {fast}" if fast else f"{short}: a fast path"
        else:
            first = min(result.escapes)
            ending = (node.end_lineno or node.lineno) - 1
            if first == ending and not returns_at(node, first):
                reason = f"{short} can end without one"
                via = next(
                    (
                        effects.found[id(weak.node)].reason
                        for weak in result.weak
                        if id(weak.node) in effects.found and effects.found[id(weak.node)].reason
                    ),
                    "",
                )
                if via:
                    reason += f": {via}"
            else:
                reason = f"{short} returns at L{first + 1} without one"
        chain = [f"`{short}` ({where}): {function_words(verdict, result, node)}"]
        for weak in result.weak[:3]:
            found = effects.found.get(id(weak.node))
            if found is not None and found.chain:
                chain.extend(f"  {step}" for step in found.chain[:2])
        return FunctionVerdict(next_round, short, where, reason, tuple(chain)), next_round


# -- helpers ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Target:
    kind: HintKind
    line: int  # the hint's anchor: 0-based line, code-point column of its end
    column: int
    expression: ast.expr  # the awaited value, the context manager, the iterable


def _checkpoint_nodes(tree: ast.Module, lines: list[str]) -> Iterable[_Target]:
    def end_of(node: ast.expr) -> tuple[int, int]:
        return end_position(lines, node)

    for node in ast.walk(tree):
        if isinstance(node, ast.Await):
            yield _Target(HintKind.AWAIT, *end_of(node), node.value)
        elif isinstance(node, ast.AsyncWith):
            for item in node.items:
                anchor = item.optional_vars if item.optional_vars is not None else item.context_expr
                yield _Target(HintKind.ASYNC_WITH, *end_of(anchor), item.context_expr)
        elif isinstance(node, ast.AsyncFor) or (
            isinstance(node, ast.comprehension) and node.is_async
        ):
            yield _Target(HintKind.ASYNC_FOR, *end_of(node.iter), node.iter)


def _make_source(text: str, lines: list[str]) -> _Source:
    try:
        tree: ast.Module | None = parse_fragment(lines)
    except PARSE_ERRORS:
        tree = None
    functions: dict[int, ast.AsyncFunctionDef | ast.FunctionDef] = {}
    classes: dict[int, ast.ClassDef] = {}
    if tree is not None:
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                functions[node.lineno] = node
            elif isinstance(node, ast.ClassDef):
                classes[node.lineno] = node
    return _Source(text, lines, tree, functions, classes)


def keyed_hints(hints: list[Hint]) -> dict[HintKey, Hint]:
    """Checkpoint hints by their key (for tests and the command line)."""
    keys = anchor_keys(hints)
    return {
        keys[(hint.line, hint.column, hint.kind)]: hint
        for hint in sorted(hints, key=lambda hint: (hint.line, hint.column))
        if hint.kind.is_checkpoint
    }


# -- the resolver process of the language server ------------------------------
# (here, free of LSP imports, so that the process starts fast)

_RESOLVERS: dict[tuple[str | None, str], Resolver] = {}


def resolve_document(
    root: str | None,
    interpreter: str,
    path: str | None,
    lines: list[str],
    budget: float,
    first_lines: tuple[int, int] | None,
) -> tuple[dict[HintKey, Resolution], dict[str, Any]]:
    """Resolve one document's checkpoints (runs in the resolver process)."""
    warning = ""
    resolver = _RESOLVERS.get((root, interpreter))
    if resolver is None:
        try:
            resolver = Resolver(root, interpreter or None)
        except Exception as error:  # noqa: BLE001 - jedi's errors for a bad interpreter vary
            warning = (
                f"python.interpreter {interpreter!r} cannot be used ({error}); "
                "resolving with the server's own Python instead"
            )
            resolver = _RESOLVERS.get((root, "")) or Resolver(root, None)
        _RESOLVERS[(root, interpreter)] = resolver
    result = resolver.resolve_lines(lines, path, budget, first_lines)
    stats = {
        "total": result.total,
        "resolved": result.resolved,
        "complete": result.complete,
        "seconds": round(result.seconds, 3),
        "warning": warning,
    }
    return result.resolutions, stats


def warm_up(root: str | None, interpreter: str) -> float:
    """Start jedi before the first document needs it (runs in the resolver process):
    the first inference loads the builtins' stubs and asyncio, a second or more."""
    started = time.perf_counter()
    resolve_document(
        root,
        interpreter,
        None,
        ["import asyncio", "async def _warm():", "    await asyncio.sleep(0)"],
        30.0,
        None,
    )
    return time.perf_counter() - started


def forget_document(path: str) -> None:
    for resolver in _RESOLVERS.values():
        resolver.forget(path)


def fast_path_library(found: Resolution | None) -> str:
    """`asyncio` in "inner: asyncio fast path in asyncio.Lock.acquire" ("" if none)."""
    before, marker, _ = (found.reason if found is not None else "").partition(" fast path")
    word = before.split()[-1] if marker and before.split() else ""
    return "" if word == "a" else word
