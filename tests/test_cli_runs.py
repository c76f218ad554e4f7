"""Many files, every core, a cache (issue 15, items 2 and 3): the output never
depends on --jobs or on the cache, and the cache is only used when it may be."""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conc_lsp import cache, fingerprint
from conc_lsp.analysis.model import Finding, Location, Severity
from conc_lsp.cli import main
from conc_lsp.cli_pool import _batches
from conc_lsp.config import Settings
from tests.rule_settings import SELECT_ARGUMENT
from tests.test_cli_manners import BUGGY
from tests.test_cli_manners import run as run_cli

ROOT = Path(__file__).resolve().parent.parent
FIXABLE = (
    "import trio\n\n\nasync def f(ev: trio.Event) -> None:\n    try:\n        pass\n"
    "    finally:\n        await ev.wait()\n"
)


def run(*arguments: str, cache_dir: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = None if cache_dir is None else {"CONC_LSP_CACHE_DIR": str(cache_dir)}
    return run_cli(*arguments, env=env, timeout=180)


def tree(folder: Path) -> Path:
    """A small project: findings in several files, a syntax error, a clean file."""
    folder.mkdir(exist_ok=True)
    for index in range(6):
        body = BUGGY if index % 2 else BUGGY.replace("ev.wait()", f"trio.sleep({index})")
        (folder / f"m{index}.py").write_text(body, encoding="utf-8")
    (folder / "sub").mkdir()
    (folder / "sub" / "broken.py").write_text("def broken(:\n    pass\n", encoding="utf-8")
    (folder / "sub" / "clean.py").write_text("x = 1\n", encoding="utf-8")
    return folder


def entries(folder: Path) -> list[Path]:
    return sorted((folder / cache.FORMAT).glob("*/*.json"))


@pytest.mark.parametrize("output", ["text", "json", "sarif", "github"])
def test_jobs_do_not_change_the_output(tmp_path: Path, output: str) -> None:
    project = tree(tmp_path / "project")
    outputs = {
        jobs: run(
            "check",
            "--no-cache",
            "--jobs",
            jobs,
            "--select",
            SELECT_ARGUMENT,
            "--format",
            output,
            str(project),
        )
        for jobs in ("1", "2", "3")
    }
    assert outputs["1"].returncode == 1 and "CONC101" in outputs["1"].stdout
    for result in outputs.values():
        assert (result.stdout, result.stderr, result.returncode) == (
            outputs["1"].stdout,
            outputs["1"].stderr,
            outputs["1"].returncode,
        )


def test_hints_with_jobs_prints_what_one_process_prints() -> None:
    one = run("hints", "--jobs", "1", "examples", "tests/fixtures/rules")
    two = run("hints", "--jobs", "2", "examples", "tests/fixtures/rules")
    assert one.returncode == 0 and one.stdout.count("\n") > 50
    assert (two.stdout, two.stderr) == (one.stdout, one.stderr)


def test_a_cached_run_prints_the_same_bytes_as_an_uncached_one(tmp_path: Path) -> None:
    project = tree(tmp_path / "project")
    folder = tmp_path / "cache"
    for output in ("text", "json", "sarif", "github"):
        arguments = ("check", "--select", SELECT_ARGUMENT, "--format", output, str(project))
        uncached = run(*arguments, "--no-cache", cache_dir=folder)
        first = run(*arguments, cache_dir=folder)
        second = run(*arguments, cache_dir=folder)
        for result in (first, second):
            assert (result.stdout, result.stderr, result.returncode) == (
                uncached.stdout,
                uncached.stderr,
                uncached.returncode,
            )
    assert (folder / ".gitignore").read_text(encoding="utf-8").endswith("*\n")
    assert len(entries(folder)) == 2 * 8  # each file, plain and with fixes


def test_no_cache_neither_reads_nor_writes(tmp_path: Path) -> None:
    project = tree(tmp_path / "project")
    run("check", "--no-cache", str(project), cache_dir=tmp_path / "cache")
    assert not (tmp_path / "cache").exists()


def tamper(folder: Path, old: str, new: str) -> int:
    """Edit the cached messages, so that a run which prints them shows it read the cache."""
    changed = 0
    for entry in entries(folder):
        text = entry.read_text(encoding="utf-8")
        if old in text:
            entry.write_text(text.replace(old, new), encoding="utf-8")
            changed += 1
    return changed


def check_in_process(capsys: pytest.CaptureFixture[str], folder: Path, *arguments: str) -> str:
    capsys.readouterr()
    main(["check", "--jobs", "1", "--cache-dir", str(folder), *arguments])
    return capsys.readouterr().out


def test_the_cache_is_read_and_invalidated_by_settings_content_and_version(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "m.py"
    path.write_text(BUGGY, encoding="utf-8")
    folder = tmp_path / "cache"
    select = ("--select", SELECT_ARGUMENT, str(path))
    assert "CONC101 [warning] unbounded" in check_in_process(capsys, folder, *select)
    assert tamper(folder, "unbounded", "CACHED") == 1
    assert "CONC101 [warning] CACHED" in check_in_process(capsys, folder, *select)
    # Other settings: another entry, computed afresh.
    assert "CACHED" not in check_in_process(capsys, folder, "--ignore", "CONC102", *select)
    assert "CACHED" in check_in_process(capsys, folder, *select)
    # Another version of the program: computed afresh.
    monkeypatch.setattr(fingerprint, "__version__", "99.0")
    assert "CACHED" not in check_in_process(capsys, folder, *select)
    monkeypatch.undo()
    assert "CACHED" in check_in_process(capsys, folder, *select)
    # Other content: computed afresh.
    path.write_text(BUGGY + "\n", encoding="utf-8")
    assert "CACHED" not in check_in_process(capsys, folder, *select)


def test_a_damaged_entry_is_a_miss(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "m.py"
    path.write_text(BUGGY, encoding="utf-8")
    folder = tmp_path / "cache"
    expected = check_in_process(capsys, folder, "--select", SELECT_ARGUMENT, str(path))
    for entry in entries(folder):
        entry.write_bytes(b'{"findings": [{"code": ')  # a half-written file
    assert check_in_process(capsys, folder, "--select", SELECT_ARGUMENT, str(path)) == expected


def test_fix_never_takes_a_file_it_would_rewrite_from_the_cache(tmp_path: Path) -> None:
    path = tmp_path / "m.py"
    path.write_text(FIXABLE, encoding="utf-8")
    folder = tmp_path / "cache"
    arguments = ("check", "--select", SELECT_ARGUMENT, "--no-resolve")
    # JSON output computes the fixes: its entries are those --fix would look up.
    assert json.loads(run(*arguments, "--format", "json", str(path), cache_dir=folder).stdout)
    assert tamper(folder, "unbounded", "CACHED") == 1
    fixed = run(*arguments, "--fix", str(path), cache_dir=folder)
    assert "Fixed 1 finding." in fixed.stdout and "CACHED" not in fixed.stdout
    assert "move_on_after" in path.read_text(encoding="utf-8")
    # The fixed file has no fix left: --fix may now take it from the cache.
    again = run(*arguments, "--fix", str(path), cache_dir=folder)
    assert "Fixed 0 findings." in again.stdout
    assert again.stdout == run(*arguments, "--fix", str(path), cache_dir=folder).stdout


def test_concurrent_runs_share_one_cache(tmp_path: Path) -> None:
    project = tree(tmp_path / "project")
    folder = tmp_path / "cache"
    arguments = ["check", "--select", SELECT_ARGUMENT, "--format", "json", str(project)]
    expected = run(*arguments, "--no-cache").stdout
    environment = {**os.environ, "CONC_LSP_CACHE_DIR": str(folder), "CONC_LSP_PROGRESS": "0"}
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "conc_lsp", *arguments, "--jobs", "2"],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=environment,
        )
        for _ in range(3)
    ]
    for process in processes:
        stdout, _ = process.communicate(timeout=180)
        assert stdout == expected
    assert not list(folder.rglob("*.tmp"))  # every write was completed or removed
    assert run(*arguments, cache_dir=folder).stdout == expected


