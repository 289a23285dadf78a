"""The Slack front end: ``/claude-usage`` in Socket Mode or HTTP mode, Slack alert
destinations, and the Slack part of ``usage-bot doctor``.

Built on slack-bolt's :class:`AsyncApp`, inside the bot's one asyncio loop: Socket Mode
connects with :meth:`AsyncSocketModeHandler.connect_async` (the SDK reconnects on its
own), HTTP mode serves ``POST /slack/events`` on the bot's :class:`HttpServer`. Every Web
API call goes to ``SLACK_API_BASE_URL``.

HTTP mode: the URL is public, so anyone can send anything to it. The front end reads and
checks each request itself before Bolt sees it: a body over :data:`MAX_REQUEST_BYTES`
gets 413 unread; a missing, malformed, stale or wrong signature or timestamp 401 (Slack's
v0 scheme); a signed body that is not a ``/claude-usage`` command 400 (the bot has no
interactive components and subscribes to no events). Each refusal is one log line.
Slack's unsigned ``ssl_check`` gets 200, as Bolt answers it. Bolt then gets the command's
fields already parsed, as JSON: its own parser takes any form body containing "payload"
(as ``/claude-usage payload`` does) for an interactive payload, and it fails with a 500
on a non-numeric timestamp, a malformed body or form fields named like parts of an event.

The 3-second deadline: a command is answered in its acknowledgement when the usage
service can answer without the upstream, or when the upstream answers within
:data:`ANSWER_IN_ACK_WITHIN`; otherwise the acknowledgement says what is coming (the last
known values, or "fetching") and the report follows through ``response_url``.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import parse_qsl, urlsplit

import aiohttp
from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncApp
from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.context.respond.async_respond import AsyncRespond
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_sdk.errors import SlackApiError
from slack_sdk.socket_mode.aiohttp import SocketModeClient
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.web.async_slack_response import AsyncSlackResponse

from usage_bot._checks import CheckResult
from usage_bot._clock import Clock
from usage_bot._config import Secret, Settings
from usage_bot._exceptions import DeliveryError, UsageBotError
from usage_bot._http import HttpServer
from usage_bot._model import AccountUsage
from usage_bot._notify import AlertMessage, Notifier
from usage_bot._report import build_report
from usage_bot._service import UsageService
from usage_bot.frontends import Answers, CommandListener, CommandOutcome, ReconnectGrace
from usage_bot.frontends.slack.render import (
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
# Slack's requests are a few kilobytes; anything this big is not from Slack.
MAX_REQUEST_BYTES = 1024 * 1024
# Slack's rule: a request signed more than 5 minutes ago (or ahead) may be a replay.
MAX_REQUEST_AGE = 300
# A slash command has 15 fields.
MAX_FORM_FIELDS = 100

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
    if settings.slack.allowed_users and user_id not in settings.slack.allowed_users:
        return REFUSED_USER
    if settings.slack.allowed_channels and channel_id not in settings.slack.allowed_channels:
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
        if settings.slack.bot_token is None:
            raise UsageBotError("The Slack front end needs SLACK_BOT_TOKEN: set the xoxb- token.")
        self._settings = settings
        self._service = service
        self._clock = clock
        self._mode: Literal["socket", "http"] = "socket" if settings.slack.app_token else "http"
        if self._mode == "http" and (http is None or settings.slack.signing_secret is None):
            raise UsageBotError(
                "Slack's HTTP mode needs SLACK_SIGNING_SECRET and the bot's HTTP server "
                "(USAGE_BOT_HTTP_PORT not 0); or set SLACK_APP_TOKEN to use Socket Mode."
            )
        self._client = AsyncWebClient(
            token=settings.slack.bot_token.reveal(), base_url=settings.slack.api_base_url
        )
        self._app = AsyncApp(
            client=self._client,
            name="usage-bot",
            # Empty rather than None, so that Bolt does not read the environment: HTTP
            # requests are verified in _on_http_request, before Bolt parses them, and
            # Socket Mode needs no signature.
            signing_secret="",
            request_verification_enabled=False,
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
        identity = await _verify_bot_token(self._client, self._settings.slack.api_base_url)
        log.info(
            "slack: signed in as @%s in %s (%s mode)",
            identity.get("user"),
            identity.get("team"),
            "Socket" if self._mode == "socket" else "HTTP",
        )
        if self._mode == "socket":
            if self._settings.slack.signing_secret is not None:
                log.info("slack: Socket Mode does not need SLACK_SIGNING_SECRET; it is unused")
            self._handler = await self._connect()
        self._running = True

    async def _connect(self) -> AsyncSocketModeHandler:
        app_token = self._settings.slack.app_token
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
            raise _unreachable(self._settings.slack.api_base_url, exc) from None
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
        body = await _read_body(request, MAX_REQUEST_BYTES)
        if isinstance(body, RequestRefused):
            return _refuse(request, body)
        if _is_ssl_check(body, request.content_type):
            return web.Response(status=200)
        secret = self._settings.slack.signing_secret
        assert secret is not None  # HTTP mode is chosen by its presence
        # Slack's clock, not the injected one: the timestamp is real time wherever we run.
        refused = check_signature(
            secret,
            timestamp=request.headers.get("X-Slack-Request-Timestamp"),
            signature=request.headers.get("X-Slack-Signature"),
            body=body,
            now=time.time(),
        )
        if refused is not None:
            return _refuse(request, refused)
        command = read_slack_command(body, request.content_type)
        if isinstance(command, RequestRefused):
            return _refuse(request, command)
        # Bolt takes a JSON body as it is (and verifies nothing more: that was done above).
        bolt_request = AsyncBoltRequest(body=json.dumps(command), headers={"content-type": _JSON})
        return await to_aiohttp_response(await self._app.async_dispatch(bolt_request))

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


# -- HTTP mode: what arrives at /slack/events --------------------------------------------

_FORM = "application/x-www-form-urlencoded"
_JSON = "application/json"
_TIMESTAMP = re.compile(r"[0-9]{1,15}")
_SIGNATURE = re.compile(r"v0=[0-9a-f]{64}")
# What Slack sends with a slash command (docs.slack.dev, "Implementing slash commands").
_COMMAND_FIELDS = frozenset(
    {
        "api_app_id",
        "channel_id",
        "channel_name",
        "command",
        "enterprise_id",
        "enterprise_name",
        "is_enterprise_install",
        "response_url",
        "team_domain",
        "team_id",
        "text",
        "token",
        "trigger_id",
        "user_id",
        "user_name",
    }
)
_NOT_SIGNED = (
    "This request is not signed with the Slack app's signing secret, or was signed over 5 "
    "minutes ago."
)


@dataclass(frozen=True, slots=True)
class RequestRefused:
    """A request to ``/slack/events`` that Bolt never sees: its status, why (for the log:
    never anything of the secret or of the request's own bytes), and whether it was
    signed, which makes it a warning."""

    status: Literal[400, 401, 413]
    reason: str
    signed: bool = False

    @property
    def answer(self) -> str:
        """What the sender is told: for 401, the same whatever the reason."""
        if self.status == 401:
            return _NOT_SIGNED
        if self.status == 413:
            return "This request is over 1 MiB; Slack's are far smaller."
        return f"usage-bot cannot read this request: {self.reason}."


def check_signature(
    secret: Secret, *, timestamp: str | None, signature: str | None, body: bytes, now: float
) -> RequestRefused | None:
    """Slack's v0 signature of ``body``: None when it is the signing secret's and the
    timestamp within :data:`MAX_REQUEST_AGE` of ``now``; else a 401 saying why."""
    if timestamp is None or signature is None:
        missing = "X-Slack-Request-Timestamp" if timestamp is None else "X-Slack-Signature"
        return RequestRefused(401, f"it has no {missing} header")
    if not _TIMESTAMP.fullmatch(timestamp):
        return RequestRefused(401, "its X-Slack-Request-Timestamp is not a number of seconds")
    age = int(now) - int(timestamp)
    if abs(age) > MAX_REQUEST_AGE:
        when = f"{age} s ago" if age > 0 else f"{-age} s ahead"
        return RequestRefused(
            401,
            f"its timestamp is {when} by this machine's clock, over 5 minutes (a replay, "
            "or a wrong clock here or at the sender)",
        )
    if not _SIGNATURE.fullmatch(signature):
        return RequestRefused(401, "its X-Slack-Signature is not a v0 signature")
    base = b"v0:" + timestamp.encode() + b":" + body
    expected = "v0=" + hmac.new(secret.reveal().encode(), base, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, signature):
        return RequestRefused(401, "its signature is not SLACK_SIGNING_SECRET's")
    return None


def read_slack_command(body: bytes, content_type: str) -> dict[str, str] | RequestRefused:
    """A signed body as Bolt gets it: the fields of a ``/claude-usage`` command, those
    Slack documents (others are dropped: a form field named like a part of an event,
    ``authorizations`` say, trips Bolt's parser). The bot takes nothing else here: no
    interactive payloads, no events; anything else is a 400 saying why."""
    fields = _command_fields(body, content_type)
    if isinstance(fields, str):
        return RequestRefused(400, fields, signed=True)
    return {name: value for name, value in fields.items() if name in _COMMAND_FIELDS}


def _command_fields(body: bytes, content_type: str) -> dict[str, str] | str:
    """The form fields of a ``/claude-usage`` command, or why the body is not one."""
    if content_type == _JSON:
        return "it is JSON (an event), and this bot subscribes to none"
    if content_type != _FORM:
        return "it is not a form"
    fields = _form_fields(body)
    if isinstance(fields, str):
        return fields
    if "command" not in fields:
        if "payload" in fields:
            return "it is an interactive payload, and this bot has none"
        return "it is not a slash command"
    if fields["command"] != COMMAND:
        return f"it is a slash command other than {COMMAND}: point that one elsewhere"
    return fields


def _form_fields(body: bytes) -> dict[str, str] | str:
    """A form's fields, or why it is not a form Slack would send."""
    if body.count(b"&") >= MAX_FORM_FIELDS:
        return f"its form has over {MAX_FORM_FIELDS} fields"
    try:
        pairs = parse_qsl(
            body.decode(), keep_blank_values=True, strict_parsing=True, errors="strict"
        )
    except UnicodeDecodeError:
        return "its form is not UTF-8"
    except ValueError:
        return "it is not a well-formed form"
    fields = dict(pairs)
    if len(fields) != len(pairs):
        # Slack never repeats a field; which of two would count is the sender's game.
        return "its form has a field twice"
    return fields


def _is_ssl_check(body: bytes, content_type: str) -> bool:
    """Slack's unsigned check of the Request URL's certificate, answered as Bolt does:
    ``ssl_check=1`` and a token, nothing else (bolt-js#2897 smuggled a payload in beside
    one)."""
    if content_type != _FORM or len(body) > 1024:
        return False
    fields = _form_fields(body)
    return (
        not isinstance(fields, str)
        and fields.get("ssl_check") == "1"
        and set(fields) <= {"ssl_check", "token"}
    )


async def _read_body(request: web.Request, limit: int) -> bytes | RequestRefused:
    """The request's body, having read no more than ``limit`` bytes of it (decompressed)."""
    if request.content_length is not None and request.content_length > limit:
        return RequestRefused(413, "its body is over 1 MiB")
    body = bytearray()
    try:
        while chunk := await request.content.readany():
            body += chunk
            if len(body) > limit:
                return RequestRefused(413, "its body is over 1 MiB")
    except (web.RequestPayloadError, ConnectionError):
        return RequestRefused(
            400, "its body broke off, or its chunked or compressed encoding is broken"
        )
    return bytes(body)


def _refuse(request: web.Request, refused: RequestRefused) -> web.Response:
    # Anyone may knock; but a signed request the bot cannot read means that Slack sent
    # something new (a command renamed, an event subscribed to) or that the secret is out.
    level = logging.WARNING if refused.signed else logging.INFO
    log.log(
        level,
        "slack: refused a request to %s from %s (%d): %s",
        EVENTS_PATH,
        request.remote or "?",
        refused.status,
        refused.reason,
    )
    return web.Response(status=refused.status, text=refused.answer)


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
    if settings.slack.bot_token is not None and settings.slack.alert_channel:
        notifiers.append(
            SlackNotifier(
                token=settings.slack.bot_token,
                channel=settings.slack.alert_channel,
                api_base_url=settings.slack.api_base_url,
            )
        )
    if settings.slack.webhook_url is not None:
        notifiers.append(SlackWebhookNotifier(url=settings.slack.webhook_url))
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
    token = settings.slack.bot_token
    if token is not None:
        client = AsyncWebClient(
            token=token.reveal(),
            base_url=settings.slack.api_base_url,
            timeout=DOCTOR_TIMEOUT,
            retry_handlers=[],
        )
        try:
            identity = await _verify_bot_token(client, settings.slack.api_base_url)
        except UsageBotError as exc:
            results.append(CheckResult("slack: bot token", "fail", exc.message))
            results.append(CheckResult("slack: connection", "skip", "the bot token must work"))
        else:
            results.extend(_identity_checks(identity, token))
            results.append(await _mode_check(client, settings))
            results.append(await _channel_check(client, settings, str(identity.get("user"))))
    if settings.slack.webhook_url is not None:
        host = urlsplit(settings.slack.webhook_url.reveal()).hostname or "?"
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
    app_token = settings.slack.app_token
    if app_token is None:
        where = f"{settings.http.host}:{settings.http.port}"
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
            "slack: Socket Mode", "fail", _unreachable(settings.slack.api_base_url, exc).message
        )
    return CheckResult(
        "slack: Socket Mode", "ok", f"{app_token.masked()} opens a Socket Mode connection"
    )


async def _channel_check(client: AsyncWebClient, settings: Settings, bot_user: str) -> CheckResult:
    channel = settings.slack.alert_channel
    name = "slack: alert channel"
    invite = f"in that channel, type /invite @{bot_user}"
    if channel is None:
        if settings.slack.webhook_url is not None:
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
        return CheckResult(name, "fail", _unreachable(settings.slack.api_base_url, exc).message)
    about = info.get("channel") or {}
    label = f"#{about.get('name', '?')} ({channel})"
    if about.get("is_archived"):
        return CheckResult(
            name, "fail", f"{label} is archived", "unarchive it or choose another channel."
        )
    if about.get("is_member") is False:
        return CheckResult(name, "fail", f"the bot is not a member of {label}", invite + ".")
    return CheckResult(name, "ok", f"alerts go to {label}; the bot is a member")
