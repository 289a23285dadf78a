"""``usage-bot run``: every configured front end, the alert scheduler and the HTTP server
in one asyncio loop, stopped cleanly by SIGTERM or SIGINT.

A front end that cannot start (a revoked token) is reported and the others keep running;
``/healthz`` then says which part is unwell. The Slack and Discord SDKs are imported only
when their front end is configured.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Awaitable
from functools import partial
from typing import TextIO

import httpx

from usage_bot._app import Core, build_core
from usage_bot._clock import Clock
from usage_bot._config import Settings
from usage_bot._credentials import CredentialLoader
from usage_bot._exceptions import CredentialsError, CredentialsMissing, UsageBotError
from usage_bot._http import Health, HttpServer
from usage_bot._metrics import Metrics
from usage_bot._notify import Notifier
from usage_bot._scheduler import AlertScheduler
from usage_bot.frontends import FrontEnd
from usage_bot.frontends.console import ConsoleFrontEnd, ConsoleNotifier
from usage_bot.state import StateStore, open_store

log = logging.getLogger(__name__)

STOP_WITHIN = 9.0  # of the 10 s a container gets between SIGTERM and SIGKILL
NOTHING_CONFIGURED = """\
usage-bot: nothing is configured yet, so here is the demo (the bot against a simulated
account, offline). To use your own account, log in with `claude` on this machine or set
CLAUDE_CODE_OAUTH_TOKEN; to post to a chat, set SLACK_BOT_TOKEN or DISCORD_BOT_TOKEN
(see .env.example and the README). `usage-bot doctor` checks what you set.
"""


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

    print(NOTHING_CONFIGURED)
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
        await bot.stop()
    return 0


class Bot:
    """The whole process: core, state, front ends, scheduler and HTTP server."""

    def __init__(
        self,
        settings: Settings,
        *,
        clock: Clock | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        out: TextIO | None = None,
        interactive: bool | None = None,
        guild_ready_timeout: float = 2.0,
    ) -> None:
        self.settings = settings
        self.core: Core = build_core(settings, clock=clock, transport=transport)
        self.metrics = Metrics(self.core.service)
        self.http: HttpServer | None = None
        if settings.http.port:
            self.http = HttpServer(
                host=settings.http.host,
                port=settings.http.port,
                health=self.health,
                metrics=self.metrics.render,
            )
        self.front_ends: list[FrontEnd] = []
        self.not_started: dict[str, str] = {}
        self.store: StateStore | None = None
        self.scheduler: AlertScheduler | None = None
        self._out = out
        self._interactive = interactive
        self._guild_ready_timeout = guild_ready_timeout
        self._stopped = False

    async def start(self) -> None:
        settings, service = self.settings, self.core.service
        self.store = await open_store(settings)
        if settings.slack.enabled:
            from usage_bot.frontends.slack.app import SlackFrontEnd

            # Before the HTTP server starts: HTTP mode adds /slack/events to it.
            self.front_ends.append(
                SlackFrontEnd(
                    settings,
                    service,
                    clock=self.core.clock,
                    http=self.http,
                    on_command=partial(self.metrics.command_answered, "slack"),
                )
            )
        if settings.discord.enabled:
            from usage_bot.frontends.discord.app import DiscordFrontEnd

            self.front_ends.append(
                DiscordFrontEnd(
                    settings,
                    service,
                    clock=self.core.clock,
                    store=self.store,
                    guild_ready_timeout=self._guild_ready_timeout,
                    on_command=partial(self.metrics.command_answered, "discord"),
                )
            )
        if not self.front_ends:
            self.front_ends.append(
                ConsoleFrontEnd(service, out=self._out, interactive=self._interactive)
            )
        if self.http is not None:
            await self.http.start()
            log.info("health and metrics on %s", self.http.url)
        await asyncio.gather(*(self._start_front_end(f) for f in self.front_ends))
        self.scheduler = AlertScheduler(
            settings=settings, service=service, store=self.store, notifiers=self._notifiers()
        )
        self.metrics.alert_counts = self.scheduler.alert_counts
        await self.scheduler.start()
        log.info(
            "running: %s; polling %d account(s) every %d s; alerts to %s",
            ", ".join(f.name for f in self.front_ends),
            len(service.accounts),
            settings.upstream.poll_seconds,
            ", ".join(self.scheduler.destinations),
        )

    async def _start_front_end(self, front_end: FrontEnd) -> None:
        # Reported, and the others keep running; /healthz shows it as unwell.
        try:
            await front_end.start()
        except UsageBotError as exc:
            self.not_started[front_end.name] = exc.message
            log.error("%s did not start: %s", front_end.name, exc.message)
        except Exception as exc:
            # A bug, or an SDK error not translated: still not a reason to stop the others.
            reason = f"unexpected {type(exc).__name__}"
            self.not_started[front_end.name] = reason
            log.error("%s did not start (%s)", front_end.name, reason, exc_info=True)

    def _notifiers(self) -> list[Notifier]:
        notifiers: list[Notifier] = [n for f in self.front_ends for n in f.notifiers()]
        names = {f.name for f in self.front_ends}
        if "slack" not in names and self.settings.slack.webhook_url is not None:
            from usage_bot.frontends.slack.app import slack_notifiers

            notifiers.extend(slack_notifiers(self.settings))
        if "discord" not in names and self.settings.discord.webhook_url is not None:
            from usage_bot.frontends.discord.app import discord_notifiers

            notifiers.extend(discord_notifiers(self.settings))
        notifiers.append(ConsoleNotifier(self._out))
        return notifiers

    def health(self) -> Health:
        parts: dict[str, str] = {"loop": "ok"}
        if self.scheduler is not None:
            parts["scheduler"] = "ok" if self.scheduler.healthy() else "stopped"
        else:
            parts["scheduler"] = "starting"
        for front_end in self.front_ends:
            if front_end.name in self.not_started:
                parts[front_end.name] = f"not started: {self.not_started[front_end.name]}"
            else:
                parts[front_end.name] = "ok" if front_end.healthy() else "disconnected"
        now = self.core.clock.now()
        ages = {}
        for name in self.core.service.accounts:
            age = self.core.service.peek(name).age(now)
            ages[name] = round(age.total_seconds()) if age is not None else None
        healthy = all(state == "ok" for state in parts.values())
        return Health(
            healthy,
            {
                "status": "ok" if healthy else "unwell",
                "parts": parts,
                "last_good_fetch_age_seconds": ages,
            },
        )

    async def stop(self) -> None:
        """New work refused, posts in flight finished or left for retry, state closed."""
        if self._stopped:
            return
        self._stopped = True
        # Front ends and scheduler drain side by side (each gives its work in flight about
        # 5 s), so that both fit in the time a container gets.
        stopping: list[Awaitable[None]] = [f.stop() for f in self.front_ends]
        if self.scheduler is not None:
            stopping.append(self.scheduler.stop())  # closes the store too
        try:
            async with asyncio.timeout(STOP_WITHIN):
                results = await asyncio.gather(*stopping, return_exceptions=True)
            for result in results:
                if isinstance(result, Exception):
                    log.warning("while stopping: unexpected %s", type(result).__name__)
        except TimeoutError:
            log.warning(
                "stopping took over %.0f s; leaving the rest for the next start", STOP_WITHIN
            )
        finally:
            if self.store is not None:
                # Closing twice does nothing; this covers a scheduler that never started.
                with contextlib.suppress(Exception):
                    async with asyncio.timeout(1.0):
                        await self.store.close()
            if self.http is not None:
                with contextlib.suppress(Exception):
                    await self.http.stop()
            await self.core.aclose()
