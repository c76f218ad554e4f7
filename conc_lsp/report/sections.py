"""The report's first two sections: the shared state table (writers, readers,
guard) and the checkpoint map, for the target's functions."""

from __future__ import annotations

from dataclasses import dataclass

from conc_lsp.analysis.events import Event, EventKind, FunctionFacts
from conc_lsp.analysis.model import Hint, HintKind
from conc_lsp.analysis.program import SPAWN_METHODS, Access, Program, span
from conc_lsp.analysis.tree import unparse
from conc_lsp.labels import context_tags
from conc_lsp.report.model import FunctionMarks, Mark, StateRow, Target, TargetNotFound
from conc_lsp.rules.story import code_excerpt, ref


@dataclass(slots=True)
class Scope:
    functions: list[FunctionFacts]
    first: int | None = None  # line range of a `range` target
    last: int | None = None

    def has_line(self, line: int) -> bool:
        if self.first is not None and self.last is not None:
            return self.first <= line <= self.last
        return any(span(f)[0] <= line <= span(f)[1] for f in self.functions)

    def has_event(self, function: FunctionFacts, event: Event) -> bool:
        if self.first is not None and self.last is not None:
            return self.first <= event.location.line <= self.last
        return function in self.functions


def scope_of(module: Program, target: Target) -> Scope:
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
        return Scope(chosen)
    if target.kind == "range" and target.start is not None and target.end is not None:
        chosen = [
            f for f in module.functions if span(f)[0] <= target.end and span(f)[1] >= target.start
        ]
        return Scope(chosen, target.start, target.end)
    return Scope(list(module.functions))


def state_rows(module: Program, scope: Scope) -> list[StateRow]:
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
            unparse(access.event.node).startswith("self.") for access in accesses
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


def _guard(module: Program, accesses: list[Access]) -> tuple[str | None, list[str], list[int]]:
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
    best: tuple[int, str, list[Access]] | None = None
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
        text = f"{ref(access.line)} in `{module.display(access.function.qualname)}`"
        if text not in exceptions:
            exceptions.append(text)
    return module.lock_display(identity), exceptions, []


def checkpoint_marks(module: Program, scope: Scope, hints: list[Hint]) -> list[FunctionMarks]:
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
        result.append(FunctionMarks(qualname, span(function)[0], marks))
    result.sort(key=lambda item: item.line)
    return result


def _waiters(module: Program) -> dict[str, list[str]]:
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


def _mark(module: Program, hint: Hint, waiters: dict[str, list[str]]) -> Mark:
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
    return Mark(hint.keyword_line, code_excerpt(code), mark, kind.value, kind.is_checkpoint)


def _spawned(module: Program, hint: Hint) -> str | None:
    function = module.by_qualname.get(hint.function)
    if function is None:
        return None
    for event in function.events:
        if (
            event.kind is EventKind.CALL
            and event.method in SPAWN_METHODS
            and event.location.end_line == hint.line
        ):
            target = module.resolve(function, event.argument or "")
            return module.display(target.qualname) if target else (event.argument or None)
    return None
