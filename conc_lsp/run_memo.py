"""The run memo: a `check` run's whole output, printed again when nothing it
read has changed.

The status index already spares a cached run from reading its files, but
the run still loads the settings, the model and the output formats. The
memo goes one step further, as a build tool's up-to-date check does: it
records what a run printed (stdout, stderr, exit code) with everything the
output depends on:

- the command line's options (but ``--jobs`` and ``--progress``, which never
  change the output), the working folder, the environment variables the
  command reads, whether stdout and stderr are terminals, and the program
  (version, Python, the size and time of each of conc-lsp's own files);
- the status (size, times, inode) of every file and folder the run read: the
  files checked, the folders walked (a file added or removed changes its
  folder's times), the `.gitignore` files, the pyproject.toml and every
  folder searched for one.

A later run with the same options whose recorded statuses all still
hold prints the recorded output and stops, before the settings, the model
or the checks load. Anything changed, or changed in the last seconds (see
``cache_files.file_status``), and the run goes the usual way. Runs that
write files (``--fix``), resolve with jedi, or show a progress line are
never recorded. Standard library only: this runs before anything else loads.
"""

from __future__ import annotations

import io
import os
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

from conc_lsp.cache_files import (
    ENVIRONMENT_VARIABLE,
    FORMAT,
    cache_base,
    file_status,
    write_json_atomically,
)
from conc_lsp.cli_pool import PROGRESS_VARIABLE, is_terminal
from conc_lsp.fingerprint import program_fingerprint
from conc_lsp.project import pyproject_search

# Not `typing.TYPE_CHECKING`: importing typing costs a run the memo answers 3 ms.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from argparse import Namespace
    from typing import TextIO

MEMO_NAME = "runs.json"
RUNS_KEPT = 8  # command lines remembered per cache folder, the most recent first
MAX_OUTPUT = 4 * 1024 * 1024  # characters of output above which a run is not recorded
# What the output of `check` reads from the environment (colour, progress, cache).
# Options that do not change what a run prints (tests/test_cli_runs.py for --jobs).
UNPRINTED_OPTIONS = frozenset({"jobs", "progress"})
ENVIRONMENT = (PROGRESS_VARIABLE, ENVIRONMENT_VARIABLE, "NO_COLOR", "FORCE_COLOR", "TERM")


def memo_path(paths: Sequence[str], cache_dir: str | None) -> Path:
    """The memo of the cache folder a run over ``paths`` uses."""
    start = Path(paths[0]).resolve() if paths else Path.cwd()
    pyproject, _ = pyproject_search(start)
    root = pyproject.parent if pyproject else Path.cwd()
    return cache_base(root, cache_dir) / FORMAT / MEMO_NAME


def run_key(arguments: Namespace, out: TextIO, err: TextIO) -> dict[str, object]:
    """Everything besides the files that the output of a run depends on, as
    JSON would give it back."""
    import json  # only when the cache is used (start-up cost of a --no-cache run)

    options = {
        name: value
        for name, value in sorted(vars(arguments).items())
        if name not in UNPRINTED_OPTIONS
    }
    key = {
        "options": options,
        "cwd": os.getcwd(),
        "env": {name: os.environ.get(name) for name in ENVIRONMENT},
        "terminals": [is_terminal(out), is_terminal(err)],
        "program": program_fingerprint(),
    }
    normal: dict[str, object] = json.loads(json.dumps(key, default=str))
    return normal


def replay(arguments: Namespace, memo: Path, out: TextIO, err: TextIO) -> int | None:
    """Print a recorded run's output and give its exit code, when the memo holds
    one for this command line whose reads all still hold; else None."""
    import json  # only when the cache is used (start-up cost of a --no-cache run)

    try:
        records = json.loads(memo.read_bytes())
    except (OSError, ValueError):
        return None
    if not isinstance(records, list):
        return None
    key = run_key(arguments, out, err)
    for record in records:
        if not isinstance(record, dict) or record.get("key") != key:
            continue
        if not _unchanged(record.get("reads")):
            return None
        code, printed, complained = record.get("code"), record.get("out"), record.get("err")
        if not (isinstance(code, int) and isinstance(printed, str) and isinstance(complained, str)):
            return None
        err.write(complained)
        err.flush()
        out.write(printed)
        out.flush()
        return code
    return None


def _unchanged(reads: object) -> bool:
    if not isinstance(reads, list) or not reads:
        return False
    for read in reads:
        if not (isinstance(read, list) and len(read) == 2 and isinstance(read[0], str)):
            return False
        status = file_status(read[0])
        if status is None or list(status) != read[1]:
            return False
    return True


class _Tee(io.StringIO):
    """Writes through to ``stream`` and keeps a copy (its own value)."""

    def __init__(self, stream: TextIO) -> None:
        super().__init__()
        self.stream = stream

    def write(self, text: str) -> int:
        super().write(text)
        return self.stream.write(text)

    def flush(self) -> None:
        self.stream.flush()

    def isatty(self) -> bool:
        return is_terminal(self.stream)


class Recorder:
    """What one run read and printed, for the memo."""

    def __init__(self, arguments: Namespace, out: TextIO, err: TextIO) -> None:
        # Statuses are trusted only when nothing changed since shortly before the run
        # began: a change while the run read a file or listed a folder is never recorded.
        self.started = time.time_ns()
        self.key = run_key(arguments, out, err)
        self._out = _Tee(out)
        self._err = _Tee(err)
        self.reads: dict[str, list[int] | None] = {}

    @property
    def out(self) -> TextIO:
        return self._out

    @property
    def err(self) -> TextIO:
        return self._err

    def read(self, paths: Iterable[Path | str]) -> None:
        """The run's output depends on these files or folders as they are now."""
        for path in paths:
            name = str(path)
            if name not in self.reads:
                status = file_status(name, since=self.started)
                self.reads[name] = list(status) if status is not None else None

    def save(self, memo: Path, code: int) -> None:
        """Record the run, unless something it read was missing or not settled."""
        if code not in (0, 1) or not self.reads or None in self.reads.values():
            return
        printed, complained = self._out.getvalue(), self._err.getvalue()
        if len(printed) + len(complained) > MAX_OUTPUT:
            return
        import json  # only when the cache is used (start-up cost of a --no-cache run)

        try:
            records = json.loads(memo.read_bytes())
        except (OSError, ValueError):
            records = []
        if not isinstance(records, list):
            records = []
        kept = [r for r in records if isinstance(r, dict) and r.get("key") != self.key]
        record = {
            "key": self.key,
            "reads": [[name, status] for name, status in self.reads.items()],
            "out": printed,
            "err": complained,
            "code": code,
        }
        write_json_atomically(memo, [record, *kept][:RUNS_KEPT])
