"""The fault matrix, part 1: the upstream and the Claude login (issue 7).

Each row is one fault, and says what the user sees (the answer to ``/claude-usage``: the
last known values with their age and one sentence with the fix) and what happens to
alerts (none lost, none doubled, an incident alert at once or when the fault lasts).
Rows run against the real pieces: the usage client and service against the simulated
upstream on loopback, the real alert scheduler and SQLite store, and the real Slack front
end in HTTP mode (slack-bolt checking signatures) against FakeSlack, on a FakeClock.

Every row follows one story: 85 % (the 80 % alert goes out), the fault begins, a user
types the command, usage climbs to 96 % while the fault lasts, the fault ends. Whatever
the fault, the channel then holds exactly: 80 %, "cannot read usage", "readable again",
95 %. Chat platforms, state and the process are in ``test_faults_chat.py`` and
``test_faults_state.py``; ``docs/reliability.md`` shows the whole matrix.
"""

from __future__ import annotations

import email.utils
import hashlib
import hmac
import itertools
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest

from tests.conftest import TOKEN, write_login
from tests.fakes.slack import FakeSlack
from usage_bot._client import DEFAULT_TIMEOUT, UsageClient
from usage_bot._clock import FakeClock
from usage_bot._config import Settings, load_settings
from usage_bot._credentials import CredentialLoader
from usage_bot._delivery import Courier
from usage_bot._http import HttpServer
from usage_bot._metrics import Metrics
from usage_bot._model import AccountUsage
from usage_bot._notify import AlertMessage, Notifier
from usage_bot._scheduler import AlertScheduler
from usage_bot._service import UsageService
from usage_bot._simulator import Fault, SimulatedUpstream
from usage_bot._texts import FETCHING
from usage_bot.frontends import CommandCore
from usage_bot.frontends.slack.app import SlackFrontEnd
from usage_bot.frontends.slack.http_mode import EVENTS_PATH
from usage_bot.frontends.slack.notify import SlackChannelNotifier
from usage_bot.state.sqlite import SQLiteStore

ACCOUNT = "default"
POLL = 180.0  # USAGE_BOT_POLL_SECONDS' default
RESETS = datetime(2026, 7, 19, 3, 40, tzinfo=UTC)
FIVE_HOURS = timedelta(hours=5)
WEEK_RESETS = datetime(2026, 7, 24, 0, 0, tzinfo=UTC)
SLACK_BOT_TOKEN = "xoxb-2222222222-3333333333-faultmatrixbottoken00"
SLACK_SIGNING_SECRET = "5e1c0d2b7a9f4e3d8c6b1a0f9e8d7c6b"
SLACK_APP_TOKEN = "xapp-1-A0APP-4444444444-faultmatrixapptoken0000"
SLACK_CHANNEL = "C0FAULTS01"


def _error(kind: str, message: str) -> bytes:
    return json.dumps({"type": "error", "error": {"type": kind, "message": message}}).encode()


AUTHENTICATION_ERROR = _error("authentication_error", "Invalid bearer token")
SCOPE_ERROR = _error("permission_error", "OAuth token does not meet scope requirement user:profile")
RATE_LIMIT_ERROR = _error("rate_limit_error", "Rate limited")
CHALLENGE = (
    b"<!DOCTYPE html><html lang='en-US'><head><title>Just a moment...</title></head>"
    b"<body><noscript>Enable JavaScript and cookies to continue</noscript></body></html>"
)

Summary = list[tuple[str, float | None]]
T80: tuple[str, float | None] = ("threshold", 80.0)
T95: tuple[str, float | None] = ("threshold", 95.0)
STARTED: tuple[str, float | None] = ("incident_started", None)
ENDED: tuple[str, float | None] = ("incident_ended", None)


def usage(percent: float) -> dict[str, Any]:
    return {
        "five_hour": {"utilization": percent, "resets_at": RESETS.isoformat()},
        "seven_day": {"utilization": 20.0, "resets_at": WEEK_RESETS.isoformat()},
    }


class Inbox:
    """An alert destination in memory: the team's channel, as the scheduler sees it."""

    def __init__(self, name: str = "team") -> None:
        self.name = name
        self.posted: list[AlertMessage] = []

    async def post(self, message: AlertMessage) -> None:
        self.posted.append(message)

    def summary(self) -> Summary:
        return [(m.kind, m.threshold) for m in self.posted]


