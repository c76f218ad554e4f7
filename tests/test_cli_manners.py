"""The command line as ruff users expect it (issue 14, item 7): one test per behaviour."""

from __future__ import annotations

import json
import os
import pty
import socket
import subprocess
import sys
from pathlib import Path

from tests.rule_settings import SEED_PYPROJECT, SELECT_ARGUMENT

ROOT = Path(__file__).resolve().parent.parent
BUGGY = (
    "import trio\n\nasync def f(ev: trio.Event):\n    try:\n        pass\n"
    "    finally:\n        await ev.wait()\n        ev.owner.release()\n"
)
CLEAN = "import trio\n\nasync def f():\n    await trio.sleep(1)\n"
BROKEN = "async def ok():\n    await a()\n\ndef broken(:\n    pass\n"


def run(
    *arguments: str, cwd: Path = ROOT, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """`python -m conc_lsp ARGUMENTS` with no progress line and no colour
    variables but those ``env`` names."""
    environment = {**os.environ, "CONC_LSP_PROGRESS": "0", **(env or {})}
    for name in ("NO_COLOR", "FORCE_COLOR"):
        if env is None or name not in env:
            environment.pop(name, None)
    return subprocess.run(
        [sys.executable, "-m", "conc_lsp", *arguments],
        cwd=cwd,
        capture_output=True,
        text=True,
        encoding="utf-8",
        env=environment,
        timeout=timeout,
    )


def on_terminal(*arguments: str, env: dict[str, str]) -> str:
    """What the command writes on stdout when stdout is a terminal."""
    main, child = pty.openpty()
    environment = {**os.environ, "TERM": "xterm", **env}
    environment.pop("FORCE_COLOR", None)
    if "NO_COLOR" not in env:
        environment.pop("NO_COLOR", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "conc_lsp", *arguments],
        cwd=ROOT,
        stdout=child,
        stderr=subprocess.DEVNULL,
        env=environment,
    )
    os.close(child)
    chunks = []
    while True:
        try:
            chunk = os.read(main, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(main)
    assert process.wait(timeout=120) in (0, 1)
    return b"".join(chunks).decode("utf-8")


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_text_output_shows_each_finding_severity_and_info_does_not_fail(tmp_path: Path) -> None:
    pyproject = SEED_PYPROJECT + '[tool.conc-lsp.severity]\nCONC102 = "information"\n'
    write(tmp_path / "pyproject.toml", pyproject)
    write(tmp_path / "m.py", BUGGY)
    both = run("check", "m.py", cwd=tmp_path)
    assert "m.py:7:9: CONC101 [warning] unbounded" in both.stdout
    assert "m.py:7:9: CONC102 [info] unshielded" in both.stdout
    assert both.returncode == 1  # the warning fails the run
    only_info = run("check", "--ignore", "CONC101", "m.py", cwd=tmp_path)
    assert "CONC102 [info]" in only_info.stdout
    assert "1 finding below warning does not fail the run" in only_info.stdout
    assert only_info.returncode == 0
    failing = run("check", "--ignore", "CONC101", "--fail-on", "information", "m.py", cwd=tmp_path)
    assert failing.returncode == 1
    setting = pyproject.replace("[tool.conc-lsp]\n", '[tool.conc-lsp]\nfail-on = "information"\n')
    write(tmp_path / "pyproject.toml", setting)
    assert run("check", "--ignore", "CONC101", "m.py", cwd=tmp_path).returncode == 1


def test_colour_on_a_terminal_not_when_piped_nor_with_no_color(tmp_path: Path) -> None:
    path = write(tmp_path / "m.py", BUGGY)
    arguments = ("check", "--select", SELECT_ARGUMENT, "--no-cache", str(path))
    coloured = on_terminal(*arguments, env={})
    assert "\x1b[" in coloured and "CONC101" in coloured
    assert "\x1b[" not in on_terminal(*arguments, env={"NO_COLOR": "1"})
    piped = run(*arguments)
    assert "CONC101" in piped.stdout and "\x1b[" not in piped.stdout
    assert "\x1b[" in run(*arguments, env={"FORCE_COLOR": "1"}).stdout


def test_progress_line_on_stderr_when_asked(tmp_path: Path) -> None:
    for index in range(3):
        write(tmp_path / f"m{index}.py", CLEAN)
    quiet = run("check", "--no-cache", str(tmp_path))
    assert "conc-lsp: checked" not in quiet.stderr
    forced = run("check", "--no-cache", "--progress", str(tmp_path))
    assert forced.stderr.splitlines()[-1] == "conc-lsp: checked 3/3 files"
    assert "conc-lsp: checked" not in forced.stdout
    by_environment = run("check", "--no-cache", str(tmp_path), env={"CONC_LSP_PROGRESS": "1"})
    assert "conc-lsp: checked 3/3 files" in by_environment.stderr
    hints = run("hints", "--progress", str(tmp_path))
    assert "conc-lsp: read 3/3 files" in hints.stderr


def test_a_file_that_cannot_be_read_is_never_followed_by_all_checks_passed(
    tmp_path: Path,
) -> None:
    good = write(tmp_path / "good.py", CLEAN)
    result = run("check", str(good), str(tmp_path / "missing.py"))
    assert result.returncode == 2
    assert "missing.py: cannot read" in result.stderr
    assert "All checks passed" not in result.stdout
    assert "1 file could not be read" in result.stdout


def test_summary_counts_files_with_findings_and_files_checked(tmp_path: Path) -> None:
    write(tmp_path / "a.py", BUGGY)
    write(tmp_path / "b.py", BUGGY)
    write(tmp_path / "c.py", CLEAN)
    result = run("check", "--select", SELECT_ARGUMENT, str(tmp_path))
    assert result.stdout.splitlines()[-1] == "Found 4 findings in 2 files (3 checked): 4 warnings."
    clean = run("check", str(tmp_path / "c.py"))
    assert clean.stdout.splitlines()[-1] == "All checks passed (1 file checked)."


def test_a_folder_with_no_python_files_says_so(tmp_path: Path) -> None:
    write(tmp_path / "notes.txt", "nothing to see\n")
    result = run("check", str(tmp_path))
    assert result.returncode == 0
    assert f"no Python files in {tmp_path}" in result.stderr
    assert result.stdout.strip() == "No Python files found."
    hints = run("hints", str(tmp_path))
    assert hints.returncode == 0 and f"no Python files in {tmp_path}" in hints.stderr


def test_syntax_errors_in_every_machine_format_and_on_stderr_in_text(tmp_path: Path) -> None:
    path = write(tmp_path / "broken.py", BROKEN)
    records = json.loads(run("check", "--format", "json", str(path)).stdout)
    assert [(r["line"], r["code"], r["severity"]) for r in records] == [(4, None, "error")]
    assert records[0]["message"].startswith("syntax error: ")
    sarif = json.loads(run("check", "--format", "sarif", str(path)).stdout)
    results = sarif["runs"][0]["results"]
    assert [(r["ruleId"], r["level"]) for r in results] == [("syntax-error", "error")]
    rules = sarif["runs"][0]["tool"]["driver"]["rules"]
    assert "syntax-error" in {rule["id"] for rule in rules}
    github = run("check", "--format", "github", str(path)).stdout
    assert github.startswith("::error file=") and "title=syntax error" in github
    text = run("check", str(path))
    assert text.returncode == 1
    assert "broken.py:4:12: syntax error: " in text.stderr
    assert "syntax error:" not in text.stdout


def test_hints_reads_the_hints_table_of_pyproject(tmp_path: Path) -> None:
    write(
        tmp_path / "pyproject.toml",
        '[tool.conc-lsp.hints]\nlabel-style = "compact"\nkinds = ["await"]\n',
    )
    write(
        tmp_path / "m.py",
        "import trio\n\nasync def f(ev, nursery):\n"
        "    await ev.wait()\n    ev.set()\n    async with trio.open_nursery() as n:\n"
        "        pass\n",
    )
    configured = run("hints", "m.py", cwd=tmp_path)
    assert configured.returncode == 0, configured.stderr
    lines = configured.stdout.splitlines()
    assert len(lines) == 1 and lines[0].startswith("m.py:4: await ev.wait() ")
    assert "<-" not in lines[0]  # the compact style
    flags = run("hints", "--style", "arrow", "--kinds", "await,event-set", "m.py", cwd=tmp_path)
    assert "m.py:4: await ev.wait() <- checkpoint" in flags.stdout.splitlines()
    assert len(flags.stdout.splitlines()) == 2


def test_select_all_means_every_rule_opt_in_ones_included(tmp_path: Path) -> None:
    path = write(tmp_path / "m.py", BUGGY)
    default = run("check", "--no-resolve", "--format", "json", str(path))
    every = run("check", "--no-resolve", "--select", "ALL", "--format", "json", str(path))
    default_codes = {record["code"] for record in json.loads(default.stdout)}
    every_codes = {record["code"] for record in json.loads(every.stdout)}
    assert "CONC101" not in default_codes  # opt-in
    assert {"CONC101", "CONC102"} <= every_codes
    lowercase = run("check", "--no-resolve", "--select", "all", "--format", "json", str(path))
    assert lowercase.stdout == every.stdout


def test_unknown_rule_prefixes_in_severity_warn_and_the_others_apply(tmp_path: Path) -> None:
    write(
        tmp_path / "pyproject.toml",
        '[tool.conc-lsp]\nselect = ["ALL"]\n'
        '[tool.conc-lsp.severity]\nCONC9 = "error"\nCONC10 = "error"\n',
    )
    write(tmp_path / "m.py", BUGGY)
    result = run("check", "--no-resolve", "--format", "json", "m.py", cwd=tmp_path)
    assert "'severity.CONC9': unknown rule code 'CONC9'" in result.stderr
    assert "CONC10'" not in result.stderr
    severities = {r["code"]: r["severity"] for r in json.loads(result.stdout)}
    assert severities["CONC101"] == severities["CONC102"] == "error"  # the prefix applies


def test_exclude_applies_to_named_files_with_force_exclude(tmp_path: Path) -> None:
    write(tmp_path / "pyproject.toml", '[tool.conc-lsp]\nexclude = ["generated"]\n')
    named = write(tmp_path / "generated" / "x.py", CLEAN)
    write(tmp_path / "y.py", CLEAN)
    assert "(1 file checked)" in run("check", "generated/x.py", cwd=tmp_path).stdout
    forced = run("check", "--force-exclude", "generated/x.py", "y.py", cwd=tmp_path)
    assert forced.stdout.strip() == "All checks passed (1 file checked)."
    only = run("check", "--force-exclude", str(named), cwd=tmp_path)
    assert only.stdout.strip() == "No Python files found." and only.returncode == 0
    text = (tmp_path / "pyproject.toml").read_text(encoding="utf-8")
    write(tmp_path / "pyproject.toml", text + "force-exclude = true\n")
    assert run("check", "generated/x.py", cwd=tmp_path).stdout.strip() == "No Python files found."


def test_serve_with_a_bad_tcp_address_is_a_one_line_error() -> None:
    for address in ("nope", "127.0.0.1:99999", "host:"):
        result = run("serve", "--tcp", address)
        assert result.returncode == 2
        assert result.stderr.count("\n") == 1 and "HOST:PORT" in result.stderr
        assert "Traceback" not in result.stderr
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run("serve", "--tcp", f"127.0.0.1:{port}")
    assert result.returncode == 1
    assert result.stderr.startswith(f"conc-lsp: error: cannot listen on 127.0.0.1:{port}: ")
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr


def test_hints_show_context_prints_what_the_editor_shows_by_default(tmp_path: Path) -> None:
    write(
        tmp_path / "m.py",
        "import trio\n\nasync def f(ev):\n    await ev.wait()\n    try:\n        pass\n"
        "    finally:\n        await ev.wait()\n",
    )
    every = run("hints", "m.py", cwd=tmp_path).stdout.splitlines()
    assert [line.split(":")[1] for line in every] == ["4", "8"]  # the whole map by default
    context = run("hints", "--show", "context", "--max-length", "12", "m.py", cwd=tmp_path)
    assert context.returncode == 0, context.stderr
    lines = context.stdout.splitlines()
    assert len(lines) == 1 and lines[0].startswith("m.py:8: await ev.wait() <- finally")
    assert len(lines[0].split(" <- ", 1)[1]) <= 12 - 3  # the cap counts the arrow too
