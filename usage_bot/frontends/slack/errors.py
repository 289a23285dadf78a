"""What Slack's Web API errors mean, in words: which codes say the token itself is no
good, which codes are safe to echo, and the sentences with the fix that start-up, the
alerts and ``usage-bot doctor`` share.

It imports no Slack SDK (nor aiohttp or httpx): ``doctor`` asks Slack with httpx, the
front end and the alerts with slack-sdk, and both say the same thing. No sentence built
here holds a token: only Slack's error codes (kept only when they look like one), HTTP
statuses and host names.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from usage_bot._texts import SLACK_DOCS_URL

# What Slack says when the token itself is no good (revoked, expired, never valid).
TOKEN_REJECTED = frozenset(
    {"invalid_auth", "not_authed", "token_revoked", "token_expired", "account_inactive"}
)
# Like channel_not_found; anything else Slack (or a proxy) sends is not echoed.
_ERROR_CODE = re.compile(r"^[a-z][a-z0-9_]{0,60}$")

# What /claude-usage and the alerts need, and what doctor needs to look at the channel.
NEEDED_SCOPES = ("commands", "chat:write")
READ_SCOPES = ("channels:read", "groups:read")
SCOPES_FIX = (
    f"give the app the bot scopes {', '.join(NEEDED_SCOPES + READ_SCOPES)} (its OAuth & "
    "Permissions page, Bot Token Scopes), then reinstall it (Install App); why each: "
    f"{SLACK_DOCS_URL}#the-scopes-and-why"
)


def trusted_code(error: object) -> str:
    """Slack's ``error``, or ``unknown_error`` when it sent none that looks like a code."""
    return error if isinstance(error, str) and _ERROR_CODE.match(error) else "unknown_error"


def bot_token_rejected(error: str) -> str:
    return (
        f"Slack rejected SLACK_BOT_TOKEN ({error}): copy the Bot User OAuth Token (xoxb-…) "
        "from the app's OAuth & Permissions page again, or reinstall the app to the workspace."
    )


def auth_test_failed(error: str, status: int) -> str:
    """``auth.test`` failed for another reason than the token."""
    return (
        f"Slack's auth.test failed ({error}, HTTP {status}); try again later, and check "
        "SLACK_API_BASE_URL."
    )


def app_token_rejected(error: str) -> str:
    return (
        f"Slack rejected SLACK_APP_TOKEN ({error}): turn Socket Mode on for the app and "
        "create an app-level token with the connections:write scope (the app's Basic "
        "Information page, App-Level Tokens); set SLACK_APP_TOKEN to it (xapp-…)."
    )


def unreachable(base_url: str, exc: BaseException) -> str:
    host = urlsplit(base_url).hostname or base_url
    return (
        f"Cannot reach Slack at {host} ({type(exc).__name__}): check this machine's network "
        "and proxy settings, and SLACK_API_BASE_URL."
    )
