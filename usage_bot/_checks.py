"""The verdicts ``usage-bot doctor`` prints: one :class:`CheckResult` per check."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Verdict = Literal["ok", "warn", "fail", "skip"]


@dataclass(frozen=True, slots=True)
class CheckResult:
    """One line of ``doctor``: what was checked, the verdict, what was seen, the fix."""

    name: str
    verdict: Verdict
    detail: str
    fix: str | None = None
