"""What every offered fix must keep, checked one fix at a time (issue 13, part 2).

Shared by tests/test_fix_sweep.py (the rule fixtures, a slice of trio) and
benchmarks/fix_sweep.py (the whole installed trio and anyio). For each
finding that carries a fix, the fix alone is applied to the module and the
result must:

- ``parses``: parse;
- ``names``: use no name that is undefined where it is used, unless that name
  was already undefined there before the fix (a fix may import what it uses);
- ``unset``: put no assignment that code after it reads inside a scope that
  gives up quietly (`move_on_after`, `asyncio.timeout`): once it gives up, the
  read raises `UnboundLocalError` where the original waited;
- ``jumps``: put no `return` (nor a `break` / `continue` of an outer loop)
  in a `finally`, where it swallows the exception being raised;
- ``library``: name no concurrency library other than the one the edited
  function runs under (the libraries its own code names, else its class's,
  else the module's);
- ``gone``: no longer hold the finding it fixes (one fewer of its code in its
  function): a fix that trades a finding for another of the same kind fails here;
- ``no new``: hold no finding of another code or function that was not there.
"""

from __future__ import annotations

import ast
import builtins
import symtable
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from conc_lsp.analysis.fragments import PARSE_ERRORS, parse_fragment
from conc_lsp.analysis.model import Finding, Fix
from conc_lsp.analysis.text import apply_edits, split_lines
from conc_lsp.config import Settings
from conc_lsp.diagnose import check_lines
from conc_lsp.sources import read_source

LIBRARIES = ("trio", "anyio", "asyncio")
PROPERTIES = ("parses", "names", "unset", "jumps", "library", "gone", "no new")
# Scopes that end quietly when their time is up: what they assign may stay unset.
QUIET_SCOPES = frozenset({"move_on_after", "move_on_at", "timeout", "timeout_at"})
EVERY_RULE = Settings(select=("ALL",))
BUILTINS = frozenset(dir(builtins)) | {"__file__", "__name__", "__doc__", "__spec__"}


@dataclass(slots=True)
class Failure:
    path: str
    code: str
    title: str
    safe: bool
    line: int
    broken: str  # the property
    detail: str


@dataclass(slots=True)
class Tally:
    """Fixes offered / applied and failures, per rule and safety."""

    offered: Counter[tuple[str, bool]] = field(default_factory=Counter)
    applied: Counter[tuple[str, bool]] = field(default_factory=Counter)
    failing: Counter[tuple[str, bool, str]] = field(default_factory=Counter)
    failures: list[Failure] = field(default_factory=list)

    def add(self, other: Tally) -> None:
        self.offered.update(other.offered)
        self.applied.update(other.applied)
        self.failing.update(other.failing)
        self.failures.extend(other.failures)


def undefined_names(tree_source: str) -> Counter[str]:
    """Names read (in any scope) that no scope binds, nor the builtins."""
    table = symtable.symtable(tree_source, "<fix>", "exec")
    module_bound = {
        symbol.get_name()
        for symbol in table.get_symbols()
        if symbol.is_assigned()
        or symbol.is_imported()
        or symbol.is_parameter()
        or symbol.is_namespace()
    }
    star = "*" in tree_source and "import *" in tree_source
    found: Counter[str] = Counter()
    for scope in scopes(table):
        for symbol in scope.get_symbols():
            if not symbol.is_referenced():
                continue
            name = symbol.get_name()
            unbound_here = scope is table or symbol.is_global()
            if unbound_here and name not in module_bound and name not in BUILTINS and not star:
                found[name] += 1
    return found


def scopes(table: symtable.SymbolTable) -> Iterator[symtable.SymbolTable]:
    yield table
    for child in table.get_children():
        yield from scopes(child)


def library_aliases(tree: ast.Module) -> dict[str, str]:
    """Module-level names bound to a library or something imported from it."""
    aliases: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                top = alias.name.split(".")[0]
                if top in LIBRARIES:
                    aliases[alias.asname or top] = top
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            top = node.module.split(".")[0]
            if top in LIBRARIES:
                for alias in node.names:
                    aliases[alias.asname or alias.name] = top
    return aliases


def name_loads(node: ast.AST) -> Counter[str]:
    return Counter(
        child.id
        for child in ast.walk(node)
        if isinstance(child, ast.Name) and isinstance(child.ctx, ast.Load)
    )


