"""What the short commands import (issue 15, start-up): a module a command
does not use is not loaded, so that `conc-lsp check` of a small file stays
close to a bare `python -c pass`. Figures: benchmarks/startup.py."""

from __future__ import annotations

import gc
import io
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conc_lsp import cli
from conc_lsp.rules.index import RULES

# Loaded only by what needs them: a pyproject.toml to read, a cache, the json or
# sarif format, a warning, a report's diff, a fix to write; argparse's help width.
NOT_FOR_A_PLAIN_CHECK = (
    "tomllib",
    "json",
    "logging",
    "difflib",
    "tempfile",
    "shutil",
    "pkgutil",
    "ctypes",
    "lsprotocol",
    "pygls",
)
RUN_AND_LIST = """
import sys
from conc_lsp.cli import main
code = main(sys.argv[1:])
print("\\n" + " ".join(sorted(sys.modules)))
"""


def _modules_after(arguments: list[str], folder: Path) -> set[str]:
    done = subprocess.run(
        [sys.executable, "-c", RUN_AND_LIST, *arguments],
        cwd=folder,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return set(done.stdout.rsplit("\n", 2)[-2].split())


def test_a_plain_check_loads_no_module_it_does_not_use(tmp_path: Path) -> None:
    (tmp_path / "tiny.py").write_text("x = 1\n", encoding="utf-8")
    loaded = _modules_after(["check", "--no-cache", "tiny.py"], tmp_path)
    assert "conc_lsp.diagnose" in loaded  # the file was checked
    assert sorted(name for name in NOT_FOR_A_PLAIN_CHECK if name in loaded) == []
    # the rules it runs, and no other (three of sixteen by default)
    rules = {name.split(".")[2] for name in loaded if name.startswith("conc_lsp.rules.conc")}
    default = {module for module, opt_in in RULES.values() if not opt_in}
    assert rules == default


def test_a_selected_rule_is_loaded_and_runs(tmp_path: Path) -> None:
    (tmp_path / "tiny.py").write_text("x = 1\n", encoding="utf-8")
    loaded = _modules_after(["check", "--no-cache", "--select", "CONC111", "tiny.py"], tmp_path)
    rules = {name.split(".")[2] for name in loaded if name.startswith("conc_lsp.rules.conc")}
    assert rules == {RULES["CONC111"][0]}


def test_what_a_check_uses_it_loads(tmp_path: Path) -> None:
    """The same list, with a pyproject.toml, the cache and the json format: the
    lazy imports happen where they are needed (else this run would fail)."""
    (tmp_path / "pyproject.toml").write_text("[tool.conc-lsp]\n", encoding="utf-8")
    (tmp_path / "tiny.py").write_text("x = 1\n", encoding="utf-8")
    loaded = _modules_after(["check", "--format", "json", "tiny.py"], tmp_path)
    assert {"tomllib", "json"} <= loaded
    assert json.loads(next((tmp_path / ".conc_lsp_cache").rglob("run-*.json")).read_text())


@pytest.mark.parametrize("columns", [None, "50", "0", "-3", "wide"])
def test_the_help_is_as_wide_as_argparse_makes_it(
    monkeypatch: pytest.MonkeyPatch, columns: str | None
) -> None:
    if columns is None:
        monkeypatch.delenv("COLUMNS", raising=False)
    else:
        monkeypatch.setenv("COLUMNS", columns)
    assert cli._help_width() == shutil.get_terminal_size().columns - 2


def test_the_server_runs_with_the_collector_on_and_its_modules_frozen(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`serve` loads the server with the cyclic collector off (start-up), then
    freezes what it loaded and turns the collector back on before serving."""
    from conc_lsp.server import app

    seen: list[tuple[bool, int]] = []
    monkeypatch.setattr(
        app,
        "serve",
        lambda tcp=None, early=None, stdin=None: seen.append(
            (gc.isenabled(), gc.get_freeze_count())
        ),
    )
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO()))  # early_init reads it
    try:
        assert cli.main(["serve"]) == 0
    finally:
        gc.unfreeze()  # this test process goes on
    assert len(seen) == 1
    enabled, frozen = seen[0]
    assert enabled and frozen > 0
