"""The fixes' toolbox: one function's source parsed by libcst with its
indentation kept, places of statements by line, the library's and the
logger's spelling, and the minimal text edit of a transformed function."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import libcst as cst
from libcst.metadata import CodeRange, MetadataWrapper, PositionProvider

from conc_lsp.analysis.events import EventKind, FunctionFacts, ModuleFacts
from conc_lsp.analysis.library_choice import function_library, single
from conc_lsp.analysis.model import Finding, Fix, Location, TextEdit
from conc_lsp.analysis.text import changed_span
from conc_lsp.fixes.context import FixContext

HEADER = "if 1:\n"  # lets libcst parse an indented function with its indentation kept


@dataclass(slots=True)
class Source:
    """One function's source, parsed by libcst with its original indentation."""

    first: int  # first line (0-based, decorators included)
    end: int  # exclusive
    wrapped: bool  # parsed under HEADER
    module: cst.Module
    positions: dict[cst.CSTNode, CodeRange]
    unit: str  # the indentation step of the function's body

    def line_of(self, node: cst.CSTNode) -> int:
        """0-based file line of a node's start."""
        return self.positions[node].start.line - 1 - (1 if self.wrapped else 0) + self.first

    def end_line_of(self, node: cst.CSTNode) -> int:
        return self.positions[node].end.line - 1 - (1 if self.wrapped else 0) + self.first

    def edit(self, new_module: cst.Module, lines: list[str]) -> TextEdit | None:
        """The smallest whole-line edit that turns the function into ``new_module``'s."""
        code = new_module.code
        if self.wrapped:
            code = code[len(HEADER) :]
        new = code.split("\n")
        if new and new[-1] == "":
            new.pop()
        old = lines[self.first : self.end]
        prefix, old_end, new_end = changed_span(old, new)
        old_changed = old[prefix:old_end]
        new_changed = new[prefix:new_end]
        if not old_changed and not new_changed:
            return None
        start_line = self.first + prefix
        if old_changed:
            last = start_line + len(old_changed) - 1
            return TextEdit((start_line, 0), (last, len(lines[last])), "\n".join(new_changed))
        # pure insertion of whole lines before start_line
        return TextEdit((start_line, 0), (start_line, 0), "\n".join(new_changed) + "\n")


def parse_function(function: FunctionFacts, lines: list[str]) -> Source | None:
    node = function.node
    first = min([node.lineno, *(d.lineno for d in node.decorator_list)]) - 1
    end = node.end_lineno or node.lineno
    text_lines = lines[first:end]
    indent = text_lines[0][: len(text_lines[0]) - len(text_lines[0].lstrip())]
    wrapped = bool(indent)
    text = (HEADER if wrapped else "") + "\n".join(text_lines) + "\n"
    try:
        module = cst.parse_module(text)
    except cst.ParserSyntaxError:
        return None
    wrapper = MetadataWrapper(module, unsafe_skip_copy=True)
    positions = dict(wrapper.resolve(PositionProvider))
    definition = first_function(module)
    if definition is None:
        return None
    unit = definition.body.indent if isinstance(definition.body, cst.IndentedBlock) else None
    return Source(first, end, wrapped, module, positions, unit or module.default_indent)


def function_source(
    finding: Finding, facts: ModuleFacts, context: FixContext
) -> tuple[FunctionFacts, Source] | None:
    """The function that holds a finding, and its libcst source."""
    function = facts.function(finding.function)
    if function is None:
        return None
    source = parse_function(function, context.lines)
    return (function, source) if source is not None else None


def first_function(module: cst.Module) -> cst.FunctionDef | None:
    for node in walk(module):
        if isinstance(node, cst.FunctionDef):
            return node
    return None


def walk(node: cst.CSTNode) -> Iterator[cst.CSTNode]:
    stack = [node]
    while stack:
        current = stack.pop()
        yield current
        stack.extend(reversed(current.children))


@dataclass(slots=True)
class Place:
    """A statement and the block that holds it."""

    block: cst.IndentedBlock | cst.Module
    index: int
    statement: cst.BaseStatement
    ancestors: list[tuple[cst.CSTNode, cst.IndentedBlock | cst.Module, int]]


def statement_places(
    block: cst.IndentedBlock | cst.Module,
    ancestors: list[tuple[cst.CSTNode, cst.IndentedBlock | cst.Module, int]],
) -> Iterator[Place]:
    body = block.body
    for index, statement in enumerate(body):
        if not isinstance(statement, cst.BaseStatement):
            continue
        yield Place(block, index, statement, ancestors)
        for child_block in blocks_of(statement):
            yield from statement_places(child_block, [*ancestors, (statement, block, index)])


def blocks_of(statement: cst.CSTNode) -> list[cst.IndentedBlock]:
    """The blocks a compound statement owns directly (elif chains included)."""
    blocks: list[cst.IndentedBlock] = []
    body = getattr(statement, "body", None)
    if isinstance(body, cst.IndentedBlock):
        blocks.append(body)
    orelse = getattr(statement, "orelse", None)
    if isinstance(orelse, cst.If):
        blocks.extend(blocks_of(orelse))
    elif orelse is not None and isinstance(getattr(orelse, "body", None), cst.IndentedBlock):
        blocks.append(orelse.body)
    for handler in getattr(statement, "handlers", ()):
        if isinstance(handler.body, cst.IndentedBlock):
            blocks.append(handler.body)
    finalbody = getattr(statement, "finalbody", None)
    if finalbody is not None and isinstance(finalbody.body, cst.IndentedBlock):
        blocks.append(finalbody.body)
    for case in getattr(statement, "cases", ()):
        if isinstance(case.body, cst.IndentedBlock):
            blocks.append(case.body)
    return blocks


