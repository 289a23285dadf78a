"""What every command shares, built from the settings: one upstream client, one
credential loader per account, one usage service, and the observer they tell.

``check``, ``doctor`` and the demo use it alone; ``usage-bot run`` builds the rest of the
bot around it (:mod:`usage_bot._app`). It imports no chat SDK, no web server and no
scheduler, so those commands start as fast as httpx does.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field

import httpx

from usage_bot._client import UsageClient
from usage_bot._clock import Clock, SystemClock
from usage_bot._config import Settings
from usage_bot._credentials import CredentialLoader
from usage_bot._events import Observers
from usage_bot._service import UsageService


@dataclass
class Core:
    """What every command shares: one client, one loader per account, one service, and
    the observer every part tells what happens."""

    settings: Settings
    clock: Clock
    client: UsageClient
    service: UsageService
    loaders: tuple[CredentialLoader, ...]
    observer: Observers = field(default_factory=Observers)

    async def aclose(self) -> None:
        await self.service.aclose()
        await self.client.aclose()


def build_core(
    settings: Settings,
    *,
    clock: Clock | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    platform: str = sys.platform,
    trust_env: bool = True,
    observer: Observers | None = None,
) -> Core:
    """``trust_env=False`` ignores proxy settings: for the demo, whose upstream is local."""
    clock = clock or SystemClock()
    observer = observer or Observers()
    upstream = settings.upstream
    client = UsageClient(
        base_url=upstream.api_base_url,
        user_agent=upstream.user_agent,
        transport=transport,
        trust_env=trust_env,
    )
    loaders = tuple(
        CredentialLoader(account, upstream, platform=platform) for account in upstream.accounts
    )
    service = UsageService(
        loaders=loaders,
        client=client,
        clock=clock,
        min_interval=upstream.min_fetch_interval,
        thresholds=settings.alerts.thresholds,
        observer=observer,
    )
    return Core(settings, clock, client, service, loaders, observer)
