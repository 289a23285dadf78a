"""The fault matrix, part 2: the chat platforms (issue 7).

Slack rows run the real alert scheduler and store with the real Slack notifier against
FakeSlack (and the Slack front end in Socket Mode where the connection is the fault);
Discord rows the real Discord notifier and front end against FakeDiscord. What "the user
sees" here is mostly what the operator sees: the log line that says the fix. The team's
own channel (an :class:`Inbox`) shows that one destination's trouble never holds up
another's.
"""

from __future__ import annotations

# First: the fake imports discord.py with its audioop DeprecationWarning silenced.
from tests.fakes.discord import (  # isort: skip
    BOT_TOKEN as DISCORD_BOT_TOKEN,
    CHANNEL_ID as DISCORD_CHANNEL,
    FakeDiscord,
    point_discord_at,
)

import asyncio
import gc
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.conftest import write_login
from tests.test_faults import (
    SLACK_BOT_TOKEN,
    SLACK_CHANNEL,
    T80,
    T95,
    World,
    open_world,
    text_of,
    usage,
)
from usage_bot._clock import FakeClock
from usage_bot._config import Secret, load_settings
from usage_bot._core import build_core
from usage_bot._delivery import NOT_RETRYABLE_PAUSE
from usage_bot._events import NO_OBSERVER
from usage_bot._notify import AlertMessage
from usage_bot._simulator import SimulatedUpstream
from usage_bot.frontends import CommandCore
from usage_bot.frontends.discord.app import DiscordFrontEnd
from usage_bot.frontends.discord.notify import DiscordChannelNotifier
from usage_bot.state.sqlite import SQLiteStore

POST_MESSAGE = "POST /channels/{id}/messages"


@pytest.fixture(autouse=True)
def no_leaks() -> Iterator[None]:
    """An unclosed aiohttp session warns when collected; warnings are errors."""
    yield
    gc.collect()


@dataclass(frozen=True)
class ChatRow:
    """A destination that fails: ``inject`` the failure, ``log`` is what the operator reads,
    ``retry_after`` how long the retry must wait (None: not retryable, retried hourly),
    ``fix`` what someone does to make it work again (None: it passes by itself)."""

    id: str
    fault: str
    log: tuple[str, ...]
    alerts: str
    inject: Callable[[World], None]
    retry_after: float | None
    fix: Callable[[World], Awaitable[None]] | None = None


RETRIED = "posted once, late, after the retry; the team's other destinations on time"
FIXED = (
    "the log says the fix once (ERROR); retried hourly; once fixed, every alert queued "
    "meanwhile is posted once, in order; other destinations on time"
)


def _slack_fails(
    *, status: int = 200, error: str | None = None, retry_after: int | None = None
) -> Callable[[World], None]:
    def inject(world: World) -> None:
        world.slack.fail("chat.postMessage", status=status, error=error, retry_after=retry_after)

    return inject


def _remove_bot(world: World) -> None:
    world.slack.remove_bot_from(SLACK_CHANNEL)


async def _invite_bot(world: World) -> None:
    # Someone types /invite @usage-bot: the fake lets the bot back into the channel.
    async with httpx.AsyncClient(trust_env=False) as client:
        response = await client.post(
            world.slack.api_url + "conversations.join",
            data={"channel": SLACK_CHANNEL},
            headers={"Authorization": f"Bearer {SLACK_BOT_TOKEN}"},
        )
    assert response.json()["ok"]


SLACK_ROWS = [
    ChatRow(
        id="slack-429",
        fault="chat.postMessage answers 429 ratelimited, Retry-After: 30",
        log=("is rate-limiting the bot's posts (ratelimited); the alert is retried in 30 s",),
        alerts=RETRIED + " (not before Retry-After)",
        inject=_slack_fails(status=429, retry_after=30),
        retry_after=30,
    ),
    ChatRow(
        id="slack-500",
        fault="chat.postMessage answers HTTP 500",
        log=("Slack failed to take the alert (HTTP 500, fatal_error); it is retried later",),
        alerts=RETRIED + " (back-off from 5 s)",
        inject=_slack_fails(status=500),
        retry_after=5,
    ),
    ChatRow(
        id="slack-invalid-auth",
        fault="chat.postMessage answers invalid_auth (the bot token was revoked)",
        log=("Slack rejected SLACK_BOT_TOKEN (invalid_auth): copy the Bot User OAuth Token",),
        alerts=FIXED,
        inject=_slack_fails(error="invalid_auth"),
        retry_after=None,
    ),
    ChatRow(
        id="slack-channel-not-found",
        fault="chat.postMessage answers channel_not_found",
        log=(
            f"finds no channel {SLACK_CHANNEL} that the bot can see (channel_not_found): set "
            "SLACK_ALERT_CHANNEL to the channel's ID",
        ),
        alerts=FIXED,
        inject=_slack_fails(error="channel_not_found"),
        retry_after=None,
    ),
    ChatRow(
        id="slack-not-in-channel",
        fault="the bot was removed from the alert channel (not_in_channel)",
        log=(
            f"The bot is not a member of channel {SLACK_CHANNEL} (not_in_channel): invite it "
            "with /invite @usage-bot",
        ),
        alerts=FIXED,
        inject=_remove_bot,
        retry_after=None,
        fix=_invite_bot,
    ),
]


