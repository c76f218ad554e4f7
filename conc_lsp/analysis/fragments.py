"""Parsing one fragment of a module (a top-level chunk, or the whole text):
the parse itself with the errors it may raise, the imports of its top level,
where a statement starts, and the problem a syntax error makes."""

from __future__ import annotations

import ast
import sys
import warnings

from conc_lsp.analysis.downlevel import downlevel
from conc_lsp.analysis.libraries import ImportFact, imports_of
from conc_lsp.analysis.model import SyntaxProblem

PARSE_ERRORS = (SyntaxError, ValueError, RecursionError, MemoryError, OverflowError)


def parse_fragment(lines: list[str]) -> ast.Module:
    """Parse lines as a module; raises one of PARSE_ERRORS when it does not.

    On an interpreter older than 3.12, syntax of 3.12+ (type parameters,
    PEP 701 f-strings) is rewritten first, keeping every position.
    """
    text = "\n".join(lines)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # invalid escape sequences and the like
        try:
            return ast.parse(text)
        except SyntaxError:
            if sys.version_info >= (3, 12):
                raise
            rewritten = downlevel(text)
            if rewritten is None:
                raise
            return ast.parse(rewritten)


def top_level_imports(tree: ast.Module) -> list[ImportFact]:
    """The imports of a module's body and of the ifs and trys in it, in source
    order (a fix names a module by its first alias)."""
    facts: list[ImportFact] = []
    pending: list[ast.stmt] = list(reversed(tree.body))  # popped in source order
    while pending:
        statement = pending.pop()
        if isinstance(statement, (ast.Import, ast.ImportFrom)):
            facts.extend(imports_of(statement))
        elif isinstance(statement, ast.If):
            pending.extend(reversed([*statement.body, *statement.orelse]))
        elif isinstance(statement, (ast.Try, ast.TryStar)):
            inside = [*statement.body]
            for handler in statement.handlers:
                inside.extend(handler.body)
            inside += [*statement.orelse, *statement.finalbody]
            pending.extend(reversed(inside))
    return facts


def statement_first_line(statement: ast.stmt) -> int:
    decorators = getattr(statement, "decorator_list", None)
    first = statement.lineno
    if decorators:
        first = min(first, decorators[0].lineno)
    return first - 1


def syntax_problem(lines: list[str], column_offset: int) -> SyntaxProblem:
    """Why ``lines`` do not parse, with lines relative to their first."""
    last = max(len(lines) - 1, 0)
    try:
        parse_fragment(lines)
    except SyntaxError as error:
        line = min(max((error.lineno or 1) - 1, 0), last)
        column = max((error.offset or 1) - 1, 0) + column_offset
        return SyntaxProblem(line, column, error.msg, 0, len(lines))
    except PARSE_ERRORS as error:
        return SyntaxProblem(0, 0, f"{type(error).__name__}: {error}", 0, len(lines))
    return SyntaxProblem(0, 0, "does not parse together with its neighbours", 0, len(lines))
