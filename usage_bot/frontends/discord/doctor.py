"""The Discord lines of ``usage-bot doctor``: the bot token, the application and the URL
that invites the bot, the command's registration, the alert channel and the webhook.

It reads and never posts: a test message in the alert channel would be noise, so the
channel and the webhook are looked at, not written to.
"""

from __future__ import annotations

import asyncio
import json

import aiohttp
import discord

from usage_bot._checks import CheckResult
from usage_bot._command import COMMAND
from usage_bot._config import DiscordConfig, Secret
from usage_bot._timing import CHAT_REQUEST_TIMEOUT
from usage_bot.frontends.discord.notify import (
    CHANNEL_FIX,
    LOGIN_FIX,
    NEEDED_PERMISSIONS,
    WEBHOOK_FIX,
    WEBHOOK_URL,
    ErrorBody,
    clean,
    request,
    unreachable,
    webhook_target,
)
from usage_bot.frontends.discord.shim import describe, new_client, point_discord_at

# What the bot needs in the alert channel, and what the invite URL asks for.
BOT_PERMISSIONS = discord.Permissions(view_channel=True, send_messages=True, embed_links=True)
INVITE_SCOPES = ("bot", "applications.commands")
_UNKNOWN_GUILD = 10004
# Channel types a bot can post a message in: text, announcement, threads, voice text chat.
_MESSAGEABLE_CHANNELS = frozenset({0, 2, 5, 10, 11, 12, 13})
_NETWORK_ERRORS = (aiohttp.ClientError, OSError, TimeoutError)


def invite_url(application_id: int) -> str:
    """The URL that adds the bot to a server, with the scopes and permissions it needs."""
    return discord.utils.oauth_url(
        application_id, permissions=BOT_PERMISSIONS, scopes=INVITE_SCOPES
    )


async def doctor_checks(config: DiscordConfig) -> list[CheckResult]:
    """Every Discord line of ``doctor``; none when Discord is not configured."""
    results: list[CheckResult] = []
    if config.bot_token is not None:
        point_discord_at(config)
        client = new_client()
        try:
            results.extend(await _bot_checks(client, config, config.bot_token))
        finally:
            await client.close()
    if config.webhook_url is not None:
        results.append(await _webhook_check(config, config.webhook_url))
    return results


async def _bot_checks(
    client: discord.Client, config: DiscordConfig, token: Secret
) -> list[CheckResult]:
    name = "discord: bot token"
    try:
        async with asyncio.timeout(CHAT_REQUEST_TIMEOUT):
            await client.login(token.reveal())
    except discord.LoginFailure:
        return [CheckResult(name, "fail", f"Discord rejected {token.masked()}", LOGIN_FIX)]
    except discord.HTTPException as exc:
        return [CheckResult(name, "fail", f"Discord's API failed ({describe(exc)})")]
    except _NETWORK_ERRORS as exc:
        return [CheckResult(name, "fail", unreachable(config.api_base_url, exc))]
    results = [CheckResult(name, "ok", f"{token.masked()} is the bot {client.user}")]
    app = client.application
    if app is None:  # login fetches it; checked for the type checker
        return results
    results.append(_application_check(app))
    results.append(CheckResult("discord: invite URL", "ok", invite_url(app.id)))
    results.append(await _command_check(client, config, app.id))
    results.append(await _channel_check(client, config))
    return results


def _application_check(app: discord.AppInfo) -> CheckResult:
    name = "discord: application"
    if app.interactions_endpoint_url:
        return CheckResult(
            name,
            "fail",
            f"{app.name} ({app.id}) has an Interactions Endpoint URL, so Discord sends "
            f"/{COMMAND} there and not to the bot",
            "remove the Interactions Endpoint URL (Developer Portal, General Information).",
        )
    if app.bot_require_code_grant:
        return CheckResult(
            name,
            "warn",
            f"{app.name} ({app.id}) requires the OAuth2 code grant, so the invite URL fails",
            "turn off Requires OAuth2 Code Grant (Developer Portal, Bot).",
        )
    return CheckResult(name, "ok", f"{app.name} ({app.id})")


