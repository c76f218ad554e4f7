"""The server: wires LSP methods to the analysis adapters, nothing more."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from lsprotocol import types
from pygls.lsp.server import LanguageServer
from pygls.protocol import LanguageServerProtocol
from pygls.protocol.language_server import lsp_method
from pygls.uris import to_fs_path

from conc_lsp import __version__, config
from conc_lsp.analysis.model import Finding
from conc_lsp.server import actions, changes, diagnostics, features, report_features, resolution
from conc_lsp.server.documents import Document
from conc_lsp.server.positions import encoding_name

logger = logging.getLogger("conc_lsp")
PUSH_DELAY = 0.3  # seconds of quiet before pushed diagnostics are recomputed
T = TypeVar("T")


class ConcProtocol(LanguageServerProtocol):
    """Keeps document text ourselves: pygls's copy splits lines like
    ``str.splitlines`` (at form feeds and U+2028), which LSP does not."""

    def structure_message(self, data: dict[str, Any]) -> Any:
        if data.get("method") == types.TEXT_DOCUMENT_DID_CHANGE and "id" not in data:
            return changes.structure_did_change(self._converter, data)  # never dropped
        return super().structure_message(data)

    @lsp_method(types.TEXT_DOCUMENT_DID_OPEN)
    def lsp_text_document__did_open(self, params: types.DidOpenTextDocumentParams) -> Any:
        if (handler := self.fm.features.get(types.TEXT_DOCUMENT_DID_OPEN)) is not None:
            yield handler, (params,), None

    @lsp_method(types.TEXT_DOCUMENT_DID_CHANGE)
    def lsp_text_document__did_change(self, params: types.DidChangeTextDocumentParams) -> Any:
        if (handler := self.fm.features.get(types.TEXT_DOCUMENT_DID_CHANGE)) is not None:
            yield handler, (params,), None

    @lsp_method(types.TEXT_DOCUMENT_DID_CLOSE)
    def lsp_text_document__did_close(self, params: types.DidCloseTextDocumentParams) -> Any:
        if (handler := self.fm.features.get(types.TEXT_DOCUMENT_DID_CLOSE)) is not None:
            yield handler, (params,), None


class ConcLanguageServer(LanguageServer):
    """Holds the open documents and the settings."""

    def __init__(self) -> None:
        super().__init__("conc-lsp", __version__, protocol_cls=ConcProtocol)
        self.documents: dict[str, Document] = {}
        # uri -> (document stamp, findings): diagnostics computed
        self.findings: dict[str, tuple[tuple[int, int], list[Finding]]] = {}
        self.pending_push: dict[str, asyncio.TimerHandle] = {}
        self.worker = diagnostics.Worker()
        self.resolver = resolution.Resolutions()  # jedi, in a process of its own
        self.root: str | None = None  # the workspace folder, for jedi's project
        self.background: set[asyncio.Future[None]] = set()  # keeps fire-and-forget tasks alive
        self.base = config.Settings()  # defaults + pyproject + initialization options
        self.settings = self.base
        self.reported_warnings: set[str] = set()

    @property
    def encoding(self) -> str:
        capabilities = self.protocol.server_capabilities
        return encoding_name(capabilities.position_encoding if capabilities else None)

    def report_server_error(self, error: Exception, source: Any) -> None:
        # Never an error popup: the editor's log is the place for our faults.
        logger.error("internal error (%s): %s", getattr(source, "__name__", source), error)
        self.log(types.MessageType.Error, f"conc-lsp internal error: {error!r}")

    def log(self, level: types.MessageType, message: str) -> None:
        try:
            self.window_log_message(types.LogMessageParams(type=level, message=message))
        except Exception:  # noqa: BLE001 - the transport may be gone at shutdown
            logger.debug("could not send log message: %s", message)

    def warn_once(self, warnings: list[str]) -> None:
        for warning in warnings:
            logger.warning(warning)
            self.log(types.MessageType.Warning, warning)
            if warning not in self.reported_warnings:
                self.reported_warnings.add(warning)
                self.window_show_message(
                    types.ShowMessageParams(
                        type=types.MessageType.Warning, message=f"conc-lsp: {warning}"
                    )
                )

    @property
    def resolves_tooltips(self) -> bool:
        """The client asks for tooltips through `inlayHint/resolve`."""
        properties = self.capability(
            lambda caps: caps.text_document.inlay_hint.resolve_support.properties  # type: ignore[union-attr]
        )
        return bool(properties) and "tooltip" in (properties or [])

    @property
    def pulls_diagnostics(self) -> bool:
        """Pull when the client can; push otherwise (never both: no duplicates)."""
        return bool(self.capability(lambda caps: caps.text_document.diagnostic))  # type: ignore[union-attr]

    async def findings_for(self, document: Document) -> list[Finding]:
        """Findings for the document's current version, computed off the event loop."""
        stamp = document.stamp  # not the version: a client may reuse one
        cached = self.findings.get(document.uri)
        if cached is not None and cached[0] == stamp:
            return cached[1]
        snapshot = list(document.lines)
        path = to_fs_path(document.uri) if document.uri.startswith("file:") else None
        found = await self.worker.compute(
            document.uri, snapshot, self.settings, path, document.resolutions
        )
        if document.stamp == stamp:
            self.findings[document.uri] = (stamp, found)
        return found

    def resolutions_changed(self, document: Document) -> None:
        """New resolved hints for a document: ask the client to fetch again."""
        if self.capability(lambda caps: caps.workspace.inlay_hint.refresh_support):  # type: ignore[union-attr]
            self.workspace_inlay_hint_refresh(None)
        self.findings.pop(document.uri, None)
        if self.pulls_diagnostics:
            if self.capability(lambda caps: caps.workspace.diagnostics.refresh_support):  # type: ignore[union-attr]
                self.workspace_diagnostic_refresh(None)
        else:
            self.schedule_push(document)

    def schedule_push(self, document: Document) -> None:
        """Publish diagnostics once typing pauses (push clients only)."""
        if self.pulls_diagnostics:
            return
        uri = document.uri
        if (handle := self.pending_push.pop(uri, None)) is not None:
            handle.cancel()
        loop = asyncio.get_event_loop()
        self.pending_push[uri] = loop.call_later(
            PUSH_DELAY, lambda: asyncio.ensure_future(self.push(uri))
        )

    async def push(self, uri: str) -> None:
        self.pending_push.pop(uri, None)
        document = self.documents.get(uri)
        if document is None:
            return
        version, stamp = document.version, document.stamp
        try:
            found = await self.findings_for(document)
        except Exception as error:
            logger.exception("diagnostics failed")
            self.log(types.MessageType.Error, f"conc-lsp: diagnostics failed: {error!r}")
            return
        current = self.documents.get(uri)
        if current is None or current.stamp != stamp:
            return  # a newer edit will publish its own
        self.text_document_publish_diagnostics(
            types.PublishDiagnosticsParams(
                uri=uri,
                version=version,
                diagnostics=diagnostics.to_diagnostics(found, current.lines, uri, self.encoding),
            )
        )

    def refresh_diagnostics(self) -> None:
        self.findings.clear()
        if self.pulls_diagnostics:
            if self.capability(lambda caps: caps.workspace.diagnostics.refresh_support):  # type: ignore[union-attr]
                self.workspace_diagnostic_refresh(None)
        else:
            for document in self.documents.values():
                self.schedule_push(document)

    def capability(self, getter: Callable[[types.ClientCapabilities], T | None]) -> T | None:
        try:
            return getter(self.client_capabilities)
        except AttributeError:
            return None


