"""A differential random-edit fuzzer for the document model (issue 13).

A simulated client holds the true text and sends ``didChange`` notifications
(one to three changes each, ranges in UTF-16 or UTF-8 units, now and then a
full-text change) to a ``Document``, exactly as the server applies them.
After every notification the document's text must equal the client's, byte
for byte; and whenever that text parses, its inlay hints and diagnostics
must equal those of a document freshly opened on the same text.

The edits are biased to structure: joins of "\\r" and "\\n", decorators and
class bodies split, `'''` and brackets opened and closed, lines deleted
whole. Broken texts are undone or repaired the way a user would.

Used by tests/test_incremental.py (fixed seeds, a short run) and by
benchmarks/fuzz_edits.py (a long run).
"""

from __future__ import annotations

import random
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from lsprotocol import types

from conc_lsp.analysis.text import codepoint_to_units
from conc_lsp.diagnose import check_lines
from conc_lsp.server import diagnostics, features
from conc_lsp.server.documents import Document
from tests.rule_settings import SEED_SETTINGS

LINE_BREAK = re.compile(r"\r\n|\r|\n")
FIXTURES = Path(__file__).parent / "fixtures" / "hints"
WHOLE = types.Range(
    start=types.Position(line=0, character=0),
    end=types.Position(line=1_000_000, character=0),
)

ACM_DOC = (
    "import trio\n"
    "from contextlib import asynccontextmanager as acm\n"
    "\n"
    "@acm\n"
    "async def opened(ev):\n"
    "    try:\n"
    "        yield 1\n"
    "    finally:\n"
    "        await trio.sleep(0)  # é\n"
    "\n"
    "        await ev.wait()\n"
    "\n"
    "\n"
    "class Pool:\n"
    '    """🐍 pool"""\n'
    "\n"
    "    async def get(self, lock):\n"
    "        async with lock:\n"
    "            await trio.sleep(1)\n"
    "\n"
    "    @acm\n"
    "    async def slot(self):\n"
    "        yield self\n"
    "        await trio.sleep(2)\n"
)

SNIPPETS = [
    "",
    "\r",
    "\n",
    "\r\n",
    "\n\r",
    "x",
    "(",
    ")",
    ":",
    "#",
    "'''",
    '"',
    "    ",
    "é🐍",
    "x = (\n",
    "x = (\r",
    "@acm\n",
    "@acm\r\n",
    "class C:\n",
    "class D:\r    ",
    "async def g():\n",
    "\n    await trio.sleep(0)",
    "\r\n        await ev.wait()",
    "await trio.sleep(3)",
    "try:\n",
    "finally:\n",
    "else:\n",
    "\n\n",
    "    yield\n",
]


def client_lines(text: str) -> list[str]:
    return LINE_BREAK.split(text)


def line_offsets(text: str) -> list[int]:
    """The offset of each line's first character in ``text``."""
    return [0] + [match.end() for match in LINE_BREAK.finditer(text)]


@dataclass
class Outcome:
    """What one run found."""

    notifications: int = 0
    compared: int = 0  # parsing states whose hints and diagnostics were compared
    drifts: list[str] = field(default_factory=list)


