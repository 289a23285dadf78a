"""The Discord lines of ``usage-bot doctor``: the bot token, the application and the URL
that invites the bot, the command's registration, the alert channel and the webhook.

It reads and never posts: a test message in the alert channel would be noise, so the
channel and the webhook are looked at, not written to.

It calls Discord's REST API with httpx, not discord.py: ``doctor`` loads no chat SDK, so
it starts sooner and still works when an SDK install is broken. Every call goes to
``DISCORD_API_BASE_URL``, once (no retries: doctor reports, it does not wait out a rate
limit), within :data:`CHAT_REQUEST_TIMEOUT`; the bot token travels only in the
``Authorization`` header. The webhook is looked at as the alerts post to it
(:func:`.notify.request`, on aiohttp): its URL is a secret, and httpx logs the URL of
every request it makes.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
import httpx

from usage_bot._checks import CheckResult
from usage_bot._command import COMMAND
from usage_bot._config import DiscordConfig, Secret
from usage_bot._timing import CHAT_REQUEST_TIMEOUT
from usage_bot.frontends.discord.notify import (
    CHANNEL_FIX,
    LOGIN_FIX,
    NEEDED_PERMISSIONS,
    USER_AGENT,
    WEBHOOK_FIX,
    WEBHOOK_URL,
    Answered,
    ErrorBody,
    clean,
    request,
    unreachable,
    webhook_target,
)

# What the bot needs in the alert channel, and what the invite URL asks for: View
# Channel, Send Messages and Embed Links (Discord's permission bits 10, 11 and 14).
BOT_PERMISSIONS = (1 << 10) | (1 << 11) | (1 << 14)
INVITE_SCOPES = ("bot", "applications.commands")
_UNKNOWN_GUILD = 10004
# Channel types a bot can post a message in: text, announcement, threads, voice text chat.
_MESSAGEABLE_CHANNELS = frozenset({0, 2, 5, 10, 11, 12, 13})
_NETWORK_ERRORS = (aiohttp.ClientError, OSError, TimeoutError)


def invite_url(application_id: int) -> str:
    """The URL that adds the bot to a server, with the scopes and permissions it needs
    (Discord's documented form, as discord.py's ``oauth_url`` builds it)."""
    return (
        f"https://discord.com/oauth2/authorize?client_id={application_id}"
        f"&scope={'+'.join(INVITE_SCOPES)}&permissions={BOT_PERMISSIONS}"
    )


async def doctor_checks(config: DiscordConfig) -> list[CheckResult]:
    """Every Discord line of ``doctor``; none when Discord is not configured."""
    results: list[CheckResult] = []
    if config.bot_token is not None:
        async with _Rest(config.api_base_url, config.bot_token) as discord:
            results.extend(await _bot_checks(discord, config, config.bot_token))
    if config.webhook_url is not None:
        results.append(await _webhook_check(config, config.webhook_url))
    return results


# -- the REST API, with httpx ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Answer:
    """A REST answer: its status and JSON (None when it was none)."""

    status: int
    data: Any
    error: ErrorBody

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def fields(self) -> Mapping[str, Any]:
        """The JSON object answered, or ``{}`` when it was something else."""
        return self.data if isinstance(self.data, dict) else {}

    def __str__(self) -> str:
        """The failure in a few words and without URLs: ``HTTP 403 50001 Missing Access``."""
        return f"HTTP {self.status} {self.error}".rstrip()


class _Rest:
    """``GET {base}{path}`` as the bot, once; httpx's errors pass through."""

    def __init__(self, base_url: str, token: Secret) -> None:
        self._base_url = base_url.rstrip("/")
        self._client = httpx.AsyncClient(
            timeout=CHAT_REQUEST_TIMEOUT,
            headers={"User-Agent": USER_AGENT, "Authorization": f"Bot {token.reveal()}"},
        )

    async def __aenter__(self) -> _Rest:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self._client.aclose()

    async def get(self, path: str) -> _Answer:
        response = await self._client.get(self._base_url + path)
        try:
            data = response.json()
        except ValueError:
            data = None
        headers = {key.lower(): value for key, value in response.headers.items()}
        answered = Answered(response.status_code, response.text, headers)
        return _Answer(response.status_code, data, ErrorBody.of(answered))


# -- the checks ----------------------------------------------------------------------------


