"""The texts the resolver reads (open documents and files on disk), their
checkpoints, and what is already known of them."""

from __future__ import annotations

import ast
import os
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from conc_lsp.analysis.fragments import PARSE_ERRORS, parse_fragment
from conc_lsp.analysis.model import Hint, HintKey, HintKind, Resolution, anchor_keys
from conc_lsp.analysis.resolve_cache import Entry, FunctionVerdict, Stamps, text_hash
from conc_lsp.analysis.resolve_local import LocalNames
from conc_lsp.analysis.text import end_position, split_lines

if TYPE_CHECKING:
    import jedi


@dataclass(slots=True)
class Source:
    stamp: tuple[int, int] | str  # (mtime_ns, size) of a file, or its text for a buffer
    lines: list[str]
    tree: ast.Module | None
    functions: dict[int, ast.AsyncFunctionDef | ast.FunctionDef]  # by 1-based def line
    classes: dict[int, ast.ClassDef]
    content_hash: str
    script: jedi.Script | None = None
    verdicts: dict[int, FunctionVerdict] = field(default_factory=dict)
    # the other files each verdict was read from, as they were then
    verdict_stamps: dict[int, Stamps] = field(default_factory=dict)
    entry: Entry | None = None  # what the cache on disk holds for this text
    local: LocalNames | None = None  # its own async defs, found by the tree
    # A document's checkpoints resolved so far (None: not found), kept between
    # passes over the same text so that a pass goes on where the last stopped.
    done: dict[HintKey, Resolution | None] = field(default_factory=dict)
    done_files: set[str] = field(default_factory=set)
    done_stamps: Stamps = field(default_factory=dict)  # done_files, as they were then

    @property
    def is_buffer(self) -> bool:
        return isinstance(self.stamp, str)


class Sources(OrderedDict[str, Source]):
    """The texts kept in memory, most recently used last, at most ``kept``:
    files read from disk go first (they are read again when needed), then
    documents (the command line's, or an editor's not seen for long)."""

    def __init__(self, kept: int, save: Callable[[str, Source], None]) -> None:
        super().__init__()
        self.kept = kept
        self.save = save  # what is known of a text that leaves memory goes to disk

    def buffer(self, key: str, lines: list[str], text: str) -> tuple[Source, bool]:
        """A document's text (an editor's buffer): its source, and whether it
        replaced another text of the same document."""
        cached = self.get(key)
        if cached is not None and cached.stamp == text:
            self.move_to_end(key)
            return cached, False
        if cached is not None:
            self.save(key, cached)
        source = make_source(text, lines)
        self.keep(key, source)
        return source, cached is not None

    def file(self, path: str) -> Source | None:
        """A file's text: an open document's if there is one, else the disk's."""
        try:
            status = os.stat(path)
        except OSError:
            return None
        stamp = (status.st_mtime_ns, status.st_size)
        cached = self.get(path)
        if cached is not None and (cached.stamp == stamp or cached.is_buffer):
            self.move_to_end(path)
            return cached
        try:
            with open(path, encoding="utf-8", errors="replace") as handle:
                text = handle.read()
        except OSError:
            return None
        if cached is not None:
            self.save(path, cached)
        source = make_source(text, split_lines(text))
        source.stamp = stamp
        self.keep(path, source)
        return source

    def keep(self, key: str, source: Source) -> None:
        self[key] = source
        self.move_to_end(key)
        while len(self) > self.kept:
            oldest = next(
                (path for path, kept in self.items() if not kept.is_buffer), next(iter(self))
            )
            if oldest == key:
                break
            self.save(oldest, self.pop(oldest))


@dataclass(slots=True)
class DocumentResolution:
    """The resolved checkpoints of one document version."""

    resolutions: dict[HintKey, Resolution] = field(default_factory=dict)
    total: int = 0  # checkpoints in the document
    resolved: int = 0  # checkpoints whose callee jedi found
    complete: bool = True  # False when the time budget ran out
    seconds: float = 0.0
    # The checkpoints looked at so far (in this pass and the earlier ones over
    # the same text), found or not: a checkpoint not in it is still to come.
    attempted: set[HintKey] = field(default_factory=set)
    cached: bool = False  # read from the cache on disk, nothing inferred


def keyed_hints(hints: list[Hint]) -> dict[HintKey, Hint]:
    """Checkpoint hints by their key (for tests and the command line)."""
    keys = anchor_keys(hints)
    return {
        keys[(hint.line, hint.column, hint.kind)]: hint
        for hint in sorted(hints, key=lambda hint: (hint.line, hint.column))
        if hint.kind.is_checkpoint
    }


@dataclass(frozen=True, slots=True)
class Target:
    kind: HintKind
    line: int  # the hint's anchor: 0-based line, code-point column of its end
    column: int
    expression: ast.expr  # the awaited value, the context manager, the iterable


def checkpoint_nodes(tree: ast.Module, lines: list[str]) -> Iterable[Target]:
    def end_of(node: ast.expr) -> tuple[int, int]:
        return end_position(lines, node)

    for node in ast.walk(tree):
        if isinstance(node, ast.Await):
            yield Target(HintKind.AWAIT, *end_of(node), node.value)
        elif isinstance(node, ast.AsyncWith):
            for item in node.items:
                anchor = item.optional_vars if item.optional_vars is not None else item.context_expr
                yield Target(HintKind.ASYNC_WITH, *end_of(anchor), item.context_expr)
        elif isinstance(node, ast.AsyncFor) or (
            isinstance(node, ast.comprehension) and node.is_async
        ):
            yield Target(HintKind.ASYNC_FOR, *end_of(node.iter), node.iter)


def make_source(text: str, lines: list[str]) -> Source:
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
    return Source(text, lines, tree, functions, classes, text_hash(text))
