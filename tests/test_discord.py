"""The Discord front end: the real discord.py against FakeDiscord, the real usage service
against the simulated upstream.

Only what is Discord's own is here: an interaction in and the answer out (deferred or at
once, ephemeral or not), the command's registration, the gateway, the alert destinations
and how Discord's errors read, doctor. What the command decides is the grammar's, tested
in tests/test_command_discord_cases.py without Discord.
"""

from __future__ import annotations

# First: the fake imports discord.py with its audioop DeprecationWarning silenced.
from tests.fakes.discord import (  # isort: skip
    APPLICATION_ID,
    BOT_TOKEN,
    CHANNEL_ID,
    GUILD_ID,
    WEBHOOK_TOKEN,
    FakeDiscord,
    InteractionCallback,
    point_discord_at,
)

import asyncio
import contextlib
import gc
import json
import logging
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import discord
import pytest

from tests.conftest import write_login
from usage_bot._app import DESTINATIONS
from usage_bot._clock import FakeClock
from usage_bot._config import Secret, Settings
from usage_bot._core import Core, build_core
from usage_bot._events import NO_OBSERVER, CommandAnswered, Observer, Recorder
from usage_bot._exceptions import DeliveryError, FrontEndFailed
from usage_bot._notify import AlertMessage, Notifier
from usage_bot._report import to_the_minute
from usage_bot._service import UsageService
from usage_bot._simulator import SimulatedUpstream
from usage_bot._texts import FAILED, refused
from usage_bot.frontends import CommandCore
from usage_bot.frontends.discord.app import DiscordFrontEnd
from usage_bot.frontends.discord.doctor import (
    BOT_PERMISSIONS,
    INVITE_SCOPES,
    doctor_checks,
    invite_url,
)
from usage_bot.frontends.discord.notify import (
    ERRORS,
    Answered,
    DiscordChannelNotifier,
    DiscordWebhookNotifier,
    Target,
    delivery_error,
)
from usage_bot.frontends.discord.sync import SYNC_STATE_KEY, KeyValue, command_fingerprint
from usage_bot.state.sqlite import SQLiteStore

EPHEMERAL = 64
OTHER_GUILD = 1_300_000_000_000_000_001
OTHER_CHANNEL = 1_300_000_000_000_000_002
INVITE = (
    f"https://discord.com/oauth2/authorize?client_id={APPLICATION_ID}"
    "&scope=bot+applications.commands&permissions=19456"
)
PUT_GLOBAL = "PUT /applications/{id}/commands"
POST_MESSAGE = "POST /channels/{id}/messages"
POST_WEBHOOK = "POST /webhooks/{id}/{token}"


@pytest.fixture(autouse=True)
def no_leaks() -> Iterator[None]:
    """An unclosed session or connector warns when collected; warnings are errors."""
    yield
    gc.collect()


@pytest.fixture
async def fake() -> AsyncIterator[FakeDiscord]:
    async with FakeDiscord() as fake:
        with point_discord_at(fake):
            yield fake


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    """The bot's state, where the front end remembers its last command sync."""
    opened = await SQLiteStore.open(tmp_path / "discord-state.sqlite3")
    yield opened
    await opened.close()


@pytest.fixture
def settings_for(
    fake: FakeDiscord, upstream: SimulatedUpstream, make_settings: Callable[..., Settings]
) -> Callable[..., Settings]:
    """Settings with Discord pointed at the fake and the usage endpoint at the simulator."""

    def make(**env: str) -> Settings:
        base = {
            "DISCORD_BOT_TOKEN": BOT_TOKEN,
            "DISCORD_API_BASE_URL": fake.api_url,
            "DISCORD_GATEWAY_URL": fake.gateway_url,
            "USAGE_BOT_API_BASE_URL": upstream.url,
        }
        return make_settings(**{**base, **env})

    return make


def front_end(
    settings: Settings,
    service: UsageService,
    clock: FakeClock,
    store: KeyValue,
    observer: Observer = NO_OBSERVER,
) -> DiscordFrontEnd:
    return DiscordFrontEnd(
        settings.discord,
        commands=CommandCore(service=service, clock=clock),
        clock=clock,
        store=store,
        observer=observer,
        guild_ready_timeout=0.01,
    )


@contextlib.asynccontextmanager
async def running(
    fake: FakeDiscord,
    settings: Settings,
    clock: FakeClock,
    store: KeyValue,
    *,
    service: UsageService | None = None,
    observer: Observer = NO_OBSERVER,
) -> AsyncIterator[tuple[DiscordFrontEnd, Core]]:
    core = build_core(settings, clock=clock)
    front = front_end(settings, service or core.service, clock, store, observer)
    try:
        await front.start()
        await fake.wait_until_ready()
        yield front, core
    finally:
        await front.stop()
        await core.aclose()


async def command(fake: FakeDiscord, **options: object) -> tuple[InteractionCallback, float]:
    """Type /claude-usage; the bot's callback and how long it took."""
    started = time.monotonic()
    callback = await fake.dispatch_command("claude-usage", options=options)
    return callback, time.monotonic() - started


