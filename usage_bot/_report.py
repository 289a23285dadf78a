"""Reports: what every front end shows for an account, built once from its usage.

:func:`build_report` turns an :class:`AccountUsage` into a platform-neutral
:class:`AccountReport` (rows with percent, severity, reset time and how long until it,
staleness); the Slack, Discord and console renderers only lay it out. :func:`to_json` is
the document ``usage-bot check --json`` prints. Everything here is pure.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from usage_bot._model import ExtraUsage
from usage_bot._service import AccountUsage

STALE_AFTER = timedelta(minutes=10)
_SEVERITY_NAMES = ("normal", "warning", "critical")


@dataclass(frozen=True, slots=True)
class ReportRow:
    """One limit as shown: ``resets_in`` is None when the upstream gave no reset time."""

    limit_id: str
    label: str
    percent: float
    severity: str
    severity_rank: int
    resets_at: datetime | None
    resets_in: timedelta | None


@dataclass(frozen=True, slots=True)
class AccountReport:
    """Everything a front end shows for one account."""

    account: str
    rows: tuple[ReportRow, ...]
    extra_usage: ExtraUsage | None
    fetched_at: datetime | None
    age: timedelta | None
    stale: bool
    error: str | None
    error_code: str | None

    @property
    def worst_severity(self) -> str:
        rank = max((row.severity_rank for row in self.rows), default=0)
        return _SEVERITY_NAMES[min(rank, 2)]

    @property
    def staleness_note(self) -> str | None:
        """``"Values from 12 min ago: <why>"`` when what is shown may be out of date."""
        if not self.stale or self.age is None:
            return None
        why = f" {self.error}" if self.error else ""
        return f"Last known values, from {format_duration(self.age)} ago.{why}"


def build_report(usage: AccountUsage, now: datetime) -> AccountReport:
    snapshot = usage.snapshot
    rows: tuple[ReportRow, ...] = ()
    if snapshot is not None:
        rows = tuple(
            ReportRow(
                limit_id=limit.id,
                label=limit.label,
                percent=limit.percent,
                severity=limit.severity,
                severity_rank=limit.severity_rank,
                resets_at=limit.resets_at,
                resets_in=max(limit.resets_at - now, timedelta(0)) if limit.resets_at else None,
            )
            for limit in snapshot.limits
        )
    age = usage.age(now)
    return AccountReport(
        account=usage.account,
        rows=rows,
        extra_usage=snapshot.extra_usage if snapshot else None,
        fetched_at=snapshot.fetched_at if snapshot else None,
        age=age,
        stale=usage.stale or (age is not None and age > STALE_AFTER),
        error=usage.error.message if usage.error else None,
        error_code=usage.error.code if usage.error else None,
    )


def bar(percent: float, width: int = 10, *, full: str = "█", empty: str = "░") -> str:
    """A text bar: ``bar(31, 10)`` is ``███░░░░░░░``; over 100 % shows full."""
    filled = round(max(0.0, min(percent, 100.0)) / 100 * width)
    return full * filled + empty * (width - filled)


def format_percent(percent: float) -> str:
    return f"{percent:.0f}%" if percent == round(percent) or percent >= 10 else f"{percent:.1f}%"


def format_duration(delta: timedelta) -> str:
    """``45 s``, ``12 min``, ``3 h 5 min``, ``2 d 4 h``: two units at most."""
    seconds = int(delta.total_seconds())
    if seconds < 60:
        return f"{max(seconds, 0)} s"
    minutes, _ = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h" if hours else f"{days} d"


def format_money(amount: float, currency: str) -> str:
    return f"{amount:,.2f} {currency}"


def extra_usage_text(extra: ExtraUsage) -> str:
    """``Extra usage: 20.50 USD used of 50.00 USD`` or ``Extra usage: off``."""
    if not extra.enabled:
        return "Extra usage: off"
    used = format_money(extra.used or 0.0, extra.currency)
    if extra.limit is None:
        return f"Extra usage: {used} used (no monthly limit)"
    return f"Extra usage: {used} used of {format_money(extra.limit, extra.currency)}"


def to_json(usages: Sequence[AccountUsage], now: datetime) -> dict[str, Any]:
    """The document of ``usage-bot check --json`` (see PRODUCT.md)."""
    accounts = []
    for usage in usages:
        report = build_report(usage, now)
        extra = report.extra_usage
        accounts.append(
            {
                "name": usage.account,
                "fetched_at": report.fetched_at.isoformat() if report.fetched_at else None,
                "stale": report.stale,
                "limits": [
                    {
                        "id": row.limit_id,
                        "label": row.label,
                        "percent": row.percent,
                        "resets_at": row.resets_at.isoformat() if row.resets_at else None,
                        "severity": row.severity,
                    }
                    for row in report.rows
                ],
                "extra_usage": (
                    {
                        "enabled": extra.enabled,
                        "used": extra.used,
                        "limit": extra.limit,
                        "currency": extra.currency,
                    }
                    if extra
                    else None
                ),
                "error": (
                    {"code": report.error_code, "message": report.error} if report.error else None
                ),
            }
        )
    return {"accounts": accounts}
