"""A local fake of Discord at the network boundary, for the real discord.py.

One aiohttp server on 127.0.0.1 plays every part of Discord a bot with slash commands
talks to:

- the REST API at ``api_url``, which discord.py reaches through ``discord.http.Route.BASE``;
- the gateway websocket at ``gateway_url`` (``DiscordWebSocket.DEFAULT_GATEWAY``), with a
  second path for the ``resume_gateway_url`` that READY hands out;
- one incoming webhook, ``webhook_url``.

``point_discord_at(fake)`` sets those two discord.py globals for the length of a ``with``.

Everything received is kept for assertions. ``fail`` makes the next calls to a route fail
the way Discord does. A route is named like discord.py's own ``Route.key``: the method, a
space and the path template below ``/api/v10``, e.g. ``"POST /channels/{channel_id}/messages"``.
Parameter names are not compared, so ``"POST /channels/{id}/messages"`` is the same route;
``FakeDiscord.routes`` lists them all.

Ids are fixed snowflakes (``GUILD_ID``, ``CHANNEL_ID``, ...): one guild with one text
channel, one human member, one bot whose user id is also its application id, as on Discord.
Waiting methods use events, never sleeps, and each takes a ``timeout``: a fake that could
wait forever would hang the test (hence the ``noqa: ASYNC109``).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import math
import re
import time
import uuid
import warnings
from collections import defaultdict, deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http import HTTPStatus
from types import TracebackType
from typing import Any, Self, TypeAlias

import yarl
from aiohttp import WSCloseCode, WSMsgType, web

with warnings.catch_warnings():
    # discord.py imports audioop, deprecated since Python 3.11, for voice; pytest makes
    # warnings errors. Importing it here first lets tests that use the fake import discord.
    warnings.filterwarnings("ignore", "'audioop' is deprecated", DeprecationWarning)
    import discord

JsonObject: TypeAlias = dict[str, Any]

BOT_TOKEN = "fake-bot-token"
APPLICATION_ID = 1_100_000_000_000_000_001
BOT_USER_ID = APPLICATION_ID
OWNER_ID = 1_100_000_000_000_000_002
USER_ID = 1_100_000_000_000_000_003
GUILD_ID = 1_100_000_000_000_000_004
CHANNEL_ID = 1_100_000_000_000_000_005
WEBHOOK_ID = 1_100_000_000_000_000_006
# Webhook.from_url wants 60 or more of [A-Za-z0-9.-_].
WEBHOOK_TOKEN = "fake-webhook-token-" + "0123456789" * 5

API_PREFIX = "/api/v10"

_HOST = "127.0.0.1"
_GATEWAY_PATH = "/gateway"
_RESUME_GATEWAY_PATH = "/resume-gateway"
_DISCORD_EPOCH = datetime(2015, 1, 1, tzinfo=UTC)

# Gateway opcodes, interaction and callback types, flags: Discord's numbers.
_DISPATCH = 0
_HEARTBEAT = 1
_IDENTIFY = 2
_RESUME = 6
_INVALID_SESSION = 9
_HELLO = 10
_HEARTBEAT_ACK = 11
_APPLICATION_COMMAND, _AUTOCOMPLETE = 2, 4
_CHANNEL_MESSAGE, _DEFERRED_CHANNEL_MESSAGE = 4, 5
_EPHEMERAL, _LOADING = 1 << 6, 1 << 7
_GUILDS_INTENT = 1 << 0
_TEXT_CHANNEL, _DM_CHANNEL, _PUBLIC_THREAD = 0, 1, 11
_DEFAULT_MESSAGE, _CHAT_INPUT_COMMAND_MESSAGE = 0, 20
# View channel, send messages, embed links, read history, use application commands.
_BOT_PERMISSIONS = (1 << 10) | (1 << 11) | (1 << 14) | (1 << 16) | (1 << 31)

_ERROR_MESSAGES = {
    0: "",
    10002: "Unknown Application",
    10003: "Unknown Channel",
    10008: "Unknown Message",
    10015: "Unknown Webhook",
    10062: "Unknown interaction",
    40060: "Interaction has already been acknowledged.",
    50001: "Missing Access",
    50006: "Cannot send an empty message",
    50013: "Missing Permissions",
    50035: "Invalid Form Body",
}
# The code a failure reports when a test names only the status.
_DEFAULT_ERROR_CODES = {403: 50001, 404: 10003}


@dataclass(frozen=True, kw_only=True)
class RecordedRequest:
    """One REST request the fake answered, failed ones included."""

    method: str
    path: str  # below /api/v10, without the query string
    route: str  # as in FakeDiscord.routes; "" for a path the fake does not serve
    query: Mapping[str, str]
    json: Any  # the JSON body, or a multipart request's payload_json; None if neither
    authorization: str | None
    status: int


@dataclass(frozen=True, kw_only=True)
class InteractionCallback:
    """The bot's answer to an interaction: ``type`` 4 message, 5 deferred, 8 choices, ..."""

    interaction_id: int
    type: int
    data: JsonObject

    @property
    def flags(self) -> int:
        return int(self.data.get("flags") or 0)

    @property
    def content(self) -> str:
        return str(self.data.get("content") or "")

    @property
    def embeds(self) -> list[JsonObject]:
        return list(self.data.get("embeds") or [])

    @property
    def choices(self) -> list[JsonObject]:
        return list(self.data.get("choices") or [])


