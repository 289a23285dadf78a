"""The soak: a week of usage for several accounts in accelerated time, with faults.

    python -m tests.soak --days 7 --accounts 5 --seed 1

The real alert engine, the real scheduler logic (:meth:`AlertScheduler.poll_once` and
:meth:`AlertScheduler.deliver_pending`), the real SQLite state store, usage service,
client and credential loader run on a :class:`FakeClock`, one minute per step, polling
every 180 s as the bot does. Around them, everything is simulated:

- **usage**: per account a 5-hour session window, a weekly window and a weekly Opus cap
  (given only in the newer ``limits`` list), each climbing along a random curve, so that
  windows cross 80 % and 95 % (or not) and reset; ``resets_at`` jitters by fractions of a
  second, as the real upstream's does;
- **upstream faults** (``httpx.MockTransport``): 5xx, 429 with every kind of
  ``retry-after``, timeouts, bodies that are not JSON, a revoked token (401);
- **the login**: it expires for a while, and Claude Code rotates the token (the old one
  is refused from then on);
- **alert destinations** (two, in memory): failures that are retryable (with or without
  a ``retry_after``) and failures that are not, for minutes at a time;
- **the process**: restarts (a new service, scheduler and store on the same file) and
  crashes in the middle of a delivery, between the claim and the post, or between the
  post and the confirm.

What should be announced is computed independently of the engine: from the answers the
upstream actually served (each tagged with the model's own window numbers), by the rules
of PRODUCT.md. Each announcement must reach each destination exactly once. Two
exceptions are counted apart, not hidden: a copy posted again after a crash between the
post and its confirm (the documented window: the post is out, the process died before it
could write that down), and an alert dropped because its window ended while its
destination was failing (PRODUCT.md: retried "until it succeeds or the window ends").
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
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from usage_bot._client import UsageClient
from usage_bot._clock import FakeClock
from usage_bot._config import AccountSpec, AlertConfig, Settings, UpstreamConfig
from usage_bot._credentials import CredentialLoader
from usage_bot._exceptions import DeliveryError
from usage_bot._notify import AlertMessage
from usage_bot._scheduler import AlertScheduler
from usage_bot._service import UsageService
from usage_bot.state.sqlite import SQLiteStore

T0 = datetime(2026, 7, 20, 0, 0, tzinfo=UTC)
STEP = 60.0
POLL_SECONDS = 180
THRESHOLDS = (80.0, 95.0)
FIVE_HOURS = timedelta(hours=5)
WEEK = timedelta(days=7)
DESTINATIONS = ("slack", "discord")
# The longest a delivery can be held up by the destination faults drawn below (a failure
# that is not retryable waits an hour; a retryable one outlasts its fault by at most the
# back-off cap), plus the lease of a crashed claim and a step: an alert dropped because its
# window ended is allowed only when its window ended within this of its crossing.
MOST_DELAY = timedelta(minutes=70)


class Crash(BaseException):
    """The process dies here: nothing after this point runs, nothing is cleaned up."""


# -- the usage model -----------------------------------------------------------------------


@dataclass(frozen=True)
class Curve:
    """Usage over one window: ``base`` at its start, rising to ``final`` along three
    segments of random steepness (a flat one is someone not working)."""

    start: datetime
    end: datetime
    base: float
    final: float
    knots: tuple[float, ...]  # cumulative share of the rise at 1/3, 2/3, 1

    def percent(self, at: datetime) -> float:
        share = (at - self.start) / (self.end - self.start)
        third = min(int(share * 3), 2)
        before = self.knots[third - 1] if third else 0.0
        done = before + (self.knots[third] - before) * (share * 3 - third)
        return min(100.0, self.base + (self.final - self.base) * done)

    def crossing(self, level: float) -> datetime | None:
        """When usage first reaches ``level`` in this window, if it does."""
        if self.base >= level:
            return self.start
        if min(100.0, self.final) < level:
            return None
        need = (level - self.base) / (self.final - self.base)
        before = 0.0
        for third, knot in enumerate(self.knots):
            if knot >= need:
                part = (need - before) / (knot - before) if knot > before else 0.0
                return self.start + (self.end - self.start) * ((third + part) / 3)
            before = knot
        return None


class Limit:
    """One limit of one account: its windows, back to back, each with its own curve."""

    def __init__(
        self, limit_id: str, length: timedelta, first_end: datetime, rng: random.Random
    ) -> None:
        self.id = limit_id
        self.length = length
        self._rng = rng
        self.curves: list[Curve] = []
        self._ends: list[datetime] = []
        self._add(first_end)

    def window(self, at: datetime) -> int:
        while self._ends[-1] <= at:
            self._add(self._ends[-1] + self.length)
        return bisect.bisect_right(self._ends, at)

    def index_of(self, resets_at: datetime) -> int:
        """The window a (jittered) ``resets_at`` names."""
        best = min(range(len(self._ends)), key=lambda i: abs(self._ends[i] - resets_at))
        assert abs(self._ends[best] - resets_at) < timedelta(minutes=1), resets_at
        return best

    def _add(self, end: datetime) -> None:
        rng = self._rng
        weights = [rng.choice([0.0, rng.random(), rng.random() * 3]) for _ in range(3)]
        total = sum(weights) or 1.0
        knots = (weights[0] / total, (weights[0] + weights[1]) / total, 1.0)
        low = 25.0 if self.length == FIVE_HOURS else 15.0
        curve = Curve(end - self.length, end, rng.uniform(0, 15), rng.uniform(low, 118), knots)
        self.curves.append(curve)
        self._ends.append(end)


class Account:
    """One Claude subscription: its limits, its login on disk and its current token."""

    def __init__(self, name: str, folder: Path, rng: random.Random) -> None:
        self.name = name
        self.folder = folder
        self.limits = {
            "five_hour": Limit("five_hour", FIVE_HOURS, T0 + FIVE_HOURS * rng.random(), rng),
            "seven_day": Limit("seven_day", WEEK, T0 + WEEK * rng.random(), rng),
            "seven_day_opus": Limit("seven_day_opus", WEEK, T0 + WEEK * rng.random(), rng),
        }
        self.token = ""
        self.rotations = 0

    def write_login(self, *, expires_at: datetime) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        login = {
            "claudeAiOauth": {
                "accessToken": self.token,
                "refreshToken": f"soak-refresh-{self.name}-{self.rotations}",
                "expiresAt": int(expires_at.timestamp() * 1000),
                "scopes": ["user:inference", "user:profile"],
                "subscriptionType": "max",
            }
        }
        (self.folder / ".credentials.json").write_text(json.dumps(login), encoding="utf-8")

    def rotate(self, now: datetime) -> None:
        """Claude Code renews the login: a new token; the old one is refused from now on."""
        self.rotations += 1
        self.token = f"soak-token-{self.name}-{self.rotations}"
        self.write_login(expires_at=now + timedelta(days=30))


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
    kind = rng.choice(["5xx", "5xx", "429", "429", "timeout", "not-json", "401"])
    if kind == "429":
        after = rng.choice([None, "0", "60", "600", "3600", "date"])
        return kind, rng.uniform(2, 90), after
    if kind == "5xx":
        return kind, rng.uniform(2, 60), rng.choice([500, 502, 503])
    return kind, rng.uniform(2, 60), None


def _login_fault(rng: random.Random) -> tuple[str, float, Any]:
    if rng.random() < 0.6:
        return "rotate", 0, None
    return "expired", rng.uniform(10, 120), None


def _destination_fault(rng: random.Random) -> tuple[str, float, Any]:
    if rng.random() < 0.6:
        return "retryable", rng.uniform(5, 30), rng.choice([None, 30.0, 120.0])
    return "not-retryable", rng.uniform(5, 45), None


# -- the fakes around the real pieces ------------------------------------------------------


@dataclass
class Served:
    """One answer the upstream gave: per limit, the model's window number and the percent."""

    account: str
    at: datetime
    limits: dict[str, tuple[int, float]]


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
        self.failed = Counter[str]()

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        now = self.clock.now()
        token = request.headers["authorization"].removeprefix("Bearer ")
        account = next((a for a in self.accounts.values() if a.token == token), None)
        if account is None:
            self.failed["401 (a token no longer valid)"] += 1
            return httpx.Response(401, json=_error("authentication_error", "Invalid token"))
        fault = next((e for e in self.faults[account.name] if e.covers(now)), None)
        if fault is not None:
            self.failed[fault.kind] += 1
            return self._fault(fault, now)
        payload, seen = self._answer(account, now)
        self.served.append(Served(account.name, now, seen))
        return httpx.Response(200, json=payload)

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
            body = _error("rate_limit_error", "Rate limited")
            return httpx.Response(429, json=body, headers=headers)
        if fault.kind == "timeout":
            raise httpx.ReadTimeout("timed out")
        if fault.kind == "not-json":
            return httpx.Response(200, text="<<upstream hiccup>>")
        return httpx.Response(401, json=_error("authentication_error", "Token revoked"))

    def _answer(
        self, account: Account, now: datetime
    ) -> tuple[dict[str, Any], dict[str, tuple[int, float]]]:
        seen: dict[str, tuple[int, float]] = {}
        resets: dict[str, str] = {}
        for limit in account.limits.values():
            k = limit.window(now)
            curve = limit.curves[k]
            # The list gives whole percents, the flat windows tenths; both round down.
            exact = curve.percent(now)
            percent = float(math.floor(exact)) if limit.id == "seven_day_opus" else _tenths(exact)
            seen[limit.id] = (k, percent)
            jitter = timedelta(microseconds=self.rng.randint(-400_000, 400_000))
            resets[limit.id] = (curve.end + jitter).isoformat()
        payload = {
            "five_hour": {
                "utilization": seen["five_hour"][1],
                "resets_at": resets["five_hour"],
            },
            "seven_day": {
                "utilization": seen["seven_day"][1],
                "resets_at": resets["seven_day"],
            },
            "seven_day_opus": None,
            "limits": [
                {
                    "kind": "weekly_scoped",
                    "group": "default",
                    "percent": int(seen["seven_day_opus"][1]),
                    "severity": "normal",
                    "resets_at": resets["seven_day_opus"],
                    "scope": {"model": {"id": "claude-opus", "display_name": "Opus"}},
                    "is_active": True,
                }
            ],
            "extra_usage": {"is_enabled": False, "currency": "USD"},
        }
        return payload, seen


