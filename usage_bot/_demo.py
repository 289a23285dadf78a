"""``usage-bot demo``: the whole bot offline, against the simulated account, fast.

Nothing needs configuring: a simulated usage endpoint runs on loopback, and the real
client, service, alert engine, state store and console destination run against it in
accelerated time, so a newcomer sees the report, threshold alerts and a reset.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import sys
from collections.abc import Iterator
from typing import TextIO

from usage_bot._clock import ScaledClock
from usage_bot._config import HttpConfig, Secret, Settings, UpstreamConfig
from usage_bot._core import build_core
from usage_bot._delivery import Courier
from usage_bot._exceptions import ConfigError
from usage_bot._report import build_report, format_percent
from usage_bot._scheduler import AlertScheduler
from usage_bot._service import UsageService
from usage_bot._simulator import DEMO_TOKEN, SimulatedUpstream
from usage_bot._terminal import fill, render_report
from usage_bot._texts import DOCS_URL
from usage_bot._timing import DEMO_MAX_HOURS as MAX_HOURS
from usage_bot._timing import DEMO_MAX_SPEED as MAX_SPEED
from usage_bot.frontends.console import ConsoleNotifier
from usage_bot.state.memory import MemoryStore

POLL_SECONDS = 180
STATUS_EVERY = 4  # polls between status lines: one every 12 simulated minutes
NEXT_STEPS = (
    "That was the demo. To watch your own quota:",
    "1. Log in with `claude` on this machine (or set CLAUDE_CODE_OAUTH_TOKEN), then run "
    "`usage-bot check` to see your usage and `usage-bot doctor` to check the setup.",
    "2. For Slack, set SLACK_BOT_TOKEN and SLACK_APP_TOKEN (and SLACK_ALERT_CHANNEL for "
    "alerts); for Discord, DISCORD_BOT_TOKEN (and DISCORD_ALERT_CHANNEL_ID). Every setting, "
    f"and each platform step by step: {DOCS_URL}",
    "3. `usage-bot run` starts the bot.",
)


async def run_demo(
    *,
    speed: float = 600.0,
    hours: float = 3.0,
    out: TextIO | None = None,
    width: int | None = None,
) -> int:
    if not 0 < speed <= MAX_SPEED or not 0 < hours <= MAX_HOURS:
        raise ConfigError(
            [
                f"--speed must be over 0 and at most {MAX_SPEED:g}, and --hours over 0 and "
                f"at most {MAX_HOURS:g}: try --speed 600 --hours 3."
            ]
        )
    out = out or sys.stdout
    width = max(width or shutil.get_terminal_size((80, 24)).columns, 30)
    clock = ScaledClock(speed=speed)
    with _quiet_logs():
        async with SimulatedUpstream(clock=clock) as upstream:
            settings = Settings(
                upstream=UpstreamConfig(
                    oauth_token=Secret(DEMO_TOKEN),
                    api_base_url=upstream.url,
                    poll_seconds=POLL_SECONDS,
                ),
                http=HttpConfig(port=0),
            )
            core = build_core(settings, clock=clock, trust_env=False)
            # Nothing of the demo outlives it: its state is kept in memory.
            store = MemoryStore()
            # The demo drives the polls itself, in simulated time; APScheduler would wait
            # for real minutes.
            console = ConsoleNotifier(out, width=width)
            courier = Courier(queue=store, clock=clock, owner="demo", notifiers=[console])
            scheduler = AlertScheduler(
                settings=settings, service=core.service, store=store, courier=courier, clock=clock
            )
            try:
                intro = (
                    f"usage-bot demo: a simulated account, {speed:g}x faster than real time "
                    f"({hours:g} simulated hours; alerts at 80 % and 95 %). Ctrl-C stops it."
                )
                print(fill(intro, width) + "\n", file=out)
                await _play(core.service, scheduler, clock, hours, out, width)
            finally:
                await scheduler.stop()
                await store.close()
                await core.aclose()
    print(file=out)
    for number, paragraph in enumerate(NEXT_STEPS):
        indent = "     " if number else ""
        print(
            fill(paragraph, width, initial_indent=indent[:2], subsequent_indent=indent),
            file=out,
        )
    return 0


@contextlib.contextmanager
def _quiet_logs() -> Iterator[None]:
    """While the demo draws, only warnings reach the terminal, and nothing about its own
    console destination (whose trouble is the demo's output itself going away)."""
    root, courier = logging.getLogger(), logging.getLogger("usage_bot._delivery")
    before = root.level, courier.level
    if not root.handlers:
        logging.basicConfig(format="usage-bot: %(message)s")
    root.setLevel(max(root.level, logging.WARNING))
    courier.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        root.setLevel(before[0])
        courier.setLevel(before[1])


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
        now = clock.now()
        report = build_report(service.peek("default"), now)
        if polls == 0:  # the report first, then what it means
            print(render_report(report, now=now, width=width), file=out)
            print(file=out)
        elif polls % STATUS_EVERY == 0:
            stamp = now.astimezone().strftime("%a %H:%M")
            parts = " · ".join(f"{r.label} {format_percent(r.percent)}" for r in report.rows)
            line = f"   [{stamp}] {parts or report.error}"
            print(fill(line, width, subsequent_indent=" " * 11), file=out)
        await scheduler.deliver_pending()
        polls += 1
        await clock.sleep(POLL_SECONDS)