async def _bot_checks(discord: _Rest, config: DiscordConfig, token: Secret) -> list[CheckResult]:
    name = "discord: bot token"
    try:
        user = await discord.get("/users/@me")
        app = await discord.get("/oauth2/applications/@me") if user.ok else user
    except httpx.TransportError as exc:
        return [CheckResult(name, "fail", unreachable(config.api_base_url, exc))]
    if user.status == 401:
        return [CheckResult(name, "fail", f"Discord rejected {token.masked()}", LOGIN_FIX)]
    if not app.ok:
        return [CheckResult(name, "fail", f"Discord's API failed ({app})")]
    results = [CheckResult(name, "ok", f"{token.masked()} is the bot {_user_name(user.fields)}")]
    application_id = _snowflake(app.fields.get("id"))
    if application_id is None:
        results.append(
            CheckResult("discord: application", "fail", "Discord's answer named no application id")
        )
        return results
    results.append(_application_check(app.fields, application_id))
    results.append(CheckResult("discord: invite URL", "ok", invite_url(application_id)))
    results.append(await _command_check(discord, config, application_id))
    results.append(await _channel_check(discord, config))
    return results


def _user_name(user: Mapping[str, Any]) -> str:
    """As Discord shows a user: ``name``, or ``name#1234`` for an account from before
    unique user names."""
    name, discriminator = clean(str(user.get("username", "?"))), user.get("discriminator")
    return name if discriminator in (None, "", "0") else f"{name}#{discriminator}"


def _application_check(app: Mapping[str, Any], application_id: int) -> CheckResult:
    name = "discord: application"
    label = f"{clean(str(app.get('name', '?')))} ({application_id})"
    if app.get("interactions_endpoint_url"):
        return CheckResult(
            name,
            "fail",
            f"{label} has an Interactions Endpoint URL, so Discord sends /{COMMAND} there "
            "and not to the bot",
            "remove the Interactions Endpoint URL (Developer Portal, General Information).",
        )
    if app.get("bot_require_code_grant"):
        return CheckResult(
            name,
            "warn",
            f"{label} requires the OAuth2 code grant, so the invite URL fails",
            "turn off Requires OAuth2 Code Grant (Developer Portal, Bot).",
        )
    return CheckResult(name, "ok", label)


async def _command_check(discord: _Rest, config: DiscordConfig, application_id: int) -> CheckResult:
    name = "discord: command"
    guild = config.guild_id
    where = f"in server {guild}" if guild else "globally"
    path = f"/applications/{application_id}" + (f"/guilds/{guild}" if guild else "") + "/commands"
    try:
        answer = await discord.get(path)
    except httpx.TransportError as exc:
        return CheckResult(name, "fail", unreachable(config.api_base_url, exc))
    if not answer.ok:
        if guild and (answer.status in (403, 404) or answer.error.code == _UNKNOWN_GUILD):
            return CheckResult(
                name,
                "fail",
                f"the bot cannot register commands in server {guild} ({answer})",
                "open the invite URL above and add the bot to that server, or correct "
                "DISCORD_GUILD_ID (Developer Mode, right-click the server, Copy Server ID).",
            )
        return CheckResult(name, "fail", f"cannot list the commands {where} ({answer})")
    commands = answer.data if isinstance(answer.data, list) else []
    if any(isinstance(c, dict) and c.get("name") == COMMAND for c in commands):
        return CheckResult(name, "ok", f"/{COMMAND} is registered {where}")
    later = "" if guild else " (a global command can take a while to reach every server)"
    return CheckResult(
        name,
        "warn",
        f"/{COMMAND} is not registered {where} yet; `usage-bot run` registers it at start{later}",
        "run the bot; set DISCORD_GUILD_ID for instant registration in one server.",
    )


async def _channel_check(discord: _Rest, config: DiscordConfig) -> CheckResult:
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
        answer = await discord.get(f"/channels/{channel_id}")
    except httpx.TransportError as exc:
        return CheckResult(name, "fail", unreachable(config.api_base_url, exc))
    if answer.status == 404:
        return CheckResult(
            name,
            "fail",
            f"Discord knows no channel {channel_id} that the bot can see ({answer})",
            "check DISCORD_ALERT_CHANNEL_ID, and that the bot is in that server.",
        )
    if answer.status == 403:
        return CheckResult(
            name, "fail", f"the bot cannot see channel {channel_id} ({answer})", CHANNEL_FIX
        )
    if not answer.ok:
        return CheckResult(name, "fail", f"cannot look at channel {channel_id} ({answer})")
    channel = answer.fields
    label = f"#{clean(str(channel.get('name', '?')))} ({channel_id})"
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


def _snowflake(raw: object) -> int | None:
    """A Discord id (a string of digits in JSON), or None."""
    if isinstance(raw, str) and raw.isdigit():
        return int(raw)
    return raw if type(raw) is int else None