async def _command_check(
    client: discord.Client, config: DiscordConfig, application_id: int
) -> CheckResult:
    name = "discord: command"
    guild = config.guild_id
    where = f"in server {guild}" if guild else "globally"
    try:
        if guild:
            commands = await client.http.get_guild_commands(application_id, guild)
        else:
            commands = await client.http.get_global_commands(application_id)
    except discord.HTTPException as exc:
        if guild and (exc.status in (403, 404) or exc.code == _UNKNOWN_GUILD):
            return CheckResult(
                name,
                "fail",
                f"the bot cannot register commands in server {guild} ({describe(exc)})",
                "open the invite URL above and add the bot to that server, or correct "
                "DISCORD_GUILD_ID (Developer Mode, right-click the server, Copy Server ID).",
            )
        return CheckResult(name, "fail", f"cannot list the commands {where} ({describe(exc)})")
    except _NETWORK_ERRORS as exc:
        return CheckResult(name, "fail", unreachable(config.api_base_url, exc))
    if any(command.get("name") == COMMAND for command in commands):
        return CheckResult(name, "ok", f"/{COMMAND} is registered {where}")
    later = "" if guild else " (a global command can take a while to reach every server)"
    return CheckResult(
        name,
        "warn",
        f"/{COMMAND} is not registered {where} yet; `usage-bot run` registers it at start{later}",
        "run the bot; set DISCORD_GUILD_ID for instant registration in one server.",
    )


async def _channel_check(client: discord.Client, config: DiscordConfig) -> CheckResult:
    name = "discord: alert channel"
    channel_id = config.alert_channel_id
    if channel_id is None:
        if config.webhook_url is not None:
            return CheckResult(name, "skip", "not set: alerts go through the webhook")
        return CheckResult(
            name,
            "warn",
            f"DISCORD_ALERT_CHANNEL_ID is not set: Discord gets no alerts, only /{COMMAND}",
            "set DISCORD_ALERT_CHANNEL_ID to the ID of the channel for alerts (Developer Mode, "
            "right-click the channel, Copy Channel ID).",
        )
    try:
        channel = await client.http.get_channel(channel_id)
    except discord.NotFound as exc:
        return CheckResult(
            name,
            "fail",
            f"Discord knows no channel {channel_id} that the bot can see ({describe(exc)})",
            "check DISCORD_ALERT_CHANNEL_ID, and that the bot is in that server.",
        )
    except discord.Forbidden as exc:
        return CheckResult(
            name, "fail", f"the bot cannot see channel {channel_id} ({describe(exc)})", CHANNEL_FIX
        )
    except discord.HTTPException as exc:
        return CheckResult(name, "fail", f"cannot look at channel {channel_id} ({describe(exc)})")
    except _NETWORK_ERRORS as exc:
        return CheckResult(name, "fail", unreachable(config.api_base_url, exc))
    label = f"#{channel.get('name', '?')} ({channel_id})"
    if channel.get("type") not in _MESSAGEABLE_CHANNELS:
        return CheckResult(
            name,
            "fail",
            f"{label} is not a channel the bot can post messages in",
            "choose a text or announcement channel.",
        )
    return CheckResult(
        name,
        "ok",
        f"alerts go to {label}, where the bot needs {NEEDED_PERMISSIONS}; not test-posted",
    )


async def _webhook_check(config: DiscordConfig, url: Secret) -> CheckResult:
    name = "discord: webhook"
    if WEBHOOK_URL.match(url.reveal()) is None:
        return CheckResult(
            name,
            "warn",
            "DISCORD_WEBHOOK_URL is not a Discord webhook URL "
            "(https://discord.com/api/webhooks/ID/TOKEN); it is used as it is, but not checked",
        )
    target = webhook_target(url, config.api_base_url)
    try:
        answered = await request("GET", str(target), time_limit=CHAT_REQUEST_TIMEOUT)
    except _NETWORK_ERRORS as exc:
        return CheckResult(name, "fail", unreachable(config.api_base_url, exc))
    if answered.status == 200:
        try:
            webhook = json.loads(answered.body)
        except ValueError:
            webhook = {}
        about = webhook if isinstance(webhook, dict) else {}
        return CheckResult(
            name,
            "ok",
            f"posts as {clean(str(about.get('name', '?')))} to channel "
            f"{about.get('channel_id', '?')}; not test-posted, so that the channel gets no "
            "test message",
        )
    body = ErrorBody.of(answered)
    if answered.status in (401, 404):
        return CheckResult(
            name, "fail", f"Discord knows no such webhook ({answered.status} {body})", WEBHOOK_FIX
        )
    return CheckResult(
        name, "fail", f"Discord answered HTTP {answered.status} ({body}) for the webhook"
    )
