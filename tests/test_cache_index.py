"""The cache's status index (issue 15, item 3): a file whose size, times and
inode are those recorded is answered without being read, any change to it is
seen, and a file changed in the last seconds is never answered by its status."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from conc_lsp import cache, cache_files, run_memo
from tests.rule_settings import SELECT_ARGUMENT
from tests.test_cli_manners import BUGGY
from tests.test_cli_runs import check_in_process

SETTLED = 1_000_000_000  # seconds since the epoch: long settled


@pytest.fixture
def settled_now(monkeypatch: pytest.MonkeyPatch) -> None:
    """Files written by the test count as settled at once (their change time, which
    no test can set back, is otherwise recent for two seconds)."""
    monkeypatch.setattr(cache_files, "SETTLED_SECONDS", -3600.0)


def settled_file(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    os.utime(path, (SETTLED, SETTLED))
    return path


def indexes(folder: Path) -> list[Path]:
    return sorted((folder / cache.FORMAT).glob("index-*.json"))


def tamper_index(folder: Path, old: str, new: str) -> None:
    """Edit the indexed messages (and drop the run memo, which would print the
    whole recorded output before the index is read)."""
    (folder / cache.FORMAT / run_memo.MEMO_NAME).unlink(missing_ok=True)
    (index,) = indexes(folder)
    text = index.read_text(encoding="utf-8")
    assert old in text
    index.write_text(text.replace(old, new), encoding="utf-8")


@pytest.mark.usefixtures("settled_now")
def test_a_settled_file_is_answered_by_its_status(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = settled_file(tmp_path / "m.py", BUGGY)
    folder = tmp_path / "cache"
    select = ("--select", SELECT_ARGUMENT, str(path))
    assert "CONC101 [warning] unbounded" in check_in_process(capsys, folder, *select)
    tamper_index(folder, "unbounded", "INDEXED")
    assert "CONC101 [warning] INDEXED" in check_in_process(capsys, folder, *select)


@pytest.mark.usefixtures("settled_now")
def test_a_change_that_keeps_size_and_mtime_is_still_seen(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = settled_file(tmp_path / "m.py", BUGGY)
    folder = tmp_path / "cache"
    select = ("--select", SELECT_ARGUMENT, str(path))
    check_in_process(capsys, folder, *select)
    tamper_index(folder, "unbounded", "INDEXED")
    # Same length, same mtime (as `cp -p` or a tool restoring times would leave it):
    # the change time differs, so the status no longer matches and the file is read.
    changed = BUGGY.replace("ev.wait()", "ev.wxit()")
    assert len(changed) == len(BUGGY)
    path.write_text(changed, encoding="utf-8")
    os.utime(path, (SETTLED, SETTLED))
    assert path.stat().st_size == len(BUGGY.encode())
    output = check_in_process(capsys, folder, *select)
    assert "INDEXED" not in output


def test_a_file_changed_just_now_is_not_answered_by_its_status(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "m.py"
    path.write_text(BUGGY, encoding="utf-8")  # modified now: not settled
    folder = tmp_path / "cache"
    select = ("--select", SELECT_ARGUMENT, str(path))
    first = check_in_process(capsys, folder, *select)
    assert "CONC101" in first
    assert not indexes(folder)  # nothing settled to record
    assert check_in_process(capsys, folder, *select) == first


@pytest.mark.usefixtures("settled_now")
def test_a_damaged_index_is_a_miss(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = settled_file(tmp_path / "m.py", BUGGY)
    folder = tmp_path / "cache"
    select = ("--select", SELECT_ARGUMENT, str(path))
    expected = check_in_process(capsys, folder, *select)
    for damage in (b'{"Pm.py": [[1, 2', b"[]", b'{"P' + str(path).encode() + b'": [[0], {}]}'):
        (index,) = indexes(folder)
        index.write_bytes(damage)
        assert check_in_process(capsys, folder, *select) == expected
    (index,) = indexes(folder)
    assert json.loads(index.read_bytes())  # rewritten whole by the last run


@pytest.mark.usefixtures("settled_now")
def test_the_index_is_bounded_keeping_the_last_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cache, "INDEX_LIMIT", 3)
    folder = tmp_path / "cache"
    old = [settled_file(tmp_path / f"old{index}.py", "x = 1\n") for index in range(3)]
    new = [settled_file(tmp_path / f"new{index}.py", "y = 2\n") for index in range(2)]
    check_in_process(capsys, folder, *map(str, old))
    check_in_process(capsys, folder, *map(str, new))
    (index,) = indexes(folder)
    kept = json.loads(index.read_bytes())
    assert len(kept) == 3
    assert {f"P{path}" for path in new} <= set(kept)
