"""The composition root: builds the shared core (client, loaders, service) from settings."""

from __future__ import annotations

import sys
from dataclasses import dataclass

import httpx

from usage_bot._client import UsageClient
from usage_bot._clock import Clock, SystemClock
from usage_bot._config import Settings
from usage_bot._credentials import CredentialLoader
from usage_bot._service import UsageService


@dataclass
class Core:
    """What every front end shares: one client, one loader per account, one service."""

    settings: Settings
    clock: Clock
    client: UsageClient
    service: UsageService
    loaders: tuple[CredentialLoader, ...]

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
) -> Core:
    """``trust_env=False`` ignores proxy settings: for the demo, whose upstream is local."""
    clock = clock or SystemClock()
    client = UsageClient(
        base_url=settings.upstream.api_base_url,
        user_agent=settings.upstream.user_agent,
        transport=transport,
        trust_env=trust_env,
    )
    loaders = tuple(
        CredentialLoader(account, settings.upstream, platform=platform)
        for account in settings.upstream.accounts
    )
    service = UsageService(
        loaders=loaders,
        client=client,
        clock=clock,
        min_interval=settings.upstream.min_fetch_interval,
        thresholds=settings.alerts.thresholds,
    )
    return Core(settings, clock, client, service, loaders)
