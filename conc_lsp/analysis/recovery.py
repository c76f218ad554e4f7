"""Recovery of a chunk that does not parse: the pieces of it that do, and the
rest, which keeps the hints of its last good parse moved through the edits
(the part of parse.py's Analyzer that cuts broken chunks)."""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from itertools import pairwise

from conc_lsp.analysis.chunks import Chunk, body_indent, class_name_of, dedented, statement_starts
from conc_lsp.analysis.fragments import syntax_problem
from conc_lsp.analysis.statement_edit import transferred

# How many further statement-looking lines a broken piece may swallow while
# we look for the end of a string or bracket that the heuristics split.
GREEDY_EXTENSION = 8
DEF_START = re.compile(r"@|(?:async\s+def|def|class)\b")


@dataclass(slots=True)
class _Parsed:
    start: int
    length: int
    tree: ast.Module
    lines: list[str]
    indent: str = ""
    prefix: str = ""


class Recovery:
    """What parse.py's Analyzer does with a chunk that does not parse."""

    lines: list[str]

    def _try_parse(
        self,
        start: int,
        end: int,
        indent: str = "",
        prefix: str = "",
        suffix: tuple[str, ...] = (),
    ) -> _Parsed | None:
        raise NotImplementedError

    def _recover(self, chunk: Chunk) -> list[_Parsed | Chunk]:
        """Split a chunk that does not parse into pieces that do and a rest that does not."""
        lines = self.lines[chunk.start : chunk.end]
        starts = statement_starts(lines) or [0]
        if starts[0] != 0:
            starts.insert(0, 0)
        pieces: list[_Parsed | Chunk] = []
        position = 0
        while position < len(starts):
            start = starts[position]
            region = None
            for extra in range(1, GREEDY_EXTENSION + 1):
                if position + extra > len(starts):
                    break
                end = starts[position + extra] if position + extra < len(starts) else len(lines)
                region = self._try_parse(chunk.start + start, chunk.start + end)
                if region is not None:
                    position += extra
                    break
            if region is not None:
                pieces.append(region)
                continue
            end = starts[position + 1] if position + 1 < len(starts) else len(lines)
            pieces.extend(self._broken_piece(chunk, start, end))
            position += 1
        return pieces

    def _broken_piece(self, chunk: Chunk, start: int, end: int) -> list[_Parsed | Chunk]:
        """A statement that does not parse; a class still yields its good methods."""
        absolute_start = chunk.start + start
        lines = self.lines[absolute_start : chunk.start + end]
        class_name = class_name_of(lines)
        indent = body_indent(lines) if class_name else None
        if not class_name or not indent:
            return [self._stale_piece(chunk, absolute_start, len(lines))]
        method_starts = [
            index
            for index in statement_starts(lines, indent)
            if DEF_START.match(lines[index][len(indent) :])
        ]
        boundaries = [0, *method_starts, len(lines)]
        pieces: list[_Parsed | Chunk] = []
        for first, last in pairwise(boundaries):
            if first == last:
                continue
            if first == 0:  # the class header: give it a body so it parses alone
                region = self._try_parse(
                    absolute_start, absolute_start + last, suffix=(f"{indent}pass",)
                )
            else:
                region = self._try_parse(
                    absolute_start + first,
                    absolute_start + last,
                    indent=indent,
                    prefix=f"{class_name}.",
                )
            if region is not None:
                pieces.append(region)
            else:
                pieces.append(
                    self._stale_piece(
                        chunk,
                        absolute_start + first,
                        last - first,
                        indent if first else "",
                        f"{class_name}." if first else "",
                    )
                )
        return pieces

    def _stale_piece(
        self, chunk: Chunk, start: int, length: int, indent: str = "", prefix: str = ""
    ) -> Chunk:
        carried = [
            hint.shifted(chunk.start - start)
            for hint in chunk.hints
            if start <= hint.line + chunk.start < start + length
        ]
        lines = dedented(self.lines[start : start + length], indent)
        if lines is None:
            lines, indent = self.lines[start : start + length], ""
        state = chunk.statements
        return Chunk(
            start,
            length,
            hints=carried,
            imports=list(chunk.imports),
            dirty=True,
            problem=syntax_problem(lines, len(indent)),
            stale=len(carried),
            indent=indent,
            prefix=prefix,
            statements=state and transferred(state, start - chunk.start, length),
        )