def function_at(tree: ast.Module, line: int) -> ast.AsyncFunctionDef | ast.FunctionDef | None:
    """The innermost function holding 0-based ``line``."""
    best: ast.AsyncFunctionDef | ast.FunctionDef | None = None
    for node in ast.walk(tree):
        if isinstance(node, (ast.AsyncFunctionDef, ast.FunctionDef)):
            first = min([node.lineno, *(d.lineno for d in node.decorator_list)]) - 1
            if first <= line <= (node.end_lineno or node.lineno) - 1 and (
                best is None or node.lineno > best.lineno
            ):
                best = node
    return best


def class_of(tree: ast.Module, function: ast.AST) -> ast.ClassDef | None:
    """The innermost class whose body holds ``function``."""
    owner: ast.ClassDef | None = None
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.ClassDef)
            and (owner is None or node.lineno > owner.lineno)
            and any(child is function for child in ast.walk(node))
        ):
            owner = node
    return owner


def libraries_named(node: ast.AST, aliases: dict[str, str]) -> set[str]:
    return {aliases[name] for name in name_loads(node) if name in aliases}


def jumps_in_finally(tree: ast.Module) -> int:
    """The `return`s, and `break`s / `continue`s of outer loops, in `finally` bodies."""
    return sum(
        jumps(statement)
        for node in ast.walk(tree)
        if isinstance(node, (ast.Try, ast.TryStar))
        for statement in node.finalbody
    )


def jumps(node: ast.AST, in_loop: bool = False) -> int:
    if isinstance(node, ast.Return):
        return 1
    if isinstance(node, (ast.Break, ast.Continue)):
        return 0 if in_loop else 1
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)):
        return 0
    inside = in_loop or isinstance(node, (ast.For, ast.AsyncFor, ast.While))
    return sum(jumps(child, inside) for child in ast.iter_child_nodes(node))


def unset_after_quiet_scope(tree: ast.Module, fix: Fix) -> set[str]:
    """Names assigned inside a quiet scope the fix wrote, read after it in the
    same function and not assigned before it."""
    edited = [(e.start[0], e.start[0] + e.text.count("\n")) for e in fix.edits]
    found: set[str] = set()
    for node in ast.walk(tree):
        if not isinstance(node, (ast.With, ast.AsyncWith)):
            continue
        if not any(first <= node.lineno - 1 <= last for first, last in edited):
            continue
        call = node.items[0].context_expr
        if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute)):
            continue
        if call.func.attr not in QUIET_SCOPES:
            continue
        function = function_at(tree, node.lineno - 1)
        if function is None:
            continue
        end = node.end_lineno or node.lineno
        inside = {
            n.id
            for s in node.body
            for n in ast.walk(s)
            if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)
        }
        before = {
            n.id
            for n in ast.walk(function)
            if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store) and n.lineno < node.lineno
        }
        after = {
            n.id
            for n in ast.walk(function)
            if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load) and n.lineno > end
        }
        found |= (inside & after) - before
    return found


def signature(finding: Finding) -> tuple[str, str]:
    return (finding.code, finding.function)


