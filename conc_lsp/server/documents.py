"""Open documents: their text as lines, kept in step with the editor's edits."""

from __future__ import annotations

from dataclasses import dataclass, field

from conc_lsp.analysis.model import Anchor, Hint, HintKey, Resolution, anchor_keys
from conc_lsp.analysis.parse import Analyzer
from conc_lsp.analysis.text import changed_span, line_ending, split_lines, units_to_codepoint


@dataclass(slots=True)
class Document:
    """One open document and the analysis that follows its edits."""

    uri: str
    version: int | None
    lines: list[str]
    analyzer: Analyzer
    newline: str = "\n"  # the document's line break, for text we insert
    # What the background resolver found, by hint key (valid across edits
    # elsewhere: a key names the function, kind, code and rank of a hint).
    resolutions: dict[HintKey, Resolution] = field(default_factory=dict)
    resolved_version: int | None = None  # the version they were computed for
    resolution_generation: int = 0  # bumped at each new result
    _keys: dict[Anchor, HintKey] | None = None

    def resolution_of(self, hint: Hint) -> Resolution | None:
        """What resolving this checkpoint's callee found, if it has been resolved."""
        if not self.resolutions or not hint.kind.is_checkpoint:
            return None
        if self._keys is None:
            self._keys = anchor_keys(self.analyzer.analysis().hints)
        key = self._keys.get((hint.line, hint.column, hint.kind))
        return self.resolutions.get(key) if key is not None else None

    @classmethod
    def open(cls, uri: str, version: int | None, text: str) -> Document:
        lines = split_lines(text)
        analyzer = Analyzer(lines)
        # Analyse now: if the user breaks the file before any request, its
        # last good hints must already exist to be carried through the edits.
        analyzer.refresh()
        return cls(uri, version, lines, analyzer, line_ending(text))

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
        lines = self.lines
        new_lines = split_lines(text)
        head = lines[start[0]][: start[1]]
        tail = lines[end[0]][end[1] :]
        replacement = list(new_lines)
        replacement[0] = head + replacement[0]
        replacement[-1] = replacement[-1] + tail
        updated = lines[: start[0]] + replacement + lines[end[0] + 1 :]
        self.analyzer.apply_edit(start, end, new_lines, updated)
        self.lines = updated
        self._keys = None

    def replace_all(self, text: str) -> None:
        """A full-text change, turned into the smallest line edit for the analysis."""
        old = self.lines
        new = split_lines(text)
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
        self.edit(start, end, "\n".join(inserted))
        if self.lines != new:  # never let the copy drift from the editor's text
            self.lines = new
            self.analyzer = Analyzer(new)
            self._keys = None
