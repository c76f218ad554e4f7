"""Initialize: negotiated capabilities, and a server that serves at once.

Start-up time is a figure of benchmarks/lsp_roundtrip.py, not a test: on a
busy machine it says nothing about the code."""

from __future__ import annotations

import pytest
import pytest_lsp
from lsprotocol import types
from pytest_lsp import LanguageClient

from .helpers import hints, open_document, summary

module_loop = pytest.mark.asyncio(loop_scope="module")


def test_recorded_capabilities_offer_what_we_rely_on() -> None:
    neovim = pytest_lsp.client_capabilities("neovim")
    vscode = pytest_lsp.client_capabilities("visual-studio-code")
    # Neovim 0.11 lists utf-8 first: a server that can do UTF-8 must pick it.
    assert neovim.general is not None
    assert list(neovim.general.position_encodings or []) == ["utf-8", "utf-16", "utf-32"]
    assert neovim.workspace is not None and neovim.workspace.inlay_hint is not None
    assert neovim.workspace.inlay_hint.refresh_support is True
    # VS Code 1.65 predates positionEncodings and inlay hint refresh.
    assert vscode.general is None or vscode.general.position_encodings is None
    assert vscode.workspace is not None and vscode.workspace.inlay_hint is None
    assert vscode.workspace.configuration is True and neovim.workspace.configuration is True


@module_loop
async def test_initialize_result(module_client: LanguageClient) -> None:
    client = module_client
    result: types.InitializeResult = client.init_result  # type: ignore[attr-defined]
    capabilities = result.capabilities
    expected = {
        "utf-16": types.PositionEncodingKind.Utf16,
        "utf-8": types.PositionEncodingKind.Utf8,
    }
    assert capabilities.position_encoding == expected[client.encoding]  # type: ignore[attr-defined]
    assert result.server_info is not None and result.server_info.name == "conc-lsp"
    assert capabilities.hover_provider
    assert isinstance(capabilities.inlay_hint_provider, types.InlayHintOptions)
    # Tooltips come through inlayHint/resolve for clients that resolve them.
    assert capabilities.inlay_hint_provider.resolve_provider is True
    # Pull diagnostics (one provider, no workspace pass) and code actions.
    assert isinstance(capabilities.diagnostic_provider, types.DiagnosticOptions)
    assert capabilities.diagnostic_provider.workspace_diagnostics is False
    assert isinstance(capabilities.code_action_provider, types.CodeActionOptions)
    assert set(capabilities.code_action_provider.code_action_kinds or []) == {
        "quickfix",
        "source.fixAll.conc",
    }
    sync = capabilities.text_document_sync
    assert isinstance(sync, types.TextDocumentSyncOptions)
    assert sync.open_close is True
    assert sync.change == types.TextDocumentSyncKind.Incremental
    # The "ready" log line names the encoding the server really uses.
    ready = [m.message for m in client.log_messages if "ready" in m.message]
    assert ready and ready[0].endswith(f"(positions: {client.encoding})")  # type: ignore[attr-defined]


@module_loop
async def test_the_first_request_after_initialize_is_answered(
    module_client: LanguageClient,
) -> None:
    """The first request after initialize is answered, with the right hints.
    How long start-up takes is measured by benchmarks/lsp_roundtrip.py
    (process start -> initialize result, median of 5 starts)."""
    client = module_client
    uri = open_document(client, "import trio\nasync def f():\n    await trio.sleep(0)\n")
    assert summary(await hints(client, uri)) == [
        (2, len("    await trio.sleep(0)"), "<- checkpoint")
    ]