class Fuzzer:
    def __init__(self, seed: int, encoding: str, source: str, check_diagnostics: bool) -> None:
        self.rnd = random.Random(seed)
        self.encoding = encoding
        self.check_diagnostics = check_diagnostics
        self.settings = SEED_SETTINGS
        self.text = source
        self.good = source
        # The inverse of each notification since the text last parsed.
        self.undo_stack: list[list[tuple[int, int, str]]] = []
        self.document = Document.open("file:///fuzz.py", 1, source)
        self.version = 1

    # -- the client's side ------------------------------------------------

    def _position(self, offset: int) -> tuple[int, int]:
        """(line, code-point column) of an offset that is not inside a line break."""
        starts = line_offsets(self.text)
        line = max(index for index, start in enumerate(starts) if start <= offset)
        return line, offset - starts[line]

    def _valid_offset(self, offset: int) -> int:
        """Step back out of a "\\r\\n" pair: LSP cannot point between them."""
        offset = max(0, min(offset, len(self.text)))
        if 0 < offset < len(self.text) and self.text[offset - 1 : offset + 1] == "\r\n":
            offset -= 1
        return offset

    def _pick_offset(self) -> int:
        rnd, text = self.rnd, self.text
        roll = rnd.random()
        breaks = [match.start() for match in LINE_BREAK.finditer(text)]
        if roll < 0.3 and breaks:  # just before or after a line break
            where = rnd.choice(breaks)
            return self._valid_offset(where + rnd.choice((0, 1, 2)))
        if roll < 0.55:  # at a line start (decorators, class bodies)
            return rnd.choice(line_offsets(text))
        return self._valid_offset(rnd.randint(0, len(text)))

    def _change(self) -> tuple[int, int, str]:
        rnd = self.rnd
        start = self._pick_offset()
        roll = rnd.random()
        if roll < 0.45:
            end = start
        elif roll < 0.7:
            end = self._valid_offset(start + rnd.randint(1, 3))
        elif roll < 0.85:  # a whole line or two, with their breaks
            starts = line_offsets(self.text)
            line = self._position(start)[0]
            start = starts[line]
            last = min(line + rnd.randint(1, 2), len(starts) - 1)
            end = starts[last] if last > line else len(self.text)
        else:
            end = self._valid_offset(start + rnd.randint(1, 40))
        new = rnd.choice(SNIPPETS) if rnd.random() < 0.85 else ""
        return start, end, new

    def _lsp_change(self, start: int, end: int, new: str) -> tuple[types.Range, str]:
        lines = client_lines(self.text)

        def position(offset: int) -> types.Position:
            line, column = self._position(offset)
            units = codepoint_to_units(lines[line], column, self.encoding)
            return types.Position(line=line, character=units)

        return types.Range(start=position(start), end=position(end)), new

    # -- one notification -------------------------------------------------

    def step(self, outcome: Outcome) -> None:
        """One notification: an edit, or, while the text is broken, maybe an
        undo of the last breaking edit (several breaking edits are undone one
        by one, last first, as the editor's undo does) or a paste of the last
        good text."""
        rnd = self.rnd
        self.version += 1
        roll = rnd.random()
        if self.undo_stack and roll < 0.5:
            self._send(self.undo_stack.pop())
        elif len(self.undo_stack) >= 4 and roll < 0.6:
            self._full_text(self.good)
            self.undo_stack.clear()
        elif len(self.undo_stack) >= 4:  # select all, paste the last good text
            self._send([(0, len(self.text), self.good)])
            self.undo_stack.clear()
        elif roll > 0.98:  # a full-text change
            self._full_text(self.text if roll > 0.99 else self.good)
            self.undo_stack.clear()
        else:
            changes = [self._change() for _ in range(rnd.choice((1, 1, 1, 2, 3)))]
            self.undo_stack.append(self._send(changes)[::-1])
        outcome.notifications += 1
        self._compare(outcome)
        if self._parses(self.text):
            self.good = self.text
            self.undo_stack.clear()

    def _send(self, changes: list[tuple[int, int, str]]) -> list[tuple[int, int, str]]:
        """Apply changes in order, each against the text the previous one left;
        return the changes that undo each."""
        undo = []
        for start, end, new in changes:
            start, end = self._valid_offset(start), self._valid_offset(end)
            start, end = min(start, end), max(start, end)
            range_, text = self._lsp_change(start, end, new)
            self._apply_server(range_, text)
            undo.append((start, start + len(new), self.text[start:end]))
            self.text = self.text[:start] + new + self.text[end:]
        return undo

    def _full_text(self, new: str) -> None:
        self.document.replace_all(new)
        self.document.version = self.version
        self.text = new

    def _apply_server(self, range_: types.Range, text: str) -> None:
        """What the server's didChange handler does with one partial change."""
        document = self.document
        start = document.codepoint(range_.start.line, range_.start.character, self.encoding)
        end = document.codepoint(range_.end.line, range_.end.character, self.encoding)
        document.edit(start, end, text)
        document.version = self.version

    # -- the check --------------------------------------------------------

    @staticmethod
    def _parses(text: str) -> bool:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # "invalid decimal literal" and the like
                compile(text, "<fuzz>", "exec", dont_inherit=True)
        except (SyntaxError, ValueError):
            return False
        return True

    def _compare(self, outcome: Outcome) -> None:
        document = self.document
        where = f"notification {outcome.notifications} ({self.encoding})"
        if document.text() != self.text:
            outcome.drifts.append(f"{where}: text {document.text()!r} != {self.text!r}")
            # Start again from the client's text, to go on finding other drifts.
            self.document = Document.open("file:///fuzz.py", self.version, self.text)
            return
        analysis = document.analyzer.analysis()  # as a request after each keystroke does
        if not self._parses(self.text):
            for hint in analysis.hints:  # carried hints still point into the text
                if not (
                    0 <= hint.line < len(document.lines)
                    and 0 <= hint.column <= len(document.lines[hint.line])
                ):
                    outcome.drifts.append(f"{where}: hint outside the text: {hint}")
            return
        fresh = Document.open("file:///fresh.py", self.version, self.text)
        if analysis.problems:
            outcome.drifts.append(f"{where}: a parsing text has problems: {self.text!r}")
        mine = features.inlay_hints(document, WHOLE, self.settings, self.encoding)
        theirs = features.inlay_hints(fresh, WHOLE, self.settings, self.encoding)
        if _hint_summary(mine) != _hint_summary(theirs):
            outcome.drifts.append(f"{where}: hints differ for {self.text!r}")
        if self.check_diagnostics:
            found = check_lines(list(document.lines), self.settings).findings
            expected = check_lines(client_lines(self.text), self.settings).findings
            mine_d = diagnostics.to_diagnostics(found, document.lines, "u", self.encoding)
            theirs_d = diagnostics.to_diagnostics(expected, fresh.lines, "u", self.encoding)
            if _diagnostic_summary(mine_d) != _diagnostic_summary(theirs_d):
                outcome.drifts.append(f"{where}: diagnostics differ for {self.text!r}")
        outcome.compared += 1


