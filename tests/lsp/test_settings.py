"""Settings changed while the server runs: pushed and pulled configuration,
warnings, and the inlay hint refresh a change triggers.

One server per client for the module: each test starts by pushing the
defaults back and counts messages from there.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import pytest
from lsprotocol import types
from pytest_lsp import LanguageClient

from .helpers import change_configuration, errors_reported, eventually, hints, open_document, settle
from .settings_data import (
    ARROW_LABELS,
    AWAIT_LINES,
    COMPACT_LABELS,
    LABELS,
    labels,
    lines_of,
    refreshes,
    supports_refresh,
)

pytestmark = pytest.mark.asyncio(loop_scope="module")


@dataclass
class Mark:
    """Where the client's records stood when the test started."""

    refreshes: int
    messages: int
    log_messages: int
    pulls: int


async def fresh(client: LanguageClient) -> Mark:
    client.set_configuration({})
    change_configuration(client, {"conc-lsp": {}})  # back to the defaults
    await settle(client)
    await asyncio.sleep(0.05)  # let a refresh request the reset caused arrive
    return Mark(
        refreshes(client),
        len(client.messages),
        len(client.log_messages),
        len(client.configuration_requests),  # type: ignore[attr-defined]
    )


async def test_push_disable_then_enable(module_client: LanguageClient) -> None:
    client = module_client
    mark = await fresh(client)
    uri = open_document(client, LABELS)
    assert labels(await hints(client, uri)) == ARROW_LABELS

    change_configuration(client, {"conc-lsp": {"hints": {"enabled": False}}})
    assert await hints(client, uri) == []
    await settle(client)
    step = 1 if supports_refresh(client) else 0
    assert refreshes(client) - mark.refreshes == step

    change_configuration(client, {"conc-lsp": {"hints": {"enabled": True}}})
    assert labels(await hints(client, uri)) == ARROW_LABELS
    await settle(client)
    assert refreshes(client) - mark.refreshes == 2 * step

    # the same settings again change nothing: no refresh
    change_configuration(client, {"conc-lsp": {"hints": {"enabled": True}}})
    assert labels(await hints(client, uri)) == ARROW_LABELS
    await settle(client)
    assert refreshes(client) - mark.refreshes == 2 * step
    assert errors_reported(client) == []


async def test_push_kinds_filter(module_client: LanguageClient) -> None:
    client = module_client
    await fresh(client)
    uri = open_document(client, LABELS)
    change_configuration(client, {"conc-lsp": {"hints": {"kinds": ["await"]}}})
    found = await hints(client, uri)
    assert lines_of(found) == AWAIT_LINES
    assert labels(found) == ARROW_LABELS[:3]

    change_configuration(client, {"conc-lsp": {"hints": {"kinds": ["event-set", "lock-release"]}}})
    assert labels(await hints(client, uri)) == [
        "<- wakes waiters, no switch",
        "<- not a checkpoint",
    ]
    # the object form: everything but spawns
    change_configuration(client, {"conc-lsp": {"hints": {"kinds": {"spawn": False}}}})
    assert labels(await hints(client, uri)) == [
        label for label in ARROW_LABELS if label != "<- schedules task, no switch"
    ]
    # compact labels and a kind filter together
    change_configuration(
        client, {"conc-lsp": {"hints": {"labelStyle": "compact", "kinds": ["acm-yield", "spawn"]}}}
    )
    assert labels(await hints(client, uri)) == ["+", "+", "⏏"]
    # a pushed section replaces the previous one: an empty section is the defaults
    change_configuration(client, {"conc-lsp": {}})
    assert labels(await hints(client, uri)) == ARROW_LABELS


