"""The server: its state (`ConcLanguageServer`) and one handler per LSP method,
each a few lines of conversion between LSP types and the analysis adapters.

`protocol` keeps JSON-RPC's rules (invalid params, shutdown, exit), `transport`
the message loop and `session` one run of it (stdio or TCP); `HANDLERS` lists
what the server answers.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar, cast

from lsprotocol import types
from pygls.lsp.server import LanguageServer
from pygls.uris import to_fs_path

from conc_lsp import __version__, config
from conc_lsp.analysis.model import Finding
from conc_lsp.analysis.text import changed_span, split_lines
from conc_lsp.server import (
    actions,
    diagnostics,
    features,
    report_features,
    resolution,
    session,
)
from conc_lsp.server.documents import Document
from conc_lsp.server.early_init import ByteSource, EarlyStart
from conc_lsp.server.kept_findings import KeptFindings, unchecked_regions
from conc_lsp.server.positions import encoding_name
from conc_lsp.server.protocol import ConcProtocol, strict_converter

logger = logging.getLogger("conc_lsp")
PUSH_DELAY = 0.3  # seconds of quiet before pushed diagnostics are recomputed
T = TypeVar("T")


class ConcLanguageServer(LanguageServer):
    """Holds the open documents, the settings and the worker processes."""

    protocol: ConcProtocol

    def __init__(self) -> None:
        super().__init__(
            "conc-lsp", __version__, protocol_cls=ConcProtocol, converter_factory=strict_converter
        )
        self.documents: dict[str, Document] = {}
        # uri -> (document stamp, findings): diagnostics computed
        self.findings: dict[str, tuple[tuple[int, int], list[Finding]]] = {}
        self.kept = KeptFindings()  # the last findings, kept through a syntax error
        self.pending_push: dict[str, asyncio.TimerHandle] = {}
        self.worker = diagnostics.Worker()
        self.resolver = resolution.Resolutions()  # jedi, in a process of its own
        self.root: str | None = None  # the workspace folder, for jedi's project
        self.background: set[asyncio.Future[None]] = set()  # keeps fire-and-forget tasks alive
        self.base = config.Settings()  # defaults + pyproject + initialization options
        self.settings = self.base
        self.pending_warnings: list[str] = []  # found at initialize, shown once initialized
        self.reported_warnings: set[str] = set()

    # -- what the client can do -------------------------------------------

    @property
    def encoding(self) -> str:
        capabilities = self.protocol.server_capabilities
        return encoding_name(capabilities.position_encoding if capabilities else None)

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

    def capability(self, getter: Callable[[types.ClientCapabilities], T | None]) -> T | None:
        try:
            return getter(self.client_capabilities)
        except AttributeError:
            return None

    # -- messages to the user ---------------------------------------------

    def report_server_error(self, error: Exception, source: Any) -> None:
        # Never an error popup: the editor's log is the place for our faults.
        logger.error("internal error (%s): %s", getattr(source, "__name__", source), error)
        self.log(types.MessageType.Error, f"conc-lsp internal error: {error!r}")

    def refuse(self, reason: str) -> None:
        """A message of the client that cannot be read (the transport's report)."""
        logger.error("%s", reason)
        self.log(types.MessageType.Error, f"conc-lsp: {reason}")

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

    # -- settings -----------------------------------------------------------

    def configure(self, root_uri: str | None, options: Any) -> None:
        """Settings at initialize: defaults, the workspace's pyproject, the client's options."""
        settings = config.Settings()
        warnings: list[str] = []
        if root_uri:
            path = to_fs_path(root_uri)
            self.root = path or None
            if path:
                loaded = config.from_pyproject(settings, config.find_pyproject(Path(path)))
                settings, warnings = loaded.settings, loaded.warnings
        loaded = config.apply(settings, options, "initializationOptions")
        self.base = self.settings = loaded.settings
        self.pending_warnings = warnings + loaded.warnings

    def pull_configuration(self) -> None:
        """Ask the client for our settings section, when it can answer."""
        if not self.capability(lambda caps: caps.workspace.configuration):  # type: ignore[union-attr]
            return

        def received(future: Any) -> None:
            try:
                result = future.result()
            except Exception as error:  # noqa: BLE001 - a client may refuse
                logger.warning("workspace/configuration failed: %s", error)
                return
            if result:
                self.update_settings(result[0])

        future = self.workspace_configuration(
            types.ConfigurationParams(items=[types.ConfigurationItem(section=config.SECTION)])
        )
        future.add_done_callback(received)

    def update_settings(self, data: Any) -> None:
        loaded = config.apply(self.base, data, "editor settings")
        self.warn_once(loaded.warnings)
        if loaded.settings == self.settings:
            return
        before = self.settings
        self.settings = loaded.settings
        if _resolve_settings(before) != _resolve_settings(self.settings):
            for document in self.documents.values():
                document.resolutions = {}
                document.resolved_version = None
                document.resolution_generation += 1
            self.resolver.schedule_all(self)
        if self.capability(lambda caps: caps.workspace.inlay_hint.refresh_support):  # type: ignore[union-attr]
            self.workspace_inlay_hint_refresh(None)
        if before.lens != self.settings.lens and self.capability(
            lambda caps: caps.workspace.code_lens.refresh_support  # type: ignore[union-attr]
        ):
            self.workspace_code_lens_refresh(None)
        self.refresh_diagnostics()

    # -- documents ----------------------------------------------------------

    def opened(self, document: Document) -> None:
        self.documents[document.uri] = document
        self.schedule_push(document)
        self.resolver.schedule(self, document, resolution.OPEN_DELAY)

    def changed(self, document: Document) -> None:
        self.schedule_push(document)
        self.resolver.schedule(self, document)

    def closed(self, uri: str) -> None:
        self.documents.pop(uri, None)
        self.findings.pop(uri, None)
        self.kept.forget(uri)
        self.resolver.forget(self, uri)
        self.background.add(task := asyncio.ensure_future(self.worker.forget(uri)))
        task.add_done_callback(self.background.discard)
        if (handle := self.pending_push.pop(uri, None)) is not None:
            handle.cancel()
        if not self.pulls_diagnostics:
            self.text_document_publish_diagnostics(
                types.PublishDiagnosticsParams(uri=uri, diagnostics=[])
            )

    # -- diagnostics and fixes ----------------------------------------------

    async def findings_for(self, document: Document) -> list[Finding]:
        """Findings for the document's current version, computed off the event loop."""
        stamp = document.stamp  # not the version: a client may reuse one
        cached = self.findings.get(document.uri)
        if cached is not None and cached[0] == stamp:
            return cached[1]
        snapshot = list(document.lines)
        broken = bool(document.analyzer.analysis().problems)
        found = await self.worker.compute(
            document.uri, snapshot, self.settings, _path(document), document.resolutions
        )
        unchecked: list[tuple[int, int]] = []
        if broken and document.stamp == stamp:  # what the check could not see
            unchecked = await self.worker.call(
                unchecked_regions, snapshot, default=[], timeout=diagnostics.JOB_SECONDS
            )
        if document.stamp == stamp:
            # a function that does not parse keeps its last findings meanwhile
            found = self.kept.merged(document.uri, found, unchecked)
            self.findings[document.uri] = (stamp, found)
        return found

    async def code_actions(
        self, document: Document, params: types.CodeActionParams
    ) -> list[types.CodeAction]:
        """Quick fixes in the range and the fix-all action, as the client asks."""
        wants_quick_fixes, wants_fix_all = actions.wanted(params.context.only)
        result: list[types.CodeAction] = []
        version = document.version
        path = _path(document)
        if wants_quick_fixes:
            found = await self.worker.fixes(
                document.uri,
                list(document.lines),
                self.settings,
                path,
                params.range.start.line,
                params.range.end.line,
                document.resolutions,
            )
            if document.version == version:
                result.extend(actions.quick_fixes(document, found, params, self.encoding))
        if wants_fix_all:
            fixed = await self.worker.fix_all(list(document.lines), self.settings, path)
            action = actions.fix_all(document, fixed, self.encoding)
            if action is not None and document.version == version:
                result.append(action)
        return result

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
        self.kept.forget()
        if self.pulls_diagnostics:
            if self.capability(lambda caps: caps.workspace.diagnostics.refresh_support):  # type: ignore[union-attr]
                self.workspace_diagnostic_refresh(None)
        else:
            for document in self.documents.values():
                self.schedule_push(document)

    # -- the session ----------------------------------------------------------

    def stop_workers(self) -> None:
        self.worker.shutdown()
        self.resolver.shutdown()

    def shutdown(self) -> None:
        """The session is over (pygls's name): the workers, then the transport."""
        self.stop_workers()
        super().shutdown()  # type: ignore[no-untyped-call]

    @property
    def exit_code(self) -> int:
        """LSP's rule: 0 after `shutdown` then `exit`, 1 for any other end."""
        if self.protocol.exit_code is not None:
            return self.protocol.exit_code
        return 0 if self.protocol.shut_down else 1


def _path(document: Document) -> str | None:
    return to_fs_path(document.uri) if document.uri.startswith("file:") else None


def _resolve_settings(settings: config.Settings) -> tuple[bool, float, str]:
    return (settings.resolve_enabled, settings.resolve_budget, settings.python_interpreter)


# -- handlers: one per LSP method -------------------------------------------------


def guarded(
    default: Any, what: str | None = None
) -> Callable[[Callable[..., T]], Callable[..., T]]:
    """Answer every request: on an internal fault, log it and return ``default``."""

    def decorate(function: Callable[..., T]) -> Callable[..., T]:
        name = what or function.__name__

        def failed(ls: ConcLanguageServer, error: Exception) -> Any:
            logger.error("%s failed", name, exc_info=error)
            ls.log(types.MessageType.Error, f"conc-lsp: {name} failed: {error!r}")
            return default

        if asyncio.iscoroutinefunction(function):

            @functools.wraps(function)
            async def guard_async(ls: ConcLanguageServer, params: Any) -> Any:
                try:
                    return await function(ls, params)
                except Exception as error:  # noqa: BLE001 - logged with its traceback
                    return failed(ls, error)

            return cast(Callable[..., T], guard_async)

        @functools.wraps(function)
        def guard(ls: ConcLanguageServer, params: Any) -> T:
            try:
                return function(ls, params)
            except Exception as error:  # noqa: BLE001 - logged with its traceback
                return cast(T, failed(ls, error))

        return guard

    return decorate


@guarded(None)
def initialize(ls: ConcLanguageServer, params: types.InitializeParams) -> None:
    folders = params.workspace_folders
    ls.configure(
        (folders[0].uri if folders else None) or params.root_uri, params.initialization_options
    )


@guarded(None)
def initialized(ls: ConcLanguageServer, params: types.InitializedParams) -> None:
    ls.warn_once(ls.pending_warnings)
    ls.log(types.MessageType.Info, f"conc-lsp {__version__} ready (positions: {ls.encoding})")
    ls.pull_configuration()
    ls.resolver.warm(ls)


@guarded(None)
def did_change_configuration(
    ls: ConcLanguageServer, params: types.DidChangeConfigurationParams
) -> None:
    settings = params.settings
    if isinstance(settings, dict) and settings.get(config.SECTION) is not None:
        ls.update_settings(settings[config.SECTION])
    else:
        ls.pull_configuration()


@guarded(None)
def did_open(ls: ConcLanguageServer, params: types.DidOpenTextDocumentParams) -> None:
    item = params.text_document
    ls.opened(Document.open(item.uri, item.version, item.text))


@guarded(None)
def did_change(ls: ConcLanguageServer, params: types.DidChangeTextDocumentParams) -> None:
    document = ls.documents.get(params.text_document.uri)
    if document is None:
        logger.warning("change for a document that is not open: %s", params.text_document.uri)
        return
    for change in params.content_changes:
        _apply(ls, document, change)
    document.version = params.text_document.version
    ls.changed(document)


def _apply(
    ls: ConcLanguageServer, document: Document, change: types.TextDocumentContentChangeEvent
) -> None:
    encoding = ls.encoding
    if isinstance(change, types.TextDocumentContentChangePartial):
        start = document.codepoint(change.range.start.line, change.range.start.character, encoding)
        end = document.codepoint(change.range.end.line, change.range.end.character, encoding)
        ls.kept.edited(document.uri, min(start, end), max(start, end), split_lines(change.text))
        document.edit(start, end, change.text)
    else:
        # the whole text anew: kept findings move as if its changed lines were replaced
        new = split_lines(change.text)
        prefix, old_end, new_end = changed_span(document.lines, new)
        ls.kept.edited(document.uri, (prefix, 0), (old_end, 0), [*new[prefix:new_end], ""])
        document.replace_all(change.text)


@guarded(None)
def did_save(ls: ConcLanguageServer, params: types.DidSaveTextDocumentParams) -> None:
    ls.resolver.schedule_all(ls)  # other open documents may call into this one


@guarded(None)
def did_close(ls: ConcLanguageServer, params: types.DidCloseTextDocumentParams) -> None:
    ls.closed(params.text_document.uri)


@guarded([])
def inlay_hint(ls: ConcLanguageServer, params: types.InlayHintParams) -> list[types.InlayHint]:
    document = ls.documents.get(params.text_document.uri)
    if document is None:
        return []
    ls.resolver.shown(ls, document, params.range.start.line, params.range.end.line + 1)
    return features.inlay_hints(
        document, params.range, ls.settings, ls.encoding, ls.resolves_tooltips
    )


def inlay_hint_resolve(ls: ConcLanguageServer, item: types.InlayHint) -> types.InlayHint:
    try:
        return features.resolve(ls.documents, item)
    except Exception as error:
        logger.exception("inlayHint/resolve failed")
        ls.log(types.MessageType.Error, f"conc-lsp: inlayHint/resolve failed: {error!r}")
        return item  # the hint as it came: without a tooltip


@guarded(None)
def hover(ls: ConcLanguageServer, params: types.HoverParams) -> types.Hover | None:
    document = ls.documents.get(params.text_document.uri)
    if document is None:
        return None
    return features.hover(document, params.position, ls.encoding, ls.settings)


@guarded(types.RelatedFullDocumentDiagnosticReport(items=[]), "diagnostics")
async def diagnostic(
    ls: ConcLanguageServer, params: types.DocumentDiagnosticParams
) -> types.DocumentDiagnosticReport:
    document = ls.documents.get(params.text_document.uri)
    if document is None:
        return types.RelatedFullDocumentDiagnosticReport(items=[])
    found = await ls.findings_for(document)
    return types.RelatedFullDocumentDiagnosticReport(
        items=diagnostics.to_diagnostics(found, document.lines, document.uri, ls.encoding)
    )


@guarded([], "code actions")
async def code_action(
    ls: ConcLanguageServer, params: types.CodeActionParams
) -> list[types.CodeAction]:
    document = ls.documents.get(params.text_document.uri)
    if document is None:
        return []
    return await ls.code_actions(document, params)


@guarded([], "code lenses")
async def code_lens(ls: ConcLanguageServer, params: types.CodeLensParams) -> list[types.CodeLens]:
    return await report_features.code_lenses(ls, params)


async def analyse(ls: ConcLanguageServer, *arguments: Any) -> dict[str, str]:
    # Not guarded: its errors are answers (InvalidParams for an unknown target).
    return await report_features.analyse(ls, list(arguments))


def shutdown(ls: ConcLanguageServer, params: None) -> None:
    ls.stop_workers()


Handler = Callable[..., Any] | Callable[..., Awaitable[Any]]

HANDLERS: tuple[tuple[str, Handler, Any], ...] = (
    (types.INITIALIZE, initialize, None),
    (types.INITIALIZED, initialized, None),
    (types.WORKSPACE_DID_CHANGE_CONFIGURATION, did_change_configuration, None),
    (types.TEXT_DOCUMENT_DID_OPEN, did_open, None),
    (types.TEXT_DOCUMENT_DID_CHANGE, did_change, None),
    (types.TEXT_DOCUMENT_DID_SAVE, did_save, None),
    (types.TEXT_DOCUMENT_DID_CLOSE, did_close, None),
    (types.TEXT_DOCUMENT_INLAY_HINT, inlay_hint, types.InlayHintOptions(resolve_provider=True)),
    (types.INLAY_HINT_RESOLVE, inlay_hint_resolve, None),
    (types.TEXT_DOCUMENT_HOVER, hover, None),
    (
        types.TEXT_DOCUMENT_DIAGNOSTIC,
        diagnostic,
        types.DiagnosticOptions(
            identifier="conc-lsp", inter_file_dependencies=False, workspace_diagnostics=False
        ),
    ),
    (
        types.TEXT_DOCUMENT_CODE_ACTION,
        code_action,
        types.CodeActionOptions(
            code_action_kinds=[types.CodeActionKind.QuickFix, actions.FIX_ALL],
            resolve_provider=False,
        ),
    ),
    (types.TEXT_DOCUMENT_CODE_LENS, code_lens, types.CodeLensOptions(resolve_provider=False)),
    (types.SHUTDOWN, shutdown, None),
)


def create_server() -> ConcLanguageServer:
    server = ConcLanguageServer()
    for method, handler, options in HANDLERS:
        server.feature(method, options)(handler)
    server.command(report_features.COMMAND)(analyse)
    return server


def serve(
    tcp: str | None = None, early: EarlyStart | None = None, stdin: ByteSource | None = None
) -> None:
    """Run the server over stdio (``stdin``, default stdin's buffer; after ``early``:
    see early_init), or over TCP at HOST:PORT; exit with LSP's code."""
    logging.basicConfig(
        level=os.environ.get("CONC_LSP_LOG_LEVEL", "WARNING").upper(),
        format="conc-lsp %(levelname)s %(name)s: %(message)s",
    )
    server = create_server()
    if tcp:
        host, _, port = tcp.rpartition(":")
        session.serve_tcp(server, host or "127.0.0.1", int(port))
    else:
        server.protocol.early_answer = early.answer if early else None
        stdin = stdin or sys.stdin.buffer
        session.serve_stdio(server, early.stream(stdin) if early else stdin)
    sys.exit(server.exit_code)
