"""`initialize` answered early (conc_lsp/server/early_init.py) against pygls's own answer.

Whole `python -m conc_lsp serve` processes over stdio, with VS Code's recorded
capabilities, bytecode caching on (PYTHONDONTWRITEBYTECODE removed; a first
round writes the .pyc files and is not counted). Rounds alternate the two
variants: the early answer on (the default) and off (CONC_LSP_EARLY_INITIALIZE=0,
which is the server as before it). Per variant, medians from process start to:

  * the `initialize` response (requirement: under 0.5 s);
  * the first `textDocument/inlayHint` answer and the first
    `textDocument/diagnostic` answer for a document opened at once after
    the `initialize` response, as an editor does (`initialized`, `didOpen`
    and both requests written at once): what the early answer must not delay.

    .venv/bin/python benchmarks/initialize_latency.py [--rounds N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from startup import Failure, frame, initialize_params, read_message

DOCUMENT = """\
import trio


async def main():
    async with trio.open_nursery() as nursery:
        nursery.start_soon(trio.sleep, 1)
        await trio.sleep(0)
        for _ in range(3):
            await trio.lowlevel.checkpoint()
"""
VARIANTS = {"early answer": "1", "pygls answers (before)": "0"}


def session(environment: dict[str, str], root: Path, delay: float) -> dict[str, float]:
    """Seconds from process start to each answer of one session; `initialize`
    written ``delay`` seconds after the start."""
    uri = (root / "example.py").as_uri()
    opened = [
        {"jsonrpc": "2.0", "method": "initialized", "params": {}},
        {
            "jsonrpc": "2.0",
            "method": "textDocument/didOpen",
            "params": {
                "textDocument": {"uri": uri, "languageId": "python", "version": 1, "text": DOCUMENT}
            },
        },
        {
            "jsonrpc": "2.0",
            "id": 2,
            "method": "textDocument/inlayHint",
            "params": {
                "textDocument": {"uri": uri},
                "range": {
                    "start": {"line": 0, "character": 0},
                    "end": {"line": 20, "character": 0},
                },
            },
        },
        {
            "jsonrpc": "2.0",
            "id": 3,
            "method": "textDocument/diagnostic",
            "params": {"textDocument": {"uri": uri}},
        },
    ]
    names = {1: "initialize", 2: "first inlayHint", 3: "first diagnostic"}
    request = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": initialize_params(root)}
    started = time.perf_counter()
    server = subprocess.Popen(
        [sys.executable, "-m", "conc_lsp", "serve"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=environment,
        cwd=root,
    )
    assert server.stdin is not None and server.stdout is not None
    times: dict[str, float] = {}
    try:
        time.sleep(delay)
        server.stdin.write(frame(request))
        server.stdin.flush()
        while len(times) < len(names):
            message: dict[str, Any] = read_message(server.stdout)
            if "method" in message and "id" in message:  # the server asks: answer nothing
                configuration = message["method"] == "workspace/configuration"
                answer = {
                    "jsonrpc": "2.0",
                    "id": message["id"],
                    "result": [] if configuration else None,
                }
                server.stdin.write(frame(answer))
                server.stdin.flush()
                continue
            if message.get("id") not in names or "method" in message:
                continue
            if "result" not in message:
                raise Failure(f"{names[message['id']]} failed: {message.get('error')}")
            times[names[message["id"]]] = time.perf_counter() - started
            if message["id"] == 1:
                server.stdin.write(b"".join(frame(m) for m in opened))
                server.stdin.flush()
        server.stdin.write(frame({"jsonrpc": "2.0", "id": 4, "method": "shutdown"}))
        server.stdin.write(frame({"jsonrpc": "2.0", "method": "exit"}))
        server.stdin.close()
        server.wait(timeout=60)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument(
        "--delay",
        type=float,
        default=0.0,
        help="seconds from process start to writing initialize (a slow client)",
    )
    options = parser.parse_args()
    environment = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    results: dict[str, list[dict[str, float]]] = {name: [] for name in VARIANTS}
    loads = [os.getloadavg()[0]]
    with tempfile.TemporaryDirectory(prefix="conc-lsp-initialize-") as folder:
        root = Path(folder)
        try:
            for round_number in range(options.rounds + 1):
                for name, flag in VARIANTS.items():
                    times = session(
                        {**environment, "CONC_LSP_EARLY_INITIALIZE": flag}, root, options.delay
                    )
                    if round_number:  # the first round writes bytecode
                        results[name].append(times)
        except Failure as failure:
            print(f"FAILED: {failure}")
            return 1
    loads.append(os.getloadavg()[0])
    print(
        f"{options.rounds} alternating rounds, medians from process start (ms), initialize "
        f"written after {options.delay * 1000:.0f} ms; "
        f"load average {loads[0]:.2f} before, {loads[1]:.2f} after"
    )
    keys = list(results["early answer"][0])
    print(f"{'':26}" + "".join(f"{key:>18}" for key in keys))
    medians: dict[str, dict[str, float]] = {}
    for name, rounds in results.items():
        medians[name] = {key: statistics.median(r[key] for r in rounds) for key in keys}
        print(f"{name:26}" + "".join(f"{medians[name][key] * 1000:18.0f}" for key in keys))
    early, before = medians["early answer"], medians["pygls answers (before)"]
    print(f"{'ratio early / before':26}" + "".join(f"{early[k] / before[k]:18.2f}" for k in keys))
    return 0


if __name__ == "__main__":
    sys.exit(main())
