"""Does this await really checkpoint? Follow callees to their definitions with jedi.

For each checkpoint of a document (await, async with, async for), jedi finds
what the callee is (a plain call of the module's own `async def` is found by
its tree: ``resolve_local.py``): a library primitive is looked up in the knowledge table
(``conc_lsp/knowledge/apis.toml``); a user's own ``async def`` is analysed
(``analysis/control_paths.py``) to see whether every path reaches a checkpoint,
following its own awaits the same way, across modules, with recursion and
cycles handled. Results are cached per function, in memory and on disk
(``analysis/resolve_cache.py``), with the files they were read from: a
verdict is used again while those files are unchanged, in this run and the
next ones.

A pass over a document stops when its time budget is spent; the next pass
over the same text goes on where it stopped. jedi's scripts and inferred
values live for a few passes (one inference state shared by all files:
builtins and libraries are inferred once), until a document's text changes.

Nothing is imported or executed: jedi reads source files. It reads the
packages of the interpreter the user configured (which jedi then runs to ask
for its paths), or else those of the interpreter running conc-lsp, never one
found in the workspace.
"""

from __future__ import annotations

import ast
import logging
import os
import time
from collections.abc import Callable, Collection
from pathlib import Path
from typing import TYPE_CHECKING, Any

from conc_lsp.analysis.collector import tree_hints
from conc_lsp.analysis.control_paths import (
    PathResult,
    PathWalker,
    decorator_name,
    is_generator,
)
from conc_lsp.analysis.jedi_setup import (
    environment_key,
    forget_parsed,
    make_environment,
    one_inference_state,
    speed_up_parso,
)
from conc_lsp.analysis.model import (
    Anchor,
    HintKey,
    HintKind,
    Resolution,
    Verdict,
    anchor_keys,
)
from conc_lsp.analysis.resolve_cache import (
    Entry,
    FileHashes,
    FunctionVerdict,
    VerdictCache,
    default_folder,
    text_hash,
)
from conc_lsp.analysis.resolve_effects import (
    BudgetSpent,
    JediEffects,
    combined,
    described,
    in_abstract_class,
    library_awaited,
    library_entered,
    library_iterated,
    override_point,
    table_entry,
)
from conc_lsp.analysis.resolve_local import local_definition
from conc_lsp.analysis.resolve_sources import (
    DocumentResolution,
    Source,
    Sources,
    Target,
    checkpoint_nodes,
    keyed_hints,
)
from conc_lsp.analysis.text import utf8_to_codepoint

if TYPE_CHECKING:
    import jedi
    from jedi.api.classes import Name

logger = logging.getLogger("conc_lsp")

ACM_DECORATORS = frozenset({"asynccontextmanager", "acm"})
KEPT_SOURCES = 64  # files whose trees (and verdicts) stay in memory
PASSES_PER_STATE = 32  # passes that share jedi's inference state before it is dropped
MAX_CYCLE_ROUNDS = 4
MAX_DEPTH = 12  # helpers followed below one await
MAX_CANDIDATES = 4  # callees of one await followed when jedi finds several

# A pass's progress: (checkpoints done, checkpoints in the document).
Progress = Callable[[int, int], None]

__all__ = ["DocumentResolution", "FunctionVerdict", "Resolver", "keyed_hints"]


