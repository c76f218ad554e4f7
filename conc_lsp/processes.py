"""The inside of the server's worker processes (no LSP imports: they start fast).

A worker is ``python -c "from conc_lsp.processes import main; main()" ...``:
it reads jobs (a function and its arguments, pickled) on its stdin, runs
them one at a time and writes each result, pickled, on its stdout. Only the
server holds the other end of those pipes, so the end of the server is the
end of the input. A worker also dies with the server however the server
dies, even in the middle of a long job: the kernel kills it (Linux's
``PR_SET_PDEATHSIG``) and a thread watches the parent as well. A worker can
run under a memory cap: past it, it exits with ``MEMORY_EXIT``.

The server's side is conc_lsp/server/workers.py.
"""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import signal
import struct
import sys
import threading
import time
from typing import IO, Any

if sys.platform != "win32":
    import resource

BOOT = "from conc_lsp.processes import main; main()"
FRAME = struct.Struct("!QQ")  # job number, length of the pickled body that follows
MEMORY_EXIT = 75  # the exit status of a worker that went over its memory cap
WATCH_INTERVAL = 0.5  # seconds between two looks at the parent (and the memory)
PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>
MEGABYTE = 1024 * 1024


def lower_priority(niceness: int) -> None:
    """Run this process at a lower scheduling priority, where the OS has one."""
    if hasattr(os, "nice"):
        with contextlib.suppress(OSError):  # not permitted: normal priority then
            os.nice(niceness)


def die_with_parent(parent: int, memory_limit: int = 0) -> None:
    """Exit as soon as ``parent`` (this process's parent) is gone, however it
    died; with ``memory_limit`` (MB), exit with ``MEMORY_EXIT`` past it too."""
    _ask_kernel_for_death_signal()
    if os.getppid() != parent:
        os._exit(0)  # the parent died before the kernel was asked
    watcher = threading.Thread(
        target=watch_parent,
        args=(parent, memory_limit),
        name="conc-lsp parent watcher",
        daemon=True,
    )
    watcher.start()


def _ask_kernel_for_death_signal() -> None:
    """Linux: SIGKILL to this process when the thread that started it ends (the
    server's event loop, which lives as long as the server)."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes  # in the worker only: the server imports this module too (start-up cost)

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        pass  # no prctl: the watcher thread is enough


def watch_parent(parent: int, memory_limit: int = 0) -> None:
    """Exit once re-parented (the parent is gone) or past ``memory_limit`` MB."""
    while True:
        if os.getppid() != parent:  # re-parented: the server is gone
            os._exit(0)
        if memory_limit and resident_megabytes() > memory_limit:
            os._exit(MEMORY_EXIT)
        time.sleep(WATCH_INTERVAL)


def resident_megabytes() -> float:
    """This process's resident memory (its peak where /proc is missing)."""
    try:
        with open("/proc/self/statm", "rb") as statm:
            pages = int(statm.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / MEGABYTE
    except (OSError, IndexError, ValueError):
        pass
    if sys.platform == "win32":
        return 0.0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (MEGABYTE if sys.platform == "darwin" else 1024)  # bytes on macOS, else KB


def cap_memory(megabytes: int) -> None:
    """Refuse allocations past ``megabytes`` of address space (MemoryError then)."""
    if megabytes <= 0 or sys.platform == "win32":
        return
    limit = megabytes * MEGABYTE
    with contextlib.suppress(ValueError, OSError):  # a lower hard limit already holds
        _, hard = resource.getrlimit(resource.RLIMIT_AS)
        if hard != resource.RLIM_INFINITY:
            limit = min(limit, hard)
        resource.setrlimit(resource.RLIMIT_AS, (limit, hard))


def worker_arguments(niceness: int, memory_limit: int) -> list[str]:
    """The command line of a worker started by this process."""
    return [
        sys.executable,
        "-c",
        BOOT,
        str(os.getpid()),
        str(niceness),
        str(memory_limit),
        json.dumps(sys.path),
    ]


def main(arguments: list[str] | None = None) -> None:
    """A worker's life: watch the parent, then serve jobs until the input ends."""
    parent, niceness, memory_limit, path = arguments or sys.argv[1:]
    die_with_parent(int(parent), int(memory_limit))
    lower_priority(int(niceness))
    cap_memory(int(memory_limit))
    # The server's modules (and a test's) import as they do in the server.
    sys.path[:0] = [entry for entry in json.loads(path) if entry not in sys.path]
    # The pipes are the worker's alone: a print from the analysis goes to stderr.
    jobs = os.fdopen(os.dup(0), "rb")
    results = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    with open(os.devnull, "rb") as nothing:
        os.dup2(nothing.fileno(), 0)
    serve(jobs, results)


def serve(jobs: IO[bytes], results: IO[bytes]) -> None:
    while True:
        header = jobs.read(FRAME.size)
        if len(header) < FRAME.size:
            return  # the server closed its end: it is done with us
        job, length = FRAME.unpack(header)
        body = jobs.read(length)
        if len(body) < length:
            return
        try:
            function, arguments = pickle.loads(body)
            reply: tuple[bool, Any] = (True, function(*arguments))
        except MemoryError:
            os._exit(MEMORY_EXIT)  # nothing more is safe to allocate
        except Exception as error:  # noqa: BLE001 - any failure is the caller's to see
            reply = (False, error)
        try:
            results.write(_frame(job, reply))
            results.flush()
        except OSError:
            return  # the server is gone


def _frame(job: int, reply: tuple[bool, Any]) -> bytes:
    try:
        body = pickle.dumps(reply)
    except MemoryError:
        os._exit(MEMORY_EXIT)
    except Exception as error:  # noqa: BLE001 - an unpicklable result or exception
        body = pickle.dumps((False, RuntimeError(f"the worker cannot send its answer: {error!r}")))
    return FRAME.pack(job, len(body)) + body
