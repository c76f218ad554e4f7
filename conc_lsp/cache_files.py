"""The cache folder's plain parts, standard library only: where the folder is,
an atomic JSON write, and a file's status as the status index and the run
memo compare it. A run that the cache answers imports this, not the model."""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path

FOLDER_NAME = ".conc_lsp_cache"
FORMAT = "v1"  # bump when the entries' shape changes
ENVIRONMENT_VARIABLE = "CONC_LSP_CACHE_DIR"
SETTLED_SECONDS = 2.0  # a file changed more recently than this is not trusted by its status

FileStatus = tuple[int, int, int, int]  # size, mtime, ctime (ns), inode


def cache_base(root: Path, folder: str | None) -> Path:
    """``folder`` if given, else $CONC_LSP_CACHE_DIR, else ``root/.conc_lsp_cache``."""
    chosen = folder or os.environ.get(ENVIRONMENT_VARIABLE)
    return Path(chosen) if chosen else root / FOLDER_NAME


def file_status(path: Path | str, since: int | None = None) -> FileStatus | None:
    """What the status index compares, taken before the file is read; None when
    the file cannot be seen or changed in the ``SETTLED_SECONDS`` before ``since``
    (a time in ns; default: now), as its times could then miss a second change
    within the same tick."""
    try:
        status = os.stat(path)
    except OSError:
        return None
    settled = (time.time_ns() if since is None else since) - int(SETTLED_SECONDS * 1e9)
    if max(status.st_mtime_ns, status.st_ctime_ns) > settled:
        return None
    return (status.st_size, status.st_mtime_ns, status.st_ctime_ns, status.st_ino)


def write_json_atomically(entry: Path, data: object) -> None:
    """Write ``data`` to a temporary file renamed into place, so that concurrent
    runs see a whole file or none; a cache that cannot be written is no error."""
    import json  # only when the cache is written (start-up cost of a --no-cache run)

    text = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    with contextlib.suppress(OSError):
        entry.parent.mkdir(parents=True, exist_ok=True)
        # A name no other process or thread picks (as tempfile.mkstemp, whose
        # import costs more than this whole write): the process and 48 random bits.
        temporary = entry.parent / f".{os.getpid()}-{os.urandom(6).hex()}.tmp"
        handle = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(handle, "wb") as stream:
                stream.write(text.encode("utf-8"))
            os.replace(temporary, entry)
        except OSError:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