def guarded(default: Any) -> Callable[[Callable[..., T]], Callable[..., T]]:
    """Answer every request: on an internal fault, log it and return ``default``."""

    def decorate(function: Callable[..., T]) -> Callable[..., T]:
        def wrapper(ls: ConcLanguageServer, params: Any) -> T:
            try:
                return function(ls, params)
            except Exception as error:
                logger.exception("%s failed", function.__name__)
                ls.log(types.MessageType.Error, f"conc-lsp: {function.__name__} failed: {error!r}")
                return default  # type: ignore[no-any-return]

        wrapper.__name__ = function.__name__
        return wrapper

    return decorate


def create_server() -> ConcLanguageServer:
    server = ConcLanguageServer()

    @server.feature(types.INITIALIZE)
    @guarded(None)
    def initialize(ls: ConcLanguageServer, params: types.InitializeParams) -> None:
        root = (
            params.workspace_folders[0].uri if params.workspace_folders else None
        ) or params.root_uri
        settings = config.Settings()
        warnings: list[str] = []
        if root:
            path = to_fs_path(root)
            ls.root = path or None
            if path:
                loaded = config.from_pyproject(settings, config.find_pyproject(Path(path)))
                settings, warnings = loaded.settings, loaded.warnings
        loaded = config.apply(settings, params.initialization_options, "initializationOptions")
        ls.base = ls.settings = loaded.settings
        ls.pending_warnings = warnings + loaded.warnings  # type: ignore[attr-defined]

    @server.feature(types.INITIALIZED)
    @guarded(None)
    def initialized(ls: ConcLanguageServer, params: types.InitializedParams) -> None:
        ls.warn_once(getattr(ls, "pending_warnings", []))
        ls.log(types.MessageType.Info, f"conc-lsp {__version__} ready (positions: {ls.encoding})")
        pull_configuration(ls)
        ls.resolver.warm(ls)

    @server.feature(types.WORKSPACE_DID_CHANGE_CONFIGURATION)
    @guarded(None)
    def did_change_configuration(
        ls: ConcLanguageServer, params: types.DidChangeConfigurationParams
    ) -> None:
        settings = params.settings
        if isinstance(settings, dict) and settings.get(config.SECTION) is not None:
            update_settings(ls, settings[config.SECTION])
        else:
            pull_configuration(ls)

    @server.feature(types.TEXT_DOCUMENT_DID_OPEN)
    @guarded(None)
    def did_open(ls: ConcLanguageServer, params: types.DidOpenTextDocumentParams) -> None:
        item = params.text_document
        ls.documents[item.uri] = document = Document.open(item.uri, item.version, item.text)
        ls.schedule_push(document)
        ls.resolver.schedule(ls, document, resolution.OPEN_DELAY)

    @server.feature(types.TEXT_DOCUMENT_DID_CHANGE)
    @guarded(None)
    def did_change(ls: ConcLanguageServer, params: types.DidChangeTextDocumentParams) -> None:
        uri = params.text_document.uri
        document = ls.documents.get(uri)
        if document is None:
            logger.warning("change for a document that is not open: %s", uri)
            return
        encoding = ls.encoding
        for change in params.content_changes:
            if isinstance(change, types.TextDocumentContentChangePartial):
                start = document.codepoint(
                    change.range.start.line, change.range.start.character, encoding
                )
                end = document.codepoint(
                    change.range.end.line, change.range.end.character, encoding
                )
                document.edit(start, end, change.text)
            else:
                document.replace_all(change.text)
        document.version = params.text_document.version
        ls.schedule_push(document)
        ls.resolver.schedule(ls, document)

    @server.feature(types.TEXT_DOCUMENT_DID_SAVE)
    @guarded(None)
    def did_save(ls: ConcLanguageServer, params: types.DidSaveTextDocumentParams) -> None:
        # Other open documents may call into this one: resolve them again.
        ls.resolver.schedule_all(ls)

    @server.feature(types.TEXT_DOCUMENT_DID_CLOSE)
    @guarded(None)
    def did_close(ls: ConcLanguageServer, params: types.DidCloseTextDocumentParams) -> None:
        uri = params.text_document.uri
        ls.documents.pop(uri, None)
        ls.findings.pop(uri, None)
        ls.resolver.forget(ls, uri)
        ls.background.add(task := asyncio.ensure_future(ls.worker.forget(uri)))
        task.add_done_callback(ls.background.discard)
        if (handle := ls.pending_push.pop(uri, None)) is not None:
            handle.cancel()
        if not ls.pulls_diagnostics:
            ls.text_document_publish_diagnostics(
                types.PublishDiagnosticsParams(uri=uri, diagnostics=[])
            )

    @server.feature(types.TEXT_DOCUMENT_INLAY_HINT, types.InlayHintOptions(resolve_provider=True))
    @guarded([])
    def inlay_hint(ls: ConcLanguageServer, params: types.InlayHintParams) -> list[types.InlayHint]:
        document = ls.documents.get(params.text_document.uri)
        if document is None:
            return []
        ls.resolver.shown(ls, document, params.range.start.line, params.range.end.line + 1)
        return features.inlay_hints(
            document, params.range, ls.settings, ls.encoding, ls.resolves_tooltips
        )

    @server.feature(types.INLAY_HINT_RESOLVE)
    def inlay_hint_resolve(ls: ConcLanguageServer, item: types.InlayHint) -> types.InlayHint:
        try:
            return features.resolve(ls.documents, item)
        except Exception as error:
            logger.exception("inlayHint/resolve failed")
            ls.log(types.MessageType.Error, f"conc-lsp: inlayHint/resolve failed: {error!r}")
            return item

    @server.feature(types.TEXT_DOCUMENT_HOVER)
    @guarded(None)
    def hover(ls: ConcLanguageServer, params: types.HoverParams) -> types.Hover | None:
        document = ls.documents.get(params.text_document.uri)
        if document is None:
            return None
        return features.hover(document, params.position, ls.encoding)

    @server.feature(
        types.TEXT_DOCUMENT_DIAGNOSTIC,
        types.DiagnosticOptions(
            identifier="conc-lsp", inter_file_dependencies=False, workspace_diagnostics=False
        ),
    )
    async def diagnostic(
        ls: ConcLanguageServer, params: types.DocumentDiagnosticParams
    ) -> types.DocumentDiagnosticReport:
        document = ls.documents.get(params.text_document.uri)
        if document is None:
            return types.RelatedFullDocumentDiagnosticReport(items=[])
        try:
            found = await ls.findings_for(document)
        except Exception as error:
            logger.exception("diagnostics failed")
            ls.log(types.MessageType.Error, f"conc-lsp: diagnostics failed: {error!r}")
            return types.RelatedFullDocumentDiagnosticReport(items=[])
        return types.RelatedFullDocumentDiagnosticReport(
            items=diagnostics.to_diagnostics(found, document.lines, document.uri, ls.encoding)
        )

    @server.feature(
        types.TEXT_DOCUMENT_CODE_ACTION,
        types.CodeActionOptions(
            code_action_kinds=[types.CodeActionKind.QuickFix, actions.FIX_ALL],
            resolve_provider=False,
        ),
    )
    async def code_action(
        ls: ConcLanguageServer, params: types.CodeActionParams
    ) -> list[types.CodeAction]:
        document = ls.documents.get(params.text_document.uri)
        if document is None:
            return []
        try:
            only = params.context.only
            wants_fix_all = only is not None and any(
                actions.FIX_ALL.startswith(kind) and kind.startswith("source") for kind in only
            )
            wants_quick_fixes = only is None or any(
                kind in (types.CodeActionKind.QuickFix, "quickfix") for kind in only
            )
            result: list[types.CodeAction] = []
            version = document.version
            path = to_fs_path(document.uri) if document.uri.startswith("file:") else None
            if wants_quick_fixes:
                found = await ls.worker.fixes(
                    document.uri,
                    list(document.lines),
                    ls.settings,
                    path,
                    params.range.start.line,
                    params.range.end.line,
                    document.resolutions,
                )
                if document.version == version:
                    result.extend(actions.quick_fixes(document, found, params, ls.encoding))
            if wants_fix_all:
                fixed = await ls.worker.fix_all(list(document.lines), ls.settings, path)
                action = actions.fix_all(document, fixed, ls.encoding)
                if action is not None and document.version == version:
                    result.append(action)
            return result
        except Exception as error:
            logger.exception("code actions failed")
            ls.log(types.MessageType.Error, f"conc-lsp: code actions failed: {error!r}")
            return []

    @server.feature(types.TEXT_DOCUMENT_CODE_LENS, types.CodeLensOptions(resolve_provider=False))
    async def code_lens(
        ls: ConcLanguageServer, params: types.CodeLensParams
    ) -> list[types.CodeLens]:
        try:
            return await report_features.code_lenses(ls, params)
        except Exception as error:
            logger.exception("code lenses failed")
            ls.log(types.MessageType.Error, f"conc-lsp: code lenses failed: {error!r}")
            return []

    @server.command(report_features.COMMAND)
    async def analyse(ls: ConcLanguageServer, *arguments: Any) -> dict[str, str]:
        return await report_features.analyse(ls, list(arguments))

    @server.feature(types.SHUTDOWN)
    def shutdown(ls: ConcLanguageServer, params: None) -> None:
        ls.worker.shutdown()
        ls.resolver.shutdown()

    return server


