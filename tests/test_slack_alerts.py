"""Slack alert destinations (``chat.postMessage`` and the incoming webhook), Slack's errors
as ours, and the Slack checks of ``usage-bot doctor``, against FakeSlack."""

from __future__ import annotations

import json
import logging
import re
import socket
import subprocess
import sys
import textwrap
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.fakes.slack import FakeSlack
from usage_bot._app import DESTINATIONS
from usage_bot._checks import CheckResult
from usage_bot._config import Secret, Settings
from usage_bot._exceptions import DeliveryError
from usage_bot._notify import AlertMessage
from usage_bot._texts import DISCORD_DOCS_URL, SLACK_DOCS_URL
from usage_bot.frontends.slack.doctor import doctor_checks
from usage_bot.frontends.slack.errors import SCOPES_FIX
from usage_bot.frontends.slack.notify import SlackChannelNotifier
from usage_bot.frontends.slack.webhook import SlackWebhookNotifier

BOT_TOKEN = "xoxb-1111111111-2222222222-abcdefghijklmnopqrstuvwx"
APP_TOKEN = "xapp-1-A0APP-3333333333-abcdef0123456789abcdef0123456789"
SIGNING_SECRET = "8f2b6e1c9d4a7f3b5e0c2d8a6b4f1e9c"
CHANNEL = "C0ALERTS1"
WEBHOOK_SECRET_PART = "T000/B000/XXXX"

ALERT = AlertMessage(
    kind="threshold",
    key="default:seven_day_fable:2026-07-22T00:00:95",
    account="default",
    title="Weekly (Fable) at 95%",
    text="The default account has used 95% of its weekly Fable quota.",
    severity="critical",
    limit_id="seven_day_fable",
    limit_label="Weekly (Fable)",
    percent=95.0,
    threshold=95.0,
    resets_at=datetime(2026, 7, 22, tzinfo=UTC),
    advice="Switch to another model until it resets.",
)

MakeSettings = Callable[..., Settings]


@pytest.fixture
def settings_for(make_settings: MakeSettings, slack: FakeSlack) -> MakeSettings:
    def make(**env: str) -> Settings:
        base = {
            "SLACK_BOT_TOKEN": BOT_TOKEN,
            "SLACK_APP_TOKEN": APP_TOKEN,
            "SLACK_ALERT_CHANNEL": CHANNEL,
            "SLACK_API_BASE_URL": slack.api_url,
        }
        base.update(env)
        return make_settings(**base)

    return make


@pytest.fixture
def notifier(slack: FakeSlack) -> SlackChannelNotifier:
    return SlackChannelNotifier(
        token=Secret(BOT_TOKEN), channel=CHANNEL, api_base_url=slack.api_url
    )


@pytest.fixture
def webhook(slack: FakeSlack) -> SlackWebhookNotifier:
    return SlackWebhookNotifier(url=Secret(slack.webhook_url))


