"""Diagnostics that survive a syntax error, as the hints do.

The rules see only the code that parses: while a function is being typed
and does not parse, a check finds nothing in it, and its diagnostics would
vanish on every keystroke and come back once it parses again. So the server
keeps each document's last findings, moves them through every edit exactly
as the analysis moves the hints of a broken chunk (an edit that replaces
where a finding starts or ends drops it), and while a region does not parse it shows the kept
findings that lie in it beside the new ones.
"""

from __future__ import annotations

from dataclasses import replace

from conc_lsp.analysis.chunks import move_position
from conc_lsp.analysis.model import Finding, Location
from conc_lsp.analysis.parse import Analyzer

Position = tuple[int, int]
Region = tuple[int, int]  # 0-based lines, end excluded


def unchecked_regions(lines: list[str]) -> list[Region]:
    """The lines the rules do not see in a text that does not parse (runs in the
    worker process): the pieces ``diagnose.module_tree`` leaves out, those that
    do not parse and methods parsed apart from their class. A fresh analysis,
    as the check's: the document's own, which knows the text's history, may cut
    the broken region shorter."""
    analyzer = Analyzer(lines)
    analyzer.analysis()
    return [
        (chunk.start, chunk.end)
        for chunk in analyzer.chunks
        if chunk.problem is not None or chunk.indent
    ]


def _moved_location(
    where: Location, start: Position, end: Position, new_lines: list[str]
) -> Location | None:
    first = move_position((where.line, where.column), start, end, new_lines)
    last = move_position((where.end_line, where.end_column), start, end, new_lines)
    if first is None or last is None:
        return None
    return Location(first[0], first[1], last[0], last[1])


def moved(finding: Finding, start: Position, end: Position, new_lines: list[str]) -> Finding | None:
    """Where ``finding`` lands after the text between ``start`` and ``end``
    became ``new_lines``; None if the edit replaced where it starts or ends."""
    location = _moved_location(finding.location, start, end, new_lines)
    if location is None:
        return None
    related = []
    for item in finding.related:
        place = _moved_location(item.location, start, end, new_lines)
        if place is not None:
            related.append(replace(item, location=place))
    return replace(finding, location=location, related=tuple(related))


def _key(finding: Finding) -> tuple[str, int, int, str]:
    where = finding.location
    return (finding.code, where.line, where.column, finding.message)


class KeptFindings:
    """The last findings of each open document, kept in step with its text."""

    def __init__(self) -> None:
        self._by_uri: dict[str, list[Finding]] = {}

    def edited(self, uri: str, start: Position, end: Position, new_lines: list[str]) -> None:
        """The document's text between ``start`` and ``end`` became ``new_lines``."""
        kept = self._by_uri.get(uri)
        if not kept:
            return
        self._by_uri[uri] = [
            found for finding in kept if (found := moved(finding, start, end, new_lines))
        ]

    def merged(self, uri: str, found: list[Finding], unchecked: list[Region]) -> list[Finding]:
        """``found`` (the check of the current text) and, inside each region the
        check could not see, the kept findings; remembered for the next edits."""
        broken = unchecked
        seen = {_key(finding) for finding in found}
        carried = [
            finding
            for finding in self._by_uri.get(uri, [])
            if any(first <= finding.location.line < end for first, end in broken)
            and _key(finding) not in seen
        ]
        result = sorted(
            [*found, *carried],
            key=lambda f: (f.location.line, f.location.column, f.code),
        )
        self._by_uri[uri] = result
        return result

    def forget(self, uri: str | None = None) -> None:
        """Drop one document's findings (closed), or every document's (new settings)."""
        if uri is None:
            self._by_uri.clear()
        else:
            self._by_uri.pop(uri, None)
