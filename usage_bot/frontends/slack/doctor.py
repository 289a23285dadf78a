"""The Slack lines of ``usage-bot doctor``: the bot token and its scopes, the connection
mode, the alert channel and the webhook. Each asks Slack once and posts nothing anywhere.

It calls Slack's Web API with httpx, not slack-sdk: ``doctor`` loads no chat SDK, so it
starts sooner and still works when an SDK install is broken. Its verdicts and sentences
are the front end's (:mod:`.errors`). Every call goes to ``SLACK_API_BASE_URL``, once,
within :data:`CHAT_REQUEST_TIMEOUT`; tokens travel only in the ``Authorization`` header.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx

from usage_bot import __version__
from usage_bot._checks import CheckResult
from usage_bot._config import HttpConfig, Secret, SlackConfig
from usage_bot._texts import SLASH
from usage_bot._timing import CHAT_REQUEST_TIMEOUT
from usage_bot.frontends.slack.errors import (
    NEEDED_SCOPES,
    SCOPES_FIX,
    TOKEN_REJECTED,
    app_token_rejected,
    auth_test_failed,
    bot_token_rejected,
    trusted_code,
    unreachable,
)
from usage_bot.frontends.slack.http_mode import EVENTS_PATH

USER_AGENT = f"usage-bot/{__version__} (doctor)"


async def doctor_checks(config: SlackConfig, http: HttpConfig) -> list[CheckResult]:
    """Every Slack check the configuration calls for; none when Slack is not configured."""
    results: list[CheckResult] = []
    token = config.bot_token
    if token is not None:
        async with _WebApi(config.api_base_url) as slack:
            identity = await _token_checks(slack, token, results)
            if identity is None:
                results.append(CheckResult("slack: connection", "skip", "the bot token must work"))
            else:
                results.append(await _mode_check(slack, config, http))
                results.append(await _channel_check(slack, config, token, identity))
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


# -- the Web API, with httpx ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Answer:
    """A Web API answer: its JSON (``{}`` when it was none) and its headers."""

    status: int
    data: Mapping[str, Any]
    headers: httpx.Headers

    @property
    def ok(self) -> bool:
        return self.data.get("ok") is True

    @property
    def error(self) -> str:
        return trusted_code(self.data.get("error"))


class _WebApi:
    """Slack's Web API as slack-sdk calls it: ``POST {base}/{method}``, the token as a
    bearer, the arguments as a form; one try. httpx's errors pass through."""

    def __init__(self, base_url: str) -> None:
        # slack-sdk adds the slash too, so both resolve a base without one the same way.
        self._base_url = base_url if base_url.endswith("/") else base_url + "/"
        self._client = httpx.AsyncClient(
            timeout=CHAT_REQUEST_TIMEOUT, headers={"User-Agent": USER_AGENT}
        )

    async def __aenter__(self) -> _WebApi:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self._client.aclose()

    async def call(self, method: str, token: Secret, **arguments: str) -> _Answer:
        response = await self._client.post(
            urljoin(self._base_url, method),
            data=arguments,
            headers={"Authorization": f"Bearer {token.reveal()}"},
        )
        try:
            data = response.json()
        except ValueError:
            data = None
        return _Answer(
            response.status_code, data if isinstance(data, dict) else {}, response.headers
        )

    @property
    def base_url(self) -> str:
        return self._base_url


# -- the checks ----------------------------------------------------------------------------


async def _token_checks(
    slack: _WebApi, token: Secret, results: list[CheckResult]
) -> Mapping[str, Any] | None:
    """``auth.test``: the bot token's line and its scopes' line; who the bot is, or None."""
    name = "slack: bot token"
    try:
        answer = await slack.call("auth.test", token)
    except httpx.TransportError as exc:
        results.append(CheckResult(name, "fail", unreachable(slack.base_url, exc)))
        return None
    if not answer.ok:
        error = answer.error
        said = (
            bot_token_rejected(error)
            if error in TOKEN_REJECTED
            else auth_test_failed(error, answer.status)
        )
        results.append(CheckResult(name, "fail", said))
        return None
    identity = answer.data
    results.append(
        CheckResult(
            name,
            "ok",
            f"{token.masked()} is @{identity.get('user')} in {identity.get('team')} "
            f"({identity.get('url')})",
        )
    )
    granted = answer.headers.get("x-oauth-scopes")
    if granted is not None:
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
    return identity


async def _mode_check(slack: _WebApi, config: SlackConfig, http: HttpConfig) -> CheckResult:
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
        answer = await slack.call("apps.connections.open", app_token)
    except httpx.TransportError as exc:
        return CheckResult(name, "fail", unreachable(slack.base_url, exc))
    if not answer.ok:
        return CheckResult(
            name,
            "fail",
            f"{app_token.masked()} does not open a connection ({answer.error})",
            app_token_rejected(answer.error),
        )
    return CheckResult(name, "ok", f"{app_token.masked()} opens a Socket Mode connection")


async def _channel_check(
    slack: _WebApi, config: SlackConfig, token: Secret, identity: Mapping[str, Any]
) -> CheckResult:
    channel = config.alert_channel
    name = "slack: alert channel"
    invite = f"in that channel, type /invite @{identity.get('user')}"
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
        answer = await slack.call("conversations.info", token, channel=channel)
    except httpx.TransportError as exc:
        return CheckResult(name, "fail", unreachable(slack.base_url, exc))
    if not answer.ok:
        error = answer.error
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
    about = answer.data.get("channel")
    about = about if isinstance(about, dict) else {}
    label = f"#{about.get('name', '?')} ({channel})"
    if about.get("is_archived"):
        return CheckResult(
            name, "fail", f"{label} is archived", "unarchive it or choose another channel."
        )
    if about.get("is_member") is False:
        return CheckResult(name, "fail", f"the bot is not a member of {label}", invite + ".")
    return CheckResult(name, "ok", f"alerts go to {label}; the bot is a member")
