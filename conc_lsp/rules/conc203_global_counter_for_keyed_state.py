"""CONC203 global-counter-for-keyed-state

## What it does
Flags a single scalar counter shared by all keys of keyed state
(`cls.users += 1` in a function that indexes `cls.values[ctx_key]`), when
the counter decides the fate of one key's entry: some `if`/`while` tests it
and its body touches keyed state of the same owner (`if cls.users == 0:
cls.resources.pop(ctx_key)`). Also flags a lock chosen by a different key
than the state it guards (`locks[fid]` guarding `values[ctx_key]`); only
mutexes count (`locks`, `mutexes`): a semaphore or capacity limiter per
tenant over per-request state is a limit, keyed differently by design.

Not flagged: per-key counters (`users[ctx_key] += 1`); counters never
tested, or tested only to decide something about the whole object (`if
self._active == 0: self._idle.set()`); locks with a constant key (one lock
by design) or keyed like the state. Lock maps are told by the attribute's
own name (`locks`, `_host_sems`, `key_lock`), not by words inside it
(`blocks`, `clock`) or the class name.

## Why is this bad?
Users of different keys inflate each other's count: when one key's users
drop to zero the shared counter does not, so that key's resources are never
torn down (tractor's `_Cache.users` before the fix). A lock keyed by a
broader or different key than the state serialises the wrong tasks and lets
two tasks touch the same state entry under different locks.

## Example
```python
_Cache.users += 1
yield _Cache.values[ctx_key]
...
_Cache.users -= 1
if _Cache.users == 0:
    _Cache.resources.pop(ctx_key)
```

## Use instead
```python
_Cache.users[ctx_key] += 1   # users: defaultdict(int)
yield _Cache.values[ctx_key]
...
_Cache.users[ctx_key] -= 1
if _Cache.users[ctx_key] == 0:
    _Cache.resources.pop(ctx_key)
```

## Fix
Turn the counter into a per-key counter (`collections.defaultdict(int)`
keyed like the state) and update its uses. Unsafe: it changes the
counter's type for every reader.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from dataclasses import dataclass

from conc_lsp.analysis.events import Event, EventKind, FunctionFacts, ModuleFacts
from conc_lsp.analysis.locks import holds_locks, holds_mutexes
from conc_lsp.analysis.model import Fix, TextEdit
from conc_lsp.analysis.program import INITIALISERS, Program, program_of
from conc_lsp.analysis.reach import function_parents
from conc_lsp.analysis.text import utf8_to_codepoint
from conc_lsp.fixes.context import FixContext
from conc_lsp.rules.base import Detection, Evidence, Rule, Words
from conc_lsp.rules.story import (
    ProposedFix,
    Trace,
    TraceBuilder,
    indentation,
    sketch_diff,
    state_text,
)

_ACCESSES = (EventKind.READ, EventKind.WRITE, EventKind.TEST)


def _is_variable_key(key: str | None) -> bool:
    # A slice (`buf[:n]`) picks bytes, not a key's entry.
    return bool(key) and (key or "")[0] not in "'\"0123456789-" and ":" not in (key or "")


def _counts_by_one(function: FunctionFacts, event: Event) -> bool:
    """`self.users += 1` / `-= 1`: a count of users, not a buffer (`buf += data`)."""
    parents = function_parents(function)
    parent = parents.get(event.node)
    statement = parent[0] if parent else None
    return (
        isinstance(statement, ast.AugAssign)
        and isinstance(statement.op, (ast.Add, ast.Sub))
        and isinstance(statement.value, ast.Constant)
        and type(statement.value.value) is int
    )


def _keyed(event: Event) -> bool:
    return event.kind in _ACCESSES and _is_variable_key(event.key)


def _deciding_counters(function: FunctionFacts) -> set[str]:
    """Key-less state tested by an `if`/`while` whose body touches keyed state of its owner.

    `if cls.users == 0: cls.resources.pop(ctx_key)`: the counter decides the
    fate of one key's entry, so it must count that key's users. A count that
    only decides something about the whole object (`if self._active == 0:
    self._idle.set()`) is a count of the whole object.
    """
    tests = [
        event
        for event in function.events
        if event.kind is EventKind.TEST and event.key is None and event.state
    ]
    if not tests:
        return set()
    parents = function_parents(function)
    # id of an `if`/`while` -> owners of the keyed state touched in its body or
    # `else`: one walk up from each keyed access, not a scan of the events per test.
    touched: dict[int, set[str | None]] = {}
    climbed: set[tuple[int, str | None]] = set()  # what is above was marked already
    for event in function.events:
        if not _keyed(event):
            continue
        node = event.node
        while node in parents and (id(node), event.owner) not in climbed:
            climbed.add((id(node), event.owner))
            parent, field = parents[node]
            if isinstance(parent, (ast.If, ast.While)) and field in ("body", "orelse"):
                touched.setdefault(id(parent), set()).add(event.owner)
            node = parent
    deciding: set[str] = set()
    for test in tests:
        node = test.node
        while node in parents and not isinstance(node, ast.stmt):
            node = parents[node][0]
        if not isinstance(node, (ast.If, ast.While)):
            continue
        if test.owner in touched.get(id(node), ()):
            deciding.add(test.state or "")
    return deciding


@dataclass(frozen=True, slots=True)
class SharedCounter(Evidence):
    """One counter (not indexed) that counts the users of keyed state."""

    counter: Event
    keyed: Event


@dataclass(frozen=True, slots=True)
class LockKeyMismatch(Evidence):
    """A lock chosen by one key guarding state keyed by another."""

    lock: Event
    state: Event


def _check(rule: Rule, module: ModuleFacts) -> Iterator[Detection]:
    deciding = {state for function in module.functions for state in _deciding_counters(function)}
    # A count kept across tasks is touched where tasks run: in an async function.
    in_tasks = {
        event.state
        for function in module.functions
        if function.is_async
        for event in function.events
        if event.state is not None
    }
    for function in module.functions:
        keyed = [
            event for event in function.events if _keyed(event) and not holds_locks(event.state)
        ]
        if not keyed:
            continue
        # Per owner: its first keyed access, and the keys it is accessed by.
        first_keyed: dict[str | None, Event] = {}
        keys: dict[str | None, set[str | None]] = {}
        for access in keyed:
            first_keyed.setdefault(access.owner, access)
            keys.setdefault(access.owner, set()).add(access.key)
        reported: set[str | None] = set()
        for event in function.events:
            if (
                event.kind is EventKind.WRITE
                and event.augmented
                and event.key is None
                and event.state in deciding
                and event.state not in reported
                and event.owner in first_keyed
                and _counts_by_one(function, event)
                and event.state in in_tasks
            ):
                state = first_keyed[event.owner]
                reported.add(event.state)
                yield rule.detect(
                    function,
                    event.location,
                    f"`{event.state}` is one counter for all keys, but the state it counts is "
                    f"keyed (`{state.state}[{state.key}]`): users of other keys inflate it, "
                    f"so a key's count never reaches zero; keep a per-key count "
                    f"(`{event.state}[{state.key}]`)",
                    SharedCounter(event, state),
                    [(state.location, f"keyed state: {module.source(state.location)}")],
                )
        for event in function.events:
            if _keyed(event) and holds_mutexes(event.state):
                # Skipped when an access of the owner has the lock's key; else all its
                # accesses have another key, and the first one is shown.
                other = first_keyed.get(event.owner)
                if other is None or event.key in keys[event.owner]:
                    continue
                yield rule.detect(
                    function,
                    event.location,
                    f"the lock is chosen by `{event.key}` but guards state keyed by "
                    f"`{other.key}` (`{other.state}[{other.key}]`): tasks with the same "
                    f"`{other.key}` can hold different locks",
                    LockKeyMismatch(event, other),
                    [(other.location, f"guarded state: {module.source(other.location)}")],
                )
                break


EFFORT = "moderate"


def _trace_counter(
    module: Program, b: TraceBuilder, function: FunctionFacts, evidence: SharedCounter
) -> Trace | None:
    counter, keyed = evidence.counter, evidence.keyed
    key = keyed.key or "key"
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
    module: Program, b: TraceBuilder, function: FunctionFacts, evidence: LockKeyMismatch
) -> Trace | None:
    """CONC203's second form: a lock chosen by another key than the state it guards."""
    lock, state = evidence.lock, evidence.state
    lock_key, key = lock.key or "key", state.key or "key"
    b.add("Task A", lock.location.line, f"takes the lock of its `{lock_key}` `a`", "a_lock")
    b.add(
        "Task B",
        lock.location.line,
        f"takes the lock of another `{lock_key}` `b`: a different lock, so it does not wait",
        "b_lock",
    )
    b.add("Task A", state.location.line, f"uses {state_text(state)} for `{key}` `k`", "a_use")
    b.add(
        "Task B",
        state.location.line,
        f"uses {state_text(state)} for the same `{key}` `k` at the same time",
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


def _sketch_counter(
    module: Program, evidence: SharedCounter, name: str, lines: list[str]
) -> ProposedFix | None:
    """Index the counter by the key of the state it counts (the quick fix too)."""
    counter, keyed = evidence.counter, evidence.keyed
    if not keyed.key or not counter.state:
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
    return sketch_diff(
        f"Count per `{key}`: `{counter.state}[{key}]`",
        lines,
        edits,
        name,
        EFFORT,
    )


def _sketch_lock_key(evidence: LockKeyMismatch, name: str, lines: list[str]) -> ProposedFix | None:
    """The lock form: choose the lock by the key of the state it guards."""
    lock, state = evidence.lock, evidence.state
    if not state.key:
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
    return sketch_diff(
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


def _declaration(module: Program, counter: Event, lines: list[str]) -> tuple[int, str] | None:
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
        return index, f"{indentation(line)}{prefix}{attribute} = {factory}  # one count per key"
    return None


def _inside_class(lines: list[str], index: int, class_name: str) -> bool:
    indent = len(indentation(lines[index]))
    for line in reversed(lines[:index]):
        if not line.strip():
            continue
        if len(indentation(line)) < indent:
            if re.match(r"\s*class\s+" + re.escape(class_name) + r"\b", line):
                return True
            if re.match(r"\s*(class|def|async\s+def)\b", line):
                if line.lstrip().startswith("class"):
                    return False
                indent = len(indentation(line))
                continue
            indent = len(indentation(line))
    return False


class GlobalCounterForKeyedState(Rule):
    code = "CONC203"
    name = "global-counter-for-keyed-state"
    category = "lifetime mismatch"
    explanation = (
        "one counter for all keys decides the lifetime of each key's entry: the entries live "
        "as long as any key has users."
    )
    effort = EFFORT
    sketch_title = "Count per key"
    brief = "one counter (or lock) shared by all keys of keyed state"
    fixes_offered = (
        (
            (
                "one count per key: `collections.defaultdict(int)` indexed like the state, in "
                "every function that has the key"
            ),
            "unsafe",
        ),
    )
    rank = 4
    opt_in = True
    opt_in_reason = (
        "precision on unseen real code 0.00 (round 4: its one finding was wrong; no "
        "finding in round 3)"
    )

    def check(self, module: ModuleFacts) -> Iterator[Detection]:
        return _check(self, module)

    def fix(self, detection: Detection, module: ModuleFacts, context: FixContext) -> Fix | None:
        evidence = detection.evidence
        if not isinstance(evidence, SharedCounter):
            return None
        proposed = _sketch_counter(program_of(module, context.lines), evidence, "", context.lines)
        if proposed is None or not proposed.edits:
            return None
        title = f"{proposed.title} (unsafe: the counter becomes a per-key mapping)"
        return Fix(title, False, proposed.edits)

    def classify(self, evidence: Evidence) -> tuple[str, str]:
        if isinstance(evidence, LockKeyMismatch):
            return (
                "missing guard",
                "the lock is keyed differently from the state: two tasks can touch one entry "
                "under two locks.",
            )
        return self.category, self.explanation

    def trace(
        self, program: Program, b: TraceBuilder, function: FunctionFacts, detection: Detection
    ) -> Trace | None:
        evidence = detection.evidence
        if isinstance(evidence, LockKeyMismatch):
            return _trace_lock_key(program, b, function, evidence)
        if isinstance(evidence, SharedCounter) and evidence.counter.augmented:
            return _trace_counter(program, b, function, evidence)
        return None

    def words(self, evidence: Evidence, trace: Trace) -> Words:
        s = trace.steps_text
        if isinstance(evidence, LockKeyMismatch):
            return Words(
                f"The lock is chosen by the state's own key: at {s('b_lock')} Task B takes the "
                f"same lock as Task A and waits, so {s('a_use')} and {s('b_use')} no longer "
                "overlap.",
                "Tasks with different keys of the old kind but the same state key now serialise.",
                "Code that relied on the broader lock (one lock per actor / host) for other "
                "state loses that exclusion: check what else the old lock guarded.",
            )
        return Words(
            f"Each key counts its own users: Task B's increment ({s('b_inc')}) no longer "
            f"raises Task A's count, so {s('a_test')} sees zero and tears the entry down.",
            "The counter becomes a mapping; every reader of it changes, and an entry should be "
            "deleted when it reaches zero or the mapping grows.",
            "A reader still treating it as an `int` breaks at run time; deleting the entry at "
            "zero must happen in the same step as the test (no checkpoint between).",
        )

    def sketches(
        self,
        program: Program,
        detection: Detection,
        trace: Trace,
        name: str,
        lines: list[str],
        has_quick_fix: bool,
    ) -> list[ProposedFix]:
        evidence = detection.evidence
        sketch = None
        if isinstance(evidence, LockKeyMismatch):
            sketch = _sketch_lock_key(evidence, name, lines)
        elif isinstance(evidence, SharedCounter) and not has_quick_fix:
            sketch = _sketch_counter(program, evidence, name, lines)  # the quick fix's rewrite
        return [sketch] if sketch is not None else []


RULE = GlobalCounterForKeyedState()
