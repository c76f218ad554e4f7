"""Protocol tests: the real server over stdio, driven with the recorded
capabilities of real clients (VS Code 1.65, UTF-16 positions; Neovim 0.11,
which offers utf-8 first and so negotiates UTF-8 positions).

Options for one test go through markers:

``@pytest.mark.init_options({...})``
    the ``initializationOptions`` of the initialize request.
``@pytest.mark.client_config({...})``
    what the client answers to ``workspace/configuration`` (whole object,
    keyed by section), from the start of the session.
``@pytest.mark.pyproject("...")``
    a pyproject.toml written in the workspace root before initialize.
``@pytest.mark.resolve``
    keep the background jedi resolution on (the other tests turn it off
    through ``initializationOptions``, so that their labels are the
    syntactic ones whenever they look).

``client`` starts a server per test; ``module_client`` one per module (and
client), for tests that only open their own documents.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_lsp
from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient
from pytest_lsp.client import DEFAULT_CLIENT_FEATURES, register_lsp_features

from conc_lsp.config import SECTION
from tests.rule_settings import SEED_RULES

from .helpers import GENEROUS_TIMEOUT, announce, settle

SERVER_COMMAND = [sys.executable, "-m", "conc_lsp", "serve"]
# The server exits only once a jedi call in progress returns, and a pass may
# run for its whole budget (test_resolution.py raises it to 300 s).
SHUTDOWN_TIMEOUT = 600.0

# pytest-lsp client spec -> the codec its positions are counted in
CLIENTS = {
    "visual-studio-code": "utf-16",
    "neovim": "utf-8",
}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "init_options(data): initializationOptions to send")
    config.addinivalue_line("markers", "client_config(data): workspace/configuration answers")
    config.addinivalue_line(
        "markers", "pyproject(text): pyproject.toml written in the workspace root"
    )
    config.addinivalue_line("markers", "resolve: keep jedi resolution on (off by default)")


def _configuration(client: LanguageClient, params: types.ConfigurationParams) -> list[Any]:
    """Answer workspace/configuration from the client's store, and record the request."""
    client.configuration_requests.append(params)  # type: ignore[attr-defined]
    client.configuration_event.set()  # type: ignore[attr-defined]
    return [
        client.get_configuration(section=item.section, scope_uri=item.scope_uri)
        for item in params.items
    ]


def _inlay_hint_refresh(client: LanguageClient, params: None) -> None:
    client.inlay_hint_refreshes += 1  # type: ignore[attr-defined]
    announce(client)


def _diagnostic_refresh(client: LanguageClient, params: None) -> None:
    DEFAULT_CLIENT_FEATURES[types.WORKSPACE_DIAGNOSTIC_REFRESH](client, params)
    announce(client)


def _publish_diagnostics(client: LanguageClient, params: types.PublishDiagnosticsParams) -> None:
    DEFAULT_CLIENT_FEATURES[types.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS](client, params)
    announce(client)


def make_client() -> LanguageClient:
    """The pytest-lsp client, plus handlers that record what the server asks
    and announce its background results (see ``helpers.until_announced``)."""
    client = LanguageClient()
    client.configuration_requests = []  # type: ignore[attr-defined]
    client.configuration_event = asyncio.Event()  # type: ignore[attr-defined]
    client.inlay_hint_refreshes = 0  # type: ignore[attr-defined]
    client.announced = asyncio.Event()  # type: ignore[attr-defined]
    register_lsp_features(
        client,
        {
            **DEFAULT_CLIENT_FEATURES,
            types.WORKSPACE_CONFIGURATION: _configuration,
            types.WORKSPACE_INLAY_HINT_REFRESH: _inlay_hint_refresh,
            types.WORKSPACE_DIAGNOSTIC_REFRESH: _diagnostic_refresh,
            types.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS: _publish_diagnostics,
        },
    )
    return client


def _resolution_off(options: Any) -> dict[str, Any]:
    """``options`` plus resolve.enabled = false, where the server reads it: in
    the "conc-lsp" section when there is one (the server then reads only that)."""
    off = {"resolve": {"enabled": False}}
    if isinstance(options, dict) and isinstance(options.get(SECTION), dict):
        return {**options, SECTION: {**off, **options[SECTION]}}
    return {**off, **(options or {})}