async def eventually(condition: Callable[[], bool], *, within: float = 2) -> None:
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, "the condition never held"
        await asyncio.sleep(0.01)


def field_names(embed: dict[str, Any]) -> list[str]:
    return [field["name"] for field in embed.get("fields", [])]


def unix(moment: datetime) -> int:
    """The time as the embeds show it: the nearest minute."""
    return int(to_the_minute(moment).timestamp())


# -- /claude-usage -----------------------------------------------------------------------


async def test_command_answers_at_once_from_the_cache_with_every_limit(
    fake: FakeDiscord, settings_for: Callable[..., Settings], clock: FakeClock, store: KeyValue
) -> None:
    async with running(fake, settings_for(), clock, store) as (_, core):
        usage = await core.service.get("default")
        callback, took = await command(fake)

    assert took < 3
    assert (callback.type, callback.flags) == (4, EPHEMERAL)
    [embed] = callback.embeds
    assert embed["title"] == "Claude usage: default"
    # "Weekly (Fable)" exists only in the simulator's `limits` list.
    assert field_names(embed) == ["5-hour", "Weekly (all models)", "Weekly (Fable)"]
    assert usage.snapshot is not None
    for limit, field in zip(usage.snapshot.limits, embed["fields"], strict=True):
        assert limit.resets_at is not None
        assert f"<t:{unix(limit.resets_at)}:R>" in field["value"]
        assert f"<t:{unix(limit.resets_at)}:f>" in field["value"]
    assert embed["description"].startswith("Extra usage: 20.")
    assert embed["description"].endswith(" USD used of 100.00 USD")
    assert fake.identifies[0]["intents"] == 1  # guilds only: no privileged intent


async def test_every_answer_is_told_to_the_observer(
    fake: FakeDiscord, settings_for: Callable[..., Settings], clock: FakeClock, store: KeyValue
) -> None:
    heard = Recorder()
    settings = settings_for(DISCORD_ALLOWED_CHANNELS=str(CHANNEL_ID))
    async with running(fake, settings, clock, store, observer=heard):
        await command(fake)
        await fake.wait_until(lambda: len(fake.followups) == 1)
        await fake.dispatch_command("claude-usage", channel_id=OTHER_CHANNEL)
        # The bot tells the observer after its answer is sent: the fake sees nothing to wake on.
        await eventually(lambda: len(heard.of(CommandAnswered)) == 2)

    answered = heard.of(CommandAnswered)
    assert [(a.platform, a.outcome) for a in answered] == [
        ("discord", "ok"),
        ("discord", "refused"),
    ]
    assert all(0 <= a.seconds < 3 for a in answered)


async def test_share_answers_publicly(
    fake: FakeDiscord, settings_for: Callable[..., Settings], clock: FakeClock, store: KeyValue
) -> None:
    async with running(fake, settings_for(), clock, store) as (_, core):
        await core.service.get("default")
        callback, _ = await command(fake, share=True)

    assert callback.type == 4
    assert callback.flags & EPHEMERAL == 0
    assert callback.embeds[0]["title"] == "Claude usage: default"


async def test_a_cold_cache_and_a_slow_upstream_defer_then_follow_up(
    fake: FakeDiscord,
    settings_for: Callable[..., Settings],
    clock: FakeClock,
    store: KeyValue,
    upstream: SimulatedUpstream,
) -> None:
    upstream.latency = 0.3
    async with running(fake, settings_for(), clock, store):
        callback, took = await command(fake)
        await fake.wait_until(lambda: len(fake.followups) == 1)

    assert took < 0.3
    assert (callback.type, callback.flags) == (5, EPHEMERAL)
    [followup] = fake.followups
    assert followup.flags == EPHEMERAL
    assert field_names(followup.embeds[0]) == ["5-hour", "Weekly (all models)", "Weekly (Fable)"]


async def test_a_shared_deferred_answer_follows_up_publicly(
    fake: FakeDiscord, settings_for: Callable[..., Settings], clock: FakeClock, store: KeyValue
) -> None:
    async with running(fake, settings_for(), clock, store):
        callback, _ = await command(fake, share=True)
        await fake.wait_until(lambda: len(fake.followups) == 1)

    assert (callback.type, callback.flags) == (5, 0)
    assert fake.followups[0].flags == 0