def slack_alerts(world: World) -> list[str]:
    """The titles of the alerts that reached the Slack channel, in order."""
    return [text_of(post).split("\n")[0] for post in world.slack.posts]


@pytest.mark.parametrize("row", SLACK_ROWS, ids=[row.id for row in SLACK_ROWS])
async def test_slack_fault(row: ChatRow, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="usage_bot")
    async with open_world(tmp_path, slack_alerts=True) as world:
        row.inject(world)
        await world.poll(0)
        assert world.inbox.summary() == [T80], "the team's other destination is not held up"
        assert world.slack.posts == []
        said = [r for r in caplog.records if r.levelno >= logging.WARNING]
        assert len(said) == 1
        assert said[0].levelno == (logging.WARNING if row.retry_after else logging.ERROR)
        for fragment in row.log:
            assert fragment in said[0].getMessage()

        if row.retry_after is not None:
            world.clock.advance(row.retry_after - 1)
            await world.scheduler.deliver_pending()
            assert world.slack.posts == [], "not before the retry is due"
            world.clock.advance(1)
            await world.scheduler.deliver_pending()
            assert len(world.slack.posts) == 1
            world.upstream.payload = usage(96)
        else:
            world.upstream.payload = usage(96)
            await world.poll(NOT_RETRYABLE_PAUSE / 2)  # 95 % waits behind 80 %
            assert world.inbox.summary() == [T80, T95]
            assert world.slack.posts == []
            if row.fix is not None:
                await row.fix(world)
            await world.poll(NOT_RETRYABLE_PAUSE / 2)
        for _ in range(3):
            await world.poll()
        titles = slack_alerts(world)
        assert len(titles) == 2, titles
        assert "limit at 85 %" in titles[0]
        assert "limit at 96 %" in titles[1]
        reported = [r for r in caplog.records if row.log[0] in r.getMessage()]
        assert len(reported) == 1, "the fix is said once, not at every retry"
        assert world.metrics.posted == {"team": 2, f"slack:{SLACK_CHANNEL}": 2}


@pytest.mark.parametrize("reason", [None, "refresh_requested"], ids=["dropped", "refreshed"])
async def test_slack_socket_mode_disconnect(tmp_path: Path, reason: str | None) -> None:
    """Row slack-socket-disconnect: the command works again once the SDK has reconnected
    (Slack itself says the app did not answer meanwhile); alerts never used the socket."""
    async with open_world(tmp_path, slack_alerts=True, socket_mode=True) as world:
        shown = await world.command()
        assert "85%" in shown
        await world.poll(0)
        await world.slack.drop_socket(reason=reason)
        world.upstream.payload = usage(96)
        await world.poll()  # while the socket may be down: alerts go by the Web API
        await world.slack.wait_for_socket()
        assert world.front.healthy()
        shown = await world.command()
        assert "96%" in shown
        assert world.slack.socket_connections == 2
        titles = slack_alerts(world)
        assert len(titles) == 2
        assert world.inbox.summary() == [T80, T95]


# -- Discord ---------------------------------------------------------------------------------


@pytest.fixture
async def discord() -> AsyncIterator[FakeDiscord]:
    async with FakeDiscord() as fake:
        with point_discord_at(fake):
            yield fake


def discord_channel(fake: FakeDiscord) -> DiscordChannelNotifier:
    return DiscordChannelNotifier(
        token=Secret(DISCORD_BOT_TOKEN), channel_id=DISCORD_CHANNEL, api_base_url=fake.api_url
    )


@dataclass(frozen=True)
class DiscordRow:
    id: str
    fault: str
    status: int
    log: str
    alerts: str
    retry_after: float | None


DISCORD_ROWS = [
    DiscordRow(
        id="discord-429",
        fault="POST /channels/{id}/messages answers 429, retry_after 12.5",
        status=429,
        log=f"Discord is rate-limiting posts to channel {DISCORD_CHANNEL}; the alert is retried in",
        alerts=RETRIED + " (not before retry_after)",
        retry_after=12.5,
    ),
    DiscordRow(
        id="discord-500",
        fault="POST /channels/{id}/messages answers HTTP 500",
        status=500,
        log=f"Discord failed (HTTP 500) while posting to channel {DISCORD_CHANNEL}",
        alerts=RETRIED + " (back-off from 5 s)",
        retry_after=5,
    ),
    DiscordRow(
        id="discord-missing-access",
        fault="403 50001 Missing Access (the bot lost the channel)",
        status=403,
        log=f"The bot may not post to channel {DISCORD_CHANNEL} (403 50001 Missing Access)",
        alerts=FIXED,
        retry_after=None,
    ),
]


