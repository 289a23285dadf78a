"""``usage-bot run`` as operators meet it: the real :class:`Bot` with the real slack-bolt
against FakeSlack and the simulated upstream, ``/healthz`` and ``/metrics`` over HTTP, the
command as a process stopped by signals, and logs that never show a secret.

Time that matters to the logic (the Slack reconnection grace, the age of the last fetch)
is the injected :class:`FakeClock`; the real waits here are the SDK's own reconnection
(about 10 s) and a process starting, so their deadlines are generous.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import logging
import os
import signal
import socket
import stat
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import TOKEN
from tests.fakes.discord import WEBHOOK_TOKEN, FakeDiscord
from tests.fakes.slack import FakeSlack
from usage_bot._app import Bot
from usage_bot._clock import FakeClock, SystemClock
from usage_bot._config import Settings
from usage_bot._exceptions import ConfigError
from usage_bot._logging import configure_logging
from usage_bot._simulator import SimulatedUpstream
from usage_bot._timing import RECONNECT_GRACE

BOT_TOKEN = "xoxb-1111111111-2222222222-abcdefghijklmnopqrstuvwx"
APP_TOKEN = "xapp-1-A0APP-3333333333-abcdef0123456789abcdef0123456789"
SIGNING_SECRET = "8f2b6e1c9d4a7f3b5e0c2d8a6b4f1e9c"
ALERT_CHANNEL = "C0123456789"
# Not the token the simulated upstream accepts: it answers 401.
REVOKED_TOKEN = "sk-ant-oat01-revoked-token-CCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCC"

Json = dict[str, Any]
MakeSettings = Callable[..., Settings]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


async def eventually(condition: Callable[[], object], *, within: float = 5.0) -> None:
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, "the condition never held"
        await asyncio.sleep(0.02)


@pytest.fixture
def settings_for(
    make_settings: MakeSettings, slack: FakeSlack, upstream: SimulatedUpstream
) -> MakeSettings:
    """The bot in Socket Mode against the fakes, its HTTP server on a free port."""

    def make(**env: str) -> Settings:
        base = {
            "SLACK_BOT_TOKEN": BOT_TOKEN,
            "SLACK_APP_TOKEN": APP_TOKEN,
            "SLACK_API_BASE_URL": slack.api_url,
            "USAGE_BOT_API_BASE_URL": upstream.url,
            "USAGE_BOT_HTTP_PORT": str(free_port()),
        }
        base.update(env)
        return make_settings(**base)

    return make


@contextlib.asynccontextmanager
async def running(
    settings: Settings, clock: FakeClock, out: io.StringIO | None = None
) -> AsyncIterator[tuple[Bot, httpx.AsyncClient]]:
    """The whole bot, started; and an HTTP client for its server."""
    bot = Bot(settings, clock=clock, out=out or io.StringIO(), interactive=False)
    try:
        await bot.start()
        assert bot.http is not None
        async with httpx.AsyncClient(base_url=bot.http.url, trust_env=False) as client:
            yield bot, client
    finally:
        await bot.stop()


def high_usage(clock: FakeClock, percent: float = 85) -> Json:
    """An upstream answer with the 5-hour limit past the first alert threshold."""
    resets_at = (clock.now() + timedelta(hours=2)).isoformat()
    return {"five_hour": {"utilization": percent, "resets_at": resets_at}}


# -- /healthz ----------------------------------------------------------------------------


async def test_healthz_names_every_part_and_the_age_of_the_last_good_fetch(
    settings_for: MakeSettings, clock: FakeClock, slack: FakeSlack
) -> None:
    async with running(settings_for(), clock) as (bot, client):
        await slack.wait_for_socket()
        await eventually(lambda: bot.core.service.peek("default").snapshot is not None)

        first = await client.get("/healthz")
        clock.advance(42)
        later = await client.get("/healthz")

    assert first.status_code == 200
    assert first.headers["content-type"].startswith("application/json")
    assert first.json() == {
        "status": "ok",
        "parts": {"loop": "ok", "scheduler": "ok", "slack": "ok"},
        "last_good_fetch_age_seconds": {"default": 0},
    }
    assert later.json()["last_good_fetch_age_seconds"] == {"default": 42}


async def test_healthz_turns_503_while_slack_is_away_and_200_when_it_is_back(
    settings_for: MakeSettings, clock: FakeClock, slack: FakeSlack
) -> None:
    async with running(settings_for(), clock) as (_, client):
        await slack.wait_for_socket()
        assert (await client.get("/healthz")).status_code == 200

        # Slack refuses the reconnection that follows the drop at once. slack_sdk's
        # monitor tries again on its ping interval (Bolt's default, 10 s), counted from
        # the connection just made: the bot stays away for about 10 s, then is back.
        slack.fail("apps.connections.open", error="invalid_auth")
        await slack.drop_socket()
        await eventually(lambda: any(c.failed for c in slack.calls_to("apps.connections.open")))

        # The grace (RECONNECT_GRACE, on the injected clock) counts from this first look.
        within_grace = await client.get("/healthz")
        clock.advance(RECONNECT_GRACE + 1)
        past_grace = await client.get("/healthz")

        await slack.wait_for_socket(timeout=20)
        back = await client.get("/healthz")

    assert within_grace.status_code == 200, "a short reconnection is not unhealthy"
    assert past_grace.status_code == 503
    assert past_grace.json()["status"] == "unwell"
    assert past_grace.json()["parts"] == {"loop": "ok", "scheduler": "ok", "slack": "disconnected"}
    assert back.status_code == 200
    assert back.json()["parts"]["slack"] == "ok"
    assert slack.socket_connections == 2


async def test_a_front_end_that_cannot_start_is_reported_and_the_rest_runs_on(
    settings_for: MakeSettings,
    clock: FakeClock,
    slack: FakeSlack,
    upstream: SimulatedUpstream,
    caplog: pytest.LogCaptureFixture,
) -> None:
    slack.fail("auth.test", error="invalid_auth")
    upstream.payload = high_usage(clock)
    out = io.StringIO()

    async with running(settings_for(), clock, out) as (bot, client):
        health = await client.get("/healthz")
        await eventually(lambda: "5-hour" in out.getvalue())
        assert bot.scheduler is not None
        assert bot.scheduler.healthy()

    assert health.status_code == 503
    parts = health.json()["parts"]
    assert parts["slack"].startswith("not started: Slack rejected SLACK_BOT_TOKEN (invalid_auth)")
    assert parts["loop"] == parts["scheduler"] == "ok"
    assert "slack did not start: Slack rejected SLACK_BOT_TOKEN" in caplog.text
    assert "!  default: 5-hour limit at 85 %" in out.getvalue()
    assert slack.socket_connections == 0


# -- /metrics ----------------------------------------------------------------------------


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


async def test_metrics_show_fetches_usage_alerts_and_commands(
    settings_for: MakeSettings, clock: FakeClock, slack: FakeSlack, upstream: SimulatedUpstream
) -> None:
    upstream.payload = high_usage(clock, 85.5)
    slack.fail_webhook(status=500, times=100)
    settings = settings_for(SLACK_ALERT_CHANNEL=ALERT_CHANNEL, SLACK_WEBHOOK_URL=slack.webhook_url)

    async with running(settings, clock) as (bot, client):
        await slack.wait_for_socket()
        await eventually(lambda: slack.posts and slack.webhook_calls)
        clock.advance(3)  # less than the 5 s before the webhook's retry
        ack = await slack.send_slash_command()
        # The command is counted once it is answered in full, just after its ack.
        await eventually(lambda: bot.metrics.commands)
        page = await client.get("/metrics")

    assert "5-hour" in json.dumps(ack)
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/plain; version=")
    got = samples(page.text)
    account = ("account", "default")
    assert got[("usage_bot_usage_reads_total", frozenset({account, ("outcome", "ok")}))] == 1
    last_read = got[("usage_bot_last_success_timestamp_seconds", frozenset({account}))]
    assert last_read == clock.now().timestamp() - 3
    assert got[("usage_bot_limit_used_ratio", frozenset({account, ("limit", "five_hour")}))] == (
        0.855
    )
    for destination, posted, failed in (
        ("console", 1, 0),
        (f"slack:{ALERT_CHANNEL}", 1, 0),
        ("slack-webhook", 0, 1),
    ):
        where = frozenset({("destination", destination)})
        assert got[("usage_bot_alerts_posted_total", where)] == posted, destination
        assert got[("usage_bot_alert_post_failures_total", where)] == failed, destination
    on_slack = ("platform", "slack")
    assert got[("usage_bot_commands_total", frozenset({on_slack, ("outcome", "ok")}))] == 1
    duration = "usage_bot_command_duration_seconds"
    assert got[(duration + "_count", frozenset({on_slack}))] == 1
    assert got[(duration + "_bucket", frozenset({on_slack, ("le", "+Inf")}))] == 1
    assert 0 < got[(duration + "_sum", frozenset({on_slack}))] < 3


# -- the process -------------------------------------------------------------------------


def usage_bot_command() -> list[str]:
    script = Path(sys.executable).with_name("usage-bot")
    return [str(script)] if script.exists() else [sys.executable, "-m", "usage_bot"]


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
async def test_usage_bot_run_is_healthy_then_stops_on_a_signal_with_exit_code_0(
    signum: signal.Signals, claude_dir: Path, tmp_path: Path
) -> None:
    port = free_port()
    state = tmp_path / "data" / "usage-bot.sqlite3"
    async with SimulatedUpstream(clock=SystemClock(), token=TOKEN) as upstream:
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(tmp_path),
            "CLAUDE_CONFIG_DIR": str(claude_dir),
            "USAGE_BOT_API_BASE_URL": upstream.url,
            "USAGE_BOT_HTTP_PORT": str(port),
            "USAGE_BOT_STATE": str(state),
            "USAGE_BOT_LOG_FORMAT": "json",
        }
        process = await asyncio.create_subprocess_exec(
            *usage_bot_command(),
            "run",
            env=env,
            cwd=tmp_path,  # no .env there
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            async with httpx.AsyncClient(trust_env=False) as client:

                async def healthy() -> bool:
                    try:
                        answer = await client.get(f"http://127.0.0.1:{port}/healthz")
                    except httpx.TransportError:
                        return False
                    return answer.status_code == 200

                deadline = time.monotonic() + 20
                while not await healthy():
                    assert process.returncode is None, "usage-bot run ended on its own"
                    assert time.monotonic() < deadline, "usage-bot run never became healthy"
                    await asyncio.sleep(0.1)

            check = await asyncio.create_subprocess_exec(
                *usage_bot_command(),
                "health",
                env=env,
                cwd=tmp_path,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
            check_out, _ = await asyncio.wait_for(check.communicate(), timeout=20)
            assert check.returncode == 0
            assert json.loads(check_out)["parts"]["console"] == "ok"

            signalled = time.monotonic()
            process.send_signal(signum)
            stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=10)
            took = time.monotonic() - signalled
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()

    assert process.returncode == 0, stderr.decode()
    assert took < 10
    assert "Claude usage: default" in stdout.decode()
    assert stat.S_IMODE(state.stat().st_mode) == 0o600
    lines = stderr.decode().splitlines()
    assert lines
    for line in lines:
        entry = json.loads(line)  # every line is one JSON object
        assert {"time", "level", "logger", "message"} <= entry.keys()
    assert any(json.loads(line)["message"] == "stopping" for line in lines)


async def test_a_signal_while_starting_stops_it_too(claude_dir: Path, tmp_path: Path) -> None:
    """Slack that never answers auth.test: start-up would wait for it, the signal does not."""
    asked = asyncio.Event()

    async def never_answer(_: web.Request) -> web.Response:
        asked.set()
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", never_answer)
    runner = web.AppRunner(app, shutdown_timeout=0.5)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    slack_port = runner.addresses[0][1]
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp_path),
        "CLAUDE_CONFIG_DIR": str(claude_dir),
        "USAGE_BOT_API_BASE_URL": "http://127.0.0.1:9",  # never reached before the signal
        "USAGE_BOT_HTTP_PORT": "0",
        "USAGE_BOT_STATE": str(tmp_path / "state.sqlite3"),
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_APP_TOKEN": APP_TOKEN,
        "SLACK_API_BASE_URL": f"http://127.0.0.1:{slack_port}/api/",
    }
    try:
        process = await asyncio.create_subprocess_exec(
            *usage_bot_command(),
            "run",
            env=env,
            cwd=tmp_path,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            await asyncio.wait_for(asked.wait(), timeout=20)
            signalled = time.monotonic()
            process.send_signal(signal.SIGTERM)
            _, stderr = await asyncio.wait_for(process.communicate(), timeout=10)
            took = time.monotonic() - signalled
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
    finally:
        await runner.cleanup()

    assert process.returncode == 0, stderr.decode()
    assert took < 10
    assert "stopping before start-up finished" in stderr.decode()


async def test_a_port_in_use_is_a_configuration_error_naming_the_variable(
    make_settings: MakeSettings, clock: FakeClock
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        bot = Bot(make_settings(USAGE_BOT_HTTP_PORT=str(port)), clock=clock, out=io.StringIO())
        try:
            with pytest.raises(ConfigError) as raised:
                await bot.start()
        finally:
            await bot.stop()

    assert raised.value.exit_code == 2
    assert f"USAGE_BOT_HTTP_PORT={port} cannot be listened on" in raised.value.message


# -- logs --------------------------------------------------------------------------------


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """configure_logging changes the root handler and the SDK loggers' levels: undo it."""
    names = ["", "httpx", "httpcore", "slack_bolt", "slack_sdk", "discord", "apscheduler"]
    loggers = [logging.getLogger(name) for name in names]
    levels = [logger.level for logger in loggers]
    handlers = list(logging.getLogger().handlers)
    yield
    for logger, level in zip(loggers, levels, strict=True):
        logger.setLevel(level)
    logging.getLogger().handlers[:] = handlers


