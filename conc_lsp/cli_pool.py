"""Many files, every core: a process pool whose results come back in the
order of the files (identical output whatever ``--jobs``), and a progress
line on stderr for runs long enough to need one."""

from __future__ import annotations

import gc
import itertools
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

# Not `typing.TYPE_CHECKING`: importing typing costs a run the memo answers 3 ms.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Protocol, TextIO, TypeVar

    Job = TypeVar("Job")
    Outcome = TypeVar("Outcome")

    class Notes(Protocol):
        """What one file's outcome has to say on stderr."""

        warnings: list[str]  # once per run
        messages: list[str]  # each time, in order


PROGRESS_VARIABLE = "CONC_LSP_PROGRESS"  # "1": always, "0": never
PROGRESS_AFTER = 1.0  # seconds of silence before an automatic progress line
PROGRESS_EVERY = 0.1  # seconds between two updates of the line


def default_jobs() -> int:
    """All the cores this process may use."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


class Progress:
    """`conc-lsp: 12/190 files` on stderr: on a terminal, one line rewritten in
    place once a run has lasted a second; forced (--progress or
    CONC_LSP_PROGRESS=1), also when stderr is a file or a pipe, then one line
    per update (at most ten a second) and a last one at the end."""

    def __init__(self, total: int, stream: TextIO, forced: bool | None, verb: str) -> None:
        if forced is None and os.environ.get(PROGRESS_VARIABLE) in ("0", "1"):
            forced = os.environ[PROGRESS_VARIABLE] == "1"
        self.total = total
        self.stream = stream
        self.verb = verb
        self.terminal = is_terminal(stream)
        self.enabled = forced is not False and (forced is True or self.terminal)
        self.immediate = forced is True
        self.started = time.monotonic()
        self.last = 0.0
        self.count = 0
        self.shown = -1  # the count last shown

    def advance(self) -> None:
        self.count += 1
        if not self.enabled:
            return
        now = time.monotonic()
        if not self.immediate and now - self.started < PROGRESS_AFTER:
            return
        if now - self.last < PROGRESS_EVERY and self.count < self.total:
            return
        self.last = now
        self._show()

    def finish(self) -> None:
        """The line's end: erased on a terminal, the final count elsewhere."""
        if self.terminal:
            if self.shown != -1:
                self.stream.write("\r\x1b[K")
                self.stream.flush()
        elif self.enabled and self.shown != self.count:
            self._show()

    def _show(self) -> None:
        text = f"conc-lsp: {self.verb} {self.count}/{self.total} files"
        self.stream.write(f"\r{text}\x1b[K" if self.terminal else f"{text}\n")
        self.stream.flush()
        self.shown = self.count


def is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def run_in_order(
    work: Callable[[Job, Path], Outcome],
    job: Job,
    paths: Sequence[Path],
    jobs: int,
    progress: Progress,
    warm_up: Callable[[], object] | None = None,
) -> list[Outcome]:
    """``work(job, path)`` for each path, in ``jobs`` processes (this one when
    ``jobs`` is 1 or there is one path): the outcomes in the order of ``paths``.
    ``warm_up`` runs first, here: what it loads, forked workers inherit."""
    if warm_up is not None and paths:
        warm_up()
    if jobs <= 1 or len(paths) <= 1:
        outcomes = []
        for path in paths:
            outcomes.append(one_file(work, job, path))
            progress.advance()
        return outcomes
    # The largest files go first, so that no worker is left with a big one at the end.
    order = sorted(range(len(paths)), key=lambda index: -_size(paths[index]))
    batches = _batches(order, jobs)
    results: dict[int, Outcome] = {}
    if sys.platform == "linux":
        # Only a pool needs its workers' side (start-up cost of a run the cache answers)
        from conc_lsp.fork_pool import run_forked

        # Forked workers start at once with this process's modules (no LSP among them).
        tasks = [(work, job, [paths[index] for index in batch]) for batch in batches]
        for number, outcomes in run_forked(_work_on, tasks, jobs):
            for index, outcome in zip(batches[number], outcomes, strict=True):
                results[index] = outcome
                progress.advance()
        return [results[index] for index in range(len(paths))]
    # Elsewhere, workers start afresh and import only what ``work`` needs.
    # multiprocessing loads only for such a pool (start-up cost)
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed  # start-up cost, too

    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=min(jobs, len(paths)), mp_context=context) as pool:
        futures = {
            pool.submit(_work_on, work, job, [paths[index] for index in batch]): batch
            for batch in batches
        }
        try:
            for future in as_completed(futures):
                for index, outcome in zip(futures[future], future.result(), strict=True):
                    results[index] = outcome
                    progress.advance()
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            raise
    return [results[index] for index in range(len(paths))]


def _batches(order: list[int], jobs: int) -> list[list[int]]:
    """Files in small batches: one task per file spends more on the pool's
    messages (the job pickled each time) than a small file takes to check;
    about eight batches per worker still lets the big files spread."""
    size = max(1, len(order) // (jobs * 8))
    batches: list[list[int]] = []
    for index in order:
        # a big file (the first ones) goes alone
        if not batches or len(batches[-1]) >= size or len(batches) <= jobs:
            batches.append([])
        batches[-1].append(index)
    return batches


def _work_on(work: Callable[[Job, Path], Outcome], job: Job, paths: list[Path]) -> list[Outcome]:
    return [one_file(work, job, path) for path in paths]


def one_file(work: Callable[[Job, Path], Outcome], job: Job, path: Path) -> Outcome:
    """``work(job, path)`` with one collection of its garbage cycles at the end.

    The cyclic collector, left to run by itself, traverses a big file's tree
    and facts again and again while they are built (a fifth to a third of a
    `check`'s CPU time); one young collection afterwards frees the same cycles
    (the peak memory of a run over 681k lines stays the same). The older
    generations are collected as the collector's own thresholds would: every
    tenth file the middle one, every hundredth all (cycles that die there,
    such as jedi's trees its caches let go, are freed too)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        return work(job, path)
    finally:
        done = next(_files_done)
        gc.collect(2 if done % 100 == 0 else 1 if done % 10 == 0 else 0)
        if enabled:
            gc.enable()


_files_done = itertools.count(1)  # files this process checked (one_file): older collections


def print_notes(outcome: Notes, warned: set[str], err: TextIO) -> None:
    """A file's warnings (those not yet in ``warned``) and messages, on stderr."""
    for warning in outcome.warnings:
        if warning not in warned:
            warned.add(warning)
            print(warning, file=err)
    for message in outcome.messages:
        print(message, file=err)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0
