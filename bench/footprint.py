"""4. Footprint: start-up time to a healthy ``/healthz`` and resident memory when idle, with
Slack (Socket Mode) and Discord connected to the fakes and 100 accounts configured.

The same configuration, :class:`Fleet`, serves the scale benchmark (:mod:`bench.scale`):
three chat alert destinations (a Slack channel, a Slack incoming webhook, a Discord
channel) besides the console, which is always on.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from bench._bot import BotProcess
from bench._fakes import (
    ALERT_CHANNEL,
    APP_TOKEN,
    BOT_TOKEN,
    UPSTREAM_LATENCY,
    TimedSlack,
    TimedUpstream,
    accounts_variable,
    until,
    write_logins,
)
from bench._report import Row, Section
from tests.fakes.discord import FakeDiscord

ACCOUNTS = 100
# What `usage-bot run` imports before it does anything, with both chats configured.
IMPORTS = (
    "import usage_bot._cli, usage_bot._runner, usage_bot.frontends.slack, "
    "usage_bot.frontends.discord, usage_bot.state.sqlite"
)
MEMORY_TARGET_MB = 80
STARTUP_TARGET = 1.5


@dataclass
class Fleet:
    """The fakes and the environment of a bot with everything configured."""

    upstream: TimedUpstream
    slack: TimedSlack
    discord: FakeDiscord
    env: dict[str, str]

    async def launch(self, workdir: Path, name: str) -> BotProcess:
        """Start a bot, wait until both chats are connected and every account was polled."""
        sockets, identifies = self.slack.socket_connections, self.discord.identify_count
        launched = time.monotonic()
        bot = BotProcess(self.env, workdir=workdir, name=name)
        await bot.start()
        connected = await until(
            lambda: (
                self.slack.socket_connections > sockets and self.discord.identify_count > identifies
            ),
            timeout=15,
        )
        polled = await until(lambda: len(self.upstream.since(launched)) >= ACCOUNTS, timeout=30)
        if not (connected and polled):
            await bot.stop()
            raise RuntimeError(f"{name}: chats or first polls missing: {bot.log_tail()}")
        return bot


@asynccontextmanager
async def fleet(workdir: Path, **env: str) -> AsyncIterator[Fleet]:
    async with TimedUpstream() as upstream, TimedSlack() as slack, FakeDiscord() as discord:
        names = [f"account{index:03d}" for index in range(ACCOUNTS)]
        dirs = write_logins(workdir / "claude", names)
        settings = {
            "USAGE_BOT_API_BASE_URL": upstream.url,
            "USAGE_BOT_ACCOUNTS": accounts_variable(dirs),
            "SLACK_BOT_TOKEN": BOT_TOKEN,
            "SLACK_APP_TOKEN": APP_TOKEN,
            "SLACK_API_BASE_URL": slack.api_url,
            "SLACK_ALERT_CHANNEL": ALERT_CHANNEL,
            "SLACK_WEBHOOK_URL": slack.webhook_url,
            "DISCORD_BOT_TOKEN": discord.bot_token,
            "DISCORD_GUILD_ID": str(discord.guild_id),
            "DISCORD_ALERT_CHANNEL_ID": str(discord.channel_id),
            "DISCORD_API_BASE_URL": discord.api_url,
            "DISCORD_GATEWAY_URL": discord.gateway_url,
            **env,
        }
        yield Fleet(upstream, slack, discord, settings)


async def run(workdir: Path, *, short: bool) -> Section:
    launches = 1 if short else 5
    idle = 1.0 if short else 5.0
    section = Section(
        "4. footprint",
        f"`usage-bot run` with {ACCOUNTS} accounts (`USAGE_BOT_ACCOUNTS`), Slack in Socket "
        "Mode and Discord connected to the fakes, alerts to a Slack channel, a Slack webhook "
        "and a Discord channel, default poll (180 s). Start-up: from launching the process "
        f"to `/healthz` answering 200, median of {launches} launch(es) on one state file (the "
        "first one registers the Discord command). Memory: VmRSS from /proc once both chats "
        f"are connected and every account was polled once, after {idle:.0f} s idle; VmHWM "
        "is the peak. The imports: `python -c 'import ...'` of the modules `run` loads with "
        "both chats configured, median of as many runs.",
    )
    startups = []
    async with fleet(workdir) as bots:
        for index in range(launches):
            bot = await bots.launch(workdir / "bot", f"footprint-{index}")
            startups.append(bot.startup_seconds)
            try:
                if index == launches - 1:
                    await asyncio.sleep(UPSTREAM_LATENCY + idle)
                    memory = bot.memory_kb()
            finally:
                await bot.stop()
    imports = [await _seconds_to_run(IMPORTS) for _ in range(launches)]
    bare = [await _seconds_to_run("pass") for _ in range(launches)]
    median = statistics.median(startups)
    spread = f" (first {startups[0]:.2f} s, max {max(startups):.2f} s)" if launches > 1 else ""
    section.rows.append(
        Row(
            "start-up to a healthy /healthz",
            f"{median:.2f} s{spread}",
            f"< {STARTUP_TARGET} s",
            median < STARTUP_TARGET,
        )
    )
    section.rows.append(
        Row(
            "of which: Python with the bot's modules imported",
            f"{statistics.median(imports):.2f} s (Python alone {statistics.median(bare):.2f} s)",
        )
    )
    rss, peak = memory["VmRSS"] / 1024, memory["VmHWM"] / 1024
    section.rows.append(
        Row(
            f"resident memory, idle, {ACCOUNTS} accounts",
            f"{rss:.0f} MB (peak {peak:.0f} MB)",
            f"< {MEMORY_TARGET_MB} MB",
            rss < MEMORY_TARGET_MB,
        )
    )
    return section


async def _seconds_to_run(code: str) -> float:
    """Wall time of ``python -c code`` in a new process: interpreter start and imports."""
    started = time.perf_counter()
    process = await asyncio.create_subprocess_exec(sys.executable, "-c", code)
    if await process.wait() != 0:
        raise RuntimeError(f"python -c {code!r} failed")
    return time.perf_counter() - started
