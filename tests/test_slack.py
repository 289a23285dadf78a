"""The Slack front end: the real slack-bolt and slack-sdk against FakeSlack, the real usage
service against the simulated upstream, in Socket Mode and through the bot's HTTP server.

What is Slack's alone: the SDK's wiring (ack, respond through ``response_url``, Socket
Mode and its reconnects, HTTP mode), the translation of a slash command into the command
core and back, and the tokens. What the words mean is tested once, for every front end,
in ``test_command.py``."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import re
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlencode

import httpx
import pytest

from tests.fakes.slack import FakeSlack
from usage_bot._clock import FakeClock
from usage_bot._config import Settings
from usage_bot._core import Core, build_core
from usage_bot._events import NO_OBSERVER, CommandAnswered, Observer, Recorder
from usage_bot._exceptions import FrontEndFailed
from usage_bot._http import HttpServer
from usage_bot._service import UsageService
from usage_bot._simulator import SimulatedUpstream
from usage_bot._texts import FAILED, FETCHING, FETCHING_SHARED, refused
from usage_bot._timing import RECONNECT_GRACE
from usage_bot.frontends import CommandCore
from usage_bot.frontends.slack.app import ANSWER_IN_ACK_WITHIN, SlackFrontEnd
from usage_bot.frontends.slack.errors import NEEDED_SCOPES, READ_SCOPES
from usage_bot.frontends.slack.http_mode import EVENTS_PATH

BOT_TOKEN = "xoxb-1111111111-2222222222-abcdefghijklmnopqrstuvwx"
APP_TOKEN = "xapp-1-A0APP-3333333333-abcdef0123456789abcdef0123456789"
SIGNING_SECRET = "8f2b6e1c9d4a7f3b5e0c2d8a6b4f1e9c"
SECRETS = (BOT_TOKEN, APP_TOKEN, SIGNING_SECRET)
RATE_LIMITED = b'{"type":"error","error":{"type":"rate_limit_error","message":"Rate limited"}}'

Json = dict[str, Any]
MakeSettings = Callable[..., Settings]


@pytest.fixture
def settings_for(
    make_settings: MakeSettings, slack: FakeSlack, upstream: SimulatedUpstream
) -> MakeSettings:
    """Settings for Socket Mode against the fakes; keywords add or (with "") remove."""

    def make(**env: str) -> Settings:
        base = {
            "SLACK_BOT_TOKEN": BOT_TOKEN,
            "SLACK_APP_TOKEN": APP_TOKEN,
            "SLACK_API_BASE_URL": slack.api_url,
            "USAGE_BOT_API_BASE_URL": upstream.url,
        }
        base.update(env)
        return make_settings(**base)

    return make


@asynccontextmanager
async def running(
    settings: Settings,
    clock: FakeClock,
    *,
    http: HttpServer | None = None,
    service: UsageService | None = None,
    observer: Observer = NO_OBSERVER,
) -> AsyncIterator[tuple[SlackFrontEnd, Core]]:
    core = build_core(settings, clock=clock)
    commands = CommandCore(service=service or core.service, clock=clock)
    front = SlackFrontEnd(
        settings.slack, commands=commands, clock=clock, http=http, observer=observer
    )
    try:
        await front.start()
        if http is not None:
            await http.start()
        yield front, core
    finally:
        if http is not None:
            await http.stop()
        await front.stop()
        await core.aclose()


@pytest.fixture
async def socket_bot(
    settings_for: MakeSettings, clock: FakeClock, slack: FakeSlack
) -> AsyncIterator[SlackFrontEnd]:
    async with running(settings_for(), clock) as (front, _):
        await slack.wait_for_socket()
        yield front


async def command(
    slack: FakeSlack, text: str = "", *, user_id: str = "U123", channel_id: str = "C123"
) -> tuple[Json, Json]:
    """Type the command: the ack's payload, and the report (from the ack or response_url)."""
    started = time.monotonic()
    ack = await slack.send_slash_command(text=text, user_id=user_id, channel_id=channel_id)
    assert time.monotonic() - started < 3
    payload: Json = ack.get("payload") or {}
    if payload.get("text") not in (FETCHING, FETCHING_SHARED):
        return payload, payload
    envelope_id, response = await slack.wait_for_response()
    assert envelope_id == ack["envelope_id"]
    return payload, response