async def test_unknown_setting_warns_and_server_keeps_working(
    module_client: LanguageClient,
) -> None:
    client = module_client
    mark = await fresh(client)
    uri = open_document(client, LABELS)
    change_configuration(
        client,
        {"conc-lsp": {"hints": {"colour": "red", "enabled": False}, "frobnicate": 1}},
    )
    # the known key still applies
    assert await hints(client, uri) == []
    shown = client.messages[mark.messages :]
    logged = client.log_messages[mark.log_messages :]
    warnings = [m.message for m in shown if m.type == types.MessageType.Warning]
    assert sorted(warnings) == [
        "conc-lsp: editor settings: unknown setting 'frobnicate' (ignored)",
        "conc-lsp: editor settings: unknown setting 'hints.colour' (ignored)",
    ]
    assert sorted(m.message for m in logged if m.type == types.MessageType.Warning) == [
        "editor settings: unknown setting 'frobnicate' (ignored)",
        "editor settings: unknown setting 'hints.colour' (ignored)",
    ]

    # a bad value is a warning too, naming the key and the allowed values
    change_configuration(client, {"conc-lsp": {"hints": {"labelStyle": "fancy"}}})
    assert labels(await hints(client, uri)) == ARROW_LABELS
    bad = [m.message for m in client.messages[mark.messages :] if "fancy" in m.message]
    assert len(bad) == 1 and "'hints.labelStyle'" in bad[0] and "arrow, compact" in bad[0]

    # the same warning again is logged but not shown twice
    count = len(client.messages)
    change_configuration(client, {"conc-lsp": {"hints": {"colour": "red"}}})
    assert labels(await hints(client, uri)) == ARROW_LABELS
    assert len(client.messages) == count
    logged = client.log_messages[mark.log_messages :]
    assert sum("'hints.colour'" in m.message for m in logged) == 2
    assert errors_reported(client) == []


async def test_unknown_setting_warning_names_the_key_as_written(
    module_client: LanguageClient,
) -> None:
    client = module_client
    mark = await fresh(client)
    uri = open_document(client, LABELS)
    change_configuration(client, {"conc-lsp": {"hints": {"labelStlye": "compact"}}})
    assert labels(await hints(client, uri)) == ARROW_LABELS
    warnings = [
        m.message for m in client.messages[mark.messages :] if m.type == types.MessageType.Warning
    ]
    assert len(warnings) == 1
    assert "labelStlye" in warnings[0], warnings


async def test_pull_model_after_null_or_empty_push(module_client: LanguageClient) -> None:
    client = module_client
    mark = await fresh(client)
    uri = open_document(client, LABELS)
    assert labels(await hints(client, uri)) == ARROW_LABELS

    client.set_configuration({"hints": {"enabled": False}}, section="conc-lsp")
    change_configuration(client, None)
    found = await eventually(lambda: hints(client, uri), lambda value: value == [])
    assert found == []
    requests = client.configuration_requests[mark.pulls :]  # type: ignore[attr-defined]
    assert len(requests) == 1
    assert [item.section for item in requests[0].items] == ["conc-lsp"]

    client.set_configuration({"hints": {"labelStyle": "compact"}}, section="conc-lsp")
    change_configuration(client, {})
    found = await eventually(
        lambda: hints(client, uri), lambda value: labels(value) == COMPACT_LABELS
    )
    assert labels(found) == COMPACT_LABELS
    assert len(client.configuration_requests) == mark.pulls + 2  # type: ignore[attr-defined]

    # settings for other sections only: still a pull
    client.set_configuration({"hints": {"kinds": ["await"]}}, section="conc-lsp")
    change_configuration(client, {"python": {"analysis": {}}})
    found = await eventually(lambda: hints(client, uri), lambda value: len(value) == 3)
    assert lines_of(found) == AWAIT_LINES
    assert labels(found) == ARROW_LABELS[:3]
    assert len(client.configuration_requests) == mark.pulls + 3  # type: ignore[attr-defined]

    if supports_refresh(client):
        count = await eventually(
            lambda: asyncio.sleep(0, refreshes(client) - mark.refreshes), lambda value: value == 3
        )
        assert count == 3
    else:
        await settle(client)
        assert refreshes(client) == mark.refreshes == 0
    assert errors_reported(client) == []
