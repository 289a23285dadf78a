"""The alert engine, pure: what to announce, given what has been announced and what is new.

:func:`assess` takes one account's :class:`AccountLedger` (what has been announced so
far), its latest :class:`~usage_bot._service.AccountUsage`, the time and the settings, and
returns the ledger to persist with the events to announce. It does no I/O and reads no
clock, so the scheduler, the demo and the tests drive it alike.

The rules (PRODUCT.md, "Behaviour that users rely on"):

- A **window** is one limit's quota period, identified by its ``resets_at``. The upstream
  jitters that by fractions of a second between polls (``03:39:59.570750`` then
  ``03:39:59.912345``), so a ``resets_at`` within :data:`WINDOW_TOLERANCE` (a minute) of
  the last one seen is the same window. A window's id in announcement keys is the
  ``resets_at`` it was first seen with, rounded to the minute.
- **Threshold crossed**: when the highest threshold at or under the percent rises within
  a window, one event names that threshold, however many were passed in one step. A
  first look at a window already high announces only its current level. Usage falling
  and rising again within a window announces nothing new. Every limit counts, model-scoped
  weekly ones included.
- **Window reset**: the ``resets_at`` moved on (later by more than the tolerance, or gone
  once the old time has passed). Announced per ``USAGE_BOT_RESET_ANNOUNCE``: ``alerted``
  only for windows that had a threshold alert, ``always``, or ``never``. A ``resets_at``
  that vanishes before its time is an upstream hiccup and keeps the window; one that moves
  backwards starts a new window without a reset announcement.
- **Incident** ("cannot read usage"): a credentials problem (missing, expired, rejected,
  lacking scope, unreadable) opens one at once; an upstream failure (including a login
  file caught half-written) opens one only when it lasts, that is when a check at least
  :data:`LASTING_FAILURE` (15 minutes) after the first failed check fails too, with no
  success in between. One event when it opens, carrying the error's fix, and one when
  a check succeeds again. While usage cannot be read, thresholds are not assessed: the
  values at hand are the stale ones already assessed.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from usage_bot._config import ResetAnnounce
from usage_bot._exceptions import CredentialsError, CredentialsMalformed, UsageBotError
from usage_bot._model import Limit, severity_for
from usage_bot._notify import AlertMessage
from usage_bot._service import AccountUsage

WINDOW_TOLERANCE = timedelta(minutes=1)
LASTING_FAILURE = timedelta(minutes=15)
# How long an announcement is worth retrying when nothing better bounds it: a threshold
# alert of a window without a reset time, a reset without a next window, an incident.
THRESHOLD_WITHOUT_RESET_TTL = timedelta(days=7)
NOTICE_TTL = timedelta(days=1)


@dataclass(frozen=True, slots=True)
class WindowRecord:
    """What has been seen and announced of one limit's current window.

    ``window`` is the ``resets_at`` the window was first seen with (its identity);
    ``resets_at`` the last one seen (jitter followed); ``level`` the highest threshold
    announced in it, 0 for none.
    """

    window: datetime | None
    resets_at: datetime | None
    level: float = 0.0


@dataclass(frozen=True, slots=True)
class IncidentRecord:
    """Whether usage cannot be read now, and since when the checks have been failing.

    ``number`` counts the incidents opened so far; it names their announcements.
    """

    open: bool = False
    number: int = 0
    failing_since: datetime | None = None
    last_failed_check: datetime | None = None


@dataclass(frozen=True, slots=True)
class AccountLedger:
    """Everything the engine remembers of one account between polls (and restarts)."""

    account: str
    windows: Mapping[str, WindowRecord] = field(default_factory=dict)
    incident: IncidentRecord = IncidentRecord()


@dataclass(frozen=True, slots=True)
class ThresholdCrossed:
    """A limit's usage rose past ``level`` (the highest threshold crossed) in a window."""

    account: str
    limit_id: str
    label: str
    level: float
    percent: float
    window: datetime | None
    resets_at: datetime | None
    severity: str
    at: datetime

    @property
    def key(self) -> str:
        window = window_id(self.window)
        return f"threshold:{self.account}:{self.limit_id}:{window}:{self.level:g}"

    @property
    def expires_at(self) -> datetime:
        """Past the window's end the warning is moot: it is dropped, not posted late."""
        return self.resets_at or self.at + THRESHOLD_WITHOUT_RESET_TTL

    def message(self) -> AlertMessage:
        pct, level = _percent(self.percent), _percent(self.level)
        return AlertMessage(
            kind="threshold",
            key=self.key,
            account=self.account,
            title=f"{self.account}: {self.label} limit at {pct}",
            text=(
                f"Account {self.account} has used {pct} of its {self.label} limit, "
                f"past the {level} alert threshold. {self.advice}"
            ),
            severity=self.severity,
            limit_id=self.limit_id,
            limit_label=self.label,
            percent=self.percent,
            threshold=self.level,
            resets_at=self.resets_at,
            advice=self.advice,
        )

    @property
    def advice(self) -> str:
        if self.percent >= 100:
            return (
                "The limit is used up: requests are refused until it resets, unless extra "
                "usage is turned on."
            )
        if self.severity == "critical":
            return (
                "Keep what is left for the work that matters most until it resets, or turn "
                "on extra usage."
            )
        return "Plan heavy work around the reset."