@dataclass(frozen=True, kw_only=True)
class SentMessage:
    """A message the bot posted or edited, as Discord stored it (``message`` is the payload)."""

    id: int
    channel_id: int
    content: str
    embeds: list[JsonObject]
    flags: int
    message: JsonObject

    @classmethod
    def of(cls, message: JsonObject) -> SentMessage:
        return cls(
            id=int(message["id"]),
            channel_id=int(message["channel_id"]),
            content=message["content"],
            embeds=list(message["embeds"]),
            flags=message["flags"],
            message=message,
        )


@dataclass(frozen=True, kw_only=True)
class CommandSync:
    """One bulk overwrite of application commands: globally (``guild_id`` None) or in a guild."""

    guild_id: int | None
    commands: list[JsonObject]

    @property
    def names(self) -> list[str]:
        return [command["name"] for command in self.commands]


@dataclass(frozen=True)
class _Failure:
    status: int
    code: int
    retry_after: float
    is_global: bool

    def response(self) -> web.Response:
        if self.status == HTTPStatus.TOO_MANY_REQUESTS:
            body: JsonObject = {
                "message": "You are being rate limited.",
                "retry_after": self.retry_after,
                "global": self.is_global,
            }
            headers = {
                "Retry-After": str(math.ceil(self.retry_after)),
                "X-RateLimit-Limit": "5",
                "X-RateLimit-Remaining": "0",
                "X-RateLimit-Reset": f"{time.time() + self.retry_after:.3f}",
                "X-RateLimit-Reset-After": f"{self.retry_after:.3f}",
                "X-RateLimit-Bucket": "fake-bucket",
                "X-RateLimit-Scope": "global" if self.is_global else "user",
            }
            if self.is_global:
                headers["X-RateLimit-Global"] = "true"
            return _json(body, status=self.status, headers=headers)
        return _error(self.status, self.code)


@dataclass(eq=False)
class _Interaction:
    id: int
    type: int
    token: str
    channel_id: int
    payload: JsonObject  # the INTERACTION_CREATE event
    callback: asyncio.Future[InteractionCallback]
    original: JsonObject | None = None

    @property
    def acknowledged(self) -> bool:
        return self.callback.done()


@dataclass(eq=False)
class _GatewaySession:
    id: str
    socket: web.WebSocketResponse | None
    sequence: int = 0
    resumable: bool = True
    sent: list[JsonObject] = field(default_factory=list)


# A route's handler gets the request and its already-read JSON body.
_Handler: TypeAlias = Callable[[web.Request, Any], Awaitable[web.StreamResponse]]
_AiohttpHandler: TypeAlias = Callable[[web.Request], Awaitable[web.StreamResponse]]


