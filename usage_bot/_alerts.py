"""The alert engine, pure: what to announce, given what has been announced and what is new.

:func:`assess` takes one account's :class:`AccountLedger` (what has been announced so
far), its latest :class:`~usage_bot._service.AccountUsage`, the time and the rules, and
returns the ledger to persist with the events to announce. It does no I/O and reads no
clock, so the scheduler, the demo and the tests drive it alike.

The rules (PRODUCT.md, "Behaviour that users rely on" and "Windows"):

- A **window** is one limit's quota period. The upstream's ``resets_at`` jitters by
  fractions of a second on every call, moves now and then, and is null while a window is
  inactive, so a window is followed, not recognised by one value. Its id in announcement
  keys is the ``resets_at`` it was first seen with, rounded to the minute (with a
  ``~n`` suffix in the rare case that the window before it had the same id).
- **Same window** while ``resets_at`` stays within :data:`WINDOW_TOLERANCE` (a minute) of
  the last one seen, and also when it moves, earlier or later, while the percent does not
  fall by more than :data:`EARLY_RESET_DROP` (1 point): the new end is followed and what
  was announced is kept. Flapping between two ends announces nothing.
- **A reset** (a new window) when the last known end has passed by more than the
  tolerance, judged on the clock, so it is announced at that time even while usage cannot
  be read (the announcement then says that the new window has not been read yet); or when
  the percent falls by more than a point (Anthropic reset the window early: said so).
  Announced per ``USAGE_BOT_RESET_ANNOUNCE``: ``alerted`` only for windows that had a
  threshold alert, ``always``, or ``never``. A reading that shows an end still close to
  the one that just passed, with the percent not fallen, means the end was moved later
  after all: the window is resumed, with what it had announced.
- **Too late to matter**: a reading whose ``resets_at`` is already past by more than the
  tolerance is the old window's last word: it raises no threshold alert.
- **Not started**: ``resets_at: null`` at 0 % is no window at all; the first reading with a
  ``resets_at`` starts one, without a reset announcement.
- **Threshold crossed**: when the highest threshold at or under the percent rises within
  a window, one event names that threshold, however many were passed in one step. A first
  look at a window already high announces only its current level. Every limit counts,
  model-scoped weekly ones included.
- **Incident** ("cannot read usage"): a login problem a person must fix (missing,
  rejected, lacking scope, unreadable) opens one at once; an expired login is a state of
  rest (nobody has run Claude Code on that machine for a while, every night) and opens one
  only once it has stayed expired for ``USAGE_BOT_EXPIRED_LOGIN_ALERT_AFTER`` (24 h),
  counted from its ``expiresAt``; an upstream failure (including a login file caught
  half-written) opens one only when it lasts, that is when a check at least
  :data:`LASTING_FAILURE` (15 minutes) after the first failed check fails too, with no
  success in between. One event when it opens, carrying the error's fix, and one when a
  check succeeds again. While usage cannot be read, thresholds are not assessed (the
  values at hand are the stale ones already assessed, or an invalid reading), but window
  ends still are.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Literal

from usage_bot._config import ResetAnnounce
from usage_bot._exceptions import (
    CredentialsError,
    CredentialsExpired,
    CredentialsMalformed,
    UsageBotError,
)
from usage_bot._model import AccountUsage, Limit, label_for, severity_for
from usage_bot._notify import AlertMessage

WINDOW_TOLERANCE = timedelta(minutes=1)
EARLY_RESET_DROP = 1.0
# An end that comes back this close to the one that just passed is a correction of it:
# no window of the upstream's is shorter than five hours.
RESUME_WITHIN = timedelta(hours=1)
LASTING_FAILURE = timedelta(minutes=15)
EXPIRED_LOGIN_ALERT_AFTER = timedelta(hours=24)
# How long an announcement is worth retrying when nothing better bounds it: a threshold
# alert of a window without a reset time, a reset without a next window, an incident.
THRESHOLD_WITHOUT_RESET_TTL = timedelta(days=7)
NOTICE_TTL = timedelta(days=1)

Phase = Literal["active", "ended", "idle"]


@dataclass(frozen=True, slots=True)
class WindowRecord:
    """What has been seen and announced of one limit's current window.

    ``window`` is the ``resets_at`` the window was first seen with (its identity, with
    ``serial`` telling apart two windows that would share it); ``resets_at`` the last one
    seen (jitter and moves followed); ``level`` the highest threshold announced in it, 0
    for none; ``percent`` the last valid percent read in it (None: not known, a ledger
    from before it was kept). ``phase`` is ``active`` (a window being followed),
    ``ended`` (its end passed; the next one not read yet) or ``idle`` (no window: not
    started). ``reset_announced``: its end was announced already, and then its end was
    found to have moved later (it is not announced twice). ``recent``: the ids of the
    windows before it, which no new window's id may repeat.
    """

    window: datetime | None
    resets_at: datetime | None
    level: float = 0.0
    percent: float | None = None
    phase: Phase = "active"
    serial: int = 0
    reset_announced: bool = False
    # The ids of the windows before this one, latest first: a new window's id is none of
    # them (early resets and jitter can bring a first end back to a minute already used).
    recent: tuple[str, ...] = ()

    @property
    def id(self) -> str:
        """The window's id in announcement keys."""
        return _window_key(self.window, self.serial)


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
    serial: int = 0

    @property
    def key(self) -> str:
        window = _window_key(self.window, self.serial)
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
                f"past the {level} alert threshold."
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