def text_of(message: Json) -> str:
    """Everything a reader sees in a message: its blocks' texts, or its text."""
    parts = []
    for block in message.get("blocks", []):
        if "text" in block:
            parts.append(block["text"]["text"])
        parts.extend(element["text"] for element in block.get("elements", []))
    return "\n".join(parts) or message.get("text", "")


# -- Socket Mode -------------------------------------------------------------------------


async def test_socket_mode_command_shows_every_limit_with_date_tokens(
    socket_bot: SlackFrontEnd, slack: FakeSlack, upstream: SimulatedUpstream
) -> None:
    _, report = await command(slack)

    shown = text_of(report)
    assert report["response_type"] == "ephemeral"
    assert report["blocks"][0]["text"]["text"] == "Claude usage: default"
    for label in ("5-hour", "Weekly (all models)", "Weekly (Fable)"):
        assert label in shown
    assert "seven_day_fable" not in upstream.simulated_now(), "Fable is only in `limits`"
    assert shown.count("<!date^") >= 3
    assert "{date_short_pretty} {time}|" in shown
    assert re.search(r"Extra usage: \d+\.\d\d USD used of 100\.00 USD", shown)
    assert report["text"].startswith("Claude usage for default: 5-hour")
    assert slack.acks[0].seconds < 3


async def test_fresh_values_answer_in_the_ack_without_asking_upstream(
    socket_bot: SlackFrontEnd, slack: FakeSlack, upstream: SimulatedUpstream
) -> None:
    await command(slack)
    asked = len(upstream.requests)

    ack, report = await command(slack)

    assert ack is report
    assert "Weekly (Fable)" in text_of(report)
    assert len(upstream.requests) == asked == 1


async def test_share_posts_in_the_channel(socket_bot: SlackFrontEnd, slack: FakeSlack) -> None:
    _, report = await command(slack, "share")

    assert report["response_type"] == "in_channel"
    assert "5-hour" in text_of(report)


@pytest.mark.parametrize("text", ["help", "what is this"])
async def test_help_and_anything_unknown_answer_with_the_help(
    socket_bot: SlackFrontEnd, slack: FakeSlack, upstream: SimulatedUpstream, text: str
) -> None:
    ack, _ = await command(slack, text)

    assert ack["response_type"] == "ephemeral"
    assert "/claude-usage share" in text_of(ack)
    if text.lower() != "help":
        assert f"I don't understand `{text}`" in text_of(ack)
    assert upstream.requests == []


ALLOWED = {"SLACK_ALLOWED_USERS": "U0ALLOWED1", "SLACK_ALLOWED_CHANNELS": "C0ALLOWED1"}


@pytest.mark.parametrize(
    ("user", "channel", "reason"),
    [
        ("U0OTHER01", "C0ALLOWED1", "user"),
        ("U0ALLOWED1", "C0OTHER01", "channel"),
        ("U0ALLOWED1", "C0ALLOWED1", None),
    ],
)
async def test_access_lists_refuse_politely(
    settings_for: MakeSettings,
    clock: FakeClock,
    slack: FakeSlack,
    upstream: SimulatedUpstream,
    caplog: pytest.LogCaptureFixture,
    user: str,
    channel: str,
    reason: Literal["user", "channel"] | None,
) -> None:
    """SLACK_ALLOWED_* hold for the Slack user and channel the command came from."""
    caplog.set_level(logging.INFO)
    recorder = Recorder()
    async with running(settings_for(**ALLOWED), clock, observer=recorder):
        await slack.wait_for_socket()
        ack, report = await command(slack, "share", user_id=user, channel_id=channel)

    if reason is not None:
        assert ack == {"text": refused(reason, "slack"), "response_type": "ephemeral"}
        assert f"SLACK_ALLOWED_{reason.upper()}S" in ack["text"]
        assert upstream.requests == []
        assert f"slack: refused /claude-usage to user {user} in channel {channel}" in caplog.text
    else:
        assert report["response_type"] == "in_channel"
    [answered] = recorder.of(CommandAnswered)
    assert (answered.platform, answered.outcome) == ("slack", "ok" if reason is None else "refused")


