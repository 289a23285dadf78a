"""Discord alert destinations: the alert channel, as the bot, and an incoming webhook.

Each post is one plain HTTP request, outside discord.py: a 429 or a 5xx comes back at once
as a retryable :class:`DeliveryError` instead of sleeping through discord.py's own
retries (the alert scheduler decides when to try again), and a webhook-only setup loads
no discord.py at all: this module imports only aiohttp, yarl and the bot's own modules.

What Discord answers becomes a :class:`DeliveryError` through one table, :data:`ERRORS`:
the first row that matches the destination, the HTTP status or Discord's JSON error code
says whether to retry and what to tell the operator. No sentence ever holds the webhook
URL or a token: they are built from ids, statuses and Discord's own short message.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import aiohttp
import yarl

from usage_bot import __version__
from usage_bot._config import Secret
from usage_bot._exceptions import DeliveryError
from usage_bot._notify import AlertMessage
from usage_bot._timing import CHAT_REQUEST_TIMEOUT, MAX_RETRY_AFTER
from usage_bot.frontends.discord.render import render_alert

# Discord asks for "DiscordBot (URL, version)"; Cloudflare may block other agents.
USER_AGENT = f"DiscordBot (usage-bot, {__version__})"

# The fixes, said by the errors below, by the front end at start and by doctor.
LOGIN_FIX = (
    "copy a new token from the Developer Portal (your application, Bot, Reset Token) and set "
    "DISCORD_BOT_TOKEN to it."
)
NEEDED_PERMISSIONS = "View Channel, Send Messages and Embed Links"
CHANNEL_FIX = f"give the bot {NEEDED_PERMISSIONS} in that channel."
WEBHOOK_FIX = (
    "the webhook was deleted: make a new one (channel settings, Integrations, Webhooks, New "
    "Webhook, Copy Webhook URL) and set DISCORD_WEBHOOK_URL to it."
)

WEBHOOK_URL = re.compile(
    r"^https?://(?:ptb\.|canary\.)?discord(?:app)?\.com/api/(?:v\d+/)?webhooks/"
    r"(?P<id>[0-9]{15,21})/(?P<token>[A-Za-z0-9._-]+)/?$"
)


# -- the destinations ----------------------------------------------------------------------


class DiscordChannelNotifier:
    """Alerts to one channel as the bot (``POST /channels/{id}/messages``)."""

    def __init__(
        self,
        *,
        token: Secret,
        channel_id: int,
        api_base_url: str,
        timeout: float = CHAT_REQUEST_TIMEOUT,
    ) -> None:
        self._token = token
        self._channel_id = channel_id
        self._url = f"{api_base_url.rstrip('/')}/channels/{channel_id}/messages"
        self._timeout = timeout

    @property
    def name(self) -> str:
        return f"discord:{self._channel_id}"

    async def post(self, message: AlertMessage) -> None:
        where = f"channel {self._channel_id}"
        headers = {"Authorization": f"Bot {self._token.reveal()}"}
        answered = await _post(self._url, _payload(message), headers, self._timeout, where)
        if answered.status >= 300:
            raise delivery_error("channel", where, answered)


class DiscordWebhookNotifier:
    """Alerts through an incoming webhook: no bot needed. The URL is a secret.

    A ``discord.com/api/webhooks/ID/TOKEN`` URL is sent to ``DISCORD_API_BASE_URL``, as
    discord.py does; any other URL (a relay) as it is.
    """

    name = "discord-webhook"

    def __init__(
        self, *, url: Secret, api_base_url: str, timeout: float = CHAT_REQUEST_TIMEOUT
    ) -> None:
        self._url = url
        self._api_base_url = api_base_url
        self._timeout = timeout

    async def post(self, message: AlertMessage) -> None:
        where = "the webhook"
        payload = {**_payload(message), "username": "Claude usage"}
        url = webhook_target(self._url, self._api_base_url).update_query(wait="true")
        answered = await _post(str(url), payload, {}, self._timeout, where)
        if answered.status >= 300:
            raise delivery_error("webhook", where, answered)


def webhook_target(url: Secret, api_base_url: str) -> yarl.URL:
    """Where a webhook URL is sent: below ``api_base_url`` when it is Discord's own."""
    match = WEBHOOK_URL.match(url.reveal())
    if match is None:
        return yarl.URL(url.reveal())
    return yarl.URL(f"{api_base_url.rstrip('/')}/webhooks/{match['id']}/{match['token']}")


def _payload(message: AlertMessage) -> dict[str, Any]:
    return {"embeds": [render_alert(message)], "allowed_mentions": {"parse": []}}


# -- Discord's answers as DeliveryError ----------------------------------------------------

Target = Literal["channel", "webhook"]
_BOTH: frozenset[Target] = frozenset({"channel", "webhook"})
_CHANNEL: frozenset[Target] = frozenset({"channel"})
_WEBHOOK: frozenset[Target] = frozenset({"webhook"})


@dataclass(frozen=True, slots=True)
class _Row:
    """Answers to posts to ``to`` with one of ``statuses`` or JSON ``codes`` (a row with
    neither matches any answer) become a :class:`DeliveryError` that ``says`` this.

    ``says`` may use ``{where}``, ``{status}``, ``{answer}`` (Discord's code and message),
    ``{detail}`` (all three) and ``{when}`` (when it is retried)."""

    to: frozenset[Target]
    says: str
    statuses: frozenset[int] = frozenset()
    codes: frozenset[int] = frozenset()
    retryable: bool = False

    def matches(self, target: Target, status: int, code: int) -> bool:
        if target not in self.to:
            return False
        anything = not self.statuses and not self.codes
        return anything or status in self.statuses or code in self.codes


