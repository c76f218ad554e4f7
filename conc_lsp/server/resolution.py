"""Resolved hints in the editor: jedi in a background process, then a refresh.

The syntactic hints answer at once. After the user pauses, the document's
text goes to a worker process of its own (jedi holds the GIL for seconds:
in the server it would stall typing; in the rules' worker it would delay
diagnostics), which resolves the checkpoints for a time budget, the lines
last asked for by the editor (``textDocument/inlayHint``'s range: what is on
screen) first. A pass that spends its budget hands over what it found and
the document goes back in the queue: passes go on, taking turns with the
other documents, until every checkpoint of the text is done. Each result is
merged into the document's: a checkpoint keeps its last resolved label
until its new verdict is known (an edit elsewhere, or inside the same
function, does not turn labels back into plain ones). A result for an older
version than the document's is dropped (a newer pass is already scheduled);
a fresh one is kept on the document, and the client is asked to refresh its
inlay hints and diagnostics (CONC111 and the other rules use it). Once
nothing has been left to resolve for a while, the resolver process ends (its
memory goes with it; its findings are on disk for the next one).

jedi's memory is capped (``resolve.memory-limit``): a pass that goes over
it leaves the document's plain labels, says so once in the log, and the
next pass starts a new process.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from lsprotocol import types
from pygls.uris import to_fs_path

from conc_lsp.analysis.model import HintKey, Resolution
from conc_lsp.analysis.resolve_process import forget_document, resolve_document, warm_up
from conc_lsp.server.workers import JobFailed, OutOfMemory, WorkerProcess

if TYPE_CHECKING:
    from conc_lsp.server.app import ConcLanguageServer
    from conc_lsp.server.documents import Document

logger = logging.getLogger("conc_lsp")
RESOLVE_DELAY = 0.6  # seconds of quiet before a document is resolved again
OPEN_DELAY = 0.05  # a document just opened: nobody is typing yet
CONTINUE_DELAY = 0.05  # between two passes over the same text (others may go between)
IDLE_RELEASE = 30.0  # seconds with nothing to resolve before the resolver process ends

# -- in the server -------------------------------------------------------------


class Resolutions:
    """Schedules resolver passes and applies their results to the documents."""

    def __init__(self) -> None:
        self.worker = WorkerProcess("resolver", niceness=10)  # jedi waits while the user types
        self.pending: dict[str, asyncio.TimerHandle] = {}
        self.lock = asyncio.Lock()  # one pass at a time: the worker is single
        self.visible: dict[str, tuple[int, int]] = {}  # uri -> lines last asked for
        # Documents the editor has not shown yet (no inlay hint request): they
        # wait, so that restoring a session of 50 files does not keep jedi busy
        # for minutes on files nobody looks at.
        self.waiting: set[str] = set()
        self.warned: set[str] = set()
        self.over_memory: dict[str, int | None] = {}  # uri -> version that went over the cap
        self.release_timer: asyncio.TimerHandle | None = None

    def schedule(
        self, ls: ConcLanguageServer, document: Document, delay: float = RESOLVE_DELAY
    ) -> None:
        if not ls.settings.resolve_enabled:
            return
        uri = document.uri
        if uri not in self.visible:
            self.waiting.add(uri)
            return
        if (handle := self.pending.pop(uri, None)) is not None:
            handle.cancel()
        if self.release_timer is not None:
            self.release_timer.cancel()
            self.release_timer = None
        document.resolving = True
        loop = asyncio.get_event_loop()
        self.pending[uri] = loop.call_later(delay, lambda: self._start(ls, uri))

    def warm(self, ls: ConcLanguageServer) -> None:
        """Start the resolver process and jedi now, off the server's thread."""
        if not ls.settings.resolve_enabled:
            return

        async def run() -> None:
            async with self.lock:
                self.worker.memory_limit = ls.settings.resolve_memory_limit
                seconds = await self.worker.call(
                    warm_up, ls.root, ls.settings.python_interpreter, default=None, timeout=60
                )
            logger.info("resolver warmed up in %s s", seconds)

        task = asyncio.ensure_future(run())
        ls.background.add(task)
        task.add_done_callback(ls.background.discard)

    def shown(self, ls: ConcLanguageServer, document: Document, first: int, end: int) -> None:
        """The editor asked for hints of these lines: resolve them first, and
        start on a document that was waiting to be shown. A request for the
        whole document (Neovim 0.11 asks for the whole buffer) says nothing of
        what is on screen: a narrower range asked for before keeps priority."""
        whole = first <= 0 and end >= len(document.lines)
        if not whole or document.uri not in self.visible:
            self.visible[document.uri] = (first, end)
        if document.uri in self.waiting:
            self.waiting.discard(document.uri)
            self.schedule(ls, document, OPEN_DELAY)

    def schedule_all(self, ls: ConcLanguageServer) -> None:
        for document in ls.documents.values():
            self.schedule(ls, document)

    def _start(self, ls: ConcLanguageServer, uri: str) -> None:
        self.pending.pop(uri, None)
        task = asyncio.ensure_future(self.run(ls, uri))
        ls.background.add(task)
        task.add_done_callback(ls.background.discard)
        task.add_done_callback(lambda _: self._when_idle(ls))

    def _when_idle(self, ls: ConcLanguageServer) -> None:
        """Nothing scheduled, nothing running: after a while, end the resolver process."""
        if self.pending or self.lock.locked() or self.worker.closed:
            return
        if self.release_timer is not None:
            self.release_timer.cancel()
        loop = asyncio.get_event_loop()
        self.release_timer = loop.call_later(IDLE_RELEASE, lambda: self._release(ls))

    def _release(self, ls: ConcLanguageServer) -> None:
        """End the idle resolver process: freeing jedi's values inside it
        gives no memory back to the system (measured: not a megabyte), ending
        the process gives all of it. What it found is on disk: the next
        process, started by the next pass, reads it from there."""
        self.release_timer = None
        if self.pending or self.lock.locked() or not self.worker.running:
            return
        logger.info("resolver idle for %s s: stopped to free its memory", IDLE_RELEASE)
        self.worker.kill()

    async def run(self, ls: ConcLanguageServer, uri: str) -> None:
        async with self.lock:
            document = ls.documents.get(uri)
            if document is None or not ls.settings.resolve_enabled:
                return
            version = document.version
            if document.resolved_version == version and document.resolutions:
                document.resolving = False
                return
            if self.over_memory.get(uri) == version:
                document.resolving = False
                return  # this text took jedi over its memory cap: plain labels until it changes
            path = to_fs_path(uri) if uri.startswith("file:") else None
            settings = ls.settings
            self.worker.memory_limit = settings.resolve_memory_limit
            try:
                resolutions, stats = await self.worker.run(
                    resolve_document,
                    ls.root,
                    settings.python_interpreter,
                    path,
                    list(document.lines),
                    settings.resolve_budget,
                    self.visible.get(uri),
                    # the budget is checked between jedi calls: one call that
                    # never returns must not stop resolution for good
                    timeout=settings.resolve_budget * 4 + 30,
                )
            except OutOfMemory as failure:
                self._out_of_memory(ls, uri, version, failure)
                return
            except JobFailed as failure:
                if self.worker.closed:
                    return  # the server is shutting down: nothing to say
                logger.warning("resolver %s", failure)
                resolutions, stats = {}, {"failed": True}
            except Exception as error:
                logger.exception("resolving failed")
                ls.log(types.MessageType.Error, f"conc-lsp: resolving callees failed: {error!r}")
                return
        current = ls.documents.get(uri)
        if current is None or current.version != version:
            logger.debug("dropped resolutions of %s version %s (stale)", uri, version)
            return
        self._report(ls, uri, stats)
        if stats.get("failed"):
            current.resolving = False
            return
        merged = merged_resolutions(current.resolutions, resolutions, stats)
        changed = merged != current.resolutions
        current.resolutions = merged
        if stats["complete"]:
            current.resolved_version = version
            current.resolving = False
        else:
            self.schedule(ls, current, CONTINUE_DELAY)  # on where this pass stopped
        if changed:
            current.resolution_generation += 1
            ls.resolutions_changed(current)

    def _out_of_memory(
        self, ls: ConcLanguageServer, uri: str, version: int | None, failure: OutOfMemory
    ) -> None:
        """Plain labels for this text (no new try before it changes), one log line."""
        self.over_memory[uri] = version
        if (document := ls.documents.get(uri)) is not None:
            document.resolving = False
        ls.log(
            types.MessageType.Warning,
            f"conc-lsp: the resolver {failure} on {uri}: its awaits keep their plain "
            "labels (raise resolve.memory-limit to resolve them)",
        )

    def _report(self, ls: ConcLanguageServer, uri: str, stats: dict[str, Any]) -> None:
        warning = stats.get("warning")
        if warning and warning not in self.warned:
            self.warned.add(warning)
            ls.warn_once([warning])
        if stats.get("failed"):
            ls.log(types.MessageType.Warning, f"conc-lsp: could not resolve callees of {uri}")
            return
        message = (
            f"resolved {stats['resolved']} of {stats['total']} checkpoints of {uri} "
            f"in {stats['seconds']} s"
        )
        if stats.get("cached"):
            message += " (from the cache)"
        if stats["complete"]:
            # The client's log (and benchmarks) hear when a document is done.
            ls.log(types.MessageType.Log, f"conc-lsp: {message}")
        else:
            logger.info("%s (time budget spent: the next pass goes on)", message)

    def forget(self, ls: ConcLanguageServer, uri: str) -> None:
        if (handle := self.pending.pop(uri, None)) is not None:
            handle.cancel()
        self.visible.pop(uri, None)
        self.waiting.discard(uri)
        self.over_memory.pop(uri, None)
        path = to_fs_path(uri) if uri.startswith("file:") else None
        if path and self.worker.running:
            task = asyncio.ensure_future(self.worker.call(forget_document, path, default=None))
            ls.background.add(task)
            task.add_done_callback(ls.background.discard)

    def shutdown(self) -> None:
        for handle in self.pending.values():
            handle.cancel()
        self.pending.clear()
        if self.release_timer is not None:
            self.release_timer.cancel()
        self.worker.shutdown()


def merged_resolutions(
    before: dict[HintKey, Resolution],
    found: dict[HintKey, Resolution],
    stats: dict[str, Any],
) -> dict[HintKey, Resolution]:
    """A pass's results over the document's: a finished pass's replace them all;
    an unfinished one's replace those of the checkpoints it looked at, and the
    others keep what an earlier text found until their turn comes."""
    if stats.get("complete"):
        return dict(found)
    attempted = stats.get("attempted", set())
    merged = {key: value for key, value in before.items() if key not in attempted}
    merged.update(found)
    return merged