@dataclass(frozen=True, slots=True)
class WindowReset:
    """A limit's window ended and a fresh one began (or will with the next use)."""

    account: str
    limit_id: str
    label: str
    window: datetime | None
    resets_at: datetime | None
    at: datetime

    @property
    def key(self) -> str:
        return f"reset:{self.account}:{self.limit_id}:{window_id(self.window)}"

    @property
    def expires_at(self) -> datetime:
        """Once the next window ends too, "fresh again" is no longer news."""
        return self.resets_at or self.at + NOTICE_TTL

    def message(self) -> AlertMessage:
        return AlertMessage(
            kind="reset",
            key=self.key,
            account=self.account,
            title=f"{self.account}: {self.label} limit reset",
            text=f"The {self.label} limit of account {self.account} has reset: it is fresh again.",
            severity="normal",
            limit_id=self.limit_id,
            limit_label=self.label,
            percent=None,
            resets_at=self.resets_at,
        )


@dataclass(frozen=True, slots=True)
class IncidentStarted:
    """Usage cannot be read (so no warning can be given); ``fix`` says what to do."""

    account: str
    number: int
    error_code: str
    fix: str
    at: datetime

    @property
    def key(self) -> str:
        return f"incident:{self.account}:{self.number}:started"

    @property
    def expires_at(self) -> datetime:
        return self.at + NOTICE_TTL

    def message(self) -> AlertMessage:
        return AlertMessage(
            kind="incident_started",
            key=self.key,
            account=self.account,
            title=f"{self.account}: cannot read usage",
            text=(
                f"usage-bot cannot read the Claude usage of account {self.account}, so it "
                f"cannot warn before a limit runs out. {self.fix}"
            ),
            severity="critical",
            advice=self.fix,
        )


@dataclass(frozen=True, slots=True)
class IncidentEnded:
    """Usage can be read again after an incident."""

    account: str
    number: int
    at: datetime

    @property
    def key(self) -> str:
        return f"incident:{self.account}:{self.number}:ended"

    @property
    def expires_at(self) -> datetime:
        return self.at + NOTICE_TTL

    def message(self) -> AlertMessage:
        return AlertMessage(
            kind="incident_ended",
            key=self.key,
            account=self.account,
            title=f"{self.account}: usage readable again",
            text=(
                f"usage-bot can read the Claude usage of account {self.account} again; "
                "alerts are back on."
            ),
            severity="normal",
        )


AlertEvent = ThresholdCrossed | WindowReset | IncidentStarted | IncidentEnded


@dataclass(frozen=True, slots=True)
class Assessment:
    """The ledger to persist, and what to announce, in order."""

    ledger: AccountLedger
    events: tuple[AlertEvent, ...] = ()


def assess(
    ledger: AccountLedger,
    usage: AccountUsage,
    *,
    now: datetime,
    thresholds: Sequence[float],
    reset_announce: ResetAnnounce,
) -> Assessment:
    """What ``usage`` means for the team, given ``ledger``: see the module docstring."""
    events: list[AlertEvent] = []
    incident, incident_event = _incident(ledger, usage, now)
    windows = dict(ledger.windows)
    if usage.error is None and usage.snapshot is not None:
        for limit in usage.snapshot.limits:
            record, limit_events = _limit(
                ledger.account,
                windows.get(limit.id),
                limit,
                now=now,
                thresholds=thresholds,
                reset_announce=reset_announce,
            )
            windows[limit.id] = record
            events.extend(limit_events)
    if incident_event is not None:
        # "Cannot read usage" first, "works again" before what the fresh values say.
        events.insert(0, incident_event)
    return Assessment(
        ledger=replace(ledger, windows=windows, incident=incident), events=tuple(events)
    )


