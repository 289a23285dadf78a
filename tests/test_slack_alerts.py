"""Slack alert destinations and the Slack checks of ``usage-bot doctor``, against FakeSlack."""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from tests.fakes.slack import FakeSlack
from usage_bot._checks import CheckResult
from usage_bot._config import Secret, Settings
from usage_bot._exceptions import DeliveryError
from usage_bot._notify import AlertMessage, Notifier
from usage_bot.frontends.slack.app import (
    SlackNotifier,
    SlackWebhookNotifier,
    doctor_checks,
    slack_notifiers,
)

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
def notifier(slack: FakeSlack) -> SlackNotifier:
    return SlackNotifier(token=Secret(BOT_TOKEN), channel=CHANNEL, api_base_url=slack.api_url)


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


async def test_alert_is_posted_with_blocks(notifier: SlackNotifier, slack: FakeSlack) -> None:
    await notifier.post(ALERT)

    [post] = slack.posts
    assert notifier.name == f"slack:{CHANNEL}"
    assert post["channel"] == CHANNEL
    assert post["text"].startswith("Weekly (Fable) at 95%: The default account has used 95%")
    assert post["blocks"][0]["text"]["text"] == "Weekly (Fable) at 95%"
    assert "<!date^1784678400^" in post["blocks"][1]["text"]["text"]
    assert slack.calls[0].authorization == f"Bearer {BOT_TOKEN}"


async def test_rate_limit_is_retryable_after_retry_after(
    notifier: SlackNotifier, slack: FakeSlack
) -> None:
    slack.fail("chat.postMessage", status=429, retry_after=7)

    with pytest.raises(DeliveryError) as raised:
        await notifier.post(ALERT)

    assert (raised.value.retryable, raised.value.retry_after) == (True, 7.0)
    assert len(slack.calls) == 1, "retrying is the scheduler's job"


async def test_server_error_is_retryable(notifier: SlackNotifier, slack: FakeSlack) -> None:
    slack.fail("chat.postMessage", status=503)

    with pytest.raises(DeliveryError) as raised:
        await notifier.post(ALERT)

    assert raised.value.retryable
    assert raised.value.retry_after is None
    assert len(slack.calls) == 1


async def test_unreachable_slack_is_retryable() -> None:
    notifier = SlackNotifier(
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
        ("invalid_blocks", "usage-bot bug"),
    ],
)
async def test_errors_retrying_cannot_fix_say_the_fix(
    notifier: SlackNotifier, slack: FakeSlack, error: str, fix: str
) -> None:
    slack.fail("chat.postMessage", error=error)

    with pytest.raises(DeliveryError) as raised:
        await notifier.post(ALERT)

    assert not raised.value.retryable
    assert f"({error})" in raised.value.message
    assert fix in raised.value.message
    assert BOT_TOKEN not in raised.value.message


async def test_bot_removed_from_the_channel(notifier: SlackNotifier, slack: FakeSlack) -> None:
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


# -- which destinations ------------------------------------------------------------------


def names(notifiers: list[Notifier]) -> list[str]:
    return [n.name for n in notifiers]


def test_notifiers_from_settings(settings_for: MakeSettings, slack: FakeSlack) -> None:
    both = settings_for(SLACK_WEBHOOK_URL=slack.webhook_url)
    webhook_only = settings_for(
        SLACK_BOT_TOKEN="",
        SLACK_APP_TOKEN="",
        SLACK_ALERT_CHANNEL="",
        SLACK_WEBHOOK_URL=slack.webhook_url,
    )

    assert names(slack_notifiers(both)) == [f"slack:{CHANNEL}", "slack-webhook"]
    assert names(slack_notifiers(webhook_only)) == ["slack-webhook"]
    assert names(slack_notifiers(settings_for(SLACK_ALERT_CHANNEL=""))) == []


# -- doctor ------------------------------------------------------------------------------


def verdicts(results: list[CheckResult]) -> dict[str, str]:
    return {r.name: r.verdict for r in results}


