"""Code actions at a cursor in a 5,000-line file, through the real server.

A generated 5,000-line trio module (benchmarks/synth.py) gets one buggy
function in the middle (an unbounded wait in a `finally`). The server is
started with Neovim 0.11's recorded capabilities (it pulls diagnostics), the
file is opened, its diagnostics pulled once, and then the quick fixes at the
finding are requested N times (default 30). Printed: p50 / p95 / max in ms
(requirement: under 100 ms), and, for reference, the same request right after
an edit, when the findings must be computed again first.

    .venv/bin/python benchmarks/code_actions.py [--repeat N]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

from lsprotocol import types
from pytest_lsp import client_capabilities, make_test_lsp_client

sys.path.insert(0, str(Path(__file__).resolve().parent))
from lspclient import SERVER_COMMAND, percentile
from synth import trio_module

BUGGY = """

async def teardown_peers(ipc_server, done):
    try:
        await ipc_server.serve()
    finally:
        await done.wait()

"""


async def run(repeat: int) -> int:
    module = trio_module(5_000 - BUGGY.count("\n"))
    lines = module.text.split("\n")
    middle = len(lines) // 2
    # insert at a top-level boundary near the middle
    while lines[middle].startswith((" ", "\t", ")", "@")) or not lines[middle]:
        middle += 1
    text = "\n".join(lines[:middle]) + BUGGY + "\n".join(lines[middle:])
    total = text.count("\n")
    wait_line = text.split("\n").index("        await done.wait()")
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        uri = (root / "big.py").as_uri()
        client = make_test_lsp_client()
        await client.start_io(*SERVER_COMMAND, cwd=str(root))
        await client.initialize_session(
            types.InitializeParams(
                capabilities=client_capabilities("neovim"), root_uri=root.as_uri()
            )
        )
        client.text_document_did_open(
            types.DidOpenTextDocumentParams(
                text_document=types.TextDocumentItem(
                    uri=uri, language_id="python", version=1, text=text
                )
            )
        )
        report = await client.text_document_diagnostic_async(
            types.DocumentDiagnosticParams(text_document=types.TextDocumentIdentifier(uri=uri))
        )
        target = [d for d in report.items if d.range.start.line == wait_line]
        if not target:
            print("FAIL: the buggy wait has no diagnostic", file=sys.stderr)
            return 1
        cursor = types.Range(
            start=types.Position(line=wait_line, character=12),
            end=types.Position(line=wait_line, character=12),
        )
        params = types.CodeActionParams(
            text_document=types.TextDocumentIdentifier(uri=uri),
            range=cursor,
            context=types.CodeActionContext(diagnostics=target),
        )
        timings: list[float] = []
        for _ in range(repeat):
            start = time.perf_counter()
            actions = await client.text_document_code_action_async(params)
            timings.append((time.perf_counter() - start) * 1000)
            if not actions:
                print("FAIL: no code action offered", file=sys.stderr)
                return 1
        after_edit: list[float] = []
        for version in range(2, 7):
            client.text_document_did_change(
                types.DidChangeTextDocumentParams(
                    text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=version),
                    content_changes=[
                        types.TextDocumentContentChangePartial(
                            range=types.Range(
                                start=types.Position(line=0, character=0),
                                end=types.Position(line=0, character=0),
                            ),
                            text="#\n" if version % 2 == 0 else "",
                        )
                    ],
                )
            )
            shifted = wait_line + sum(1 for v in range(2, version + 1) if v % 2 == 0)
            params.range = types.Range(
                start=types.Position(line=shifted, character=12),
                end=types.Position(line=shifted, character=12),
            )
            params.context = types.CodeActionContext(diagnostics=[])
            start = time.perf_counter()
            actions = await client.text_document_code_action_async(params)
            after_edit.append((time.perf_counter() - start) * 1000)
        await client.shutdown_session()
        await client.stop()
    print(f"file: {total:,} lines; finding at line {wait_line + 1}")
    print(
        f"code actions at the cursor, findings cached ({repeat} requests): "
        f"p50 {statistics.median(timings):.1f} ms, p95 {percentile(timings, 0.95):.1f} ms, "
        f"max {max(timings):.1f} ms   (requirement < 100 ms: "
        f"{'ok' if percentile(timings, 0.95) < 100 else 'OVER'})"
    )
    print(
        f"code actions right after an edit (findings recomputed, {len(after_edit)} requests): "
        f"p50 {statistics.median(after_edit):.1f} ms, max {max(after_edit):.1f} ms"
    )
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=30)
    return asyncio.run(run(parser.parse_args().repeat))


if __name__ == "__main__":
    sys.exit(main())