@pytest.mark.parametrize("row", DISCORD_ROWS, ids=[row.id for row in DISCORD_ROWS])
async def test_discord_fault(
    row: DiscordRow, tmp_path: Path, discord: FakeDiscord, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="usage_bot")
    discord.fail(POST_MESSAGE, status=row.status, retry_after=row.retry_after or 0)
    name = f"discord:{DISCORD_CHANNEL}"
    async with open_world(tmp_path, notifiers=[discord_channel(discord)]) as world:
        await world.poll(0)
        assert world.inbox.summary() == [T80]
        assert discord.channel_messages == []
        said = [r for r in caplog.records if r.levelno >= logging.WARNING]
        assert len(said) == 1
        assert row.log in said[0].getMessage()
        if row.retry_after is not None:
            world.clock.advance(row.retry_after - 1)
            await world.scheduler.deliver_pending()
            assert discord.channel_messages == [], "not before the retry is due"
            world.clock.advance(1)
            await world.scheduler.deliver_pending()
            assert len(discord.channel_messages) == 1
            world.upstream.payload = usage(96)
        else:
            world.upstream.payload = usage(96)
            await world.poll(NOT_RETRYABLE_PAUSE / 2)  # 95 % waits behind 80 %
            assert world.inbox.summary() == [T80, T95]
            assert discord.channel_messages == []
            await world.poll(NOT_RETRYABLE_PAUSE / 2)  # someone gave the bot its access back
        await world.poll()
        titles = [message.embeds[0]["title"] for message in discord.channel_messages]
        assert len(titles) == 2, titles
        assert "limit at 85 %" in titles[0]
        assert "limit at 96 %" in titles[1]
        assert world.metrics.posted == {"team": 2, name: 2}
        assert [r.status for r in discord.requests_to(POST_MESSAGE)] == [row.status, 200, 200]


async def test_discord_gateway_disconnect_and_resume(tmp_path: Path, discord: FakeDiscord) -> None:
    """Row discord-gateway-resume: Discord drops the gateway (close 4000); discord.py
    resumes the session, the command answers again, and alerts (REST) never noticed."""
    clock = FakeClock()
    write_login(tmp_path / "claude", now=clock.now())
    async with SimulatedUpstream(clock=clock) as upstream:
        upstream.token = None
        settings = load_settings(
            {
                "CLAUDE_CONFIG_DIR": str(tmp_path / "claude"),
                "USAGE_BOT_API_BASE_URL": upstream.url,
                "USAGE_BOT_HTTP_PORT": "0",
                "DISCORD_BOT_TOKEN": DISCORD_BOT_TOKEN,
                "DISCORD_ALERT_CHANNEL_ID": str(DISCORD_CHANNEL),
                "DISCORD_API_BASE_URL": discord.api_url,
                "DISCORD_GATEWAY_URL": discord.gateway_url,
            },
            dotenv_path=None,
        )
        core = build_core(settings, clock=clock, trust_env=False)
        store = await SQLiteStore.open(tmp_path / "state.sqlite3")
        front = DiscordFrontEnd(
            settings.discord,
            commands=CommandCore(service=core.service, clock=clock),
            clock=clock,
            store=store,
            observer=NO_OBSERVER,
            guild_ready_timeout=0.01,
        )
        notifier = discord_channel(discord)
        try:
            await front.start()
            await discord.wait_until_ready()
            await discord.drop_gateway(resumable=True)
            # While the gateway is down, an alert goes out by REST all the same.
            await notifier.post(alert_message())
            await discord.wait_until_ready()
            deadline = time.monotonic() + 3
            while not (discord.resume_count == 1 and front.healthy()):
                assert time.monotonic() < deadline, "never resumed"
                await asyncio.sleep(0.01)
            callback = await discord.dispatch_command("claude-usage")
            await discord.wait_until(lambda: bool(discord.followups) or callback.type == 4)
        finally:
            await front.stop()
            await store.close()
            await core.aclose()
    assert discord.identify_count == 1, "resumed, not identified again"
    shown = (discord.followups[0].embeds if callback.type == 5 else callback.embeds)[0]
    assert shown["title"] == "Claude usage: default"
    assert len(discord.channel_messages) == 1


def alert_message() -> AlertMessage:
    return AlertMessage(
        kind="threshold",
        key="threshold:default:five_hour:2026-07-19T03:40Z:80",
        account="default",
        title="default: 5-hour limit at 85 %",
        text="Account default has used 85 % of its 5-hour limit, past the 80 % alert threshold.",
        severity="warning",
    )


def test_every_chat_row_is_documented() -> None:
    doc = (Path(__file__).parent.parent / "docs" / "reliability.md").read_text(encoding="utf-8")
    for row_id in [
        *(row.id for row in SLACK_ROWS),
        *(row.id for row in DISCORD_ROWS),
        "slack-socket-disconnect",
        "discord-gateway-resume",
    ]:
        assert f"`{row_id}`" in doc, f"docs/reliability.md has no row {row_id}"
