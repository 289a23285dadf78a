"""The Slack lines of ``usage-bot doctor``: the bot token and its scopes, the connection
mode, the alert channel and the webhook. Each asks Slack once and posts nothing anywhere.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.web.async_slack_response import AsyncSlackResponse

from usage_bot._checks import CheckResult
from usage_bot._config import HttpConfig, Secret, SlackConfig
from usage_bot._exceptions import FrontEndFailed
from usage_bot._texts import SLASH
from usage_bot.frontends.slack.http_mode import EVENTS_PATH
from usage_bot.frontends.slack.web_api import (
    app_token_rejected,
    error_code,
    sign_in,
    single_try_client,
    unreachable,
)

# What /claude-usage and the alerts need; the manifests ask for these and the read scopes.
NEEDED_SCOPES = ("commands", "chat:write")
SCOPES_FIX = "add the scopes of deploy/slack-app-manifest.yml and reinstall the app."


async def doctor_checks(config: SlackConfig, http: HttpConfig) -> list[CheckResult]:
    """Every Slack check the configuration calls for; none when Slack is not configured."""
    results: list[CheckResult] = []
    token = config.bot_token
    if token is not None:
        client = single_try_client(token, config.api_base_url)
        try:
            identity = await sign_in(client, config.api_base_url)
        except FrontEndFailed as exc:
            results.append(CheckResult("slack: bot token", "fail", exc.message))
            results.append(CheckResult("slack: connection", "skip", "the bot token must work"))
        else:
            results.extend(_identity_checks(identity, token))
            results.append(await _mode_check(client, config, http))
            results.append(await _channel_check(client, config, str(identity.get("user"))))
    if config.webhook_url is not None:
        host = urlsplit(config.webhook_url.reveal()).hostname or "?"
        results.append(
            CheckResult(
                "slack: webhook",
                "skip",
                f"SLACK_WEBHOOK_URL is set (to {host}); not test-posted, so that the channel "
                "gets no test message",
            )
        )
    return results


def _identity_checks(identity: AsyncSlackResponse, token: Secret) -> list[CheckResult]:
    results = [
        CheckResult(
            "slack: bot token",
            "ok",
            f"{token.masked()} is @{identity.get('user')} in {identity.get('team')} "
            f"({identity.get('url')})",
        )
    ]
    granted = identity.headers.get("x-oauth-scopes") if identity.headers else None
    if isinstance(granted, str):
        scopes = {s.strip() for s in granted.split(",") if s.strip()}
        missing = [s for s in NEEDED_SCOPES if s not in scopes]
        results.append(
            CheckResult(
                "slack: scopes",
                "fail" if missing else "ok",
                f"missing {', '.join(missing)}" if missing else ", ".join(sorted(scopes)),
                SCOPES_FIX,
            )
        )
    return results


async def _mode_check(client: AsyncWebClient, config: SlackConfig, http: HttpConfig) -> CheckResult:
    app_token = config.app_token
    if app_token is None:
        return CheckResult(
            "slack: HTTP mode",
            "ok",
            f"Slack sends {SLASH} to POST {EVENTS_PATH} on this bot's HTTP server "
            f"({http.host}:{http.port}); set the command's Request URL to "
            f"https://<your public host>{EVENTS_PATH}",
        )
    name = "slack: Socket Mode"
    try:
        await client.apps_connections_open(app_token=app_token.reveal())
    except SlackApiError as exc:
        error = error_code(exc.response)
        return CheckResult(
            name,
            "fail",
            f"{app_token.masked()} does not open a connection ({error})",
            app_token_rejected(error),
        )
    except (aiohttp.ClientError, TimeoutError) as exc:
        return CheckResult(name, "fail", unreachable(config.api_base_url, exc))
    return CheckResult(name, "ok", f"{app_token.masked()} opens a Socket Mode connection")


async def _channel_check(client: AsyncWebClient, config: SlackConfig, bot_user: str) -> CheckResult:
    channel = config.alert_channel
    name = "slack: alert channel"
    invite = f"in that channel, type /invite @{bot_user}"
    if channel is None:
        if config.webhook_url is not None:
            return CheckResult(name, "skip", "not set: alerts go through the webhook")
        return CheckResult(
            name,
            "warn",
            f"SLACK_ALERT_CHANNEL is not set: Slack gets no alerts, only {SLASH}",
            "set SLACK_ALERT_CHANNEL to the ID of the channel for alerts and invite the bot there.",
        )
    try:
        info = await client.conversations_info(channel=channel)
    except SlackApiError as exc:
        error = error_code(exc.response)
        if error == "channel_not_found":
            return CheckResult(
                name,
                "fail",
                f"Slack finds no channel {channel} that the bot can see",
                "use the channel's ID (channel details, at the bottom); for a private "
                f"channel, invite the bot first: {invite}.",
            )
        if error == "missing_scope":
            return CheckResult(
                name,
                "warn",
                f"cannot check {channel}: the app lacks channels:read (groups:read for a "
                "private channel)",
                SCOPES_FIX,
            )
        return CheckResult(name, "fail", f"conversations.info failed for {channel} ({error})")
    except (aiohttp.ClientError, TimeoutError) as exc:
        return CheckResult(name, "fail", unreachable(config.api_base_url, exc))
    about = info.get("channel") or {}
    label = f"#{about.get('name', '?')} ({channel})"
    if about.get("is_archived"):
        return CheckResult(
            name, "fail", f"{label} is archived", "unarchive it or choose another channel."
        )
    if about.get("is_member") is False:
        return CheckResult(name, "fail", f"the bot is not a member of {label}", invite + ".")
    return CheckResult(name, "ok", f"alerts go to {label}; the bot is a member")
