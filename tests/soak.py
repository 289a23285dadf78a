"""The soak: a week of usage for several accounts in accelerated time, with faults.

    python -m tests.soak --days 7 --accounts 5 --seed 1

The real alert engine, the real scheduler logic (:meth:`AlertScheduler.poll_once` and
:meth:`AlertScheduler.deliver_pending`), the real SQLite state store, usage service,
client and credential loader run on a :class:`FakeClock`, one minute per step, polling
every 180 s as the bot does. Around them, everything is simulated:

- **people at work**: each account's people work by day in their own time zone (a
  morning, a lunch break, an afternoon, now and then an evening; a short session at
  weekends) at an intensity that changes from session to session;
- **usage** (the upstream as it really behaves): per account a 5-hour session window that
  starts with the first work after the last one ended and is inactive
  (``{"utilization": 0.0, "resets_at": null}``) while nobody works, a weekly window and a
  weekly Opus cap (given only in the newer ``limits`` list), climbing with the work done.
  ``resets_at`` jitters by up to a second on every call, across second and minute
  boundaries; Anthropic moves an end (earlier or later, by minutes), lets an end flap
  between two values for a while, and resets windows early (the new window keeps the end
  or gets a new one, or, with nobody working, is inactive); for a poll or two after an
  end the upstream may still show the window that is over (a stale reading);
- **upstream faults** (``httpx.MockTransport``): 5xx, 429 with every kind of
  ``retry-after``, timeouts, bodies that are not JSON, a revoked token (401), and invalid
  readings (a percent of ``1e308``, ``-5``, ``150``, ``NaN``, a string...: the whole
  answer must be ignored);
- **the login**: Claude Code renews it (a new token, valid 8 hours) when someone starts
  working and while they work, so it expires every night and is renewed the next morning;
  once in the run one account's people take a day off and it stays expired for more
  than a day;
- **alert destinations** (two, in memory): failures that are retryable (with or without
  a ``retry_after``) and failures that are not, for minutes at a time;
- **the process**: restarts (a new service, scheduler and store on the same file) and
  crashes in the middle of a delivery, between the claim and the post, or between the
  post and the confirm.

``--trouble N`` makes faults come, and Anthropic change windows, N times as often: the
short run in ``tests/test_soak.py`` meets everything in two days that way.

What should be announced is decided by an independent judge (the end of this module),
from what the upstream actually served and PRODUCT.md's rules, without the engine's code.
Each announcement must reach each destination exactly once. Counted apart, not hidden: a
copy posted again after a crash between the post and its confirm (the documented window:
the post is out, the process died before it could write that down), an alert dropped
because its window ended while its destination was failing (PRODUCT.md: retried "until
it succeeds or the window ends"), and whatever follows an invalid reading the model
accepted (it must accept none: the run fails, naming them).
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import email.utils
import json
import logging
import math
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

import httpx

from usage_bot._client import UsageClient
from usage_bot._clock import FakeClock
from usage_bot._config import AccountSpec, AlertConfig, Settings, UpstreamConfig
from usage_bot._credentials import CredentialLoader
from usage_bot._delivery import Courier
from usage_bot._exceptions import DeliveryError
from usage_bot._notify import AlertMessage
from usage_bot._scheduler import AlertScheduler
from usage_bot._service import UsageService
from usage_bot.state.sqlite import SQLiteStore

T0 = datetime(2026, 7, 20, 0, 0, tzinfo=UTC)  # a Monday
STEP = 60.0
POLL_SECONDS = 180
THRESHOLDS = (80.0, 95.0)
FIVE_HOURS = timedelta(hours=5)
WEEK = timedelta(days=7)
LOGIN_LIFETIME = timedelta(hours=8)
DESTINATIONS = ("slack", "discord")
# Claude Code renews its login this long before it expires, when it runs then.
RENEW_AHEAD = timedelta(minutes=5)
# What a percent that must not be read looks like, as the JSON carries it.
INVALID_PERCENTS: dict[str, object] = {
    "1e308": 1e308,
    "-5": -5,
    "150": 150,
    "100.6": 100.6,
    "NaN": math.nan,
    '"NaN"': "NaN",
    '"85"': "85",
}


class Crash(BaseException):
    """The process dies here: nothing after this point runs, nothing is cleaned up."""


# -- people at work ------------------------------------------------------------------------


@dataclass(frozen=True)
class Session:
    """Someone works from ``start`` to ``end``, using ``rate`` percent of a 5-hour window
    per hour."""

    start: datetime
    end: datetime
    rate: float


class Work:
    """When an account's people use Claude Code, and how much work is done by when."""

    def __init__(self, sessions: Sequence[Session]) -> None:
        self.sessions = sorted(sessions, key=lambda s: s.start)
        self._starts = [s.start for s in self.sessions]
        self._before: list[float] = []
        done = 0.0
        for session in self.sessions:
            self._before.append(done)
            done += session.rate * _hours(session.end - session.start)
        self._after = [
            b + s.rate * _hours(s.end - s.start)
            for b, s in zip(self._before, self.sessions, strict=True)
        ]

    def working(self, at: datetime) -> bool:
        i = bisect.bisect_right(self._starts, at) - 1
        return i >= 0 and at < self.sessions[i].end

    def next_start(self, at: datetime) -> datetime:
        """``at`` if someone works then, else when someone next starts."""
        if self.working(at):
            return at
        i = bisect.bisect_right(self._starts, at)
        return (
            self.sessions[i].start if i < len(self.sessions) else datetime.max.replace(tzinfo=UTC)
        )

    def done(self, at: datetime) -> float:
        """The work done before ``at``, in percent of a 5-hour window."""
        i = bisect.bisect_right(self._starts, at) - 1
        if i < 0:
            return 0.0
        session = self.sessions[i]
        return self._before[i] + session.rate * _hours(min(at, session.end) - session.start)

    def when(self, done: float) -> datetime | None:
        """When the work done first reaches ``done``."""
        i = bisect.bisect_left(self._after, done)
        if i >= len(self.sessions):
            return None
        session = self.sessions[i]
        need = max(done - self._before[i], 0.0)
        return session.start + timedelta(hours=need / session.rate)


def _hours(delta: timedelta) -> float:
    return delta.total_seconds() / 3600


def _workdays(
    rng: random.Random, *, days: float, offset: timedelta, day_off: int | None
) -> list[Session]:
    """Every day a working day (a short one at weekends), except ``day_off``."""
    sessions: list[Session] = []

    def add(midnight: datetime, hour: float, hours: float) -> float:
        start = _whole_minute(midnight + timedelta(hours=hour))
        end = _whole_minute(start + timedelta(hours=hours))
        kind = rng.random()
        low, high = (6, 15) if kind < 0.3 else (15, 28) if kind < 0.75 else (28, 45)
        sessions.append(Session(start, end, rng.uniform(low, high)))
        return hour + hours

    for day in range(-1, math.ceil(days) + 2):
        if day == day_off:
            continue
        midnight = T0 + timedelta(days=day) - offset
        if (T0 + timedelta(days=day)).weekday() >= 5:
            add(midnight, rng.uniform(10, 15), rng.uniform(1, 3.5))
            continue
        ends = add(midnight, rng.uniform(7, 10), rng.uniform(2.5, 4.5))
        ends = add(midnight, ends + rng.uniform(0.4, 1.2), rng.uniform(3, 5))
        if rng.random() < 0.25:
            add(midnight, max(ends + 0.5, rng.uniform(20, 21.5)), rng.uniform(0.5, 2))
    return sessions


def _whole_minute(at: datetime) -> datetime:
    return at.replace(second=0, microsecond=0)


def _renewals(work: Work) -> list[datetime]:
    """When Claude Code renews the login: when someone starts with it expired (or about
    to), and while they work, just before it expires."""
    renewed: list[datetime] = []
    expires = T0 - timedelta(days=30)
    for session in work.sessions:
        if expires - RENEW_AHEAD <= session.start:
            renewed.append(session.start)
            expires = session.start + LOGIN_LIFETIME
        while expires - RENEW_AHEAD < session.end:
            renewed.append(expires - RENEW_AHEAD)
            expires = renewed[-1] + LOGIN_LIFETIME
    return renewed


# -- the usage model -----------------------------------------------------------------------


@dataclass
class Window:
    """One of the model's quota periods: the truth the upstream shows, jittered and all.

    ``ends`` is when it ends, as the upstream has it from each moment on (Anthropic moves
    ends); ``finish`` is when it is really over (its last end, or an early reset);
    ``flap`` a stretch during which the upstream shows one of two ends at random;
    ``stale`` how long after its end the upstream still shows it (``last_word`` points
    higher than it ended at, now and then: no alert may come of that).
    """

    number: int
    start: datetime
    base: float
    ends: list[tuple[datetime, datetime]]
    finish: datetime
    early: str | None = None
    flap: tuple[datetime, datetime, datetime] | None = None
    stale: timedelta = timedelta(0)
    last_word: float = 0.0  # what a stale reading adds to its last percent (late accounting)

    def end_at(self, at: datetime) -> datetime:
        return next(end for since, end in reversed(self.ends) if since <= at)

    @property
    def last_end(self) -> datetime:
        return self.ends[-1][1]


