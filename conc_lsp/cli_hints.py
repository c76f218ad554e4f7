"""`conc-lsp hints`: the checkpoint map of files, one line (or record) per hint,
with `[tool.conc-lsp.hints]` of pyproject.toml as the defaults of its flags.

The per-file part runs in the pool's workers too: no LSP import here."""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from conc_lsp.analysis.model import ModuleAnalysis, anchor_keys
from conc_lsp.analysis.parse import analyse_lines
from conc_lsp.check_files import ResolveOptions, resolver_for_process
from conc_lsp.cli_check import jobs_wanted, resolve_options, settings_for
from conc_lsp.cli_files import select_files
from conc_lsp.cli_pool import Progress, print_notes, run_in_order
from conc_lsp.labels import SHOW_ALL, is_shown, label
from conc_lsp.sources import UndecodableSource, read_source_file


@dataclass(frozen=True, slots=True)
class HintsJob:
    kinds: frozenset[str]  # the kinds to print
    style: str
    json: bool
    resolve: ResolveOptions | None
    show: str = SHOW_ALL  # "all": every hint (the map for study); "context": the editor's default
    max_length: int = 0  # characters of a label; 0: no cap


@dataclass(slots=True)
class HintsOutcome:
    lines: list[str] = field(default_factory=list)  # text output
    records: list[dict[str, object]] = field(default_factory=list)  # json output
    messages: list[str] = field(default_factory=list)  # for stderr
    warnings: list[str] = field(default_factory=list)  # for stderr, once per run
    failed: bool = False


def hints_of_file(job: HintsJob, path: Path) -> HintsOutcome:
    outcome = HintsOutcome()
    try:
        lines = list(read_source_file(path).lines)
    except OSError as error:
        outcome.messages.append(f"{path}: cannot read: {error.strerror or error}")
        outcome.failed = True
        return outcome
    except UndecodableSource as error:
        outcome.messages.append(f"{error} (file not analysed)")
        outcome.failed = True
        return outcome
    analysis: ModuleAnalysis = analyse_lines(lines)
    resolved = {}
    if job.resolve is not None:
        resolver, warning = resolver_for_process(job.resolve)
        if warning:
            outcome.warnings.append(warning)
        if resolver is not None:
            found = resolver.resolve_lines(
                lines,
                str(path.resolve()),
                job.resolve.budget,
                hint_keys=anchor_keys(analysis.hints),  # not parsed again for them
            )
            resolved = found.resolutions
    for problem in analysis.problems:
        outcome.messages.append(
            f"{path}:{problem.line + 1}:{problem.column + 1}: syntax error: {problem.message}"
            f" (lines {problem.start_line + 1}-{problem.end_line} not analysed)"
        )
    keys = anchor_keys(analysis.hints) if resolved else {}
    for hint in sorted(analysis.hints, key=lambda h: (h.keyword_line, h.keyword_column)):
        if hint.kind.value not in job.kinds:
            continue
        key = keys.get((hint.line, hint.column, hint.kind))
        verdict = resolved.get(key) if key is not None else None
        if not is_shown(hint, verdict, job.show):
            continue
        text = label(hint, job.style, verdict, job.max_length)
        if job.json:
            outcome.records.append(
                {
                    "path": str(path),
                    "line": hint.keyword_line + 1,
                    "column": hint.keyword_column,
                    "kind": hint.kind.value,
                    "label": text,
                    "function": hint.function,
                    **(
                        {"verdict": verdict.verdict.value, "callee": verdict.callee}
                        if verdict is not None
                        else {}
                    ),
                }
            )
        else:
            source_line = lines[hint.keyword_line].strip()
            outcome.lines.append(f"{path}:{hint.keyword_line + 1}: {source_line} {text}")
    return outcome


def hints_command(arguments: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    settings = settings_for(arguments.paths, err)
    kinds = (
        frozenset(arguments.kinds.split(","))
        if arguments.kinds
        else frozenset(kind.value for kind in settings.hint_kinds)
    )
    job = HintsJob(
        kinds=kinds,
        style=arguments.style or settings.label_style,
        json=arguments.format == "json",
        resolve=resolve_options(arguments, settings) if arguments.resolve else None,
        show=arguments.show,
        max_length=arguments.max_length,
    )
    selection = select_files(arguments.paths)
    for folder in selection.empty_folders:
        print(f"conc-lsp: warning: no Python files in {folder}", file=err)
    files = selection.files
    progress = Progress(len(files), err, arguments.progress, "read")
    outcomes = run_in_order(hints_of_file, job, files, jobs_wanted(arguments), progress)
    progress.finish()
    warned: set[str] = set()
    records: list[dict[str, object]] = []
    for outcome in outcomes:
        print_notes(outcome, warned, err)
        for line in outcome.lines:
            print(line, file=out)
        records.extend(outcome.records)
    if job.json:
        json.dump(records, out, indent=2, ensure_ascii=False)
        out.write("\n")
    return 2 if any(outcome.failed for outcome in outcomes) else 0
