"""The command line, run as a user would run it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.rule_settings import SELECT_ARGUMENT

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
    assert any(line.endswith("<- finally · shielded · bounded") for line in lines)


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


def test_rules_docs_are_generated_from_the_docstrings() -> None:
    result = run("rule", "--docs")
    assert result.returncode == 0
    committed = (ROOT / "docs" / "rules.md").read_text(encoding="utf-8")
    assert result.stdout == committed, (
        "docs/rules.md is stale: run `conc-lsp rule --docs > docs/rules.md`"
    )


def test_rule_command_prints_the_docstring() -> None:
    result = run("rule", "CONC101")
    assert result.returncode == 0
    for section in (
        "## What it does",
        "## Why is this bad?",
        "## Example",
        "## Use instead",
        "## Fix",
    ):
        assert section in result.stdout
    assert run("rule", "unbounded-wait-in-cleanup").stdout == result.stdout
    assert run("rule", "CONC999").returncode == 2


def test_check_exit_codes_and_formats(tmp_path: Path) -> None:
    buggy = tmp_path / "buggy.py"
    buggy.write_text(
        "import trio\n\nasync def f(ev: trio.Event):\n    try:\n        pass\n"
        "    finally:\n        await ev.wait()\n        ev.owner.release()\n",
        encoding="utf-8",
    )
    clean = tmp_path / "clean.py"
    clean.write_text("import trio\n\nasync def f():\n    await trio.sleep(1)\n", encoding="utf-8")
    assert run("check", "--select", SELECT_ARGUMENT, str(clean)).returncode == 0
    text = run("check", "--select", SELECT_ARGUMENT, str(buggy))
    assert text.returncode == 1
    assert f"{buggy}:7:9: CONC101 " in text.stdout and f"{buggy}:7:9: CONC102 " in text.stdout
    records = json.loads(
        run("check", "--select", SELECT_ARGUMENT, "--format", "json", str(buggy)).stdout
    )
    assert {record["code"] for record in records} == {"CONC101", "CONC102"}
    assert set(records[0]) == {
        "path",
        "line",
        "column",
        "end_line",
        "end_column",
        "code",
        "severity",
        "message",
        "fix_available",
    }
    assert (records[0]["line"], records[0]["column"]) == (7, 8)
    sarif = json.loads(
        run("check", "--select", SELECT_ARGUMENT, "--format", "sarif", str(buggy)).stdout
    )
    assert sarif["version"] == "2.1.0" and len(sarif["runs"][0]["results"]) == 2
    github = run("check", "--select", SELECT_ARGUMENT, "--format", "github", str(buggy)).stdout
    assert github.startswith("::warning file=") and "title=CONC101" in github
    assert (
        run("check", "--select", SELECT_ARGUMENT, "--select", "CONC102", str(buggy)).stdout.count(
            "CONC10"
        )
        == 1
    )
    assert (
        "CONC101"
        not in run("check", "--select", SELECT_ARGUMENT, "--ignore", "CONC101", str(buggy)).stdout
    )
    assert (
        run("check", "--select", SELECT_ARGUMENT, "--select", "NOPE1", str(buggy)).returncode == 2
    )
    statistics = run("check", "--select", SELECT_ARGUMENT, "--statistics", str(buggy)).stdout
    assert "1  CONC101" in statistics


def test_check_noqa_config_and_excludes(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(
        '[tool.conc-lsp]\nignore = ["CONC102"]\nexclude = ["generated"]\n'
        '[tool.conc-lsp.severity]\nCONC101 = "error"\n',
        encoding="utf-8",
    )
    (tmp_path / ".gitignore").write_text("ignored_dir/\n", encoding="utf-8")
    source = (
        "import trio\n\nasync def f(ev: trio.Event):\n    try:\n        pass\n"
        "    finally:\n        await ev.wait(){}\n"
    )
    (tmp_path / "a.py").write_text(source.format(""), encoding="utf-8")
    (tmp_path / "b.py").write_text(source.format("  # noqa: CONC101"), encoding="utf-8")
    (tmp_path / "c.py").write_text(source.format("  # noqa"), encoding="utf-8")
    for folder in ("generated", "ignored_dir", ".venv"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "x.py").write_text(source.format(""), encoding="utf-8")
    records = json.loads(
        run("check", "--select", SELECT_ARGUMENT, "--format", "json", ".", cwd=tmp_path).stdout
    )
    assert [(Path(r["path"]).name, r["code"], r["severity"]) for r in records] == [
        ("a.py", "CONC101", "error")
    ]


def test_check_reports_syntax_errors_and_checks_the_rest(tmp_path: Path) -> None:
    (tmp_path / "broken.py").write_text(
        "import trio\n\nasync def ok(ev):\n    try:\n        pass\n    finally:\n"
        "        await ev.wait()\n\ndef broken(:\n    pass\n",
        encoding="utf-8",
    )
    result = run("check", "--select", SELECT_ARGUMENT, str(tmp_path))
    assert result.returncode == 1
    # In text mode syntax errors go to stderr, the findings to stdout.
    assert "broken.py:9:" in result.stderr and "syntax error" in result.stderr
    assert "syntax error:" not in result.stdout
    assert "broken.py:7:9: CONC101" in result.stdout


def test_check_fix_rewrites_files_keeping_line_endings(tmp_path: Path) -> None:
    source = (
        "import trio\r\n\r\n\r\nasync def f(ev: trio.Event) -> None:\r\n    try:\r\n"
        "        pass\r\n    finally:\r\n        await ev.wait()  # keep me\r\n\r\n\r\n"
        "async def g(data: bytes) -> None:\r\n    with trio.move_on_after(1):\r\n"
        "        print(data)\r\n"
    )
    path = tmp_path / "crlf.py"
    path.write_bytes(source.encode("utf-8"))
    result = run("check", "--select", SELECT_ARGUMENT, "--fix", str(path))
    fixed = path.read_bytes().decode("utf-8")
    assert "with trio.move_on_after(5, shield=True) as cs:\r\n" in fixed
    assert "await ev.wait()  # keep me\r\n" in fixed
    assert "\n" not in fixed.replace("\r\n", "")  # no bare LF slipped in
    # The unsafe fix (removing the pointless scope) waits for --unsafe-fixes.
    assert "with trio.move_on_after(1):" in fixed
    assert result.returncode == 1 and "CONC110" in result.stdout
    assert "Fixed 1 finding." in result.stdout and "1 more with --unsafe-fixes" in result.stdout
    result = run("check", "--select", SELECT_ARGUMENT, "--unsafe-fixes", str(path))
    assert result.returncode == 0, result.stdout
    assert "with trio.move_on_after(1):" not in path.read_bytes().decode("utf-8")
    compile(path.read_bytes(), str(path), "exec")


def test_check_json_says_which_findings_have_fixes(tmp_path: Path) -> None:
    path = tmp_path / "m.py"
    path.write_text(
        "import trio\n\nasync def f(ev):\n    try:\n        pass\n    finally:\n"
        "        await ev.wait()\n        ev.owner.release()\n",
        encoding="utf-8",
    )
    records = json.loads(
        run("check", "--select", SELECT_ARGUMENT, "--format", "json", str(path)).stdout
    )
    assert {(r["code"], r["fix_available"]) for r in records} == {
        ("CONC101", True),
        ("CONC102", True),
    }
