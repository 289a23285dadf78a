"""The Slack front end: ``/claude-usage`` in Socket Mode or HTTP mode, on slack-bolt.

Built on slack-bolt's :class:`AsyncApp`, inside the bot's one asyncio loop: Socket Mode
connects with :meth:`AsyncSocketModeHandler.connect_async` (the SDK reconnects on its
own), HTTP mode serves ``POST /slack/events`` on the bot's :class:`HttpServer`, each
request checked first (:mod:`.http_mode`). Every Web API call goes to
``SLACK_API_BASE_URL``.

This module only translates. A slash command becomes a :class:`Caller` and its text,
which the :class:`CommandCore` plans and answers; the answer's ``now`` goes in the
acknowledgement, within Slack's 3 seconds (the upstream gets
:data:`ANSWER_IN_ACK_WITHIN` of them), and its ``later``, when the upstream was slower,
follows through ``response_url``. What the replies look like is :mod:`.render`'s.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any, Literal

import aiohttp
from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncApp
from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.context.respond.async_respond import AsyncRespond
from slack_bolt.logger.messages import warning_client_prioritized_and_token_skipped
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_sdk.errors import SlackApiError
from slack_sdk.socket_mode.aiohttp import SocketModeClient
from slack_sdk.web.async_client import AsyncWebClient

from usage_bot._clock import Clock
from usage_bot._command import AccessPolicy, Caller, Refused
from usage_bot._config import Secret, SlackConfig
from usage_bot._events import NO_OBSERVER, CommandOutcome, Observer
from usage_bot._exceptions import FrontEndFailed
from usage_bot._http import HttpServer
from usage_bot._texts import FAILED, SLASH
from usage_bot._timing import RECONNECT_GRACE, STOP_GRACE
from usage_bot.frontends import Answers, CommandCore, ReconnectGrace, Reply
from usage_bot.frontends.slack.errors import app_token_rejected, unreachable
from usage_bot.frontends.slack.http_mode import EVENTS_PATH, checked_command
from usage_bot.frontends.slack.render import reply_payload
from usage_bot.frontends.slack.web_api import error_code, sign_in

# The package's one logger: Slack's log lines are named so, whichever module writes them.
log = logging.getLogger("usage_bot.frontends.slack")

# How long a command may wait for the upstream before acknowledging without the answer:
# well inside Slack's 3 s, which also has to cover the way to Slack and back.
ANSWER_IN_ACK_WITHIN = 1.0
CONNECT_TIMEOUT = 30.0


class _NotTheEnvironmentsToken(logging.Filter):
    """Drops the one warning Bolt logs at every start when SLACK_BOT_TOKEN is in the
    environment: "As you gave `client` as well, `token` will be unused."

    Why a filter: Bolt reads ``SLACK_BOT_TOKEN`` itself (``token or os.environ.get(...)``,
    so no argument, not even ``""``, stops it) and warns that it will not use it, which is
    true and what we want: the bot's client, built from the settings, is the one used.
    Passing Bolt the token instead of the client would lose ``SLACK_API_BASE_URL`` and the
    client's settings. So this drops exactly that message (compared with Bolt's own text)
    on the logger Bolt writes it to; every other line of Bolt's passes.
    """

    unused = warning_client_prioritized_and_token_skipped()

    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() != self.unused


_BOLT_APP_LOGGER = "slack_bolt.AsyncApp"
_NOT_THE_ENVIRONMENTS_TOKEN = _NotTheEnvironmentsToken()


class SlackFrontEnd:
    """``/claude-usage`` in Slack, over Socket Mode (``SLACK_APP_TOKEN``) or HTTP mode
    (``SLACK_SIGNING_SECRET``, on ``http``).

    Construct it before ``http`` starts (it adds its route then); :meth:`start` checks
    the tokens and connects, raising :class:`FrontEndFailed` with the fix when it cannot.
    The ``observer`` hears of every command answered.
    """

    name = "slack"

    def __init__(
        self,
        config: SlackConfig,
        *,
        commands: CommandCore,
        clock: Clock,
        http: HttpServer | None,
        observer: Observer = NO_OBSERVER,
    ) -> None:
        if config.bot_token is None:
            raise FrontEndFailed("The Slack front end needs SLACK_BOT_TOKEN: set the xoxb- token.")
        if config.mode == "http" and (http is None or config.signing_secret is None):
            raise FrontEndFailed(
                "Slack's HTTP mode needs SLACK_SIGNING_SECRET and the bot's HTTP server "
                "(USAGE_BOT_HTTP_PORT not 0); or set SLACK_APP_TOKEN to use Socket Mode."
            )
        self._config = config
        self._commands = commands
        self._policy = AccessPolicy(users=config.allowed_users, channels=config.allowed_channels)
        self._client = AsyncWebClient(token=config.bot_token.reveal(), base_url=config.api_base_url)
        # The same filter object each time: adding it again changes nothing.
        logging.getLogger(_BOLT_APP_LOGGER).addFilter(_NOT_THE_ENVIRONMENTS_TOKEN)
        self._app = AsyncApp(
            client=self._client,
            name="usage-bot",
            # Empty rather than None, so that Bolt does not read the environment: HTTP
            # requests are verified by http_mode before Bolt parses them, and Socket Mode
            # needs no signature.
            signing_secret="",
            request_verification_enabled=False,
        )
        self._app.command(SLASH)(self._on_command)
        if http is not None and config.mode == "http":
            http.add_route("POST", EVENTS_PATH, self._on_http_request)
        self._handler: AsyncSocketModeHandler | None = None
        self._running = False
        self._answers = Answers("slack", observer)
        self._grace = ReconnectGrace(clock, RECONNECT_GRACE)

    @property
    def mode(self) -> Literal["socket", "http"]:
        return self._config.mode

    async def start(self) -> None:
        identity = await sign_in(self._client, self._config.api_base_url)
        log.info(
            "slack: signed in as @%s in %s (%s mode)",
            identity.get("user"),
            identity.get("team"),
            "Socket" if self.mode == "socket" else "HTTP",
        )
        if self._config.app_token is not None:
            if self._config.signing_secret is not None:
                log.info("slack: Socket Mode does not need SLACK_SIGNING_SECRET; it is unused")
            self._handler = await self._connect(self._config.app_token)
        self._running = True

    async def _connect(self, app_token: Secret) -> AsyncSocketModeHandler:
        handler = AsyncSocketModeHandler(self._app, app_token.reveal(), web_client=self._client)
        client: SocketModeClient = handler.client
        try:
            # Asked here rather than inside connect(), which retries a bad token forever.
            client.wss_uri = await client.issue_new_wss_url()
            async with asyncio.timeout(CONNECT_TIMEOUT):
                await handler.connect_async()  # type: ignore[no-untyped-call]
        except SlackApiError as exc:
            await handler.close_async()  # type: ignore[no-untyped-call]
            raise FrontEndFailed(app_token_rejected(error_code(exc.response))) from None
        except TimeoutError:
            await handler.close_async()  # type: ignore[no-untyped-call]
            raise FrontEndFailed(
                f"Slack's Socket Mode did not connect within {CONNECT_TIMEOUT:.0f} s: allow "
                "outgoing WebSocket connections to Slack (wss://wss-primary.slack.com), or "
                "use HTTP mode."
            ) from None
        except aiohttp.ClientError as exc:
            await handler.close_async()  # type: ignore[no-untyped-call]
            raise FrontEndFailed(unreachable(self._config.api_base_url, exc)) from None
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

    # -- requests ----------------------------------------------------------------------

    async def _on_http_request(self, request: web.Request) -> web.StreamResponse:
        if not self._running:
            return web.Response(status=503, text="usage-bot is not taking Slack requests now")
        assert self._config.signing_secret is not None  # HTTP mode is chosen by its presence
        command = await checked_command(request, self._config.signing_secret)
        if isinstance(command, web.StreamResponse):
            return command
        # Bolt takes a JSON body as it is (and verifies nothing more: that was done above).
        body = json.dumps(command)
        bolt_request = AsyncBoltRequest(body=body, headers={"content-type": "application/json"})
        return await to_aiohttp_response(await self._app.async_dispatch(bolt_request))

    async def _on_command(
        self, ack: AsyncAck, respond: AsyncRespond, command: dict[str, Any]
    ) -> None:
        async def failed() -> None:
            notice = reply_payload(Reply("notice", text=FAILED))
            await (ack(**notice) if ack.response is None else respond(**notice))

        await self._answers.run(self._answer(ack, respond, command), failed=failed)

    async def _answer(
        self, ack: AsyncAck, respond: AsyncRespond, command: dict[str, Any]
    ) -> CommandOutcome:
        user, channel = str(command.get("user_id", "")), str(command.get("channel_id", ""))
        text = str(command.get("text", ""))
        decided = self._commands.plan(
            text, caller=Caller("slack", user, channel), policy=self._policy
        )
        if isinstance(decided, Refused):
            log.info("slack: refused %s to user %s in channel %s", SLASH, user, channel)
        answer = await self._commands.answer(decided, platform="slack", within=ANSWER_IN_ACK_WITHIN)
        try:
            await ack(**reply_payload(answer.now))
        except BaseException:
            if asyncio.iscoroutine(answer.later):
                answer.later.close()  # never to be sent: not left to warn "never awaited"
            raise
        if answer.later is not None:
            await respond(**reply_payload(await answer.later))
        return "refused" if answer.now.refused else "ok"


def _connected(client: SocketModeClient) -> bool:
    session = client.current_session
    return not client.closed and not client.stale and session is not None and not session.closed
