"""The results cache of `conc-lsp check`, as ruff has one.

One entry per file result, a small JSON document (never a pickle: a cache
folder may come from elsewhere), named by a digest of everything the result
depends on: the file's bytes, its path as given (per-file ignores read it),
the effective settings, whether fixes were computed, and the program (its
version, the Python running it, and the size and time of each of its own
source files, so that an edited rule is never served stale results).

The folder is ``.conc_lsp_cache/`` beside the project's ``pyproject.toml``
(else in the working folder), with its own ``.gitignore``. Writes go to a
temporary file renamed into place, so concurrent runs see a whole entry or
none; an entry that cannot be read or parsed is a miss. The folder is
bounded: past ``MAX_BYTES`` the least recently used entries are removed.

Beside the entries, a *status index* per program and settings (as git's
index): each file's size, times and inode when it was checked, with its
result. A file whose status is the one recorded is neither read nor hashed
again, and the whole index is one read, so that a run over an unchanged
tree costs little more than the interpreter's start. A file changed in the
last seconds before it was checked is not recorded (its time may not tell
a second change in the same tick): it is hashed each run until it settles.
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from conc_lsp.cache_files import (
    FORMAT,
    FileStatus,
    cache_base,
    write_json_atomically,
)
from conc_lsp.config import Settings
from conc_lsp.fingerprint import program_fingerprint

if TYPE_CHECKING:
    from conc_lsp.analysis.model import (
        Finding,
        Location,
        SyntaxProblem,
    )

MAX_BYTES = 64 * 1024 * 1024
PRUNED_TO = 0.75  # of MAX_BYTES, so that pruning does not run on every write
INDEX_LIMIT = 100_000  # files in one status index; those of the last run are kept first


@dataclass(frozen=True, slots=True)
class CachedResult:
    """What `check` prints for one file (fix edits left out: --fix re-checks)."""

    findings: list[Finding]
    problems: list[SyntaxProblem]

    def has_fix(self, unsafe: bool) -> bool:
        """Whether --fix (--unsafe-fixes with ``unsafe``) would change the file."""
        return any(found.fix is not None and (found.fix.safe or unsafe) for found in self.findings)


@dataclass(frozen=True, slots=True)
class Cache:
    """One run's view of the cache folder (picklable: the pool's workers get it)."""

    folder: Path  # .../.conc_lsp_cache/v1
    program: str  # digest of the program and the settings

    def key(self, path: str, content: bytes, fixes: bool) -> str:
        """The entry's name: ``content`` is the SHA-256 digest of the file's bytes."""
        digest = hashlib.sha256(self.program.encode())
        digest.update(b"\0fixes" if fixes else b"\0plain")
        digest.update(b"\0" + os.fsencode(path) + b"\0")
        digest.update(content)
        return digest.hexdigest()

    def _entry(self, key: str) -> Path:
        return self.folder / key[:2] / f"{key}.json"

    def load(self, key: str) -> CachedResult | None:
        import json  # only when the cache is used (start-up cost of a --no-cache run)

        entry = self._entry(key)
        try:
            data = json.loads(entry.read_bytes())
            result = _result_from_json(data)
        except (OSError, ValueError, KeyError, TypeError):
            return None  # absent, half-written by an older version, or damaged: a miss
        with contextlib.suppress(OSError):
            os.utime(entry)  # recently used: pruned last
        return result

    def store(self, key: str, result: CachedResult) -> None:
        """Write an entry atomically; a cache that cannot be written is no error."""
        self.write_json(self._entry(key), _result_to_json(result))

    def status_index(self) -> StatusIndex:
        """This program's and settings' status index (empty when absent or damaged)."""
        import json  # only when the cache is used (start-up cost of a --no-cache run)

        path = self.folder / f"index-{self.program[:32]}.json"
        try:
            data = json.loads(path.read_bytes())
        except (OSError, ValueError):
            data = None
        entries = data if isinstance(data, dict) else {}
        return StatusIndex(self, path, entries)

    def _run_entry(self) -> Path:
        return self.folder / f"run-{self.program[:32]}.json"

    def run_facts(self) -> dict[str, Any]:
        """What earlier runs with the same program and settings worked out once
        (such as whether a rule wants jedi), so that a cached run need not load the rules."""
        import json  # only when the cache is used (start-up cost of a --no-cache run)

        try:
            data = json.loads(self._run_entry().read_bytes())
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def store_run_facts(self, facts: dict[str, Any]) -> None:
        self.write_json(self._run_entry(), facts)

    def write_json(self, entry: Path, data: Any) -> None:
        write_json_atomically(entry, data)


class StatusIndex:
    """Results by file status, read once per run and written once at its end."""

    def __init__(self, cache: Cache, path: Path, entries: dict[str, Any]) -> None:
        self.cache = cache
        self.path = path
        self.entries = entries
        self.seen: set[str] = set()  # keys of this run, kept first when the index is full
        self.changed = False

    @staticmethod
    def _key(path: str, fixes: bool) -> str:
        return f"{'F' if fixes else 'P'}{path}"

    def lookup(self, path: str, fixes: bool, status: FileStatus) -> CachedResult | None:
        key = self._key(path, fixes)
        entry = self.entries.get(key)
        if not isinstance(entry, list) or len(entry) != 2 or entry[0] != list(status):
            return None
        try:
            result = _result_from_json(entry[1])
        except (ValueError, KeyError, TypeError):
            return None
        self.seen.add(key)
        return result

    def record(self, path: str, fixes: bool, status: FileStatus, result: CachedResult) -> None:
        key = self._key(path, fixes)
        self.entries[key] = [list(status), _result_to_json(result)]
        self.seen.add(key)
        self.changed = True

    def save(self) -> None:
        """Write the index when this run changed it (atomically, as an entry)."""
        if not self.changed:
            return
        entries = self.entries
        if len(entries) > INDEX_LIMIT:
            kept = [key for key in entries if key in self.seen]
            kept += [key for key in entries if key not in self.seen]
            entries = {key: entries[key] for key in kept[:INDEX_LIMIT]}
        self.cache.write_json(self.path, entries)


def open_cache(root: Path, settings: Settings, folder: str | None = None) -> Cache | None:
    """The cache for a run whose project root is ``root``: in ``folder`` if given, else
    $CONC_LSP_CACHE_DIR, else ``root/.conc_lsp_cache`` (None when it cannot be made)."""
    base = cache_base(root, folder)
    try:
        base.mkdir(parents=True, exist_ok=True)
        ignore = base / ".gitignore"
        if not ignore.exists():
            ignore.write_text("# made by conc-lsp\n*\n", encoding="utf-8")
    except OSError:
        return None
    program = hashlib.sha256(program_fingerprint().encode())
    program.update(settings_fingerprint(settings).encode())
    return Cache(base / FORMAT, program.hexdigest())


def settings_fingerprint(settings: Settings) -> str:
    """The settings as canonical JSON (sets sorted: their order changes between runs)."""
    import json  # only when the cache is used (start-up cost of a --no-cache run)

    return json.dumps(_plain(settings), sort_keys=True)


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            field.name: _plain(getattr(value, field.name)) for field in dataclasses.fields(value)
        }
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, (set, frozenset)):
        return sorted(str(_plain(item)) for item in value)
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    return value


def prune(cache: Cache, max_bytes: int = MAX_BYTES) -> int:
    """Remove the least recently used entries while the folder is over ``max_bytes``;
    how many were removed. Another run removing the same entries is no error."""
    entries: list[tuple[float, int, str]] = []
    total = 0
    with contextlib.suppress(OSError):
        for shard in os.scandir(cache.folder):
            inside = list(os.scandir(shard.path)) if shard.is_dir() else [shard]
            for entry in inside:
                with contextlib.suppress(OSError):
                    status = entry.stat()
                    entries.append((status.st_mtime, status.st_size, entry.path))
                    total += status.st_size
    if total <= max_bytes:
        return 0
    removed = 0
    for _, size, path in sorted(entries):
        if total <= max_bytes * PRUNED_TO:
            break
        with contextlib.suppress(OSError):
            os.unlink(path)
            removed += 1
        total -= size
    return removed


def _location(where: Location) -> list[int]:
    return [where.line, where.column, where.end_line, where.end_column]


def _result_to_json(result: CachedResult) -> dict[str, Any]:
    return {
        "findings": [
            {
                "code": found.code,
                "name": found.name,
                "message": found.message,
                "location": _location(found.location),
                "severity": found.severity.value,
                "function": found.function,
                "related": [
                    {"location": _location(item.location), "message": item.message}
                    for item in found.related
                ],
                "fix": None
                if found.fix is None
                else {"title": found.fix.title, "safe": found.fix.safe},
            }
            for found in result.findings
        ],
        "problems": [
            [problem.line, problem.column, problem.message, problem.start_line, problem.end_line]
            for problem in result.problems
        ],
    }


def _result_from_json(data: dict[str, Any]) -> CachedResult:
    if not data["findings"] and not data["problems"]:
        return CachedResult([], [])  # most files: no need to load the model
    # The model loads for a result that has something (start-up cost of a cached run)
    from conc_lsp.analysis.model import Finding, Fix, Location, Related, Severity, SyntaxProblem

    findings = [
        Finding(
            code=str(item["code"]),
            name=str(item["name"]),
            message=str(item["message"]),
            location=Location(*item["location"]),
            severity=Severity(item["severity"]),
            function=str(item["function"]),
            related=tuple(
                Related(Location(*related["location"]), str(related["message"]))
                for related in item["related"]
            ),
            fix=None
            if item["fix"] is None
            else Fix(str(item["fix"]["title"]), bool(item["fix"]["safe"]), ()),
        )
        for item in data["findings"]
    ]
    problems = [SyntaxProblem(*problem) for problem in data["problems"]]
    return CachedResult(findings, problems)