ResetCause = Literal["ended", "early"]


@dataclass(frozen=True, slots=True)
class WindowReset:
    """A limit's window ended and a fresh one began (or will with the next use).

    ``cause`` is ``ended`` (its end passed) or ``early`` (Anthropic reset it before its
    end: the percent fell); ``read`` says whether the new window has been read yet, and
    ``unreadable`` whether that is because usage cannot be read now; ``resets_at`` is the
    new window's end when known.
    """

    account: str
    limit_id: str
    label: str
    window: datetime | None
    resets_at: datetime | None
    at: datetime
    serial: int = 0
    cause: ResetCause = "ended"
    read: bool = True
    unreadable: bool = False

    @property
    def key(self) -> str:
        return f"reset:{self.account}:{self.limit_id}:{_window_key(self.window, self.serial)}"

    @property
    def expires_at(self) -> datetime:
        """Once the next window ends too, "fresh again" is no longer news."""
        return self.resets_at or self.at + NOTICE_TTL

    def message(self) -> AlertMessage:
        subject = f"The {self.label} limit of account {self.account}"
        if self.cause == "early":
            text = f"{subject} was reset early by Anthropic: it is fresh again."
        elif self.read:
            text = f"{subject} has reset: it is fresh again."
        else:
            text = f"{subject} has reset: its window ended on time. The new window has not been"
            text += (
                " read yet (usage cannot be read right now)." if self.unreadable else " read yet."
            )
        return AlertMessage(
            kind="reset",
            key=self.key,
            account=self.account,
            title=f"{self.account}: {self.label} limit reset",
            text=text,
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
                "cannot warn before a limit runs out."
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


@dataclass(frozen=True, slots=True)
class _Rules:
    thresholds: Sequence[float]
    reset_announce: ResetAnnounce
    expired_login_alert_after: timedelta | None

    def announces_reset(self, record: WindowRecord) -> bool:
        mode = self.reset_announce
        return mode == "always" or (mode == "alerted" and record.level > 0)


def assess(
    ledger: AccountLedger,
    usage: AccountUsage,
    *,
    now: datetime,
    thresholds: Sequence[float],
    reset_announce: ResetAnnounce,
    expired_login_alert_after: timedelta | None = EXPIRED_LOGIN_ALERT_AFTER,
) -> Assessment:
    """What ``usage`` means for the team, given ``ledger``: see the module docstring.

    ``expired_login_alert_after`` None means an expired login is never an incident.
    """
    rules = _Rules(tuple(thresholds), reset_announce, expired_login_alert_after)
    incident, incident_event = _incident(ledger, usage, now, rules)
    windows = dict(ledger.windows)
    # Window ends first, on the clock: they happen whether or not usage can be read.
    ended: dict[str, WindowReset] = {}
    for limit_id, record in ledger.windows.items():
        if record.phase == "active" and _passed(record.resets_at, now):
            windows[limit_id] = replace(record, phase="ended")
            if rules.announces_reset(record) and not record.reset_announced:
                ended[limit_id] = WindowReset(
                    account=ledger.account,
                    limit_id=limit_id,
                    label=_label(usage, limit_id),
                    window=record.window,
                    resets_at=None,
                    at=now,
                    serial=record.serial,
                    read=False,
                    unreadable=usage.error is not None,
                )
    events: list[AlertEvent] = []
    if usage.error is None and usage.snapshot is not None:
        for limit in usage.snapshot.limits:
            record, limit_events = _reading(
                ledger.account, windows.get(limit.id), limit, now=now, rules=rules
            )
            reset = ended.pop(limit.id, None)
            if reset is not None:
                if record.phase == "active" and record.id == windows[limit.id].id:
                    # Resumed at once: its end was moved later after all.
                    record = replace(record, reset_announced=False)
                else:
                    # The end passed, and this reading may already show what came after.
                    new = record.phase == "active"
                    events.append(
                        replace(reset, read=new, resets_at=record.resets_at if new else None)
                    )
            windows[limit.id] = record
            events.extend(limit_events)
    events[:0] = ended.values()
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
    # A login file caught half-written while Claude Code rewrites it heals by itself; an
    # expired login heals when someone next runs Claude Code on that machine.
    return isinstance(error, CredentialsError) and not isinstance(
        error, CredentialsMalformed | CredentialsExpired
    )


def is_inactive(limit: Limit) -> bool:
    """No window at all: the upstream says 0 % with no end (no session running)."""
    return limit.resets_at is None and limit.percent <= 0


def _reading(
    account: str,
    record: WindowRecord | None,
    limit: Limit,
    *,
    now: datetime,
    rules: _Rules,
) -> tuple[WindowRecord, list[AlertEvent]]:
    """One valid reading of one limit against what is known of its window."""
    events: list[AlertEvent] = []
    end, percent = limit.resets_at, limit.percent
    late = _passed(end, now)
    if record is None or record.phase == "idle":
        if is_inactive(limit) or late:
            return record or _idle(None), events
        record = _start(record, end, percent)
    elif record.phase == "ended":
        if is_inactive(limit):
            return _idle(record), events
        if late:
            return record, events  # the old window's last word
        if _resumed(record, end, percent):
            # Its end had been moved later: the same window, with what it announced.
            record = replace(
                record,
                phase="active",
                resets_at=end,
                percent=percent,
                reset_announced=record.reset_announced or rules.announces_reset(record),
            )
        else:
            record = _start(record, end, percent)
    elif _fell(record, percent):
        # A new window: Anthropic reset this one before its end (or, in the minute after
        # its end, before the clock said so).
        if rules.announces_reset(record) and not record.reset_announced:
            early = record.resets_at is None or now < record.resets_at
            events.append(
                WindowReset(
                    account=account,
                    limit_id=limit.id,
                    label=limit.label,
                    window=record.window,
                    resets_at=None if is_inactive(limit) or late else end,
                    at=now,
                    serial=record.serial,
                    cause="early" if early else "ended",
                )
            )
        if is_inactive(limit):
            return _idle(record), events
        record = _start(record, end, percent)
        if late:
            return replace(record, phase="ended"), events
    elif late:
        return record, events  # too late to matter: its own end tells when it is over
    else:
        # The same window, its end followed (a reset time that vanishes is a hiccup).
        record = replace(record, resets_at=end or record.resets_at, percent=percent)
    crossed = highest_crossed(percent, rules.thresholds)
    if crossed > record.level:
        events.append(
            ThresholdCrossed(
                account=account,
                limit_id=limit.id,
                label=limit.label,
                level=crossed,
                percent=percent,
                window=record.window,
                resets_at=record.resets_at,
                severity=severity_for(crossed, rules.thresholds),
                at=now,
                serial=record.serial,
            )
        )
        record = replace(record, level=crossed)
    return record, events


RECENT_WINDOWS = 8


def _start(previous: WindowRecord | None, end: datetime | None, percent: float) -> WindowRecord:
    """A new window from its first reading; its id is none of the recent windows' ids."""
    taken = () if previous is None else (previous.id, *previous.recent)[:RECENT_WINDOWS]
    serial = 0
    while _window_key(end, serial) in taken:
        serial += 1
    return WindowRecord(window=end, resets_at=end, percent=percent, serial=serial, recent=taken)


def _idle(previous: WindowRecord | None) -> WindowRecord:
    """No window; the last one's id is kept, so that the next can be told apart from it."""
    if previous is None:
        return WindowRecord(window=None, resets_at=None, phase="idle")
    return replace(previous, phase="idle", level=0.0, reset_announced=False)


def _passed(end: datetime | None, now: datetime) -> bool:
    return end is not None and now - end > WINDOW_TOLERANCE


def _near(a: datetime | None, b: datetime | None) -> bool:
    return a is not None and b is not None and abs(a - b) <= WINDOW_TOLERANCE


def _fell(record: WindowRecord, percent: float) -> bool:
    return record.percent is not None and percent < record.percent - EARLY_RESET_DROP


def _resumed(record: WindowRecord, end: datetime | None, percent: float) -> bool:
    """After its end passed, the same window again: its end was moved later after all."""
    if end is None or record.resets_at is None or _fell(record, percent):
        return False
    return end - record.resets_at <= RESUME_WITHIN


def _label(usage: AccountUsage, limit_id: str) -> str:
    limit = usage.snapshot.limit(limit_id) if usage.snapshot is not None else None
    return limit.label if limit is not None else label_for(limit_id)


def _window_key(window: datetime | None, serial: int) -> str:
    base = window_id(window)
    return f"{base}~{serial}" if serial else base


def _incident(
    ledger: AccountLedger, usage: AccountUsage, now: datetime, rules: _Rules
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
    failing_since: datetime | None = record.failing_since or checked
    if isinstance(error, CredentialsExpired):
        # Rest, not failure: a failure after the login is renewed starts its own clock.
        failing_since = None
    record = replace(record, failing_since=failing_since, last_failed_check=checked)
    if record.open or not _opens(error, checked - (failing_since or checked), now, rules):
        return record, None
    number = record.number + 1
    started = IncidentStarted(ledger.account, number, error.code, error.message, now)
    return replace(record, open=True, number=number), started


def _opens(error: UsageBotError, failing_for: timedelta, now: datetime, rules: _Rules) -> bool:
    if isinstance(error, CredentialsExpired):
        after = rules.expired_login_alert_after
        return after is not None and now - error.expired_at >= after
    return opens_at_once(error) or failing_for >= LASTING_FAILURE


def _percent(value: float) -> str:
    return f"{_num(value)} %"


def _num(value: float) -> str:
    """``80.0`` -> ``80``, ``97.5`` -> ``97.5``, ``96.04`` -> ``96``: whole unless it matters."""
    rounded = round(value, 1)
    return f"{rounded:.0f}" if rounded == round(rounded) else f"{rounded:.1f}"