def pull_configuration(ls: ConcLanguageServer) -> None:
    """Ask the client for our settings section, when it can answer."""
    if not ls.capability(lambda caps: caps.workspace.configuration):  # type: ignore[union-attr]
        return

    def received(future: Any) -> None:
        try:
            result = future.result()
        except Exception as error:  # noqa: BLE001 - a client may refuse
            logger.warning("workspace/configuration failed: %s", error)
            return
        if result:
            update_settings(ls, result[0])

    future = ls.workspace_configuration(
        types.ConfigurationParams(items=[types.ConfigurationItem(section=config.SECTION)])
    )
    future.add_done_callback(received)


def update_settings(ls: ConcLanguageServer, data: Any) -> None:
    loaded = config.apply(ls.base, data, "editor settings")
    ls.warn_once(loaded.warnings)
    if loaded.settings != ls.settings:
        before = ls.settings
        ls.settings = loaded.settings
        if _resolve_settings(before) != _resolve_settings(ls.settings):
            for document in ls.documents.values():
                document.resolutions = {}
                document.resolved_version = None
                document.resolution_generation += 1
            ls.resolver.schedule_all(ls)
        if ls.capability(lambda caps: caps.workspace.inlay_hint.refresh_support):  # type: ignore[union-attr]
            ls.workspace_inlay_hint_refresh(None)
        ls.refresh_diagnostics()


def _resolve_settings(settings: config.Settings) -> tuple[bool, float, str]:
    return (settings.resolve_enabled, settings.resolve_budget, settings.python_interpreter)


def serve(tcp: str | None = None) -> None:
    """Run the server over stdio, or over TCP at HOST:PORT."""
    logging.basicConfig(
        level=os.environ.get("CONC_LSP_LOG_LEVEL", "WARNING").upper(),
        format="conc-lsp %(levelname)s %(name)s: %(message)s",
    )
    server = create_server()
    if tcp:
        host, _, port = tcp.rpartition(":")
        server.start_tcp(host or "127.0.0.1", int(port))
    else:
        server.start_io()
