"""Alerts to a Slack channel with ``chat.postMessage``, and what Slack's refusals mean.

Every way a post can fail becomes one :class:`DeliveryError` in one place,
:func:`delivery_errors` (as httpx's ``map_exceptions``): the HTTP status first (429 is a
rate limit, 5xx Slack's own trouble), then Slack's error code looked up in
:data:`ERRORS`, each entry saying whether retrying can help and the sentence with the fix.
A code missing from the table is retried, and its sentence names it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError

from usage_bot._client import parse_retry_after
from usage_bot._config import Secret
from usage_bot._exceptions import DeliveryError
from usage_bot._notify import AlertMessage
from usage_bot.frontends.slack.errors import TOKEN_REJECTED, bot_token_rejected
from usage_bot.frontends.slack.render import render_alert
from usage_bot.frontends.slack.web_api import error_code, single_try_client

BOT_MENTION = "@usage-bot"


class SlackChannelNotifier:
    """Alerts to one channel; the bot must be a member. One try per post: the courier
    decides when to try again."""

    def __init__(self, *, token: Secret, channel: str, api_base_url: str) -> None:
        self._channel = channel
        self._client = single_try_client(token, api_base_url)

    @property
    def name(self) -> str:
        return f"slack:{self._channel}"

    async def post(self, message: AlertMessage) -> None:
        rendered = render_alert(message).payload()
        with delivery_errors(self._channel):
            await self._client.chat_postMessage(
                channel=self._channel, unfurl_links=False, unfurl_media=False, **rendered
            )


# -- Slack's errors, as ours -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a failed post means: whether retrying can help, and what to tell the operator.

    ``says`` may name ``{error}`` (Slack's code), ``{status}``, ``{channel}``, ``{when}``
    (when the retry comes) and ``{mention}`` (how to invite the bot).
    """

    retryable: bool
    says: str

    def delivery_error(
        self, *, code: str, status: int, channel: str, retry_after: float | None
    ) -> DeliveryError:
        when = f"in {retry_after:.0f} s" if retry_after is not None else "later"
        message = self.says.format(
            error=code, status=status, channel=channel, when=when, mention=BOT_MENTION
        )
        wait = retry_after if self.retryable else None
        return DeliveryError(message, retryable=self.retryable, retry_after=wait)


RATE_LIMITED = Outcome(
    True, "Slack is rate-limiting the bot's posts (ratelimited); the alert is retried {when}."
)
SLACK_FAILED = Outcome(
    True, "Slack failed to take the alert (HTTP {status}, {error}); it is retried later."
)
FORMAT_REFUSED = Outcome(
    False,
    "Slack refused the alert's format ({error}); this is a usage-bot bug, please report it.",
)
OTHERWISE = Outcome(True, "Slack refused the alert ({error}); it is retried later.")

ERRORS: Mapping[str, Outcome] = {
    "ratelimited": RATE_LIMITED,
    **dict.fromkeys(
        ("internal_error", "fatal_error", "service_unavailable", "request_timeout"), SLACK_FAILED
    ),
    "not_in_channel": Outcome(
        False,
        "The bot is not a member of channel {channel} (not_in_channel): invite it with "
        "/invite {mention} in that channel.",
    ),
    "channel_not_found": Outcome(
        False,
        "Slack finds no channel {channel} that the bot can see (channel_not_found): set "
        "SLACK_ALERT_CHANNEL to the channel's ID (channel details, at the bottom), and for a "
        "private channel invite the bot with /invite {mention}.",
    ),
    "is_archived": Outcome(
        False,
        "Channel {channel} is archived (is_archived): unarchive it, or set "
        "SLACK_ALERT_CHANNEL to another channel.",
    ),
    **dict.fromkeys(TOKEN_REJECTED, Outcome(False, bot_token_rejected("{error}"))),
    "missing_scope": Outcome(
        False,
        "The Slack app may not post messages (missing_scope): give it the bot scope "
        "chat:write (its OAuth & Permissions page, Bot Token Scopes), then reinstall it "
        "(Install App).",
    ),
    **dict.fromkeys(
        (
            "invalid_blocks",
            "invalid_blocks_format",
            "msg_too_long",
            "no_text",
            "invalid_arguments",
            "invalid_form_data",
            "too_many_attachments",
            "invalid_payload",
        ),
        FORMAT_REFUSED,
    ),
}


def outcome(status: int, code: str) -> Outcome:
    """What a refusal with this HTTP status and Slack error code means."""
    if status == 429:
        return RATE_LIMITED
    if status >= 500:
        return SLACK_FAILED
    return ERRORS.get(code, OTHERWISE)


@contextlib.contextmanager
def delivery_errors(channel: str) -> Iterator[None]:
    """Every failure of a post to ``channel``, raised as the :class:`DeliveryError` that
    says what to do; never chained (the SDK's errors carry the request)."""
    try:
        yield
    except SlackApiError as exc:
        response = exc.response
        code, status = error_code(response), response.status_code
        wait = _retry_after(response.headers)
        raise outcome(status, code).delivery_error(
            code=code, status=status, channel=channel, retry_after=wait
        ) from None
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise DeliveryError(
            f"Cannot reach Slack ({type(exc).__name__}); the alert is retried later.",
            retryable=True,
        ) from None


def _retry_after(headers: Any) -> float | None:
    raw = headers.get("Retry-After") if headers is not None else None
    return parse_retry_after(raw if isinstance(raw, str) else None, datetime.now(UTC))