async def _start_session(
    request: pytest.FixtureRequest, lsp_client: LanguageClient, root: Path
) -> None:
    name = request.param
    lsp_client.client_name = name  # type: ignore[attr-defined]
    lsp_client.encoding = CLIENTS[name]  # type: ignore[attr-defined]
    marker = request.node.get_closest_marker("init_options")
    options = marker.args[0] if marker else None
    if request.node.get_closest_marker("resolve") is None:
        # jedi's results arrive seconds later and change some labels: only
        # the tests marked `resolve` wait for them (tests/lsp/test_resolution.py).
        options = _resolution_off(options)
    marker = request.node.get_closest_marker("client_config")
    if marker:
        lsp_client.set_configuration(marker.args[0])
    # The root is a temporary folder: no pyproject.toml of this repo leaks in.
    marker = request.node.get_closest_marker("pyproject")
    if marker:
        (root / "pyproject.toml").write_text(marker.args[0], encoding="utf-8")
    else:
        # The rules the tests exercise, opt-in ones included (tests/rule_settings.py),
        # and the whole hint map with whole labels (tests of the hint defaults,
        # "context" and a 32-character cap, use `pyproject`: test_hint_modes.py).
        selected = ", ".join(f'"{code}"' for code in SEED_RULES)
        (root / "pyproject.toml").write_text(
            f"[tool.conc-lsp]\nselect = [{selected}]\n"
            '[tool.conc-lsp.hints]\nshow = "all"\nmax-length = 0\n',
            encoding="utf-8",
        )
    lsp_client.root = root  # type: ignore[attr-defined]
    result = await lsp_client.initialize_session(
        types.InitializeParams(
            capabilities=pytest_lsp.client_capabilities(name),
            root_uri=root.as_uri(),
            initialization_options=options,
        )
    )
    lsp_client.init_result = result  # type: ignore[attr-defined]
    # Both recorded clients support workspace/configuration, so the server
    # pulls its section after `initialized`.  Let that first pull settle
    # before the test starts, so it cannot overtake the test's own changes.
    await asyncio.wait_for(lsp_client.configuration_event.wait(), GENEROUS_TIMEOUT)  # type: ignore[attr-defined]
    await settle(lsp_client)
    lsp_client.configuration_event.clear()  # type: ignore[attr-defined]


@contextlib.asynccontextmanager
async def _session(
    request: pytest.FixtureRequest, lsp_client: LanguageClient, root: Path
) -> AsyncIterator[None]:
    """Initialize, serve the test, shut down (shutdown, exit). However that
    ends, the server process ends and the client stops before the test's
    event loop closes: a client left running (pytest-lsp stops it only after
    a clean teardown) is destroyed with its loop, and its pending pygls tasks
    print tracebacks after pytest's summary."""
    try:
        await _start_session(request, lsp_client, root)
        yield
        await asyncio.wait_for(lsp_client.shutdown_session(), SHUTDOWN_TIMEOUT)
    finally:
        server = lsp_client._server
        if server is not None and server.returncode is None:
            server.kill()
        await lsp_client.stop()


CONFIG = ClientServerConfig(server_command=SERVER_COMMAND, client_factory=make_client)


@pytest_lsp.fixture(  # type: ignore[untyped-decorator]
    config=CONFIG, params=list(CLIENTS), ids=["vscode", "neovim"]
)
async def client(
    request: pytest.FixtureRequest, lsp_client: LanguageClient, tmp_path: Path
) -> AsyncIterator[None]:
    """A fresh server per test (markers init_options / client_config apply)."""
    root = tmp_path / "workspace"
    root.mkdir()
    async with _session(request, lsp_client, root):
        yield


@pytest_lsp.fixture(  # type: ignore[untyped-decorator]
    config=CONFIG, params=list(CLIENTS), ids=["vscode", "neovim"], scope="module"
)
async def module_client(
    request: pytest.FixtureRequest,
    lsp_client: LanguageClient,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[None]:
    """One server per test module and client, default settings: tests must
    use their own documents (open_document names them uniquely)."""
    root = tmp_path_factory.mktemp("workspace")
    async with _session(request, lsp_client, root):
        yield
