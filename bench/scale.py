"""5. Scale: the bot's CPU per poll cycle with 100 accounts and three chat destinations.

The configuration of :mod:`bench.footprint`, polling every 2 s. CPU is the process's
user plus system time from /proc (every thread: SQLite works in a worker thread), over a
number of poll cycles once every account has been polled once. Then every account's
5-hour usage jumps past 80 % at once: a cycle that posts 100 alerts to each destination.
"""

from __future__ import annotations

import asyncio
import copy
import time
from pathlib import Path

from bench._fakes import until
from bench._report import Row, Section
from bench.footprint import ACCOUNTS, fleet

POLL = 2


async def run(workdir: Path, *, short: bool) -> Section:
    cycles = 1 if short else 15
    section = Section(
        "5. scale",
        f"the configuration of 4. with `USAGE_BOT_POLL_SECONDS={POLL}`; CPU (user + system, "
        f"all threads, from /proc/<pid>/stat) over {cycles} poll cycles after the first, "
        "divided by the cycles; then a cycle in which all accounts cross 80 % at once, "
        f"{ACCOUNTS} alerts to each of the 3 chat destinations (and the console): the time "
        "until the last post arrived and the CPU used meanwhile.",
    )
    async with fleet(workdir, USAGE_BOT_POLL_SECONDS=str(POLL)) as bots:
        bot = await bots.launch(workdir / "bot", "scale")
        try:
            await asyncio.sleep(POLL)
            quiet_start, cpu_start = time.monotonic(), bot.cpu_seconds()
            await asyncio.sleep(cycles * POLL)
            quiet_end, cpu_end = time.monotonic(), bot.cpu_seconds()
            fetched = len([a for a in bots.upstream.arrivals if quiet_start <= a.at < quiet_end])
            quiet_rate = (cpu_end - cpu_start) / (quiet_end - quiet_start)
            per_cycle = quiet_rate * POLL
            section.rows.append(
                Row(
                    f"CPU per poll cycle, {ACCOUNTS} accounts, no alert",
                    f"{per_cycle * 1000:.0f} ms ({per_cycle / ACCOUNTS * 1000:.2f} ms per "
                    f"account; {fetched / cycles:.0f} upstream requests per cycle)",
                )
            )
            alert_start, cpu_before = time.monotonic(), bot.cpu_seconds()
            bots.upstream.payload = _over_80(bots.upstream.simulated_now())
            delivered = await until(
                lambda: (
                    min(
                        len(bots.slack.posts),
                        len(bots.slack.webhook_posts),
                        len(bots.discord.channel_messages),
                    )
                    >= ACCOUNTS
                ),
                timeout=120,
            )
            took = time.monotonic() - alert_start
            used = bot.cpu_seconds() - cpu_before
            memory = bot.memory_kb()
        finally:
            await bot.stop()
    posts = 3 * ACCOUNTS
    section.rows.append(
        Row(
            f"all {ACCOUNTS} accounts cross 80 % at once ({posts} posts)",
            (
                f"all posted {took:.1f} s after the change; {used * 1000:.0f} ms CPU meanwhile "
                f"(quiet, as long: {quiet_rate * took * 1000:.0f} ms)"
            )
            if delivered
            else f"not all {posts} posts arrived within 120 s",
        )
    )
    section.rows.append(
        Row(
            "resident memory after these cycles",
            f"{memory['VmRSS'] / 1024:.0f} MB (peak {memory['VmHWM'] / 1024:.0f} MB)",
        )
    )
    return section


def _over_80(usage: dict[str, object]) -> dict[str, object]:
    """The simulated answer with the 5-hour window at 85 %."""
    changed = copy.deepcopy(usage)
    five_hour = changed["five_hour"]
    assert isinstance(five_hour, dict)
    five_hour["utilization"] = 85.0
    limits = changed["limits"]
    assert isinstance(limits, list)
    for limit in limits:
        if limit["kind"] == "session":
            limit["percent"] = 85
    return changed
