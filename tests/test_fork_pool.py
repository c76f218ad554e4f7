"""The command line's forked workers (conc_lsp/fork_pool.py): every job's
result comes back once, a job's exception is raised in the parent, a worker
that dies is an error and not a hang, and no worker outlives the pool."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import pytest

from conc_lsp.fork_pool import WorkerDied, run_forked
from tests.live_processes import children

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="the fork pool is Linux's")


def square(number: int) -> tuple[int, int]:
    return os.getpid(), number * number


def fail_on_three(number: int) -> int:
    if number == 3:
        raise ValueError("three")
    return number


def die_on_three(number: int, marker: str) -> int:
    if number == 3:
        Path(marker).write_text("dying", encoding="utf-8")
        os.kill(os.getpid(), signal.SIGKILL)
    return number


def children_of_this_process() -> set[int]:
    return set(children(os.getpid()))


def test_every_result_comes_back_once_from_several_workers() -> None:
    before = children_of_this_process()
    results = dict(run_forked(square, [(number,) for number in range(40)], 3))
    assert sorted(results) == list(range(40))
    assert all(value[1] == index * index for index, value in results.items())
    workers = {pid for pid, _ in results.values()}
    assert os.getpid() not in workers and 1 <= len(workers) <= 3
    assert children_of_this_process() == before  # every worker ended and was waited for


def test_a_jobs_exception_is_raised_here_and_the_workers_end() -> None:
    before = children_of_this_process()
    with pytest.raises(ValueError, match="three"):
        list(run_forked(fail_on_three, [(number,) for number in range(8)], 2))
    assert children_of_this_process() == before


def test_a_worker_that_dies_is_an_error_not_a_hang(tmp_path: Path) -> None:
    before = children_of_this_process()
    marker = tmp_path / "marker"
    with pytest.raises(WorkerDied):
        list(run_forked(die_on_three, [(number, str(marker)) for number in range(8)], 2))
    assert marker.exists()
    assert children_of_this_process() == before
