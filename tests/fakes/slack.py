"""A local fake of Slack at the network boundary, for the real slack_sdk and slack-bolt.

One aiohttp server on 127.0.0.1 plays every part of Slack the bot talks to:

- the Web API at ``api_url``, to pass as ``base_url`` to ``AsyncWebClient``;
- the Socket Mode server that ``apps.connections.open`` sends clients to;
- an incoming webhook at ``webhook_url``;
- slash-command ``response_url``s, from ``response_url(tag)``.

Everything it receives is kept for assertions. ``fail`` and ``fail_webhook`` make the
next calls fail the way Slack does: 429 with ``Retry-After``, a 5xx, or ``ok: false``;
``delay`` makes them slow, before or after Slack has acted on them.
Waiting methods use events and queues, never sleeps, and each takes a ``timeout``: a
fake that could wait forever would hang the test (hence the ``noqa: ASYNC109``).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import time
import uuid
from collections import defaultdict, deque
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self, TypeAlias

from aiohttp import WSCloseCode, WSMsgType, web

JsonObject: TypeAlias = dict[str, Any]

_HOST = "127.0.0.1"
_WEBHOOK_PATH = "/services/T000/B000/XXXX"
_HANG_UP_CHECK = 0.02
_DEBUG_INFO = {"host": "fake-slack", "build_number": 1, "approximate_connection_time": 18060}

# What Slack's body says when a test only names the status.
_API_ERRORS = {429: "ratelimited"}
_WEBHOOK_ERRORS = {400: "invalid_payload", 404: "no_service", 429: "rate_limited"}


@dataclass(frozen=True)
class Call:
    """One request the fake answered: a Web API method, or a post to the incoming webhook."""

    method: str
    args: JsonObject
    authorization: str | None
    status: int
    failed: bool

    @property
    def token(self) -> str | None:
        """The token, from ``Authorization: Bearer ...`` or else from the arguments."""
        return _token(self.authorization, self.args)


@dataclass(frozen=True)
class Ack:
    """A Socket Mode client's acknowledgement of one envelope, and how long it took."""

    envelope_id: str
    body: JsonObject
    seconds: float


@dataclass(frozen=True)
class _Delay:
    seconds: float
    accepted: bool


@dataclass(frozen=True)
class _Failure:
    status: int
    error: str
    retry_after: int | None

    @classmethod
    def build(
        cls, status: int, error: str | None, retry_after: int | None, errors: Mapping[int, str]
    ) -> _Failure:
        error = error or errors.get(status) or ("fatal_error" if status >= 500 else None)
        if error is None:
            raise ValueError(f"say which error a failure with status {status} reports")
        if status == 429 and retry_after is None:
            retry_after = 1  # Slack always says when to come back
        return cls(status, error, retry_after)

    @property
    def headers(self) -> dict[str, str]:
        return {} if self.retry_after is None else {"Retry-After": str(self.retry_after)}


