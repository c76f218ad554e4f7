"""Diagnostics survive a syntax error: while a function does not parse, its
last findings stay, moved through the edits like its hints; the rest of the
file is checked as usual, and once it parses the fresh check decides."""

from __future__ import annotations

import pytest
from lsprotocol import types
from pytest_lsp import LanguageClient

from conc_lsp.analysis.model import Finding, Location, Related, Severity
from conc_lsp.server.kept_findings import KeptFindings, moved, unchecked_regions

from .helpers import open_document, until_announced

TWO = """import trio


async def first(ev: trio.Event) -> None:
    try:
        pass
    finally:
        await ev.wait()


async def second(ev: trio.Event) -> None:
    try:
        pass
    finally:
        await ev.wait()
"""


def change(
    client: LanguageClient, uri: str, version: int, line: int, end_line: int, text: str
) -> None:
    """Replace whole lines line..end_line (exclusive) with ``text``."""
    client.text_document_did_change(
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=version),
            content_changes=[
                types.TextDocumentContentChangePartial(
                    range=types.Range(
                        start=types.Position(line=line, character=0),
                        end=types.Position(line=end_line, character=0),
                    ),
                    text=text,
                )
            ],
        )
    )


async def lines_once(
    client: LanguageClient, uri: str, expected: list[tuple[str, int]]
) -> list[tuple[str, int]]:
    """The (code, line) of the document's diagnostics once they equal ``expected``
    (pulled, or the pushes waited for), else the last seen."""

    async def current() -> list[tuple[str, int]]:
        if client.client_name == "neovim":  # type: ignore[attr-defined]
            report = await client.text_document_diagnostic_async(
                types.DocumentDiagnosticParams(text_document=types.TextDocumentIdentifier(uri=uri))
            )
            assert isinstance(report, types.RelatedFullDocumentDiagnosticReport)
            found = report.items
        else:
            found = client.diagnostics.get(uri, [])
        return sorted((str(d.code), d.range.start.line) for d in found)

    return await until_announced(client, current, lambda seen: seen == expected)


@pytest.mark.init_options({"select": ["CONC101"]})
async def test_findings_stay_while_a_function_does_not_parse(client: LanguageClient) -> None:
    uri = open_document(client, TWO)
    assert await lines_once(client, uri, [("CONC101", 7), ("CONC101", 14)]) == [
        ("CONC101", 7),
        ("CONC101", 14),
    ]
    # `first` stops parsing (an open bracket typed above its wait): its finding
    # stays, one line lower, like its hint
    change(client, uri, 2, 4, 4, "    x = (\n")
    expected = [("CONC101", 8), ("CONC101", 15)]
    assert await lines_once(client, uri, expected) == expected
    # `second` still parses and is checked as usual: its finding goes with its wait
    change(client, uri, 3, 15, 16, "        pass\n")
    assert await lines_once(client, uri, [("CONC101", 8)]) == [("CONC101", 8)]
    # an edit elsewhere in the broken function keeps the finding in step
    change(client, uri, 4, 5, 5, "    y = 1\n")
    assert await lines_once(client, uri, [("CONC101", 9)]) == [("CONC101", 9)]
    # `first` parses again: the fresh check decides (the same finding, once)
    change(client, uri, 5, 4, 5, "    x = ()\n")
    assert await lines_once(client, uri, [("CONC101", 9)]) == [("CONC101", 9)]
    # and when the fix is typed, it goes
    change(client, uri, 6, 9, 10, "        pass\n")
    assert await lines_once(client, uri, []) == []


@pytest.mark.init_options({"select": ["CONC101"]})
async def test_a_finding_edited_away_is_not_kept(client: LanguageClient) -> None:
    uri = open_document(client, TWO)
    await lines_once(client, uri, [("CONC101", 7), ("CONC101", 14)])
    # break `first` and delete its wait in the same edit: nothing of it is kept
    change(client, uri, 2, 6, 8, "    finally:\n        x = (\n")
    assert await lines_once(client, uri, [("CONC101", 14)]) == [("CONC101", 14)]


def finding(line: int, column: int, end_line: int, end_column: int) -> Finding:
    return Finding(
        "CONC101",
        "unbounded-wait-in-cleanup",
        "message",
        Location(line, column, end_line, end_column),
        Severity.WARNING,
        "f",
        related=(Related(Location(line - 2, 4, line - 2, 8), "try"),),
    )


def test_moved_through_edits() -> None:
    found = finding(7, 8, 7, 23)
    # a line inserted above: everything one line down
    below = moved(found, (4, 0), (4, 0), ["    x = (", ""])
    assert below is not None
    assert below.location == Location(8, 8, 8, 23)
    assert below.related[0].location == Location(6, 4, 6, 8)
    # text typed on the same line before it: the columns follow
    typed = moved(found, (7, 0), (7, 0), ["  "])
    assert typed is not None and typed.location == Location(7, 10, 7, 25)
    # an edit after it: nothing moves
    assert moved(found, (9, 0), (9, 3), ["abc"]) == found
    # an edit that replaces where it starts: dropped
    assert moved(found, (6, 0), (7, 10), [""]) is None


def test_kept_only_inside_the_regions_that_do_not_parse() -> None:
    kept = KeptFindings()
    a, b = finding(7, 8, 7, 23), finding(14, 8, 14, 23)
    assert kept.merged("u", [a, b], []) == [a, b]
    broken = [(3, 9)]
    # the check of the broken text found only `b`: `a` is kept (inside 3..9)
    assert kept.merged("u", [b], broken) == [a, b]
    # a region that parses again: the check decides
    assert kept.merged("u", [b], []) == [b]
    kept.forget("u")
    assert kept.merged("u", [], broken) == []


def test_unchecked_regions_are_those_the_check_leaves_out() -> None:
    lines = TWO.splitlines()
    assert unchecked_regions(lines) == []
    # an open bracket at the end of `first`: for a fresh analysis (the check's)
    # it may run on into `second`, so both are left out
    broken = [*lines[:6], "    finally:", "        x = (", *lines[8:]]
    assert unchecked_regions(broken) == [(3, len(broken))]
