"""``usage-bot run``: every configured front end, the scheduler and the HTTP server in one
asyncio loop, stopped cleanly by SIGTERM or SIGINT."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys

from usage_bot._app import build_core
from usage_bot._config import Settings
from usage_bot._credentials import CredentialLoader
from usage_bot._exceptions import CredentialsError, CredentialsMissing
from usage_bot._report import build_report
from usage_bot._terminal import render_report

NOTHING_CONFIGURED = """\
usage-bot: nothing is configured yet, so here is the demo (the bot against a simulated
account, offline). To use your own account, log in with `claude` on this machine or set
CLAUDE_CODE_OAUTH_TOKEN; to post to a chat, set SLACK_BOT_TOKEN or DISCORD_BOT_TOKEN
(see .env.example and the README). `usage-bot doctor` checks what you set.
"""


def is_configured(settings: Settings) -> bool:
    """True when there is something of the user's to run against."""
    if settings.chat_configured or any(a.path is not None for a in settings.accounts):
        return True
    try:
        CredentialLoader(settings.accounts[0], settings).read()
    except CredentialsMissing:
        return False
    except CredentialsError:
        return True  # a login that is there but broken: `run` says what is wrong with it
    return True


async def start(settings: Settings) -> int:
    """Bare ``usage-bot``: run when configured, else explain and show the demo."""
    if is_configured(settings):
        return await run_bot(settings)
    from usage_bot._demo import run_demo

    print(NOTHING_CONFIGURED)
    return await run_demo()


async def run_bot(settings: Settings, *, stop: asyncio.Event | None = None) -> int:
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    core = build_core(settings)
    try:
        while not stop.is_set():
            usages = await core.service.get_all()
            now = core.clock.now()
            for usage in usages:
                print(render_report(build_report(usage, now), now=now), file=sys.stdout)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=settings.poll_seconds)
    finally:
        await core.aclose()
    return 0