def closed_port_url(path: str = "/") -> str:
    """A loopback URL where nothing listens: connections are refused."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}{path}"


# -- chat.postMessage --------------------------------------------------------------------


async def test_alert_is_posted_with_blocks(
    notifier: SlackChannelNotifier, slack: FakeSlack
) -> None:
    await notifier.post(ALERT)

    [post] = slack.posts
    assert notifier.name == f"slack:{CHANNEL}"
    assert post["channel"] == CHANNEL
    assert post["text"].startswith("Weekly (Fable) at 95%: The default account has used 95%")
    assert post["blocks"][0]["text"]["text"] == "Weekly (Fable) at 95%"
    assert "<!date^1784678400^" in post["blocks"][1]["text"]["text"]
    assert slack.calls[0].authorization == f"Bearer {BOT_TOKEN}"


async def test_rate_limit_is_retryable_after_retry_after(
    notifier: SlackChannelNotifier, slack: FakeSlack
) -> None:
    slack.fail("chat.postMessage", status=429, retry_after=7)

    with pytest.raises(DeliveryError) as raised:
        await notifier.post(ALERT)

    assert (raised.value.retryable, raised.value.retry_after) == (True, 7.0)
    assert len(slack.calls) == 1, "retrying is the scheduler's job"


async def test_server_error_is_retryable(notifier: SlackChannelNotifier, slack: FakeSlack) -> None:
    slack.fail("chat.postMessage", status=503)

    with pytest.raises(DeliveryError) as raised:
        await notifier.post(ALERT)

    assert raised.value.retryable
    assert raised.value.retry_after is None
    assert len(slack.calls) == 1


async def test_unreachable_slack_is_retryable() -> None:
    notifier = SlackChannelNotifier(
        token=Secret(BOT_TOKEN), channel=CHANNEL, api_base_url=closed_port_url("/api/")
    )

    with pytest.raises(DeliveryError, match="Cannot reach Slack") as raised:
        await notifier.post(ALERT)

    assert raised.value.retryable


@pytest.mark.parametrize(
    ("error", "fix"),
    [
        ("channel_not_found", "set SLACK_ALERT_CHANNEL to the channel's ID"),
        ("not_in_channel", "invite it with /invite @usage-bot"),
        ("invalid_auth", "copy the Bot User OAuth Token"),
        ("account_inactive", "reinstall the app"),
        ("is_archived", "unarchive it"),
        ("missing_scope", "give it the bot scope chat:write"),
        ("invalid_blocks", "usage-bot bug"),
    ],
)
async def test_errors_retrying_cannot_fix_say_the_fix(
    notifier: SlackChannelNotifier, slack: FakeSlack, error: str, fix: str
) -> None:
    slack.fail("chat.postMessage", error=error)

    with pytest.raises(DeliveryError) as raised:
        await notifier.post(ALERT)

    assert not raised.value.retryable
    assert f"({error})" in raised.value.message
    assert fix in raised.value.message
    assert BOT_TOKEN not in raised.value.message


@pytest.mark.parametrize(
    ("status", "error", "says"),
    [
        (200, "some_new_error", "Slack refused the alert (some_new_error); it is retried later"),
        (503, "channel_not_found", "Slack failed to take the alert (HTTP 503, channel_not_found)"),
        (200, "<b>not a code</b>", "Slack refused the alert (unknown_error)"),
    ],
)
async def test_an_unknown_error_or_slacks_own_trouble_is_retried(
    notifier: SlackChannelNotifier, slack: FakeSlack, status: int, error: str, says: str
) -> None:
    """The status comes first: a 5xx is Slack's trouble, whatever its body says; a code
    the bot does not know is retried and named, unless it does not look like a code."""
    slack.fail("chat.postMessage", status=status, error=error)

    with pytest.raises(DeliveryError) as raised:
        await notifier.post(ALERT)

    assert raised.value.retryable
    assert says in raised.value.message
    assert "<b>" not in raised.value.message


async def test_bot_removed_from_the_channel(
    notifier: SlackChannelNotifier, slack: FakeSlack
) -> None:
    slack.remove_bot_from(CHANNEL)

    with pytest.raises(DeliveryError, match="/invite @usage-bot") as raised:
        await notifier.post(ALERT)

    assert not raised.value.retryable


# -- incoming webhook --------------------------------------------------------------------


async def test_webhook_posts_the_alert(webhook: SlackWebhookNotifier, slack: FakeSlack) -> None:
    await webhook.post(ALERT)

    [post] = slack.webhook_posts
    assert webhook.name == "slack-webhook"
    assert post["blocks"][0]["text"]["text"] == "Weekly (Fable) at 95%"
    assert post["text"].startswith("Weekly (Fable) at 95%")


@pytest.mark.parametrize(
    ("status", "error", "retryable", "retry_after", "says"),
    [
        (429, None, True, 2.0, "rate-limiting"),
        (500, None, True, None, "fatal_error"),
        (404, None, False, None, "no_service"),
        (403, "action_prohibited", False, None, "put its URL in SLACK_WEBHOOK_URL"),
        (410, "channel_is_archived", False, None, "unarchive it"),
        (400, None, False, None, "usage-bot bug"),
    ],
)
async def test_webhook_failures(
    webhook: SlackWebhookNotifier,
    slack: FakeSlack,
    status: int,
    error: str | None,
    retryable: bool,
    retry_after: float | None,
    says: str,
) -> None:
    slack.fail_webhook(status=status, retry_after=2 if status == 429 else None, error=error)

    with pytest.raises(DeliveryError) as raised:
        await webhook.post(ALERT)

    assert (raised.value.retryable, raised.value.retry_after) == (retryable, retry_after)
    assert says in raised.value.message
    assert WEBHOOK_SECRET_PART not in raised.value.message
    assert len(slack.webhook_calls) == 1


async def test_unreachable_webhook_is_retryable_and_not_named() -> None:
    url = closed_port_url("/services/T000/B000/XXXX")
    webhook = SlackWebhookNotifier(url=Secret(url))

    with pytest.raises(DeliveryError) as raised:
        await webhook.post(ALERT)

    assert raised.value.retryable
    assert WEBHOOK_SECRET_PART not in raised.value.message
    assert raised.value.__cause__ is None
    assert raised.value.__suppress_context__


# -- a webhook alone loads no Slack SDK ---------------------------------------------------

SDKS = ("slack_bolt", "slack_sdk")


def loaded_by(code: str) -> list[str]:
    """The Slack SDKs a fresh interpreter has imported after running ``code``."""
    loaded = f"import json, sys; print(json.dumps([m for m in {SDKS!r} if m in sys.modules]))"
    done = subprocess.run(
        [sys.executable, "-c", code + "\n" + loaded],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    sdks: list[str] = json.loads(done.stdout.strip().splitlines()[-1])
    return sdks


def test_importing_the_webhook_loads_no_slack_sdk() -> None:
    assert loaded_by("import usage_bot.frontends.slack.webhook") == []
    assert loaded_by("import usage_bot.frontends.slack.notify") == ["slack_sdk"], "the control"


def test_a_webhook_only_run_loads_no_slack_sdk(tmp_path: Path) -> None:
    """``usage-bot run``'s composition root with SLACK_WEBHOOK_URL alone: started (the
    webhook among its destinations) and stopped, nothing of slack-sdk or slack-bolt."""
    run = textwrap.dedent(
        f"""
        import asyncio, io, sys
        from usage_bot._app import Bot
        from usage_bot._config import load_settings

        settings = load_settings(
            {{
                "CLAUDE_CONFIG_DIR": {str(tmp_path)!r},
                "USAGE_BOT_STATE": {str(tmp_path / "state.sqlite3")!r},
                "USAGE_BOT_HTTP_PORT": "0",
                "USAGE_BOT_API_BASE_URL": {closed_port_url()!r},
                "SLACK_WEBHOOK_URL": {closed_port_url("/services/T000/B000/XXXX")!r},
            }},
            dotenv_path=None,
        )

        async def run() -> None:
            bot = Bot(settings, out=io.StringIO(), interactive=False)
            await bot.start()
            await bot.stop()

        asyncio.run(run())
        assert "usage_bot.frontends.slack.webhook" in sys.modules, "the webhook was built"
        """
    )

    assert loaded_by(run) == []


# -- which destinations ------------------------------------------------------------------


def destinations(settings: Settings) -> list[str]:
    """The names of the destinations the composition root builds from ``settings``."""
    return [entry.build(settings).name for entry in DESTINATIONS if entry.wanted(settings)]


def test_destinations_from_settings(settings_for: MakeSettings, slack: FakeSlack) -> None:
    both = settings_for(SLACK_WEBHOOK_URL=slack.webhook_url)
    webhook_only = settings_for(
        SLACK_BOT_TOKEN="",
        SLACK_APP_TOKEN="",
        SLACK_ALERT_CHANNEL="",
        SLACK_WEBHOOK_URL=slack.webhook_url,
    )

    assert destinations(both) == [f"slack:{CHANNEL}", "slack-webhook"]
    assert destinations(webhook_only) == ["slack-webhook"]
    assert destinations(settings_for(SLACK_ALERT_CHANNEL="")) == []


# -- doctor ------------------------------------------------------------------------------


async def checks(settings: Settings) -> list[CheckResult]:
    return await doctor_checks(settings.slack, settings.http)


def verdicts(results: list[CheckResult]) -> dict[str, str]:
    return {r.name: r.verdict for r in results}


def by_name(results: list[CheckResult], name: str) -> CheckResult:
    return next(r for r in results if r.name == name)


async def test_doctor_all_good(settings_for: MakeSettings, slack: FakeSlack) -> None:
    results = await checks(settings_for(SLACK_WEBHOOK_URL=slack.webhook_url))

    assert verdicts(results) == {
        "slack: bot token": "ok",
        "slack: Socket Mode": "ok",
        "slack: alert channel": "ok",
        "slack: webhook": "skip",
    }
    token = by_name(results, "slack: bot token")
    assert token.detail == "xoxb-… is @usage-bot in Fake Team (https://fake-team.slack.com/)"
    assert "c0alerts1" in by_name(results, "slack: alert channel").detail
    assert "not test-posted" in by_name(results, "slack: webhook").detail
    assert slack.posts == []
    assert slack.webhook_posts == []


@pytest.mark.parametrize(
    ("scopes", "verdict"),
    [
        (["commands", "chat:write", "channels:read", "groups:read"], "ok"),
        (["commands", "channels:read"], "fail"),
    ],
)
async def test_doctor_checks_the_scopes_slack_reports(
    settings_for: MakeSettings, slack: FakeSlack, scopes: list[str], verdict: str
) -> None:
    slack.scopes = scopes

    check = by_name(await checks(settings_for()), "slack: scopes")

    assert check.verdict == verdict
    if verdict == "fail":
        assert check.detail == "missing chat:write"


async def test_doctor_rejected_token(settings_for: MakeSettings, slack: FakeSlack) -> None:
    slack.fail("auth.test", error="invalid_auth")

    results = await checks(settings_for())

    assert verdicts(results) == {"slack: bot token": "fail", "slack: connection": "skip"}
    assert "Slack rejected SLACK_BOT_TOKEN (invalid_auth)" in results[0].detail


async def test_doctor_bot_not_in_channel(settings_for: MakeSettings, slack: FakeSlack) -> None:
    slack.remove_bot_from(CHANNEL)

    results = await checks(settings_for())

    channel = by_name(results, "slack: alert channel")
    assert channel.verdict == "fail"
    assert channel.detail == f"the bot is not a member of #c0alerts1 ({CHANNEL})"
    assert channel.fix == "in that channel, type /invite @usage-bot."


async def test_doctor_unknown_channel(settings_for: MakeSettings, slack: FakeSlack) -> None:
    slack.fail("conversations.info", error="channel_not_found")

    channel = by_name(await checks(settings_for()), "slack: alert channel")

    assert channel.verdict == "fail"
    assert channel.fix is not None
    assert "channel's ID" in channel.fix


async def test_doctor_rejected_app_token(settings_for: MakeSettings, slack: FakeSlack) -> None:
    slack.fail("apps.connections.open", error="invalid_auth")

    mode = by_name(await checks(settings_for()), "slack: Socket Mode")

    assert mode.verdict == "fail"
    assert mode.fix is not None
    assert "connections:write" in mode.fix


async def test_doctor_http_mode_names_the_request_url(settings_for: MakeSettings) -> None:
    settings = settings_for(
        SLACK_APP_TOKEN="", SLACK_SIGNING_SECRET=SIGNING_SECRET, USAGE_BOT_HTTP_PORT="8080"
    )

    mode = by_name(await checks(settings), "slack: HTTP mode")

    assert mode.verdict == "ok"
    assert "POST /slack/events on this bot's HTTP server (127.0.0.1:8080)" in mode.detail
    assert "https://<your public host>/slack/events" in mode.detail


async def test_doctor_without_alert_channel_warns(settings_for: MakeSettings) -> None:
    channel = by_name(await checks(settings_for(SLACK_ALERT_CHANNEL="")), "slack: alert channel")

    assert channel.verdict == "warn"


async def test_doctor_unreachable_slack(settings_for: MakeSettings) -> None:
    results = await checks(settings_for(SLACK_API_BASE_URL=closed_port_url("/api/")))

    assert results[0].verdict == "fail"
    assert results[0].detail.startswith("Cannot reach Slack at 127.0.0.1")


async def test_doctor_asks_each_method_once_with_the_token_in_the_header(
    settings_for: MakeSettings, slack: FakeSlack
) -> None:
    # Without the trailing slash, as slack-sdk takes it too.
    await checks(settings_for(SLACK_API_BASE_URL=slack.api_url.rstrip("/")))

    assert [(call.method, call.authorization) for call in slack.calls] == [
        ("auth.test", f"Bearer {BOT_TOKEN}"),
        ("apps.connections.open", f"Bearer {APP_TOKEN}"),
        ("conversations.info", f"Bearer {BOT_TOKEN}"),
    ]
    assert slack.calls[-1].args == {"channel": CHANNEL}


async def test_doctor_without_the_read_scopes_says_which_to_add(
    settings_for: MakeSettings, slack: FakeSlack
) -> None:
    slack.fail("conversations.info", error="missing_scope")

    channel = by_name(await checks(settings_for()), "slack: alert channel")

    assert channel.verdict == "warn"
    assert channel.fix == (
        "give the app the bot scopes commands, chat:write, channels:read, groups:read (its "
        "OAuth & Permissions page, Bot Token Scopes), then reinstall it (Install App); why "
        "each: https://github.com/usage-bot/usage-bot/blob/main/docs/slack.md"
        "#the-scopes-and-why"
    )


async def test_doctor_when_slack_fails(settings_for: MakeSettings, slack: FakeSlack) -> None:
    slack.fail("auth.test", status=503)

    [token, connection] = await checks(settings_for())

    assert (token.verdict, token.detail) == (
        "fail",
        "Slack's auth.test failed (fatal_error, HTTP 503); try again later, and check "
        "SLACK_API_BASE_URL.",
    )
    assert connection.verdict == "skip"


def test_the_links_in_the_sentences_lead_to_the_docs_and_the_heading() -> None:
    """Wheel and image users are sent online: to files and a heading that exist."""
    root = Path(__file__).parent.parent
    for url in (SLACK_DOCS_URL, DISCORD_DOCS_URL):
        assert (root / url.partition("/blob/main/")[2]).is_file(), url
    link = SCOPES_FIX.rsplit(" ", 1)[-1]
    page, _, anchor = link.partition("#")
    text = (root / "docs" / "slack.md").read_text(encoding="utf-8")
    # GitHub's anchor of a heading: lower case, punctuation dropped, spaces as hyphens.
    anchors = {
        re.sub(r"[^\w\- ]", "", line.lstrip("#").strip().lower()).replace(" ", "-")
        for line in text.splitlines()
        if line.startswith("#")
    }
    assert page == SLACK_DOCS_URL
    assert anchor in anchors, anchors


async def test_doctor_without_slack_says_nothing(make_settings: MakeSettings) -> None:
    assert await checks(make_settings()) == []


# -- secrets -----------------------------------------------------------------------------


async def test_no_secret_in_logs_errors_or_checks(
    settings_for: MakeSettings,
    slack: FakeSlack,
    notifier: SlackChannelNotifier,
    webhook: SlackWebhookNotifier,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    errors = []
    await notifier.post(ALERT)
    await webhook.post(ALERT)
    for status in (429, 404, 500):
        slack.fail(
            "chat.postMessage", status=status, error="fatal_error" if status != 429 else None
        )
        slack.fail_webhook(status=status)
        for destination in (notifier, webhook):
            with pytest.raises(DeliveryError) as raised:
                await destination.post(ALERT)
            errors.append(raised.value.message)
    slack.fail("auth.test", error="invalid_auth")
    results = await checks(settings_for(SLACK_WEBHOOK_URL=slack.webhook_url))
    results += await checks(settings_for(SLACK_WEBHOOK_URL=slack.webhook_url))

    said = "\n".join(
        errors
        + [f"{r.detail} {r.fix}" for r in results]
        + [record.getMessage() for record in caplog.records]
        + [caplog.text]
    )
    for secret in (BOT_TOKEN, APP_TOKEN, WEBHOOK_SECRET_PART):
        assert secret not in said
    assert len(caplog.records) > 5