def test_the_cache_is_bounded_least_recently_used_first(tmp_path: Path) -> None:
    store = cache.open_cache(tmp_path, Settings(), str(tmp_path / "cache"))
    assert store is not None
    finding = Finding("CONC101", "x", "m" * 1000, Location(0, 0, 0, 1), Severity.WARNING, "f")
    keys = [store.key(f"f{index}.py", b"same", False) for index in range(20)]
    for age, key in enumerate(keys):
        store.store(key, cache.CachedResult([finding], []))
        entry = store.folder / key[:2] / f"{key}.json"
        os.utime(entry, (1000 + age, 1000 + age))
    assert store.load(keys[0]) is not None  # used now: the most recent
    size = sum(path.stat().st_size for path in store.folder.rglob("*.json"))
    removed = cache.prune(store, max_bytes=size // 2)
    assert removed > 0
    left = sum(path.stat().st_size for path in store.folder.rglob("*.json"))
    assert left <= size // 2
    assert store.load(keys[0]) is not None and store.load(keys[1]) is None
    assert cache.prune(store, max_bytes=size) == 0


WORKER_PROBE = """
import os, sys
from pathlib import Path
from conc_lsp.check_files import CheckJob, check_file
from conc_lsp.cli import main
from conc_lsp.cli_pool import Progress, run_in_order
from conc_lsp.config import Settings

def lsp_modules(job, path):
    check_file(job, path)
    return os.getpid(), [m for m in sys.modules if m.split(".")[0] in ("pygls", "lsprotocol")]

folder = Path(sys.argv[1])
assert main(["check", "--no-cache", "--jobs", "2", str(folder)]) == 1
paths = sorted(folder.glob("m*.py"))
job = CheckJob(Settings(), False, False, False, None, None)
found = run_in_order(lsp_modules, job, paths, 2, Progress(len(paths), sys.stderr, False, "x"))
print("workers", len({pid for pid, _ in found} - {os.getpid()}))
print("loaded", sorted({name for _, loaded in found for name in loaded}))
"""


def test_the_pool_workers_import_no_lsp_code(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-c", WORKER_PROBE, str(tree(tmp_path))],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[-2] in ("workers 1", "workers 2")  # the files were checked in workers
    assert lines[-1] == "loaded []"


def test_the_pool_leaves_the_garbage_collector_as_it_found_it(tmp_path: Path) -> None:
    """Objects frozen for the fork and never thawed are never collected: a jedi
    environment that became garbage kept its helper process alive (a bug)."""
    project = tree(tmp_path / "project")
    assert main(["check", "--no-cache", "--jobs", "2", str(project)]) == 1
    assert gc.get_freeze_count() == 0


def test_the_pool_batches_every_file_once_biggest_alone() -> None:
    """Files go to the workers in small batches (one message per file cost more
    than checking a small one): each exactly once, in the given order, the
    first (biggest) ones alone so that they spread over the workers."""
    order = list(range(190))
    for jobs in (2, 3, 8):
        batches = _batches(order, jobs)
        assert [index for batch in batches for index in batch] == order
        assert all(len(batch) == 1 for batch in batches[:jobs])
        assert len(batches) >= jobs * 4
    assert _batches([4, 2], 2) == [[4], [2]]
    assert _batches([], 2) == []
