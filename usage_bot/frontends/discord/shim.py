"""discord.py's process-wide settings, written in one place.

Why this module exists: discord.py takes where it connects from two class attributes,
not from the client, so ``DISCORD_API_BASE_URL`` and ``DISCORD_GATEWAY_URL`` (proxies,
and the tests' local fake) can only be applied by assigning ``discord.http.Route.BASE``
and ``DiscordWebSocket.DEFAULT_GATEWAY`` for the whole process; and it warns at every
start about voice support (PyNaCl, DAVE) that the bot never uses, through two more class
attributes. Anything else that reaches into discord.py's globals belongs here too, so
that there is one place to look when discord.py changes them, and nowhere else assigns
to discord.py.

It also makes the one kind of client the bot uses, and says what discord.py's HTTP errors
were in a few words.
"""

from __future__ import annotations

from typing import Any

import discord
import yarl
from discord.gateway import DiscordWebSocket

from usage_bot._config import DiscordConfig


def point_discord_at(config: DiscordConfig) -> None:
    """Send discord.py's REST calls and gateway connection where the settings say.

    Process-wide: every client in the process follows, which is why the bot has one.
    """
    discord.http.Route.BASE = config.api_base_url
    DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(config.gateway_url)


def new_client(**options: Any) -> discord.Client:
    """A client with the one intent the bot needs, ``guilds``, which is not privileged
    (without an intent discord.py warns at every start), and no warnings about voice."""
    discord.VoiceClient.warn_nacl = discord.VoiceClient.warn_dave = False
    return discord.Client(intents=discord.Intents(guilds=True), **options)


def describe(exc: BaseException) -> str:
    """An error in a few words and without URLs: ``HTTP 403 50001 Missing Access``."""
    if isinstance(exc, discord.HTTPException):
        text = " ".join((exc.text or "").split())[:200]
        parts = [f"HTTP {exc.status}", str(exc.code or ""), text]
        return " ".join(part for part in parts if part)
    return type(exc).__name__
