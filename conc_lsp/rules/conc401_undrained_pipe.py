"""CONC401 undrained-pipe

## What it does
Flags a subprocess started with `stdout=PIPE` or `stderr=PIPE`
(`subprocess.Popen`, `asyncio.create_subprocess_exec/_shell`,
`trio.lowlevel.open_process`, `anyio.open_process`, which pipes both by
default) and bound to a name, when that pipe is never read in the function.
The finding is on the first `wait()`; without a wait, or when the wait
follows `kill()` / `terminate()` (which ends the child; the unread pipe still
stalls it while it runs), it is on the process creation, unless the process
is bound by `with Popen(...)` / `async with await open_process(...)`, whose
exit closes the pipes before waiting. It also flags a `wait()` that comes
before the first read of the piped output.

Not flagged: `communicate()`, any use of `proc.stdout` / `proc.stderr`
(reading, handing the stream to a reader task), `DEVNULL` / `STDOUT`,
`subprocess.run`, `check_output`, `trio.run_process`, `anyio.run_process`,
and processes that leave the function (returned, yielded, passed to a call,
stored): their owner reads them.

## Why is this bad?
A pipe holds 64 KiB. A child that writes more blocks in `write()` until
someone reads; it cannot exit, so `wait()` never returns: a deadlock that
shows only with enough output (the seed's capture-pipe-fill hang, where
verbose logging in a child locked up the test suite).

## Example
```python
proc = await asyncio.create_subprocess_exec("build", stdout=PIPE, stderr=PIPE)
await proc.wait()
```

## Use instead
```python
proc = await asyncio.create_subprocess_exec("build", stdout=PIPE, stderr=PIPE)
out, err = await proc.communicate()
```

## Fix
Drain the pipes (`communicate()`, `run_process(..., capture_stdout=True)`)
or send the output to `DEVNULL` when it is never read. Safe for
`communicate()`; `DEVNULL` drops output on purpose.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass, field

from conc_lsp.analysis.events import EventKind, FunctionFacts, ModuleFacts
from conc_lsp.analysis.libraries import last_name
from conc_lsp.analysis.model import Fix, Location
from conc_lsp.analysis.program import Program
from conc_lsp.analysis.text import utf8_to_codepoint
from conc_lsp.analysis.tree import own_nodes
from conc_lsp.fixes.context import FixContext
from conc_lsp.rules.base import Detection, Evidence, Rule, Words
from conc_lsp.rules.story import Trace, TraceBuilder

SPAWNERS = frozenset({"Popen", "create_subprocess_exec", "create_subprocess_shell", "open_process"})
STARTERS = SPAWNERS | {"popen"}  # and pytest's `testdir.popen` / `pytester.popen`
PIPED_BY_DEFAULT = frozenset({"anyio.open_process"})  # stdin, stdout and stderr default to PIPE
STREAMS = ("stdout", "stderr")
DRAINERS = frozenset({"communicate"})
WAITERS = frozenset({"wait"})
ENDERS = frozenset({"kill", "terminate", "send_signal"})


# pytest's `testdir.popen` / `pytester.popen` pipe stdout and stderr by default.
PYTEST_RUNNERS = frozenset({"testdir", "pytester"})
FIXTURE_DECORATORS = frozenset({"fixture", "yield_fixture"})


def _spawner(call: ast.Call, module: ModuleFacts) -> tuple[str, bool] | None:
    """(resolved name, pipes by default) when ``call`` starts a process."""
    func = call.func
    if (
        isinstance(func, ast.Attribute)
        and func.attr == "popen"
        and last_name(_dotted(func.value)) in PYTEST_RUNNERS
    ):
        return f"{_dotted(func.value)}.popen", True
    resolved = module.table.resolve(func)
    if resolved is None or last_name(resolved) not in SPAWNERS:
        return None
    return resolved, resolved in PIPED_BY_DEFAULT


def _dotted(node: ast.expr) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        inner = _dotted(node.value)
        return f"{inner}.{node.attr}" if inner else ""
    return ""


def _assignments(function: ast.AST, name: str) -> list[ast.AST]:
    """Every statement of ``function`` that binds or updates the local ``name``."""
    found: list[ast.AST] = []
    for node in ast.walk(function):
        if isinstance(node, ast.Assign):
            for target in node.targets:
                named = isinstance(target, ast.Name) and target.id == name
                keyed = (
                    isinstance(target, ast.Subscript)
                    and isinstance(target.value, ast.Name)
                    and target.value.id == name
                )
                if named or keyed:
                    found.append(node)
                elif isinstance(target, (ast.Tuple, ast.List)) and any(
                    isinstance(item, ast.Name) and item.id == name for item in ast.walk(target)
                ):
                    found.append(target)  # unpacked: not a value we can read
        elif isinstance(node, (ast.AnnAssign, ast.AugAssign, ast.NamedExpr)):
            target = node.target
            if isinstance(target, ast.Name) and target.id == name:
                found.append(node)
        elif isinstance(node, (ast.For, ast.AsyncFor)) and _binds(node.target, name):
            found.append(node.target)
        elif _with_binds(node, name) or _updates(node, name):
            found.append(node)
    return found


def _with_binds(node: ast.AST, name: str) -> bool:
    return isinstance(node, (ast.With, ast.AsyncWith)) and any(
        item.optional_vars is not None and _binds(item.optional_vars, name) for item in node.items
    )


def _updates(node: ast.AST, name: str) -> bool:
    """`name.update(...)` / `name.setdefault(...)`."""
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and isinstance(node.func.value, ast.Name)
        and node.func.value.id == name
        and node.func.attr in ("update", "setdefault")
    )


def _binds(target: ast.AST, name: str) -> bool:
    return any(isinstance(item, ast.Name) and item.id == name for item in ast.walk(target))


def _is_pipe(value: ast.expr, module: ModuleFacts, function: ast.AST, depth: int = 0) -> bool:
    """`PIPE`, `subprocess.PIPE`, or a local assigned exactly once to one of them."""
    if (
        isinstance(value, (ast.Name, ast.Attribute))
        and last_name(module.table.resolve(value)) == "PIPE"
    ):
        return True
    if isinstance(value, ast.Name) and depth == 0:
        bound = _assignments(function, value.id)
        if len(bound) == 1 and isinstance(bound[0], ast.Assign):
            return _is_pipe(bound[0].value, module, function, depth + 1)
    return False


def _options(name: str, module: ModuleFacts, function: ast.AST) -> dict[str, ast.expr] | None:
    """The keyword arguments a local dict ``name`` holds (`opts = {"stdout": PIPE}`,
    `dict(stdout=PIPE)`, `opts["stderr"] = PIPE`, `opts.update(stdout=PIPE)`); None
    when any binding is something we cannot read (a parameter, a call, ...)."""
    bound = _assignments(function, name)
    if not bound:
        return None  # a parameter or a global: not ours to read
    options: dict[str, ast.expr] = {}
    for node in bound:
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Subscript):
            key = node.targets[0].slice
            if not (isinstance(key, ast.Constant) and isinstance(key.value, str)):
                return None
            options[key.value] = node.value
        elif isinstance(node, (ast.Assign, ast.AnnAssign)) and node.value is not None:
            literal = _literal_options(node.value)
            if literal is None:
                return None
            options.update(literal)
        elif isinstance(node, ast.Call):
            if node.args:
                return None
            options.update({keyword.arg: keyword.value for keyword in node.keywords if keyword.arg})
        else:
            return None
    return options


def _literal_options(value: ast.expr) -> dict[str, ast.expr] | None:
    if isinstance(value, ast.Dict):
        options: dict[str, ast.expr] = {}
        for key, item in zip(value.keys, value.values, strict=True):
            if not (isinstance(key, ast.Constant) and isinstance(key.value, str)):
                return None
            options[key.value] = item
        return options
    if (
        isinstance(value, ast.Call)
        and isinstance(value.func, ast.Name)
        and value.func.id == "dict"
        and not value.args
        and all(keyword.arg for keyword in value.keywords)
    ):
        return {keyword.arg: keyword.value for keyword in value.keywords if keyword.arg}
    return None


def _piped_streams(call: ast.Call, module: ModuleFacts, function: ast.AST) -> list[str]:
    spawner = _spawner(call, module)
    if spawner is None:
        return []
    _, piped_by_default = spawner
    given: dict[str, ast.expr] = {}
    for keyword in call.keywords:
        if keyword.arg is None:
            # **options: read a local dict literal; anything else we cannot tell
            if not isinstance(keyword.value, ast.Name):
                return []
            options = _options(keyword.value.id, module, function)
            if options is None:
                return []
            given.update({key: value for key, value in options.items() if key in STREAMS})
        elif keyword.arg in STREAMS:
            given[keyword.arg] = keyword.value
    piped = []
    for stream in STREAMS:
        value = given.get(stream)
        if value is None:
            if piped_by_default:
                piped.append(stream)
            continue
        if _is_pipe(value, module, function):
            piped.append(stream)
    return piped


def _unwrap(node: ast.expr | None) -> ast.Call | None:
    while isinstance(node, ast.Await):
        node = node.value
    return node if isinstance(node, ast.Call) else None


def _spawns(
    function: FunctionFacts, module: ModuleFacts
) -> Iterator[tuple[str, ast.Call, list[str], bool]]:
    """(variable, call, piped streams, managed) for each process the function itself
    starts; ``managed`` when bound by `with` / `async with`, whose exit closes the
    pipes before waiting."""
    for node in own_nodes(function.node):
        bindings: list[tuple[ast.expr, ast.expr | None]] = []
        managed = False
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            bindings.append((node.targets[0], node.value))
        elif isinstance(node, ast.AnnAssign):
            bindings.append((node.target, node.value))
        elif isinstance(node, (ast.With, ast.AsyncWith)):
            managed = True
            bindings.extend(
                (item.optional_vars, item.context_expr) for item in node.items if item.optional_vars
            )
        for target, value in bindings:
            call = _unwrap(value)
            if call is None or not isinstance(target, ast.Name):
                continue
            piped = _piped_streams(call, module, function.node)
            if piped:
                yield target.id, call, piped, managed


@dataclass(slots=True)
class _Uses:
    """What a function does with one process variable."""

    read: set[str] = field(default_factory=set)
    drained: bool = False
    escapes: bool = False  # passed, returned, yielded, stored or aliased: someone else may read
    # A pytest fixture yields the process to the tests and reads nothing itself: the
    # tests rarely drain a fixture's pipes (only escapes after the yield: teardown).
    handed_to_tests: bool = False
    nested_reads: bool = False  # read inside a nested function (may run concurrently)
    first_read: tuple[int, int] | None = None  # position of the first own read
    wait: ast.Call | None = None  # the first own `wait()` call
    wait_awaited: bool = False  # the wait blocks right there (awaited, or a sync call)
    ended: tuple[int, int] | None = None  # position of the first kill() / terminate()


def _position(node: ast.AST) -> tuple[int, int]:
    return node.lineno, node.col_offset  # type: ignore[attr-defined]


def _uses(function: FunctionFacts, variable: str, start: ast.Call) -> _Uses:
    """How ``variable`` is used; names loaded before the end of ``start`` (the
    process creation) are an earlier variable of the same name and do not count."""
    uses = _Uses()
    started = (start.end_lineno or start.lineno, start.end_col_offset or 0)
    own = {id(node) for node in own_nodes(function.node)}
    receivers: set[int] = set()
    awaited: set[int] = set()
    for node in ast.walk(function.node):
        if isinstance(node, ast.Await):
            awaited.add(id(node.value))
        if not (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id == variable
        ):
            continue
        receivers.add(id(node.value))
        if node.attr in STREAMS:
            uses.read.add(node.attr)
            if id(node) not in own:
                uses.nested_reads = True
            elif uses.first_read is None or _position(node) < uses.first_read:
                uses.first_read = _position(node)
        elif node.attr in DRAINERS:
            uses.drained = True
        elif (
            node.attr in ENDERS
            and id(node) in own
            and (uses.ended is None or _position(node) < uses.ended)
        ):
            uses.ended = _position(node)
    yielded = {
        id(node.value): _position(node)
        for node in own_nodes(function.node)
        if isinstance(node, ast.Yield) and isinstance(node.value, ast.Name)
    }
    escapes: list[tuple[int, int]] = []
    handed_at: tuple[int, int] | None = None
    for node in ast.walk(function.node):
        if (
            isinstance(node, ast.Name)
            and node.id == variable
            and isinstance(node.ctx, ast.Load)
            and id(node) not in receivers
            and _position(node) >= started
        ):
            if id(node) in yielded and handed_at is None:
                handed_at = yielded[id(node)]
            else:
                escapes.append(_position(node))
        if (
            isinstance(node, ast.Call)
            and id(node) in own
            and isinstance(node.func, ast.Attribute)
            and isinstance(node.func.value, ast.Name)
            and node.func.value.id == variable
            and node.func.attr in WAITERS
            and (uses.wait is None or _position(node) < _position(uses.wait))
        ):
            uses.wait = node
            uses.wait_awaited = id(node) in awaited or not function.is_async
    if handed_at is not None and _is_fixture(function) and all(e > handed_at for e in escapes):
        uses.handed_to_tests = True
    elif handed_at is not None or escapes:
        uses.escapes = True
    return uses


def _is_fixture(function: FunctionFacts) -> bool:
    """`@pytest.fixture`, `@pytest.fixture(scope=...)`, `@pytest_asyncio.fixture`."""
    for decorator in function.node.decorator_list:
        target = decorator.func if isinstance(decorator, ast.Call) else decorator
        if last_name(_dotted(target)) in FIXTURE_DECORATORS:
            return True
    return False


def _location(node: ast.AST, module: ModuleFacts) -> Location:
    line: int = node.lineno  # type: ignore[attr-defined]
    end_line: int = node.end_lineno or line  # type: ignore[attr-defined]
    return Location(
        line - 1,
        utf8_to_codepoint(module.lines[line - 1], node.col_offset),  # type: ignore[attr-defined]
        end_line - 1,
        utf8_to_codepoint(module.lines[end_line - 1], node.end_col_offset or 0),  # type: ignore[attr-defined]
    )


@dataclass(frozen=True, slots=True)
class UndrainedPipe(Evidence):
    """A process started with its output on a pipe (``start``) that nobody reads
    before (or while) it is waited for (``wait``; None: never waited)."""

    variable: str
    start: Location
    wait: Location | None
    streams: tuple[str, ...]
    # A fixture yields it to the tests: they may read it, so no edit is offered.
    handed_to_tests: bool = False


def _check(rule: Rule, module: ModuleFacts) -> Iterator[Detection]:
    # A starter is named in the function's lines, or imported under another name.
    aliases = {
        alias for alias, target in module.table.names.items() if last_name(target) in STARTERS
    }
    names = STARTERS | frozenset(aliases)
    for function in module.functions_naming(names, names.__contains__):
        if not any(
            event.kind is EventKind.CALL and last_name(event.callee or event.method) in STARTERS
            for event in function.events
        ):
            continue  # cheap: most functions start no process
        for variable, call, piped, managed in _spawns(function, module):
            uses = _uses(function, variable, call)
            if uses.drained or uses.escapes:
                continue
            unread = [stream for stream in piped if stream not in uses.read]
            wait = uses.wait
            if wait is not None and uses.ended is not None and uses.ended < _position(wait):
                wait = None  # killed first: the wait ends; the unread pipe still stalls the child
            if unread:
                streams = " and ".join(f"{stream}=PIPE" for stream in unread)
                if uses.handed_to_tests:
                    yield rule.detect(
                        function,
                        _location(call, module),
                        f"fixture `{function.name}` hands `{variable}` to the tests with "
                        f"{streams} that it never reads: unless every test drains it, the child "
                        "blocks once 64 KiB is written",
                        UndrainedPipe(variable, _location(call, module), None, tuple(unread), True),
                    )
                elif wait is not None:
                    yield rule.detect(
                        function,
                        _location(wait, module),
                        f"`{variable}.wait()` with {streams} never read: once the child writes "
                        "64 KiB it blocks and this wait deadlocks; use `communicate()` or DEVNULL",
                        UndrainedPipe(
                            variable,
                            _location(call, module),
                            _location(wait, module),
                            tuple(unread),
                        ),
                        [(_location(call, module), "the process is started with the pipe here")],
                    )
                elif not managed:
                    yield rule.detect(
                        function,
                        _location(call, module),
                        f"`{variable}` is started with {streams} that is never read: the child "
                        "blocks once the pipe buffer fills; read it, or use DEVNULL",
                        UndrainedPipe(variable, _location(call, module), None, tuple(unread)),
                    )
            elif (
                wait is not None
                and uses.wait_awaited
                and not uses.nested_reads
                and uses.first_read is not None
                and _position(wait) < uses.first_read
            ):
                yield rule.detect(
                    function,
                    _location(wait, module),
                    f"`{variable}.wait()` comes before its piped output is read: once the child "
                    "writes 64 KiB it blocks and this wait deadlocks; read first, or use "
                    "`communicate()`",
                    UndrainedPipe(
                        variable, _location(call, module), _location(wait, module), tuple(piped)
                    ),
                    [(_location(call, module), "the process is started with the pipe here")],
                )


def _trace(
    module: Program, b: TraceBuilder, function: FunctionFacts, evidence: UndrainedPipe
) -> Trace | None:
    start = evidence.start.line
    waited = evidence.wait is not None
    if waited:
        b.add("Task A", start, "starts the child with its output on a pipe", "start")
    b.add(
        "Task A",
        evidence.wait.line if evidence.wait is not None else start,
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


class UndrainedPipeRule(Rule):
    code = "CONC401"
    name = "undrained-pipe"
    category = "deadlock"
    explanation = "the parent waits for the child, the child waits for someone to read its pipe."
    effort = "simple"
    sketch_title = "Drain the pipes, or send them to DEVNULL"
    brief = "a subprocess with `stdout=PIPE` waited on without reading the pipe"
    fixes_offered = (
        (
            (
                "`communicate()` before the wait when none of the output is read (subprocess, "
                "asyncio); else every unread pipe of that process to `DEVNULL`"
            ),
            "safe",
        ),
    )
    rank = 9

    def check(self, module: ModuleFacts) -> Iterator[Detection]:
        return _check(self, module)

    def fix(self, detection: Detection, module: ModuleFacts, context: FixContext) -> Fix | None:
        from conc_lsp.fixes import pipes  # libcst loads only when fixing (start-up cost)

        evidence = detection.evidence
        if not isinstance(evidence, UndrainedPipe) or evidence.handed_to_tests:
            return None  # a fixture's pipes: the tests may read them
        return pipes.drain_pipes(
            detection.finding, module, context, evidence.variable, evidence.start, evidence.streams
        )

    def trace(
        self, program: Program, b: TraceBuilder, function: FunctionFacts, detection: Detection
    ) -> Trace | None:
        if isinstance(detection.evidence, UndrainedPipe):
            return _trace(program, b, function, detection.evidence)
        return None

    def words(self, evidence: Evidence, trace: Trace) -> Words:
        s = trace.steps_text
        return Words(
            f"The pipes are read while waiting, so the child of {s('full')} never blocks and "
            f"{s('hang')} cannot happen.",
            "`communicate()` keeps the whole output in memory; DEVNULL drops it.",
            "Very large output: stream it instead of buffering it.",
        )


RULE = UndrainedPipeRule()
