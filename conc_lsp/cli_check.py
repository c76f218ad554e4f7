"""`conc-lsp check`: the files, the cache, the pool, the output and the exit code."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from conc_lsp import cache as results_cache
from conc_lsp import check_output, config
from conc_lsp.check_files import (
    CheckJob,
    FileOutcome,
    ResolveOptions,
    cached_outcome,
    check_file,
    index_outcomes,
    load_rules,
)
from conc_lsp.cli_files import select_files
from conc_lsp.cli_pool import Progress, default_jobs, print_notes, run_in_order
from conc_lsp.project import pyproject_search
from conc_lsp.run_memo import Recorder


def project_root(paths: Sequence[str]) -> Path:
    """The folder of the nearest pyproject.toml of the first path, else the working folder."""
    start = Path(paths[0]).resolve() if paths else Path.cwd()
    pyproject = config.find_pyproject(start)
    return pyproject.parent if pyproject else Path.cwd()


def settings_for(
    paths: Sequence[str], err: TextIO, recorder: Recorder | None = None
) -> config.Settings:
    start = Path(paths[0]).resolve() if paths else Path.cwd()
    pyproject, looked = pyproject_search(start)
    if recorder is not None:  # before the read (see Recorder)
        recorder.read([*looked, *([pyproject] if pyproject else [])])
    loaded = config.from_pyproject(config.Settings(), pyproject)
    for warning in loaded.warnings:
        print(f"conc-lsp: warning: {warning}", file=err)
    return loaded.settings


def resolve_options(
    arguments: argparse.Namespace, settings: config.Settings | None
) -> ResolveOptions:
    """Where jedi works from (the project), with which Python, for how long per file."""
    start = Path(arguments.paths[0]).resolve() if arguments.paths else Path.cwd()
    pyproject = config.find_pyproject(start)
    root = pyproject.parent if pyproject else (start if start.is_dir() else start.parent)
    interpreter = arguments.python or (settings.python_interpreter if settings else "")
    budget = settings.resolve_budget * 60 if settings else 300.0  # per file, generous
    return ResolveOptions(str(root), interpreter, budget)


def jobs_wanted(arguments: argparse.Namespace) -> int:
    return arguments.jobs if arguments.jobs else default_jobs()


def _command_line_settings(
    arguments: argparse.Namespace, settings: config.Settings, err: TextIO
) -> config.Settings | None:
    """The settings with the command line's choices on top (None after a usage error)."""
    overrides: dict[str, object] = {}
    select = arguments.select.split(",") if arguments.select else []
    if arguments.extend_select:
        select = [*(select or settings.select), *arguments.extend_select.split(",")]
    if select:
        overrides["select"] = select
    if arguments.ignore:
        overrides["ignore"] = list(settings.ignore) + arguments.ignore.split(",")
    if arguments.fail_on:
        overrides["fail-on"] = arguments.fail_on
    if arguments.force_exclude is not None:
        overrides["force-exclude"] = arguments.force_exclude
    if not overrides:
        return settings
    loaded = config.apply(settings, overrides, "command line")
    if loaded.warnings:
        for warning in loaded.warnings:
            print(f"conc-lsp: error: {warning.removesuffix(' (ignored)')}", file=err)
        return None
    return loaded.settings