async def test_upstream_rate_limit_still_answers_with_the_last_values_and_their_age(
    fake: FakeDiscord,
    settings_for: Callable[..., Settings],
    clock: FakeClock,
    store: KeyValue,
    upstream: SimulatedUpstream,
) -> None:
    async with running(fake, settings_for(), clock, store) as (_, core):
        await core.service.get("default")
        clock.advance(120)
        upstream.fail(
            status=429,
            headers={"retry-after": "600"},
            body=b'{"type":"error","error":{"type":"rate_limit_error","message":"Rate limited"}}',
        )
        first, _ = await command(fake)
        await fake.wait_until(lambda: len(fake.followups) == 1)
        second, took = await command(fake)

    assert first.type == 5
    [followup] = fake.followups
    [embed] = followup.embeds
    assert embed["footer"]["text"].startswith("Last known values, from 2 min ago.")
    assert "rate-limiting" in embed["footer"]["text"]
    assert len(embed["fields"]) == 3
    # While the upstream is backing off, the answer comes from the cache, at once.
    assert (second.type, took < 3) == (4, True)
    assert second.embeds[0]["footer"] == embed["footer"]
    assert len(upstream.requests) == 2


@pytest.fixture
def two_accounts(tmp_path: Path, clock: FakeClock) -> str:
    for name in ("alice", "bob"):
        write_login(tmp_path / name, now=clock.now())
    return f"alice={tmp_path / 'alice'},bob={tmp_path / 'bob'}"


async def test_the_options_mean_the_grammars_words_and_autocomplete_offers_accounts(
    fake: FakeDiscord,
    settings_for: Callable[..., Settings],
    clock: FakeClock,
    store: KeyValue,
    two_accounts: str,
) -> None:
    settings = settings_for(USAGE_BOT_ACCOUNTS=two_accounts)
    async with running(fake, settings, clock, store) as (_, core):
        await core.service.get_all()
        everyone, _ = await command(fake)
        bob, _ = await command(fake, account="BOB")
        nobody, _ = await command(fake, account="carol")
        asked, _ = await command(fake, account="help")
        typed = await fake.dispatch_autocomplete("claude-usage", focused="account", value="li")
        blank = await fake.dispatch_autocomplete("claude-usage", focused="account", value="")

    assert [e["title"] for e in everyone.embeds] == ["Claude usage: alice", "Claude usage: bob"]
    assert [e["title"] for e in bob.embeds] == ["Claude usage: bob"]
    # An unknown account gets the grammar's help, as an unknown word does everywhere.
    assert (nobody.type, nobody.flags, nobody.content) == (4, EPHEMERAL, "")
    [help_embed] = nobody.embeds
    lines = help_embed["description"].splitlines()
    assert lines[0] == "I don't understand `account:carol`."
    assert lines[-1] == "Accounts: `alice`, `bob`."
    assert asked.embeds[0]["description"] == "\n".join(lines[1:])
    assert typed.type == 8
    assert typed.choices == [{"name": "alice", "value": "alice"}]
    assert [c["value"] for c in blank.choices] == ["alice", "bob"]


class BrokenService(UsageService):
    """A service that fails in a way the upstream never makes it fail."""

    def would_fetch(self, account: str) -> bool:
        raise RuntimeError("a bug")