def _hint_summary(found: list[types.InlayHint]) -> list[tuple[int, int, str]]:
    return sorted((hint.position.line, hint.position.character, str(hint.label)) for hint in found)


def _diagnostic_summary(found: list[types.Diagnostic]) -> list[tuple[object, ...]]:
    return sorted(
        (
            item.range.start.line,
            item.range.start.character,
            item.range.end.line,
            item.range.end.character,
            str(item.code),
            item.message,
        )
        for item in found
    )


def sources() -> list[str]:
    """The documents the runs start from: LF, CRLF, CR and mixed endings."""
    contexts = (FIXTURES / "contexts.py").read_text(encoding="utf-8")
    mixed = "".join(
        line + ("\r\n", "\n", "\r")[number % 3]
        for number, line in enumerate(client_lines(ACM_DOC)[:-1])
    )
    return [ACM_DOC, ACM_DOC.replace("\n", "\r\n"), ACM_DOC.replace("\n", "\r"), mixed, contexts]


def run(seed: int, encoding: str, notifications: int, check_diagnostics: bool = True) -> Outcome:
    """One run from one of the sources, chosen by the seed."""
    all_sources = sources()
    source = all_sources[seed % len(all_sources)]
    fuzzer = Fuzzer(seed, encoding, source, check_diagnostics)
    outcome = Outcome()
    while outcome.notifications < notifications:
        fuzzer.step(outcome)
    return outcome
