"""Resolved verdicts kept on disk, so that an unchanged module is never inferred twice.

One entry per source file and content: the verdicts of its ``async def``s
(what calling each one does) and, once a whole pass over it has finished,
the resolutions of all its checkpoints. Each result notes the other files it
was read from (path, mtime, size, content hash): it is used again only while
they still hold the same text. The entry's name hashes the file's path and
text with what every result depends on besides: conc-lsp's version, the
knowledge table, the interpreter and the state of its package folders (a
package installed or removed changes their mtimes).

Entries are JSON (never pickle: nothing in the cache runs), written to a
temporary file and renamed into place, so that concurrent runs only ever
see whole entries; the folder is pruned, oldest first, past ``MAX_BYTES``.
The folder is ``$XDG_CACHE_HOME/conc-lsp/resolve`` (``~/.cache/...``), or
``$CONC_LSP_CACHE_DIR/resolve`` when that is set.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import sys
import tempfile
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from conc_lsp.analysis.model import HintKey, Resolution, Verdict
from conc_lsp.fingerprint import program_fingerprint

logger = logging.getLogger("conc_lsp")

FORMAT = 3  # bump when the entries' layout or the verdicts' meaning changes
MAX_BYTES = 64 * 1024 * 1024
PRUNE_EVERY = 200  # entries written between two looks at the folder's size

# path -> (mtime_ns, size, sha256 of the text); mtime -1 for an editor's buffer
Stamps = dict[str, tuple[int, int, str]]


def default_folder() -> Path:
    override = os.environ.get("CONC_LSP_CACHE_DIR")
    if override:
        return Path(override) / "resolve"
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Caches"
    else:
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "conc-lsp" / "resolve"


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass(frozen=True, slots=True)
class FunctionVerdict:
    """Whether a call of an ``async def`` checkpoints."""

    verdict: Verdict
    qualname: str
    where: str  # "helpers.py:12"
    reason: str  # "returns at L40 without one", "never yields"
    chain: tuple[str, ...]
    fast_path: str = ""  # may-not-yield: whose fast path ("asyncio"), as in Resolution


@dataclass(slots=True)
class Entry:
    """What is known of one file's text."""

    verdicts: dict[int, tuple[FunctionVerdict, Stamps]] = field(default_factory=dict)
    resolutions: dict[HintKey, Resolution] | None = None  # a finished pass's
    # the checkpoints that pass looked at, found or not (None: all of them)
    attempted: set[HintKey] | None = None
    total: int = 0  # that pass's checkpoints
    document_stamps: Stamps = field(default_factory=dict)
    dirty: bool = False

    def covers(self, wanted: Collection[HintKey] | None) -> bool:
        """Whether the finished pass looked at every checkpoint of ``wanted`` (None: all)."""
        if self.resolutions is None:
            return False
        if self.attempted is None:
            return True
        return wanted is not None and all(key in self.attempted for key in wanted)


class VerdictCache:
    """The folder of entries for one environment (interpreter, packages, version)."""

    def __init__(self, folder: Path, environment: Iterable[str]) -> None:
        self.folder = folder
        self.salt = text_hash("\0".join([str(FORMAT), program_fingerprint(), *environment]))
        self.written = 0
        self.broken = False  # the folder cannot be written: stop trying

    def _file(self, path: str, content_hash: str) -> Path:
        name = text_hash(f"{self.salt}\0{path}\0{content_hash}")[:40]
        return self.folder / name[:2] / f"{name}.json"

    def load(self, path: str, content_hash: str) -> Entry:
        try:
            raw = json.loads(self._file(path, content_hash).read_text(encoding="utf-8"))
            return _entry_from(raw)
        except FileNotFoundError:
            return Entry()
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
            logger.debug("resolve cache: unreadable entry for %s: %r", path, error)
            return Entry()  # a broken or foreign entry is a miss

    def store(self, path: str, content_hash: str, entry: Entry) -> None:
        if self.broken:
            return
        target = self._file(path, content_hash)
        body = json.dumps(_entry_to(entry), separators=(",", ":"))
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            handle, temporary = tempfile.mkstemp(dir=target.parent, suffix=".tmp")
            try:
                with os.fdopen(handle, "w", encoding="utf-8") as out:
                    out.write(body)
                os.replace(temporary, target)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(temporary)
                raise
        except OSError as error:
            logger.info("resolve cache: cannot write in %s: %r (not caching)", self.folder, error)
            self.broken = True
            return
        entry.dirty = False
        self.written += 1
        if self.written % PRUNE_EVERY == 1:
            prune(self.folder)


