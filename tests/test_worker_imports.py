"""The rules, report and resolver workers import no LSP code (issue 15,
start-up): their jobs live in conc_lsp/jobs.py and
conc_lsp/analysis/resolve_process.py, not in the server package, so a worker
does not pay for lsprotocol and pygls when it starts or runs a job."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from conc_lsp.analysis.resolve_process import resolve_document
from conc_lsp.analysis.text import split_lines
from conc_lsp.jobs import compute_lenses, compute_report
from conc_lsp.report import Target
from conc_lsp.server.diagnostics import JOB_SECONDS, Worker
from conc_lsp.server.resolution import Resolutions
from tests.rule_settings import SEED_SETTINGS
from tests.test_processes import TEXT

LSP_MODULES = (
    "sorted(m for m in __import__('sys').modules if m.split('.')[0] in ('lsprotocol', 'pygls'))"
)


def test_the_workers_run_every_job_without_importing_lsp_code() -> None:
    worker = Worker()
    lines = split_lines(TEXT)

    async def scenario() -> tuple[list[object], list[object], list[str], list[str], str]:
        try:
            findings = await worker.compute("doc", lines, SEED_SETTINGS, None)
            fixes = await worker.fixes("doc", lines, SEED_SETTINGS, None, 0, len(lines))
            lenses = await worker.run(compute_lenses, "doc", lines, SEED_SETTINGS, None)
            in_rules: list[str] = await worker.run(eval, LSP_MODULES)
            report = await worker.reports.run(
                compute_report,
                "doc",
                lines,
                SEED_SETTINGS,
                None,
                Target(),
                "doc.py",
                None,
                timeout=JOB_SECONDS,
            )
            in_reports: list[str] = await worker.reports.run(eval, LSP_MODULES)
            return findings, fixes + lenses, in_rules, in_reports, report
        finally:
            worker.shutdown()

    findings, others, in_rules, in_reports, report = asyncio.run(scenario())
    assert findings and others and "CONC101" in report  # every job ran
    assert in_rules == []
    assert in_reports == []


def test_the_resolver_resolves_without_importing_lsp_code(tmp_path: Path) -> None:
    resolver = Resolutions().worker  # the server's resolver process, as it starts it
    lines = split_lines("import trio\n\n\nasync def main():\n    await trio.sleep(1)\n")

    async def scenario() -> tuple[dict[object, object], list[str]]:
        try:
            found, _ = await resolver.run(
                resolve_document,
                str(tmp_path),
                sys.executable,
                None,
                lines,
                60.0,
                None,
                timeout=JOB_SECONDS,
            )
            modules: list[str] = await resolver.run(eval, LSP_MODULES)
            return found, modules
        finally:
            resolver.shutdown()

    found, modules = asyncio.run(scenario())
    assert found  # jedi ran: the await of trio.sleep was resolved
    assert modules == []
