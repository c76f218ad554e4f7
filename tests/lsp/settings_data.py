"""Expectations shared by the settings tests."""

from __future__ import annotations

from lsprotocol import types
from pytest_lsp import LanguageClient

from .helpers import label_text
from .test_hints import EXPECTED_LABELS, LABELS

__all__ = ["LABELS"]

ARROW_LABELS = [label for _, _, label in EXPECTED_LABELS]
COMPACT_LABELS = ["⇄", "⇄ F U", "⇄ F S T", "⇄⌛", "+", "↑", "∅", "+", "⏏", "⇄*"]
AWAIT_LINES = [6, 8, 11]


def labels(found: list[types.InlayHint]) -> list[str]:
    ordered = sorted(found, key=lambda h: (h.position.line, h.position.character))
    return [label_text(h) for h in ordered]


def lines_of(found: list[types.InlayHint]) -> list[int]:
    return sorted(h.position.line for h in found)


def refreshes(client: LanguageClient) -> int:
    return client.inlay_hint_refreshes  # type: ignore[attr-defined,no-any-return]


def supports_refresh(client: LanguageClient) -> bool:
    # Neovim 0.11 declares workspace.inlayHint.refreshSupport; VS Code 1.65 does not.
    return client.client_name == "neovim"  # type: ignore[attr-defined,no-any-return]
