"""``usage-bot run``: the signals and the deadline around :class:`usage_bot._app.Bot`.

SIGTERM or SIGINT stops the bot, also while it is still starting (a chat platform slow to
connect), within :data:`~usage_bot._timing.STOP_WITHIN` of the 10 s a container gets.
Everything else (what is built, started and closed) is the composition root's.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import signal

from usage_bot._app import Bot
from usage_bot._config import Settings
from usage_bot._credentials import CredentialLoader
from usage_bot._exceptions import CredentialsError, CredentialsMissing
from usage_bot._terminal import fill
from usage_bot._texts import NOTHING_CONFIGURED
from usage_bot._timing import STOP_WITHIN

log = logging.getLogger(__name__)


def is_configured(settings: Settings) -> bool:
    """True when there is something of the user's to run against."""
    if settings.chat_configured or any(a.path is not None for a in settings.upstream.accounts):
        return True
    try:
        CredentialLoader(settings.upstream.accounts[0], settings.upstream).read()
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

    width = shutil.get_terminal_size((80, 24)).columns
    print(fill(NOTHING_CONFIGURED, max(width, 30)) + "\n")
    return await run_demo()


async def run_bot(settings: Settings, *, stop: asyncio.Event | None = None) -> int:
    """Run until SIGTERM or SIGINT (or ``stop``), then stop within :data:`STOP_WITHIN`."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    bot = Bot(settings)
    # A signal during start-up (a chat platform slow to connect) stops it too: starting
    # may take longer than the 10 s a container gets.
    starting = asyncio.ensure_future(bot.start())
    stopping = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({starting, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if starting.done():
            starting.result()  # a failed start ends here, with its error
            await stopping
        else:
            log.info("stopping before start-up finished")
            starting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await starting
        log.info("stopping")
    finally:
        stopping.cancel()
        await bot.stop(within=STOP_WITHIN)
    return 0