class FakeDiscord:
    """Discord's REST API, gateway and an incoming webhook, served from 127.0.0.1.

    Use it as ``async with FakeDiscord() as fake:``. ``heartbeat_interval`` (seconds) is
    what the next HELLO tells a client; Discord says about 41.25.
    """

    application_id = APPLICATION_ID
    bot_user_id = BOT_USER_ID
    user_id = USER_ID
    guild_id = GUILD_ID
    channel_id = CHANNEL_ID
    webhook_id = WEBHOOK_ID
    webhook_token = WEBHOOK_TOKEN

    def __init__(self, *, bot_token: str = BOT_TOKEN, heartbeat_interval: float = 41.25) -> None:
        self.bot_token = bot_token
        self.heartbeat_interval = heartbeat_interval

        self.requests: list[RecordedRequest] = []
        self.callbacks: list[InteractionCallback] = []
        self.followups: list[SentMessage] = []
        self.original_edits: list[SentMessage] = []
        self.channel_messages: list[SentMessage] = []
        self.webhook_messages: list[SentMessage] = []
        self.command_syncs: list[CommandSync] = []
        self.commands: dict[int | None, dict[str, JsonObject]] = {}  # by guild id, then name
        self.channels: dict[int, JsonObject] = {CHANNEL_ID: _text_channel(CHANNEL_ID)}
        self.identifies: list[JsonObject] = []
        self.resumes: list[JsonObject] = []
        self.replayed: list[str] = []  # events a RESUME replayed, by name
        self.heartbeat_count = 0
        self.gateway_connections: list[str] = []  # path and query of each websocket
        self.gateway_payloads: list[JsonObject] = []  # everything clients sent on them

        self._failures: defaultdict[str, deque[_Failure]] = defaultdict(deque)
        self._snowflakes = itertools.count(1_200_000_000_000_000_000)
        self._interactions: dict[int, _Interaction] = {}
        self._interactions_by_token: dict[str, _Interaction] = {}
        self._session: _GatewaySession | None = None
        self._session_lock = asyncio.Lock()  # one writer at a time keeps sequence numbers in order
        self._live = asyncio.Event()
        self._changed = asyncio.Event()
        self._sockets: set[web.WebSocketResponse] = set()
        self._runner: web.AppRunner | None = None
        self._port: int | None = None

    async def __aenter__(self) -> Self:
        app = web.Application()
        for route, handler in self._routes().items():
            method, template = route.split()
            app.router.add_route(method, API_PREFIX + template, self._serve(route, handler))
        app.router.add_route("*", API_PREFIX + "/{tail:.*}", self._serve("", _unknown_route))
        app.router.add_get(_GATEWAY_PATH, self._gateway)
        app.router.add_get(_RESUME_GATEWAY_PATH, self._gateway)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1)
        await self._runner.setup()
        await web.TCPSite(self._runner, _HOST, 0).start()
        self._port = self._runner.addresses[0][1]
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._live.clear()
        for socket in list(self._sockets):
            await socket.close(code=WSCloseCode.GOING_AWAY)
        for interaction in self._interactions.values():
            interaction.callback.cancel()
        if self._runner is not None:
            await self._runner.cleanup()

    # -- addresses ---------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        if self._port is None:
            raise RuntimeError("FakeDiscord is not running: use it as `async with FakeDiscord()`")
        return f"http://{_HOST}:{self._port}"

    @property
    def api_url(self) -> str:
        """For ``discord.http.Route.BASE``."""
        return self.base_url + API_PREFIX

    @property
    def gateway_url(self) -> str:
        """For ``DiscordWebSocket.DEFAULT_GATEWAY``; also what ``GET /gateway[/bot]`` answers."""
        return self.base_url.replace("http://", "ws://", 1) + _GATEWAY_PATH

    @property
    def resume_gateway_url(self) -> str:
        return self.base_url.replace("http://", "ws://", 1) + _RESUME_GATEWAY_PATH

    @property
    def webhook_url(self) -> str:
        """The incoming webhook, in the only form ``discord.Webhook.from_url`` accepts.

        ``from_url`` takes the id and token from a ``discord.com/api/webhooks/...`` URL and
        sends to ``Route.BASE``, so this reaches the fake while discord.py points at it.
        """
        return f"https://discord.com/api/webhooks/{WEBHOOK_ID}/{WEBHOOK_TOKEN}"

    # -- assertions --------------------------------------------------------------------

    @property
    def identify_count(self) -> int:
        return len(self.identifies)

    @property
    def resume_count(self) -> int:
        """RESUMEs received, whether or not the session could be resumed."""
        return len(self.resumes)

    @property
    def routes(self) -> list[str]:
        return list(self._routes())

    def requests_to(self, route: str) -> list[RecordedRequest]:
        key = _route_key(route)
        return [request for request in self.requests if _route_key(request.route) == key]

    async def wait_until(
        self,
        condition: Callable[[], bool],
        *,
        timeout: float = 3,  # noqa: ASYNC109
    ) -> None:
        """Wait until ``condition()`` holds; it is checked after everything the fake records."""
        async with self._deadline(timeout, "change that met the condition"):
            while not condition():
                await self._changed.wait()

    # -- failures ----------------------------------------------------------------------

    def fail(
        self,
        route: str,
        *,
        status: int = 429,
        retry_after: float = 0.2,
        code: int | None = None,
        is_global: bool = False,
        times: int = 1,
    ) -> None:
        """Answer the next ``times`` calls to ``route`` with ``status``, as Discord would.

        429 carries ``retry_after`` (seconds), ``global`` and the rate-limit headers; other
        statuses a JSON error with ``code``: by default 50001 Missing Access for 403 and
        10003 Unknown Channel for 404.
        """
        key = _route_key(route)
        if key not in {_route_key(known) for known in self.routes}:
            raise ValueError(f"FakeDiscord serves no route {route!r}; it serves {self.routes}")
        if times < 1:
            raise ValueError(f"times must be at least 1, not {times}")
        if code is None:
            code = _DEFAULT_ERROR_CODES.get(status, 0)
        self._failures[key].extend([_Failure(status, code, retry_after, is_global)] * times)

    def add_thread(self, *, parent_id: int = CHANNEL_ID) -> int:
        """A public thread in channel ``parent_id``; its id, for ``dispatch_command``."""
        thread_id = self._new_id()
        self.channels[thread_id] = _thread(thread_id, parent_id)
        return thread_id

    # -- gateway -----------------------------------------------------------------------

    async def wait_until_ready(self, *, timeout: float = 5) -> None:  # noqa: ASYNC109
        """Wait until a client has a live session: READY or RESUMED has been sent to it.

        discord.py's own ``on_ready`` comes later: see ``guild_ready_timeout``.
        """
        async with self._deadline(timeout, "READY or RESUMED sent to a client"):
            await self._live.wait()

    async def dispatch_command(
        self,
        name: str,
        *,
        options: Mapping[str, object] | None = None,
        guild_id: int | None = GUILD_ID,
        channel_id: int = CHANNEL_ID,
        user_id: int = USER_ID,
        locale: str = "en-US",
        timeout: float = 3,  # noqa: ASYNC109
    ) -> InteractionCallback:
        """Send an INTERACTION_CREATE for ``/name`` and return the bot's callback.

        The command must have been synced (Discord delivers only registered commands); the
        option types come from that registration. ``guild_id=None`` is a command in a DM.
        """
        command, command_guild = self._registered(name, guild_id)
        data = _command_data(command, command_guild, _options(command, options or {}, None))
        interaction = self._interaction(
            _APPLICATION_COMMAND, data, guild_id, channel_id, user_id, locale
        )
        return await self._interact(interaction, timeout)

    async def dispatch_autocomplete(
        self,
        name: str,
        *,
        focused: str,
        value: str = "",
        options: Mapping[str, object] | None = None,
        guild_id: int | None = GUILD_ID,
        channel_id: int = CHANNEL_ID,
        user_id: int = USER_ID,
        locale: str = "en-US",
        timeout: float = 3,  # noqa: ASYNC109
    ) -> InteractionCallback:
        """Send the autocomplete interaction for ``focused`` typed as ``value``; return the answer.

        ``options`` are the other options already filled in.
        """
        command, command_guild = self._registered(name, guild_id)
        filled = {**(options or {}), focused: value}
        data = _command_data(command, command_guild, _options(command, filled, focused))
        interaction = self._interaction(_AUTOCOMPLETE, data, guild_id, channel_id, user_id, locale)
        return await self._interact(interaction, timeout)

    async def drop_gateway(self, *, resumable: bool = True) -> None:
        """Close the client's gateway connection from Discord's side.

        Resumable: close code 4000, and the client's RESUME gets the missed events replayed.
        Not: close code 4009 (session timed out), and the RESUME gets INVALID_SESSION, after
        which discord.py sleeps 5 s in ``before_identify_hook`` and IDENTIFYs again.
        """
        async with self._session_lock:
            session = self._require_session()
            socket, session.socket = session.socket, None
            session.resumable = resumable
            self._live.clear()
        if socket is not None:
            code = 4000 if resumable else 4009
            await socket.close(code=code, message=b"dropped by FakeDiscord")

    # -- REST --------------------------------------------------------------------------

    def _routes(self) -> dict[str, _Handler]:
        return {
            "GET /gateway": self._get_gateway,
            "GET /gateway/bot": self._get_gateway,
            "GET /users/@me": self._get_current_user,
            "GET /oauth2/applications/@me": self._get_application,
            "GET /applications/{application_id}/commands": self._get_commands,
            "PUT /applications/{application_id}/commands": self._put_commands,
            "GET /applications/{application_id}/guilds/{guild_id}/commands": self._get_commands,
            "PUT /applications/{application_id}/guilds/{guild_id}/commands": self._put_commands,
            "POST /interactions/{interaction_id}/{interaction_token}/callback": (
                self._interaction_callback
            ),
            "GET /webhooks/{webhook_id}/{webhook_token}": self._get_webhook,
            "POST /webhooks/{webhook_id}/{webhook_token}": self._execute_webhook,
            "GET /webhooks/{webhook_id}/{webhook_token}/messages/@original": self._get_original,
            "PATCH /webhooks/{webhook_id}/{webhook_token}/messages/@original": (
                self._edit_original
            ),
            "GET /channels/{channel_id}": self._get_channel,
            "POST /channels/{channel_id}/messages": self._create_message,
        }

    def _serve(self, route: str, handler: _Handler) -> _AiohttpHandler:
        async def serve(request: web.Request) -> web.StreamResponse:
            body = await _body(request)
            authorization = request.headers.get("Authorization")
            failures = self._failures[_route_key(route)]
            if failures:
                response: web.StreamResponse = failures.popleft().response()
            elif _needs_bot_token(route) and authorization != f"Bot {self.bot_token}":
                response = _error(401, 0)
            else:
                response = await handler(request, body)
            # discord.py takes a 429 without Via for a Cloudflare ban and does not retry it.
            response.headers["Via"] = "1.1 google"
            self.requests.append(
                RecordedRequest(
                    method=request.method,
                    path=request.path.removeprefix(API_PREFIX),
                    route=route,
                    query=dict(request.query),
                    json=body,
                    authorization=authorization,
                    status=response.status,
                )
            )
            self._note_change()
            return response

        return serve

    async def _get_gateway(self, request: web.Request, body: Any) -> web.Response:
        answer: JsonObject = {"url": self.gateway_url}
        if request.path.endswith("/bot"):
            answer["shards"] = 1
            answer["session_start_limit"] = {
                "total": 1000,
                "remaining": 999,
                "reset_after": 14_400_000,
                "max_concurrency": 1,
            }
        return _json(answer)

    async def _get_current_user(self, request: web.Request, body: Any) -> web.Response:
        return _json(
            {**_bot_user(), "verified": True, "mfa_enabled": False, "locale": "en-US", "flags": 0}
        )

    async def _get_application(self, request: web.Request, body: Any) -> web.Response:
        return _json(
            {
                "id": str(APPLICATION_ID),
                "name": "usage-bot",
                "icon": None,
                "description": "",
                "summary": "",
                "type": None,
                "bot_public": False,
                "bot_require_code_grant": False,
                "verify_key": "0" * 64,
                "flags": 0,
                "owner": _user(OWNER_ID, "owner"),
                "team": None,
                "bot": _bot_user(),
                "redirect_uris": [],
                "interactions_endpoint_url": None,
            }
        )

    async def _get_commands(self, request: web.Request, body: Any) -> web.Response:
        guild_id = _snowflake_or_none(request.match_info.get("guild_id"))
        if problem := _not_ours(request, guild_id):
            return problem
        return _json(list(self.commands.get(guild_id, {}).values()))

    async def _put_commands(self, request: web.Request, body: Any) -> web.Response:
        guild_id = _snowflake_or_none(request.match_info.get("guild_id"))
        if problem := _not_ours(request, guild_id):
            return problem
        if not isinstance(body, list):
            return _error(400, 50035)
        before = self.commands.get(guild_id, {})
        stored: dict[str, JsonObject] = {}
        for command in body:
            kept = before.get(command["name"])
            stored[command["name"]] = {
                "type": 1,
                "description": "",
                "options": [],
                "default_member_permissions": None,
                "nsfw": False,
                **command,
                # Discord keeps a command's id across overwrites that keep its name.
                "id": kept["id"] if kept else str(self._new_id()),
                "application_id": str(APPLICATION_ID),
                "version": str(self._new_id()),
                **({"guild_id": str(guild_id)} if guild_id else {}),
            }
        self.commands[guild_id] = stored
        self.command_syncs.append(CommandSync(guild_id=guild_id, commands=body))
        return _json(list(stored.values()))

    async def _interaction_callback(self, request: web.Request, body: Any) -> web.Response:
        interaction = self._interactions.get(int(request.match_info["interaction_id"]))
        if interaction is None or interaction.token != request.match_info["interaction_token"]:
            return _error(404, 10062)
        if interaction.acknowledged:
            return _error(400, 40060)
        if not isinstance(body, dict) or "type" not in body:
            return _error(400, 50035)
        kind, data = body["type"], body.get("data") or {}
        callback = InteractionCallback(interaction_id=interaction.id, type=kind, data=data)
        self.callbacks.append(callback)
        if kind in (_CHANNEL_MESSAGE, _DEFERRED_CHANNEL_MESSAGE):
            flags = int(data.get("flags") or 0) & _EPHEMERAL
            if kind == _DEFERRED_CHANNEL_MESSAGE:
                flags |= _LOADING
            interaction.original = self._message(
                interaction.channel_id,
                data,
                author=_bot_user(),
                flags=flags,
                webhook_id=APPLICATION_ID,
                kind=_CHAT_INPUT_COMMAND_MESSAGE,
            )
        interaction.callback.set_result(callback)
        if request.query.get("with_response", "").lower() not in ("1", "true"):
            return web.Response(status=204)
        answer: JsonObject = {
            "interaction": {"id": str(interaction.id), "type": interaction.type},
            "resource": {"type": kind},
        }
        if interaction.original is not None:
            answer["interaction"] |= {
                "response_message_id": interaction.original["id"],
                "response_message_loading": kind == _DEFERRED_CHANNEL_MESSAGE,
                "response_message_ephemeral": bool(interaction.original["flags"] & _EPHEMERAL),
            }
            answer["resource"]["message"] = interaction.original
        return _json(answer)

    async def _get_webhook(self, request: web.Request, body: Any) -> web.Response:
        """Discord's "Get Webhook with Token": no bot token needed, no user in the answer."""
        webhook_id = int(request.match_info["webhook_id"])
        if (webhook_id, request.match_info["webhook_token"]) != (WEBHOOK_ID, WEBHOOK_TOKEN):
            return _error(404, 10015)
        return _json(
            {
                "id": str(WEBHOOK_ID),
                "type": 1,
                "guild_id": str(GUILD_ID),
                "channel_id": str(CHANNEL_ID),
                "name": "Claude usage",
                "avatar": None,
                "application_id": None,
                "token": WEBHOOK_TOKEN,
            }
        )

    async def _execute_webhook(self, request: web.Request, body: Any) -> web.Response:
        webhook_id = int(request.match_info["webhook_id"])
        token = request.match_info["webhook_token"]
        interaction = self._interactions_by_token.get(token)
        if not isinstance(body, dict):
            return _error(400, 50006)
        # Discord knows an interaction's webhook only once the interaction is acknowledged.
        if webhook_id == APPLICATION_ID and interaction and interaction.acknowledged:
            message = self._message(
                interaction.channel_id,
                body,
                author=_bot_user(),
                flags=int(body.get("flags") or 0) & _EPHEMERAL,
                webhook_id=APPLICATION_ID,
                kind=_CHAT_INPUT_COMMAND_MESSAGE,
            )
            self.followups.append(SentMessage.of(message))
        elif (webhook_id, token) == (WEBHOOK_ID, WEBHOOK_TOKEN):
            author = {**_user(WEBHOOK_ID, body.get("username") or "Claude usage"), "bot": True}
            message = self._message(CHANNEL_ID, body, author=author, flags=0, webhook_id=WEBHOOK_ID)
            self.webhook_messages.append(SentMessage.of(message))
        else:
            return _error(404, 10015)
        if request.query.get("wait", "").lower() in ("1", "true"):
            return _json(message)
        return web.Response(status=204)

    async def _get_original(self, request: web.Request, body: Any) -> web.Response:
        interaction = self._interaction_of_webhook(request)
        if interaction is None or interaction.original is None:
            return _error(404, 10008)
        return _json(interaction.original)

    async def _edit_original(self, request: web.Request, body: Any) -> web.Response:
        interaction = self._interaction_of_webhook(request)
        if interaction is None or interaction.original is None:
            return _error(404, 10008)
        original = interaction.original
        body = body if isinstance(body, dict) else {}
        if "content" in body:
            original["content"] = body["content"] or ""
        if "embeds" in body:
            original["embeds"] = _embeds(body)
        if "components" in body:
            original["components"] = body["components"] or []
        original["flags"] &= ~_LOADING
        original["edited_timestamp"] = _now()
        self.original_edits.append(SentMessage.of(dict(original)))
        return _json(original)

    async def _get_channel(self, request: web.Request, body: Any) -> web.Response:
        channel = self.channels.get(int(request.match_info["channel_id"]))
        return _error(404, 10003) if channel is None else _json(channel)

    async def _create_message(self, request: web.Request, body: Any) -> web.Response:
        channel_id = int(request.match_info["channel_id"])
        if channel_id not in self.channels:
            return _error(404, 10003)
        if not isinstance(body, dict):
            return _error(400, 50006)
        message = self._message(channel_id, body, author=_bot_user(), flags=0)
        self.channel_messages.append(SentMessage.of(message))
        return _json(message)

    def _interaction_of_webhook(self, request: web.Request) -> _Interaction | None:
        if int(request.match_info["webhook_id"]) != APPLICATION_ID:
            return None
        return self._interactions_by_token.get(request.match_info["webhook_token"])

    def _message(
        self,
        channel_id: int,
        body: JsonObject,
        *,
        author: JsonObject,
        flags: int,
        webhook_id: int | None = None,
        kind: int = _DEFAULT_MESSAGE,
    ) -> JsonObject:
        message: JsonObject = {
            "id": str(self._new_id()),
            "channel_id": str(channel_id),
            "author": author,
            "content": body.get("content") or "",
            "timestamp": _now(),
            "edited_timestamp": None,
            "tts": bool(body.get("tts")),
            "mention_everyone": False,
            "mentions": [],
            "mention_roles": [],
            "attachments": [],
            "embeds": _embeds(body),
            "components": body.get("components") or [],
            "pinned": False,
            "type": kind,
            "flags": flags,
        }
        if webhook_id is not None:
            message["webhook_id"] = str(webhook_id)
        if webhook_id == APPLICATION_ID:
            message["application_id"] = str(APPLICATION_ID)
        return message

    # -- gateway, server side ----------------------------------------------------------

    async def _gateway(self, request: web.Request) -> web.WebSocketResponse:
        # discord.py asks for zlib- or zstd-stream compression but reads plain text frames too.
        socket = web.WebSocketResponse()
        await socket.prepare(request)
        self._sockets.add(socket)
        self.gateway_connections.append(request.path_qs)
        try:
            interval = round(self.heartbeat_interval * 1000)
            await _send(socket, {"op": _HELLO, "d": {"heartbeat_interval": interval}})
            async for frame in socket:
                if frame.type is WSMsgType.TEXT:
                    await self._receive(socket, json.loads(frame.data))
        finally:
            self._sockets.discard(socket)
            async with self._session_lock:
                if self._session is not None and self._session.socket is socket:
                    self._session.socket = None
                    self._live.clear()
            self._note_change()
        return socket

    async def _receive(self, socket: web.WebSocketResponse, payload: JsonObject) -> None:
        self.gateway_payloads.append(payload)
        op = payload.get("op")
        if op == _HEARTBEAT:
            self.heartbeat_count += 1
            await _send(socket, {"op": _HEARTBEAT_ACK})
        elif op == _IDENTIFY:
            self.identifies.append(payload["d"])
            await self._identify(socket, payload["d"])
        elif op == _RESUME:
            self.resumes.append(payload["d"])
            await self._resume(socket, payload["d"])
        self._note_change()

    async def _identify(self, socket: web.WebSocketResponse, data: JsonObject) -> None:
        if data.get("token") != self.bot_token:
            await socket.close(code=4004, message=b"Authentication failed.")
            return
        async with self._session_lock:
            self._session = session = _GatewaySession(id=uuid.uuid4().hex, socket=socket)
            await self._emit(session, "READY", self._ready_event(data))
            # discord.py holds on_ready until GUILD_CREATEs stop coming (guild_ready_timeout);
            # Discord sends them only to clients with the guilds intent.
            if int(data.get("intents") or 0) & _GUILDS_INTENT:
                await self._emit(session, "GUILD_CREATE", _guild())
            self._live.set()

    async def _resume(self, socket: web.WebSocketResponse, data: JsonObject) -> None:
        async with self._session_lock:
            session = self._session
            if (
                session is None
                or not session.resumable
                or session.id != data.get("session_id")
                or data.get("token") != self.bot_token
            ):
                await _send(socket, {"op": _INVALID_SESSION, "d": False})
                return
            received = data.get("seq") or 0
            for event in session.sent:
                if event["s"] > received:
                    self.replayed.append(event["t"])
                    await _send(socket, event)
            session.socket = socket
            await self._emit(session, "RESUMED", {})
            self._live.set()

    async def _emit(self, session: _GatewaySession, event: str, data: JsonObject) -> None:
        """Send a DISPATCH, or keep it for a RESUME to replay; hold the session lock."""
        session.sequence += 1
        frame = {"op": _DISPATCH, "t": event, "s": session.sequence, "d": data}
        session.sent.append(frame)
        if session.socket is not None:
            with contextlib.suppress(ConnectionResetError):  # then a RESUME replays it
                await _send(session.socket, frame)

    def _ready_event(self, identify: JsonObject) -> JsonObject:
        ready: JsonObject = {
            "v": 10,
            "user": {**_bot_user(), "verified": True, "mfa_enabled": False, "flags": 0},
            "guilds": [{"id": str(GUILD_ID), "unavailable": True}],
            "session_id": self._require_session().id,
            "resume_gateway_url": self.resume_gateway_url,
            "application": {"id": str(APPLICATION_ID), "flags": 0},
            "private_channels": [],
            "relationships": [],
            "presences": [],
            "user_settings": {},
            "guild_join_requests": [],
            "geo_ordered_rtc_regions": [],
        }
        if "shard" in identify:
            ready["shard"] = identify["shard"]
        return ready

    def _require_session(self) -> _GatewaySession:
        if self._session is None:
            raise RuntimeError("no client has IDENTIFYed: await wait_until_ready() first")
        return self._session

    # -- interactions ------------------------------------------------------------------

    def _registered(self, name: str, guild_id: int | None) -> tuple[JsonObject, int | None]:
        """The command as synced, and the guild it was synced to (None: global)."""
        in_guild = self.commands.get(guild_id, {}).get(name) if guild_id else None
        if in_guild is not None:
            return in_guild, guild_id
        global_command = self.commands.get(None, {}).get(name)
        if global_command is None:
            raise LookupError(
                f"/{name} was never synced; Discord delivers only registered commands"
            )
        return global_command, None

    def _interaction(
        self,
        kind: int,
        data: JsonObject,
        guild_id: int | None,
        channel_id: int,
        user_id: int,
        locale: str,
    ) -> _Interaction:
        interaction_id = self._new_id()
        token = f"fake-interaction-token-{uuid.uuid4().hex}"
        payload: JsonObject = {
            "id": str(interaction_id),
            "application_id": str(APPLICATION_ID),
            "type": kind,
            "data": data,
            "token": token,
            "version": 1,
            "channel_id": str(channel_id),
            "app_permissions": str(_BOT_PERMISSIONS),
            "locale": locale,
            "entitlements": [],
            "attachment_size_limit": 10 * 1024 * 1024,
        }
        if guild_id is None:
            user = _user(user_id, "tester")
            payload |= {
                "user": user,
                "channel": {"id": str(channel_id), "type": _DM_CHANNEL, "recipients": [user]},
                "context": 1,
                "authorizing_integration_owners": {"0": str(user_id)},
            }
        else:
            channel = self.channels.get(channel_id, _text_channel(channel_id))
            payload |= {
                "guild_id": str(guild_id),
                "guild": {"id": str(guild_id), "locale": "en-US", "features": []},
                "guild_locale": "en-US",
                "channel": {**channel, "guild_id": str(guild_id)},
                "member": _member(_user(user_id, "tester")),
                "context": 0,
                "authorizing_integration_owners": {"0": str(guild_id)},
            }
        interaction = _Interaction(
            id=interaction_id,
            type=kind,
            token=token,
            channel_id=channel_id,
            payload=payload,
            callback=asyncio.get_running_loop().create_future(),
        )
        self._interactions[interaction.id] = interaction
        self._interactions_by_token[interaction.token] = interaction
        return interaction

    async def _interact(self, interaction: _Interaction, timeout: float) -> InteractionCallback:  # noqa: ASYNC109
        async with self._session_lock:
            await self._emit(self._require_session(), "INTERACTION_CREATE", interaction.payload)
        async with self._deadline(timeout, f"callback to interaction {interaction.id}"):
            # Shielded: a timed-out wait must not cancel the future, which would make a late
            # callback look like a second acknowledgement.
            return await asyncio.shield(interaction.callback)

    # -- plumbing ----------------------------------------------------------------------

    def _new_id(self) -> int:
        return next(self._snowflakes)

    def _note_change(self) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    @contextlib.asynccontextmanager
    async def _deadline(self, seconds: float, waiting_for: str) -> AsyncIterator[None]:
        try:
            async with asyncio.timeout(seconds):
                yield
        except TimeoutError:
            seen = "; ".join(f"{r.method} {r.path} -> {r.status}" for r in self.requests[-8:])
            raise TimeoutError(
                f"FakeDiscord: no {waiting_for} within {seconds} s; last requests: {seen or 'none'}"
            ) from None


