"""3. Alert latency: from the upstream's usage crossing a threshold to the alert arriving
at the fake Slack (``chat.postMessage`` to ``SLACK_ALERT_CHANNEL``).

Each crossing is in a window of its own: the upstream reports 50 % of a new 5-hour
window, the bot is let see it, then after a random part of a poll interval the upstream
jumps to 85 % (the 80 % threshold) and the clock runs until the alert arrives. Reset
announcements are off (``USAGE_BOT_RESET_ANNOUNCE=never``), so every post is an alert.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import statistics
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench._bot import BotProcess
from bench._fakes import (
    ALERT_CHANNEL,
    UPSTREAM_LATENCY,
    TimedSlack,
    TimedUpstream,
    until,
    write_logins,
)
from bench._report import Row, Section, ms
from bench.latency import settings

POLL = 2
SEED = 3


def usage(percent: float, resets_at: datetime) -> dict[str, Any]:
    return {
        "five_hour": {"utilization": percent, "resets_at": resets_at.isoformat()},
        "seven_day": None,
    }


async def run(workdir: Path, *, short: bool) -> Section:
    crossings = 1 if short else 10
    section = Section(
        "3. alert latency",
        f"`usage-bot run` with `USAGE_BOT_POLL_SECONDS={POLL}`, Slack HTTP mode and "
        "`SLACK_ALERT_CHANNEL`, one account, upstream latency 300 ms. "
        f"{crossings} crossings of 80 %, each in a new window, at a random moment of the "
        "poll interval; timed from the upstream's answer changing to FakeSlack receiving "
        "`chat.postMessage`.",
    )
    rng = random.Random(SEED)  # noqa: S311 - when to cross, not a secret
    latencies: list[float] = []
    missing = 0
    async with TimedUpstream() as upstream, TimedSlack() as slack:
        claude = write_logins(workdir / "claude", ["default"])["default"]
        env = settings(slack, upstream, claude)
        env.update(
            USAGE_BOT_POLL_SECONDS=str(POLL),
            USAGE_BOT_RESET_ANNOUNCE="never",
            SLACK_ALERT_CHANNEL=ALERT_CHANNEL,
        )
        async with BotProcess(env, workdir=workdir, name="alerts"):
            started = time.monotonic()
            base = datetime.now(UTC) + timedelta(hours=4)
            for index in range(crossings):
                window = base + timedelta(minutes=10 * index)
                upstream.payload = usage(50.0, window)
                shown = time.monotonic()
                # Seen once the bot has had an answer computed after the change.
                await until(lambda: upstream.last() > shown, timeout=3 * POLL)  # noqa: B023
                await asyncio.sleep(UPSTREAM_LATENCY + 0.2 + rng.uniform(0, POLL))
                before = len(slack.posted_at)
                upstream.payload = usage(85.0, window)
                crossed = time.monotonic()
                arrived = await until(
                    lambda: len(slack.posted_at) > before,  # noqa: B023
                    timeout=3 * POLL + 2,
                )
                if arrived:
                    latencies.append(slack.posted_at[before] - crossed)
                else:
                    missing += 1
            ended = time.monotonic()
    fetches = [a.at for a in upstream.arrivals if started <= a.at <= ended]
    gaps = [b - a for a, b in itertools.pairwise(fetches)]
    target = POLL + 1.0
    worst = max(latencies, default=float("inf"))
    result = (
        f"median {ms(statistics.median(latencies))} ms, max {ms(worst)} ms"
        if latencies
        else "no alert arrived"
    )
    if missing:
        result += f"; {missing} of {crossings} never arrived"
    section.rows.append(
        Row(
            f"crossing to alert, {crossings} crossing(s), poll {POLL} s",
            result,
            f"≤ {target:.0f} s (poll + 1 s)",
            worst <= target and not missing,
        )
    )
    if gaps:
        section.rows.append(
            Row(
                "time between two upstream requests of the scheduler",
                f"median {statistics.median(gaps):.2f} s, max {max(gaps):.2f} s",
                f"{POLL} s (the poll interval)",
            )
        )
    return section
