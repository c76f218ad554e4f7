"""Start-up: what a user waits for before conc-lsp does anything.

Whole processes, with bytecode caching on (PYTHONDONTWRITEBYTECODE removed,
as an installed tool runs; a first round writes the .pyc files and is not
counted). Rounds alternate the variants, so that a busy machine slows them
alike; the script prints each variant's median wall time, its median CPU
time (user + system: less sensitive to a busy machine) and the load average:

  * `python -c pass`: the interpreter alone, the reference;
  * `conc-lsp check --no-cache tiny.py` (the console script) and the same
    with the cache (a second run over an unchanged file: the cache answers),
    for a one-line file (`x = 1`); requirement: within 100 ms of
    `python -c pass`;
  * `python -m conc_lsp check --no-cache tiny.py`, for reference;
  * `conc-lsp serve`: process start -> the `initialize` response, over
    stdio, initialized with VS Code's recorded capabilities; requirement:
    under 0.5 s. For reference, the same for a bare pygls server that
    registers no feature: the floor of pygls + lsprotocol.

It exits 1 only when something fails functionally (a check that does not
pass the tiny file, a server that answers initialize with an error).

    .venv/bin/python benchmarks/startup.py [--rounds N]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pygls.protocol import default_converter
from pytest_lsp import client_capabilities

CHECK_OVER_PYTHON = 0.100  # seconds over `python -c pass`
# For reference, the floor of any pygls server: one that registers nothing.
BARE_SERVER = "from pygls.lsp.server import LanguageServer; LanguageServer('bare', '0').start_io()"
INITIALIZE_LIMIT = 0.5  # seconds from process start


class Failure(Exception):
    """Something did not work: not a slow figure, a wrong one."""


def console_script() -> str:
    script = Path(sys.executable).with_name("conc-lsp")
    found = str(script) if script.exists() else shutil.which("conc-lsp")
    if not found:
        raise Failure("no conc-lsp console script: pip install -e '.[test]'")
    return found


def timed(command: list[str], environment: dict[str, str], cwd: Path) -> tuple[float, float]:
    """Wall time and CPU time (user + system) of a whole process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, env=environment, cwd=cwd, check=False)
    elapsed = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise Failure(f"{' '.join(command)} exited {done.returncode}: {done.stderr.decode()}")
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return elapsed, cpu


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) a running process has used so far (Linux)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def frame(message: dict[str, object]) -> bytes:
    body = json.dumps(message).encode()
    return b"Content-Length: %d\r\n\r\n" % len(body) + body


def read_message(stream: object) -> dict[str, object]:
    read = stream.readline  # type: ignore[attr-defined]
    length = 0
    while True:
        line = read()
        if not line:
            raise Failure("the server closed its output")
        if line in (b"\r\n", b"\n"):
            break
        name, _, value = line.decode().partition(":")
        if name.strip().lower() == "content-length":
            length = int(value)
    data = stream.read(length)  # type: ignore[attr-defined]
    message: dict[str, object] = json.loads(data)
    return message


def initialize_params(root: Path) -> dict[str, object]:
    capabilities = default_converter().unstructure(client_capabilities("visual-studio-code"))
    return {
        "processId": os.getpid(),
        "rootUri": root.as_uri(),
        "workspaceFolders": [{"uri": root.as_uri(), "name": root.name}],
        "capabilities": capabilities,
        "clientInfo": {"name": "conc-lsp startup benchmark", "version": "0"},
    }


def initialize_time(
    command: list[str], params: dict[str, object], environment: dict[str, str], cwd: Path
) -> tuple[float, float]:
    """Process start -> the initialize response read (the request is written
    at once: the pipe holds it until the server reads), and the CPU time the
    server had used by then."""
    request = frame({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": params})
    started = time.perf_counter()
    server = subprocess.Popen(
        command,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=environment,
        cwd=cwd,
    )
    assert server.stdin is not None and server.stdout is not None
    try:
        server.stdin.write(request)
        server.stdin.flush()
        while True:
            message = read_message(server.stdout)
            if message.get("id") == 1:
                break
        elapsed = time.perf_counter() - started
        cpu = cpu_seconds(server.pid)
        if "result" not in message:
            raise Failure(f"initialize failed: {message.get('error')}")
        server.stdin.write(frame({"jsonrpc": "2.0", "id": 2, "method": "shutdown"}))
        server.stdin.write(frame({"jsonrpc": "2.0", "method": "exit"}))
        server.stdin.close()
        server.wait(timeout=30)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    return elapsed, cpu


def verdict(ok: bool) -> str:
    return "ok" if ok else "OVER"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=11)
    options = parser.parse_args()
    environment = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    environment["CONC_LSP_PROGRESS"] = "0"
    python = sys.executable
    script = console_script()
    with tempfile.TemporaryDirectory(prefix="conc-lsp-startup-") as folder:
        root = Path(folder)
        (root / "tiny.py").write_text("x = 1\n")
        environment["CONC_LSP_CACHE_DIR"] = str(root / "cache")
        params = initialize_params(root)
        check = ["check", "--no-cache", "tiny.py"]
        variants: dict[str, object] = {
            "python -c pass": [python, "-c", "pass"],
            "conc-lsp check --no-cache tiny.py": [script, *check],
            "conc-lsp check tiny.py (cached)": [script, "check", "tiny.py"],
            "python -m conc_lsp check --no-cache": [python, "-m", "conc_lsp", *check],
            "initialize (conc-lsp serve)": ("serve", [script, "serve"]),
            "initialize (bare pygls server)": ("serve", [python, "-c", BARE_SERVER]),
        }
        times: dict[str, list[float]] = {name: [] for name in variants}
        cpu: dict[str, list[float]] = {name: [] for name in variants}
        try:
            for round_number in range(options.rounds + 1):
                for name, command in variants.items():
                    if isinstance(command, tuple):
                        elapsed, used = initialize_time(command[1], params, environment, root)
                    else:
                        elapsed, used = timed(command, environment, root)  # type: ignore[arg-type]
                    if round_number:  # the first round writes bytecode and the cache
                        times[name].append(elapsed)
                        cpu[name].append(used)
        except Failure as failure:
            print(f"FAILED: {failure}")
            return 1
    load = os.getloadavg()
    median = {name: statistics.median(values) for name, values in times.items()}
    bare = median["python -c pass"]
    print(
        f"{options.rounds} alternating rounds, medians of wall time (and CPU time); load "
        f"average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} ({os.cpu_count()} cores)"
    )
    for name, value in median.items():
        used = f"({statistics.median(cpu[name]) * 1000:4.0f} ms CPU)"
        extra = f"  (+{(value - bare) * 1000:4.0f} ms)" if name != "python -c pass" else ""
        requirement = ""
        if name.startswith("conc-lsp check"):
            over = value - bare
            requirement = (
                f"  requirement <= +{CHECK_OVER_PYTHON * 1000:.0f} ms: "
                f"{verdict(over <= CHECK_OVER_PYTHON)}"
            )
        elif name.startswith("initialize (conc-lsp"):
            requirement = (
                f"  requirement < {INITIALIZE_LIMIT * 1000:.0f} ms: "
                f"{verdict(value < INITIALIZE_LIMIT)}"
            )
        print(f"  {name:<36} {value * 1000:5.0f} ms {used}{extra}{requirement}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
