"""Opening a ~3,000-line file with resolution on: how soon the hints come,
how soon the resolved ones follow, and whether typing stays as fast.

The file is anyio's asyncio backend (anyio/_backends/_asyncio.py of the
installed anyio, 3,300 lines), opened in place with site-packages as the
workspace, by a client with Neovim's recorded capabilities (it supports
`workspace/inlayHint/refresh`, whose arrival marks "resolved").

  * syntactic: didOpen -> the first whole-file inlay hint response;
  * resolved: didOpen -> the server's inlayHint refresh (requirement < 5 s),
    and how many labels changed;
  * typing: one character typed into a comment in the middle of the file,
    then a 60-line inlayHint request, --keys times with a pause after every
    12 keys (so resolution passes run between bursts), p50 / p95 round trip;
    the same with resolution off, for comparison (requirement: p95 unchanged
    within noise).

    .venv/bin/python benchmarks/resolve_latency.py [--keys 48] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from lsprotocol import types

sys.path.insert(0, str(Path(__file__).resolve().parent))
import anyio
import lspclient

FILE = Path(anyio.__file__).parent / "_backends" / "_asyncio.py"
ROOT = FILE.parents[2]  # site-packages
WINDOW = 60
CLIENT = "neovim"


def labels(found: Any) -> list[str]:
    return [h.label if isinstance(h.label, str) else "" for h in found]


async def hints(client: Any, uri: str, start: int, end: int) -> list[types.InlayHint]:
    return list(
        await client.text_document_inlay_hint_async(
            types.InlayHintParams(
                text_document=types.TextDocumentIdentifier(uri=uri),
                range=types.Range(types.Position(start, 0), types.Position(end, 0)),
            )
        )
    )


async def one_run(resolve: bool, keys: int) -> dict[str, Any]:
    refreshed: list[float] = []

    def add_handler(client: Any) -> None:
        @client.feature(types.WORKSPACE_INLAY_HINT_REFRESH)
        def refresh(params: None) -> None:
            refreshed.append(time.perf_counter())

    options = {"resolve": {"enabled": resolve}}
    session = await lspclient.start(ROOT, options, CLIENT, add_handler)
    client = session.client
    text = FILE.read_text(encoding="utf-8")
    lines = text.split("\n")
    uri = FILE.as_uri()
    opened = time.perf_counter()
    lspclient.open_document(client, uri, text)
    first = await hints(client, uri, 0, len(lines))
    syntactic = time.perf_counter() - opened
    result: dict[str, Any] = {"syntactic": syntactic, "hints": len(first)}
    if resolve:
        deadline = opened + 60
        while not refreshed and time.perf_counter() < deadline:
            await asyncio.sleep(0.02)
        result["resolved"] = refreshed[0] - opened if refreshed else None
        after = await hints(client, uri, 0, len(lines))
        result["changed"] = sum(a != b for a, b in zip(labels(first), labels(after), strict=True))
    # Typing into a comment line near the middle: hints do not move.
    middle = next(
        i for i in range(len(lines) // 2, len(lines)) if lines[i].strip().startswith("#")
    )
    column = len(lines[middle])
    times = []
    version = 1
    for key in range(keys):
        version += 1
        start = time.perf_counter()
        client.text_document_did_change(
            types.DidChangeTextDocumentParams(
                text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=version),
                content_changes=[
                    types.TextDocumentContentChangePartial(
                        range=types.Range(
                            types.Position(middle, column), types.Position(middle, column)
                        ),
                        text="x",
                    )
                ],
            )
        )
        column += 1
        await hints(client, uri, max(0, middle - WINDOW // 2), middle + WINDOW // 2)
        times.append(time.perf_counter() - start)
        await asyncio.sleep(0.08)  # a fast typist
        if key % 12 == 11:
            await asyncio.sleep(1.5)  # a pause: a resolution pass runs
    times.sort()
    result["p50"] = statistics.median(times)
    result["p95"] = times[int(0.95 * (len(times) - 1))]
    result["errors"] = session.errors()
    await session.close()
    return result


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--keys", type=int, default=48)
    parser.add_argument("--rounds", type=int, default=3)
    arguments = parser.parse_args()
    print(f"file: {FILE} ({len(FILE.read_text().splitlines())} lines)")
    status = 0
    for round_number in range(1, arguments.rounds + 1):
        for resolve in (False, True):
            run = await one_run(resolve, arguments.keys)
            name = "resolution on " if resolve else "resolution off"
            line = (
                f"round {round_number} {name}: syntactic hints {run['syntactic'] * 1000:.0f} ms "
                f"({run['hints']} hints)"
            )
            if resolve:
                resolved = run["resolved"]
                line += (
                    f"; resolved {resolved:.2f} s ({run['changed']} labels changed)"
                    if resolved is not None
                    else "; resolved: never (no refresh within 60 s)"
                )
                if resolved is None or resolved >= 5:
                    status = 1
            line += f"; typing p50 {run['p50'] * 1000:.1f} ms, p95 {run['p95'] * 1000:.1f} ms"
            print(line, flush=True)
            if run["errors"]:
                print("  errors:", run["errors"])
                status = 1
    return status


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
