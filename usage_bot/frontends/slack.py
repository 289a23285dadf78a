"""The Slack front end: ``/claude-usage`` in Socket Mode or HTTP mode, Slack alert
destinations, and the Slack part of ``usage-bot doctor``.

Built on slack-bolt's :class:`AsyncApp`, inside the bot's one asyncio loop: Socket Mode
connects with :meth:`AsyncSocketModeHandler.connect_async` (the SDK reconnects on its
own), HTTP mode serves ``POST /slack/events`` on the bot's :class:`HttpServer` with
Bolt's signature and timestamp verification. Every Web API call goes to
``SLACK_API_BASE_URL``.

The 3-second deadline: a command is answered in its acknowledgement when the usage
service can answer without the upstream, or when the upstream answers within
:data:`ANSWER_IN_ACK_WITHIN`; otherwise the acknowledgement says what is coming (the last
known values, or "fetching") and the report follows through ``response_url``.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

import aiohttp
from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncApp
from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.context.respond.async_respond import AsyncRespond
from slack_sdk.errors import SlackApiError
from slack_sdk.socket_mode.aiohttp import SocketModeClient
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.web.async_slack_response import AsyncSlackResponse

from usage_bot._checks import CheckResult
from usage_bot._clock import Clock
from usage_bot._config import Secret, Settings
from usage_bot._exceptions import UsageBotError
from usage_bot._http import HttpServer
from usage_bot._notify import AlertMessage, DeliveryError, Notifier
from usage_bot._report import build_report
from usage_bot._service import AccountUsage, UsageService
from usage_bot.frontends import Answers, CommandListener, CommandOutcome, ReconnectGrace
from usage_bot.frontends.slack_render import (
    COMMAND,
    FAILED,
    FETCHING,
    FETCHING_SHARED,
    REFUSED_CHANNEL,
    REFUSED_USER,
    ResponseType,
    SlackMessage,
    render_alert,
    render_help,
    render_notice,
    render_reports,
)

log = logging.getLogger(__name__)

EVENTS_PATH = "/slack/events"
# How long a command may wait for the upstream before acknowledging without the answer:
# well inside Slack's 3 s, which also has to cover the way to Slack and back.
ANSWER_IN_ACK_WITHIN = 1.0
CONNECT_TIMEOUT = 30.0
# /healthz stays green while Socket Mode reconnects (Slack asks for a new connection every
# few hours); a connection down for longer than this is unhealthy.
RECONNECT_GRACE = 60.0
# stop() waits this long for answers still being prepared before cancelling them.
STOP_GRACE = 5.0
POST_TIMEOUT = 10
DOCTOR_TIMEOUT = 10
BOT_MENTION = "@usage-bot"

_TOKEN_REJECTED = frozenset(
    {"invalid_auth", "not_authed", "token_revoked", "token_expired", "account_inactive"}
)
_RETRYABLE_ERRORS = frozenset(
    {"ratelimited", "internal_error", "fatal_error", "service_unavailable", "request_timeout"}
)
_MALFORMED = frozenset(
    {
        "invalid_blocks",
        "invalid_blocks_format",
        "msg_too_long",
        "no_text",
        "invalid_arguments",
        "invalid_form_data",
        "too_many_attachments",
        "invalid_payload",
    }
)
_WEBHOOK_GONE = frozenset(
    {"no_service", "no_active_hooks", "invalid_token", "team_disabled", "channel_not_found"}
)
_ERROR_CODE = re.compile(r"^[a-z][a-z0-9_]{0,60}$")


# -- the command -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class UsageCommand:
    """What ``/claude-usage TEXT`` asks for: ``accounts`` empty means all of them."""

    accounts: tuple[str, ...] = ()
    shared: bool = False
    help: bool = False
    unknown: str | None = None


def parse_command(text: str, accounts: Sequence[str]) -> UsageCommand:
    """``""``, ``share``, ``help``, account names (any order, any case); else the help."""
    shared = False
    chosen: list[str] = []
    by_lower = {name.lower(): name for name in accounts}
    for word in text.split():
        lower = word.lower()
        if lower in ("help", "-h", "--help", "?"):
            return UsageCommand(help=True)
        if lower == "share":
            shared = True
        elif word in accounts or lower in by_lower:
            name = word if word in accounts else by_lower[lower]
            if name not in chosen:
                chosen.append(name)
        else:
            return UsageCommand(help=True, unknown=text.strip())
    return UsageCommand(accounts=tuple(chosen), shared=shared)


def refusal(settings: Settings, *, user_id: str, channel_id: str) -> str | None:
    """Why this user may not use the command here, or None when they may."""
    if settings.slack_allowed_users and user_id not in settings.slack_allowed_users:
        return REFUSED_USER
    if settings.slack_allowed_channels and channel_id not in settings.slack_allowed_channels:
        return REFUSED_CHANNEL
    return None


# -- the front end -----------------------------------------------------------------------


class SlackFrontEnd:
    """``/claude-usage`` in Slack, over Socket Mode (``SLACK_APP_TOKEN``) or HTTP mode
    (``SLACK_SIGNING_SECRET``, on ``http``); :meth:`notifiers` are its alert destinations.

    Construct it before ``http`` starts (it adds its route then); :meth:`start` checks
    the tokens and connects, raising :class:`UsageBotError` with the fix when it cannot.
    ``on_command`` hears of every command answered: its outcome and the seconds it took
    to answer in full (the follow-up through ``response_url`` included), for metrics.
    """

    name = "slack"

    def __init__(
        self,
        settings: Settings,
        service: UsageService,
        *,
        clock: Clock,
        http: HttpServer | None,
        on_command: CommandListener | None = None,
    ) -> None:
        if settings.slack_bot_token is None:
            raise UsageBotError("The Slack front end needs SLACK_BOT_TOKEN: set the xoxb- token.")
        self._settings = settings
        self._service = service
        self._clock = clock
        self._mode: Literal["socket", "http"] = "socket" if settings.slack_app_token else "http"
        if self._mode == "http" and (http is None or settings.slack_signing_secret is None):
            raise UsageBotError(
                "Slack's HTTP mode needs SLACK_SIGNING_SECRET and the bot's HTTP server "
                "(USAGE_BOT_HTTP_PORT not 0); or set SLACK_APP_TOKEN to use Socket Mode."
            )
        self._client = AsyncWebClient(
            token=settings.slack_bot_token.reveal(), base_url=settings.slack_api_base_url
        )
        secret = settings.slack_signing_secret
        self._app = AsyncApp(
            client=self._client,
            name="usage-bot",
            # Passed explicitly, even empty, so that Bolt does not read the environment.
            signing_secret=secret.reveal() if secret and self._mode == "http" else "",
            request_verification_enabled=True,
        )
        self._app.command(COMMAND)(self._on_command)
        if self._mode == "http" and http is not None:
            http.add_route("POST", EVENTS_PATH, self._on_http_request)
        self._notifiers = slack_notifiers(settings)
        self._handler: AsyncSocketModeHandler | None = None
        self._running = False
        self._answers = Answers(on_command)
        self._grace = ReconnectGrace(clock, RECONNECT_GRACE)

    @property
    def mode(self) -> Literal["socket", "http"]:
        return self._mode

    async def start(self) -> None:
        identity = await _verify_bot_token(self._client, self._settings.slack_api_base_url)
        log.info(
            "slack: signed in as @%s in %s (%s mode)",
            identity.get("user"),
            identity.get("team"),
            "Socket" if self._mode == "socket" else "HTTP",
        )
        if self._mode == "socket":
            if self._settings.slack_signing_secret is not None:
                log.info("slack: Socket Mode does not need SLACK_SIGNING_SECRET; it is unused")
            self._handler = await self._connect()
        self._running = True

    async def _connect(self) -> AsyncSocketModeHandler:
        app_token = self._settings.slack_app_token
        assert app_token is not None  # socket mode is chosen by its presence
        handler = AsyncSocketModeHandler(self._app, app_token.reveal(), web_client=self._client)
        client: SocketModeClient = handler.client
        try:
            # Asked here rather than inside connect(), which retries a bad token forever.
            client.wss_uri = await client.issue_new_wss_url()
            async with asyncio.timeout(CONNECT_TIMEOUT):
                await handler.connect_async()  # type: ignore[no-untyped-call]
        except SlackApiError as exc:
            await handler.close_async()  # type: ignore[no-untyped-call]
            raise UsageBotError(_app_token_rejected(_error_code(exc.response))) from None
        except TimeoutError:
            await handler.close_async()  # type: ignore[no-untyped-call]
            raise UsageBotError(
                f"Slack's Socket Mode did not connect within {CONNECT_TIMEOUT:.0f} s: allow "
                "outgoing WebSocket connections to Slack (wss://wss-primary.slack.com), or "
                "use HTTP mode."
            ) from None
        except aiohttp.ClientError as exc:
            await handler.close_async()  # type: ignore[no-untyped-call]
            raise _unreachable(self._settings.slack_api_base_url, exc) from None
        return handler

    async def stop(self) -> None:
        self._running = False
        handler, self._handler = self._handler, None
        if handler is not None:
            await handler.close_async()  # type: ignore[no-untyped-call]
        await self._answers.finish(STOP_GRACE)

    def healthy(self) -> bool:
        if not self._running:
            return False
        if self._handler is None:
            return True
        return self._grace.healthy(_connected(self._handler.client))

    def notifiers(self) -> Sequence[Notifier]:
        return self._notifiers

    # -- requests ----------------------------------------------------------------------

    async def _on_http_request(self, request: web.Request) -> web.StreamResponse:
        if not self._running:
            return web.Response(status=503, text="usage-bot is not taking Slack requests now")
        response = await self._app.async_dispatch(await to_bolt_request(request))
        return await to_aiohttp_response(response)

    async def _on_command(
        self, ack: AsyncAck, respond: AsyncRespond, command: dict[str, Any]
    ) -> None:
        async def failed() -> None:
            notice = render_notice(FAILED).payload("ephemeral")
            await (ack(**notice) if ack.response is None else respond(**notice))

        await self._answers.run(
            self._answer(ack, respond, command), failed=failed, platform="slack"
        )

    async def _answer(
        self, ack: AsyncAck, respond: AsyncRespond, command: dict[str, Any]
    ) -> CommandOutcome:
        user, channel = str(command.get("user_id", "")), str(command.get("channel_id", ""))
        refused = refusal(self._settings, user_id=user, channel_id=channel)
        if refused is not None:
            log.info("slack: refused %s to user %s in channel %s", COMMAND, user, channel)
            await ack(**render_notice(refused).payload("ephemeral"))
            return "refused"
        accounts = self._service.accounts
        request = parse_command(str(command.get("text", "")), accounts)
        if request.help:
            await ack(**render_help(accounts, unknown=request.unknown).payload("ephemeral"))
            return "ok"
        names = request.accounts or accounts
        shown: ResponseType = "in_channel" if request.shared else "ephemeral"
        if not any(self._service.would_fetch(name) for name in names):
            await ack(**self._render([self._service.peek(name) for name in names]).payload(shown))
            return "ok"
        fetching = asyncio.ensure_future(asyncio.gather(*(self._service.get(n) for n in names)))
        done, _ = await asyncio.wait({fetching}, timeout=ANSWER_IN_ACK_WITHIN)
        if done:
            await ack(**self._render(fetching.result()).payload(shown))
            return "ok"
        known = [self._service.peek(name) for name in names]
        if not request.shared and all(usage.snapshot is not None for usage in known):
            await ack(**self._render(known, pending=True).payload("ephemeral"))
        else:
            notice = FETCHING_SHARED if request.shared else FETCHING
            await ack(**render_notice(notice).payload("ephemeral"))
        usages = await fetching
        await respond(**self._render(usages).payload(shown))
        return "ok"

    def _render(self, usages: Sequence[AccountUsage], *, pending: bool = False) -> SlackMessage:
        now = self._clock.now()
        return render_reports([build_report(usage, now) for usage in usages], pending=pending)


def _connected(client: SocketModeClient) -> bool:
    session = client.current_session
    return not client.closed and not client.stale and session is not None and not session.closed


# -- alert destinations ------------------------------------------------------------------


class SlackNotifier:
    """Alerts to one channel with ``chat.postMessage``; the bot must be a member.

    The SDK's own retries are off: the alert scheduler decides when to try again.
    """

    def __init__(self, *, token: Secret, channel: str, api_base_url: str) -> None:
        self._channel = channel
        self._client = AsyncWebClient(
            token=token.reveal(), base_url=api_base_url, timeout=POST_TIMEOUT, retry_handlers=[]
        )

    @property
    def name(self) -> str:
        return f"slack:{self._channel}"

    async def post(self, message: AlertMessage) -> None:
        rendered = render_alert(message).payload()
        try:
            await self._client.chat_postMessage(
                channel=self._channel, unfurl_links=False, unfurl_media=False, **rendered
            )
        except SlackApiError as exc:
            raise _delivery_error(exc.response, self._channel) from None
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise DeliveryError(
                f"Cannot reach Slack ({type(exc).__name__}); the alert is retried later.",
                retryable=True,
            ) from None


class SlackWebhookNotifier:
    """Alerts through an incoming webhook: no app, no bot token. The URL is a secret."""

    name = "slack-webhook"

    def __init__(self, *, url: Secret) -> None:
        self._url = url

    async def post(self, message: AlertMessage) -> None:
        payload = render_alert(message).payload()
        timeout = aiohttp.ClientTimeout(total=POST_TIMEOUT)
        try:
            async with (
                aiohttp.ClientSession(timeout=timeout, trust_env=True) as session,
                session.post(self._url.reveal(), json=payload) as response,
            ):
                body = await response.text()
                status, retry_after = response.status, _retry_after(response.headers)
        except (aiohttp.ClientError, TimeoutError) as exc:
            # Never chained or echoed: aiohttp's errors can carry the URL.
            raise DeliveryError(
                f"Cannot reach Slack's incoming webhook ({type(exc).__name__}); the alert is "
                "retried later.",
                retryable=True,
            ) from None
        if status == 200:
            return
        raise _webhook_error(status, body.strip(), retry_after)


def slack_notifiers(settings: Settings) -> list[Notifier]:
    """The Slack alert destinations the settings configure: the alert channel (with a bot
    token), the incoming webhook, both or neither. Works without a :class:`SlackFrontEnd`."""
    notifiers: list[Notifier] = []
    if settings.slack_bot_token is not None and settings.slack_alert_channel:
        notifiers.append(
            SlackNotifier(
                token=settings.slack_bot_token,
                channel=settings.slack_alert_channel,
                api_base_url=settings.slack_api_base_url,
            )
        )
    if settings.slack_webhook_url is not None:
        notifiers.append(SlackWebhookNotifier(url=settings.slack_webhook_url))
    return notifiers


def _delivery_error(response: AsyncSlackResponse, channel: str) -> DeliveryError:
    error = _error_code(response)
    status = response.status_code
    if status == 429 or error == "ratelimited":
        wait = _retry_after(response.headers)
        when = f"in {wait:.0f} s" if wait is not None else "later"
        return DeliveryError(
            f"Slack is rate-limiting the bot's posts (ratelimited); the alert is retried {when}.",
            retryable=True,
            retry_after=wait,
        )
    if status >= 500 or error in _RETRYABLE_ERRORS:
        return DeliveryError(
            f"Slack failed to take the alert (HTTP {status}, {error}); it is retried later.",
            retryable=True,
        )
    if error == "not_in_channel":
        return DeliveryError(
            f"The bot is not a member of channel {channel} (not_in_channel): invite it with "
            f"/invite {BOT_MENTION} in that channel.",
            retryable=False,
        )
    if error == "channel_not_found":
        return DeliveryError(
            f"Slack finds no channel {channel} that the bot can see (channel_not_found): set "
            "SLACK_ALERT_CHANNEL to the channel's ID (channel details, at the bottom), and "
            f"for a private channel invite the bot with /invite {BOT_MENTION}.",
            retryable=False,
        )
    if error == "is_archived":
        return DeliveryError(
            f"Channel {channel} is archived (is_archived): unarchive it, or set "
            "SLACK_ALERT_CHANNEL to another channel.",
            retryable=False,
        )
    if error in _TOKEN_REJECTED:
        return DeliveryError(_bot_token_rejected(error), retryable=False)
    if error == "missing_scope":
        return DeliveryError(
            "The Slack app may not post messages (missing_scope): add the chat:write scope "
            "(see deploy/slack-app-manifest.yml) and reinstall the app.",
            retryable=False,
        )
    if error in _MALFORMED:
        return DeliveryError(
            f"Slack refused the alert's format ({error}); this is a usage-bot bug, please "
            "report it.",
            retryable=False,
        )
    return DeliveryError(f"Slack refused the alert ({error}); it is retried later.", retryable=True)


def _webhook_error(status: int, body: str, retry_after: float | None) -> DeliveryError:
    error = body if _ERROR_CODE.match(body) else f"HTTP {status}"
    if status == 429:
        wait = f"in {retry_after:.0f} s" if retry_after is not None else "later"
        return DeliveryError(
            f"Slack is rate-limiting the incoming webhook ({error}); the alert is retried {wait}.",
            retryable=True,
            retry_after=retry_after,
        )
    if status >= 500 or status == 408:
        return DeliveryError(
            f"Slack's incoming webhook failed ({error}); the alert is retried later.",
            retryable=True,
        )
    if body == "channel_is_archived":
        return DeliveryError(
            "The incoming webhook's channel is archived (channel_is_archived): unarchive it, "
            "or create a webhook for another channel and put its URL in SLACK_WEBHOOK_URL.",
            retryable=False,
        )
    if status in (403, 404, 410) or body in _WEBHOOK_GONE:
        return DeliveryError(
            f"Slack no longer accepts this incoming webhook ({error}): it was removed, or its "
            "app uninstalled. Create a new one (the app's Incoming Webhooks page) and put "
            "its URL in SLACK_WEBHOOK_URL.",
            retryable=False,
        )
    return DeliveryError(
        f"Slack refused the alert ({error}); this is likely a usage-bot bug, please report it.",
        retryable=False,
    )


def _retry_after(headers: Any) -> float | None:
    raw = headers.get("Retry-After") if headers is not None else None
    try:
        return max(float(raw), 0.0) if raw is not None else None
    except ValueError:
        return None


def _error_code(response: AsyncSlackResponse) -> str:
    error = response.get("error") if isinstance(response.data, dict) else None
    return error if isinstance(error, str) and _ERROR_CODE.match(error) else "unknown_error"


# -- start-up and doctor -----------------------------------------------------------------


def _bot_token_rejected(error: str) -> str:
    return (
        f"Slack rejected SLACK_BOT_TOKEN ({error}): copy the Bot User OAuth Token (xoxb-…) "
        "from the app's OAuth & Permissions page again, or reinstall the app to the workspace."
    )


def _app_token_rejected(error: str) -> str:
    return (
        f"Slack rejected SLACK_APP_TOKEN ({error}): turn Socket Mode on for the app and "
        "create an app-level token with the connections:write scope (the app's Basic "
        "Information page, App-Level Tokens); set SLACK_APP_TOKEN to it (xapp-…)."
    )


def _unreachable(base_url: str, exc: BaseException) -> UsageBotError:
    host = urlsplit(base_url).hostname or base_url
    return UsageBotError(
        f"Cannot reach Slack at {host} ({type(exc).__name__}): check this machine's network "
        "and proxy settings, and SLACK_API_BASE_URL."
    )


async def _verify_bot_token(client: AsyncWebClient, base_url: str) -> AsyncSlackResponse:
    """``auth.test``, or :class:`UsageBotError` saying what to fix."""
    try:
        return await client.auth_test()
    except SlackApiError as exc:
        error = _error_code(exc.response)
        if error in _TOKEN_REJECTED:
            raise UsageBotError(_bot_token_rejected(error)) from None
        raise UsageBotError(
            f"Slack's auth.test failed ({error}, HTTP {exc.response.status_code}); try again "
            "later, and check SLACK_API_BASE_URL."
        ) from None
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise _unreachable(base_url, exc) from None


async def doctor_checks(settings: Settings) -> list[CheckResult]:
    """The Slack lines of ``usage-bot doctor``: the bot token, the connection mode, the
    alert channel and the webhook. Posts nothing anywhere."""
    results: list[CheckResult] = []
    token = settings.slack_bot_token
    if token is not None:
        client = AsyncWebClient(
            token=token.reveal(),
            base_url=settings.slack_api_base_url,
            timeout=DOCTOR_TIMEOUT,
            retry_handlers=[],
        )
        try:
            identity = await _verify_bot_token(client, settings.slack_api_base_url)
        except UsageBotError as exc:
            results.append(CheckResult("slack: bot token", "fail", exc.message))
            results.append(CheckResult("slack: connection", "skip", "the bot token must work"))
        else:
            results.extend(_identity_checks(identity, token))
            results.append(await _mode_check(client, settings))
            results.append(await _channel_check(client, settings, str(identity.get("user"))))
    if settings.slack_webhook_url is not None:
        host = urlsplit(settings.slack_webhook_url.reveal()).hostname or "?"
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
        missing = [s for s in ("commands", "chat:write") if s not in scopes]
        results.append(
            CheckResult(
                "slack: scopes",
                "fail" if missing else "ok",
                f"missing {', '.join(missing)}" if missing else ", ".join(sorted(scopes)),
                "add the scopes of deploy/slack-app-manifest.yml and reinstall the app.",
            )
        )
    return results


async def _mode_check(client: AsyncWebClient, settings: Settings) -> CheckResult:
    app_token = settings.slack_app_token
    if app_token is None:
        where = f"{settings.http_host}:{settings.http_port}"
        return CheckResult(
            "slack: HTTP mode",
            "ok",
            f"Slack sends {COMMAND} to POST {EVENTS_PATH} on this bot's HTTP server ({where}); "
            f"set the command's Request URL to https://<your public host>{EVENTS_PATH}",
        )
    try:
        await client.apps_connections_open(app_token=app_token.reveal())
    except SlackApiError as exc:
        return CheckResult(
            "slack: Socket Mode",
            "fail",
            f"{app_token.masked()} does not open a connection ({_error_code(exc.response)})",
            _app_token_rejected(_error_code(exc.response)),
        )
    except (aiohttp.ClientError, TimeoutError) as exc:
        return CheckResult(
            "slack: Socket Mode", "fail", _unreachable(settings.slack_api_base_url, exc).message
        )
    return CheckResult(
        "slack: Socket Mode", "ok", f"{app_token.masked()} opens a Socket Mode connection"
    )


async def _channel_check(client: AsyncWebClient, settings: Settings, bot_user: str) -> CheckResult:
    channel = settings.slack_alert_channel
    name = "slack: alert channel"
    invite = f"in that channel, type /invite @{bot_user}"
    if channel is None:
        if settings.slack_webhook_url is not None:
            return CheckResult(name, "skip", "not set: alerts go through the webhook")
        return CheckResult(
            name,
            "warn",
            f"SLACK_ALERT_CHANNEL is not set: Slack gets no alerts, only {COMMAND}",
            "set SLACK_ALERT_CHANNEL to the ID of the channel for alerts and invite the bot there.",
        )
    try:
        info = await client.conversations_info(channel=channel)
    except SlackApiError as exc:
        error = _error_code(exc.response)
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
                "add the scopes of deploy/slack-app-manifest.yml and reinstall the app.",
            )
        return CheckResult(name, "fail", f"conversations.info failed for {channel} ({error})")
    except (aiohttp.ClientError, TimeoutError) as exc:
        return CheckResult(name, "fail", _unreachable(settings.slack_api_base_url, exc).message)
    about = info.get("channel") or {}
    label = f"#{about.get('name', '?')} ({channel})"
    if about.get("is_archived"):
        return CheckResult(
            name, "fail", f"{label} is archived", "unarchive it or choose another channel."
        )
    if about.get("is_member") is False:
        return CheckResult(name, "fail", f"the bot is not a member of {label}", invite + ".")
    return CheckResult(name, "ok", f"alerts go to {label}; the bot is a member")