@contextlib.contextmanager
def point_discord_at(fake: FakeDiscord) -> Iterator[None]:
    """Send discord.py's REST calls, webhooks included, and its gateway to ``fake``.

    Both are process-wide class attributes; they are restored on the way out.
    """
    base, gateway = discord.http.Route.BASE, discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY
    discord.http.Route.BASE = fake.api_url
    discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(fake.gateway_url)
    try:
        yield
    finally:
        discord.http.Route.BASE = base
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = gateway


def _needs_bot_token(route: str) -> bool:
    # Interaction callbacks and webhooks are authorised by the token in their path.
    path = route.partition(" ")[2]
    return route != "GET /gateway" and not path.startswith(("/interactions/", "/webhooks/"))


def _route_key(route: str) -> str:
    """A route with its parameter names blanked, for comparing routes."""
    method, _, path = route.strip().partition(" ")
    return f"{method.upper()} " + re.sub(r"\{[^}]*\}", "{}", path.strip())


async def _body(request: web.Request) -> Any:
    """The JSON body; with files, discord.py sends it as the ``payload_json`` form field."""
    if not request.can_read_body:
        return None
    if request.content_type == "application/json":
        return await request.json()
    if request.content_type == "multipart/form-data":
        payload = (await request.post()).get("payload_json")
        return json.loads(payload) if isinstance(payload, str) else None
    return None


