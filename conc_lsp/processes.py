"""Helpers run inside worker processes (no LSP imports: the processes start fast)."""

from __future__ import annotations

import contextlib
import os


def lower_priority(niceness: int) -> None:
    """Run this process at a lower scheduling priority, where the OS has one."""
    if hasattr(os, "nice"):
        with contextlib.suppress(OSError):  # not permitted: normal priority then
            os.nice(niceness)
