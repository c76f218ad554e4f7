"""Open documents: their text as lines, kept in step with the editor's edits."""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import count

from conc_lsp.analysis.model import Anchor, Hint, HintKey, Resolution, anchor_keys
from conc_lsp.analysis.parse import Analyzer
from conc_lsp.analysis.text import (
    LINE_BREAK,
    changed_span,
    line_ending,
    split_lines,
    units_to_codepoint,
)

# Every text a document ever holds gets a number of its own, across documents:
# a client may reuse a version (or open a document twice), a revision never repeats.
_revisions = count(1)


@dataclass(slots=True)
class Document:
    """One open document and the analysis that follows its edits."""

    uri: str
    version: int | None
    lines: list[str]
    analyzer: Analyzer
    newline: str = "\n"  # the document's line break, for text we insert
    # The break after each line but the last ("\r\n", "\r" or "\n"): an edit
    # can join a "\r" and a "\n" into one break, as the client counts them.
    endings: list[str] = field(default_factory=list)
    revision: int = field(default_factory=lambda: next(_revisions))
    # What the background resolver found, by hint key (valid across edits
    # elsewhere: a key names the function, kind, code and rank of a hint).
    resolutions: dict[HintKey, Resolution] = field(default_factory=dict)
    resolved_version: int | None = None  # the version they were computed for
    resolution_generation: int = 0  # bumped at each new result
    resolving: bool = False  # a pass over this text is scheduled, running or not finished
    _keys: dict[Anchor, HintKey] | None = None

    def resolution_of(self, hint: Hint) -> Resolution | None:
        """What resolving this checkpoint's callee found, if it has been resolved."""
        if not self.resolutions or not hint.kind.is_checkpoint:
            return None
        if self._keys is None:
            self._keys = anchor_keys(self.analyzer.analysis().hints)
        key = self._keys.get((hint.line, hint.column, hint.kind))
        return self.resolutions.get(key) if key is not None else None

    def resolution_status(self, hint: Hint) -> str:
        """For hover: "resolved", "resolving..." (a pass is on its way to this
        checkpoint) or "not followed" (passes are done: its callee was not found,
        or resolution is off)."""
        if self.resolution_of(hint) is not None:
            return "resolved"
        return "resolving..." if self.resolving else "not followed"

    @property
    def stamp(self) -> tuple[int, int]:
        """What computed results (diagnostics) depend on: the text and the resolutions."""
        return (self.revision, self.resolution_generation)

    @classmethod
    def open(cls, uri: str, version: int | None, text: str) -> Document:
        lines = split_lines(text)
        analyzer = Analyzer(lines, keep_trees=True)
        # Analyse now: if the user breaks the file before any request, its
        # last good hints must already exist to be carried through the edits.
        analyzer.refresh()
        return cls(uri, version, lines, analyzer, line_ending(text), LINE_BREAK.findall(text))

    def text(self) -> str:
        """The whole text, with each line's own line break."""
        parts: list[str] = []
        for line, ending in zip(self.lines, [*self.endings, ""], strict=True):
            parts += (line, ending)
        return "".join(parts)

    def codepoint(self, line: int, units: int, encoding: str) -> tuple[int, int]:
        """A client position as (line, code-point column), clamped to the text."""
        if line < 0:
            return (0, 0)
        if line >= len(self.lines):
            last = len(self.lines) - 1
            return (last, len(self.lines[last]))
        return (line, units_to_codepoint(self.lines[line], units, encoding))

    def edit(
        self,
        start: tuple[int, int],
        end: tuple[int, int],
        text: str,
    ) -> None:
        """Replace the text between two (line, code-point) positions."""
        if end < start:
            start, end = end, start
        start, end, text = self._joined(start, end, text)
        self._replace(start, end, split_lines(text))
        self.endings[start[0] : end[0]] = LINE_BREAK.findall(text)

    def _joined(
        self, start: tuple[int, int], end: tuple[int, int], text: str
    ) -> tuple[tuple[int, int], tuple[int, int], str]:
        """The same edit, widened so that it never leaves a "\r" just before a "\n".

        A "\r" ending the line before ``start`` followed by a "\n" (inserted,
        or the break after ``end`` when nothing is) makes one "\r\n"; so does
        a "\r" at the end of what precedes ``end`` and a "\n" break after it.
        The widened edit takes those breaks in, and its text splits into lines
        exactly as the client's text does.
        """
        lines, endings = self.lines, self.endings
        if end[1] >= len(lines[end[0]]) and end[0] < len(endings):
            after_end = endings[end[0]]
        else:
            after_end = ""
        follows_cr = start[1] == 0 and start[0] > 0 and endings[start[0] - 1] == "\r"
        if follows_cr and (text or after_end).startswith("\n"):
            start = (start[0] - 1, len(lines[start[0] - 1]))
            text = "\r" + text
        if text.endswith("\r") and after_end == "\n":
            end = (end[0] + 1, 0)
            text += "\n"
        return start, end, text

    def _replace(self, start: tuple[int, int], end: tuple[int, int], new_lines: list[str]) -> None:
        """Replace the text between two positions by lines (without their breaks)."""
        lines = self.lines
        head = lines[start[0]][: start[1]]
        tail = lines[end[0]][end[1] :]
        replacement = list(new_lines)
        replacement[0] = head + replacement[0]
        replacement[-1] = replacement[-1] + tail
        updated = lines[: start[0]] + replacement + lines[end[0] + 1 :]
        self.analyzer.apply_edit(start, end, new_lines, updated)
        self.lines = updated
        self._keys = None
        self.revision = next(_revisions)

    def replace_all(self, text: str) -> None:
        """A full-text change, turned into the smallest line edit for the analysis."""
        old = self.lines
        new = split_lines(text)
        self.endings = LINE_BREAK.findall(text)
        prefix, old_end, new_end = changed_span(old, new)
        if prefix == len(old) == len(new):
            return
        # Replace whole lines [prefix, old_end) by the new ones.
        new_middle = new[prefix:new_end]
        if old_end > prefix:
            start = (prefix, 0)
            end = (old_end - 1, len(old[old_end - 1]))
            inserted = new_middle if new_middle else [""]
            if not new_middle:
                # Deleting whole lines: take the line break before them too.
                if prefix > 0:
                    start = (prefix - 1, len(old[prefix - 1]))
                    inserted = [""]
                elif old_end < len(old):
                    end = (old_end, 0)
        else:  # pure insertion of lines before line `prefix`
            if prefix < len(old):
                start = end = (prefix, 0)
                inserted = [*new_middle, ""]
            else:
                start = end = (prefix - 1, len(old[prefix - 1]))
                inserted = ["", *new_middle]
        self._replace(start, end, inserted)
        if self.lines != new:  # never let the copy drift from the editor's text
            self.lines = new
            self.analyzer = Analyzer(new, keep_trees=True)
            self._keys = None