class Resolver:
    """Resolves checkpoints for documents of one workspace; keeps its caches.

    ``cache``: the folder of verdicts kept across runs, ``True`` for the
    default one (``resolve_cache.default_folder``), ``False`` for none."""

    def __init__(
        self,
        root: str | None = None,
        interpreter: str | None = None,
        cache: bool | str | Path = True,
    ) -> None:
        # jedi loads only when resolving (start-up cost)
        import jedi

        speed_up_parso()
        self.root = root or os.getcwd()
        self.environment = make_environment(interpreter)
        self.project = jedi.Project(
            self.root, environment_path=interpreter or None, smart_sys_path=True
        )
        self.cache: VerdictCache | None = None
        if cache is not False:
            folder = default_folder() if cache is True else Path(cache)
            self.cache = VerdictCache(folder, environment_key(self.environment, self.root))
        self._sources = Sources(KEPT_SOURCES, self._save)
        self._in_progress: dict[tuple[str, int], Verdict] = {}
        self._assumed: set[tuple[str, int]] = set()  # in-progress verdicts relied on
        self._deadline = float("inf")
        self._state: Any = None  # jedi's inference state, shared by the scripts of a pass
        self._state_passes = 0
        self._reading: list[set[str]] = []  # files read by the verdicts being computed
        self._files = FileHashes(self._buffer_hash)

    # -- documents -----------------------------------------------------------

    def resolve_lines(
        self,
        lines: list[str],
        path: str | None,
        budget: float = 5.0,
        first_lines: tuple[int, int] | None = None,
        progress: Progress | None = None,
        stop_after_shown: bool = False,
        wanted: Collection[HintKey] | None = None,
        hint_keys: dict[Anchor, HintKey] | None = None,
    ) -> DocumentResolution:
        """Resolve every checkpoint of a document's text (``path`` may not exist on disk),
        or only those of ``wanted`` (what the rules read: ``conc_lsp/resolve_demand.py``);
        ``hint_keys``: the checkpoints' keys by anchor (else: of the tree parsed here).

        Checkpoints on ``first_lines`` (0-based, end exclusive: what the
        editor shows) go first; the rest follow while the budget lasts (with
        ``stop_after_shown``, the pass ends once those are done, so that they
        can be shown at once). A pass over the same text as the last one goes
        on where that one stopped. ``progress`` hears of each checkpoint done.
        """
        started = time.monotonic()
        self._files.new_pass()
        result = DocumentResolution()
        key = path or "<buffer>"
        text = "\n".join(lines)
        known = self._sources.get(key)
        stored: Entry | None = None
        if known is not None and known.stamp == text:
            stored = self._entry(key, known)
        elif self.cache is not None and path is not None:
            stored = self.cache.load(key, text_hash(text))  # before parsing: often all we need
        if (
            stored
            and stored.resolutions is not None
            and stored.covers(wanted)
            and self._files.unchanged(stored.document_stamps)
        ):
            result.resolutions = dict(stored.resolutions)
            result.total = stored.total
            result.resolved = len(stored.resolutions)
            result.attempted = set(stored.resolutions) | (stored.attempted or set())
            result.cached = True
            result.seconds = time.monotonic() - started
            return result
        source = self._buffer(key, lines, text)
        if stored is not None:
            source.entry = stored
        if source.tree is None:
            return result
        stored = self._entry(key, source)
        earlier, some = stored.resolutions, stored.attempted  # an earlier run did some
        fresh = not source.done and self._files.unchanged(stored.document_stamps)
        if fresh and earlier is not None and some is not None:
            source.done = {done: earlier.get(done) for done in some}
            source.done_files = set(stored.document_stamps)
        keys = hint_keys if hint_keys is not None else anchor_keys(tree_hints(source.tree, lines))
        targets = [
            (hint_key, target)
            for target in checkpoint_nodes(source.tree, lines)
            if (hint_key := keys.get((target.line, target.column, target.kind))) is not None
            and (wanted is None or hint_key in wanted)
        ]
        result.total = len(targets)
        shown = 0  # checkpoints on ``first_lines``: they go first
        if first_lines is not None:
            low, high = first_lines
            targets.sort(key=lambda pair: not low <= pair[1].line < high)
            shown = sum(low <= target.line < high for _, target in targets)
        if source.done and not self._files.unchanged(source.done_stamps):
            source.done.clear()  # a file they were read from has changed since
            source.done_files.clear()
        self._reading.append(source.done_files)
        # Each pass resolves one checkpoint at least, however small its budget:
        # passes that go on where the last stopped always come to an end.
        self._deadline = float("inf")
        resolved_here = 0
        try:
            for number, (hint_key, target) in enumerate(targets):
                if number == shown and resolved_here and stop_after_shown:
                    raise BudgetSpent  # the lines on screen are done: show them now
                if hint_key not in source.done:
                    source.done[hint_key] = self._resolve_target(key, source, target)
                    resolved_here += 1
                    self._deadline = started + budget
                    if progress is not None:
                        progress(len(source.done), result.total)
        except BudgetSpent:
            result.complete = False
        finally:
            self._reading.pop()
        source.done_stamps = self._files.stamps(source.done_files - {key})
        result.attempted = set(source.done)
        result.resolutions = {k: found for k, found in source.done.items() if found is not None}
        result.resolved = len(result.resolutions)
        if result.complete and self.cache is not None and key != "<buffer>":
            stored.resolutions = dict(result.resolutions)
            stored.attempted = None if wanted is None else set(source.done)
            stored.total = result.total
            stored.document_stamps = source.done_stamps
            stored.dirty = True
        self._end_pass()
        result.seconds = time.monotonic() - started
        return result

    def known(self, lines: list[str], path: str) -> DocumentResolution:
        """What earlier passes over this text found (this run's or the cache's),
        without resolving anything: ``attempted`` says which checkpoints they did."""
        result = DocumentResolution(cached=True)
        text = "\n".join(lines)
        source = self._sources.get(path)
        if source is not None and source.stamp == text and source.done:
            if self._files.unchanged(source.done_stamps):
                result.attempted = set(source.done)
                result.resolutions = {k: v for k, v in source.done.items() if v is not None}
            return result
        if self.cache is None:
            return result
        stored = self.cache.load(path, text_hash(text))
        if stored.resolutions is not None and self._files.unchanged(stored.document_stamps):
            result.resolutions = dict(stored.resolutions)
            result.attempted = set(stored.resolutions) | (stored.attempted or set())
        return result

    def forget(self, path: str) -> None:
        source = self._sources.pop(path, None)
        if source is not None:
            self._save(path, source)

    def release(self, path: str) -> None:
        """Let a finished document's trees go, and jedi's values (they hold its
        parso tree): the server's resolver stays the size of one document and the
        libraries, not of every file opened (what was found is on disk)."""
        self.forget(path)
        self._drop_state()
        forget_parsed(path)

    def save(self) -> None:
        """Write the new verdicts to the cache on disk."""
        for path, source in self._sources.items():
            self._save(path, source)

    def _end_pass(self) -> None:
        self.save()
        self._state_passes += 1
        if self._state_passes >= PASSES_PER_STATE:  # bounded: jedi's caches only grow
            self._drop_state()

    # -- the cache on disk ---------------------------------------------------

    def _entry(self, path: str, source: Source) -> Entry:
        if source.entry is None:
            if self.cache is None or path == "<buffer>":
                source.entry = Entry()
            else:
                source.entry = self.cache.load(path, source.content_hash)
        return source.entry

    def _save(self, path: str, source: Source) -> None:
        entry = source.entry
        if entry is not None and entry.dirty and self.cache is not None:
            self.cache.store(path, source.content_hash, entry)

    def _buffer_hash(self, path: str) -> str | None:
        source = self._sources.get(path)
        return source.content_hash if source is not None and source.is_buffer else None

    def _read_from(self, paths: set[str] | frozenset[str]) -> None:
        """The verdicts being computed depend on these files."""
        for reading in self._reading:
            reading.update(paths)

    # -- sources -------------------------------------------------------------

    def _buffer(self, key: str, lines: list[str], text: str) -> Source:
        source, replaced = self._sources.buffer(key, lines, text)
        if replaced:
            self._drop_state()  # new text: what jedi inferred from the old one is stale
        return source

    def _drop_state(self) -> None:
        self._state = None
        self._state_passes = 0
        for source in self._sources.values():
            source.script = None

    def _file(self, path: str) -> Source | None:
        self._read_from({path})
        source = self._sources.file(path)
        if source is not None and not source.is_buffer:
            self._files.known(path, source.stamp, source.content_hash)  # type: ignore[arg-type]
        return source

    def _script(self, key: str, source: Source) -> jedi.Script:
        if source.script is None:
            # jedi loads only when resolving (start-up cost)
            import jedi

            path = None if key == "<buffer>" else key
            source.script = jedi.Script(
                "\n".join(source.lines),
                path=path,
                project=self.project,
                environment=self.environment,
            )
            self._state = one_inference_state(source.script, self._state)
        return source.script

    # -- one checkpoint ------------------------------------------------------

    def _resolve_target(self, key: str, source: Source, target: Target) -> Resolution | None:
        if time.monotonic() > self._deadline:
            raise BudgetSpent
        if target.kind is HintKind.AWAIT:
            local, found = self.local_awaited(key, source, target.expression, depth=0)
            if local:
                return found
        names = self._infer(key, source, target.expression)
        if not names:
            return None
        name = names[0]
        if target.kind is HintKind.AWAIT:
            return self.awaited_any(names, target.expression, depth=0)
        if target.kind is HintKind.ASYNC_WITH:
            return self._entered(name, target.expression)
        return self._iterated(name)

    def _infer(self, key: str, source: Source, expression: ast.expr) -> list[Name]:
        """What the callee of ``expression`` (or the expression itself) is."""
        node = expression.func if isinstance(expression, ast.Call) else expression
        if isinstance(node, ast.Attribute):
            line = node.end_lineno or node.lineno
            text = source.lines[line - 1] if line - 1 < len(source.lines) else ""
            column = utf8_to_codepoint(text, node.end_col_offset or 0) - len(node.attr)
        elif isinstance(node, ast.Name):
            line = node.lineno
            text = source.lines[line - 1] if line - 1 < len(source.lines) else ""
            column = utf8_to_codepoint(text, node.col_offset)
        else:
            return []
        try:
            script = self._script(key, source)
            # jedi gives up on a node inferred 300 times by its state: a count
            # for one question, not for every file that shares the state.
            self._state.inferred_element_counts = {}
            names: list[Name] = script.infer(line, column)
        except Exception as error:  # noqa: BLE001 - jedi fails on odd code; we fall back
            logger.debug("jedi could not infer %s:%d:%d: %r", key, line, column, error)
            return []
        # What the names are depends on the files that define them.
        self._read_from({str(name.module_path) for name in names if name.module_path})
        return names

    def awaited_any(self, names: list[Name], expression: ast.expr, depth: int) -> Resolution | None:
        """What awaiting a callee that may be any of ``names`` does: a union or
        overrides that disagree make it *sometimes*; one unknown makes it unknown."""
        found: list[Resolution] = []
        seen: set[tuple[str, int | None]] = set()
        for name in names[:MAX_CANDIDATES]:
            identity = (str(name.module_path), name.line)
            if identity in seen:
                continue
            seen.add(identity)
            resolution = self._awaited(name, expression, depth)
            if resolution is None:
                return None
            found.append(resolution)
        if not found:
            return None
        if len({resolution.verdict for resolution in found}) == 1:
            return found[0]
        callees = " | ".join(dict.fromkeys(resolution.callee for resolution in found))
        chain = tuple(step for resolution in found for step in resolution.chain[:1])
        return Resolution(Verdict.SOMETIMES, callees, "one of several callees", chain)

    def _awaited(self, name: Name, expression: ast.expr, depth: int) -> Resolution | None:
        entry = table_entry(name)
        if entry is not None:
            return library_awaited(entry, expression)
        if name.type != "function":
            return None
        path = str(name.module_path) if name.module_path else None
        if path is None or not path.endswith(".py") or name.line is None:
            return None
        source = self._file(path)
        if source is None:
            return None
        node = source.functions.get(name.line)
        if not isinstance(node, ast.AsyncFunctionDef):
            return None  # a sync def returning an awaitable
        return self._function_resolution(path, source, node, name.full_name or node.name, depth)

    def local_awaited(
        self, path: str, source: Source, expression: ast.expr, depth: int
    ) -> tuple[bool, Resolution | None]:
        """(True, what awaiting ``expression`` does) when the module's tree alone
        finds its callee (``resolve_local.py``); else (False, None): ask jedi."""
        found = local_definition(path, source, expression, self._file)
        if found is None:
            return False, None
        path, source, node = found
        self._read_from({path})
        return True, self._function_resolution(path, source, node, node.name, depth)

    def _function_resolution(
        self, path: str, source: Source, node: ast.AsyncFunctionDef, qualname: str, depth: int
    ) -> Resolution | None:
        function = self._function_verdict(path, source, node, qualname, depth)
        if function is None:
            return None
        verdict = function.verdict
        if verdict is Verdict.ASSUMED and not self._in_progress:
            verdict = Verdict.ALWAYS  # vacuously: it never returns without one
        return Resolution(
            verdict,
            function.qualname,
            function.reason,
            function.chain,
            fast_path=function.fast_path,
        )

    def _entered(self, name: Name, expression: ast.expr) -> Resolution | None:
        entry = table_entry(name)
        if entry is not None and (entry.enter is not None or entry.exit is not None):
            return library_entered(entry)
        # A class of the user's with async __aenter__ / __aexit__.
        klass = self._class_of(name)
        if klass is not None:
            path, node = klass
            entering = self._method_verdict(path, node, "__aenter__")
            leaving = self._method_verdict(path, node, "__aexit__")
            if entering is None and leaving is None:
                return None
            enter_verdict = entering.verdict if entering else Verdict.UNKNOWN
            exit_verdict = leaving.verdict if leaving else Verdict.UNKNOWN
            overall = combined(enter_verdict, exit_verdict)
            parts = [part for part in (entering, leaving) if part is not None]
            chain = tuple(item for part in parts for item in part.chain)
            reason = next((part.reason for part in parts if not part.verdict.guaranteed), "")
            return Resolution(
                overall, node.name, reason, chain, enter=enter_verdict, exit=exit_verdict
            )
        return None

    def _iterated(self, name: Name) -> Resolution | None:
        entry = table_entry(name)
        if entry is None or entry.iteration is None:
            return None
        return library_iterated(entry)

    # -- functions -----------------------------------------------------------

    def _function_verdict(
        self, path: str, source: Source, node: ast.AsyncFunctionDef, qualname: str, depth: int
    ) -> FunctionVerdict | None:
        if is_generator(node):
            return None  # an async generator
        if override_point(node, source) or in_abstract_class(source, node):
            return None  # abstract, protocol or stub: its overrides decide (unknown)
        if any(decorator_name(d) in ACM_DECORATORS for d in node.decorator_list):
            return None
        return self._verdict_of(path, source, node, qualname, depth)

    def _method_verdict(
        self, path: str, klass: ast.ClassDef, method: str
    ) -> FunctionVerdict | None:
        source = self._file(path)
        if source is None:
            return None
        for statement in klass.body:
            if isinstance(statement, ast.AsyncFunctionDef) and statement.name == method:
                return self._verdict_of(path, source, statement, f"{klass.name}.{method}", depth=0)
        return None

    def _class_of(self, name: Name) -> tuple[str, ast.ClassDef] | None:
        if name.type not in ("instance", "class") or name.module_path is None:
            return None
        path = str(name.module_path)
        if not path.endswith(".py") or name.line is None:
            return None
        source = self._file(path)
        if source is None:
            return None
        klass = source.classes.get(name.line)
        return (path, klass) if klass is not None else None

    def _verdict_of(
        self,
        path: str,
        source: Source,
        node: ast.AsyncFunctionDef,
        qualname: str,
        depth: int,
    ) -> FunctionVerdict:
        cached = source.verdicts.get(node.lineno)
        if cached is not None and not self._files.unchanged(source.verdict_stamps[node.lineno]):
            cached = None  # a file it was read from has changed since
        if cached is None:
            cached = self._stored_verdict(path, source, node.lineno)
        if cached is not None:
            self._read_from(set(source.verdict_stamps[node.lineno]))
            return cached
        key = (path, node.lineno)
        short = qualname.rsplit(".", 1)[-1] if "." in qualname else qualname
        where = f"{os.path.basename(path)}:{node.lineno}"
        if key in self._in_progress:  # recursion: assume, then check the assumption
            self._assumed.add(key)
            return FunctionVerdict(self._in_progress[key], short, where, "", ())
        if depth > MAX_DEPTH:
            return FunctionVerdict(Verdict.UNKNOWN, short, where, "too deep to follow", ())
        outer = self._assumed
        # Recursion: start from "returns only after a checkpoint, brings none
        # of its own" and walk again with each result until it holds (the
        # least fixpoint of both "may return without" and "may checkpoint").
        assumed = Verdict.ASSUMED
        verdict = FunctionVerdict(Verdict.UNKNOWN, short, where, "", ())
        reading: set[str] = set()
        self._reading.append(reading)
        try:
            for _round in range(MAX_CYCLE_ROUNDS):
                self._in_progress[key] = assumed
                self._assumed = set()
                try:
                    verdict, found = self._walk_function(path, source, node, short, where, depth)
                finally:
                    del self._in_progress[key]
                if key not in self._assumed or found == assumed:
                    break
                assumed = found
        finally:
            self._reading.pop()
        self._read_from(reading)
        pending = self._assumed - {key}  # assumptions about callers still being walked
        self._assumed = outer | pending
        if not pending:
            stamps = self._files.stamps(reading - {path})
            source.verdicts[node.lineno] = verdict
            source.verdict_stamps[node.lineno] = stamps
            if self.cache is not None:
                entry = self._entry(path, source)
                entry.verdicts[node.lineno] = (verdict, stamps)
                entry.dirty = True
        return verdict

    def _stored_verdict(self, path: str, source: Source, line: int) -> FunctionVerdict | None:
        """The verdict the cache on disk holds for this function, if its files are unchanged."""
        if self.cache is None:
            return None
        stored = self._entry(path, source).verdicts.get(line)
        if stored is None or not self._files.unchanged(stored[1]):
            return None
        verdict, stamps = stored
        source.verdicts[line] = verdict
        source.verdict_stamps[line] = stamps
        return verdict

    def _walk_function(
        self,
        path: str,
        source: Source,
        node: ast.AsyncFunctionDef,
        short: str,
        where: str,
        depth: int,
    ) -> tuple[FunctionVerdict, Verdict]:
        effects = JediEffects(self, path, source, depth)
        result: PathResult = PathWalker(effects).function(node)
        verdict = described(result, effects.found, node, short, where)
        return verdict, verdict.verdict


# -- helpers ------------------------------------------------------------------


# The resolvers of the language server's resolver process, by (root, interpreter)
# (see ``resolve_process.py``; tests clear it).
_RESOLVERS: dict[tuple[str | None, str], Resolver] = {}
