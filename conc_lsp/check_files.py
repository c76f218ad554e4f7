"""One file of `conc-lsp check`: read it, check it (and fix it), cache the result.

This runs in the command's own process or in a worker of its pool, so it
imports no LSP code and returns plain data (dataclasses the pool pickles).
"""

from __future__ import annotations

import hashlib
import importlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from conc_lsp.cache import Cache, CachedResult, StatusIndex
from conc_lsp.cache_files import FileStatus, file_status
from conc_lsp.config import Settings
from conc_lsp.sources import SourceNotWritten, UndecodableSource, read_source_file, write_source

if TYPE_CHECKING:
    from conc_lsp.analysis.model import Finding, HintKey, Resolution, SyntaxProblem
    from conc_lsp.analysis.resolve import Resolver


@dataclass(frozen=True, slots=True)
class ResolveOptions:
    """How to make a jedi resolver (each process makes its own)."""

    root: str
    interpreter: str
    budget: float  # seconds per file


@dataclass(frozen=True, slots=True)
class CheckJob:
    """What every file of one `check` run shares."""

    settings: Settings
    fixes: bool  # compute each finding's fix (json and sarif say which have one)
    fix: bool  # apply the safe fixes in place
    unsafe: bool  # ... and the unsafe ones
    cache: Cache | None  # None with --no-cache, and when resolving (other files matter)
    resolve: ResolveOptions | None

    @property
    def with_fixes(self) -> bool:
        return self.fixes or self.fix


@dataclass(slots=True)
class FileOutcome:
    """One file's part of the output."""

    path: str
    findings: list[Finding] = field(default_factory=list)
    problems: list[SyntaxProblem] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)  # for stderr, in order
    warnings: list[str] = field(default_factory=list)  # for stderr, once per run
    failed: bool = False  # not read, or its fixes not written: the run exits 2
    fixed: int = 0
    from_cache: bool = False
    # The file's status before it was read, when its result went into the cache
    # (the status index records it).
    cached_status: FileStatus | None = None


def cached_outcome(job: CheckJob, path: Path, index: StatusIndex | None) -> FileOutcome | None:
    """The file's outcome from the cache, when it holds one the job can use: by its
    status from ``index`` (no read), else by its content from the entries."""
    if job.cache is None:
        return None
    name = str(path)
    status = file_status(path) if index is not None else None
    found = None
    if index is not None and status is not None:
        found = index.lookup(name, job.with_fixes, status)
    if found is None:
        try:
            content = hashlib.sha256(path.read_bytes()).digest()
        except OSError:
            return None
        found = job.cache.load(job.cache.key(name, content, job.with_fixes))
        if found is not None and index is not None and status is not None:
            index.record(name, job.with_fixes, status, found)
    if found is None or (job.fix and found.has_fix(job.unsafe)):
        return None  # a file --fix would rewrite is checked again, never taken from here
    return FileOutcome(name, found.findings, found.problems, from_cache=True)


def index_outcomes(index: StatusIndex, job: CheckJob, outcomes: list[FileOutcome]) -> None:
    """Record in ``index`` the results this run computed and cached."""
    for outcome in outcomes:
        if outcome.cached_status is not None:
            result = CachedResult(outcome.findings, outcome.problems)
            index.record(outcome.path, job.with_fixes, outcome.cached_status, result)


def load_rules(settings: Settings) -> None:
    """Load the checks and the rules ``settings`` run once, before the pool forks
    its workers (``check_file`` defers them: start-up cost of a run the cache
    answers; per-file ignores only take rules away)."""
    importlib.import_module("conc_lsp.diagnose")
    importlib.import_module("conc_lsp.rules").enabled_rules(settings)


def check_file(job: CheckJob, path: Path) -> FileOutcome:
    """Check (and with ``job.fix``, fix) one file."""
    outcome = FileOutcome(str(path))
    status = file_status(path) if job.cache is not None else None  # before the read
    try:
        source = read_source_file(path)
    except OSError as error:
        outcome.messages.append(f"{path}: cannot read: {error.strerror or error}")
        outcome.failed = True
        return outcome
    except UndecodableSource as error:  # like a syntax error; never fixed
        outcome.problems.append(error.problem())
        return outcome
    # The rules load only for a file the cache could not answer (start-up cost).
    from conc_lsp.diagnose import ParsedModule, check_lines, fix_lines, parse_module

    lines = list(source.lines)
    resolutions: dict[HintKey, Resolution] | None = None
    parsed: ParsedModule | None = None
    if job.resolve is not None:
        resolver, warning = resolver_for_process(job.resolve)
        if warning:
            outcome.warnings.append(warning)
        if resolver is not None:
            # jedi's side loads only when a run resolves (start-up cost)
            from conc_lsp.resolve_demand import resolve_for_rules

            # Parsed once, for the resolution and the rules.
            parsed = parse_module(lines)
            found = resolve_for_rules(
                resolver,
                lines,
                str(path.resolve()),
                job.settings,
                job.resolve.budget,
                str(path),
                parsed=parsed,
            )
            resolutions = found.resolutions
    settings = job.settings
    cacheable = True
    if job.fix:
        fixed, applied, result = fix_lines(
            lines, settings, str(path), unsafe=job.unsafe, resolutions=resolutions
        )
        if applied:
            cacheable = False  # the result is the fixed text's, not the bytes read
            try:
                write_source(source, fixed)
            except SourceNotWritten as error:
                outcome.messages.append(f"{path}: fixes not written: {error}")
                outcome.failed = True
                # The file keeps every finding: report those, not the fixed text's.
                result = check_lines(
                    lines, settings, str(path), fixes=True, resolutions=resolutions
                )
            else:
                outcome.fixed = applied
    else:
        result = check_lines(
            lines, settings, str(path), fixes=job.fixes, resolutions=resolutions, parsed=parsed
        )
    for message in result.rule_errors:
        outcome.messages.append(f"{path}: internal error: {message}")
    outcome.findings = result.findings
    outcome.problems = result.problems
    if job.cache is not None and cacheable and not result.rule_errors:
        key = job.cache.key(str(path), source.digest, job.with_fixes)
        job.cache.store(key, CachedResult(result.findings, result.problems))
        outcome.cached_status = status
    return outcome


# The resolver of each process (a forked worker must not share its parent's).
_resolvers: dict[tuple[int, ResolveOptions], tuple[Resolver | None, str]] = {}


def resolver_for_process(options: ResolveOptions) -> tuple[Resolver | None, str]:
    """This process's resolver for ``options``, or None and why it cannot be made."""
    key = (os.getpid(), options)
    if key not in _resolvers:
        # jedi loads only when a run resolves (start-up cost)
        from conc_lsp.analysis.resolve import Resolver

        try:
            _resolvers[key] = (Resolver(options.root, options.interpreter or None), "")
        except Exception as error:  # noqa: BLE001 - jedi's errors for a bad interpreter vary
            warning = (
                f"conc-lsp: warning: cannot resolve callees with {options.interpreter!r}: {error}"
            )
            _resolvers[key] = (None, warning)
    return _resolvers[key]