async def test_slow_upstream_acks_at_once_then_responds(
    socket_bot: SlackFrontEnd, slack: FakeSlack, upstream: SimulatedUpstream
) -> None:
    upstream.latency = ANSWER_IN_ACK_WITHIN + 0.5

    ack, report = await command(slack, "share")

    assert slack.acks[0].seconds < ANSWER_IN_ACK_WITHIN + 0.5
    assert ack == {"text": FETCHING_SHARED, "response_type": "ephemeral"}
    assert report["response_type"] == "in_channel"
    assert "Weekly (Fable)" in text_of(report)


async def test_slow_upstream_shows_last_known_values_first(
    socket_bot: SlackFrontEnd, slack: FakeSlack, upstream: SimulatedUpstream, clock: FakeClock
) -> None:
    await command(slack)
    clock.advance(5 * 60)
    upstream.latency = ANSWER_IN_ACK_WITHIN + 0.5

    ack = (await slack.send_slash_command())["payload"]
    _, response = await slack.wait_for_response()

    assert slack.acks[-1].seconds < ANSWER_IN_ACK_WITHIN + 0.5
    assert "Weekly (Fable)" in text_of(ack)
    assert "Values from 5 min ago; newer values follow" in text_of(ack)
    assert "newer values follow" not in text_of(response)
    assert "Weekly (Fable)" in text_of(response)


async def test_an_unexpected_failure_still_answers(
    settings_for: MakeSettings, clock: FakeClock, slack: FakeSlack, caplog: pytest.LogCaptureFixture
) -> None:
    class BrokenService(UsageService):
        def would_fetch(self, account: str) -> bool:
            raise RuntimeError("boom")

    settings = settings_for()
    core = build_core(settings, clock=clock)
    broken = BrokenService(loaders=core.loaders, client=core.client, clock=clock)
    recorder = Recorder()
    async with running(settings, clock, service=broken, observer=recorder):
        await slack.wait_for_socket()
        ack = await slack.send_slash_command()
    await core.aclose()

    assert ack["payload"] == {"text": FAILED, "response_type": "ephemeral"}
    assert "slack: answering /claude-usage failed" in caplog.text
    assert [event.outcome for event in recorder.of(CommandAnswered)] == ["error"]


async def test_reconnects_after_the_socket_drops(
    socket_bot: SlackFrontEnd, slack: FakeSlack
) -> None:
    await slack.drop_socket()
    await slack.wait_for_socket()

    _, report = await command(slack)

    assert "5-hour" in text_of(report)
    assert slack.socket_connections == 2
    assert socket_bot.healthy()


async def test_health_follows_the_socket(
    settings_for: MakeSettings, clock: FakeClock, slack: FakeSlack
) -> None:
    core = build_core(settings_for(), clock=clock)
    commands = CommandCore(service=core.service, clock=clock)
    front = SlackFrontEnd(core.settings.slack, commands=commands, clock=clock, http=None)
    assert not front.healthy()
    await front.start()
    await slack.wait_for_socket()
    assert front.healthy()

    slack.fail("apps.connections.open", error="invalid_auth", times=100)
    await slack.drop_socket()
    for _ in range(200):
        if slack.calls_to("apps.connections.open")[-1].failed:
            break
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.05)
    assert front.healthy(), "a short reconnection is not unhealthy"
    clock.advance(RECONNECT_GRACE + 1)
    assert not front.healthy()

    await front.stop()
    await core.aclose()
    assert not front.healthy()


async def test_invalid_bot_token_is_a_clear_error(
    settings_for: MakeSettings, clock: FakeClock, slack: FakeSlack
) -> None:
    slack.fail("auth.test", error="invalid_auth")

    with pytest.raises(FrontEndFailed, match="Slack rejected SLACK_BOT_TOKEN") as raised:
        async with running(settings_for(), clock):
            pass

    assert BOT_TOKEN not in raised.value.message
    assert slack.socket_connections == 0


