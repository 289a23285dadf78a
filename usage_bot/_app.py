"""The composition root of ``usage-bot run``: every part of the bot is built here, from the
settings, and everything that must be closed is closed here.

:class:`Bot` is the core (:func:`usage_bot._core.build_core`, what every command shares),
the state store, the HTTP server, the front ends and alert destinations the settings ask
for, the courier and the scheduler.

Front ends and destinations come from two registries, :data:`FRONT_ENDS` and
:data:`DESTINATIONS`, keyed by what is configured; each entry imports its platform's
module only when it is wanted, so a webhook-only setup loads neither chat SDK. A new
front end or destination is one entry there.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TextIO

import httpx

from usage_bot._clock import Clock
from usage_bot._config import Settings
from usage_bot._core import Core, build_core
from usage_bot._delivery import Courier
from usage_bot._events import Observers
from usage_bot._exceptions import UsageBotError
from usage_bot._http import Health, HttpServer
from usage_bot._metrics import Metrics
from usage_bot._notify import Notifier
from usage_bot._scheduler import AlertScheduler
from usage_bot._timing import STOP_WITHIN
from usage_bot.frontends import CommandCore, FrontEnd
from usage_bot.frontends.console import ConsoleFrontEnd, ConsoleNotifier
from usage_bot.state import StateStore, open_store

log = logging.getLogger(__name__)


# -- the registries ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FrontEndEntry:
    """A front end: its name, whether the settings want it, and how to build it."""

    name: str
    wanted: Callable[[Settings], bool]
    build: Callable[[Bot], FrontEnd]


@dataclass(frozen=True, slots=True)
class DestinationEntry:
    """An alert destination: whether the settings want it, and how to build it."""

    wanted: Callable[[Settings], bool]
    build: Callable[[Settings], Notifier]


def _slack(bot: Bot) -> FrontEnd:
    from usage_bot.frontends.slack.app import SlackFrontEnd

    return SlackFrontEnd(
        bot.settings.slack,
        commands=bot.commands,
        clock=bot.core.clock,
        http=bot.http,
        observer=bot.core.observer,
    )


def _discord(bot: Bot) -> FrontEnd:
    from usage_bot.frontends.discord.app import DiscordFrontEnd

    assert bot.store is not None  # opened before the front ends are built
    return DiscordFrontEnd(
        bot.settings.discord,
        commands=bot.commands,
        clock=bot.core.clock,
        store=bot.store,
        observer=bot.core.observer,
        guild_ready_timeout=bot.guild_ready_timeout,
    )


def _slack_channel(settings: Settings) -> Notifier:
    from usage_bot.frontends.slack.notify import SlackChannelNotifier

    slack = settings.slack
    assert slack.bot_token is not None
    assert slack.alert_channel is not None
    return SlackChannelNotifier(
        token=slack.bot_token, channel=slack.alert_channel, api_base_url=slack.api_base_url
    )


def _slack_webhook(settings: Settings) -> Notifier:
    from usage_bot.frontends.slack.webhook import SlackWebhookNotifier

    assert settings.slack.webhook_url is not None
    return SlackWebhookNotifier(url=settings.slack.webhook_url)


def _discord_channel(settings: Settings) -> Notifier:
    from usage_bot.frontends.discord.notify import DiscordChannelNotifier

    discord = settings.discord
    assert discord.bot_token is not None
    assert discord.alert_channel_id is not None
    return DiscordChannelNotifier(
        token=discord.bot_token,
        channel_id=discord.alert_channel_id,
        api_base_url=discord.api_base_url,
    )


def _discord_webhook(settings: Settings) -> Notifier:
    from usage_bot.frontends.discord.notify import DiscordWebhookNotifier

    discord = settings.discord
    assert discord.webhook_url is not None
    return DiscordWebhookNotifier(url=discord.webhook_url, api_base_url=discord.api_base_url)


FRONT_ENDS: tuple[FrontEndEntry, ...] = (
    FrontEndEntry("slack", lambda s: s.slack.enabled, _slack),
    FrontEndEntry("discord", lambda s: s.discord.enabled, _discord),
)
DESTINATIONS: tuple[DestinationEntry, ...] = (
    DestinationEntry(
        lambda s: s.slack.bot_token is not None and s.slack.alert_channel is not None,
        _slack_channel,
    ),
    DestinationEntry(lambda s: s.slack.webhook_url is not None, _slack_webhook),
    DestinationEntry(
        lambda s: s.discord.bot_token is not None and s.discord.alert_channel_id is not None,
        _discord_channel,
    ),
    DestinationEntry(lambda s: s.discord.webhook_url is not None, _discord_webhook),
)


# -- the process -----------------------------------------------------------------------------


class Bot:
    """``usage-bot run``: builds every part, starts them, and stops them within
    :data:`~usage_bot._timing.STOP_WITHIN`. It owns the state store's lifetime.

    A front end that cannot start (a revoked token) is reported and the others keep
    running; ``/healthz`` then says which part is unwell.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        clock: Clock | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        out: TextIO | None = None,
        interactive: bool | None = None,
        guild_ready_timeout: float = 2.0,
        notifiers: Sequence[Notifier] = (),
    ) -> None:
        self.settings = settings
        self.metrics = Metrics()
        self.core: Core = build_core(
            settings, clock=clock, transport=transport, observer=Observers([self.metrics])
        )
        self.commands = CommandCore(service=self.core.service, clock=self.core.clock)
        self.http: HttpServer | None = None
        if settings.http.port:
            self.http = HttpServer(
                host=settings.http.host,
                port=settings.http.port,
                health=self.health,
                metrics=lambda: self.metrics.render(self.core.service.peek_all()),
            )
        self.guild_ready_timeout = guild_ready_timeout
        self.front_ends: list[FrontEnd] = []
        self.not_started: dict[str, str] = {}
        self.store: StateStore | None = None
        self.scheduler: AlertScheduler | None = None
        self._out = out
        self._interactive = interactive
        self._extra_notifiers = tuple(notifiers)
        self._stopped = False

    async def start(self) -> None:
        settings, service = self.settings, self.core.service
        self.store = await open_store(settings)
        # Built before the HTTP server starts: Slack's HTTP mode adds its route to it.
        self.front_ends = [entry.build(self) for entry in FRONT_ENDS if entry.wanted(settings)]
        if not self.front_ends:
            self.front_ends.append(
                ConsoleFrontEnd(
                    self.commands,
                    clock=self.core.clock,
                    out=self._out,
                    interactive=self._interactive,
                )
            )
        if self.http is not None:
            await self.http.start()
            log.info("health and metrics on %s", self.http.url)
        await asyncio.gather(*(self._start_front_end(f) for f in self.front_ends))
        notifiers = [entry.build(settings) for entry in DESTINATIONS if entry.wanted(settings)]
        notifiers += [*self._extra_notifiers, ConsoleNotifier(self._out)]
        for notifier in notifiers:
            self.metrics.destination(notifier.name)
        courier = Courier(
            queue=self.store,
            clock=self.core.clock,
            owner=f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}",
            notifiers=notifiers,
            observer=self.core.observer,
        )
        self.scheduler = AlertScheduler(
            settings=settings, service=service, store=self.store, courier=courier
        )
        await self.scheduler.start()
        log.info(
            "running: %s; polling %d account(s) every %d s; alerts to %s",
            ", ".join(f.name for f in self.front_ends if f.name not in self.not_started)
            or "nothing",
            len(service.accounts),
            settings.upstream.poll_seconds,
            ", ".join(courier.destinations),
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
        for usage in self.core.service.peek_all():
            age = usage.age(now)
            ages[usage.account] = round(age.total_seconds()) if age is not None else None
        healthy = all(state == "ok" for state in parts.values())
        return Health(
            healthy,
            {
                "status": "ok" if healthy else "unwell",
                "parts": parts,
                "last_good_fetch_age_seconds": ages,
            },
        )

    async def stop(self, *, within: float = STOP_WITHIN) -> None:
        """New work refused, posts in flight finished (or left for retry) within ``within``
        seconds, then the state store, the HTTP server and the client closed."""
        if self._stopped:
            return
        self._stopped = True
        # Front ends and scheduler drain side by side (each gives its work in flight about
        # 5 s), so that both fit in the time a container gets.
        stopping: list[Awaitable[None]] = [f.stop() for f in self.front_ends]
        if self.scheduler is not None:
            stopping.append(self.scheduler.stop())
        try:
            async with asyncio.timeout(within):
                results = await asyncio.gather(*stopping, return_exceptions=True)
            for result in results:
                if isinstance(result, Exception):
                    log.warning("while stopping: unexpected %s", type(result).__name__)
        except TimeoutError:
            log.warning("stopping took over %.0f s; leaving the rest for the next start", within)
        finally:
            if self.store is not None:
                with contextlib.suppress(Exception):
                    async with asyncio.timeout(1.0):
                        await self.store.close()
            if self.http is not None:
                with contextlib.suppress(Exception):
                    await self.http.stop()
            await self.core.aclose()
