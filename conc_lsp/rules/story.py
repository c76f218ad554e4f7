"""The vocabulary of a rule's part of the concurrency report: race traces
(two tasks interleaved step by step), proposed fixes, and the helpers that
build them from a finding's evidence.

Line references are kept as ``[[L12]]`` tokens in the texts; the report's
renderer turns them into links or plain ``L12``.
"""

from __future__ import annotations

import ast
import io
import re
import tokenize
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from conc_lsp.analysis.events import Event, EventKind, FunctionFacts
from conc_lsp.analysis.model import TextEdit
from conc_lsp.analysis.program import ACCESS_KINDS, INITIALISERS, Program
from conc_lsp.analysis.reach import function_parents
from conc_lsp.analysis.text import apply_edits

CODE_WIDTH = 72


def ref(line: int) -> str:
    return f"[[L{line + 1}]]"


def code_excerpt(text: str) -> str:
    text = " ".join(text.split())
    if len(text) > CODE_WIDTH:
        text = text[: CODE_WIDTH - 3] + "..."
    return text


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


class TraceBuilder:
    def __init__(self, module: Program) -> None:
        self.module = module
        self.steps: list[Step] = []
        self.roles: dict[str, int] = {}

    def add(
        self, task: str, line: int | None, text: str, role: str | None = None, code: bool = True
    ) -> int:
        number = len(self.steps) + 1
        source = None
        if line is not None and code:
            source = strip_comment(self.module.source(line))
            if source.endswith(("(", "[", "{", "\\")):
                source += " ..."
            source = code_excerpt(source)
        self.steps.append(Step(number, task, line, source, text))
        if role is not None:
            self.roles[role] = number
        return number

    def build(self, tasks: list[str], window: tuple[int, int] | None, window_text: str) -> Trace:
        return Trace(tasks, self.steps, window, window_text, self.roles)


def entry_words(module: Program, access: Event | None, *, gone: bool) -> str:
    if access is None:
        return ""
    target = f"`{access.state}[{access.key}]`" if access.key else f"`{access.state}`"
    if gone:
        return f"{target} → gone ({'KeyError' if access.key else 'changed'})"
    if access.kind is EventKind.WRITE:
        return f"writes {target}, which STILL EXISTS from before"
    return f"{target} → STILL EXISTS"


def state_text(event: Event) -> str:
    return f"`{event.state}[{event.key}]`" if event.key else f"`{event.state}`"


def first_event(events: Iterable[Event]) -> Event | None:
    return next(iter(events), None)


def other_function(
    module: Program, exclude: FunctionFacts, states: list[str]
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


def first_sentence(text: str) -> str:
    return text.split(": ", 1)[0] if len(text) > 120 else text


def checkpoint_step(module: Program, checkpoint: Event) -> str:
    """`CHECKPOINT`, or `exit of `async with x` → CHECKPOINT` for the exit of a block."""
    if checkpoint.exit:
        text = strip_comment(module.source(checkpoint.location.line))
        head = text.rstrip(":") if text.startswith("async with") else text
        return f"exit of `{code_excerpt(head)}` → CHECKPOINT"
    return "CHECKPOINT"


def strip_comment(text: str) -> str:
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


def act_words(event: Event) -> str:
    target = state_text(event)
    if event.kind is EventKind.READ:
        return f"uses {target}"
    if event.removal:
        return f"removes {target}" if event.key else f"takes an item out of {target}"
    if event.method:
        return f"changes {target}"
    return f"writes {target}"


def renumber(b: TraceBuilder) -> None:
    mapping = {}
    for index, step in enumerate(b.steps, 1):
        mapping[step.number] = index
        step.number = index
    b.roles = {role: mapping[number] for role, number in b.roles.items() if number in mapping}


# Past this many lines a diff compares only the lines around its edits: a
# report's diffs cost the size of their edits, not of the module each.
WHOLE_DIFF_LINES = 1000
_HUNK = re.compile(r"^@@ -(\d+)(,\d+)? \+(\d+)(,\d+)? @@$")


def unified_diff(lines: list[str], edits: Iterable[TextEdit], name: str) -> str:
    """The change that ``edits`` make, as a unified diff of ``name``."""
    edits = list(edits)
    first, offset = 0, 0
    if len(lines) > WHOLE_DIFF_LINES and edits:
        # 2 lines of context and 1 to spare on each side of the edited lines.
        first = max(0, min(edit.start[0] for edit in edits) - 3)
        stop = min(len(lines), max(edit.end[0] for edit in edits) + 4)
        offset, lines = first, lines[first:stop]
        edits = [
            TextEdit(
                (edit.start[0] - first, edit.start[1]),
                (edit.end[0] - first, edit.end[1]),
                edit.text,
            )
            for edit in edits
        ]
    new = apply_edits(lines, edits)
    import difflib  # only for the report's sketches (start-up cost of `check`)

    diff = difflib.unified_diff(
        lines, new, fromfile=f"a/{name}", tofile=f"b/{name}", n=2, lineterm=""
    )
    if offset:
        diff = (_shifted(line, offset) for line in diff)
    return "\n".join(diff)


def _shifted(line: str, offset: int) -> str:
    """A hunk header of a diff of lines ``offset:``, numbered as in the whole file."""
    match = _HUNK.match(line)
    if match is None:
        return line
    old, old_length, new, new_length = match.groups()
    return f"@@ -{int(old) + offset}{old_length or ''} +{int(new) + offset}{new_length or ''} @@"


def sketch_diff(
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


def statement_of(function: FunctionFacts, node: ast.AST) -> ast.stmt | None:
    """The statement that holds ``node``."""
    parents = function_parents(function)
    while node in parents and not isinstance(node, ast.stmt):
        node = parents[node][0]
    return node if isinstance(node, ast.stmt) else None


def indentation(line: str) -> str:
    return line[: len(line) - len(line.lstrip())]


def delete_statements(
    function: FunctionFacts, statements: list[ast.stmt], lines: list[str]
) -> list[TextEdit]:
    """Edits that delete whole statements; a block left empty gets a `pass`."""
    parents = function_parents(function)
    doomed = {id(statement) for statement in statements}
    edits = []
    for statement in statements:
        first = statement.lineno - 1
        last = (statement.end_lineno or statement.lineno) - 1
        parent = parents.get(statement)
        block: list[ast.stmt] = getattr(parent[0], parent[1], []) if parent else []
        if block and all(id(other) in doomed for other in block) and block[0] is statement:
            text = f"{indentation(lines[first])}pass"
            edits.append(TextEdit((first, 0), (last, len(lines[last])), text))
        else:
            edits.append(TextEdit((first, 0), (last + 1, 0), ""))
    return edits