async def _unknown_route(request: web.Request, body: Any) -> web.Response:
    return _json({"message": "404: Not Found", "code": 0}, status=404)


def _not_ours(request: web.Request, guild_id: int | None) -> web.Response | None:
    if int(request.match_info["application_id"]) != APPLICATION_ID:
        return _error(404, 10002)
    if guild_id is not None and guild_id != GUILD_ID:
        return _error(403, 50001)
    return None


def _json(
    data: Any, *, status: int = 200, headers: Mapping[str, str] | None = None
) -> web.Response:
    # discord.py parses a body as JSON only if Content-Type is exactly application/json,
    # which is what Discord sends; aiohttp's json_response would add "; charset=utf-8".
    return web.Response(
        body=json.dumps(data).encode(),
        status=status,
        headers=headers,
        content_type="application/json",
    )


def _error(status: int, code: int) -> web.Response:
    message = _ERROR_MESSAGES.get(code) or f"{status}: {HTTPStatus(status).phrase}"
    return _json({"message": message, "code": code}, status=status)


async def _send(socket: web.WebSocketResponse, payload: JsonObject) -> None:
    await socket.send_str(json.dumps(payload))


def _options(
    command: JsonObject, values: Mapping[str, object], focused: str | None
) -> list[JsonObject]:
    declared = {option["name"]: option for option in command.get("options", [])}
    options = []
    for name, value in values.items():
        if name not in declared:
            raise ValueError(
                f"/{command['name']} has no option {name!r}; it has {sorted(declared)}"
            )
        option: JsonObject = {"name": name, "type": declared[name]["type"], "value": value}
        if name == focused:
            option["focused"] = True
        options.append(option)
    return options