class Limit:
    """One limit of one account: its windows, one after another (with gaps of no window
    for the 5-hour limit), each climbing with the work done in it."""

    def __init__(
        self,
        limit_id: str,
        *,
        length: timedelta,
        work: Work,
        share: float,
        rng: random.Random,
        until: datetime,
        first: tuple[datetime, datetime, float],
        trouble: float = 1.0,
    ) -> None:
        self.id = limit_id
        self.trouble = trouble  # how much more often than usual Anthropic changes windows
        self.length = length
        self.work = work
        self.share = share  # percent of this limit per percent of a 5-hour window
        self.idles = limit_id == "five_hour"
        self.whole = limit_id == "seven_day_opus"  # the limits list gives whole percents
        self.windows: list[Window] = []
        self._generate(rng, until, first)
        self._starts = [w.start for w in self.windows]

    def percent(self, window: Window, at: datetime) -> float:
        used = self.work.done(min(at, window.finish)) - self.work.done(window.start)
        return min(100.0, window.base + self.share * used)

    def crossing(self, window: Window, level: float) -> datetime | None:
        """When usage first reaches ``level`` in ``window``, if it does."""
        if window.base >= level:
            return window.start
        at = self.work.when(self.work.done(window.start) + (level - window.base) / self.share)
        return at if at is not None and at < window.finish else None

    def state(self, at: datetime) -> tuple[Window | None, bool]:
        """The window the upstream shows at ``at`` (None: no window), and whether it is
        one already over, shown still."""
        i = bisect.bisect_right(self._starts, at) - 1
        if i < 0:
            return None, False
        if i >= 1:
            before = self.windows[i - 1]
            if before.early is None and before.finish <= at < before.finish + before.stale:
                return before, True
        window = self.windows[i]
        if at < window.finish:
            return window, False
        if window.early is None and at < window.finish + window.stale:
            return window, True
        return None, False

    def shown(self, at: datetime, rng: random.Random) -> Shown:
        window, stale = self.state(at)
        if window is None:
            return Shown(None, 0.0, None)
        if stale:
            end = window.last_end
            exact = min(100.0, self.percent(window, window.finish) + window.last_word)
        else:
            end, exact = window.end_at(at), self.percent(window, at)
            if window.flap is not None and window.flap[0] <= at < window.flap[1]:
                end = rng.choice([end, window.flap[2]])
        end += timedelta(microseconds=rng.randint(-1_000_000, 1_000_000))
        # Both round down: the list to whole percents, the flat windows to tenths.
        percent = float(math.floor(exact)) if self.whole else math.floor(exact * 10) / 10
        if percent >= 100 and not self.whole and rng.random() < 0.3:
            percent = rng.choice([100.1, 100.2, 100.4])  # the upstream's rounding
        return Shown(window.number, percent, end, stale)

    def _generate(
        self, rng: random.Random, until: datetime, first: tuple[datetime, datetime, float]
    ) -> None:
        start, end, base = first
        after_early = False
        while start < until + timedelta(days=1):
            window = Window(len(self.windows), start, base, [(start, end)], end)
            self._shape(window, rng, after_early=after_early)
            self.windows.append(window)
            # After an early reset the new window starts near 0 % (nothing for a while).
            after_early = window.early in ("same end", "new end")
            base = rng.uniform(0, 0.5) if after_early else 0.0
            if window.early == "same end":
                start, end = window.finish, window.last_end
                continue
            if window.early == "new end":
                start = window.finish
            else:
                start = self.work.next_start(window.finish) if self.idles else window.finish
            if start.year == datetime.max.year:
                return
            end = _nominal_end(start + self.length, rng)

    def _shape(self, window: Window, rng: random.Random, *, after_early: bool) -> None:
        """What Anthropic does to this window: move its end, flap it, reset it early."""
        end = window.last_end
        span = end - window.start
        if span < timedelta(hours=1):
            return
        if rng.random() < self._chance(0.25):
            at = window.start + span * rng.uniform(0.15, 0.85)
            moved = end + timedelta(minutes=rng.choice([-1, 1]) * rng.randint(2, 30))
            if moved >= at + timedelta(minutes=15):
                window.ends.append((at, moved))
        elif rng.random() < self._chance(0.15):
            begin = window.start + span * rng.uniform(0.1, 0.6)
            stop = begin + timedelta(minutes=rng.uniform(10, 60))
            other = end + timedelta(minutes=rng.choice([-1, 1]) * rng.randint(2, 15))
            if stop <= min(end, other) - timedelta(minutes=10):
                window.flap = (begin, stop, other)
        # Now and then Anthropic resets the new window early again.
        early = (0.15 if self.idles else 0.25) * (0.4 if after_early else 1.0)
        if rng.random() < self._chance(early):
            at = window.start + span * rng.uniform(0.1, 0.9)
            flap = window.flap
            near_flap = flap is not None and flap[0] - timedelta(minutes=10) <= at < flap[1]
            if at <= window.end_at(at) - timedelta(minutes=20) and not near_flap:
                window.ends = [e for e in window.ends if e[0] <= at]
                window.finish = at
                kinds = ["same end", "new end"]
                if self.idles and not self.work.working(at):
                    kinds += ["to inactive", "to inactive"]
                window.early = rng.choice(kinds)
                return
        window.finish = window.last_end
        if rng.random() < self._chance(0.6):
            window.stale = timedelta(minutes=rng.uniform(1, 7))
            window.last_word = rng.choice([0.0, rng.uniform(5, 30)])

    def _chance(self, usual: float) -> float:
        return min(usual * self.trouble, 0.9)


def _nominal_end(at: datetime, rng: random.Random) -> datetime:
    """An end on a whole or a half minute, give or take half a second (the upstream's
    03:39:59.570750), so that the jitter on top crosses second and minute boundaries."""
    minute = _whole_minute(at + timedelta(seconds=30))
    offset = rng.choice([0, 30]) + rng.uniform(-0.6, 0.6)
    return minute + timedelta(seconds=offset)


class Account:
    """One Claude subscription: its people's work, its limits, its login on disk."""

    def __init__(
        self,
        name: str,
        folder: Path,
        rng: random.Random,
        *,
        days: float,
        offset: timedelta = timedelta(0),
        day_off: int | None = None,
        trouble: float = 1.0,
    ) -> None:
        self.name = name
        self.folder = folder
        until = T0 + timedelta(days=days)
        self.work = Work(_workdays(rng, days=days, offset=offset, day_off=day_off))
        week_work = self.work.done(T0 + WEEK) - self.work.done(T0)
        self.limits: dict[str, Limit] = {}
        first_session = self.work.next_start(T0 - FIVE_HOURS)
        self.limits["five_hour"] = Limit(
            "five_hour",
            length=FIVE_HOURS,
            work=self.work,
            share=1.0,
            rng=rng,
            until=until,
            first=(first_session, _nominal_end(first_session + FIVE_HOURS, rng), 0.0),
            trouble=trouble,
        )
        for limit_id in ("seven_day", "seven_day_opus"):
            end = _nominal_end(T0 + WEEK * rng.uniform(0.02, 1.0), rng)
            self.limits[limit_id] = Limit(
                limit_id,
                length=WEEK,
                work=self.work,
                share=rng.uniform(40, 140) / max(week_work, 1.0),
                rng=rng,
                until=until,
                first=(end - WEEK, end, rng.uniform(0, 50)),
                trouble=trouble,
            )
        self.renewals = _renewals(self.work)
        self.token = ""
        self.expires_at = T0
        self.tokens = 0  # tokens Claude Code has made for this login
        self.rotations = 0  # of which during the run

    def window(self, limit_id: str, number: int) -> Window:
        return self.limits[limit_id].windows[number]

    def renew(self, at: datetime) -> None:
        """Claude Code renews the login: a new token; the old one is refused from now on."""
        self.tokens += 1
        self.rotations += at > T0
        self.token = f"soak-token-{self.name}-{self.tokens}"
        self.expires_at = at + LOGIN_LIFETIME
        self.folder.mkdir(parents=True, exist_ok=True)
        login = {
            "claudeAiOauth": {
                "accessToken": self.token,
                "refreshToken": f"soak-refresh-{self.name}-{self.tokens}",
                "expiresAt": int(self.expires_at.timestamp() * 1000),
                "scopes": ["user:inference", "user:profile"],
                "subscriptionType": "max",
            }
        }
        (self.folder / ".credentials.json").write_text(json.dumps(login), encoding="utf-8")

    def expired_periods(self, until: datetime) -> list[tuple[datetime, datetime | None]]:
        """When the login was expired during the run: (since, renewed at or None)."""
        periods: list[tuple[datetime, datetime | None]] = []
        for at, after in zip(self.renewals, [*self.renewals[1:], None], strict=True):
            expired = at + LOGIN_LIFETIME
            if expired >= until or (after is not None and after <= max(expired, T0)):
                continue
            periods.append((expired, after if after is not None and after < until else None))
        return periods


# -- faults, drawn in advance --------------------------------------------------------------


@dataclass(frozen=True)
class Episode:
    """A fault from ``start`` to ``end``; ``kind`` and ``detail`` say which."""

    start: datetime
    end: datetime
    kind: str
    detail: Any = None

    def covers(self, at: datetime) -> bool:
        return self.start <= at < self.end


def episodes(
    rng: random.Random,
    until: datetime,
    *,
    every: timedelta,
    gap: timedelta,
    draw: Any,
) -> list[Episode]:
    """Faults one after another: on average ``every`` apart, at least ``gap`` between them."""
    found: list[Episode] = []
    at = T0
    while True:
        at += gap + timedelta(seconds=rng.expovariate(1 / every.total_seconds()))
        if at >= until:
            return found
        kind, minutes, detail = draw(rng)
        found.append(Episode(at, at + timedelta(minutes=minutes), kind, detail))
        at = found[-1].end