def by_name(results: list[CheckResult], name: str) -> CheckResult:
    return next(r for r in results if r.name == name)


async def test_doctor_all_good(settings_for: MakeSettings, slack: FakeSlack) -> None:
    results = await doctor_checks(settings_for(SLACK_WEBHOOK_URL=slack.webhook_url))

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

    check = by_name(await doctor_checks(settings_for()), "slack: scopes")

    assert check.verdict == verdict
    if verdict == "fail":
        assert check.detail == "missing chat:write"


async def test_doctor_rejected_token(settings_for: MakeSettings, slack: FakeSlack) -> None:
    slack.fail("auth.test", error="invalid_auth")

    results = await doctor_checks(settings_for())

    assert verdicts(results) == {"slack: bot token": "fail", "slack: connection": "skip"}
    assert "Slack rejected SLACK_BOT_TOKEN (invalid_auth)" in results[0].detail


async def test_doctor_bot_not_in_channel(settings_for: MakeSettings, slack: FakeSlack) -> None:
    slack.remove_bot_from(CHANNEL)

    results = await doctor_checks(settings_for())

    channel = by_name(results, "slack: alert channel")
    assert channel.verdict == "fail"
    assert channel.detail == f"the bot is not a member of #c0alerts1 ({CHANNEL})"
    assert channel.fix == "in that channel, type /invite @usage-bot."


async def test_doctor_unknown_channel(settings_for: MakeSettings, slack: FakeSlack) -> None:
    slack.fail("conversations.info", error="channel_not_found")

    channel = by_name(await doctor_checks(settings_for()), "slack: alert channel")

    assert channel.verdict == "fail"
    assert channel.fix is not None
    assert "channel's ID" in channel.fix


async def test_doctor_rejected_app_token(settings_for: MakeSettings, slack: FakeSlack) -> None:
    slack.fail("apps.connections.open", error="invalid_auth")

    mode = by_name(await doctor_checks(settings_for()), "slack: Socket Mode")

    assert mode.verdict == "fail"
    assert mode.fix is not None
    assert "connections:write" in mode.fix


async def test_doctor_http_mode_names_the_request_url(settings_for: MakeSettings) -> None:
    settings = settings_for(
        SLACK_APP_TOKEN="", SLACK_SIGNING_SECRET=SIGNING_SECRET, USAGE_BOT_HTTP_PORT="8080"
    )

    mode = by_name(await doctor_checks(settings), "slack: HTTP mode")

    assert mode.verdict == "ok"
    assert "https://<your public host>/slack/events" in mode.detail


async def test_doctor_without_alert_channel_warns(settings_for: MakeSettings) -> None:
    channel = by_name(
        await doctor_checks(settings_for(SLACK_ALERT_CHANNEL="")), "slack: alert channel"
    )

    assert channel.verdict == "warn"


async def test_doctor_unreachable_slack(settings_for: MakeSettings) -> None:
    results = await doctor_checks(settings_for(SLACK_API_BASE_URL=closed_port_url("/api/")))

    assert results[0].verdict == "fail"
    assert results[0].detail.startswith("Cannot reach Slack at 127.0.0.1")


async def test_doctor_without_slack_says_nothing(make_settings: MakeSettings) -> None:
    assert await doctor_checks(make_settings()) == []


# -- secrets -----------------------------------------------------------------------------


async def test_no_secret_in_logs_errors_or_checks(
    settings_for: MakeSettings,
    slack: FakeSlack,
    notifier: SlackNotifier,
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
    results = await doctor_checks(settings_for(SLACK_WEBHOOK_URL=slack.webhook_url))
    results += await doctor_checks(settings_for(SLACK_WEBHOOK_URL=slack.webhook_url))

    said = "\n".join(
        errors
        + [f"{r.detail} {r.fix}" for r in results]
        + [record.getMessage() for record in caplog.records]
        + [caplog.text]
    )
    for secret in (BOT_TOKEN, APP_TOKEN, WEBHOOK_SECRET_PART):
        assert secret not in said
    assert len(caplog.records) > 5