def _command_data(
    command: JsonObject, guild_id: int | None, options: list[JsonObject]
) -> JsonObject:
    data: JsonObject = {"id": command["id"], "name": command["name"], "type": command["type"]}
    if options:
        data["options"] = options
    if guild_id is not None:
        data["guild_id"] = str(guild_id)  # discord.py looks guild commands up by it
    return data


def _embeds(body: JsonObject) -> list[JsonObject]:
    return [{"type": "rich", **embed} for embed in body.get("embeds") or []]


def _user(user_id: int, name: str) -> JsonObject:
    return {
        "id": str(user_id),
        "username": name,
        "discriminator": "0",
        "global_name": None,
        "avatar": None,
        "public_flags": 0,
    }


def _bot_user() -> JsonObject:
    return {**_user(BOT_USER_ID, "usage-bot"), "bot": True}


def _member(user: JsonObject) -> JsonObject:
    return {
        "user": user,
        "roles": [],
        "joined_at": _DISCORD_EPOCH.isoformat(),
        "deaf": False,
        "mute": False,
        "flags": 0,
        "pending": False,
        "permissions": str(_BOT_PERMISSIONS),
    }


def _text_channel(channel_id: int) -> JsonObject:
    return {
        "id": str(channel_id),
        "type": _TEXT_CHANNEL,
        "guild_id": str(GUILD_ID),
        "name": "general",
        "position": 0,
        "permission_overwrites": [],
        "nsfw": False,
        "topic": None,
        "last_message_id": None,
        "rate_limit_per_user": 0,
        "parent_id": None,
        "flags": 0,
    }