def check_command(
    arguments: argparse.Namespace, out: TextIO, err: TextIO, memo: Path | None = None
) -> int:
    """The run; with ``memo``, recorded there for the next identical one (run_memo)."""
    progress_err = err  # the progress line is never recorded: a replay shows none
    recorder = None
    if memo is not None:
        recorder = Recorder(arguments, out, err)
        out, err = recorder.out, recorder.err
    settings = _command_line_settings(arguments, settings_for(arguments.paths, err, recorder), err)
    if settings is None:
        return 2
    root = project_root(arguments.paths)
    selection = select_files(
        arguments.paths, settings.exclude, force_exclude=settings.force_exclude, root=root
    )
    if recorder is not None:
        recorder.read([*selection.consulted, *selection.files])
    for folder in selection.empty_folders:
        print(f"conc-lsp: warning: no Python files in {folder}", file=err)
    cache = None
    if not arguments.no_cache and selection.files:
        cache = results_cache.open_cache(root, settings, arguments.cache_dir)
    resolve = _resolve_wanted(arguments, settings, cache)
    options = resolve_options(arguments, settings) if resolve else None
    job = CheckJob(
        settings=settings,
        fixes=arguments.format in ("json", "sarif"),
        fix=arguments.fix or arguments.unsafe_fixes,
        unsafe=arguments.unsafe_fixes,
        # Resolved results depend on other files too: those are never cached.
        cache=cache if options is None else None,
        resolve=options,
    )
    index = job.cache.status_index() if job.cache is not None else None
    outcomes: list[FileOutcome | None] = [
        cached_outcome(job, path, index) for path in selection.files
    ]
    missing = [path for path, outcome in zip(selection.files, outcomes, strict=True) if not outcome]
    progress = Progress(len(missing), progress_err, arguments.progress, "checked")
    jobs = jobs_wanted(arguments)
    computed = iter(
        run_in_order(check_file, job, missing, jobs, progress, lambda: load_rules(job.settings))
    )
    progress.finish()
    done = [outcome or next(computed) for outcome in outcomes]
    if index is not None:
        index_outcomes(index, job, done)
        index.save()
    if job.cache is not None and missing:
        results_cache.prune(job.cache)
    code = _report(arguments, settings, done, out, err)
    if recorder is not None and memo is not None and job.cache is not None:
        recorder.save(memo, code)
    return code


def _resolve_wanted(
    arguments: argparse.Namespace, settings: config.Settings, cache: results_cache.Cache | None
) -> bool:
    if arguments.resolve is not None:
        return bool(arguments.resolve)
    if not settings.resolve_enabled:
        return False
    # By default only when an enabled rule reads the results: jedi costs time.
    # The cache remembers the answer, so that a run it answers loads no rule.
    facts = cache.run_facts() if cache is not None else {}
    if isinstance(facts.get("resolve"), bool):
        return bool(facts["resolve"])
    # The rules load only when the cache does not know (start-up cost)
    from conc_lsp.rules import enabled_rules

    wanted = any(rule.uses_resolution for rule in enabled_rules(settings))
    if cache is not None:
        cache.store_run_facts({**facts, "resolve": wanted})
    return wanted


def _report(
    arguments: argparse.Namespace,
    settings: config.Settings,
    outcomes: list[FileOutcome],
    out: TextIO,
    err: TextIO,
) -> int:
    warned: set[str] = set()
    for outcome in outcomes:
        print_notes(outcome, warned, err)
    unreadable = sum(1 for outcome in outcomes if outcome.failed)
    results = [
        check_output.FileResult(outcome.path, outcome.findings, outcome.problems)
        for outcome in outcomes
        if not (outcome.failed and not outcome.findings and not outcome.problems)
    ]
    totals = check_output.Totals(len(results), unreadable, settings.fail_on)
    if arguments.statistics:
        text = check_output.statistics(results)
    elif arguments.format == "json":
        text = check_output.as_json(results)
    elif arguments.format == "sarif":
        text = check_output.sarif(results)
    elif arguments.format == "github":
        text = check_output.github(results)
    else:
        broken = check_output.syntax_errors(results)
        if broken:
            print(broken, file=err)
        text = check_output.text(results, check_output.use_colour(out))
        summary = check_output.summary(results, totals)
        text = f"{text}\n{summary}" if text else summary
        if arguments.fix or arguments.unsafe_fixes:
            text += _fixed_line(outcomes, arguments.unsafe_fixes)
    if text:
        print(text, file=out)
    if unreadable:
        return 2
    failing = any(
        result.problems or any(settings.fails(found.severity.value) for found in result.findings)
        for result in results
    )
    return 1 if failing else 0


def _fixed_line(outcomes: list[FileOutcome], unsafe: bool) -> str:
    fixed = sum(outcome.fixed for outcome in outcomes)
    text = f"\nFixed {fixed} finding{'s' if fixed != 1 else ''}."
    fixable = sum(
        1
        for outcome in outcomes
        for finding in outcome.findings
        if finding.fix is not None and not finding.fix.safe
    )
    if fixable and not unsafe:
        text += f" {fixable} more with --unsafe-fixes."
    return text
