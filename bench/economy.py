"""2. Upstream economy: 100 users typing ``/claude-usage`` at random, plus the scheduler,
against the real bot, in compressed time; and what the naive design would have asked.

The bot's spacing is 30 s, or the poll interval when that is shorter, so with
``USAGE_BOT_POLL_SECONDS=3`` one real second stands for ten: a minute of real time is ten
minutes at the 30 s spacing. (The scheduler then polls every spacing, not every 180 s as
by default: a harder load.) Each user types at random times (a Poisson process, once a
simulated minute on average) a command for every account, for one account, or ``share``.
The naive design asks the upstream once per account a command shows, and once per
account per scheduled poll.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from collections import Counter
from pathlib import Path

import aiohttp

from bench._bot import BotProcess
from bench._fakes import TimedSlack, TimedUpstream, accounts_variable, token_for, write_logins
from bench._report import Row, Section, ms, percentile
from bench.latency import EVENTS_PATH, Answer, command, settings

ACCOUNTS = ("alice", "bob", "carol")
USERS = 100
SPACING = 30.0  # what the bot keeps between two requests for one account, in its real life
COMMANDS_PER_USER_PER_MINUTE = 1.0  # simulated time
SEED = 8  # the same load every run
# The bot spaces requests from when it starts one; the upstream sees each a little later
# (credentials read, connection, a busy loop): gaps seen there may be this much shorter.
JITTER = 0.1


async def run(workdir: Path, *, short: bool) -> Section:
    poll = 1 if short else 3
    real_seconds = 3.0 if short else 60.0
    scale = SPACING / poll  # simulated seconds per real second
    simulated_minutes = real_seconds * scale / 60
    section = Section(
        "2. upstream economy",
        f"`usage-bot run` in Slack HTTP mode with {len(ACCOUNTS)} accounts, upstream latency "
        f"300 ms, `USAGE_BOT_POLL_SECONDS={poll}`: the spacing is {poll} s, so time runs "
        f"{scale:.0f}x: {real_seconds:.0f} s real = {simulated_minutes:.1f} simulated minutes "
        "at the 30 s spacing, with the scheduler polling every spacing (by default every "
        f"180 s). {USERS} users type the command at random (Poisson, once per simulated "
        "minute each on average): 40 % for every account, 10 % `share`, 50 % for one account. "
        "Naive: one upstream request per account shown per command, and per scheduled poll. "
        "A gap between two requests for one account counts as kept when it is at least the "
        f"spacing less {JITTER:.1f} s: the bot counts from when it starts a request, the "
        "upstream sees it a little later.",
    )
    async with TimedUpstream() as upstream, TimedSlack() as slack:
        dirs = write_logins(workdir / "claude", list(ACCOUNTS))
        env = settings(slack, upstream, workdir / "claude" / ACCOUNTS[0])
        env.pop("CLAUDE_CONFIG_DIR")
        env["USAGE_BOT_ACCOUNTS"] = accounts_variable(dirs)
        env["USAGE_BOT_POLL_SECONDS"] = str(poll)
        connector = aiohttp.TCPConnector(limit=0)
        async with (
            aiohttp.ClientSession(connector=connector) as session,
            BotProcess(env, workdir=workdir, name="economy") as bot,
        ):
            url = bot.url + EVENTS_PATH
            load = _load(real_seconds, poll)
            started = time.monotonic()
            answers, shown = await _type(session, url, slack, load, started)
            ended = time.monotonic()
    asked = Counter(a.token for a in upstream.arrivals if started <= a.at < ended)
    per_account = [asked[token_for(name)] for name in ACCOUNTS]
    shortest = min(_shortest_gaps(upstream, started, ended))
    polls = int(real_seconds / poll)
    naive = [shown[name] + polls for name in ACCOUNTS]
    allowed = int(real_seconds / poll) + 1  # one per spacing, counting both ends
    section.rows.append(
        Row(
            f"upstream requests per account ({len(answers)} commands + scheduler)",
            ", ".join(f"{n} {c}" for n, c in zip(ACCOUNTS, per_account, strict=True))
            + f" in {simulated_minutes:.1f} min; shortest gap {shortest:.3f} s real of a "
            f"{poll} s spacing",
            f"≤ {allowed} each (1 per 30 s)",
            max(per_account) <= allowed and shortest >= poll - JITTER,
        )
    )
    ratio = sum(naive) / max(sum(per_account), 1)
    section.rows.append(
        Row(
            "naive design, same load",
            ", ".join(f"{n} {c}" for n, c in zip(ACCOUNTS, naive, strict=True))
            + f": {ratio:.0f}x as many",
        )
    )
    seconds = [a.seconds for a in answers]
    failed = sum(1 for a in answers if a.status != 200)
    section.rows.append(
        Row(
            "command latency under this load, p50 / p95 / p99",
            " / ".join(ms(percentile(seconds, p)) for p in (50, 95, 99))
            + " ms"
            + (f"; {failed} failed" if failed else ""),
        )
    )
    return section


def _load(real_seconds: float, poll: int) -> list[tuple[float, int, str]]:
    """Every command of the run: (seconds from the start, user, text), in time order."""
    rng = random.Random(SEED)  # noqa: S311 - a load to replay, not a secret
    minute = 60 * poll / SPACING  # a simulated minute, in real seconds
    rate = COMMANDS_PER_USER_PER_MINUTE / minute
    load = []
    for user in range(USERS):
        moment = rng.expovariate(rate)
        while moment < real_seconds:
            pick = rng.random()
            if pick < 0.4:
                text = ""
            elif pick < 0.5:
                text = "share"
            else:
                text = rng.choice(ACCOUNTS)
            load.append((moment, user, text))
            moment += rng.expovariate(rate)
    return sorted(load)


async def _type(
    session: aiohttp.ClientSession,
    url: str,
    slack: TimedSlack,
    load: list[tuple[float, int, str]],
    started: float,
) -> tuple[list[Answer], Counter[str]]:
    tasks = []
    shown: Counter[str] = Counter()
    for moment, user, text in load:
        await asyncio.sleep(max(started + moment - time.monotonic(), 0.0))
        tasks.append(asyncio.create_task(command(session, url, slack, user, text=text)))
        for name in ACCOUNTS if text in ("", "share") else (text,):
            shown[name] += 1
    return list(await asyncio.gather(*tasks)), shown


def _shortest_gaps(upstream: TimedUpstream, started: float, ended: float) -> list[float]:
    """Per account, the shortest time between two upstream requests in (or into) the run."""
    gaps = []
    for name in ACCOUNTS:
        times = [a.at for a in upstream.arrivals if a.token == token_for(name) and a.at < ended]
        within = [
            later - earlier for earlier, later in itertools.pairwise(times) if later >= started
        ]
        gaps.append(min(within, default=float("inf")))
    return gaps
