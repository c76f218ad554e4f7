"""The command line, run as a user would run it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run(*arguments: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "conc_lsp", *arguments],
        cwd=cwd,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=60,
    )


def test_hints_text_output_matches_the_seed_notation() -> None:
    result = run("hints", "examples/cache.py")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "examples/cache.py:46: await lock.acquire() <- checkpoint" in lines
    assert "examples/cache.py:55: lock.release() <- not a checkpoint" in lines
    assert (
        "examples/cache.py:56: yield False, _Cache.values[ctx_key] <- suspend: caller runs" in lines
    )
    assert any(line.endswith("<- checkpoint · shielded · bounded · in finally") for line in lines)


def test_hints_json_output() -> None:
    result = run("hints", "--format", "json", "examples/cache.py")
    assert result.returncode == 0, result.stderr
    records = json.loads(result.stdout)
    first = records[0]
    assert set(first) == {"path", "line", "column", "kind", "label", "function"}
    acquire = next(r for r in records if r["line"] == 46)
    assert acquire == {
        "path": "examples/cache.py",
        "line": 46,
        "column": 4,
        "kind": "await",
        "label": "<- checkpoint",
        "function": "maybe_open_context",
    }


def test_hints_on_folder_with_syntax_error_and_encoding(tmp_path: Path) -> None:
    (tmp_path / "good.py").write_bytes(
        "# -*- coding: latin-1 -*-\nasync def f():\n    s = 'café'; await g()\n".encode("latin-1")
    )
    (tmp_path / "bad.py").write_text(
        "async def ok():\n    await a()\n\nasync def broken(:\n    await b()\n", encoding="utf-8"
    )
    result = run("hints", "--format", "json", str(tmp_path))
    assert result.returncode == 0
    records = json.loads(result.stdout)
    by_file = {(Path(r["path"]).name, r["line"], r["column"]) for r in records}
    assert ("good.py", 3, 16) in by_file  # code points, not latin-1 or UTF-8 bytes
    assert ("bad.py", 2, 4) in by_file  # the function that parses still has its hint
    assert "bad.py:4:" in result.stderr and "syntax error" in result.stderr


def test_version_help_and_usage_errors() -> None:
    assert run("--version").stdout.startswith("conc-lsp ")
    help_text = run("--help").stdout
    assert "hints" in help_text and "serve" in help_text
    assert run("hints", "--kinds", "nope", "examples/cache.py").returncode == 2
    assert run("hints", "missing-file.py").returncode == 2
    assert run().returncode == 2