def innermost(source: Source, line: int) -> Place | None:
    """The innermost statement whose lines contain file line ``line``."""
    best: Place | None = None
    for place in statement_places(source.module, []):
        contains = source.line_of(place.statement) <= line <= source.end_line_of(place.statement)
        if contains and (best is None or len(place.ancestors) >= len(best.ancestors)):
            best = place
    return best


def replace_block(
    module: cst.Module, block: cst.IndentedBlock | cst.Module, body: Sequence[cst.BaseStatement]
) -> cst.Module:
    if isinstance(block, cst.Module):
        return block.with_changes(body=list(body))
    new_block = block.with_changes(body=list(body))
    result = module.deep_replace(block, new_block)
    assert isinstance(result, cst.Module)
    return result


def leading_lines_of(statement: cst.CSTNode) -> Sequence[cst.EmptyLine]:
    """The comment and blank lines above a statement (kept above any wrapper)."""
    lines: Sequence[cst.EmptyLine] = getattr(statement, "leading_lines", ())
    return lines


def make_fix(title: str, safe: bool, edit: TextEdit | None) -> Fix | None:
    return Fix(title, safe, (edit,)) if edit is not None else None


# -- library spelling -------------------------------------------------------


def library(facts: ModuleFacts, function: FunctionFacts | None = None) -> tuple[str, str] | None:
    """(library, how the file names it): ('trio', 't') for `import trio as t`; the
    library the function runs under first (an asyncio function of a module that
    imports trio too gets asyncio's spelling; a method that names no library
    gets its class's)."""
    names = facts.table.names
    preferred = facts.library
    if function is not None and preferred is None:
        preferred = function_library(function.node, facts.table) or _class_library(facts, function)
        preferred = preferred or facts.library_of(function)
    order: tuple[str, ...] = ("trio", "anyio", "asyncio")
    if preferred in order:
        # Never another library's spelling: without `import <its library>`, no fix.
        order = (preferred,)
    for wanted in order:
        for alias, target in names.items():
            if target == wanted:
                return wanted, alias
    return None


def _class_library(facts: ModuleFacts, function: FunctionFacts) -> str | None:
    """The one library the other methods of ``function``'s class name, if any."""
    owner, dot, _ = function.qualname.rpartition(".")
    if not dot or owner.rpartition(".")[2] not in facts.classes:
        return None
    found = {
        library
        for method in facts.functions
        if method.qualname.rpartition(".")[0] == owner
        and (library := function_library(method.node, facts.table)) is not None
    }
    return single(frozenset(found))


def checkpoint_at(function: FunctionFacts, where: Location) -> object | None:
    for event in function.events:
        if event.kind is EventKind.CHECKPOINT and event.location == where:
            return event
    return None


# A logger used by name: not `actor.log.warning(...)`, which is an attribute.
LOGGER_USE = re.compile(r"(?<![\w.])(log|logger|_log|_logger|LOG|LOGGER)\.(?:warning|info|error)\(")
LOGGER_MADE = re.compile(r"^\s*(log|logger|_log|_logger)\s*=.*getLogger", re.MULTILINE)


def logger_name(context: FixContext) -> str | None:
    """The module's logger (`log`, `logger`, ...), found once per module: a
    name used or made like a logger that the module itself binds (a parameter
    `log` of some function is no logger of the module's)."""
    if context.logger is None:
        text = "\n".join(context.lines)
        context.logger = ""
        for match in (*LOGGER_USE.finditer(text), *LOGGER_MADE.finditer(text)):
            name = match.group(1)
            if _bound_at_module_level(name, text):
                context.logger = name
                break
    return context.logger or None


def _bound_at_module_level(name: str, text: str) -> bool:
    assigned = re.search(rf"^{name}\s*(?::[^=\n]*)?=(?!=)", text, re.MULTILINE)
    imported = re.search(rf"^(?:from\s+\S+\s+)?import\s+[^\n#]*\b{name}\b", text, re.MULTILINE)
    return assigned is not None or imported is not None


def binds_locally(function: FunctionFacts, name: str) -> bool:
    """``function`` has its own ``name`` (a parameter, an assignment): the
    module's logger is not what that name means there."""
    node = function.node
    arguments = node.args
    parameters = [*arguments.posonlyargs, *arguments.args, *arguments.kwonlyargs]
    parameters += [a for a in (arguments.vararg, arguments.kwarg) if a is not None]
    if any(parameter.arg == name for parameter in parameters):
        return True
    return any(
        isinstance(child, ast.Name) and child.id == name and isinstance(child.ctx, ast.Store)
        for child in ast.walk(node)
    )


def unused_name(base: str, text: str) -> str:
    name, number = base, 1
    while re.search(rf"\b{name}\b", text):
        number += 1
        name = f"{base}{number}"
    return name


def format_seconds(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)
