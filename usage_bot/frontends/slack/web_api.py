"""Slack's Web API as the front end and the alerts call it, on slack-sdk: the client, the
error code of a failed call, and the sign-in check (``auth.test``) at start.

Every call goes to ``SLACK_API_BASE_URL``. What Slack's errors mean, and the sentences
that say so, are :mod:`.errors`' (``usage-bot doctor`` says the same without slack-sdk).
"""

from __future__ import annotations

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.web.async_slack_response import AsyncSlackResponse

from usage_bot._config import Secret
from usage_bot._exceptions import FrontEndFailed
from usage_bot._timing import CHAT_REQUEST_TIMEOUT
from usage_bot.frontends.slack.errors import (
    TOKEN_REJECTED,
    auth_test_failed,
    bot_token_rejected,
    trusted_code,
    unreachable,
)


def single_try_client(token: Secret, base_url: str) -> AsyncWebClient:
    """A client whose calls are tried once, within :data:`CHAT_REQUEST_TIMEOUT`: for
    callers with retries of their own (the courier retries posts)."""
    return AsyncWebClient(
        token=token.reveal(),
        base_url=base_url,
        timeout=int(CHAT_REQUEST_TIMEOUT),
        retry_handlers=[],
    )


def error_code(response: AsyncSlackResponse) -> str:
    """Slack's ``error`` of a failed call, or ``unknown_error`` when it sent none we trust."""
    return trusted_code(response.get("error") if isinstance(response.data, dict) else None)


async def sign_in(client: AsyncWebClient, base_url: str) -> AsyncSlackResponse:
    """``auth.test``: who the bot is; or :class:`FrontEndFailed` saying what to fix."""
    try:
        return await client.auth_test()
    except SlackApiError as exc:
        error = error_code(exc.response)
        if error in TOKEN_REJECTED:
            raise FrontEndFailed(bot_token_rejected(error)) from None
        raise FrontEndFailed(auth_test_failed(error, exc.response.status_code)) from None
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise FrontEndFailed(unreachable(base_url, exc)) from None