def _tenths(value: float) -> float:
    return math.floor(value * 10) / 10


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
        self.scheduler = AlertScheduler(
            settings=settings,
            service=self.service,
            store=self.store,
            notifiers=self.destinations,
            clock=self.clock,
            stop_grace=0.1,
        )
        return self

    def polls_now(self) -> bool:
        """APScheduler's interval job: at start, then every POLL_SECONDS."""
        return (self.clock.now() - self.started).total_seconds() % POLL_SECONDS < STEP / 2

    async def stop(self) -> None:
        await self.scheduler.stop()
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
    expected: int = 0
    delivered: int = 0
    duplicated: int = 0
    unasked: int = 0
    crash_window_duplicates: int = 0
    missed: int = 0
    dropped_as_allowed: int = 0
    thresholds: int = 0
    resets: int = 0
    incidents: int = 0
    incident_duplicates: int = 0
    unexplained_incidents: int = 0
    unexpected_errors: list[str] = field(default_factory=list)
    worst_delay: timedelta = timedelta(0)
    worst_alert: str = ""
    median_delay: timedelta = timedelta(0)
    worst_after_seen: timedelta = timedelta(0)
    worst_after_seen_alert: str = ""
    polls: int = 0
    upstream_failures: Counter[str] = field(default_factory=Counter)
    login_faults: Counter[str] = field(default_factory=Counter)
    destination_failures: Counter[str] = field(default_factory=Counter)
    restarts: int = 0
    crashes: Counter[str] = field(default_factory=Counter)
    missed_alerts: list[str] = field(default_factory=list)
    dropped_alerts: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not (
            self.duplicated
            or self.unasked
            or self.missed
            or self.incident_duplicates
            or self.unexplained_incidents
            or self.unexpected_errors
        )

    def lines(self) -> list[str]:
        destinations = len(DESTINATIONS)
        announcements = self.expected // destinations
        lines = [
            f"usage-bot soak: {self.days:g} simulated days, {self.accounts} accounts, seed "
            f"{self.seed}; {destinations} destinations, polls every {POLL_SECONDS} s",
            f"  polls {self.polls}; upstream failures {_counts(self.upstream_failures)}",
            f"  login faults {_counts(self.login_faults)}; destination failures "
            f"{_counts(self.destination_failures)}",
            f"  restarts {self.restarts}; crashes {_counts(self.crashes)}",
            f"alerts expected:   {self.expected} ({announcements} announcements x "
            f"{destinations} destinations: {self.thresholds} threshold, {self.resets} reset)",
            f"delivered:         {self.delivered}",
            f"duplicated:        {self.duplicated} (and {self.crash_window_duplicates} posted "
            "again after a crash between post and confirm, counted apart; incidents included)",
            f"missed:            {self.missed}",
            f"not called for:    {self.unasked} (announced, but the rules call for no such alert)",
            f"dropped, allowed:  {self.dropped_as_allowed} (window ended while its destination "
            "was failing)",
            f"incident alerts:   {self.incidents} delivered, {self.incident_duplicates} "
            f"duplicated, {self.unexplained_incidents} without a fault to explain them",
            f"worst delay:       {_duration(self.worst_delay)} from the crossing (or reset) to "
            f"the post ({self.worst_alert}); median {_duration(self.median_delay)}",
            f"                   {_duration(self.worst_after_seen)} from the first answer that "
            f"showed it ({self.worst_after_seen_alert})",
        ]
        lines.extend(f"  missed: {alert}" for alert in self.missed_alerts[:10])
        lines.extend(f"  dropped: {alert}" for alert in self.dropped_alerts[:10])
        lines.extend(f"  unexpected error: {error}" for error in self.unexpected_errors[:10])
        lines.append(f"{'OK' if self.ok else 'FAILED'} in {self.seconds:.1f} s")
        return lines