def text_of(message: dict[str, Any]) -> str:
    """Everything a reader sees in a Slack message: its blocks' texts, or its text."""
    parts = []
    for block in message.get("blocks", []):
        if "text" in block:
            parts.append(block["text"]["text"])
        parts.extend(element["text"] for element in block.get("elements", []))
    return "\n".join(parts) or str(message.get("text", ""))


def signed(body: str, secret: str = SLACK_SIGNING_SECRET) -> dict[str, str]:
    timestamp = str(int(time.time()))
    base = f"v0:{timestamp}:{body}".encode()
    signature = "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()
    return {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Slack-Request-Timestamp": timestamp,
        "X-Slack-Signature": signature,
    }


def command_body(
    slack: FakeSlack, text: str = "", *, user: str = "U0USER0001", channel: str = "C0GENERAL1"
) -> str:
    return urlencode(
        {
            "token": "fake-verification-token",
            "team_id": "T123",
            "team_domain": "fake-team",
            "channel_id": channel,
            "channel_name": "general",
            "user_id": user,
            "user_name": "alice",
            "command": "/claude-usage",
            "text": text,
            "api_app_id": slack.app_id,
            "is_enterprise_install": "false",
            "response_url": slack.response_url("command"),
            "trigger_id": "1.T123.fake",
        }
    )


# -- the world a row runs in ---------------------------------------------------------------


@dataclass
class World:
    """One running bot: service, scheduler, store, the Slack front end, and their fakes."""

    root: Path
    clock: FakeClock
    upstream: SimulatedUpstream
    slack: FakeSlack
    settings: Settings
    service: UsageService
    store: SQLiteStore
    scheduler: AlertScheduler
    metrics: Metrics
    inbox: Inbox
    front: SlackFrontEnd
    events_url: str | None
    token: str
    fault: Callable[[FakeClock], Fault] | None = None
    request_times: list[datetime] = field(default_factory=list)
    _armed_at: int | None = None

    @property
    def login(self) -> Path:
        return self.root / "claude" / ".credentials.json"

    def write_login(self, **options: Any) -> None:
        write_login(self.login.parent, token=self.token, now=self.clock.now(), **options)

    def outage(self, fault: Callable[[FakeClock], Fault]) -> None:
        """From now on, every request to the upstream gets ``fault(clock)``."""
        self.fault = fault
        self._armed_at = None

    def heal(self) -> None:
        """The upstream works again."""
        self.fault = None

    def arm(self) -> None:
        """Queue the fault for the next request, if one is about to be made.

        The simulator serves queued faults one per request; queueing just before the
        request keeps one queued at most, and an HTTP-date ``retry-after`` current.
        """
        served = len(self.upstream.requests)
        fresh = self._armed_at is None or served > self._armed_at
        if self.fault is not None and fresh and self.service.would_fetch(ACCOUNT):
            self.upstream.fail(self.fault(self.clock))
            self._armed_at = served

    async def command(
        self, text: str = "", *, user: str = "U0USER0001", channel: str = "C0GENERAL1"
    ) -> str:
        """Type ``/claude-usage`` in Slack; what the user sees, as text."""
        self.arm()
        before = len(self.upstream.requests)
        if self.events_url is None:  # Socket Mode
            ack = await self.slack.send_slash_command(text=text, user_id=user, channel_id=channel)
            answer = ack["payload"]
        else:
            body = command_body(self.slack, text, user=user, channel=channel)
            async with httpx.AsyncClient(trust_env=False) as client:
                response = await client.post(self.events_url, content=body, headers=signed(body))
            assert response.status_code == 200, response.text
            answer = response.json()
        if answer.get("text") == FETCHING:
            _, answer = await self.slack.wait_for_response()
        self._note_requests(before)
        return text_of(answer)

    async def poll(self, seconds: float = POLL) -> AccountUsage:
        """Time passes, then the scheduled poll and the deliveries run."""
        self.clock.advance(seconds)
        self.arm()
        before = len(self.upstream.requests)
        await self.scheduler.poll_once(ACCOUNT)
        await self.scheduler.deliver_pending()
        self._note_requests(before)
        return self.service.peek(ACCOUNT)

    def _note_requests(self, before: int) -> None:
        self.request_times.extend([self.clock.now()] * (len(self.upstream.requests) - before))


def slack_channel(settings: Settings) -> SlackChannelNotifier:
    """Alerts to SLACK_ALERT_CHANNEL, as the composition root builds them."""
    slack = settings.slack
    assert slack.bot_token is not None
    assert slack.alert_channel is not None
    return SlackChannelNotifier(
        token=slack.bot_token, channel=slack.alert_channel, api_base_url=slack.api_base_url
    )