ERRORS: tuple[_Row, ...] = (
    _Row(
        _BOTH,
        "Discord is rate-limiting posts to {where}; the alert is retried {when}.",
        statuses=frozenset({429}),
        retryable=True,
    ),
    _Row(
        _BOTH,
        "Discord failed (HTTP {status}) while posting to {where}; the alert is retried later.",
        statuses=frozenset(range(500, 600)),
        retryable=True,
    ),
    _Row(
        _CHANNEL,
        "Discord rejected DISCORD_BOT_TOKEN ({status} {answer}): " + LOGIN_FIX,
        statuses=frozenset({401}),
    ),
    _Row(
        _CHANNEL,
        "The bot may not post to {where} ({status} {answer}): " + CHANNEL_FIX,
        statuses=frozenset({403}),
        codes=frozenset({50001, 50013}),  # Missing Access, Missing Permissions
    ),
    _Row(
        _CHANNEL,
        "Discord knows no {where} that the bot can see ({status} {answer}): check "
        "DISCORD_ALERT_CHANNEL_ID (Developer Mode, right-click the channel, Copy Channel "
        "ID), and that the bot is in that server.",
        statuses=frozenset({404}),
    ),
    _Row(
        _WEBHOOK,
        "Discord knows no such webhook ({status} {answer}): " + WEBHOOK_FIX,
        statuses=frozenset({401, 404}),
        codes=frozenset({10015, 50027}),  # Unknown Webhook, Invalid Webhook Token
    ),
    _Row(
        _WEBHOOK,
        "Discord refused the webhook's post ({status} {answer}): check the channel's "
        "permissions, or " + WEBHOOK_FIX,
        statuses=frozenset({403}),
    ),
    _Row(
        _BOTH,
        "Discord refused the alert to {where} ({detail}); this is likely a bug in usage-bot: "
        "please report it.",
    ),
)


def delivery_error(target: Target, where: str, answered: Answered) -> DeliveryError:
    """What a failed post to ``where`` means: the first row of :data:`ERRORS` that matches."""
    body = ErrorBody.of(answered)
    row = next(row for row in ERRORS if row.matches(target, answered.status, body.code))
    wait = body.retry_after if row.retryable else None
    if wait is not None:
        wait = min(wait, MAX_RETRY_AFTER)
    message = row.says.format(
        where=where,
        status=answered.status,
        answer=body,
        detail=f"HTTP {answered.status} {body}".rstrip(),
        when=f"in {wait:.1f} s" if wait is not None else "later",
    )
    return DeliveryError(message, retryable=row.retryable, retry_after=wait)


@dataclass(frozen=True, slots=True)
class Answered:
    """An HTTP answer from Discord: status, body, and headers with lower-case names."""

    status: int
    body: str
    headers: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class ErrorBody:
    """Discord's error body: ``code`` and ``message``, and ``retry_after`` for a 429 (from
    the body, else the ``retry-after`` header)."""

    code: int
    message: str
    retry_after: float | None

    @classmethod
    def of(cls, answered: Answered) -> ErrorBody:
        try:
            data: Any = json.loads(answered.body)
        except ValueError:
            data = None
        if not isinstance(data, dict):
            data = {}
        code, message = data.get("code"), data.get("message")
        retry_after = _seconds(data.get("retry_after"))
        if retry_after is None:
            retry_after = _seconds(answered.headers.get("retry-after"))
        return cls(
            code=code if type(code) is int else 0,
            message=clean(message) if isinstance(message, str) else "",
            retry_after=retry_after,
        )

    def __str__(self) -> str:
        return " ".join(part for part in (str(self.code or ""), self.message) if part)


async def request(
    method: str,
    url: str,
    *,
    time_limit: float,
    payload: dict[str, Any] | None = None,
    headers: Mapping[str, str] | None = None,
) -> Answered:
    """One request to Discord; aiohttp's errors and TimeoutError pass through."""
    async with (
        aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=time_limit),
            headers={"User-Agent": USER_AGENT},
            trust_env=True,
        ) as session,
        session.request(method, url, json=payload, headers=headers) as response,
    ):
        body = await response.text()
        return Answered(response.status, body, {k.lower(): v for k, v in response.headers.items()})


async def _post(
    url: str, payload: dict[str, Any], headers: dict[str, str], time_limit: float, where: str
) -> Answered:
    """POST once: Discord's answer, or a retryable :class:`DeliveryError` if there is none."""
    try:
        return await request("POST", url, time_limit=time_limit, payload=payload, headers=headers)
    except TimeoutError:
        raise DeliveryError(
            f"Discord did not answer within {time_limit:g} s while posting to {where}; the "
            "alert is retried later.",
            retryable=True,
        ) from None
    except (aiohttp.ClientError, OSError) as exc:
        # Never chained or echoed: aiohttp's errors can carry the URL, a secret for webhooks.
        raise DeliveryError(
            f"Cannot reach Discord ({type(exc).__name__}) to post to {where}; the alert is "
            "retried later.",
            retryable=True,
        ) from None


def unreachable(api_base_url: str, exc: BaseException) -> str:
    """Why Discord could not be reached at all, and what to check."""
    host = yarl.URL(api_base_url).host or api_base_url
    return (
        f"Cannot reach Discord at {host} ({type(exc).__name__}); check this machine's network "
        "(and proxy settings) and DISCORD_API_BASE_URL."
    )


def clean(text: str) -> str:
    """Discord's own error message, made safe to log: one short line."""
    return " ".join(text.split())[:200]


def _seconds(raw: object) -> float | None:
    """A wait in seconds from a JSON number or a header, or None."""
    if isinstance(raw, bool) or not isinstance(raw, int | float | str):
        return None
    try:
        value = float(raw)
    except ValueError:
        return None
    return max(value, 0.0) if math.isfinite(value) else None
