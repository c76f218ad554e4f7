"""The run memo (issue 15, item 3): a `check` run whose command line, program,
environment and every file and folder it read are unchanged prints the
recorded output; any change among them runs the check again."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from conc_lsp import cache_files, run_memo
from conc_lsp.cli import main
from tests.rule_settings import SELECT_ARGUMENT
from tests.test_cli_manners import BUGGY

SETTLED = 1_000_000_000  # seconds since the epoch


@pytest.fixture(autouse=True)
def settled_now(monkeypatch: pytest.MonkeyPatch) -> None:
    """Files written by the test count as settled at once (their change time is
    otherwise recent for two seconds, and a recent change is never recorded)."""
    monkeypatch.setattr(cache_files, "SETTLED_SECONDS", -3600.0)


def project(folder: Path) -> Path:
    folder.mkdir()
    (folder / "pyproject.toml").write_text("[tool.conc-lsp]\n", encoding="utf-8")
    (folder / "m.py").write_text(BUGGY, encoding="utf-8")
    (folder / "sub").mkdir()
    (folder / "sub" / "clean.py").write_text("x = 1\n", encoding="utf-8")
    return folder


def memo_of(folder: Path) -> Path:
    return folder / ".conc_lsp_cache" / cache_files.FORMAT / run_memo.MEMO_NAME


def check(capsys: pytest.CaptureFixture[str], *arguments: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(["check", "--jobs", "1", "--select", SELECT_ARGUMENT, *arguments])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def mark_memo(folder: Path) -> None:
    """Change the recorded output, so that a run printing it shows it replayed."""
    memo = memo_of(folder)
    records = json.loads(memo.read_bytes())
    assert records and "CONC101" in records[0]["out"]
    records[0]["out"] = records[0]["out"].replace("CONC101", "REPLAYED")
    memo.write_text(json.dumps(records), encoding="utf-8")


def replayed(capsys: pytest.CaptureFixture[str], root: Path) -> None:
    """Record a run over ``root`` (twice: the first run made the cache folder, which
    changed the project folder it had read) and see it replayed."""
    check(capsys, ".")
    check(capsys, ".")
    mark_memo(root)
    assert "REPLAYED" in check(capsys, ".")[1]


def test_an_unchanged_run_is_replayed_byte_for_byte(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    root = project(tmp_path / "p")
    monkeypatch.chdir(root)
    first = check(capsys, ".")
    assert first[0] == 1 and "CONC101" in first[1]
    assert memo_of(root).exists()
    assert check(capsys, ".") == first  # recorded again: the cache folder was new
    assert check(capsys, ".") == first  # replayed: the same bytes and exit code
    mark_memo(root)
    code, out, _ = check(capsys, ".")
    assert code == 1 and "REPLAYED" in out


@pytest.mark.parametrize(
    "change",
    [
        "edit a file, same size and time",
        "add a file",
        "remove a file",
        "edit the settings",
        "add a .gitignore",
        "another command line",
        "another environment",
    ],
)
def test_any_change_runs_the_check_again(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    change: str,
) -> None:
    root = project(tmp_path / "p")
    monkeypatch.chdir(root)
    replayed(capsys, root)
    arguments = ["."]
    if change == "edit a file, same size and time":
        edited = BUGGY.replace("ev.wait()", "ev.wxit()")
        (root / "m.py").write_text(edited, encoding="utf-8")
        os.utime(root / "m.py", (SETTLED, SETTLED))
    elif change == "add a file":
        (root / "sub" / "new.py").write_text(BUGGY, encoding="utf-8")
    elif change == "remove a file":
        (root / "sub" / "clean.py").unlink()
    elif change == "edit the settings":
        (root / "pyproject.toml").write_text("[tool.conc-lsp]\nignore = []\n", encoding="utf-8")
    elif change == "add a .gitignore":
        (root / ".gitignore").write_text("sub/\n", encoding="utf-8")
    elif change == "another command line":
        arguments = ["--format", "json", "."]
    else:
        monkeypatch.setenv("NO_COLOR", "1")
    code, out, _ = check(capsys, *arguments)
    assert "REPLAYED" not in out
    assert code == 1


def test_options_that_print_nothing_differently_share_the_record(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    root = project(tmp_path / "p")
    monkeypatch.chdir(root)
    replayed(capsys, root)  # recorded with --jobs 1
    capsys.readouterr()
    main(["check", "--jobs", "2", "--no-progress", "--select", SELECT_ARGUMENT, "."])
    assert "REPLAYED" in capsys.readouterr().out


def test_runs_that_write_resolve_or_skip_the_cache_are_never_recorded(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    root = project(tmp_path / "p")
    monkeypatch.chdir(root)
    for options in (["--fix"], ["--no-cache"], ["--progress"]):
        check(capsys, *options, ".")
        assert not memo_of(root).exists(), options


def test_a_recent_change_is_never_recorded(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.undo()  # the real settling time: the files were written just now
    root = project(tmp_path / "p")
    monkeypatch.chdir(root)
    first = check(capsys, ".")
    assert not memo_of(root).exists()
    assert check(capsys, ".") == first


def test_a_damaged_memo_is_a_miss(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    root = project(tmp_path / "p")
    monkeypatch.chdir(root)
    first = check(capsys, ".")
    for damage in (b"[{", b"{}", b'[{"key": 1}]', b"[1, 2]"):
        memo_of(root).write_bytes(damage)
        assert check(capsys, ".") == first
    records = json.loads(memo_of(root).read_bytes())
    assert len(records) == 1  # rewritten whole, damaged records dropped
    records[0]["code"] = "one"
    memo_of(root).write_text(json.dumps(records), encoding="utf-8")
    assert check(capsys, ".") == first