def _upstream_fault(rng: random.Random) -> tuple[str, float, Any]:
    kind = rng.choice(["5xx", "5xx", "429", "429", "timeout", "not-json", "401"] + ["invalid"] * 3)
    if kind == "429":
        after = rng.choice([None, "0", "60", "600", "3600", "date"])
        return kind, rng.uniform(2, 90), after
    if kind == "5xx":
        return kind, rng.uniform(2, 60), rng.choice([500, 502, 503])
    if kind == "invalid":
        # Mostly a poll or two; now and then long enough to be a lasting failure.
        minutes = rng.uniform(2, 8) if rng.random() < 0.8 else rng.uniform(16, 40)
        return kind, minutes, rng.choice(sorted(INVALID_PERCENTS))
    return kind, rng.uniform(2, 60), None


def _destination_fault(rng: random.Random) -> tuple[str, float, Any]:
    if rng.random() < 0.6:
        return "retryable", rng.uniform(5, 30), rng.choice([None, 30.0, 120.0])
    return "not-retryable", rng.uniform(5, 45), None


# -- the fakes around the real pieces ------------------------------------------------------


@dataclass(frozen=True)
class Shown:
    """One limit in one answer: which of the model's windows it shows (None: no window),
    with what percent and end, and whether that window was already over (stale)."""

    window: int | None
    percent: float
    end: datetime | None
    stale: bool = False


@dataclass
class Served:
    """One answer the upstream gave with status 200. ``invalid`` names the percent that
    spoiled it on purpose (in ``invalid_limit``); ``accepted`` says whether the bot took
    such an answer all the same (it must not)."""

    account: str
    at: datetime
    limits: dict[str, Shown]
    invalid: str | None = None
    invalid_limit: str | None = None
    accepted: bool | None = None


@dataclass(frozen=True)
class Request:
    """One request that reached the upstream, and how it went: ``ok``, ``invalid`` or the
    fault's kind; for a 429, the wait its ``retry-after`` asked for (None: none usable)."""

    account: str | None
    at: datetime
    outcome: str
    retry_after: float | None = None


class Upstream:
    """The usage endpoint behind ``httpx.MockTransport``: the model, and its faults."""

    def __init__(
        self,
        clock: FakeClock,
        accounts: dict[str, Account],
        faults: dict[str, list[Episode]],
        rng: random.Random,
    ) -> None:
        self.clock = clock
        self.accounts = accounts
        self.faults = faults
        self.rng = rng
        self.served: list[Served] = []
        self.requests: list[Request] = []
        self.last: dict[str, Served] = {}
        self.failed = Counter[str]()
        self.starts: list[datetime] = []  # when a bot process started asking

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        now = self.clock.now()
        token = request.headers["authorization"].removeprefix("Bearer ")
        account = next((a for a in self.accounts.values() if a.token == token), None)
        if account is None or account.expires_at <= now:
            outcome = "401 (a token no longer valid)" if account is None else "401 (expired)"
            self.failed[outcome] += 1
            self.requests.append(Request(account.name if account else None, now, outcome))
            return httpx.Response(401, json=_error("authentication_error", "Invalid token"))
        fault = next((e for e in self.faults[account.name] if e.covers(now)), None)
        if fault is not None and fault.kind != "invalid":
            self.failed[fault.kind] += 1
            self.requests.append(Request(account.name, now, fault.kind, _asks_to_wait(fault)))
            return self._fault(fault, now)
        payload, served = self._answer(account, now)
        if fault is not None:
            self.failed["invalid"] += 1
            self._spoil(payload, served, fault.detail)
        self.served.append(served)
        self.last[account.name] = served
        self.requests.append(Request(account.name, now, "invalid" if fault else "ok"))
        body = json.dumps(payload)  # with NaN as JavaScript writes it, when spoiled so
        return httpx.Response(200, content=body, headers={"content-type": "application/json"})

    def _fault(self, fault: Episode, now: datetime) -> httpx.Response:
        if fault.kind == "5xx":
            return httpx.Response(fault.detail, text="upstream connect error")
        if fault.kind == "429":
            headers = {}
            if fault.detail == "date":
                later = now + timedelta(seconds=600)
                headers["retry-after"] = email.utils.format_datetime(later, usegmt=True)
            elif fault.detail is not None:
                headers["retry-after"] = fault.detail
            body = _error("rate_limit_error", "Rate limited. Please try again later.")
            return httpx.Response(429, json=body, headers=headers)
        if fault.kind == "timeout":
            raise httpx.ReadTimeout("timed out")
        if fault.kind == "not-json":
            return httpx.Response(200, text="<<upstream hiccup>>")
        return httpx.Response(401, json=_error("authentication_error", "Token revoked"))

    def _answer(self, account: Account, now: datetime) -> tuple[dict[str, Any], Served]:
        shown = {limit.id: limit.shown(now, self.rng) for limit in account.limits.values()}
        opus = shown["seven_day_opus"]
        payload = {
            "five_hour": self._flat(shown["five_hour"]),
            "seven_day": self._flat(shown["seven_day"]),
            "seven_day_opus": None,
            "limits": [
                {
                    "kind": "weekly_scoped",
                    "group": "default",
                    "percent": int(opus.percent),
                    "severity": "normal",
                    "resets_at": self._time(opus.end),
                    "scope": {"model": {"id": "claude-opus", "display_name": "Opus"}},
                    "is_active": True,
                }
            ],
            "extra_usage": {"is_enabled": False, "currency": "USD"},
        }
        return payload, Served(account.name, now, shown)

    def _flat(self, shown: Shown) -> dict[str, Any]:
        return {"utilization": shown.percent, "resets_at": self._time(shown.end)}

    def _time(self, at: datetime | None) -> str | None:
        if at is None:
            return None
        text = at.isoformat()
        return text.replace("+00:00", "Z") if self.rng.random() < 0.5 else text

    def _spoil(self, payload: dict[str, Any], served: Served, value_name: str) -> None:
        """Put a percent that must not be read into one limit of the answer."""
        limit_id = self.rng.choice(sorted(served.limits))
        value = INVALID_PERCENTS[value_name]
        if limit_id == "seven_day_opus":
            payload["limits"][0]["percent"] = value
        else:
            payload[limit_id]["utilization"] = value
            if payload[limit_id]["resets_at"] is None:  # a percent above 0 starts a window
                payload[limit_id]["resets_at"] = self._time(self.clock.now() + FIVE_HOURS)
        served.invalid, served.invalid_limit = value_name, limit_id


def _asks_to_wait(fault: Episode) -> float | None:
    """The seconds a 429's ``retry-after`` asks for; None when it asks for none."""
    if fault.kind != "429" or fault.detail is None:
        return None
    if fault.detail == "date":
        return 600.0  # the date served is 600 s on (the clock is on whole minutes)
    return float(fault.detail) or None