async def test_any_failure_still_answers_in_one_sentence(
    fake: FakeDiscord,
    settings_for: Callable[..., Settings],
    clock: FakeClock,
    store: KeyValue,
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = settings_for()
    core = build_core(settings, clock=clock)
    broken = BrokenService(loaders=core.loaders, client=core.client, clock=clock)
    async with running(fake, settings, clock, store, service=broken):
        callback, took = await command(fake)
    await core.aclose()

    assert took < 3
    assert (callback.type, callback.flags, callback.content) == (4, EPHEMERAL, FAILED)
    assert "answering /claude-usage failed" in caplog.text


async def test_a_defer_that_discord_refuses_still_answers_in_one_sentence(
    fake: FakeDiscord,
    settings_for: Callable[..., Settings],
    clock: FakeClock,
    store: KeyValue,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The report under way is dropped cleanly (warnings are errors: an un-awaited
    follow-up would fail the test), and the user still hears why."""
    fake.fail("POST /interactions/{id}/{token}/callback", status=404, code=10062)
    async with running(fake, settings_for(), clock, store):
        callback, _ = await command(fake)
    gc.collect()

    assert (callback.type, callback.flags, callback.content) == (4, EPHEMERAL, FAILED)
    assert fake.followups == []
    assert "answering /claude-usage failed" in caplog.text


async def test_stop_finishes_answers_under_way(
    fake: FakeDiscord,
    settings_for: Callable[..., Settings],
    clock: FakeClock,
    store: KeyValue,
    upstream: SimulatedUpstream,
) -> None:
    upstream.latency = 0.3
    async with running(fake, settings_for(), clock, store) as (front, _):
        callback, _ = await command(fake)
        await front.stop()  # while the report is still on its way

    assert callback.type == 5
    assert len(fake.followups) == 1
    assert front.healthy() is False


# -- where the command is used: Discord's ids as the grammar's caller ---------------------


@pytest.mark.parametrize(
    ("env", "where", "said"),
    [
        (
            {"DISCORD_ALLOWED_GUILDS": str(OTHER_GUILD)},
            {"guild_id": GUILD_ID},
            refused("server", "discord"),
        ),
        (
            {"DISCORD_ALLOWED_GUILDS": str(GUILD_ID)},
            {"guild_id": None},
            refused("direct_message", "discord"),
        ),
        (
            {"DISCORD_ALLOWED_CHANNELS": str(CHANNEL_ID)},
            {"guild_id": GUILD_ID, "channel_id": OTHER_CHANNEL},
            refused("channel", "discord"),
        ),
    ],
    ids=["other server", "direct message", "other channel"],
)
async def test_a_refusal_is_private_and_autocomplete_offers_nothing(
    fake: FakeDiscord,
    settings_for: Callable[..., Settings],
    clock: FakeClock,
    store: KeyValue,
    upstream: SimulatedUpstream,
    env: dict[str, str],
    where: dict[str, Any],
    said: str,
) -> None:
    async with running(fake, settings_for(**env), clock, store):
        callback = await fake.dispatch_command("claude-usage", options={"share": True}, **where)
        choices = await fake.dispatch_autocomplete(
            "claude-usage", focused="account", value="", **where
        )

    assert (callback.type, callback.flags, callback.content) == (4, EPHEMERAL, said)
    assert callback.embeds == []
    assert choices.choices == []
    assert upstream.requests == []


async def test_a_thread_is_judged_by_the_channel_it_is_in(
    fake: FakeDiscord, settings_for: Callable[..., Settings], clock: FakeClock, store: KeyValue
) -> None:
    env = {"DISCORD_ALLOWED_GUILDS": str(GUILD_ID), "DISCORD_ALLOWED_CHANNELS": str(CHANNEL_ID)}
    async with running(fake, settings_for(**env), clock, store) as (_, core):
        await core.service.get("default")
        inside = fake.add_thread(parent_id=CHANNEL_ID)
        elsewhere = fake.add_thread(parent_id=OTHER_CHANNEL)
        in_channel = await fake.dispatch_command("claude-usage")
        in_thread = await fake.dispatch_command("claude-usage", channel_id=inside)
        in_other_thread = await fake.dispatch_command("claude-usage", channel_id=elsewhere)

    assert in_channel.embeds[0]["title"] == "Claude usage: default"
    assert in_thread.embeds[0]["title"] == "Claude usage: default"
    assert in_other_thread.content == refused("channel", "discord")


# -- command registration ----------------------------------------------------------------


async def test_first_start_syncs_and_an_unchanged_restart_does_not(
    fake: FakeDiscord, settings_for: Callable[..., Settings], clock: FakeClock, store: KeyValue
) -> None:
    settings = settings_for()
    async with running(fake, settings, clock, store):
        pass
    async with running(fake, settings, clock, store):
        callback, _ = await command(fake)  # the command registered the first time still works

    assert [(s.guild_id, s.names) for s in fake.command_syncs] == [(None, ["claude-usage"])]
    options = {o["name"]: o for o in fake.command_syncs[0].commands[0]["options"]}
    assert (options["share"]["type"], options["account"]["type"]) == (5, 3)
    assert options["account"]["autocomplete"] is True
    record = json.loads(await store.get_value(SYNC_STATE_KEY) or "{}")
    assert record["scope"] == "global"
    # The fingerprint is of the definition as Discord got it.
    sent = fake.command_syncs[0].commands
    assert record["hash"] == command_fingerprint(sent, application_id=APPLICATION_ID)
    assert callback.type in (4, 5)


async def test_a_changed_definition_syncs_again(
    fake: FakeDiscord, settings_for: Callable[..., Settings], clock: FakeClock, store: KeyValue
) -> None:
    settings = settings_for()
    async with running(fake, settings, clock, store):
        pass
    sent = fake.command_syncs[0].commands
    # What an older version with another description would have left behind.
    older = [{**sent[0], "description": "Show the quota"}]
    record = json.loads(await store.get_value(SYNC_STATE_KEY) or "{}")
    record["hash"] = command_fingerprint(older, application_id=APPLICATION_ID)
    await store.set_value(SYNC_STATE_KEY, json.dumps(record))

    async with running(fake, settings, clock, store):
        pass

    assert len(fake.command_syncs) == 2
    assert command_fingerprint(sent, application_id=APPLICATION_ID) != command_fingerprint(
        sent, application_id=APPLICATION_ID + 1
    )


async def test_guild_sync_and_moving_back_to_global_removes_the_guild_command(
    fake: FakeDiscord, settings_for: Callable[..., Settings], clock: FakeClock, store: KeyValue
) -> None:
    async with running(fake, settings_for(DISCORD_GUILD_ID=str(GUILD_ID)), clock, store):
        callback = await fake.dispatch_command("claude-usage", guild_id=GUILD_ID)
    async with running(fake, settings_for(), clock, store):
        pass

    assert callback.type in (4, 5)
    assert [(s.guild_id, s.names) for s in fake.command_syncs] == [
        (GUILD_ID, ["claude-usage"]),
        (None, ["claude-usage"]),
        (GUILD_ID, []),
    ]


async def test_a_new_state_syncs_and_a_state_that_cannot_be_used_costs_only_a_sync(
    fake: FakeDiscord,
    settings_for: Callable[..., Settings],
    clock: FakeClock,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = settings_for()
    for name in ("first", "second"):
        fresh = await SQLiteStore.open(tmp_path / f"{name}.sqlite3")
        try:
            async with running(fake, settings, clock, fresh):
                pass
        finally:
            await fresh.close()
    closed = await SQLiteStore.open(tmp_path / "first.sqlite3")
    await closed.close()
    async with running(fake, settings, clock, closed):
        pass  # started, whatever the state said

    assert len(fake.requests_to(PUT_GLOBAL)) == 3
    assert "cannot read the last command sync (The state store is closed.)" in caplog.text
    assert "cannot remember the command sync" in caplog.text


async def test_a_guild_the_bot_is_not_in_stops_start_with_the_fix(
    fake: FakeDiscord,
    settings_for: Callable[..., Settings],
    clock: FakeClock,
    store: KeyValue,
) -> None:
    settings = settings_for(DISCORD_GUILD_ID=str(OTHER_GUILD))
    core = build_core(settings, clock=clock)
    front = front_end(settings, core.service, clock, store)

    with pytest.raises(FrontEndFailed) as raised:
        await front.start()
    await core.aclose()

    assert f"in server {OTHER_GUILD}" in raised.value.message
    assert "invite URL from `usage-bot doctor`" in raised.value.message
    assert fake.command_syncs == []
    assert front.healthy() is False


async def test_a_rejected_token_stops_start_with_the_fix(
    settings_for: Callable[..., Settings], clock: FakeClock, store: KeyValue
) -> None:
    async with FakeDiscord(bot_token="the-right-one") as fake:
        with point_discord_at(fake):
            settings = settings_for(
                DISCORD_API_BASE_URL=fake.api_url, DISCORD_GATEWAY_URL=fake.gateway_url
            )
            core = build_core(settings, clock=clock)
            front = front_end(settings, core.service, clock, store)
            with pytest.raises(FrontEndFailed) as raised:
                await front.start()
            await core.aclose()

    assert raised.value.message.startswith("Discord rejected DISCORD_BOT_TOKEN: ")
    assert "Reset Token" in raised.value.message
    assert BOT_TOKEN not in raised.value.message


async def test_healthy_while_connected_and_after_a_resume(
    fake: FakeDiscord, settings_for: Callable[..., Settings], clock: FakeClock, store: KeyValue
) -> None:
    async with running(fake, settings_for(), clock, store) as (front, _):
        await eventually(front.healthy)
        await fake.drop_gateway()
        await fake.wait_until_ready()  # resumed
        await eventually(lambda: fake.resume_count == 1 and front.healthy())

    assert fake.identify_count == 1
    assert front.healthy() is False


# -- alert destinations ------------------------------------------------------------------


def alert() -> AlertMessage:
    return AlertMessage(
        kind="threshold",
        key="default:five_hour:w1:95",
        account="default",
        title="5-hour limit at 95%",
        text="The 5-hour limit of default is at 95%.",
        severity="critical",
        resets_at=datetime.fromisoformat("2026-07-19T03:39:59+00:00"),
        advice="Pause long agent runs until it resets.",
    )


def channel_notifier(fake: FakeDiscord, channel_id: int = CHANNEL_ID) -> DiscordChannelNotifier:
    return DiscordChannelNotifier(
        token=Secret(BOT_TOKEN), channel_id=channel_id, api_base_url=fake.api_url
    )


def webhook_notifier(fake: FakeDiscord, url: str | None = None) -> DiscordWebhookNotifier:
    return DiscordWebhookNotifier(url=Secret(url or fake.webhook_url), api_base_url=fake.api_url)


def destinations(settings: Settings) -> list[Notifier]:
    """The alert destinations the composition root builds for ``settings``."""
    return [entry.build(settings) for entry in DESTINATIONS if entry.wanted(settings)]


async def deliver(notifier: Notifier, message: AlertMessage) -> list[DeliveryError]:
    """What the alert scheduler does: retry what is retryable, after ``retry_after``."""
    failures: list[DeliveryError] = []
    for _ in range(5):
        try:
            await notifier.post(message)
        except DeliveryError as exc:
            failures.append(exc)
            if not exc.retryable:
                return failures
            await asyncio.sleep(exc.retry_after or 0)
        else:
            return failures
    raise AssertionError(f"never delivered: {[f.message for f in failures]}")


async def test_channel_alert_arrives_as_an_embed(fake: FakeDiscord) -> None:
    notifier = channel_notifier(fake)

    await notifier.post(alert())

    assert notifier.name == f"discord:{CHANNEL_ID}"
    [message] = fake.channel_messages
    assert message.channel_id == CHANNEL_ID
    [embed] = message.embeds
    stamp = unix(datetime.fromisoformat("2026-07-19T03:39:59+00:00"))
    assert embed["title"] == "5-hour limit at 95%"
    assert f"<t:{stamp}:f>" in embed["description"]
    assert f"<t:{stamp}:R>" in embed["description"]
    assert embed["footer"]["text"] == "Account: default"
    assert embed["fields"] == [
        {"name": "What to do", "value": "Pause long agent runs until it resets.", "inline": False}
    ]
    [request] = fake.requests_to(POST_MESSAGE)
    assert request.authorization == f"Bot {BOT_TOKEN}"
    assert request.json["allowed_mentions"] == {"parse": []}


async def test_webhook_alert_arrives(fake: FakeDiscord) -> None:
    notifier = webhook_notifier(fake)

    await notifier.post(alert())

    assert notifier.name == "discord-webhook"
    [message] = fake.webhook_messages
    assert message.embeds[0]["title"] == "5-hour limit at 95%"
    assert message.message["author"]["username"] == "Claude usage"
    assert fake.requests_to(POST_WEBHOOK)[0].query == {"wait": "true"}


@pytest.mark.parametrize("where", ["channel", "webhook"])
async def test_a_rate_limit_delays_a_post_but_never_loses_or_doubles_it(
    fake: FakeDiscord, where: str
) -> None:
    route = POST_MESSAGE if where == "channel" else POST_WEBHOOK
    fake.fail(route, status=429, retry_after=0.2)
    notifier = channel_notifier(fake) if where == "channel" else webhook_notifier(fake)

    started = time.monotonic()
    [failure] = await deliver(notifier, alert())

    assert failure.retryable
    assert failure.retry_after == pytest.approx(0.2)
    assert time.monotonic() - started >= 0.2
    assert [r.status for r in fake.requests_to(route)] == [429, 200]
    sent = fake.channel_messages if where == "channel" else fake.webhook_messages
    assert len(sent) == 1


@pytest.mark.parametrize(
    ("status", "code", "fix"),
    [
        (403, 50001, "give the bot View Channel, Send Messages and Embed Links in that channel"),
        (403, 50013, "give the bot View Channel, Send Messages and Embed Links in that channel"),
        (404, 10003, "check DISCORD_ALERT_CHANNEL_ID"),
        (400, 50035, "this is likely a bug in usage-bot: please report it"),
    ],
)
async def test_permanent_channel_errors_are_not_retryable_and_say_the_fix(
    fake: FakeDiscord, status: int, code: int, fix: str
) -> None:
    fake.fail(POST_MESSAGE, status=status, code=code)

    with pytest.raises(DeliveryError) as raised:
        await channel_notifier(fake).post(alert())

    assert raised.value.retryable is False
    assert fix in raised.value.message
    assert str(code) in raised.value.message
    assert fake.channel_messages == []


async def test_an_unknown_channel_and_a_rejected_token_are_not_retryable(
    fake: FakeDiscord,
) -> None:
    with pytest.raises(DeliveryError) as unknown:
        await channel_notifier(fake, channel_id=OTHER_CHANNEL).post(alert())
    rejected = DiscordChannelNotifier(
        token=Secret("a-revoked-token"), channel_id=CHANNEL_ID, api_base_url=fake.api_url
    )
    with pytest.raises(DeliveryError) as refused_post:
        await rejected.post(alert())

    assert unknown.value.retryable is False
    assert "check DISCORD_ALERT_CHANNEL_ID" in unknown.value.message
    assert refused_post.value.retryable is False
    assert "Discord rejected DISCORD_BOT_TOKEN (401" in refused_post.value.message
    assert "a-revoked-token" not in refused_post.value.message


async def test_a_deleted_webhook_is_not_retryable_and_says_make_a_new_one(
    fake: FakeDiscord,
) -> None:
    gone = fake.webhook_url.replace(WEBHOOK_TOKEN, "x" * 68)

    with pytest.raises(DeliveryError) as raised:
        await webhook_notifier(fake, gone).post(alert())

    assert raised.value.retryable is False
    assert "the webhook was deleted: make a new one" in raised.value.message
    assert "10015" in raised.value.message
    assert "x" * 68 not in raised.value.message


@pytest.mark.parametrize("where", ["channel", "webhook"])
async def test_a_server_error_is_retryable_at_once(fake: FakeDiscord, where: str) -> None:
    route = POST_MESSAGE if where == "channel" else POST_WEBHOOK
    fake.fail(route, status=500)
    notifier = channel_notifier(fake) if where == "channel" else webhook_notifier(fake)

    started = time.monotonic()
    with pytest.raises(DeliveryError) as raised:
        await notifier.post(alert())

    assert time.monotonic() - started < 0.5  # no sleeping through retries inside post
    assert raised.value.retryable is True
    assert "HTTP 500" in raised.value.message
    assert len(fake.requests_to(route)) == 1


@pytest.mark.parametrize("target", ["channel", "webhook"])
def test_every_answer_discord_can_give_becomes_one_sentence(target: Target) -> None:
    """Each status, with and without each code the table names, finds a row; only 429 and
    5xx are retryable; a wait is honoured up to an hour."""
    codes = {0, *(code for row in ERRORS for code in row.codes)}
    for status in range(300, 600):
        for code in codes:
            body = json.dumps({"code": code, "message": "Something {odd}", "retry_after": 1e9})
            error = delivery_error(target, "somewhere", Answered(status, body, {}))
            assert error.retryable is (status == 429 or status >= 500)
            assert error.message.endswith(".")
            assert "{" not in error.message.replace("{odd}", "")
            assert error.retry_after in (None, 3600.0)


async def test_an_unreachable_or_silent_discord_is_retryable() -> None:
    release = asyncio.Event()

    async def never_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await release.wait()
        writer.close()

    server = await asyncio.start_server(never_answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    silent = DiscordChannelNotifier(
        token=Secret(BOT_TOKEN),
        channel_id=CHANNEL_ID,
        api_base_url=f"http://127.0.0.1:{port}/api/v10",
        timeout=0.2,
    )
    try:
        with pytest.raises(DeliveryError) as timed_out:
            await silent.post(alert())
    finally:
        release.set()
        server.close()
        await server.wait_closed()
    closed = DiscordWebhookNotifier(
        url=Secret(f"https://discord.com/api/webhooks/{CHANNEL_ID}/{WEBHOOK_TOKEN}"),
        api_base_url=f"http://127.0.0.1:{port}/api/v10",
    )
    with pytest.raises(DeliveryError) as unreachable:
        await closed.post(alert())

    assert timed_out.value.retryable is True
    assert "did not answer within 0.2 s" in timed_out.value.message
    assert unreachable.value.retryable is True
    assert unreachable.value.message.startswith("Cannot reach Discord")
    assert WEBHOOK_TOKEN not in unreachable.value.message


def test_the_notifiers_load_no_discord_py() -> None:
    """A webhook-only setup must not pay for discord.py: neither the notifiers' module nor
    the destinations the composition root builds for it import it."""
    program = """
import sys
import usage_bot.frontends.discord.notify
assert "discord" not in sys.modules, "notify imported discord"
from usage_bot._app import DESTINATIONS
from usage_bot._config import load_settings
settings = load_settings(
    {"DISCORD_WEBHOOK_URL": "https://discord.com/api/webhooks/123456789012345678/abc"},
    dotenv_path=None,
)
built = [entry.build(settings) for entry in DESTINATIONS if entry.wanted(settings)]
assert [n.name for n in built] == ["discord-webhook"], built
assert "discord" not in sys.modules, "building the destinations imported discord"
"""
    ran = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=60, check=False
    )

    assert ran.returncode == 0, ran.stderr


# -- doctor ------------------------------------------------------------------------------


async def test_doctor_with_a_good_token_shows_the_bot_and_the_invite_url(
    fake: FakeDiscord, settings_for: Callable[..., Settings]
) -> None:
    settings = settings_for(
        DISCORD_ALERT_CHANNEL_ID=str(CHANNEL_ID), DISCORD_WEBHOOK_URL=fake.webhook_url
    )

    results = {r.name: r for r in await doctor_checks(settings.discord)}

    assert [(name, r.verdict) for name, r in results.items()] == [
        ("discord: bot token", "ok"),
        ("discord: application", "ok"),
        ("discord: invite URL", "ok"),
        ("discord: command", "warn"),
        ("discord: alert channel", "ok"),
        ("discord: webhook", "ok"),
    ]
    assert "usage-bot" in results["discord: bot token"].detail
    assert results["discord: invite URL"].detail == INVITE
    assert "#general" in results["discord: alert channel"].detail
    assert f"to channel {CHANNEL_ID}" in results["discord: webhook"].detail
    assert fake.channel_messages == fake.webhook_messages == []


async def test_doctor_sees_the_registered_command_in_the_guild(
    fake: FakeDiscord, settings_for: Callable[..., Settings], clock: FakeClock, store: KeyValue
) -> None:
    settings = settings_for(DISCORD_GUILD_ID=str(GUILD_ID))
    async with running(fake, settings, clock, store):
        pass

    [*_, check, channel] = await doctor_checks(settings.discord)

    assert (check.verdict, check.detail) == (
        "ok",
        f"/claude-usage is registered in server {GUILD_ID}",
    )
    assert channel.verdict == "warn"
    assert channel.fix is not None
    assert "DISCORD_ALERT_CHANNEL_ID" in channel.fix


async def test_doctor_says_what_to_fix(
    fake: FakeDiscord, settings_for: Callable[..., Settings]
) -> None:
    settings = settings_for(
        DISCORD_GUILD_ID=str(OTHER_GUILD),
        DISCORD_ALERT_CHANNEL_ID=str(OTHER_CHANNEL),
        DISCORD_WEBHOOK_URL=fake.webhook_url.replace(WEBHOOK_TOKEN, "y" * 68),
    )

    results = {r.name: r for r in await doctor_checks(settings.discord)}

    assert results["discord: command"].verdict == "fail"
    assert "add the bot to that server" in (results["discord: command"].fix or "")
    assert results["discord: alert channel"].verdict == "fail"
    assert "DISCORD_ALERT_CHANNEL_ID" in (results["discord: alert channel"].fix or "")
    assert results["discord: webhook"].verdict == "fail"
    assert "make a new one" in (results["discord: webhook"].fix or "")


async def test_doctor_with_a_rejected_token(settings_for: Callable[..., Settings]) -> None:
    async with FakeDiscord(bot_token="the-right-one") as fake:
        with point_discord_at(fake):
            settings = settings_for(DISCORD_API_BASE_URL=fake.api_url)
            [check] = await doctor_checks(settings.discord)

    assert (check.name, check.verdict) == ("discord: bot token", "fail")
    assert check.fix is not None
    assert "Reset Token" in check.fix
    assert BOT_TOKEN not in check.detail


def test_the_invite_url_asks_for_what_discord_py_would() -> None:
    """Built without discord.py, so that doctor loads none: the same bits and the same URL."""
    permissions = discord.Permissions(view_channel=True, send_messages=True, embed_links=True)

    assert BOT_PERMISSIONS == permissions.value == 19456
    from_discord_py = discord.utils.oauth_url(
        APPLICATION_ID, permissions=permissions, scopes=INVITE_SCOPES
    )
    assert invite_url(APPLICATION_ID) == from_discord_py == INVITE


async def test_doctor_says_why_when_discord_fails(
    fake: FakeDiscord, settings_for: Callable[..., Settings]
) -> None:
    settings = settings_for(DISCORD_ALERT_CHANNEL_ID=str(CHANNEL_ID))
    fake.fail("GET /channels/{id}", status=403)
    fake.fail("GET /applications/{id}/commands", status=500)

    results = {r.name: r for r in await doctor_checks(settings.discord)}

    channel, command = results["discord: alert channel"], results["discord: command"]
    assert (channel.verdict, channel.detail) == (
        "fail",
        f"the bot cannot see channel {CHANNEL_ID} (HTTP 403 50001 Missing Access)",
    )
    assert (
        channel.fix == "give the bot View Channel, Send Messages and Embed Links in that channel."
    )
    assert (command.verdict, command.detail) == (
        "fail",
        "cannot list the commands globally (HTTP 500 500: Internal Server Error)",
    )
    assert [r.route for r in fake.requests] == [
        "GET /users/@me",
        "GET /oauth2/applications/@me",
        "GET /applications/{application_id}/commands",
        "GET /channels/{channel_id}",
    ]
    assert {r.authorization for r in fake.requests} == {f"Bot {BOT_TOKEN}"}


async def test_doctor_unreachable_discord(settings_for: Callable[..., Settings]) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings = settings_for(DISCORD_API_BASE_URL=f"http://127.0.0.1:{port}/api/v10")

    [check] = await doctor_checks(settings.discord)

    assert (check.name, check.verdict) == ("discord: bot token", "fail")
    assert check.detail.startswith("Cannot reach Discord at 127.0.0.1 (ConnectError)")


async def test_doctor_without_discord_says_nothing(make_settings: Callable[..., Settings]) -> None:
    assert await doctor_checks(make_settings().discord) == []


# -- secrets -----------------------------------------------------------------------------


async def test_no_token_or_webhook_url_in_any_log_line_or_message(
    fake: FakeDiscord,
    settings_for: Callable[..., Settings],
    clock: FakeClock,
    store: KeyValue,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    settings = settings_for(
        DISCORD_ALERT_CHANNEL_ID=str(CHANNEL_ID), DISCORD_WEBHOOK_URL=fake.webhook_url
    )
    notifiers = destinations(settings)
    async with running(fake, settings, clock, store):
        await command(fake)
        await fake.wait_until(lambda: len(fake.followups) == 1)
        await command(fake, share=True)
        for notifier in notifiers:
            await notifier.post(alert())
        fake.fail(POST_WEBHOOK, status=429)
        fake.fail(POST_MESSAGE, status=403)
        errors = []
        for notifier in notifiers:
            with pytest.raises(DeliveryError) as raised:
                await notifier.post(alert())
            errors.append(raised.value.message)
    checks = await doctor_checks(settings.discord)

    said = [
        caplog.text,
        *errors,
        *(f"{c.detail} {c.fix}" for c in checks),
        json.dumps([c.data for c in fake.callbacks]),
        json.dumps([m.message for m in fake.followups + fake.channel_messages]),
        json.dumps([m.message for m in fake.webhook_messages]),
    ]
    assert [n.name for n in notifiers] == [f"discord:{CHANNEL_ID}", "discord-webhook"]
    assert len(fake.channel_messages) == len(fake.webhook_messages) == 1
    assert "discord.http" in caplog.text  # discord.py's own DEBUG lines were captured
    for text in said:
        assert BOT_TOKEN not in text
        assert WEBHOOK_TOKEN not in text
