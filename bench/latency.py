"""1. Command latency: signed ``/claude-usage`` requests through ``POST /slack/events``.

Slack's HTTP mode, so the time is the bot's own: from the request leaving this process to
the whole HTTP response (the acknowledgement carrying the report) being read back.

*N concurrent users* means bursts of N requests sent at once, each burst once the last
one is answered: the last of a burst waits for the N - 1 before it. Warm: the account's
cache is fresh (the default 180 s poll, so the 30 s spacing; each level runs within one
fresh 30 s and is checked to have caused no upstream request). Cold: each burst is the
first request after the cache went stale, so it waits for one upstream request (~300 ms);
see :class:`ColdPacer` for how, with ``USAGE_BOT_POLL_SECONDS=2``, the bursts and not the
scheduler find the cache stale (checked: each burst's one upstream request arrives after
the burst was sent).
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from bench._bot import BotProcess
from bench._fakes import (
    BOT_TOKEN,
    SIGNING_SECRET,
    TimedSlack,
    TimedUpstream,
    slash_command,
    until,
    write_logins,
)
from bench._report import Row, Section, ms, percentile

EVENTS_PATH = "/slack/events"
WARM_SPACING = 30.0  # the default poll (180 s) leaves the spacing at 30 s
WARM_LEVEL_BUDGET = 15.0  # seconds a warm level may take, at most
COLD_POLL = 2  # USAGE_BOT_POLL_SECONDS for the cold runs: the spacing is 2 s too
# Moves the account's fetches 0.6 s past the scheduler's polls, which then find the cache
# fresh (a poll waits for a fetch due in under a quarter of the interval, 0.5 s here).
COLD_RETRY_AFTER = 2.6
COLD_SCHEDULER_REACH = 0.65  # the 0.5 s a scheduled poll waits, and a margin
RATE_LIMITED = b'{"type":"error","error":{"type":"rate_limit_error","message":"Rate limited"}}'
WARM_P99_TARGET = 0.050
SLACK_DEADLINE = 3.0
LEVELS = (1, 10, 100)


@dataclass(frozen=True, slots=True)
class Answer:
    """One command as the user saw it: how long, the HTTP status, and what it said."""

    seconds: float
    status: int
    report: bool  # the ack carried the report itself (not "fetching")


@dataclass(frozen=True, slots=True)
class Plan:
    """How many bursts of each size: ``{users: bursts}``."""

    warm_bursts: dict[int, int]
    cold_bursts: dict[int, int]


FULL = Plan(warm_bursts={1: 300, 10: 100, 100: 20}, cold_bursts={1: 15, 10: 10, 100: 10})
SHORT = Plan(warm_bursts={1: 20, 10: 3, 100: 2}, cold_bursts={1: 1, 10: 1, 100: 1})


async def command(
    session: aiohttp.ClientSession, url: str, slack: TimedSlack, user: int, *, text: str = ""
) -> Answer:
    body, headers = slash_command(slack, user=user, text=text)
    started = time.perf_counter()
    async with session.post(url, data=body, headers=headers) as response:
        raw = await response.read()
    seconds = time.perf_counter() - started
    report = False
    if response.status == 200 and raw:
        shown = json.loads(raw).get("text", "")
        report = isinstance(shown, str) and shown.startswith("Claude usage")
    return Answer(seconds, response.status, report)


async def burst(
    session: aiohttp.ClientSession, url: str, slack: TimedSlack, users: int
) -> list[Answer]:
    return list(await asyncio.gather(*(command(session, url, slack, u) for u in range(users))))


def settings(slack: TimedSlack, upstream: TimedUpstream, claude_dir: Path) -> dict[str, str]:
    return {
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_API_BASE_URL": slack.api_url,
        "USAGE_BOT_API_BASE_URL": upstream.url,
        "CLAUDE_CONFIG_DIR": str(claude_dir),
    }


def summary(answers: list[Answer]) -> str:
    seconds = [a.seconds for a in answers]
    return " / ".join(ms(percentile(seconds, p)) for p in (50, 95, 99)) + " ms"


async def run(workdir: Path, *, short: bool) -> Section:
    plan = SHORT if short else FULL
    section = Section(
        "1. command latency",
        "Slack HTTP mode, signed requests to `POST /slack/events` of `usage-bot run`, one "
        "account, upstream latency 300 ms; N users = bursts of N requests sent at once; "
        "p50 / p95 / p99 from sending to the whole response read; bot CPU from "
        "/proc/<pid>/stat over the level. Warm: default poll "
        "(spacing 30 s), measured right after a fetch, no upstream request during it. "
        f"Cold: `USAGE_BOT_POLL_SECONDS={COLD_POLL}` (spacing {COLD_POLL} s); one scheduled "
        f"poll answered 429 with `retry-after: {COLD_RETRY_AFTER}` moves the account's "
        "fetches between the scheduler's polls, then each burst is sent as the spacing runs "
        "out: the first requests after the cache went stale (its one upstream request is "
        "checked to come after it).",
    )
    async with TimedUpstream() as upstream, TimedSlack() as slack:
        claude = write_logins(workdir / "claude", ["default"])["default"]
        env = settings(slack, upstream, claude)
        connector = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(connector=connector) as session:
            async with BotProcess(env, workdir=workdir / "warm", name="warm") as bot:
                await _warm(section, bot, session, slack, upstream, plan)
            cold_env = {**env, "USAGE_BOT_POLL_SECONDS": str(COLD_POLL)}
            launched = time.monotonic()
            async with BotProcess(cold_env, workdir=workdir / "cold", name="cold") as bot:
                if not await until(lambda: bool(upstream.since(launched)), timeout=10):
                    raise RuntimeError("the cold bot's scheduler never polled")
                pacer = ColdPacer(upstream, grid=upstream.since(launched)[0].at)
                await _cold(section, bot.url + EVENTS_PATH, session, slack, pacer, plan)
    return section


async def _warm(
    section: Section,
    bot: BotProcess,
    session: aiohttp.ClientSession,
    slack: TimedSlack,
    upstream: TimedUpstream,
    plan: Plan,
) -> None:
    url = bot.url + EVENTS_PATH
    for users in LEVELS:
        # Every level runs within one fresh 30 s: when too little of it is left, the level
        # waits for the cache to go stale and starts with the fetch.
        if time.monotonic() - upstream.last() > WARM_SPACING - WARM_LEVEL_BUDGET:
            await asyncio.sleep(max(upstream.last() + WARM_SPACING + 0.05 - time.monotonic(), 0))
        await burst(session, url, slack, users)  # opens the connections (and any fetch)
        await asyncio.sleep(0.05)
        started, cpu = time.monotonic(), bot.cpu_seconds()
        answers: list[Answer] = []
        for _ in range(plan.warm_bursts[users]):
            answers.extend(await burst(session, url, slack, users))
        cpu = bot.cpu_seconds() - cpu
        fetched = len(upstream.since(started))
        bad = sum(1 for a in answers if a.status != 200 or not a.report)
        met = None
        target = ""
        if users == max(LEVELS):
            target = f"p99 < {ms(WARM_P99_TARGET)} ms"
            met = percentile([a.seconds for a in answers], 99) < WARM_P99_TARGET
        note = f"; bot CPU {ms(cpu / len(answers))} ms per command"
        note += f" ({bad} not answered with the report)" if bad else ""
        note += f" ({fetched} upstream requests: not all warm)" if fetched else ""
        section.rows.append(
            Row(
                f"warm, {users} user(s), {len(answers)} requests",
                summary(answers) + note,
                target,
                met if not (bad or fetched) else False,
            )
        )


async def _cold(
    section: Section,
    url: str,
    session: aiohttp.ClientSession,
    slack: TimedSlack,
    pacer: ColdPacer,
    plan: Plan,
) -> None:
    await burst(session, url, slack, max(LEVELS))  # opens the connections
    for users in LEVELS:
        answers: list[Answer] = []
        unproven = 0
        for _ in range(plan.cold_bursts[users]):
            await asyncio.sleep(max(await pacer.next_moment() - time.monotonic(), 0.0))
            sent = time.monotonic()
            answers.extend(await burst(session, url, slack, users))
            if len(pacer.upstream.since(sent)) != 1:
                unproven += 1
            pacer.fetched()
        worst = max(a.seconds for a in answers)
        bad = sum(1 for a in answers if a.status != 200)
        notice = sum(1 for a in answers if a.status == 200 and not a.report)
        note = f"; max {ms(worst)} ms"
        note += f"; {notice} answered 'fetching'" if notice else ""
        note += f"; {bad} failed" if bad else ""
        note += f"; {unproven} bursts not proven cold" if unproven else ""
        section.rows.append(
            Row(
                f"cold, {users} user(s), {len(answers)} requests",
                summary(answers) + note,
                f"max < {SLACK_DEADLINE:.0f} s",
                worst < SLACK_DEADLINE and not bad,
            )
        )


class ColdPacer:
    """When to send a burst so that it is the first request after the cache went stale.

    With a poll interval of 2 s the spacing is 2 s too, and the scheduler refreshes the
    cache the moment it goes stale. One of its polls answered 429 with ``retry-after``
    moves the account's next fetch to between two scheduled polls; from there a burst sent
    as the spacing runs out makes the fetch, and the scheduler's polls find the cache
    fresh. Each burst starts its fetch a little later than it was sent (by more, the more
    requests it holds), so the fetches creep towards the scheduler's polls; before they
    come within its reach (a poll waits for a fetch due in under 0.5 s), the pacer lets a
    poll fetch and answers it 429 again.
    """

    def __init__(self, upstream: TimedUpstream, *, grid: float) -> None:
        self.upstream = upstream
        self._grid = grid  # when the upstream saw the scheduler's first poll, at start
        self._ours: float | None = None  # when the upstream saw our last burst's request

    async def next_moment(self) -> float:
        upstream = self.upstream
        if self._ours is not None and upstream.last() == self._ours:
            moment = self._ours + COLD_POLL + 0.005
            if (moment - self._grid) % COLD_POLL < COLD_POLL - COLD_SCHEDULER_REACH:
                return moment
        seen = upstream.last()
        upstream.fail(
            status=429,
            body=RATE_LIMITED,
            headers={"retry-after": str(COLD_RETRY_AFTER)},
        )
        if not await until(lambda: upstream.last() > seen, timeout=3 * COLD_POLL):
            raise RuntimeError("the scheduler did not poll the upstream")
        return upstream.last() + COLD_RETRY_AFTER + 0.005

    def fetched(self) -> None:
        self._ours = self.upstream.last()
