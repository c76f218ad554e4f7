"""What a fix needs besides the finding: the module's lines and the settings."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class FixContext:
    lines: list[str]
    timeout: float = 5.0
    logger: str | None = None  # found on first use: "" when the module has none