def broken_properties(
    lines: list[str],
    before: list[Finding],
    target: Finding,
    fix: Fix,
    settings: Settings,
    module_library: str | None,
) -> Iterator[tuple[str, str]]:
    """(property, detail) for each property the fix breaks."""
    fixed = apply_edits(lines, fix.edits)
    old_text, new_text = "\n".join(lines) + "\n", "\n".join(fixed) + "\n"
    try:
        parse_fragment(fixed)
        new_tree = ast.parse(new_text)
    except PARSE_ERRORS as error:
        yield "parses", f"{type(error).__name__}: {error}"
        return
    old_tree = ast.parse(old_text)
    introduced = undefined_names(new_text) - undefined_names(old_text)
    if introduced:
        yield "names", "undefined: " + ", ".join(sorted(introduced))
    first_line = min(edit.start[0] for edit in fix.edits)
    if jumps_in_finally(new_tree) > jumps_in_finally(old_tree):
        yield "jumps", "a return / break / continue now leaves a `finally`"
    unset = unset_after_quiet_scope(new_tree, fix)
    if unset:
        yield "unset", "unset when the scope gives up: " + ", ".join(sorted(unset))
    old_function = function_at(old_tree, first_line)
    new_function = function_at(new_tree, first_line)
    aliases = library_aliases(new_tree)
    if old_function is not None and new_function is not None:
        old_aliases = library_aliases(old_tree)
        owner = class_of(old_tree, old_function)
        allowed = (
            libraries_named(old_function, old_aliases)
            or (libraries_named(owner, old_aliases) if owner is not None else set())
            or ({module_library} if module_library else set(LIBRARIES))
        )
        if module_library == "anyio" and "asyncio" in allowed:
            allowed = allowed | {"anyio"}  # an anyio module runs on asyncio: anyio works there
        added = name_loads(new_function) - name_loads(old_function)
        wrong = {aliases[name] for name in added if name in aliases} - allowed
        if wrong:
            yield (
                "library",
                f"uses {', '.join(sorted(wrong))} in a {'/'.join(sorted(allowed))} function",
            )
    after = check_lines(fixed, settings).findings
    counts_after = Counter(signature(f) for f in after)
    counts_before = Counter(signature(f) for f in before)
    if counts_after[signature(target)] >= counts_before[signature(target)]:
        yield "gone", f"still {counts_after[signature(target)]} {target.code} in {target.function}"
    expected = counts_before.copy()
    expected[signature(target)] -= 1
    new = +(counts_after - expected)
    new.pop(signature(target), None)
    if new:
        yield "no new", ", ".join(f"{code} in {function}" for code, function in sorted(new))


def sweep_module(
    path: str,
    lines: list[str],
    settings: Settings = EVERY_RULE,
    *,
    codes: Iterable[str] | None = None,
) -> Tally:
    """Apply every fix offered on ``lines`` alone and check its properties."""
    tally = Tally()
    wanted = set(codes) if codes is not None else None
    result = check_lines(lines, settings, path, fixes=True)
    before = result.findings
    module_library = result.facts.library if result.facts is not None else None
    for target in before:
        fix = target.fix
        if fix is None or (wanted is not None and target.code not in wanted):
            continue
        key = (target.code, fix.safe)
        tally.offered[key] += 1
        if not fix.edits:
            continue
        tally.applied[key] += 1
        for broken, detail in broken_properties(
            lines, before, target, fix, settings, module_library
        ):
            tally.failing[(target.code, fix.safe, broken)] += 1
            tally.failures.append(
                Failure(
                    path, target.code, fix.title, fix.safe, target.location.line + 1, broken, detail
                )
            )
    return tally


def detection_gap(failure: Failure) -> bool:
    """A new finding that is the detection's, not the fix's: CONC111 (opt-in)
    walks every async function of a module importing trio or anyio, asyncio
    ones included, and takes `except TimeoutError:` after `asyncio.timeout` for
    a way out without a checkpoint. The asyncio bound is right for an asyncio
    method of a module that imports trio too (trio's would fail at run time)."""
    return (
        failure.code == "CONC101"
        and failure.broken == "no new"
        and "asyncio.timeout" in failure.title
        and all(part.startswith("CONC111 in ") for part in failure.detail.split(", "))
    )


UNSAFE_MUST_KEEP = ("parses", "names", "jumps", "library")


def must_hold(failure: Failure) -> bool:
    """Safe fixes keep every property; unsafe ones may change behaviour (and
    findings) but must still parse and name only what exists."""
    return failure.safe or failure.broken in UNSAFE_MUST_KEEP


def table(tally: Tally) -> list[str]:
    """Offered / applied / failing each property, per rule and safety."""
    rows = [
        f"{'rule':8} {'safety':7} {'offered':>7} {'applied':>7}  "
        + "  ".join(f"{name:>7}" for name in PROPERTIES)
    ]
    for code, safe in sorted(tally.offered):
        cells = "  ".join(f"{tally.failing[(code, safe, name)]:>7}" for name in PROPERTIES)
        rows.append(
            f"{code:8} {'safe' if safe else 'unsafe':7} {tally.offered[(code, safe)]:>7} "
            f"{tally.applied[(code, safe)]:>7}  {cells}"
        )
    return rows


def sweep(paths: list[Path], base: Path) -> Tally:
    """Every fix offered on each file, named relative to ``base``, checked."""
    tally = Tally()
    for path in paths:
        lines = split_lines(read_source(path))
        tally.add(sweep_module(str(path.relative_to(base)), lines))
    return tally