@asynccontextmanager
async def open_world(
    root: Path,
    *,
    token: str = TOKEN,
    client_timeout: httpx.Timeout | None = None,
    notifiers: Sequence[Notifier] = (),
    slack_alerts: bool = False,
    socket_mode: bool = False,
    store: SQLiteStore | None = None,
    env: dict[str, str] | None = None,
) -> AsyncIterator[World]:
    """A bot at 85 % on a FakeClock, its 80 % alert not yet polled for.

    ``/claude-usage`` reaches it in Slack's HTTP mode, or in Socket Mode; alerts go to an
    :class:`Inbox`, to ``notifiers`` and, with ``slack_alerts``, to a Slack channel. The
    state is ``store``, or a SQLite file in ``root``; ``env`` adds settings.
    """
    clock = FakeClock()
    async with SimulatedUpstream(clock=clock, token=token) as upstream, FakeSlack() as slack:
        upstream.payload = usage(85)
        write_login(root / "claude", token=token, now=clock.now())
        settings = load_settings(
            {
                "CLAUDE_CONFIG_DIR": str(root / "claude"),
                "USAGE_BOT_STATE": str(root / "usage-bot.sqlite3"),
                "USAGE_BOT_API_BASE_URL": upstream.url,
                "USAGE_BOT_HTTP_PORT": "8080",  # the test's own server below listens on any port
                "SLACK_BOT_TOKEN": SLACK_BOT_TOKEN,
                "SLACK_SIGNING_SECRET": SLACK_SIGNING_SECRET,
                "SLACK_API_BASE_URL": slack.api_url,
                "SLACK_APP_TOKEN": SLACK_APP_TOKEN if socket_mode else "",
                "SLACK_ALERT_CHANNEL": SLACK_CHANNEL if slack_alerts else "",
                **(env or {}),
            },
            dotenv_path=None,
        )
        metrics = Metrics()
        client = UsageClient(
            base_url=settings.upstream.api_base_url,
            user_agent=settings.upstream.user_agent,
            timeout=client_timeout or DEFAULT_TIMEOUT,
            trust_env=False,
        )
        service = UsageService(
            loaders=[
                CredentialLoader(spec, settings.upstream) for spec in settings.upstream.accounts
            ],
            client=client,
            clock=clock,
            min_interval=settings.upstream.min_fetch_interval,
            thresholds=settings.alerts.thresholds,
            observer=metrics,
        )
        store = store or await SQLiteStore.open(settings.state)
        inbox = Inbox()
        courier = Courier(
            queue=store,
            clock=clock,
            owner="fault-matrix",
            notifiers=[inbox, *notifiers, *([slack_channel(settings)] if slack_alerts else [])],
            observer=metrics,
            stop_grace=0.5,
        )
        scheduler = AlertScheduler(
            settings=settings, service=service, store=store, courier=courier, clock=clock
        )
        http = None if socket_mode else HttpServer(host="127.0.0.1", port=0)
        commands = CommandCore(service=service, clock=clock)
        front = SlackFrontEnd(settings.slack, commands=commands, clock=clock, http=http)
        try:
            await front.start()
            if http is not None:
                await http.start()
            else:
                await slack.wait_for_socket()
            yield World(
                root=root,
                clock=clock,
                upstream=upstream,
                slack=slack,
                settings=settings,
                service=service,
                store=store,
                scheduler=scheduler,
                metrics=metrics,
                inbox=inbox,
                front=front,
                events_url=None if http is None else http.url + EVENTS_PATH,
                token=token,
            )
        finally:
            if http is not None:
                await http.stop()
            await front.stop()
            await scheduler.stop()
            await service.aclose()
            await client.aclose()


# -- the rows ------------------------------------------------------------------------------


def fault(**fields: Any) -> Callable[[FakeClock], Fault]:
    return lambda _clock: Fault(**fields)


def retry_at(seconds: float) -> Callable[[FakeClock], Fault]:
    """A 429 whose ``retry-after`` is an HTTP date ``seconds`` from the (fake) now."""

    def make(clock: FakeClock) -> Fault:
        when = email.utils.format_datetime(clock.now() + timedelta(seconds=seconds), usegmt=True)
        return Fault(status=429, body=RATE_LIMIT_ERROR, headers={"retry-after": when})

    return make


