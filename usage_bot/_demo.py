"""``usage-bot demo``: the whole bot offline, against the simulated account, fast.

Nothing needs configuring: a simulated usage endpoint runs on loopback, and the real
client, service, alert engine, state store and console destination run against it in
accelerated time, so a newcomer sees the report, threshold alerts and a reset.
"""

from __future__ import annotations

import logging
import sys
import tempfile
from pathlib import Path
from typing import TextIO

from usage_bot._app import build_core
from usage_bot._clock import ScaledClock
from usage_bot._config import HttpConfig, Secret, Settings, UpstreamConfig
from usage_bot._delivery import Courier
from usage_bot._report import build_report, format_percent
from usage_bot._scheduler import AlertScheduler
from usage_bot._service import UsageService
from usage_bot._simulator import DEMO_TOKEN, SimulatedUpstream
from usage_bot._terminal import render_report
from usage_bot.frontends.console import ConsoleNotifier
from usage_bot.state import open_store

POLL_SECONDS = 180
STATUS_EVERY = 4  # polls between status lines: one every 12 simulated minutes
NEXT_STEPS = """\
That was the demo. To watch your own quota:
  1. Log in with `claude` on this machine (or set CLAUDE_CODE_OAUTH_TOKEN), then run
     `usage-bot check` to see your usage and `usage-bot doctor` to check the setup.
  2. For Slack, set SLACK_BOT_TOKEN and SLACK_APP_TOKEN (and SLACK_ALERT_CHANNEL for
     alerts); for Discord, DISCORD_BOT_TOKEN (and DISCORD_ALERT_CHANNEL_ID).
     Every setting is in .env.example; the README walks through each platform.
  3. `usage-bot run` starts the bot."""


async def run_demo(
    *, speed: float = 600.0, hours: float = 3.0, out: TextIO | None = None, width: int = 80
) -> int:
    out = out or sys.stdout
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.WARNING, format="usage-bot: %(message)s")
    clock = ScaledClock(speed=speed)
    with tempfile.TemporaryDirectory(prefix="usage-bot-demo-") as folder:
        async with SimulatedUpstream(clock=clock) as upstream:
            settings = Settings(
                upstream=UpstreamConfig(
                    oauth_token=Secret(DEMO_TOKEN),
                    api_base_url=upstream.url,
                    poll_seconds=POLL_SECONDS,
                ),
                http=HttpConfig(port=0),
                state=str(Path(folder) / "demo.sqlite3"),
            )
            core = build_core(settings, clock=clock, trust_env=False)
            store = await open_store(settings)
            # The demo drives the polls itself, in simulated time; APScheduler would wait
            # for real minutes.
            courier = Courier(
                queue=store, clock=clock, owner="demo", notifiers=[ConsoleNotifier(out)]
            )
            scheduler = AlertScheduler(
                settings=settings, service=core.service, store=store, courier=courier, clock=clock
            )
            try:
                print(
                    f"usage-bot demo: a simulated account, {speed:g}x faster than real time "
                    f"({hours:g} simulated hours; alerts at 80 % and 95 %). Ctrl-C stops it.\n",
                    file=out,
                )
                await _play(core.service, scheduler, clock, hours, out, width)
            finally:
                await scheduler.stop()
                await store.close()
                await core.aclose()
    print(f"\n{NEXT_STEPS}", file=out)
    return 0


async def _play(
    service: UsageService,
    scheduler: AlertScheduler,
    clock: ScaledClock,
    hours: float,
    out: TextIO,
    width: int,
) -> None:
    end = clock.monotonic() + hours * 3600
    polls = 0
    while clock.monotonic() < end:
        await scheduler.poll_once("default")
        await scheduler.deliver_pending()
        now = clock.now()
        report = build_report(service.peek("default"), now)
        if polls == 0:
            print(render_report(report, now=now, width=width), file=out)
            print(file=out)
        elif polls % STATUS_EVERY == 0:
            stamp = now.astimezone().strftime("%a %H:%M")
            parts = " · ".join(f"{r.label} {format_percent(r.percent)}" for r in report.rows)
            print(f"   [{stamp}] {parts or report.error}", file=out)
        polls += 1
        await clock.sleep(POLL_SECONDS)