def _error(kind: str, message: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": kind, "message": message}}


@dataclass
class Received:
    at: datetime
    message: AlertMessage


class Destination:
    """An alert destination in memory that fails, or crashes the process, on demand."""

    def __init__(self, name: str, clock: FakeClock, faults: list[Episode]) -> None:
        self.name = name
        self.clock = clock
        self.faults = faults
        self.received: list[Received] = []
        self.crash: str | None = None  # "before post" or "after post", for the next post
        self.crashed_at: list[datetime] = []
        self.crashed_after_post: list[AlertMessage] = []
        self.failures = Counter[str]()

    async def post(self, message: AlertMessage) -> None:
        now = self.clock.now()
        if self.crash == "before post":
            self._crash(now)
        fault = next((e for e in self.faults if e.covers(now)), None)
        if fault is not None:
            self.failures[fault.kind] += 1
            raise DeliveryError(
                f"{self.name} is failing ({fault.kind})",
                retryable=fault.kind == "retryable",
                retry_after=fault.detail,
            )
        self.received.append(Received(now, message))
        if self.crash == "after post":
            self.crashed_after_post.append(message)
            self._crash(now)

    def _crash(self, now: datetime) -> None:
        crash, self.crash = self.crash, None
        self.crashed_at.append(now)
        raise Crash(crash)


class Process:
    """One run of the bot: client, service, store and scheduler on the shared state file."""

    def __init__(
        self,
        settings: Settings,
        clock: FakeClock,
        upstream: Upstream,
        destinations: Sequence[Destination],
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.upstream = upstream
        self.destinations = destinations
        self.started = clock.now()

    async def start(self) -> Process:
        self.upstream.starts.append(self.clock.now())
        settings = self.settings
        self.client = UsageClient(
            base_url=settings.upstream.api_base_url,
            user_agent=settings.upstream.user_agent,
            transport=httpx.MockTransport(self.upstream),
        )
        self.service = UsageService(
            loaders=[
                CredentialLoader(spec, settings.upstream) for spec in settings.upstream.accounts
            ],
            client=self.client,
            clock=self.clock,
            min_interval=settings.upstream.min_fetch_interval,
            thresholds=settings.alerts.thresholds,
        )
        self.store = await SQLiteStore.open(settings.state)
        courier = Courier(
            queue=self.store,
            clock=self.clock,
            owner=f"soak-{len(self.upstream.starts)}",
            notifiers=self.destinations,
            stop_grace=0.1,
        )
        self.scheduler = AlertScheduler(
            settings=settings,
            service=self.service,
            store=self.store,
            courier=courier,
            clock=self.clock,
        )
        return self

    def polls_now(self) -> bool:
        """APScheduler's interval job: at start, then every POLL_SECONDS."""
        return (self.clock.now() - self.started).total_seconds() % POLL_SECONDS < STEP / 2

    async def stop(self) -> None:
        await self.scheduler.stop()
        await self.store.close()
        await self.service.aclose()
        await self.client.aclose()

    async def die(self) -> None:
        """SIGKILL: no goodbyes; the kernel closes the database file."""
        await self.store.close()
        await self.service.aclose()
        await self.client.aclose()


# -- the run -------------------------------------------------------------------------------


@dataclass
class Report:
    days: float
    accounts: int
    seed: int
    trouble: float = 1.0
    expected: int = 0
    delivered: int = 0
    duplicated: int = 0
    unasked: int = 0
    crash_window_duplicates: int = 0
    missed: int = 0
    dropped_as_allowed: int = 0
    optional: int = 0
    optional_delivered: int = 0
    thresholds: int = 0
    resets: int = 0
    after_accepted_invalid: int = 0
    incidents: int = 0
    incident_duplicates: int = 0
    incidents_missed: int = 0
    expiry_incidents: int = 0
    unexplained_incidents: int = 0
    incidents_not_closed: int = 0
    incidents_not_opened: int = 0
    asked_too_soon: int = 0
    rate_limits_waited: int = 0
    long_expiries: int = 0
    long_expiry_alerts: int = 0
    long_expiry_readable_again: int = 0
    unexpected_errors: list[str] = field(default_factory=list)
    worst_delay: timedelta = timedelta(0)
    worst_alert: str = ""
    median_delay: timedelta = timedelta(0)
    worst_after_seen: timedelta = timedelta(0)
    worst_after_seen_alert: str = ""
    polls: int = 0
    upstream_failures: Counter[str] = field(default_factory=Counter)
    answers: int = 0
    readings: Counter[str] = field(default_factory=Counter)
    rules: Counter[str] = field(default_factory=Counter)
    windows: Counter[str] = field(default_factory=Counter)
    anthropic: Counter[str] = field(default_factory=Counter)
    invalid_served: Counter[str] = field(default_factory=Counter)
    invalid_accepted: Counter[str] = field(default_factory=Counter)
    renewals: int = 0
    nightly_expiries: int = 0
    longest_nightly_expiry: timedelta = timedelta(0)
    long_expiry_lengths: list[timedelta] = field(default_factory=list)
    destination_failures: Counter[str] = field(default_factory=Counter)
    restarts: int = 0
    crashes: Counter[str] = field(default_factory=Counter)
    missed_alerts: list[str] = field(default_factory=list)
    dropped_alerts: list[str] = field(default_factory=list)
    wrong_alerts: list[str] = field(default_factory=list)
    wrong_incidents: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not (
            self.duplicated
            or self.unasked
            or self.missed
            or self.after_accepted_invalid
            or self.invalid_accepted
            or self.incident_duplicates
            or self.incidents_missed
            or self.expiry_incidents
            or self.unexplained_incidents
            or self.incidents_not_closed
            or self.incidents_not_opened
            or self.asked_too_soon
            or self.long_expiry_alerts != self.long_expiries
            or self.unexpected_errors
        )

    def lines(self) -> list[str]:
        destinations = len(DESTINATIONS)
        announcements = self.expected // destinations
        accepted = sum(self.invalid_accepted.values())
        served = sum(self.invalid_served.values())
        lines = [
            f"usage-bot soak: {self.days:g} simulated days, {self.accounts} accounts, seed "
            f"{self.seed}; {destinations} destinations, polls every {POLL_SECONDS} s"
            + (f"; trouble x {self.trouble:g}" if self.trouble != 1 else ""),
            f"  polls {self.polls}; upstream failures {_counts(self.upstream_failures)}",
            f"  429s: {self.rate_limits_waited} followed by another request, "
            f"{self.asked_too_soon} of them too soon for their retry-after or the back-off",
            f"  usage: {sum(self.windows.values())} windows ({_counts(self.windows)}); "
            f"{_counts(self.anthropic)}",
            f"  answers {self.answers}; limits in them: {_counts(self.readings)}",
            f"  the rules at work: {_counts(self.rules)}",
            f"  invalid readings: {served} served ({_counts(self.invalid_served)}); "
            f"{served - accepted} rejected, {accepted} accepted"
            + (f" ({_counts(self.invalid_accepted)})" if accepted else ""),
            f"  logins: {self.renewals} renewals; {self.nightly_expiries} expiries renewed "
            f"within 24 h (longest {_duration(self.longest_nightly_expiry)}); "
            f"{len(self.long_expiry_lengths)} expired over a day"
            + (
                f" ({', '.join(_duration(d) for d in self.long_expiry_lengths)})"
                if self.long_expiry_lengths
                else ""
            ),
            f"  destination failures {_counts(self.destination_failures)}",
            f"  restarts {self.restarts}; crashes {_counts(self.crashes)}",
            f"alerts expected:   {self.expected} ({announcements} announcements x "
            f"{destinations} destinations: {self.thresholds} threshold, {self.resets} reset)",
            f"delivered:         {self.delivered}",
            f"duplicated:        {self.duplicated} (and {self.crash_window_duplicates} posted "
            "again after a crash between post and confirm, counted apart; incidents included)",
            f"missed:            {self.missed}",
            f"not called for:    {self.unasked} (announced, but the rules call for no such alert)",
            f"dropped, allowed:  {self.dropped_as_allowed} (its moment passed while its "
            "destination was failing: the window's end, or for a reset the next one's)",
            f"optional:          {self.optional} ({self.optional_delivered} delivered: an alert "
            "first seen after its window's end, a reset too near the end of the run)",
            f"after an invalid reading the model accepted: {self.after_accepted_invalid} "
            "(doubled, missed or not called for; not counted above)",
            f"incident alerts:   {self.incidents} delivered, {self.incident_duplicates} "
            f"duplicated, {self.incidents_missed} missed",
            f"                   {self.expiry_incidents} for a login expired less than a day, "
            f"{self.unexplained_incidents} without a fault to explain them, "
            f"{self.incidents_not_opened} not opened when due, {self.incidents_not_closed} not "
            "closed by the first good answer",
            f"expired over a day: {self.long_expiries} logins; {self.long_expiry_alerts} "
            f'"cannot read usage" after 24 h, {self.long_expiry_readable_again} "readable '
            'again" on renewal',
            f"worst delay:       {_duration(self.worst_delay)} from the crossing (or reset) to "
            f"the post ({self.worst_alert}); median {_duration(self.median_delay)}",
            f"                   {_duration(self.worst_after_seen)} from the first answer that "
            f"showed it ({self.worst_after_seen_alert})",
        ]
        lines.extend(f"  missed: {alert}" for alert in self.missed_alerts[:10])
        lines.extend(f"  wrong: {alert}" for alert in self.wrong_alerts[:10])
        lines.extend(f"  dropped: {alert}" for alert in self.dropped_alerts[:10])
        lines.extend(f"  incident: {incident}" for incident in self.wrong_incidents[:10])
        lines.extend(f"  unexpected error: {error}" for error in self.unexpected_errors[:10])
        lines.append(f"{'OK' if self.ok else 'FAILED'} in {self.seconds:.1f} s")
        return lines


def _counts(counter: Counter[str]) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(counter.items())) or "none"


def _duration(delta: timedelta) -> str:
    minutes = round(delta.total_seconds() / 60)
    return f"{minutes // 60} h {minutes % 60} min" if minutes >= 60 else f"{minutes} min"


class _Errors(logging.Handler):
    """Collects the ERROR lines no injected fault explains, and the alerts dropped."""

    def __init__(self, clock: FakeClock) -> None:
        super().__init__(logging.WARNING)
        self.clock = clock
        self.lines: list[str] = []
        self.drops: list[Dropped] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.msg == "gave up posting %s to %s: its moment passed (after %d attempt(s))":
            key, destination, _ = record.args  # type: ignore[misc]
            self.drops.append(Dropped(str(key), str(destination), self.clock.now()))
            return
        message = record.getMessage()
        if record.levelno >= logging.ERROR and not message.startswith("alerts cannot reach "):
            self.lines.append(f"{record.name}: {message}")


async def soak(
    *,
    days: float,
    accounts: int,
    seed: int,
    trouble: float = 1.0,
    state_dir: Path | None = None,
) -> Report:
    """Run the soak; the report says what was expected, delivered, duplicated, missed.

    ``trouble`` makes faults come, and Anthropic change windows, that many times as often
    as in an ordinary week: a short run meets everything all the same."""
    started = time.monotonic()
    folder = Path(tempfile.mkdtemp(prefix="usage-bot-soak-", dir=state_dir or _fast_dir()))
    clock = FakeClock(T0)
    errors = _Errors(clock)
    logging.getLogger("usage_bot").addHandler(errors)
    try:
        report = await _soak(
            folder, clock, days=days, accounts=accounts, seed=seed, trouble=trouble, errors=errors
        )
    finally:
        logging.getLogger("usage_bot").removeHandler(errors)
        shutil.rmtree(folder, ignore_errors=True)
    report.seconds = time.monotonic() - started
    return report


def _fast_dir() -> str | None:
    # The soak is about the logic, not the disk: keep its fsyncs in memory when possible.
    shm = Path("/dev/shm")
    return str(shm) if shm.is_dir() else None


def day_off(days: float) -> int:
    """The day the first account's people take off: early enough that its login, expired
    for more than a day, is renewed before the run ends."""
    return max(0, min(2, math.floor(days) - 2))


async def _soak(
    folder: Path,
    clock: FakeClock,
    *,
    days: float,
    accounts: int,
    seed: int,
    trouble: float,
    errors: _Errors,
) -> Report:
    rng = random.Random(seed)  # noqa: S311 - a simulation, not secrets
    until = T0 + timedelta(days=days)
    report = Report(days=days, accounts=accounts, seed=seed, trouble=trouble)

    people: dict[str, Account] = {}
    for i in range(1, accounts + 1):
        name = f"team{i}"
        # The first account works in UTC and takes a day off; the others anywhere.
        offset = timedelta(hours=0 if i == 1 else rng.randint(-10, 18) / 2)
        people[name] = Account(
            name,
            folder / name,
            random.Random(rng.random()),  # noqa: S311
            days=days,
            offset=offset,
            day_off=day_off(days) if i == 1 else None,
            trouble=trouble,
        )
    renewals: list[tuple[datetime, str]] = []
    for account in people.values():
        before = [at for at in account.renewals if at <= T0]
        account.renew(before[-1])  # the login as Claude Code last left it
        renewals += [(at, account.name) for at in account.renewals if T0 < at < until]
    renewals.sort()
    upstream_faults = {
        name: episodes(
            rng,
            until,
            every=timedelta(hours=6) / trouble,
            gap=timedelta(minutes=30),
            draw=_upstream_fault,
        )
        for name in people
    }
    destination_faults = {
        name: episodes(
            rng,
            until,
            every=timedelta(hours=10) / trouble,
            gap=timedelta(hours=2),
            draw=_destination_fault,
        )
        for name in DESTINATIONS
    }
    upstream = Upstream(clock, people, upstream_faults, random.Random(rng.random()))  # noqa: S311
    destinations = [Destination(name, clock, destination_faults[name]) for name in DESTINATIONS]
    settings = Settings(
        upstream=UpstreamConfig(
            accounts=tuple(AccountSpec(a.name, a.folder) for a in people.values()),
            api_base_url="https://api.anthropic.test",
            poll_seconds=POLL_SECONDS,
        ),
        alerts=AlertConfig(thresholds=THRESHOLDS, reset_announce="alerted"),
        state=str(folder / "usage-bot.sqlite3"),
    )
    restarts = _times(rng, until, every=timedelta(hours=8) / trouble)
    crashes = _times(rng, until, every=timedelta(hours=12) / trouble)
    decisions: dict[str, Decision] = {}

    process = await Process(settings, clock, upstream, destinations).start()
    try:
        while clock.now() < until:
            now = clock.now()
            while renewals and renewals[0][0] <= now:
                people[renewals.pop(0)[1]].renew(now)
            while crashes and crashes[0] <= now:
                crashes.pop(0)
                rng.choice(destinations).crash = rng.choice(["before post", "after post"])
            restart_after_polls = False
            if restarts and restarts[0] <= now:
                restarts.pop(0)
                report.restarts += 1
                restart_after_polls = rng.random() < 0.5
                if not restart_after_polls:
                    await process.stop()
                    process = await Process(settings, clock, upstream, destinations).start()
            if process.polls_now():
                for name in people:
                    for event in await process.scheduler.poll_once(name):
                        decisions.setdefault(event.key, Decision(now, event.message()))
                    report.polls += 1
                    _note_invalid(upstream.last.get(name), process.service.peek(name), now)
            if restart_after_polls:  # recorded, not yet delivered
                await process.stop()
                process = await Process(settings, clock, upstream, destinations).start()
            process = await _deliver(process, report)
            clock.advance(STEP)
        # Then quiet: no new faults start, and what is queued has time to go out.
        for destination in destinations:
            destination.faults = [e for e in destination.faults if e.start < until]
        for _ in range(round(2 * 3600 / STEP)):
            if not await process.store.pending():
                break
            process = await _deliver(process, report)
            clock.advance(STEP)
    finally:
        await process.stop()

    report.upstream_failures = upstream.failed
    for destination in destinations:
        report.destination_failures.update(destination.failures)
    report.unexpected_errors = errors.lines
    for outcome in ("401 (a token no longer valid)", "401 (expired)"):
        if upstream.failed[outcome]:
            report.unexpected_errors.append(
                f"{upstream.failed[outcome]} request(s) sent: {outcome}"
            )
    _describe(report, people, upstream, until)
    week = Week(
        until=until,
        served=upstream.served,
        requests=upstream.requests,
        decisions=decisions,
        destinations=destinations,
        drops=errors.drops,
        expired={name: a.expired_periods(until) for name, a in people.items()},
        starts=upstream.starts,
        truth=_ModelTruth(people),
    )
    judge(report, week)
    return report


async def _deliver(process: Process, report: Report) -> Process:
    """The delivery job; a crash in it kills the process, and a new one starts."""
    try:
        await process.scheduler.deliver_pending()
    except Crash as crash:
        report.crashes[str(crash)] += 1
        await process.die()
        return await Process(
            process.settings, process.clock, process.upstream, process.destinations
        ).start()
    return process


def _note_invalid(served: Served | None, usage: Any, now: datetime) -> None:
    """Whether the answer just served, if spoiled on purpose, was taken by the bot."""
    if served is not None and served.at == now and served.invalid is not None:
        served.accepted = usage.error is None and usage.checked_at == now


def _describe(
    report: Report, people: dict[str, Account], upstream: Upstream, until: datetime
) -> None:
    """What the week was made of, for the summary."""
    for account in people.values():
        report.renewals += account.rotations
        for limit in account.limits.values():
            for window in limit.windows:
                if window.start >= until or window.finish <= T0:
                    continue
                report.windows[limit.id] += 1
                if len(window.ends) > 1:
                    report.anthropic["ends moved"] += 1
                if window.flap is not None:
                    report.anthropic["ends flapping"] += 1
                if window.early is not None:
                    report.anthropic[f"reset early ({window.early})"] += 1
        for since, renewed in account.expired_periods(until):
            length = (renewed or until) - since
            if length > timedelta(hours=24):
                report.long_expiry_lengths.append(length)
            elif renewed is not None:
                report.nightly_expiries += 1
                report.longest_nightly_expiry = max(report.longest_nightly_expiry, length)
    before: dict[tuple[str, str], Shown] = {}
    for answer in upstream.served:
        if answer.invalid is not None:
            continue
        report.answers += 1
        for limit_id, shown in answer.limits.items():
            last = before.get((answer.account, limit_id))
            before[(answer.account, limit_id)] = shown
            if shown.end is None:
                report.readings["no window"] += 1
                continue
            if answer.at - shown.end > timedelta(minutes=1):
                report.readings["stale, its end past"] += 1
            if last is None or last.end is None or last.window != shown.window:
                continue
            if _whole_minute(last.end) != _whole_minute(shown.end):
                report.readings["end in another minute than the last"] += 1
            elif last.end.second != shown.end.second:
                report.readings["end in another second"] += 1


def _times(rng: random.Random, until: datetime, *, every: timedelta) -> list[datetime]:
    found = []
    at = T0
    while True:
        at += timedelta(seconds=rng.expovariate(1 / every.total_seconds()))
        if at >= until:
            return found
        found.append(at)


class _ModelTruth:
    """When things really happened, for the delay figures only (never for the verdict)."""

    def __init__(self, people: dict[str, Account]) -> None:
        self.people = people

    def crossing(self, account: str, limit_id: str, window: int, level: float) -> datetime | None:
        limit = self.people[account].limits[limit_id]
        return limit.crossing(limit.windows[window], level)

    def finish(self, account: str, limit_id: str, window: int) -> datetime:
        return self.people[account].window(limit_id, window).finish


# -- the independent judge -----------------------------------------------------------------
#
# PRODUCT.md's rules, written again from its text, applied to what the upstream served
# (each answer tagged with the model's window it shows) and to what the bot did: which
# announcements it decided at which poll (AlertScheduler.poll_once's events), and what
# reached each destination. Nothing of the engine's is imported.
#
# - An answer with an invalid percent is no reading at all. A limit with no end at 0 % is
#   no window. A reading whose end passed more than a minute before it is too late to
#   matter (no alert, no change). The others are assessable.
# - Quota periods ("spans"): a reading continues the period of the one before it unless
#   its percent fell by more than a point (an early reset), or the last end passed by more
#   than a minute and the new end is no correction of it (a later end, less than 2.5 h
#   on); an answer with no window ends a period. The model's windows tell which window a
#   reading shows; two of them that no answer told apart are one period, as the rules see.
# - Thresholds: in each period, an alert each time the highest threshold crossed rises,
#   decided at the very answer that showed it; one first seen after its window's end (in
#   the minute's grace) may be dropped. Resets: one per period that had an alert, once
#   the rules call it over (its last known end passed by a minute, a fall, no window),
#   never sooner, including while usage cannot be read.
# - Each reaches each destination once; a threshold alert may be dropped only once its
#   window was over as far as the answers told (not at an end since moved later), and
#   only if its destination had been failing.
# - "Cannot read usage": see _judge_incidents; the 429 back-off: see _judge_backoff.

MINUTE = timedelta(minutes=1)  # "within a minute"
FELL = 1.0  # "the percent falls by more than 1 point"
LASTING = timedelta(minutes=15)  # an upstream failure opens an incident once it lasts
EXPIRED_FOR = timedelta(hours=24)  # USAGE_BOT_EXPIRED_LOGIN_ALERT_AFTER's default
# Rule 1 keeps a window whose end moved later, also when the move is seen only after the
# earlier end passed (rule 2 has announced the reset by then): no window is shorter than
# five hours, so an end less than half that after the one that passed is a correction.
CORRECTION = timedelta(hours=2, minutes=30)
# A poll comes every three minutes: whatever the rules call for is decided by then.
DECIDED_WITHIN = timedelta(minutes=10)
RATE_LIMITED_FOR = 300.0  # seconds: a 429 with no usable retry-after, the first time
DAY = timedelta(days=1) - DECIDED_WITHIN  # a reset of a window not yet read is news for a day


class Truth(Protocol):
    def crossing(
        self, account: str, limit_id: str, window: int, level: float
    ) -> datetime | None: ...

    def finish(self, account: str, limit_id: str, window: int) -> datetime: ...


@dataclass(frozen=True)
class Decision:
    """An announcement the engine decided, at the poll of ``at``."""

    at: datetime
    message: AlertMessage


@dataclass(frozen=True)
class Dropped:
    """The scheduler gave up a delivery: its moment had passed."""

    key: str
    destination: str
    at: datetime


@dataclass
class Week:
    """Everything the judge looks at."""

    until: datetime
    served: Sequence[Served]
    requests: Sequence[Request]
    decisions: dict[str, Decision]
    destinations: Sequence[Destination]
    drops: Sequence[Dropped] = ()
    # Per account, when its login was expired: since, and renewed at (None: not in the run).
    expired: dict[str, list[tuple[datetime, datetime | None]]] = field(default_factory=dict)
    starts: Sequence[datetime] = ()  # when a bot process started (its back-off starts anew)
    truth: Truth | None = None


@dataclass(frozen=True)
class Reading:
    """One assessable reading of one limit."""

    at: datetime
    percent: float
    end: datetime
    window: int


@dataclass
class Span:
    """One quota period as the rules see it in the answers served: one of the model's
    windows, or several in a row that no answer told apart."""

    account: str
    limit: str
    number: int
    readings: list[Reading] = field(default_factory=list)
    closed_at: datetime | None = None  # an answer showed it over: no window, or a fall
    closed_by: str | None = None
    level: float = 0.0  # the highest threshold its readings crossed so far
    tainted: bool = False  # an invalid reading the bot accepted may have upset it
    next: Span | None = None  # the period after it

    @property
    def windows(self) -> list[int]:
        return sorted({r.window for r in self.readings})

    @property
    def over_at(self) -> datetime:
        """When the rules first call it over: its last known end passed by a minute, or
        an answer showing no window or a fall."""
        times = [
            reading.end + MINUTE
            for reading, after in zip(self.readings, [*self.readings[1:], None], strict=True)
            if after is None or after.at - reading.end > MINUTE
        ]
        if self.closed_at is not None:
            times.append(self.closed_at)
        return min(times)

    @property
    def due_by(self) -> datetime:
        """By when its reset is announced, at the latest: a few polls after its last known
        end passed or an answer showed it over, whether or not usage could be read."""
        due = self.readings[-1].end + MINUTE
        if self.closed_at is not None:
            due = min(due, self.closed_at)
        return due + DECIDED_WITHIN

    def end_known_at(self, at: datetime) -> datetime | None:
        """Its end, as the last reading at or before ``at`` said."""
        ends = [r.end for r in self.readings if r.at <= at]
        return ends[-1] if ends else None

    def __str__(self) -> str:
        first = self.readings[0].at if self.readings else None
        since = f" from {_clock(first)}" if first else ""
        return f"{self.account}:{self.limit}:#{self.number}{since}"


def _same_period(last: Reading, new: Reading) -> bool:
    """PRODUCT.md, "Windows": may ``new`` be the same quota period as ``last``?"""
    if new.percent < last.percent - FELL:
        return False  # rule 2: the percent fell by more than a point (an early reset)
    if new.at - last.end <= MINUTE:
        return True  # rule 1: its end within a minute, or moved (earlier or later)
    return timedelta(0) <= new.end - last.end <= CORRECTION  # its end moved later after all


def highest(percent: float) -> float:
    """The highest threshold at or under ``percent``; 0 for none."""
    return max((level for level in THRESHOLDS if percent >= level), default=0.0)


@dataclass
class Spans:
    """The quota periods of every account and limit, and where each reading went."""

    by_limit: dict[tuple[str, str], list[Span]] = field(default_factory=lambda: defaultdict(list))
    at: dict[tuple[str, str, datetime], Span] = field(default_factory=dict)
    of_window: dict[tuple[str, str, int], Span] = field(default_factory=dict)
    # What the rules had to decide in these answers (for the summary).
    notes: Counter[str] = field(default_factory=Counter)

    def latest_before(self, account: str, limit: str, at: datetime) -> Span | None:
        """The period a reset decided at ``at`` is about: the last one begun before it."""
        found = [s for s in self.by_limit[(account, limit)] if s.readings[0].at < at]
        return found[-1] if found else None


def quota_periods(served: Iterable[Served]) -> Spans:
    spans = Spans()
    upset: set[tuple[str, str, int]] = set()  # windows an invalid reading the bot took touched
    for answer in sorted(served, key=lambda a: a.at):
        if answer.invalid is not None:
            # Not to be assessed at all. If the bot took it all the same, what follows in
            # the periods it touched is counted apart: the model's bug, reported as such.
            if answer.accepted:
                for limit_id, shown in answer.limits.items():
                    line = spans.by_limit[(answer.account, limit_id)]
                    if line:
                        line[-1].tainted = True
                    if shown.window is not None:
                        upset.add((answer.account, limit_id, shown.window))
            continue
        for limit_id, shown in answer.limits.items():
            line = spans.by_limit[(answer.account, limit_id)]
            current = line[-1] if line and line[-1].closed_at is None else None
            if shown.end is None or shown.window is None:
                if current is not None:  # rule 4: no window at all
                    current.closed_at, current.closed_by = answer.at, "no window"
                continue
            window = (answer.account, limit_id, shown.window)
            if answer.at - shown.end > MINUTE:
                # Rule 3: too late to matter.
                late = spans.of_window.get(window)
                if late is not None and highest(shown.percent) > late.level:
                    spans.notes["readings past their end that would have alerted"] += 1
                continue
            reading = Reading(answer.at, shown.percent, shown.end, shown.window)
            if current is None or not _same_period(current.readings[-1], reading):
                if current is not None:
                    fell = reading.percent < current.readings[-1].percent - FELL
                    current.closed_at = answer.at
                    current.closed_by = "a fall" if fell else "its end passed"
                new = Span(answer.account, limit_id, len(line))
                if line:
                    line[-1].next = new
                line.append(new)
                current = new
            elif shown.window not in current.windows:
                spans.notes["model windows no answer told apart"] += 1
            current.readings.append(reading)
            current.level = max(current.level, highest(reading.percent))
            current.tainted = current.tainted or window in upset
            spans.at[(answer.account, limit_id, answer.at)] = current
            spans.of_window[window] = current
    for line in spans.by_limit.values():
        # What the bot made of such an answer may carry into the next period too.
        upset_itself = [span.tainted for span in line]
        for span, before in zip(line[1:], upset_itself, strict=False):
            span.tainted = span.tainted or before
    return spans


@dataclass(frozen=True)
class Expected:
    """An announcement the rules call for."""

    ident: tuple[str, ...]  # (kind, account, limit, period[, level])
    span: Span
    observed: datetime  # the answer (or the moment) that called for it
    happened: datetime  # when it really happened (the crossing, the reset)
    required: bool  # False: fine either way (its moment passed as it was seen)

    def __str__(self) -> str:
        level = f" {self.ident[4]} %" if len(self.ident) > 4 else ""
        return f"{self.ident[0]}{level} of {self.span}"


def _threshold(span: Span, level: float) -> tuple[str, ...]:
    return ("threshold", span.account, span.limit, str(span.number), f"{level:g}")


def _reset(span: Span) -> tuple[str, ...]:
    return ("reset", span.account, span.limit, str(span.number))


def expected_announcements(
    spans: Spans, until: datetime, truth: Truth | None = None
) -> dict[tuple[str, ...], Expected]:
    """Per period: an alert each time the highest threshold crossed rises (only the
    highest when several are crossed at once), and, when it had one, a reset
    announcement once it is over."""
    expected: dict[tuple[str, ...], Expected] = {}
    for line in spans.by_limit.values():
        for span in line:
            level = 0.0
            for reading in span.readings:
                crossed = highest(reading.percent)
                if crossed <= level:
                    continue
                level = crossed
                happened = reading.at
                if truth is not None:
                    model = truth.crossing(span.account, span.limit, reading.window, crossed)
                    happened = max(model or reading.at, T0)
                ident = _threshold(span, crossed)
                # Seen only after its window's end (within the minute's grace): moot.
                required = reading.at < reading.end
                expected[ident] = Expected(ident, span, reading.at, happened, required)
            if level == 0 or span.over_at > until:
                continue
            over = span.over_at
            happened = over
            if truth is not None:
                happened = truth.finish(span.account, span.limit, span.readings[-1].window)
            required = over + DECIDED_WITHIN <= until
            expected[_reset(span)] = Expected(_reset(span), span, over, happened, required)
    return expected


def _notes(
    spans: Spans, expected: dict[tuple[str, ...], Expected], served: Sequence[Served]
) -> Counter[str]:
    """What the rules had to get right, in the announcements called for."""
    notes = Counter(spans.notes)
    valid: dict[str, list[datetime]] = defaultdict(list)
    for answer in served:
        if answer.invalid is None:
            valid[answer.account].append(answer.at)
    for alert in expected.values():
        span = alert.span
        ends = [r.end for r in span.readings]
        if alert.ident[0] == "threshold":
            if len(span.windows) > 1 or max(ends) - min(ends) > MINUTE:
                notes["alerts in a period whose end moved"] += 1
            continue
        if span.closed_by == "a fall" and span.closed_at == span.over_at:
            notes["resets early (the percent fell)"] += 1
        elif span.closed_by == "no window" and span.closed_at == span.over_at:
            notes["resets to no window"] += 1
        times = valid[span.account]
        i = bisect.bisect_left(times, span.over_at - MINUTE)
        if i == len(times) or times[i] > span.over_at + DECIDED_WITHIN:
            notes["resets due while usage could not be read"] += 1
    return notes


def _ident(
    spans: Spans, served: dict[tuple[str, datetime], Served], decision: Decision
) -> tuple[tuple[str, ...], Span | None]:
    """Which announcement of which period the engine decided, from when and what. One the
    rules do not call for gets an ident of its own, saying what is wrong with it."""
    message = decision.message
    assert message.limit_id is not None
    where = (message.account, message.limit_id)
    if message.kind == "reset":
        span = spans.latest_before(*where, decision.at)
        if span is None:
            return ("a reset of no period", message.key), None
        if decision.at < span.over_at:
            return ("a reset before its period was over", message.key), span
        if decision.at > span.due_by:
            return ("a reset announced late", message.key), span
        return _reset(span), span
    assert message.threshold is not None
    span = spans.at.get((*where, decision.at))
    if span is None:
        answer = served.get((message.account, decision.at))
        shown = answer.limits.get(message.limit_id) if answer else None
        if shown is not None and shown.window is not None:
            span = spans.of_window.get((*where, shown.window))
        why = "no answer" if answer is None else "an answer with no window"
        if answer is not None and answer.invalid is not None:
            why = "an invalid answer"
        elif shown is not None and shown.window is not None:
            why = "an answer past its end"
        return (f"a threshold alert on {why}", message.key), span
    return _threshold(span, message.threshold), span


def judge(report: Report, week: Week) -> None:
    """Fill in ``report``'s verdict on ``week``."""
    spans = quota_periods(week.served)
    expected = expected_announcements(spans, week.until, week.truth)
    required = {ident: e for ident, e in expected.items() if e.required}
    report.thresholds = sum(1 for ident in required if ident[0] == "threshold")
    report.resets = sum(1 for ident in required if ident[0] == "reset")
    report.expected = len(required) * len(week.destinations)
    report.optional = len(expected) - len(required)
    report.rules = _notes(spans, expected, week.served)
    for answer in week.served:
        if answer.invalid is not None:
            report.invalid_served[answer.invalid] += 1
            report.invalid_accepted[answer.invalid] += bool(answer.accepted)
    report.invalid_accepted = +report.invalid_accepted  # only the values taken
    idents, tainted = _decided(week, spans, expected)
    verdict = _Deliveries(report, expected, idents, tainted, week.drops)
    for destination in week.destinations:
        verdict.judge(destination)
    if verdict.delays:
        report.worst_delay, report.worst_alert = max(verdict.delays)
        report.median_delay = statistics.median(delay for delay, _ in verdict.delays)
        report.worst_after_seen, report.worst_after_seen_alert = max(verdict.seen)
    _judge_incidents(report, week)
    _judge_backoff(report, week)


def _judge_backoff(report: Report, week: Week) -> None:
    """On 429 the bot waits as a positive ``retry-after`` says (capped at an hour); with
    none or 0, from 5 minutes, doubling on each 429 since the last good answer, capped
    at an hour. (A process that starts anew knows of no 429 yet.)"""
    accepted = {(a.account, a.at) for a in week.served if a.invalid is not None and a.accepted}
    by_account: dict[str, list[Request]] = defaultdict(list)
    for request in week.requests:
        if request.account is not None:
            by_account[request.account].append(request)
    for account, asked in by_account.items():
        in_a_row = 0
        for request, after in zip(asked, [*asked[1:], None], strict=True):
            if request.outcome == "ok" or (account, request.at) in accepted:
                in_a_row = 0
            if request.outcome != "429":
                continue
            in_a_row += 1
            wait = request.retry_after or RATE_LIMITED_FOR * 2 ** (in_a_row - 1)
            wait = min(max(wait, 30.0), 3600.0)
            if after is None:
                continue
            if any(request.at < start <= after.at for start in week.starts):
                in_a_row = 0
                continue
            report.rate_limits_waited += 1
            if (after.at - request.at).total_seconds() < wait - 1:
                report.asked_too_soon += 1
                report.unexpected_errors.append(
                    f"{account} asked again {_duration(after.at - request.at)} after a 429 "
                    f"at {_clock(request.at)} (its {in_a_row} in a row), not {wait:.0f} s"
                )


def _decided(
    week: Week, spans: Spans, expected: dict[tuple[str, ...], Expected]
) -> tuple[dict[str, tuple[str, ...]], set[tuple[str, ...]]]:
    """Which announcement each key the engine decided is, and which of them an invalid
    answer the bot took may have upset (counted apart: the model's bug)."""
    served = {(a.account, a.at): a for a in week.served}
    taken: dict[str, list[datetime]] = defaultdict(list)
    for answer in week.served:
        if answer.invalid is not None and answer.accepted:
            taken[answer.account].append(answer.at)
    idents: dict[str, tuple[str, ...]] = {}
    tainted = {e.ident for e in expected.values() if e.span.tainted}
    for key, decision in week.decisions.items():
        if decision.message.kind not in ("threshold", "reset"):
            continue
        ident, span = _ident(spans, served, decision)
        answer = served.get((decision.message.account, decision.at))
        # Decided on such an answer, in a period it upset, or before any period after one.
        upset = (
            span.tainted
            if span is not None
            else any(at <= decision.at for at in taken[decision.message.account])
        )
        if (answer is not None and answer.invalid is not None) or upset:
            tainted.add(ident)
        idents[key] = ident
    # A threshold alert the rules call for is decided at the answer that calls for it; one
    # decided only at another (sooner or later) is not it. A second one at another answer
    # is a copy of it.
    for ident, alert in expected.items():
        keys = [k for k, i in idents.items() if i == ident and ident[0] == "threshold"]
        if keys and not any(week.decisions[k].at == alert.observed for k in keys):
            for k in keys:
                idents[k] = ("a threshold alert at another answer than the one calling for it", k)
    return idents, tainted


class _Deliveries:
    """What reached each destination, against what the rules call for."""

    def __init__(
        self,
        report: Report,
        expected: dict[tuple[str, ...], Expected],
        idents: dict[str, tuple[str, ...]],
        tainted: set[tuple[str, ...]],
        drops: Sequence[Dropped],
    ) -> None:
        self.report = report
        self.expected = expected
        self.idents = idents
        self.tainted = tainted
        self.drops = {(d.key, d.destination): d for d in drops}
        self.delays: list[tuple[timedelta, str]] = []
        self.seen: list[tuple[timedelta, str]] = []

    def ident(self, key: str) -> tuple[str, ...]:
        return self.idents.get(key, ("never decided", key))

    def judge(self, destination: Destination) -> None:
        report, expected = self.report, self.expected
        copies: Counter[tuple[str, ...]] = Counter()
        first: dict[tuple[str, ...], datetime] = {}
        keys: dict[tuple[str, ...], set[str]] = defaultdict(set)
        for received in destination.received:
            message = received.message
            if message.kind in ("threshold", "reset"):
                ident = self.ident(message.key)
                copies[ident] += 1
                first.setdefault(ident, received.at)
                keys[ident].add(message.key)
        crash_window = Counter(
            self.ident(m.key)
            for m in destination.crashed_after_post
            if m.kind in ("threshold", "reset")
        )
        for ident, count in copies.items():
            allowed = crash_window.get(ident, 0)
            report.crash_window_duplicates += min(count - 1, allowed)
            extra = max(count - 1 - allowed, 0)
            wrong = ident not in expected
            if not (extra or wrong):
                continue
            if ident in self.tainted:
                report.after_accepted_invalid += extra + wrong
                continue
            report.duplicated += extra
            report.unasked += wrong
            said = ", ".join(sorted(keys[ident]))
            if wrong:
                what = f"{ident[0]} not called for" if len(ident) > 2 else ident[0]
                report.wrong_alerts.append(f"{what}: {said} to {destination.name}")
            else:
                report.wrong_alerts.append(
                    f"{expected[ident]}: {count} copies to {destination.name} ({said})"
                )
        for ident, alert in expected.items():
            name = f"{alert} to {destination.name}"
            if ident in first:
                if not alert.required:
                    report.optional_delivered += 1
                    continue
                report.delivered += 1
                self.delays.append((first[ident] - alert.happened, name))
                self.seen.append((first[ident] - alert.observed, name))
                continue
            if not alert.required:
                continue
            why = self.dropped(alert, destination)
            if why is not None:
                report.dropped_as_allowed += 1
                report.dropped_alerts.append(f"{name}: {why}")
            elif ident in self.tainted:
                report.after_accepted_invalid += 1
            else:
                report.missed += 1
                report.missed_alerts.append(f"{name} (seen {_clock(alert.observed)})")

    def dropped(self, alert: Expected, destination: Destination) -> str | None:
        """Why an announcement that never arrived may have been dropped, or None if it may
        not: its moment had passed when it was dropped (a threshold alert's window was
        over, as far as the answers told; a reset's next window was over too, or a day
        had passed), and its destination had been failing (or the process had crashed)."""
        keys = [key for key, ident in self.idents.items() if ident == alert.ident]
        drop = next(
            (
                self.drops[(k, destination.name)]
                for k in keys
                if (k, destination.name) in self.drops
            ),
            None,
        )
        if drop is None:
            return None
        if alert.ident[0] == "threshold":
            end = alert.span.end_known_at(drop.at)
            if drop.at < alert.span.over_at and (end is None or drop.at < end - MINUTE):
                return None  # its window still ran: its end had been moved later
        else:
            after = alert.span.next
            end = after.end_known_at(drop.at) if after is not None else None
            if (end is None or drop.at < end - MINUTE) and drop.at - alert.observed < DAY:
                return None  # "fresh again" was still news
        since = alert.observed - timedelta(hours=1)
        faults = [e for e in destination.faults if e.start <= drop.at and e.end >= since]
        crashes = [at for at in destination.crashed_at if since <= at <= drop.at]
        if not faults and not crashes:
            return None
        said = [f"{e.kind} failure {_clock(e.start)} to {_clock(e.end)}" for e in faults]
        said += [f"crash {_clock(at)}" for at in crashes]
        return f"seen {_clock(alert.observed)}, dropped {_clock(drop.at)}; " + ", ".join(said)


def _judge_incidents(report: Report, week: Week) -> None:
    """The incidents ("cannot read usage", "readable again"): once each, when the rules say.

    Opened by: a login expired for a day (counted from its expiry); a rejected token (at
    once); an upstream failure that lasts (a failed request 15 minutes or more after the
    first of the failed requests since the last good answer, with no good answer in
    between; a time with the login expired is rest, not failure). Open by then at the
    latest, closed by the first good answer after it, once. Never opened by a login renewed
    within a day of expiring."""
    requests: dict[str, list[Request]] = defaultdict(list)
    for request in week.requests:
        if request.account is not None:
            requests[request.account].append(request)
    accepted = {(a.account, a.at) for a in week.served if a.invalid is not None and a.accepted}

    def is_good(request: Request) -> bool:
        return request.outcome == "ok" or (request.account, request.at) in accepted

    decided = sorted(
        (d for d in week.decisions.values() if d.message.kind.startswith("incident")),
        key=lambda d: d.at,
    )
    for account in sorted({d.message.account for d in decided} | set(week.expired)):
        mine = [d for d in decided if d.message.account == account]
        asked = requests[account]
        expired = week.expired.get(account, [])
        open_since: datetime | None = None
        for decision in mine:
            at = decision.at
            if decision.message.kind == "incident_started":
                if open_since is not None:
                    report.wrong_incidents.append(f"{decision.message.key}: another one is open")
                    report.incident_duplicates += 1
                cause = _cause(at, asked, expired, is_good)
                if cause == "a login expired less than a day":
                    report.expiry_incidents += 1
                elif cause.startswith("no fault"):
                    report.unexplained_incidents += 1
                if cause not in (
                    "a login expired for a day",
                    "a rejected token",
                    "a lasting failure",
                ):
                    report.wrong_incidents.append(
                        f"{decision.message.key} at {_clock(at)}: {cause}"
                    )
                open_since = at
                closing = next((r.at for r in asked if r.at > at and is_good(r)), None)
                ended = next(
                    (d for d in mine if d.at > at and d.message.kind == "incident_ended"), None
                )
                if closing is not None and (ended is None or ended.at != closing):
                    report.incidents_not_closed += 1
                    report.wrong_incidents.append(
                        f"{decision.message.key}: not closed at the good answer of "
                        f"{_clock(closing)}"
                    )
            else:
                if open_since is None:
                    report.wrong_incidents.append(f"{decision.message.key}: none was open")
                    report.incident_duplicates += 1
                open_since = None
        for since, renewed in expired:
            if (renewed or week.until) - since <= EXPIRED_FOR + DECIDED_WITHIN:
                continue
            report.long_expiries += 1
            due = since + EXPIRED_FOR
            opened = [
                d
                for d in mine
                if d.message.kind == "incident_started" and due <= d.at <= due + DECIDED_WITHIN
            ]
            was_open = _open_at(mine, since)
            if opened or was_open:
                report.long_expiry_alerts += 1
            else:
                report.wrong_incidents.append(
                    f"{account}: its login expired {_clock(since)} and stayed so past "
                    f'{_clock(due)}, but no "cannot read usage" came'
                )
            if renewed is not None and any(
                d.message.kind == "incident_ended" and d.at >= renewed for d in mine
            ):
                report.long_expiry_readable_again += 1
        for request in _due_incidents(asked, expired, is_good):
            if not _open_at(mine, request.at):
                report.incidents_not_opened += 1
                report.wrong_incidents.append(
                    f'{account}: no "cannot read usage" by {_clock(request.at)} ({request.outcome})'
                )
    _incident_deliveries(report, week, decided)


def _due_incidents(
    asked: Sequence[Request],
    expired: Sequence[tuple[datetime, datetime | None]],
    is_good: Any,
) -> list[Request]:
    """The failed requests by which an incident is due (open at the latest then): the
    first 401, or the first failure 15 minutes into a run of them; one per run."""
    renewals = sorted(r for _, r in expired if r is not None)
    due: list[Request] = []
    since: datetime | None = None
    told = False
    for request in asked:
        if is_good(request):
            since, told = None, False
            continue
        renewed = any(since is not None and since < r <= request.at for r in renewals)
        if since is None or renewed:
            since, told = request.at, False
        lasting = request.at - since >= LASTING or request.outcome.startswith("401")
        if lasting and not told:
            due.append(request)
            told = True
    return due


def _cause(
    at: datetime,
    asked: Sequence[Request],
    expired: Sequence[tuple[datetime, datetime | None]],
    is_good: Any,
) -> str:
    """Why the rules would open an incident at ``at``, or why they would not."""
    for since, renewed in expired:
        if since <= at and (renewed is None or at < renewed):
            if at - since >= EXPIRED_FOR:
                return "a login expired for a day"
            return "a login expired less than a day"
    before = [r for r in asked if r.at <= at]
    if not before or is_good(before[-1]):
        return "no fault: the last answer was good"
    last = before[-1]
    if last.outcome.startswith("401"):
        return "a rejected token"
    # The failed requests since the last good answer or the last renewal of the login.
    good = max((r.at for r in before if is_good(r)), default=None)
    renewed = max((r for _, r in expired if r is not None and r <= at), default=None)
    failing = [
        r for r in before if (good is None or r.at > good) and (renewed is None or r.at >= renewed)
    ]
    if failing and last.at - failing[0].at >= LASTING:
        return "a lasting failure"
    if renewed is not None and (good is None or renewed > good):
        return "a login expired less than a day"  # the time expired counted as failing
    return f"no fault: failing for {_duration(last.at - failing[0].at)} only"


def _open_at(decided: Sequence[Decision], at: datetime) -> bool:
    state = False
    for decision in decided:
        if decision.at > at:
            break
        state = decision.message.kind == "incident_started"
    return state


def _incident_deliveries(report: Report, week: Week, decided: Sequence[Decision]) -> None:
    for destination in week.destinations:
        copies = Counter(
            r.message.key for r in destination.received if r.message.kind.startswith("incident")
        )
        crash_window = Counter(m.key for m in destination.crashed_after_post)
        report.incidents += sum(copies.values())
        for key, count in copies.items():
            allowed = crash_window.get(key, 0)
            report.crash_window_duplicates += min(count - 1, allowed)
            report.incident_duplicates += max(count - 1 - allowed, 0)
        for decision in decided:
            if decision.message.key not in copies:
                report.incidents_missed += 1
                report.wrong_incidents.append(
                    f"{decision.message.key} never reached {destination.name}"
                )


def _clock(moment: datetime | None) -> str:
    if moment is None:
        return "never"
    return f"day {(moment - T0).days + 1} {moment:%H:%M}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.soak",
        description="A week of usage-bot in accelerated time, with faults and restarts.",
    )
    parser.add_argument("--days", type=float, default=7.0, help="simulated days (7)")
    parser.add_argument("--accounts", type=int, default=5, help="accounts (5)")
    parser.add_argument("--seed", type=int, default=1, help="random seed (1)")
    parser.add_argument(
        "--trouble", type=float, default=1.0, help="faults this many times as often (1)"
    )
    args = parser.parse_args(argv)
    report = asyncio.run(
        soak(days=args.days, accounts=args.accounts, seed=args.seed, trouble=args.trouble)
    )
    print("\n".join(report.lines()))
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
