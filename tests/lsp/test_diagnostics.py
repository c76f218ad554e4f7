"""Diagnostics through the real server: pulled by Neovim 0.11, pushed to VS Code
1.65 (which cannot pull), never both; codes, ranges, related information,
`noqa`, settings and refresh after edits."""

from __future__ import annotations

from lsprotocol import types
from pytest_lsp import LanguageClient

from .helpers import change_configuration, open_document, settle, until_announced

BUGGY = """\
import trio


async def teardown(done: trio.Event, peers: trio.Event, seen: set[str]) -> None:
    try:
        await trio.sleep_forever()
    finally:
        await done.wait()
        await peers.wait()  # noqa: CONC101
        seen.clear()
"""


async def diagnostics(
    client: LanguageClient, uri: str, count: int | None = None
) -> list[types.Diagnostic]:
    """The document's diagnostics as this client gets them: pulled, or (VS Code
    1.65 cannot pull) the last ones pushed, once a push of ``count`` arrived."""
    if client.client_name == "neovim":  # type: ignore[attr-defined]
        report = await client.text_document_diagnostic_async(
            types.DocumentDiagnosticParams(text_document=types.TextDocumentIdentifier(uri=uri))
        )
        assert isinstance(report, types.RelatedFullDocumentDiagnosticReport)
        return list(report.items)

    async def pushed() -> list[types.Diagnostic] | None:
        return client.diagnostics.get(uri)

    found = await until_announced(
        client, pushed, lambda found: found is not None and count in (None, len(found))
    )
    return list(found or [])


def summary(found: list[types.Diagnostic]) -> list[tuple[object, int, int, int]]:
    return sorted(
        (d.code, d.range.start.line, d.range.start.character, d.range.end.character) for d in found
    )


async def test_findings_arrive_once_with_codes_and_ranges(client: LanguageClient) -> None:
    uri = open_document(client, BUGGY)
    found = await diagnostics(client, uri, count=2)
    line = "        await done.wait()"
    start, end = line.index("await"), len(line)
    # One CONC102 per cleanup block: the first unshielded wait; the rest of the
    # cleanup it would skip is its related information.
    assert summary(found) == [("CONC101", 7, start, end), ("CONC102", 7, start, end)]
    by_code = {d.code: d for d in found}
    assert by_code["CONC101"].severity == types.DiagnosticSeverity.Warning
    assert by_code["CONC101"].source == "conc-lsp"
    assert by_code["CONC101"].code_description is not None
    assert by_code["CONC101"].code_description.href.endswith("#conc101-unbounded-wait-in-cleanup")
    # The skipped cleanup line is named as related information.
    related = by_code["CONC102"].related_information or []
    assert [item.location.range.start.line for item in related] == [8]
    assert all(item.location.uri == uri for item in related)
    if client.client_name == "neovim":  # type: ignore[attr-defined]
        await settle(client)
        assert uri not in client.diagnostics  # pulled, so never pushed too


async def test_noqa_suppresses_only_the_named_rule(client: LanguageClient) -> None:
    uri = open_document(client, BUGGY)
    found = await diagnostics(client, uri, count=2)
    on_noqa_line = [d.code for d in found if d.range.start.line == 8]
    assert "CONC101" not in on_noqa_line


async def test_edits_refresh_diagnostics(client: LanguageClient) -> None:
    uri = open_document(client, BUGGY)
    assert len(await diagnostics(client, uri, count=2)) == 2
    # Bound and shield the first wait: its two findings go away.
    line = "        await done.wait()"
    client.text_document_did_change(
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=2),
            content_changes=[
                types.TextDocumentContentChangePartial(
                    range=types.Range(
                        start=types.Position(line=7, character=0),
                        end=types.Position(line=7, character=len(line)),
                    ),
                    text="        with trio.move_on_after(1, shield=True):\n    " + line,
                )
            ],
        )
    )
    found = await diagnostics(client, uri, count=1)
    # left: the second wait, now on line 9, unshielded
    assert [(d.code, d.range.start.line) for d in found] == [("CONC102", 9)]


async def test_settings_select_and_disable(client: LanguageClient) -> None:
    uri = open_document(client, BUGGY)
    await diagnostics(client, uri, count=2)
    change_configuration(client, {"conc-lsp": {"ignore": ["CONC102"]}})
    await settle(client)
    found = await diagnostics(client, uri, count=1)
    assert [d.code for d in found] == ["CONC101"]
    change_configuration(client, {"conc-lsp": {"diagnostics": {"enabled": False}}})
    await settle(client)
    assert await diagnostics(client, uri, count=0) == []


async def test_broken_document_keeps_findings_of_parsing_functions(client: LanguageClient) -> None:
    text = BUGGY + "\n\ndef half_typed(:\n"
    uri = open_document(client, text)
    found = await diagnostics(client, uri, count=2)
    assert {(d.code, d.range.start.line) for d in found} == {("CONC101", 7), ("CONC102", 7)}