def window_id(window: datetime | None) -> str:
    """A window's id in keys: its first ``resets_at`` rounded to the minute, in UTC."""
    if window is None:
        return "none"
    with contextlib.suppress(OverflowError):  # the calendar's last minute has no next one
        window += timedelta(seconds=30)
    return window.astimezone(UTC).replace(second=0, microsecond=0).strftime("%Y-%m-%dT%H:%MZ")


def highest_crossed(percent: float, thresholds: Sequence[float]) -> float:
    """The highest threshold at or under ``percent``; 0 when none is crossed."""
    return max((t for t in thresholds if percent >= t), default=0.0)


def opens_at_once(error: UsageBotError) -> bool:
    """True for errors that need a person at once (a login to renew), not a wait."""
    # A login file caught half-written while Claude Code rewrites it heals by itself.
    return isinstance(error, CredentialsError) and not isinstance(error, CredentialsMalformed)


def _limit(
    account: str,
    record: WindowRecord | None,
    limit: Limit,
    *,
    now: datetime,
    thresholds: Sequence[float],
    reset_announce: ResetAnnounce,
) -> tuple[WindowRecord, list[AlertEvent]]:
    events: list[AlertEvent] = []
    new = limit.resets_at
    if record is None:
        record = WindowRecord(window=new, resets_at=new)
    elif _same_window(record.resets_at, new, now):
        record = replace(record, resets_at=new or record.resets_at)
    else:
        old = record.resets_at
        moved_on = old is not None and (new is None or new > old)
        wanted = reset_announce == "always" or (reset_announce == "alerted" and record.level > 0)
        if moved_on and wanted:
            events.append(
                WindowReset(
                    account=account,
                    limit_id=limit.id,
                    label=limit.label,
                    window=record.window,
                    resets_at=new,
                    at=now,
                )
            )
        record = WindowRecord(window=new, resets_at=new)
    crossed = highest_crossed(limit.percent, thresholds)
    if crossed > record.level:
        events.append(
            ThresholdCrossed(
                account=account,
                limit_id=limit.id,
                label=limit.label,
                level=crossed,
                percent=limit.percent,
                window=record.window,
                resets_at=record.resets_at,
                severity=severity_for(crossed, thresholds),
                at=now,
            )
        )
        record = replace(record, level=crossed)
    return record, events


def _same_window(old: datetime | None, new: datetime | None, now: datetime) -> bool:
    if old is None or new is None:
        # A reset time that vanishes before it is due is a hiccup, not a reset.
        return new is None and (old is None or now < old)
    return abs(new - old) <= WINDOW_TOLERANCE


def _incident(
    ledger: AccountLedger, usage: AccountUsage, now: datetime
) -> tuple[IncidentRecord, AlertEvent | None]:
    record = ledger.incident
    error = usage.error
    if error is None:
        if usage.snapshot is None:
            return record, None
        healthy = IncidentRecord(number=record.number)
        ended = IncidentEnded(ledger.account, record.number, now) if record.open else None
        return healthy, ended
    # A cached answer repeats the same check; its time says when it really happened.
    checked = usage.checked_at or now
    failing_since = record.failing_since or checked
    record = replace(record, failing_since=failing_since, last_failed_check=checked)
    if record.open:
        return record, None
    if opens_at_once(error) or checked - failing_since >= LASTING_FAILURE:
        number = record.number + 1
        started = IncidentStarted(ledger.account, number, error.code, error.message, now)
        return replace(record, open=True, number=number), started
    return record, None


def _percent(value: float) -> str:
    return f"{_num(value)} %"


def _num(value: float) -> str:
    """``80.0`` -> ``80``, ``97.5`` -> ``97.5``, ``96.04`` -> ``96``: whole unless it matters."""
    rounded = round(value, 1)
    return f"{rounded:.0f}" if rounded == round(rounded) else f"{rounded:.1f}"
