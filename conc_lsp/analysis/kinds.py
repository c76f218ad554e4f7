"""The two kinds every command names: a hint's construct and a finding's
severity. Apart from the model's dataclasses, whose creation a run that the
cache answers need not pay for (the settings and the command line read these)."""

from __future__ import annotations

import enum


class HintKind(enum.StrEnum):
    """What kind of construct a hint marks."""

    AWAIT = "await"
    ASYNC_WITH = "async-with"
    ASYNC_FOR = "async-for"
    ACM_YIELD = "acm-yield"
    EVENT_SET = "event-set"
    LOCK_RELEASE = "lock-release"
    SPAWN = "spawn"

    @property
    def is_checkpoint(self) -> bool:
        """True for the constructs where the scheduler may switch tasks."""
        return self in CHECKPOINT_KINDS


CHECKPOINT_KINDS = frozenset({HintKind.AWAIT, HintKind.ASYNC_WITH, HintKind.ASYNC_FOR})


class Severity(enum.StrEnum):
    """How loud a finding is; the editor maps these to its own levels."""

    ERROR = "error"
    WARNING = "warning"
    INFORMATION = "information"
    HINT = "hint"


SEVERITIES = tuple(severity.value for severity in Severity)  # the least severe last
