"""``usage-bot demo``: the whole bot offline, against the simulated account, fast.

Nothing needs configuring: a simulated usage endpoint runs on loopback, the real client
and service read it, and the console shows what a team would see, in accelerated time.
"""

from __future__ import annotations

import sys
from typing import TextIO

from usage_bot._app import build_core
from usage_bot._clock import ScaledClock
from usage_bot._config import Secret, Settings
from usage_bot._report import build_report, format_percent
from usage_bot._simulator import DEMO_TOKEN, SimulatedUpstream
from usage_bot._terminal import render_report

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
    clock = ScaledClock(speed=speed)
    async with SimulatedUpstream(clock=clock) as upstream:
        settings = Settings(
            oauth_token=Secret(DEMO_TOKEN),
            api_base_url=upstream.url,
            poll_seconds=180,
            http_port=0,
        )
        core = build_core(settings, clock=clock, trust_env=False)
        try:
            print(
                f"usage-bot demo: a simulated account, {speed:g}x faster than real time "
                f"({hours:g} simulated hours). Ctrl-C stops it.\n",
                file=out,
            )
            end = clock.monotonic() + hours * 3600
            first = True
            while clock.monotonic() < end:
                usage = await core.service.get("default")
                now = clock.now()
                report = build_report(usage, now)
                if first:
                    print(render_report(report, now=now, width=width), file=out)
                    print(file=out)
                    first = False
                stamp = now.astimezone().strftime("%a %H:%M")
                parts = " · ".join(f"{r.label} {format_percent(r.percent)}" for r in report.rows)
                print(f"[{stamp}] {parts or report.error}", file=out)
                await clock.sleep(settings.poll_seconds)
        finally:
            await core.aclose()
    print(f"\n{NEXT_STEPS}", file=out)
    return 0