async def test_invalid_app_token_is_a_clear_error(
    settings_for: MakeSettings, clock: FakeClock, slack: FakeSlack
) -> None:
    slack.fail("apps.connections.open", error="invalid_auth")

    with pytest.raises(FrontEndFailed, match="Slack rejected SLACK_APP_TOKEN") as raised:
        async with running(settings_for(), clock):
            pass

    assert APP_TOKEN not in raised.value.message
    assert len(slack.calls_to("apps.connections.open")) == 1


async def test_a_start_with_the_token_in_the_environment_logs_no_bolt_warning(
    settings_for: MakeSettings,
    clock: FakeClock,
    slack: FakeSlack,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # As in a container or a service: the token is in the environment, where Bolt looks
    # for it itself and said at every start that it would not use it.
    monkeypatch.setenv("SLACK_BOT_TOKEN", BOT_TOKEN)
    caplog.set_level(logging.DEBUG)

    async with running(settings_for(), clock):
        await slack.wait_for_socket()
        logging.getLogger("slack_bolt.AsyncApp").warning("any other warning of Bolt's")

    bolt_warnings = [
        record.getMessage()
        for record in caplog.records
        if record.name.startswith("slack_bolt") and record.levelno >= logging.WARNING
    ]
    assert bolt_warnings == ["any other warning of Bolt's"]
    assert "will be unused" not in caplog.text


async def test_stop_lets_answers_in_flight_finish(
    settings_for: MakeSettings, clock: FakeClock, slack: FakeSlack, upstream: SimulatedUpstream
) -> None:
    upstream.latency = ANSWER_IN_ACK_WITHIN + 0.3
    async with running(settings_for(), clock) as (front, _):
        await slack.wait_for_socket()
        await slack.send_slash_command()
        await front.stop()

    assert "5-hour" in text_of(slack.responses[0][1])


# -- HTTP mode ---------------------------------------------------------------------------


def signed(body: str, *, secret: str = SIGNING_SECRET, at: float | None = None) -> dict[str, str]:
    timestamp = str(int(time.time() if at is None else at))
    base = f"v0:{timestamp}:{body}".encode()
    signature = "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()
    return {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Slack-Request-Timestamp": timestamp,
        "X-Slack-Signature": signature,
    }


def command_body(slack: FakeSlack, text: str = "", tag: str = "http-1") -> str:
    return urlencode(
        {
            "token": "fake-verification-token",
            "team_id": "T123",
            "team_domain": "fake-team",
            "channel_id": "C123",
            "channel_name": "general",
            "user_id": "U123",
            "user_name": "alice",
            "command": "/claude-usage",
            "text": text,
            "api_app_id": slack.app_id,
            "is_enterprise_install": "false",
            "response_url": slack.response_url(tag),
            "trigger_id": "1.T123.fake",
        }
    )


@pytest.fixture
async def http_bot(
    settings_for: MakeSettings, clock: FakeClock
) -> AsyncIterator[tuple[SlackFrontEnd, str]]:
    settings = settings_for(
        SLACK_APP_TOKEN="", SLACK_SIGNING_SECRET=SIGNING_SECRET, USAGE_BOT_HTTP_PORT="8080"
    )
    http = HttpServer(host="127.0.0.1", port=0)
    async with running(settings, clock, http=http) as (front, _):
        yield front, http.url + EVENTS_PATH


async def test_http_mode_signed_command_gets_the_report(
    http_bot: tuple[SlackFrontEnd, str], slack: FakeSlack
) -> None:
    front, url = http_bot
    body = command_body(slack, "share")

    async with httpx.AsyncClient() as client:
        started = time.monotonic()
        response = await client.post(url, content=body, headers=signed(body))
        elapsed = time.monotonic() - started

    assert front.mode == "http"
    assert front.healthy()
    assert response.status_code == 200
    assert elapsed < 3
    report = response.json()
    assert report["response_type"] == "in_channel"
    shown = text_of(report)
    for label in ("5-hour", "Weekly (all models)", "Weekly (Fable)"):
        assert label in shown
    assert "<!date^" in shown
    assert slack.socket_connections == 0


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param(lambda body: signed(body, secret="not-the-signing-secret"), id="wrong"),
        pytest.param(lambda body: {"X-Slack-Request-Timestamp": str(int(time.time()))}, id="none"),
        pytest.param(lambda body: signed(body, at=time.time() - 301), id="stale"),
    ],
)
async def test_http_mode_refuses_unsigned_or_replayed_requests(
    http_bot: tuple[SlackFrontEnd, str],
    slack: FakeSlack,
    upstream: SimulatedUpstream,
    headers: Callable[[str], dict[str, str]],
) -> None:
    _, url = http_bot
    body = command_body(slack)

    async with httpx.AsyncClient() as client:
        response = await client.post(url, content=body, headers=headers(body))

    assert response.status_code == 401
    assert upstream.requests == []
    assert slack.responses == []


