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
    # When it failed, what `doctor` exits with (PRODUCT.md's codes): 2 a setting, 3 a
    # login, 4 the upstream, 1 anything else (a chat platform, the state file).
    exit_code: int = 1
