"""Which processes are alive, from /proc (Linux): for the tests that check that
no process of the server outlives it, and for the check that no process
started by the test run outlives the run (tests/conftest.py)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from pathlib import Path

PROC = Path("/proc")
HAS_PROC = (PROC / "self" / "stat").exists()

# One process: its pid and its start time (a pid can be reused once it is gone).
Process = tuple[int, int]


def _stat(pid: int) -> tuple[str, int, int] | None:
    """(state, parent pid, start time) of a process, None when it is gone."""
    try:
        text = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()  # the name may hold spaces and parentheses
    return fields[0], int(fields[1]), int(fields[19])


def _pids() -> list[int]:
    return [int(entry.name) for entry in PROC.iterdir() if entry.name.isdigit()]


def children(parent: int) -> list[int]:
    """The pids of ``parent``'s children, zombies included (not yet waited for)."""
    return [pid for pid in _pids() if (stat := _stat(pid)) is not None and stat[1] == parent]


def is_alive(process: Process) -> bool:
    """Running (a zombie has exited: only its parent has not looked yet)."""
    stat = _stat(process[0])
    return stat is not None and stat[0] != "Z" and stat[2] == process[1]


def descendants(root: int) -> list[Process]:
    """Every live process below ``root`` (children, their children, ...)."""
    children: dict[int, list[Process]] = {}
    for pid in _pids():
        stat = _stat(pid)
        if stat is not None and stat[0] != "Z":
            children.setdefault(stat[1], []).append((pid, stat[2]))
    found: list[Process] = []
    todo = [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child[0])
    return found


def command_line(pid: int) -> str:
    try:
        raw = (PROC / str(pid) / "cmdline").read_bytes()
    except OSError:
        return "?"
    return raw.replace(b"\0", b" ").decode("utf-8", "replace").strip()


def with_environment(variable: str, value: str) -> list[Process]:
    """Live processes (of this user) started with ``variable=value`` in their
    environment: they inherit it, even once their parent is gone."""
    wanted = f"{variable}={value}".encode()
    found = []
    for pid in _pids():
        if pid == os.getpid():
            continue
        try:
            environment = (PROC / str(pid) / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        stat = _stat(pid)
        if wanted in environment and stat is not None and stat[0] != "Z":
            found.append((pid, stat[2]))
    return found


def wait_until(condition: Callable[[], bool], timeout: float = 60.0) -> bool:
    """Poll ``condition`` until it holds (or ``timeout`` seconds, generous: the
    machine may be busy); whether it held."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def wait_until_gone(
    processes: Callable[[], Iterable[Process]], timeout: float = 60.0
) -> list[Process]:
    """Wait until ``processes()`` holds no live process; the ones still alive."""
    wait_until(lambda: not any(is_alive(process) for process in processes()), timeout)
    return [process for process in processes() if is_alive(process)]


def reads_its_input(pid: int) -> bool | None:
    """Whether the main thread of ``pid`` waits in a read of its stdin (fd 0, or a
    copy of it; x86-64 and arm64 Linux number read 0 and 63); None when the
    kernel does not say."""
    folder = PROC / str(pid)
    try:
        fields = (folder / "syscall").read_text().split()
    except OSError:
        return None
    if not fields or fields[0] == "running":
        return False
    if len(fields) < 2 or not fields[0].isdigit():
        return None
    if int(fields[0]) not in (0, 63):
        return False
    try:
        return os.readlink(folder / "fd" / str(int(fields[1], 16))) == os.readlink(
            folder / "fd" / "0"
        )
    except OSError:
        return False