@dataclass(frozen=True)
class Row:
    """One row of the matrix.

    ``begin`` and ``end`` start and stop the fault; ``user_sees`` are fragments of what
    ``/claude-usage`` shows under the last known values while it lasts; ``at_once``: the
    "cannot read usage" alert goes out at the first failed poll, not only after 15
    minutes of failing; ``spacing``: the least time between requests while it lasts;
    ``sends``: whether the token still goes upstream while it lasts; ``posted``: a fragment
    of the "cannot read usage" alert, when it is not the last of ``user_sees``.
    """

    id: str
    fault: str
    user_sees: tuple[str, ...]
    alerts: str
    begin: Callable[[World], None]
    end: Callable[[World], None] = World.heal
    at_once: bool = False
    lasting: float = 30 * 60
    spacing: Sequence[float] = ()
    sends: bool = True
    timeout: httpx.Timeout | None = None
    posted: str | None = None


WHEN_IT_LASTS = (
    "none while it is short; one 'cannot read usage' alert once it has lasted 15 min, one "
    "'readable again' when it ends; a threshold crossed meanwhile is posted once after"
)
AT_ONCE = (
    "one 'cannot read usage' alert at once, with the fix; one 'readable again' when fixed; "
    "a threshold crossed meanwhile is posted once after"
)
LOG_IN_AGAIN = "run `claude` on the workstation and log in again"


def _outage(make: Callable[[FakeClock], Fault]) -> Callable[[World], None]:
    return lambda world: world.outage(make)


UPSTREAM_ROWS = [
    Row(
        id="upstream-401",
        fault="usage endpoint answers 401 authentication_error",
        user_sees=("Anthropic rejected the Claude login (revoked or expired)", LOG_IN_AGAIN),
        alerts=AT_ONCE,
        begin=_outage(fault(status=401, body=AUTHENTICATION_ERROR)),
        at_once=True,
    ),
    Row(
        id="upstream-403-scope",
        fault="403 permission_error: the token lacks user:profile",
        # The login came from ~/.claude: the fix is to log in again, not to use that file.
        user_sees=("lacks the user:profile scope", "log in again with `claude` (a full login"),
        alerts=AT_ONCE,
        begin=_outage(fault(status=403, body=SCOPE_ERROR)),
        at_once=True,
    ),
    Row(
        id="upstream-403-challenge",
        fault="403 with a Cloudflare HTML challenge page",
        user_sees=("a web page instead of usage data (HTTP 403", "USAGE_BOT_USER_AGENT"),
        alerts=WHEN_IT_LASTS,
        begin=_outage(fault(status=403, body=CHALLENGE, content_type="text/html")),
    ),
    Row(
        id="upstream-200-challenge",
        fault="200 with a Cloudflare HTML challenge page",
        user_sees=("a web page instead of usage data (HTTP 200",),
        alerts=WHEN_IT_LASTS,
        begin=_outage(fault(status=200, body=CHALLENGE, content_type="text/html")),
    ),
    Row(
        id="upstream-429-seconds",
        fault="429 with retry-after: 600 (seconds)",
        user_sees=("rate-limiting usage requests", "asks again in 10 min"),
        alerts=WHEN_IT_LASTS + "; the upstream is asked again only after 600 s",
        begin=_outage(fault(status=429, body=RATE_LIMIT_ERROR, headers={"retry-after": "600"})),
        spacing=(600, 600, 600),
    ),
    Row(
        id="upstream-429-http-date",
        fault="429 with retry-after as an HTTP date 10 min ahead",
        user_sees=("rate-limiting usage requests", "asks again in 10 min"),
        alerts=WHEN_IT_LASTS + "; the upstream is asked again only after that date",
        begin=_outage(retry_at(600)),
        spacing=(600, 600, 600),
    ),
    Row(
        id="upstream-429-zero",
        fault="429 with retry-after: 0 (as the upstream often answers)",
        user_sees=("rate-limiting usage requests", "asks again in 5 min"),
        alerts=WHEN_IT_LASTS + "; back-off from 5 min, doubling (0 is no guidance)",
        begin=_outage(fault(status=429, body=RATE_LIMIT_ERROR, headers={"retry-after": "0"})),
        spacing=(300, 600),
    ),
    Row(
        id="upstream-429-absent",
        fault="429 without retry-after",
        user_sees=("rate-limiting usage requests", "asks again in 5 min"),
        alerts=WHEN_IT_LASTS + "; back-off from 5 min, doubling, capped at an hour",
        begin=_outage(fault(status=429, body=RATE_LIMIT_ERROR)),
        spacing=(300, 600),
    ),
    Row(
        id="upstream-429-hour",
        fault="429 with retry-after: 3600",
        user_sees=("rate-limiting usage requests", "asks again in 60 min"),
        alerts=WHEN_IT_LASTS + "; the upstream is asked again only after an hour",
        begin=_outage(fault(status=429, body=RATE_LIMIT_ERROR, headers={"retry-after": "3600"})),
        lasting=75 * 60,
        spacing=(3600,),
    ),
    *(
        Row(
            id=f"upstream-{status}",
            fault=f"{status} from the usage endpoint",
            user_sees=(f"usage service failed (HTTP {status}); the bot retries on its own",),
            alerts=WHEN_IT_LASTS + "; back-off doubles from 30 s",
            begin=_outage(fault(status=status)),
            spacing=(30, 60, 120, 240),
        )
        for status in (500, 502, 503)
    ),
    Row(
        id="upstream-timeout",
        fault="no answer within the client's timeout (a real socket, 0.3 s here)",
        user_sees=("did not answer in time; the bot retries on its own",),
        alerts=WHEN_IT_LASTS,
        begin=_outage(fault(status=200, delay=0.8)),
        # Generous against a loaded machine, short enough for six timeouts in a test.
        timeout=httpx.Timeout(0.3, connect=1.0),
    ),
    Row(
        id="upstream-reset-mid-body",
        fault="the connection is cut in the middle of the body",
        user_sees=("The connection to 127.0.0.1 broke off mid-answer",),
        alerts=WHEN_IT_LASTS,
        begin=_outage(fault(cut_mid_body=True)),
    ),
    Row(
        id="upstream-not-json",
        fault="200 with a body that is not JSON",
        user_sees=("a shape the bot does not understand (the answer is not JSON)",),
        alerts=WHEN_IT_LASTS,
        begin=_outage(fault(status=200, body=b"Internal error, retry", content_type="text/plain")),
    ),
    Row(
        id="upstream-wrong-shape",
        fault="200 with JSON of the wrong shape",
        user_sees=("five_hour.utilization is a string, not a number", "update usage-bot"),
        alerts=WHEN_IT_LASTS,
        begin=_outage(fault(status=200, body=b'{"five_hour": {"utilization": "high"}}')),
    ),
    Row(
        id="upstream-huge-body",
        fault="200 with a 2 MB body",
        user_sees=("(the answer is over 1000 kB)",),
        alerts=WHEN_IT_LASTS,
        begin=_outage(fault(status=200, body=b'{"pad": "' + b"x" * 2_000_000 + b'"}')),
    ),
    Row(
        id="upstream-deep-body",
        fault="200 with JSON nested 200 000 levels deep (400 kB)",
        user_sees=("(the answer is nested too deeply)",),
        alerts=WHEN_IT_LASTS,
        begin=_outage(fault(status=200, body=b"[" * 200_000 + b"]" * 200_000)),
    ),
]


