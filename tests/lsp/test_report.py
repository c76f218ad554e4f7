"""The concurrency report through the real server: code lenses above async
functions and classes with async methods, and `conc.analyse` as VS Code and the
Neovim integration call it (`[uri]`, `[uri, qualname]`, `[uri, {start, end}]`):
the report comes back, is written under the cache folder, and is shown with
`window/showDocument` (both recorded clients support it)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from lsprotocol import types
from pygls.exceptions import JsonRpcException
from pytest_lsp import LanguageClient

from .helpers import errors_reported, open_document

pytestmark = pytest.mark.asyncio(loop_scope="module")

CACHE = (Path(__file__).parent.parent / "fixtures" / "report" / "cache.py").read_text(
    encoding="utf-8"
)


@pytest.fixture(scope="module", autouse=True)
def cache_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """XDG_CACHE_HOME of the servers this module starts (set before they start)."""
    folder = tmp_path_factory.mktemp("xdg-cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDG_CACHE_HOME", str(folder))
        yield folder


async def lenses(client: LanguageClient, uri: str) -> list[types.CodeLens]:
    result = await asyncio.wait_for(
        client.text_document_code_lens_async(
            types.CodeLensParams(text_document=types.TextDocumentIdentifier(uri=uri))
        ),
        30,
    )
    return list(result or [])


async def analyse(client: LanguageClient, *arguments: Any) -> Any:
    return await asyncio.wait_for(
        client.workspace_execute_command_async(
            types.ExecuteCommandParams(command="conc.analyse", arguments=list(arguments))
        ),
        30,
    )


async def test_the_command_is_announced(module_client: LanguageClient) -> None:
    capabilities = module_client.init_result.capabilities  # type: ignore[attr-defined]
    assert capabilities.execute_command_provider is not None
    assert "conc.analyse" in capabilities.execute_command_provider.commands
    assert capabilities.code_lens_provider is not None


async def test_lenses_above_async_functions_and_classes(module_client: LanguageClient) -> None:
    client = module_client
    uri = open_document(client, CACHE)
    found = await lenses(client, uri)
    lines = CACHE.splitlines()
    by_line = {lens.range.start.line: lens for lens in found}
    # on the `def` / `class` line, not on a decorator
    assert [lines[line].strip() for line in sorted(by_line)] == [
        "class _Cache:",
        "async def run_ctx(",
        "async def maybe_open_context(",
    ]
    titles = {
        lens.command.arguments[1]: lens.command.title  # type: ignore[index, union-attr]
        for lens in found
    }
    assert titles == {
        "_Cache": "2 checkpoints · 1 finding · Analyse concurrency",
        "_Cache.run_ctx": "2 checkpoints · 1 finding · Analyse concurrency",
        "maybe_open_context": "2 checkpoints · 3 findings · Analyse concurrency",
    }
    for lens in found:
        assert lens.command is not None
        assert lens.command.command == "conc.analyse"
        assert lens.command.arguments is not None and lens.command.arguments[0] == uri


async def test_no_lens_without_async_code(module_client: LanguageClient) -> None:
    uri = open_document(module_client, "class Plain:\n    def run(self) -> None:\n        pass\n")
    assert await lenses(module_client, uri) == []


async def test_analyse_a_function_returns_writes_and_shows_the_report(
    module_client: LanguageClient, cache_home: Path
) -> None:
    client = module_client
    uri = open_document(client, CACHE, "cache_report.py")
    shown_before = len(client.shown_documents)
    result = await analyse(client, uri, "_Cache.run_ctx")
    markdown = result["markdown"]
    assert markdown.startswith("## Concurrency analysis: `_Cache.run_ctx`\n")
    for section in ("### Shared state", "### Checkpoints", "### Race trace", "### Fixes"):
        assert section in markdown
    written = Path(result["uri"].removeprefix("file://"))
    # Line references link back into the code, relative to the report (VS Code's
    # preview opens `file.py#L41` at the line; it shows a `file:` link as text).
    source = Path(uri.removeprefix("file://"))
    relative = os.path.relpath(source, written.parent)
    assert f"[L41]({relative}#L41)" in markdown
    assert (written.parent / relative).resolve() == source.resolve()
    assert "](file:" not in markdown
    # the shared state as a list: a table would run off a narrow preview
    assert "| State |" not in markdown and "- `_Cache.values`: written by" in markdown
    assert written.read_text(encoding="utf-8") == markdown
    assert written.parent == cache_home / "conc-lsp" / "reports"
    for _ in range(100):
        if len(client.shown_documents) > shown_before:
            break
        await asyncio.sleep(0.05)
    assert client.shown_documents[-1].uri == result["uri"]
    assert errors_reported(client) == []


async def test_analyse_the_whole_file_and_a_selection(module_client: LanguageClient) -> None:
    client = module_client
    uri = open_document(client, CACHE, "cache_selection.py")
    whole = await analyse(client, uri)
    assert whole["markdown"].startswith("## Concurrency analysis: `cache_selection.py`\n")
    assert "CONC204" in whole["markdown"] and "CONC201" in whole["markdown"]
    lines = CACHE.splitlines()
    start = next(i for i, line in enumerate(lines) if "async def maybe_open_context" in line)
    selection = await analyse(client, uri, {"start": start, "end": start + 10})
    assert selection["markdown"].startswith(
        f"## Concurrency analysis: `cache_selection.py:{start + 1}-{start + 11}`\n"
    )
    assert selection["uri"] != whole["uri"]


async def test_analyse_follows_unsaved_edits(module_client: LanguageClient) -> None:
    client = module_client
    uri = open_document(client, CACHE, "cache_edited.py")
    client.text_document_did_change(
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=2),
            content_changes=[
                types.TextDocumentContentChangeWholeDocument(
                    text=CACHE.replace("class _Cache:", "class _Store:").replace(
                        "_Cache.", "_Store."
                    )
                )
            ],
        )
    )
    result = await analyse(client, uri, "_Store")
    assert result["markdown"].startswith("## Concurrency analysis: `_Store`\n")


async def test_bad_arguments_are_errors(module_client: LanguageClient) -> None:
    client = module_client
    uri = open_document(client, CACHE, "cache_errors.py")
    with pytest.raises(JsonRpcException, match="no function or class `Nope`"):
        await analyse(client, uri, "Nope")
    with pytest.raises(JsonRpcException, match=r"conc\.analyse takes"):
        await analyse(client, uri, 3)
    with pytest.raises(JsonRpcException, match=r"conc\.analyse takes"):
        await analyse(client)
    # The server answers the next request as usual.
    result = await analyse(client, uri, "maybe_open_context")
    assert result["markdown"].startswith("## Concurrency analysis: `maybe_open_context`")


async def test_analyse_at_a_line(module_client: LanguageClient) -> None:
    """``{"at": line}``: the innermost function or class around the line (what
    VS Code sends for the cursor), else the whole file."""
    client = module_client
    uri = open_document(client, CACHE, "cache_at.py")
    lines = CACHE.splitlines()
    inside = next(i for i, line in enumerate(lines) if "await no_more_users.wait()" in line)
    result = await analyse(client, uri, {"at": inside})
    assert result["markdown"].startswith("## Concurrency analysis: `_Cache.run_ctx`\n")
    in_class = next(i for i, line in enumerate(lines) if "service_tn" in line)
    result = await analyse(client, uri, {"at": in_class})
    assert result["markdown"].startswith("## Concurrency analysis: `_Cache`\n")
    result = await analyse(client, uri, {"at": 0})
    assert result["markdown"].startswith("## Concurrency analysis: `cache_at.py`\n")


PLAIN_AND_FOUND = (
    CACHE
    + """