class FileHashes:
    """The hash of each file's text as the resolver would read it now: an open
    buffer's, else the file's on disk (hashed again only when its mtime or
    size changed). Asked once per path and pass."""

    def __init__(self, buffer_hash: Callable[[str], str | None]) -> None:
        self._buffer_hash = buffer_hash
        self._on_disk: dict[str, tuple[int, int, str]] = {}  # path -> (mtime, size, hash)
        self._this_pass: dict[str, str | None] = {}

    def new_pass(self) -> None:
        self._this_pass = {}

    def forget(self) -> None:
        self._on_disk.clear()
        self._this_pass = {}

    def known(self, path: str, stamp: tuple[int, int], content_hash: str) -> None:
        self._on_disk[path] = (*stamp, content_hash)

    def now(self, path: str) -> str | None:
        if path in self._this_pass:
            return self._this_pass[path]
        found = self._buffer_hash(path)
        if found is None:
            try:
                status = os.stat(path)
                known = self._on_disk.get(path)
                if known is not None and known[:2] == (status.st_mtime_ns, status.st_size):
                    found = known[2]
                else:
                    with open(path, encoding="utf-8", errors="replace") as handle:
                        found = text_hash(handle.read())
                    self._on_disk[path] = (status.st_mtime_ns, status.st_size, found)
            except OSError:
                found = None
        self._this_pass[path] = found
        return found

    def stamps(self, paths: Iterable[str]) -> Stamps:
        stamps: Stamps = {}
        for path in paths:
            found = self.now(path)
            if found is not None:
                mtime, size, _ = self._on_disk.get(path, (-1, -1, ""))
                stamps[path] = (mtime, size, found)
        return stamps

    def unchanged(self, stamps: Stamps) -> bool:
        return all(self.now(path) == stamp[2] for path, stamp in stamps.items())


def prune(folder: Path, limit: int = MAX_BYTES) -> None:
    """Delete the oldest entries until the folder holds at most ``limit * 0.8`` bytes."""
    files: list[tuple[float, int, Path]] = []
    total = 0
    for entry in folder.glob("*/*.json"):
        try:
            status = entry.stat()
        except OSError:
            continue
        files.append((status.st_mtime, status.st_size, entry))
        total += status.st_size
    if total <= limit:
        return
    files.sort()
    for _mtime, size, entry in files:
        if total <= limit * 0.8:
            break
        with contextlib.suppress(OSError):  # another run pruned it first
            entry.unlink()
        total -= size


# -- JSON ----------------------------------------------------------------------


def _resolution_to(resolution: Resolution) -> list[Any]:
    return [
        resolution.verdict.value,
        resolution.callee,
        resolution.reason,
        list(resolution.chain),
        resolution.enter.value if resolution.enter else None,
        resolution.exit.value if resolution.exit else None,
        resolution.fast_path,
    ]


def _resolution_from(raw: list[Any]) -> Resolution:
    verdict, callee, reason, chain, enter, exit_, fast_path = raw
    return Resolution(
        Verdict(verdict),
        str(callee),
        str(reason),
        tuple(str(step) for step in chain),
        Verdict(enter) if enter else None,
        Verdict(exit_) if exit_ else None,
        str(fast_path),
    )


def _key_from(raw: list[Any]) -> HintKey:
    return (str(raw[0]), str(raw[1]), str(raw[2]), int(raw[3]))


def _stamps_from(raw: Mapping[str, Any]) -> Stamps:
    return {str(path): (int(m), int(s), str(h)) for path, (m, s, h) in raw.items()}


def _entry_to(entry: Entry) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "verdicts": {
            str(line): [
                [v.verdict.value, v.qualname, v.where, v.reason, list(v.chain), v.fast_path],
                stamps,
            ]
            for line, (v, stamps) in entry.verdicts.items()
        }
    }
    if entry.resolutions is not None:
        raw["document"] = {
            "attempted": None
            if entry.attempted is None
            else [list(key) for key in sorted(entry.attempted)],
            "total": entry.total,
            "stamps": entry.document_stamps,
            "resolutions": [
                [list(key), _resolution_to(resolution)]
                for key, resolution in entry.resolutions.items()
            ],
        }
    return raw


def _entry_from(raw: dict[str, Any]) -> Entry:
    entry = Entry()
    for line, (verdict, stamps) in raw["verdicts"].items():
        value, qualname, where, reason, chain, fast_path = verdict
        stored = FunctionVerdict(
            Verdict(value), qualname, where, reason, tuple(chain), str(fast_path)
        )
        entry.verdicts[int(line)] = (stored, _stamps_from(stamps))
    document = raw.get("document")
    if document is not None:
        entry.total = int(document["total"])
        entry.document_stamps = _stamps_from(document["stamps"])
        entry.resolutions = {
            _key_from(k): _resolution_from(value) for k, value in document["resolutions"]
        }
        attempted = document.get("attempted")
        entry.attempted = None if attempted is None else {_key_from(k) for k in attempted}
    return entry