class FakeSlack:
    """Slack's Web API, Socket Mode server, incoming webhook and response_urls, on loopback.

    Use as ``async with FakeSlack() as slack:``; the server listens on a random port
    until the block ends, and closes any Socket Mode connection still open.
    """

    team_id = "T000"
    team = "Fake Team"
    team_url = "https://fake-team.slack.com/"
    bot_user_id = "U0BOT"
    bot_user = "usage-bot"
    bot_id = "B0BOT"
    app_id = "A0APP"

    def __init__(self) -> None:
        self.calls: list[Call] = []
        self.webhook_calls: list[Call] = []
        self.webhook_posts: list[JsonObject] = []
        self.responses: list[tuple[str, JsonObject]] = []
        self.envelopes: list[JsonObject] = []
        self.acks: list[Ack] = []
        self.socket_messages: list[JsonObject] = []
        self.socket_connections = 0
        # Calls being held by ``delay``, as ``(method, args)``, recorded when the hold begins.
        self.held: list[tuple[str, JsonObject]] = []
        # The bot token's scopes, sent as Slack sends them (X-OAuth-Scopes); None sends none.
        self.scopes: list[str] | None = None

        self._failures: defaultdict[str, deque[_Failure]] = defaultdict(deque)
        self._delays: defaultdict[str, deque[_Delay]] = defaultdict(deque)
        self._webhook_failures: deque[_Failure] = deque()
        self._channels_without_bot: set[str] = set()
        self._tickets: set[str] = set()
        self._timestamps = itertools.count(1)
        self._unread_responses: asyncio.Queue[tuple[str, JsonObject]] = asyncio.Queue()
        self._sockets: list[web.WebSocketResponse] = []
        self._sockets_changed = asyncio.Condition()
        self._pending_acks: dict[str, tuple[float, asyncio.Future[JsonObject]]] = {}
        self._runner: web.AppRunner | None = None
        self._port: int | None = None

    async def __aenter__(self) -> Self:
        app = web.Application()
        app.router.add_route("GET", "/api/{method}", self._web_api)
        app.router.add_route("POST", "/api/{method}", self._web_api)
        app.router.add_post(_WEBHOOK_PATH, self._webhook)
        app.router.add_post("/response/{tag}", self._response)
        app.router.add_get("/link/", self._socket_mode)
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
        for socket in list(self._sockets):
            await self._forget(socket)
            await socket.close(code=WSCloseCode.GOING_AWAY)
        for _, ack in self._pending_acks.values():
            ack.cancel()
        if self._runner is not None:
            await self._runner.cleanup()

    # -- addresses ---------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        if self._port is None:
            raise RuntimeError("FakeSlack is not running: use it as `async with FakeSlack()`")
        return f"http://{_HOST}:{self._port}"

    @property
    def api_url(self) -> str:
        """The Web API root, ending in a slash, for ``AsyncWebClient(base_url=...)``."""
        return f"{self.base_url}/api/"

    @property
    def webhook_url(self) -> str:
        return f"{self.base_url}{_WEBHOOK_PATH}"

    def response_url(self, tag: str) -> str:
        """A response_url whose posts are recorded in ``responses`` under ``tag``."""
        return f"{self.base_url}/response/{tag}"

    # -- what was received -------------------------------------------------------------

    @property
    def posts(self) -> list[JsonObject]:
        """The arguments of every chat.postMessage that succeeded."""
        return [call.args for call in self.calls_to("chat.postMessage") if not call.failed]

    def calls_to(self, method: str) -> list[Call]:
        return [call for call in self.calls if call.method == method]

    async def wait_for_response(self, *, timeout: float = 3) -> tuple[str, JsonObject]:  # noqa: ASYNC109
        """The next post to a response_url not yet returned here, as ``(tag, payload)``."""
        async with _deadline(timeout, "post to a response_url"):
            return await self._unread_responses.get()

    # -- behaviour on demand -----------------------------------------------------------

    def fail(
        self,
        method: str,
        *,
        status: int = 200,
        error: str | None = None,
        retry_after: int | None = None,
        times: int = 1,
    ) -> None:
        """Make the next ``times`` calls to a Web API method fail, then work again.

        ``status=429`` answers ``ratelimited`` with ``Retry-After`` (``retry_after``, 1 by
        default); a 5xx answers ``fatal_error``; ``error=`` alone answers HTTP 200 with
        ``{"ok": false, "error": error}``. Failures queue up in the order they were asked for.
        """
        failure = _Failure.build(status, error, retry_after, _API_ERRORS)
        self._failures[method].extend([failure] * _positive(times))

    def delay(self, method: str, seconds: float, *, accepted: bool = False, times: int = 1) -> None:
        """Make the next ``times`` calls to a Web API method take ``seconds`` to answer.

        By default the call is held before Slack acts on it, as on a slow way to Slack: a
        client that hangs up meanwhile has done nothing (the call is recorded as failed,
        with status 499, as soon as it hangs up). With ``accepted``, Slack acts on the call
        at once (a message is in the channel) and only the answer is held, so a client
        that hangs up meanwhile never hears that it worked. Each held call is added to
        ``held`` when its hold begins.
        """
        if seconds <= 0:
            raise ValueError(f"a delay must be positive, not {seconds}")
        self._delays[method].extend([_Delay(seconds, accepted)] * _positive(times))

    def fail_webhook(
        self,
        *,
        status: int,
        error: str | None = None,
        retry_after: int | None = None,
        times: int = 1,
    ) -> None:
        """Make the next ``times`` posts to the incoming webhook fail, in plain text as Slack's do.

        404 says ``no_service``, 429 says ``rate_limited`` with ``Retry-After``, a 5xx says
        ``fatal_error``, unless ``error`` says otherwise.
        """
        failure = _Failure.build(status, error, retry_after, _WEBHOOK_ERRORS)
        self._webhook_failures.extend([failure] * _positive(times))

    def remove_bot_from(self, channel_id: str) -> None:
        """Take the bot out of a channel, until it calls conversations.join.

        conversations.info then says ``is_member: false``, and chat.postMessage answers
        ``not_in_channel``.
        """
        self._channels_without_bot.add(channel_id)

    # -- Socket Mode -------------------------------------------------------------------

    async def wait_for_socket(self, *, timeout: float = 5) -> None:  # noqa: ASYNC109
        """Wait until a Socket Mode client is connected and has been sent ``hello``."""
        async with _deadline(timeout, "Socket Mode connection"), self._sockets_changed:
            await self._sockets_changed.wait_for(lambda: bool(self._sockets))

    async def send_slash_command(
        self,
        *,
        command: str = "/claude-usage",
        text: str = "",
        user_id: str = "U123",
        user_name: str = "alice",
        channel_id: str = "C123",
        team_id: str = "T123",
        timeout: float = 3,  # noqa: ASYNC109
    ) -> JsonObject:
        """Send a ``slash_commands`` envelope and return the client's ack.

        The payload's ``response_url`` is ``response_url(envelope_id)``.
        """
        envelope_id = str(uuid.uuid4())
        payload = {
            "token": "fake-verification-token",
            "team_id": team_id,
            "team_domain": "fake-team",
            "channel_id": channel_id,
            "channel_name": "general",
            "user_id": user_id,
            "user_name": user_name,
            "command": command,
            "text": text,
            "api_app_id": self.app_id,
            "is_enterprise_install": "false",
            "response_url": self.response_url(envelope_id),
            "trigger_id": f"{next(self._timestamps)}.{team_id}.fake",
        }
        return await self.send_envelope(
            "slash_commands",
            payload,
            accepts_response_payload=True,
            envelope_id=envelope_id,
            timeout=timeout,
        )

    async def send_envelope(
        self,
        envelope_type: str,
        payload: JsonObject,
        *,
        accepts_response_payload: bool = False,
        envelope_id: str | None = None,
        timeout: float = 3,  # noqa: ASYNC109
    ) -> JsonObject:
        """Send any envelope (``events_api``, ``interactive``...) and return the client's ack."""
        socket = self._newest_socket()
        envelope_id = envelope_id or str(uuid.uuid4())
        envelope = {
            "envelope_id": envelope_id,
            "payload": payload,
            "type": envelope_type,
            "accepts_response_payload": accepts_response_payload,
        }
        ack: asyncio.Future[JsonObject] = asyncio.get_running_loop().create_future()
        self._pending_acks[envelope_id] = (time.monotonic(), ack)
        self.envelopes.append(envelope)
        try:
            await socket.send_json(envelope)
            async with _deadline(timeout, f"ack of envelope {envelope_id}"):
                return await ack
        finally:
            self._pending_acks.pop(envelope_id, None)

    async def drop_socket(self, *, reason: str | None = None, timeout: float = 3) -> None:  # noqa: ASYNC109
        """Close the newest Socket Mode connection from Slack's side.

        Without a reason the connection just closes, as when the network drops. With one
        (Slack sends ``refresh_requested`` every few hours) the client is first sent a
        ``disconnect`` message and given ``timeout`` seconds to move to a new connection
        and close this one itself; the fake closes it if the client does not.
        """
        socket = self._newest_socket()
        if reason is not None:
            await socket.send_json(
                {"type": "disconnect", "reason": reason, "debug_info": _DEBUG_INFO}
            )
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout), self._sockets_changed:
                    await self._sockets_changed.wait_for(lambda: socket not in self._sockets)
        await self._forget(socket)
        await socket.close(code=WSCloseCode.GOING_AWAY)

    # -- request handlers --------------------------------------------------------------

    async def _web_api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        args = await _arguments(request)
        authorization = request.headers.get("Authorization")
        delay = self._delays[method].popleft() if self._delays[method] else None
        if delay is not None:
            self.held.append((method, args))
            if not delay.accepted and not await _hold(request, delay.seconds):
                self.calls.append(Call(method, args, authorization, 499, failed=True))
                return web.Response(status=499)
        response = self._act(method, args, authorization)
        if delay is not None and delay.accepted:
            await _hold(request, delay.seconds)
        return response

    def _act(self, method: str, args: JsonObject, authorization: str | None) -> web.Response:
        if self._failures[method]:
            failure = self._failures[method].popleft()
            self.calls.append(Call(method, args, authorization, failure.status, failed=True))
            return web.json_response(
                {"ok": False, "error": failure.error},
                status=failure.status,
                headers=failure.headers,
            )
        answer = self._answer(method, args, _token(authorization, args))
        self.calls.append(Call(method, args, authorization, 200, failed=not answer["ok"]))
        headers = {} if self.scopes is None else {"X-OAuth-Scopes": ",".join(self.scopes)}
        return web.json_response(answer, headers=headers)

    def _answer(self, method: str, args: JsonObject, token: str | None) -> JsonObject:
        if token is None:
            return _error("not_authed")
        channel = args.get("channel")
        match method:
            case "auth.test":
                return {
                    "ok": True,
                    "url": self.team_url,
                    "team": self.team,
                    "user": self.bot_user,
                    "team_id": self.team_id,
                    "user_id": self.bot_user_id,
                    "bot_id": self.bot_id,
                    "is_enterprise_install": False,
                }
            case "apps.connections.open":
                if not token.startswith("xapp-"):
                    return _error("not_allowed_token_type")
                ticket = str(uuid.uuid4())
                self._tickets.add(ticket)
                url = f"ws://{_HOST}:{self._port}/link/?ticket={ticket}&app_id={self.app_id}"
                return {"ok": True, "url": url}
            case "chat.postMessage":
                return self._post_message(args)
            case "conversations.info":
                if not channel:
                    return _error("channel_not_found")
                return {"ok": True, "channel": self._channel(channel)}
            case "conversations.join":
                if not channel:
                    return _error("channel_not_found")
                self._channels_without_bot.discard(channel)
                return {"ok": True, "channel": self._channel(channel)}
            case _:
                return {"ok": True}

    def _post_message(self, args: JsonObject) -> JsonObject:
        channel = args.get("channel")
        if not channel:
            return _error("channel_not_found")
        if channel in self._channels_without_bot:
            return _error("not_in_channel")
        if not any(args.get(field) for field in ("text", "blocks", "attachments")):
            return _error("no_text")
        ts = f"1700000000.{next(self._timestamps):06d}"
        message = {
            "type": "message",
            "text": args.get("text", ""),
            "user": self.bot_user_id,
            "bot_id": self.bot_id,
            "ts": ts,
        }
        return {"ok": True, "channel": channel, "ts": ts, "message": message}

    def _channel(self, channel_id: str) -> JsonObject:
        return {
            "id": channel_id,
            "name": channel_id.lower(),
            "is_channel": True,
            "is_private": False,
            "is_archived": False,
            "is_member": channel_id not in self._channels_without_bot,
        }

    async def _webhook(self, request: web.Request) -> web.Response:
        payload = await _webhook_payload(request)
        if self._webhook_failures:
            failure = self._webhook_failures.popleft()
        elif payload is None:
            failure = _Failure(400, "invalid_payload", None)
        elif not any(payload.get(field) for field in ("text", "blocks", "attachments")):
            failure = _Failure(400, "no_text", None)
        else:
            self.webhook_calls.append(Call("incoming-webhook", payload, None, 200, failed=False))
            self.webhook_posts.append(payload)
            return web.Response(text="ok")
        self.webhook_calls.append(
            Call("incoming-webhook", payload or {}, None, failure.status, failed=True)
        )
        return web.Response(status=failure.status, text=failure.error, headers=failure.headers)

    async def _response(self, request: web.Request) -> web.Response:
        tag = request.match_info["tag"]
        payload = await request.json()
        self.responses.append((tag, payload))
        self._unread_responses.put_nowait((tag, payload))
        return web.json_response({"ok": True})

    async def _socket_mode(self, request: web.Request) -> web.WebSocketResponse:
        if request.query.get("ticket") not in self._tickets:
            raise web.HTTPUnauthorized(text="invalid ticket: call apps.connections.open first")
        socket = web.WebSocketResponse()  # autoping answers the client's pings, as Slack does
        await socket.prepare(request)
        self.socket_connections += 1
        await socket.send_json(
            {
                "type": "hello",
                "num_connections": len(self._sockets) + 1,
                "debug_info": _DEBUG_INFO,
                "connection_info": {"app_id": self.app_id},
            }
        )
        async with self._sockets_changed:
            self._sockets.append(socket)
            self._sockets_changed.notify_all()
        try:
            async for message in socket:
                if message.type is WSMsgType.TEXT:
                    self._receive(json.loads(message.data))
        finally:
            await self._forget(socket)
        return socket

    def _receive(self, message: JsonObject) -> None:
        self.socket_messages.append(message)
        envelope_id = message.get("envelope_id")
        if not isinstance(envelope_id, str) or envelope_id not in self._pending_acks:
            return
        sent_at, ack = self._pending_acks.pop(envelope_id)
        self.acks.append(Ack(envelope_id, message, time.monotonic() - sent_at))
        if not ack.done():
            ack.set_result(message)

    def _newest_socket(self) -> web.WebSocketResponse:
        if not self._sockets:
            raise RuntimeError("no Socket Mode client is connected: await wait_for_socket() first")
        return self._sockets[-1]

    async def _forget(self, socket: web.WebSocketResponse) -> None:
        async with self._sockets_changed:
            if socket in self._sockets:
                self._sockets.remove(socket)
                self._sockets_changed.notify_all()