def _counts(counter: Counter[str]) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(counter.items())) or "none"


def _duration(delta: timedelta) -> str:
    minutes = round(delta.total_seconds() / 60)
    return f"{minutes // 60} h {minutes % 60} min" if minutes >= 60 else f"{minutes} min"


class _Errors(logging.Handler):
    """Collects the ERROR lines no injected fault explains."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if not message.startswith("alerts cannot reach "):  # a not-retryable failure
            self.lines.append(f"{record.name}: {message}")


async def soak(*, days: float, accounts: int, seed: int, state_dir: Path | None = None) -> Report:
    """Run the soak; the report says what was expected, delivered, duplicated, missed."""
    started = time.monotonic()
    folder = Path(tempfile.mkdtemp(prefix="usage-bot-soak-", dir=state_dir or _fast_dir()))
    errors = _Errors()
    logging.getLogger("usage_bot").addHandler(errors)
    try:
        report = await _soak(folder, days=days, accounts=accounts, seed=seed, errors=errors)
    finally:
        logging.getLogger("usage_bot").removeHandler(errors)
        shutil.rmtree(folder, ignore_errors=True)
    report.seconds = time.monotonic() - started
    return report


def _fast_dir() -> str | None:
    # The soak is about the logic, not the disk: keep its fsyncs in memory when possible.
    shm = Path("/dev/shm")
    return str(shm) if shm.is_dir() else None


async def _soak(folder: Path, *, days: float, accounts: int, seed: int, errors: _Errors) -> Report:
    rng = random.Random(seed)  # noqa: S311 - a simulation, not secrets
    until = T0 + timedelta(days=days)
    clock = FakeClock(T0)
    report = Report(days=days, accounts=accounts, seed=seed)

    people = {
        f"team{i}": Account(f"team{i}", folder / f"team{i}", random.Random(rng.random()))  # noqa: S311
        for i in range(1, accounts + 1)
    }
    for account in people.values():
        account.rotate(T0)
    upstream_faults = {
        name: episodes(
            rng, until, every=timedelta(hours=6), gap=timedelta(minutes=30), draw=_upstream_fault
        )
        for name in people
    }
    login_faults = {
        name: episodes(
            rng, until, every=timedelta(hours=10), gap=timedelta(minutes=30), draw=_login_fault
        )
        for name in people
    }
    destination_faults = {
        name: episodes(
            rng, until, every=timedelta(hours=10), gap=timedelta(hours=2), draw=_destination_fault
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
    restarts = _times(rng, until, every=timedelta(hours=8))
    crashes = _times(rng, until, every=timedelta(hours=12))
    login_due = sorted(
        ((e.start, name, e) for name, found in login_faults.items() for e in found),
        key=lambda item: item[0],
    )
    renew_due: list[tuple[datetime, str]] = []

    process = await Process(settings, clock, upstream, destinations).start()
    try:
        while clock.now() < until:
            now = clock.now()
            while login_due and login_due[0][0] <= now:
                _, name, fault = login_due.pop(0)
                account = people[name]
                report.login_faults[fault.kind] += 1
                if fault.kind == "rotate":
                    account.rotate(now)
                else:
                    account.write_login(expires_at=now - timedelta(minutes=1))
                    renew_due.append((fault.end, name))
            for due, name in list(renew_due):
                if due <= now:
                    renew_due.remove((due, name))
                    people[name].rotate(now)
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
                    await process.scheduler.poll_once(name)
                    report.polls += 1
            if restart_after_polls:  # recorded, not yet delivered
                await process.stop()
                process = await Process(settings, clock, upstream, destinations).start()
            try:
                await process.scheduler.deliver_pending()
            except Crash as crash:
                report.crashes[str(crash)] += 1
                await process.die()
                process = await Process(settings, clock, upstream, destinations).start()
            clock.advance(STEP)
        # Then quiet: no new faults start, and what is queued has time to go out.
        for destination in destinations:
            destination.faults = [e for e in destination.faults if e.start < until]
        for _ in range(round(2 * 3600 / STEP)):
            if not await process.store.pending():
                break
            await process.scheduler.deliver_pending()
            clock.advance(STEP)
    finally:
        await process.stop()

    report.upstream_failures = upstream.failed
    for destination in destinations:
        report.destination_failures.update(destination.failures)
    report.unexpected_errors = errors.lines
    stale = upstream.failed["401 (a token no longer valid)"]
    if stale:
        report.unexpected_errors.append(f"{stale} request(s) sent with a token already rotated")
    _judge(report, people, upstream, destinations, upstream_faults, login_faults)
    return report


def _times(rng: random.Random, until: datetime, *, every: timedelta) -> list[datetime]:
    found = []
    at = T0
    while True:
        at += timedelta(seconds=rng.expovariate(1 / every.total_seconds()))
        if at >= until:
            return found
        found.append(at)


# -- the independent judge -----------------------------------------------------------------


@dataclass(frozen=True)
class Expected:
    """An announcement the rules call for, computed from what the upstream served."""

    ident: tuple[str, ...]  # (kind, account, limit, window[, level])
    observed: datetime  # the first answer that showed it
    happened: datetime  # when the model crossed the level, or the window reset
    ends: datetime  # when its moment passes (its window's end)

    def __str__(self) -> str:
        return ":".join(self.ident)


def expected_announcements(
    people: dict[str, Account], served: Sequence[Served]
) -> dict[tuple[str, ...], Expected]:
    """PRODUCT.md's rules, applied to the answers as served, by the model's window numbers:
    one alert when the highest threshold crossed in a window rises; one reset announcement
    when a window that had an alert gives way to a later one."""
    expected: dict[tuple[str, ...], Expected] = {}
    current: dict[tuple[str, str], int] = {}
    level: defaultdict[tuple[str, str, int], float] = defaultdict(float)
    for answer in served:
        for limit_id, (k, percent) in answer.limits.items():
            model = people[answer.account].limits[limit_id]
            where = (answer.account, limit_id)
            before = current.get(where)
            if before is not None and k > before and level[(*where, before)] > 0:
                ident = ("reset", answer.account, limit_id, str(k))
                expected[ident] = Expected(
                    ident, answer.at, model.curves[before].end, model.curves[k].end
                )
            current[where] = k
            crossed = max((t for t in THRESHOLDS if percent >= t), default=0.0)
            if crossed > level[(*where, k)]:
                level[(*where, k)] = crossed
                ident = ("threshold", answer.account, limit_id, str(k), f"{crossed:g}")
                happened = model.curves[k].crossing(crossed) or answer.at
                expected[ident] = Expected(ident, answer.at, happened, model.curves[k].end)
    return expected


def _identify(people: dict[str, Account], message: AlertMessage) -> tuple[str, ...] | None:
    if message.kind not in ("threshold", "reset"):
        return None
    assert message.limit_id is not None
    assert message.resets_at is not None
    k = people[message.account].limits[message.limit_id].index_of(message.resets_at)
    if message.kind == "reset":
        return ("reset", message.account, message.limit_id, str(k))
    return ("threshold", message.account, message.limit_id, str(k), f"{message.threshold:g}")


def _judge(
    report: Report,
    people: dict[str, Account],
    upstream: Upstream,
    destinations: Sequence[Destination],
    upstream_faults: dict[str, list[Episode]],
    login_faults: dict[str, list[Episode]],
) -> None:
    expected = expected_announcements(people, upstream.served)
    report.thresholds = sum(1 for ident in expected if ident[0] == "threshold")
    report.resets = sum(1 for ident in expected if ident[0] == "reset")
    report.expected = len(expected) * len(destinations)
    delays: list[tuple[timedelta, str]] = []
    seen: list[tuple[timedelta, str]] = []
    for destination in destinations:
        copies: Counter[tuple[str, ...]] = Counter()
        first: dict[tuple[str, ...], datetime] = {}
        incidents: Counter[str] = Counter()
        for received in destination.received:
            ident = _identify(people, received.message)
            if ident is None:
                incidents[received.message.key] += 1
                if received.message.kind == "incident_started" and not _explained(
                    received, upstream_faults, login_faults
                ):
                    report.unexplained_incidents += 1
                continue
            copies[ident] += 1
            first.setdefault(ident, received.at)
        crash_window = Counter(
            _identify(people, message) or (message.key,)
            for message in destination.crashed_after_post
        )
        report.incidents += sum(incidents.values())
        for key, count in incidents.items():
            allowed = crash_window.get((key,), 0)
            report.crash_window_duplicates += min(count - 1, allowed)
            report.incident_duplicates += max(count - 1 - allowed, 0)
        for ident, count in copies.items():
            allowed = crash_window.get(ident, 0)
            report.crash_window_duplicates += min(count - 1, allowed)
            report.duplicated += max(count - 1 - allowed, 0)
            if ident not in expected:
                report.unasked += 1
        for ident, alert in expected.items():
            if ident in first:
                report.delivered += 1
                # The bot starts with the soak: a window already high then counts from there.
                happened = max(alert.happened, T0)
                delays.append((first[ident] - happened, f"{alert} to {destination.name}"))
                seen.append((first[ident] - alert.observed, f"{alert} to {destination.name}"))
            elif _allowed_to_drop(alert, destination):
                report.dropped_as_allowed += 1
                report.dropped_alerts.append(
                    f"{alert} to {destination.name}: seen {_clock(alert.observed)}, its window "
                    f"ended {_clock(alert.ends)}; {_failing(destination, alert)}"
                )
            else:
                report.missed += 1
                report.missed_alerts.append(f"{alert} to {destination.name}")
    if delays:
        report.worst_delay, report.worst_alert = max(delays)
        report.median_delay = statistics.median(delay for delay, _ in delays)
        report.worst_after_seen, report.worst_after_seen_alert = max(seen)


def _clock(moment: datetime) -> str:
    return f"day {(moment - T0).days + 1} {moment:%H:%M}"


def _failing(destination: Destination, alert: Expected) -> str:
    reach = alert.observed - timedelta(hours=1)
    faults = [e for e in destination.faults if e.start <= alert.ends and e.end >= reach]
    crashes = [at for at in destination.crashed_at if reach <= at <= alert.ends]
    said = [f"{e.kind} failure {_clock(e.start)} to {_clock(e.end)}" for e in faults]
    said += [f"crash {_clock(at)}" for at in crashes]
    return ", ".join(said)


def _allowed_to_drop(alert: Expected, destination: Destination) -> bool:
    """Dropped because its moment passed: fine only if its window ended soon after it was
    seen, while the destination was failing (or had just crashed)."""
    if alert.ends - alert.observed >= MOST_DELAY:
        return False
    reach = alert.observed - timedelta(hours=1)
    failing = any(e.start <= alert.ends and e.end >= reach for e in destination.faults)
    return failing or any(reach <= at <= alert.ends for at in destination.crashed_at)


def _explained(
    received: Received,
    upstream_faults: dict[str, list[Episode]],
    login_faults: dict[str, list[Episode]],
) -> bool:
    """An incident alert needs a fault of its account's that was under way shortly before."""
    account = received.message.account
    # The alert may have reached the destination up to MOST_DELAY after it was decided.
    since = received.at - timedelta(hours=3)
    faults = [*upstream_faults[account], *login_faults[account]]
    return any(e.kind != "rotate" and e.start <= received.at and e.end >= since for e in faults)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.soak",
        description="A week of usage-bot in accelerated time, with faults and restarts.",
    )
    parser.add_argument("--days", type=float, default=7.0, help="simulated days (7)")
    parser.add_argument("--accounts", type=int, default=5, help="accounts (5)")
    parser.add_argument("--seed", type=int, default=1, help="random seed (1)")
    args = parser.parse_args(argv)
    report = asyncio.run(soak(days=args.days, accounts=args.accounts, seed=args.seed))
    print("\n".join(report.lines()))
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