async def test_http_mode_slow_upstream_answers_through_response_url(
    http_bot: tuple[SlackFrontEnd, str], slack: FakeSlack, upstream: SimulatedUpstream
) -> None:
    _, url = http_bot
    upstream.latency = ANSWER_IN_ACK_WITHIN + 0.3
    body = command_body(slack, tag="slow")

    async with httpx.AsyncClient() as client:
        started = time.monotonic()
        response = await client.post(url, content=body, headers=signed(body))
        elapsed = time.monotonic() - started
    tag, report = await slack.wait_for_response()

    assert (response.status_code, response.json()["text"]) == (200, FETCHING)
    assert elapsed < ANSWER_IN_ACK_WITHIN + 0.5
    assert tag == "slow"
    assert "Weekly (Fable)" in text_of(report)


# -- secrets -----------------------------------------------------------------------------


async def test_no_secret_in_any_log_line_or_message(
    settings_for: MakeSettings,
    clock: FakeClock,
    slack: FakeSlack,
    upstream: SimulatedUpstream,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    async with running(settings_for(), clock):
        await slack.wait_for_socket()
        await command(slack)
        await command(slack, "share")
        await command(slack, "nonsense")
        await slack.drop_socket(reason="refresh_requested")
        await slack.wait_for_socket()
        clock.advance(60)
        upstream.fail(status=429, body=RATE_LIMITED, headers={"retry-after": "60"})
        await command(slack)
    http_settings = settings_for(
        SLACK_APP_TOKEN="", SLACK_SIGNING_SECRET=SIGNING_SECRET, USAGE_BOT_HTTP_PORT="8080"
    )
    http = HttpServer(host="127.0.0.1", port=0)
    async with running(http_settings, clock, http=http), httpx.AsyncClient() as client:
        body = command_body(slack)
        await client.post(http.url + EVENTS_PATH, content=body, headers=signed(body))
        await client.post(http.url + EVENTS_PATH, content=body, headers=signed(body, at=1))

    logged = "\n".join(
        [record.getMessage() for record in caplog.records]
        + [record.exc_text or "" for record in caplog.records]
    )
    sent = json.dumps([slack.acks[i].body for i in range(len(slack.acks))] + slack.responses)
    assert len(caplog.records) > 20
    for secret in SECRETS:
        assert secret not in logged
        assert secret not in caplog.text
        assert secret not in sent


# -- the app manifests -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("manifest", "socket_mode"),
    [("slack-app-manifest.yml", True), ("slack-app-manifest-http.yml", False)],
)
def test_app_manifests_ask_for_the_command_and_only_the_scopes_used(
    manifest: str, socket_mode: bool
) -> None:
    text = (Path(__file__).parent.parent / "deploy" / manifest).read_text(encoding="utf-8")
    bot_scopes = re.search(r"\n    bot:\n((?:      .*\n)+)", text)

    assert bot_scopes is not None
    scopes = re.findall(r"^      - (\S+)$", bot_scopes.group(1), flags=re.MULTILINE)
    assert scopes == ["commands", "chat:write", "channels:read", "groups:read"]
    # What doctor tells a user to add (a wheel or an image has no manifest to point to).
    assert scopes == [*NEEDED_SCOPES, *READ_SCOPES]
    assert "    - command: /claude-usage\n" in text
    assert f"  socket_mode_enabled: {str(socket_mode).lower()}\n" in text
    assert ("/slack/events\n" in text) is not socket_mode