async def _arguments(request: web.Request) -> JsonObject:
    """A method's arguments, wherever the SDK put them: query string, form or JSON body."""
    arguments: JsonObject = dict(request.query)
    if not request.can_read_body:
        return arguments
    if request.content_type == "application/json":
        arguments.update(await request.json())
    else:
        arguments.update(await request.post())
    return arguments


async def _webhook_payload(request: web.Request) -> JsonObject | None:
    """The posted message, sent as JSON or as a form's ``payload`` field; None if unreadable."""
    try:
        if request.content_type == "application/json":
            payload = await request.json()
        else:
            payload = json.loads(str((await request.post()).get("payload", "")))
    except ValueError:
        return None
    return payload if isinstance(payload, dict) else None


async def _hold(request: web.Request, seconds: float) -> bool:
    """Keep a request waiting for ``seconds``; False as soon as its client hangs up."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        # aiohttp does not cancel a handler whose client went away: look, every few ms.
        if request.transport is None or request.transport.is_closing():
            return False
        await asyncio.sleep(min(_HANG_UP_CHECK, max(deadline - time.monotonic(), 0)))
    return request.transport is not None and not request.transport.is_closing()


def _token(authorization: str | None, args: JsonObject) -> str | None:
    if authorization is not None and authorization.startswith("Bearer "):
        return authorization.removeprefix("Bearer ")
    token = args.get("token")
    return token if isinstance(token, str) else None


def _error(error: str) -> JsonObject:
    return {"ok": False, "error": error}


def _positive(times: int) -> int:
    if times < 1:
        raise ValueError(f"times must be at least 1, not {times}")
    return times


@contextlib.asynccontextmanager
async def _deadline(seconds: float, waiting_for: str) -> AsyncIterator[None]:
    try:
        async with asyncio.timeout(seconds):
            yield
    except TimeoutError:
        raise TimeoutError(f"FakeSlack: no {waiting_for} within {seconds} s") from None
