"""Reports: what every front end shows for an account, built once from its usage.

:func:`build_report` turns an :class:`AccountUsage` into a platform-neutral
:class:`AccountReport` (rows with percent, severity, reset time and how long until it,
whether the window has started, what is locked, dollars and who used the weekly limit;
spend; staleness); the Slack, Discord and console renderers only lay it out, with the
sentences made here. :func:`to_json` is the document ``usage-bot check --json`` prints.
Everything here is pure.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from usage_bot._exceptions import CredentialsExpired
from usage_bot._model import AccountUsage, Breakdown, Dollars, ExtraUsage, Money, Spend

STALE_AFTER = timedelta(minutes=10)
NOT_STARTED = "not started"
# Enough for the four surfaces the upstream names, and a few it may add.
MAX_BREAKDOWN_ROWS = 6
# Upstream text shown inside a line: a surface's name, a locked reason.
MAX_NAME = 40
MAX_REASON = 200
_SEVERITY_NAMES = ("normal", "warning", "critical")


@dataclass(frozen=True, slots=True)
class ReportRow:
    """One limit as shown: ``resets_in`` is None when the upstream gave no reset time;
    ``started`` is False for a window that has not started (shown as :data:`NOT_STARTED`)."""

    limit_id: str
    label: str
    percent: float
    severity: str
    severity_rank: int
    resets_at: datetime | None
    resets_in: timedelta | None
    started: bool = True
    locked_reason: str | None = None
    dollars: Dollars | None = None
    breakdown: Breakdown | None = None

    @property
    def details(self) -> list[str]:
        """The lines shown under the limit: what locked it, its dollars, who used it."""
        lines = []
        if self.locked_reason:
            lines.append(locked_text(self.locked_reason))
        if self.dollars is not None:
            lines.append(dollars_text(self.dollars))
        if self.breakdown is not None and self.breakdown.rows:
            lines.append(breakdown_text(self.breakdown))
        return lines


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
    spend: Spend | None = None
    login_expired_ago: timedelta | None = None

    @property
    def worst_severity(self) -> str:
        rank = max((row.severity_rank for row in self.rows), default=0)
        return _SEVERITY_NAMES[min(rank, 2)]

    @property
    def staleness_note(self) -> str | None:
        """``"Last known values, from 12 min ago. <why>"`` when what is shown may be out of
        date. An expired login is a state of rest, not an incident, and reads as one."""
        if not self.stale or self.age is None:
            return None
        values = f"Last known values, from {format_duration(self.age)} ago."
        if self.login_expired_ago is not None:
            since = "Claude Code has not run on this machine since."
            if abs(self.login_expired_ago - self.age) <= STALE_AFTER:
                return f"{values} The login expired then; {since}"
            expired = format_duration(self.login_expired_ago)
            return f"{values} The login expired {expired} ago; {since}"
        why = f" {self.error}" if self.error else ""
        return f"{values}{why}"


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
                started=limit.started,
                locked_reason=limit.locked_reason,
                dollars=limit.dollars,
                breakdown=limit.breakdown,
            )
            for limit in snapshot.limits
        )
    age = usage.age(now)
    expired = usage.error if isinstance(usage.error, CredentialsExpired) else None
    return AccountReport(
        account=usage.account,
        rows=rows,
        extra_usage=snapshot.extra_usage if snapshot else None,
        fetched_at=snapshot.fetched_at if snapshot else None,
        age=age,
        stale=usage.stale or (age is not None and age > STALE_AFTER),
        error=usage.error.message if usage.error else None,
        error_code=usage.error.code if usage.error else None,
        spend=snapshot.spend if snapshot else None,
        login_expired_ago=max(now - expired.expired_at, timedelta(0)) if expired else None,
    )


def to_the_minute(moment: datetime) -> datetime:
    """The minute a time is shown as, everywhere (terminal, Slack, Discord, alerts): the
    nearest one. The upstream says 03:39:59.57 for a window that resets at 03:40."""
    with contextlib.suppress(OverflowError):  # the calendar's last minute has no next one
        moment += timedelta(seconds=30)
    return moment.replace(second=0, microsecond=0)


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


def format_money(amount: float, currency: str, decimal_places: int = 2) -> str:
    """``1,234.50 USD``; ``1,200 JPY`` for a currency without minor units."""
    return f"{amount:,.{decimal_places}f} {currency}"


def money_text(money: Money) -> str:
    return format_money(money.amount, money.currency, money.decimal_places)


def extra_usage_text(extra: ExtraUsage) -> str:
    """``Extra usage: 20.50 USD used of 50.00 USD`` or ``Extra usage: off``."""
    if not extra.enabled:
        return "Extra usage: off"
    places = extra.decimal_places
    used = format_money(extra.used or 0.0, extra.currency, places)
    if extra.limit is None:
        return f"Extra usage: {used} used (no monthly limit)"
    return f"Extra usage: {used} used of {format_money(extra.limit, extra.currency, places)}"


def spend_text(spend: Spend) -> str:
    """``Spend: 12.50 USD used of 100.00 USD (12%, warning); capped at 150.00 USD``."""
    percent = format_percent(spend.percent) if spend.percent is not None else ""
    severity = spend.severity if spend.severity != "normal" else ""
    aside = ", ".join(note for note in (percent, severity) if note)
    if spend.used is not None:
        head = f"{money_text(spend.used)} used"
        if spend.limit is not None:
            head += f" of {money_text(spend.limit)}"
    elif spend.limit is not None:
        head = f"limit {money_text(spend.limit)}"
    elif percent:
        head, aside = f"{percent} used", severity
    else:
        head = ""
    parts = [f"{head} ({aside})" if head and aside else head or aside]
    if spend.cap is not None:
        parts.append(f"capped at {money_text(spend.cap)}")
    return "Spend: " + "; ".join(part for part in parts if part)


def dollars_text(dollars: Dollars) -> str:
    """``12.00 USD used of 50.00 USD, 38.00 USD left``: what a window costs."""
    parts = []
    if dollars.used is not None:
        used = f"{format_money(dollars.used, 'USD')} used"
        if dollars.limit is not None:
            used += f" of {format_money(dollars.limit, 'USD')}"
        parts.append(used)
    elif dollars.limit is not None:
        parts.append(f"limit {format_money(dollars.limit, 'USD')}")
    if dollars.remaining is not None:
        parts.append(f"{format_money(dollars.remaining, 'USD')} left")
    return ", ".join(parts)


def locked_text(reason: str) -> str:
    """``Locked: usage limit reached``; a reason that is a sentence is shown as it is."""
    if re.fullmatch(r"[a-z0-9_]+", reason):
        reason = reason.replace("_", " ")
    return f"Locked: {_clip(reason, MAX_REASON)}"


def breakdown_text(breakdown: Breakdown) -> str:
    """``Used by Claude Code 30%, Chat 8.5%, Cowork 2%``: who used the weekly limit."""
    rows = breakdown.rows[:MAX_BREAKDOWN_ROWS]
    parts = [f"{_clip(row.label, MAX_NAME)} {format_percent(row.percent)}" for row in rows]
    left = len(breakdown.rows) - len(rows)
    if left:
        parts.append(f"{left} more")
    return "Used by " + ", ".join(parts)


def _clip(text: str, limit: int) -> str:
    """``text`` within ``limit`` characters; ASCII dots, for terminals that have no more."""
    return text if len(text) <= limit else text[: limit - 3] + "..."


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
                        "started": row.started,
                        "locked_reason": row.locked_reason,
                        "dollars": _dollars_json(row.dollars),
                        "breakdown": _breakdown_json(row.breakdown),
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
                "spend": _spend_json(report.spend),
                "error": (
                    {"code": report.error_code, "message": report.error} if report.error else None
                ),
            }
        )
    return {"accounts": accounts}


def _dollars_json(dollars: Dollars | None) -> dict[str, Any] | None:
    if dollars is None:
        return None
    return {"limit": dollars.limit, "used": dollars.used, "remaining": dollars.remaining}


def _breakdown_json(breakdown: Breakdown | None) -> dict[str, Any] | None:
    if breakdown is None:
        return None
    return {
        "as_of": breakdown.as_of.isoformat() if breakdown.as_of else None,
        "window_started_at": (
            breakdown.window_started_at.isoformat() if breakdown.window_started_at else None
        ),
        "rows": [
            {"key": row.key, "label": row.label, "percent": row.percent} for row in breakdown.rows
        ],
    }


def _spend_json(spend: Spend | None) -> dict[str, Any] | None:
    if spend is None:
        return None

    def money(amount: Money | None) -> dict[str, Any] | None:
        return None if amount is None else {"amount": amount.amount, "currency": amount.currency}

    return {
        "used": money(spend.used),
        "limit": money(spend.limit),
        "cap": money(spend.cap),
        "percent": spend.percent,
        "severity": spend.severity,
    }
