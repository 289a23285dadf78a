"""Slack's Web API as the bot calls it: the client, the error code of a failed call, and
the sign-in check (``auth.test``) that start-up and ``usage-bot doctor`` share.

Every call goes to ``SLACK_API_BASE_URL``. No sentence built here holds a token: only
Slack's error codes (kept only when they look like one), HTTP statuses and host names.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.web.async_slack_response import AsyncSlackResponse

from usage_bot._config import Secret
from usage_bot._exceptions import FrontEndFailed
from usage_bot._timing import CHAT_REQUEST_TIMEOUT

# What Slack says when the token itself is no good (revoked, expired, never valid).
TOKEN_REJECTED = frozenset(
    {"invalid_auth", "not_authed", "token_revoked", "token_expired", "account_inactive"}
)
# Like channel_not_found; anything else Slack (or a proxy) sends is not echoed.
_ERROR_CODE = re.compile(r"^[a-z][a-z0-9_]{0,60}$")


def single_try_client(token: Secret, base_url: str) -> AsyncWebClient:
    """A client whose calls are tried once, within :data:`CHAT_REQUEST_TIMEOUT`: for
    callers with retries of their own (the courier retries posts; doctor reports)."""
    return AsyncWebClient(
        token=token.reveal(),
        base_url=base_url,
        timeout=int(CHAT_REQUEST_TIMEOUT),
        retry_handlers=[],
    )


def error_code(response: AsyncSlackResponse) -> str:
    """Slack's ``error`` of a failed call, or ``unknown_error`` when it sent none we trust."""
    error = response.get("error") if isinstance(response.data, dict) else None
    return error if isinstance(error, str) and _ERROR_CODE.match(error) else "unknown_error"


async def sign_in(client: AsyncWebClient, base_url: str) -> AsyncSlackResponse:
    """``auth.test``: who the bot is; or :class:`FrontEndFailed` saying what to fix."""
    try:
        return await client.auth_test()
    except SlackApiError as exc:
        error = error_code(exc.response)
        if error in TOKEN_REJECTED:
            raise FrontEndFailed(bot_token_rejected(error)) from None
        raise FrontEndFailed(
            f"Slack's auth.test failed ({error}, HTTP {exc.response.status_code}); try again "
            "later, and check SLACK_API_BASE_URL."
        ) from None
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise FrontEndFailed(unreachable(base_url, exc)) from None


def bot_token_rejected(error: str) -> str:
    return (
        f"Slack rejected SLACK_BOT_TOKEN ({error}): copy the Bot User OAuth Token (xoxb-…) "
        "from the app's OAuth & Permissions page again, or reinstall the app to the workspace."
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
