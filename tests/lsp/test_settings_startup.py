"""Settings a fresh server starts with: initializationOptions and the first
workspace/configuration pull (one server per test)."""

from __future__ import annotations

import pytest
from lsprotocol import types
from pytest_lsp import LanguageClient

from .helpers import eventually, hints, open_document
from .settings_data import COMPACT_LABELS, LABELS, labels


@pytest.mark.init_options({"hints": {"labelStyle": "compact"}})
async def test_initialization_options_compact_labels(client: LanguageClient) -> None:
    uri = open_document(client, LABELS)
    assert labels(await hints(client, uri)) == COMPACT_LABELS


@pytest.mark.init_options({"conc-lsp": {"hints": {"label_style": "compact", "kinds": ["spawn"]}}})
async def test_initialization_options_under_section_and_snake_case(client: LanguageClient) -> None:
    uri = open_document(client, LABELS)
    assert labels(await hints(client, uri)) == ["+", "+"]


@pytest.mark.client_config({"conc-lsp": {"hints": {"labelStyle": "compact"}}})
async def test_pull_at_startup_applies_client_settings(client: LanguageClient) -> None:
    uri = open_document(client, LABELS)
    found = await eventually(
        lambda: hints(client, uri), lambda value: labels(value) == COMPACT_LABELS
    )
    assert labels(found) == COMPACT_LABELS


@pytest.mark.init_options({"hints": {"labelStyle": "compact"}})
@pytest.mark.client_config({"conc-lsp": {"hints": {"kinds": ["await"]}}})
async def test_pulled_settings_overlay_initialization_options(client: LanguageClient) -> None:
    uri = open_document(client, LABELS)
    found = await eventually(lambda: hints(client, uri), lambda value: len(value) == 3)
    assert labels(found) == COMPACT_LABELS[:3]


@pytest.mark.pyproject(
    '[project]\nname = "demo"\n\n'
    '[tool.conc-lsp.hints]\nlabel-style = "compact"\nkinds = ["await"]\nshade = 3\n'
)
@pytest.mark.init_options({"hints": {"kinds": ["await", "spawn"]}})
async def test_pyproject_settings_under_initialization_options(client: LanguageClient) -> None:
    uri = open_document(client, LABELS)
    # pyproject gives the style; initializationOptions override its kinds; the
    # default hints.show ("context") hides the bare checkpoint
    assert labels(await hints(client, uri)) == ["⇄ F U", "⇄ F S T", "+", "+"]
    path = client.root / "pyproject.toml"  # type: ignore[attr-defined]
    warnings = [m.message for m in client.messages if m.type == types.MessageType.Warning]
    assert warnings == [f"conc-lsp: {path}: unknown setting 'hints.shade' (ignored)"]
