"""Initialize: negotiated capabilities and start-up time."""

from __future__ import annotations

import pytest
import pytest_lsp
from lsprotocol import types
from pytest_lsp import LanguageClient

from .helpers import hints, open_document

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
async def test_initialize_answers_quickly(module_client: LanguageClient) -> None:
    """Regression guard: well under the time an editor waits before giving up."""
    client = module_client
    total = client.init_total_seconds  # type: ignore[attr-defined]
    call = client.init_call_seconds  # type: ignore[attr-defined]
    print(
        f"\n{client.client_name}: process start -> initialize result {total:.3f} s "  # type: ignore[attr-defined]
        f"(initialize request alone {call:.3f} s)"
    )
    assert call <= total < 2.5
    # and it serves right away
    uri = open_document(client, "import trio\nasync def f():\n    await trio.sleep(0)\n")
    assert [h.position.line for h in await hints(client, uri)] == [2]


@module_loop
@pytest.mark.xfail(
    strict=False,
    reason="often missed inside the test run on this 2-core machine (the test process "
    "competes for the cores); `import lsprotocol.types` alone takes 0.4-0.9 s. Measured "
    "alone, benchmarks/lsp_roundtrip.py gives a median of about 0.73 s",
)
async def test_initialize_answers_within_one_second(module_client: LanguageClient) -> None:
    client = module_client
    total = client.init_total_seconds  # type: ignore[attr-defined]
    assert total < 1.0, f"process start -> initialize result took {total:.3f} s"
