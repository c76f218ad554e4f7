"""Server memory with many open files.

Starts the real server (`python -m conc_lsp serve`, VS Code's capabilities),
opens 50 distinct generated 1,000-line trio modules (different names and
constants in each), requests the inlay hints of each whole file, and reads
the server process's VmRSS from /proc/PID/status.  Requirement: < 300 MB.
RSS right after startup and after the didOpens (before any analysis) are
printed for reference, as is VmHWM (the peak). Then it waits until every
file has been resolved (the server's log line "resolved N of M checkpoints"
for each; the cache of verdicts starts empty) and reads the memory of the
server and all its processes (the rules' worker, the resolver), and again
once the resolver has been idle long enough to let jedi's memory go.

Each response is checked against an in-process analysis of the same text;
a difference, an error log message or a failed request exits 1.

    .venv/bin/python benchmarks/memory.py [--files N] [--lines N]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

from lsprotocol import types

from conc_lsp.analysis.text import split_lines
from conc_lsp.config import Settings
from conc_lsp.server import features
from conc_lsp.server.documents import Document
from conc_lsp.server.resolution import IDLE_RELEASE

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parents[1]))  # tests.live_processes
import fingerprint
import lspclient
import synth

from tests.live_processes import children as children_of

RSS_LIMIT_MB = 300


def mb(kib: int) -> str:
    return f"{kib / 1024:.1f} MB"


async def run(files: int, lines: int) -> list[str]:
    failures: list[str] = []
    modules = [synth.trio_module(lines, prefix=f"m{index}_", seed=index) for index in range(files)]
    if len({module.text for module in modules}) != files:
        return ["the generated files are not all distinct"]
    with tempfile.TemporaryDirectory(prefix="conc-lsp-bench-") as folder:
        root = Path(folder)
        os.environ["CONC_LSP_CACHE_DIR"] = str(root / ".cache")  # an empty cache of verdicts
        session = await lspclient.start(root)
        try:
            pid = session.pid
            startup_rss = lspclient.vm_rss_kib(pid)
            print(f"server pid {pid}, started in {session.startup * 1000:.0f} ms")
            print(f"RSS after startup:                    {mb(startup_rss)}")

            uris = [(root / f"module_{index}.py").as_uri() for index in range(files)]
            for uri, module in zip(uris, modules, strict=True):
                lspclient.open_document(session.client, uri, module.text)
            # A barrier so every didOpen has been handled before reading RSS.
            await session.client.text_document_inlay_hint_async(
                types.InlayHintParams(
                    text_document=types.TextDocumentIdentifier(uri=uris[0]),
                    range=types.Range(start=types.Position(0, 0), end=types.Position(0, 0)),
                )
            )
            opened_rss = lspclient.vm_rss_kib(pid)
            print(f"RSS after {files} didOpens (not analysed): {mb(opened_rss)}")

            total_hints = 0
            elapsed = 0.0
            settings = Settings()
            for uri, module in zip(uris, modules, strict=True):
                text_lines = split_lines(module.text)
                request = lspclient.whole_range(text_lines)
                begin = time.perf_counter()
                response = await session.client.text_document_inlay_hint_async(
                    types.InlayHintParams(
                        text_document=types.TextDocumentIdentifier(uri=uri), range=request
                    )
                )
                elapsed += time.perf_counter() - begin
                expected = features.inlay_hints(
                    Document.open(uri, 1, module.text), request, settings, "utf-16"
                )
                got = [lspclient.hint_key(hint) for hint in response or []]
                if not got or got != [lspclient.hint_key(hint) for hint in expected]:
                    failures.append(
                        f"{uri}: server sent {len(got)} hints, in-process analysis gives "
                        f"{len(expected)}"
                    )
                total_hints += len(got)
            # Diagnostics for all files come from the worker process: wait until
            # every file has been pushed, then count the worker's memory too.
            for _ in range(600):
                if len(session.client.diagnostics) >= files:
                    break
                await asyncio.sleep(0.05)
            final_rss = lspclient.vm_rss_kib(pid)
            peak = lspclient.vm_rss_kib(pid, "VmHWM")
            workers = children_of(pid)
            worker_rss = sum(lspclient.vm_rss_kib(child) for child in workers)
            print(
                f"diagnostics pushed for {len(session.client.diagnostics)} of {files} files; "
                f"worker process(es) {workers}: {mb(worker_rss)}"
            )
            total = final_rss + worker_rss
            print(
                f"server + worker RSS:                {mb(total)}   (requirement < "
                f"{RSS_LIMIT_MB} MB: {'ok' if total < RSS_LIMIT_MB * 1024 else 'OVER'})"
            )
            verdict = "ok" if final_rss < RSS_LIMIT_MB * 1024 else "OVER"
            print(
                f"RSS after whole-file hints for all {files}: {mb(final_rss)}"
                f"   (requirement < {RSS_LIMIT_MB} MB: {verdict})"
            )
            print(f"VmHWM (peak RSS):                     {mb(peak)}")
            per_file = (final_rss - opened_rss) / files
            print(
                f"analysis cost per open {lines:,}-line file: {per_file:,.0f} KiB; "
                f"text: {(opened_rss - startup_rss) / files:,.0f} KiB"
            )
            print(
                f"{files} whole-file requests: {total_hints:,} hints in {elapsed:.2f} s "
                f"(first request per file: full analysis + response)"
            )
            await resolved_memory(session, uris, failures)
            failures.extend(session.errors())
        finally:
            await session.close()
    return failures


def resolved_files(session: lspclient.Session) -> set[str]:
    """The documents the server said are resolved (its log line for each)."""
    return {
        message.message.split(" of ", 2)[2].split(" ", 1)[0]
        for message in session.client.log_messages
        if message.message.startswith("conc-lsp: resolved ")
    }


async def resolved_memory(session: lspclient.Session, uris: list[str], failures: list[str]) -> None:
    """Memory once every file is resolved, and after the resolver let jedi's go."""
    pid = session.pid
    began = time.perf_counter()
    done: set[str] = set()
    while not set(uris) <= done and time.perf_counter() - began < 1200:
        await asyncio.sleep(0.2)
        done = resolved_files(session)
    waited = time.perf_counter() - began
    print(f"resolved {len(done & set(uris))} of {len(uris)} files ({waited:.0f} s more)")
    if not set(uris) <= done:
        failures.append("not every file was resolved within 1200 s")
    for moment in ("resolution finished", f"idle {IDLE_RELEASE + 5:.0f} s"):
        if moment.startswith("idle"):
            await asyncio.sleep(IDLE_RELEASE + 5)
        own = lspclient.vm_rss_kib(pid)
        children = {child: lspclient.vm_rss_kib(child) for child in children_of(pid)}
        total = own + sum(children.values())
        parts = ", ".join(f"{child}: {mb(rss)}" for child, rss in children.items())
        verdict = "ok" if total < RSS_LIMIT_MB * 1024 else "OVER"
        print(
            f"all processes, {moment}: {mb(total)} (server {mb(own)}; {parts}) "
            f"(requirement < {RSS_LIMIT_MB} MB: {verdict})"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=50)
    parser.add_argument("--lines", type=int, default=1_000)
    arguments = parser.parse_args()
    before = fingerprint.describe()
    print(before)
    failures = asyncio.run(run(arguments.files, arguments.lines))
    after = fingerprint.describe()
    if after != before:
        print(f"WARNING: conc_lsp changed during the run; now {after}")
    for failure in failures:
        print(f"FAIL: {failure}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