def _thread(thread_id: int, parent_id: int) -> JsonObject:
    return {
        "id": str(thread_id),
        "type": _PUBLIC_THREAD,
        "guild_id": str(GUILD_ID),
        "parent_id": str(parent_id),
        "owner_id": str(USER_ID),
        "name": "a thread",
        "last_message_id": None,
        "rate_limit_per_user": 0,
        "message_count": 0,
        "member_count": 1,
        "flags": 0,
        "thread_metadata": {
            "archived": False,
            "auto_archive_duration": 1440,
            "archive_timestamp": _DISCORD_EPOCH.isoformat(),
            "locked": False,
        },
    }


def _guild() -> JsonObject:
    return {
        "id": str(GUILD_ID),
        "name": "Fake Guild",
        "icon": None,
        "owner_id": str(OWNER_ID),
        "unavailable": False,
        "large": False,
        "member_count": 3,
        "joined_at": _DISCORD_EPOCH.isoformat(),
        "preferred_locale": "en-US",
        "features": [],
        "roles": [{"id": str(GUILD_ID), "name": "@everyone", "permissions": "0", "position": 0}],
        "channels": [_text_channel(CHANNEL_ID)],
        "members": [_member(_bot_user())],
        "threads": [],
        "presences": [],
        "voice_states": [],
        "emojis": [],
        "stickers": [],
        "stage_instances": [],
        "guild_scheduled_events": [],
        "soundboard_sounds": [],
    }


def _snowflake_or_none(value: str | None) -> int | None:
    return None if value is None else int(value)


def _now() -> str:
    return datetime.now(UTC).isoformat()