@pytest.mark.usefixtures("restore_logging")
@pytest.mark.parametrize("level", ["DEBUG", "INFO"])
@pytest.mark.parametrize("fmt", ["text", "json"])
async def test_no_configured_secret_reaches_the_logs_even_when_things_fail(
    fmt: str,
    level: str,
    make_settings: MakeSettings,
    clock: FakeClock,
    slack: FakeSlack,
    upstream: SimulatedUpstream,
) -> None:
    async with FakeDiscord() as discord:
        # Everything fails: the upstream rejects the token (401), Slack rejects the app
        # token (invalid_auth) and the bot's posts, both webhooks answer 500.
        slack.fail("apps.connections.open", error="invalid_auth")
        slack.fail("chat.postMessage", error="invalid_auth", times=100)
        slack.fail_webhook(status=500, times=100)
        discord.fail("POST /webhooks/{webhook_id}/{webhook_token}", status=500, times=100)
        settings = make_settings(
            CLAUDE_CODE_OAUTH_TOKEN=REVOKED_TOKEN,
            USAGE_BOT_API_BASE_URL=upstream.url,
            USAGE_BOT_HTTP_PORT=str(free_port()),
            USAGE_BOT_LOG_LEVEL=level,
            USAGE_BOT_LOG_FORMAT=fmt,
            SLACK_BOT_TOKEN=BOT_TOKEN,
            SLACK_APP_TOKEN=APP_TOKEN,
            SLACK_SIGNING_SECRET=SIGNING_SECRET,
            SLACK_API_BASE_URL=slack.api_url,
            SLACK_ALERT_CHANNEL=ALERT_CHANNEL,
            SLACK_WEBHOOK_URL=slack.webhook_url,
            DISCORD_WEBHOOK_URL=discord.webhook_url,
            DISCORD_API_BASE_URL=discord.api_url,
        )
        secrets = list(settings.secrets())
        assert len(secrets) == 6
        stream = io.StringIO()
        configure_logging(
            level=settings.log.level,
            fmt=settings.log.format,
            secrets=settings.secrets(),
            stream=stream,
        )

        async with running(settings, clock) as (bot, _):
            webhook_route = "POST /webhooks/{id}/{token}"
            await eventually(
                lambda: (
                    upstream.requests
                    and slack.calls_to("chat.postMessage")
                    and slack.webhook_calls
                    and discord.requests_to(webhook_route)
                )
            )
            await eventually(lambda: bot.metrics.posted["console"] == 1)
            assert bot.not_started["slack"].startswith("Slack rejected SLACK_APP_TOKEN")

    text = stream.getvalue()
    # Every error path was taken, and said so.
    assert "Anthropic rejected the Claude login" in text
    assert "slack did not start: Slack rejected SLACK_APP_TOKEN (invalid_auth)" in text
    assert f"alerts cannot reach slack:{ALERT_CHANNEL}: Slack rejected SLACK_BOT_TOKEN" in text
    assert "could not post incident:default:1:started to slack-webhook" in text
    assert "could not post incident:default:1:started to discord-webhook" in text
    if level == "DEBUG":
        assert "apps.connections.open" in text  # the SDKs' request logs are in
    # Each secret, and the part of each webhook URL that is its secret.
    for secret in [*secrets, urlsplit(slack.webhook_url).path, WEBHOOK_TOKEN]:
        assert secret not in text
    if fmt == "json":
        for line in text.splitlines():
            assert isinstance(json.loads(line), dict)
