"""Alerts through a Slack incoming webhook: no app, no bot token.

Only aiohttp (and the bot's own modules) is imported here, never slack_sdk or slack-bolt:
a setup with a webhook alone loads no Slack SDK. The URL is a secret: it is never logged,
chained or echoed (aiohttp's errors can carry it). A webhook answers a failure with a
status and a one-word body; :func:`outcome` reads the two with its own small table.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

import aiohttp

from usage_bot._client import parse_retry_after
from usage_bot._config import Secret
from usage_bot._exceptions import DeliveryError
from usage_bot._notify import AlertMessage
from usage_bot._timing import CHAT_REQUEST_TIMEOUT
from usage_bot.frontends.slack.render import render_alert

_ERROR_CODE = re.compile(r"^[a-z][a-z0-9_]{0,60}$")


class SlackWebhookNotifier:
    """Alerts to the channel of one incoming webhook; one try per post."""

    name = "slack-webhook"

    def __init__(self, *, url: Secret) -> None:
        self._url = url

    async def post(self, message: AlertMessage) -> None:
        payload = render_alert(message).payload()
        timeout = aiohttp.ClientTimeout(total=CHAT_REQUEST_TIMEOUT)
        try:
            async with (
                aiohttp.ClientSession(timeout=timeout, trust_env=True) as session,
                session.post(self._url.reveal(), json=payload) as response,
            ):
                body = (await response.text()).strip()
                status = response.status
                retry_after = parse_retry_after(
                    response.headers.get("Retry-After"), datetime.now(UTC)
                )
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise DeliveryError(
                f"Cannot reach Slack's incoming webhook ({type(exc).__name__}); the alert is "
                "retried later.",
                retryable=True,
            ) from None
        if status == 200:
            return
        code = body if _ERROR_CODE.match(body) else None
        error = code or f"HTTP {status}"
        failure = outcome(status, code)
        wait = retry_after if failure.retryable else None
        when = f"in {wait:.0f} s" if wait is not None else "later"
        raise DeliveryError(
            failure.says.format(error=error, when=when),
            retryable=failure.retryable,
            retry_after=wait,
        )


@dataclass(frozen=True, slots=True)
class Outcome:
    """Whether retrying can help, and the sentence (naming ``{error}`` and ``{when}``)."""

    retryable: bool
    says: str


RATE_LIMITED = Outcome(
    True, "Slack is rate-limiting the incoming webhook ({error}); the alert is retried {when}."
)
FAILED = Outcome(True, "Slack's incoming webhook failed ({error}); the alert is retried later.")
GONE = Outcome(
    False,
    "Slack no longer accepts this incoming webhook ({error}): it was removed, or its app "
    "uninstalled. Create a new one (the app's Incoming Webhooks page) and put its URL in "
    "SLACK_WEBHOOK_URL.",
)
REFUSED = Outcome(
    False, "Slack refused the alert ({error}); this is likely a usage-bot bug, please report it."
)

ERRORS: Mapping[str, Outcome] = {
    "channel_is_archived": Outcome(
        False,
        "The incoming webhook's channel is archived (channel_is_archived): unarchive it, or "
        "create a webhook for another channel and put its URL in SLACK_WEBHOOK_URL.",
    ),
    **dict.fromkeys(
        ("no_service", "no_active_hooks", "invalid_token", "team_disabled", "channel_not_found"),
        GONE,
    ),
}
# A status that says it all, whatever the body.
_GONE_STATUSES = frozenset({403, 404, 410})


def outcome(status: int, code: str | None) -> Outcome:
    """What a webhook's answer means: its status first (429, 408 and 5xx pass), then its
    body's code, then the status again (the webhook is gone)."""
    if status == 429:
        return RATE_LIMITED
    if status >= 500 or status == 408:
        return FAILED
    if code is not None and code in ERRORS:
        return ERRORS[code]
    return GONE if status in _GONE_STATUSES else REFUSED