async def quiet() -> None:
    await trio.sleep(0)
"""
)


@pytest.mark.parametrize(
    ("setting", "expected"),
    [
        (None, ["_Cache", "_Cache.run_ctx", "maybe_open_context"]),  # default: "findings"
        ("findings", ["_Cache", "_Cache.run_ctx", "maybe_open_context"]),
        ("all", ["_Cache", "_Cache.run_ctx", "maybe_open_context", "quiet"]),
        ("off", []),
    ],
)
async def test_the_lens_setting(
    module_client: LanguageClient, setting: str | None, expected: list[str]
) -> None:
    client = module_client
    if types.WORKSPACE_CODE_LENS_REFRESH not in client.protocol.fm.features:
        # a changed `lens` asks the client to fetch the lenses again
        client.feature(types.WORKSPACE_CODE_LENS_REFRESH)(lambda params: None)
    if setting is not None:
        client.workspace_did_change_configuration(
            types.DidChangeConfigurationParams(settings={"conc-lsp": {"lens": setting}})
        )
    try:
        uri = open_document(client, PLAIN_AND_FOUND, f"cache_lens_{setting}.py")
        found = await lenses(client, uri)
        assert sorted(lens.command.arguments[1] for lens in found) == expected  # type: ignore[index, union-attr]
    finally:
        client.workspace_did_change_configuration(
            types.DidChangeConfigurationParams(settings={"conc-lsp": {}})
        )