def _delete(world: World) -> None:
    world.login.unlink()


def _expire(world: World) -> None:
    world.write_login(expires_at=world.clock.now() - timedelta(minutes=1))


def _not_text(world: World) -> None:
    world.login.write_bytes(b"\xff\xfe" + world.login.read_bytes())


def _half_written(world: World) -> None:
    text = world.login.read_text(encoding="utf-8")
    world.login.write_text(text[: len(text) // 2], encoding="utf-8")


def _unreadable(world: World) -> None:
    world.login.chmod(0)


def _renew(world: World) -> None:
    if world.login.exists():
        world.login.chmod(0o600)
    world.write_login()


def _replace_login(make: Callable[[Path], object]) -> Callable[[World], None]:
    """The credentials file becomes ``make(path)``: a FIFO, a link, a directory, ..."""

    def begin(world: World) -> None:
        world.login.unlink()
        make(world.login)

    return begin


def _pad_past_1_mib(world: World) -> None:
    world.login.write_bytes(b" " * (2 * 1024 * 1024) + world.login.read_bytes())


def _bad_token(inside: str) -> Callable[[World], None]:
    """A login whose token holds ``inside``; the whole token is in it, so a leak shows."""
    return lambda world: write_login(
        world.login.parent, token=world.token + inside + "X", now=world.clock.now()
    )


def _restore(world: World) -> None:
    """Claude Code writes the login again, over whatever took its place."""
    if world.login.is_dir() and not world.login.is_symlink():
        world.login.rmdir()
    elif world.login.is_symlink() or world.login.exists():
        world.login.unlink()
    world.write_login()


LOGIN_ROWS = [
    Row(
        id="login-deleted",
        fault="the credentials file is deleted while the bot runs",
        user_sees=("No Claude login found (looked in: ", "log in with `claude` on this machine"),
        alerts=AT_ONCE,
        begin=_delete,
        end=_renew,
        at_once=True,
        sends=False,
    ),
    Row(
        id="login-not-utf8",
        fault="the credentials file is not UTF-8 text",
        user_sees=("Cannot read the Claude login at ", "(not text)"),
        alerts=AT_ONCE,
        begin=_not_text,
        end=_renew,
        at_once=True,
        sends=False,
    ),
    Row(
        id="login-half-written-lasting",
        fault="the credentials file is left half-written (invalid JSON) for 30 min",
        user_sees=("is not valid JSON (it may be half-written; the bot tries again)",),
        alerts=WHEN_IT_LASTS + " (a half-written file heals by itself: see login-half-written)",
        begin=_half_written,
        end=_renew,
        sends=False,
    ),
]

# Issue 11: a path an attacker or a wrong mount controls is never read blindly.
UNSAFE_LOGIN_ROWS = [
    Row(
        id="login-fifo",
        fault="the credentials file is replaced by a FIFO with no writer",
        user_sees=("is a FIFO (named pipe), not a regular file", "replace it with the file"),
        alerts=AT_ONCE + "; the bot never blocks on it, and recovers once the file is back",
        begin=_replace_login(os.mkfifo),
        end=_restore,
        at_once=True,
        sends=False,
    ),
    Row(
        id="login-dev-zero",
        fault="the credentials file is a link to /dev/zero",
        user_sees=("is a link to /dev/zero, a character device, not a regular file",),
        alerts=AT_ONCE + "; nothing is read from it",
        begin=_replace_login(lambda path: path.symlink_to("/dev/zero")),
        end=_restore,
        at_once=True,
        sends=False,
    ),
    Row(
        id="login-directory",
        fault="the credentials file is a directory (a Docker mount of a missing file)",
        user_sees=("is a directory, not a regular file", "mount ~/.claude itself instead"),
        alerts=AT_ONCE,
        begin=_replace_login(Path.mkdir),
        end=_restore,
        at_once=True,
        sends=False,
    ),
    Row(
        id="login-over-1-mib",
        fault="the credentials file is a valid login padded to over 2 MiB",
        user_sees=("is over 1 MiB, far more than any login holds",),
        alerts=AT_ONCE + "; at most 1 MiB of it is read",
        begin=_pad_past_1_mib,
        end=_restore,
        at_once=True,
        sends=False,
    ),
    Row(
        id="login-token-non-ascii",
        fault="the token in the credentials file holds a non-ASCII character",
        user_sees=("is not a valid token: it holds a non-ASCII character", LOG_IN_AGAIN),
        alerts=AT_ONCE + "; the token is never sent",
        begin=_bad_token("é"),
        end=_restore,
        at_once=True,
        sends=False,
    ),
    Row(
        id="login-token-crlf",
        fault="the token in the credentials file holds CR/LF",
        user_sees=("is not a valid token: it holds a line break", LOG_IN_AGAIN),
        alerts=AT_ONCE + "; the token is never sent",
        begin=_bad_token("\r\nX-Injected: 1\r\n"),
        end=_restore,
        at_once=True,
        sends=False,
    ),
]

ROWS = UPSTREAM_ROWS + LOGIN_ROWS + UNSAFE_LOGIN_ROWS


async def run_row(world: World, row: Row) -> None:
    """The story every row follows; asserts what the user sees and what the channel gets."""
    await world.poll(0)
    for _ in range(2):  # a loaded machine may make the timeout row's first answer late
        if world.inbox.posted:
            break
        await world.poll(60)
    assert world.inbox.summary() == [T80]

    world.clock.advance(60)
    row.begin(world)
    sent_before = len(world.upstream.requests)
    failing_from = len(world.request_times)
    shown = await world.command()
    assert "85%" in shown, shown
    assert "Last known values, from 1 min ago." in shown, shown
    for fragment in row.user_sees:
        assert fragment in shown, f"{fragment!r} not in {shown!r}"
    usage_now = await world.poll(0)
    assert usage_now.error is not None
    assert usage_now.snapshot is not None
    assert world.inbox.summary() == ([T80, STARTED] if row.at_once else [T80])
    if row.at_once:
        assert (row.posted or row.user_sees[-1]) in (world.inbox.posted[-1].advice or "")

    world.upstream.payload = usage(96)  # usage climbs while it cannot be read
    for _ in range(round(row.lasting / POLL)):
        assert (await world.poll()).error is not None
    assert world.inbox.summary() == [T80, STARTED], "one incident alert, once it lasted"
    if not row.sends:
        assert len(world.upstream.requests) == sent_before
    asked = world.request_times[failing_from:]
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(asked)]
    for gap, least in zip(gaps, row.spacing, strict=False):
        assert gap >= least, f"asked again after {gap} s, before {least} s: {gaps}"

    row.end(world)
    for _ in range(30):
        if (await world.poll()).error is None:
            break
    assert world.inbox.summary() == [T80, STARTED, ENDED, T95]
    shown = await world.command()
    assert "96%" in shown
    assert "Last known values" not in shown


@pytest.mark.parametrize("row", ROWS, ids=[row.id for row in ROWS])
async def test_fault(row: Row, tmp_path: Path) -> None:
    async with open_world(tmp_path, client_timeout=row.timeout) as world:
        await run_row(world, row)


# -- rows with a story of their own ----------------------------------------------------------


async def test_login_missing_at_start(tmp_path: Path) -> None:
    """Row login-missing-at-start: no values to show yet, so one sentence with the fix."""
    async with open_world(tmp_path) as world:
        world.login.unlink()
        shown = await world.command()
        assert ":warning: No Claude login found (looked in: " in shown
        assert "log in with `claude` on this machine" in shown
        await world.poll(0)
        assert world.inbox.summary() == [STARTED]
        assert world.upstream.requests == []
        world.write_login()
        await world.poll()
        assert world.inbox.summary() == [STARTED, ENDED, T80]


async def test_login_rewritten_with_a_new_token(tmp_path: Path) -> None:
    """Row login-rotated: Claude Code rewrote the login; the next request uses the new one."""
    async with open_world(tmp_path) as world:
        await world.poll(0)
        rotated = "sk-ant-oat01-rotated-token-CCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCC"
        world.upstream.token = rotated  # the old token is refused from now on
        world.token = rotated
        world.write_login()
        world.upstream.payload = usage(96)
        world.clock.advance(60)
        shown = await world.command()
        assert "96%" in shown
        assert "Last known values" not in shown
        assert world.upstream.requests[-1]["Authorization"] == f"Bearer {rotated}"
        await world.poll()
        assert world.inbox.summary() == [T80, T95]


async def test_login_half_written_heals_at_the_next_poll(tmp_path: Path) -> None:
    """Row login-half-written: caught mid-write by Claude Code; no alert, no incident."""
    async with open_world(tmp_path) as world:
        await world.poll(0)
        world.clock.advance(60)
        _half_written(world)
        shown = await world.command()
        assert "85%" in shown
        assert "Last known values, from 1 min ago." in shown
        assert "is not valid JSON (it may be half-written; the bot tries again)" in shown
        await world.poll(0)
        world.write_login()
        world.upstream.payload = usage(96)
        await world.poll()
        assert world.inbox.summary() == [T80, T95]


RESET: tuple[str, float | None] = ("reset", None)


def _next_window(percent: float) -> dict[str, Any]:
    return {
        "five_hour": {"utilization": percent, "resets_at": (RESETS + FIVE_HOURS).isoformat()},
        "seven_day": {"utilization": 20.0, "resets_at": WEEK_RESETS.isoformat()},
    }


async def test_login_expired_overnight_is_a_state_of_rest(tmp_path: Path) -> None:
    """Row login-expired-overnight: nobody runs Claude Code after 01:00, the login expires;
    the values are shown as of then, the 5-hour window's end is announced at its time
    (the new window not read yet), nothing else is posted, and in the morning it all just
    works again: no "cannot read usage", no "readable again"."""
    async with open_world(tmp_path) as world:
        await world.poll(0)
        assert world.inbox.summary() == [T80]
        world.clock.advance(60)
        _expire(world)
        shown = await world.command()
        assert "85%" in shown
        assert "Last known values, from 1 min ago." in shown
        assert "The login expired then; Claude Code has not run on this machine since." in shown
        sent = len(world.upstream.requests)
        while world.clock.now() < datetime(2026, 7, 19, 9, 0, tzinfo=UTC):
            assert (await world.poll()).error is not None
        assert len(world.upstream.requests) == sent  # the expired token is never sent
        assert world.inbox.summary() == [T80, RESET]
        reset = world.inbox.posted[-1]
        assert "has not been read yet" in reset.text
        world.upstream.payload = _next_window(12)
        world.write_login()
        await world.poll()
        shown = await world.command()
        assert "12%" in shown
        assert "expired" not in shown
        assert world.inbox.summary() == [T80, RESET]


async def test_login_expired_for_a_day_is_an_incident_once(tmp_path: Path) -> None:
    """Row login-expired-a-day: the login stays expired for 24 h (USAGE_BOT_EXPIRED_LOGIN_
    ALERT_AFTER): one "cannot read usage" then, with the fix; one "readable again" when
    someone logs in."""
    async with open_world(tmp_path) as world:
        await world.poll(0)
        world.clock.advance(60)
        _expire(world)
        expired_at = world.clock.now()
        while world.clock.now() < expired_at + timedelta(hours=23, minutes=50):
            await world.poll()
        assert world.inbox.summary() == [T80, RESET]
        for _ in range(10):
            await world.poll()
        assert world.inbox.summary() == [T80, RESET, STARTED]
        assert LOG_IN_AGAIN in (world.inbox.posted[-1].advice or "")
        world.upstream.payload = _next_window(12)
        world.write_login()
        await world.poll()
        assert world.inbox.summary() == [T80, RESET, STARTED, ENDED]


UNREADABLE_ROW = Row(
    id="login-unreadable",
    fault="the credentials file is not readable by the bot's user (mode 000)",
    user_sees=("Cannot read the Claude login at ", "(Permission denied)"),
    alerts=AT_ONCE,
    begin=_unreadable,
    end=_renew,
    at_once=True,
    sends=False,
)

NOBODY = 65534


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file: see the next test")
async def test_login_unreadable(tmp_path: Path) -> None:
    """Row login-unreadable, as any user but root."""
    async with open_world(tmp_path) as world:
        await run_row(world, UNREADABLE_ROW)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to drop to another user")
def test_login_unreadable_as_root() -> None:
    """Row login-unreadable, as root, who reads any file: the loader runs in a child process
    that drops to uid 65534 (after its imports: the venv may live under /root) against a
    root-owned 0600 file. What alerts do then is row login-not-utf8's: the error is the
    same CredentialsUnreadable."""
    # pytest's tmp_path lies under a 0700 directory: make one that uid 65534 may enter.
    folder = Path(tempfile.mkdtemp(prefix="usage-bot-unreadable-"))
    try:
        folder.chmod(0o755)
        write_login(folder, now=datetime.now(UTC))
        (folder / ".credentials.json").chmod(0o600)
        probe = (
            "import json, os, sys\n"
            "from datetime import UTC, datetime\n"
            "from usage_bot._config import load_settings\n"
            "from usage_bot._credentials import CredentialLoader\n"
            "s = load_settings({'CLAUDE_CONFIG_DIR': sys.argv[1]}, dotenv_path=None)\n"
            "os.setgroups([])\n"
            f"os.setgid({NOBODY})\n"
            f"os.setuid({NOBODY})\n"
            "try:\n"
            "    CredentialLoader(s.upstream.accounts[0], s.upstream).load(datetime.now(UTC))\n"
            "except Exception as exc:\n"
            "    print(json.dumps([type(exc).__name__, getattr(exc, 'message', '')]))\n"
        )
        done = subprocess.run(
            [sys.executable, "-c", probe, str(folder)],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
            cwd=folder,
        )
    finally:
        for child in folder.iterdir():
            child.unlink()
        folder.rmdir()
    kind, message = json.loads(done.stdout)
    assert kind == "CredentialsUnreadable"
    for fragment in UNREADABLE_ROW.user_sees:
        assert fragment in message
    assert "make it readable by the user the bot runs as" in message


# The matrix as docs/reliability.md shows it: every row above has a line there.
SPECIAL_ROWS = [
    "login-missing-at-start",
    "login-rotated",
    "login-half-written",
    "login-expired-overnight",
    "login-expired-a-day",
    UNREADABLE_ROW.id,
]


def test_every_row_is_in_the_reliability_doc() -> None:
    doc = (Path(__file__).parent.parent / "docs" / "reliability.md").read_text(encoding="utf-8")
    for row_id in [row.id for row in ROWS] + SPECIAL_ROWS:
        assert f"`{row_id}`" in doc, f"docs/reliability.md has no row {row_id}"
