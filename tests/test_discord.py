"""The Discord front end: the real discord.py against FakeDiscord, the real usage service
against the simulated upstream."""

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
import time
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import write_login
from usage_bot._app import Core, build_core
from usage_bot._clock import FakeClock
from usage_bot._config import Secret, Settings
from usage_bot._exceptions import DeliveryError, UsageBotError
from usage_bot._notify import AlertMessage, Notifier
from usage_bot._service import UsageService
from usage_bot._simulator import SimulatedUpstream
from usage_bot.frontends import CommandListener
from usage_bot.frontends.discord.app import (
    SYNC_STATE_KEY,
    DiscordChannelNotifier,
    DiscordFrontEnd,
    DiscordWebhookNotifier,
    KeyValueStore,
    command_fingerprint,
    discord_notifiers,
    doctor_checks,
    refusal,
)
from usage_bot.frontends.discord.render import (
    FAILED,
    REFUSED_CHANNEL,
    REFUSED_DM,
    REFUSED_GUILD,
)
from usage_bot.state.sqlite import SQLiteStore

EPHEMERAL = 64
OTHER_GUILD = 1_300_000_000_000_000_001
OTHER_CHANNEL = 1_300_000_000_000_000_002
INVITE = (
    f"https://discord.com/oauth2/authorize?client_id={APPLICATION_ID}"
    "&scope=bot+applications.commands&permissions=19456"
)
PUT_GLOBAL = "PUT /applications/{id}/commands"
PUT_GUILD = "PUT /applications/{id}/guilds/{id}/commands"
POST_MESSAGE = "POST /channels/{id}/messages"
POST_WEBHOOK = "POST /webhooks/{id}/{token}"


class MemoryStore:
    """The state store's two small methods, in a dict."""

    def __init__(self) -> None:
        self.values: dict[str, str] = {}

    def get_value(self, key: str) -> str | None:
        return self.values.get(key)

    def set_value(self, key: str, value: str) -> None:
        self.values[key] = value


class AsyncMemoryStore:
    """The same with ``async`` methods, as the SQLite store has them."""

    def __init__(self) -> None:
        self.values: dict[str, str] = {}

    async def get_value(self, key: str) -> str | None:
        return self.values.get(key)

    async def set_value(self, key: str, value: str) -> None:
        self.values[key] = value


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


@contextlib.asynccontextmanager
async def running(
    fake: FakeDiscord,
    settings: Settings,
    clock: FakeClock,
    *,
    store: KeyValueStore | None = None,
    service: UsageService | None = None,
    on_command: CommandListener | None = None,
) -> AsyncIterator[tuple[DiscordFrontEnd, Core]]:
    core = build_core(settings, clock=clock)
    front = DiscordFrontEnd(
        settings,
        service or core.service,
        clock=clock,
        store=store,
        guild_ready_timeout=0.01,
        on_command=on_command,
    )
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


def field_names(embed: dict[str, Any]) -> list[str]:
    return [field["name"] for field in embed.get("fields", [])]


def unix(moment: datetime) -> int:
    return int(moment.timestamp())


# -- /claude-usage -----------------------------------------------------------------------


async def test_command_answers_at_once_from_the_cache_with_every_limit(
    fake: FakeDiscord, settings_for: Callable[..., Settings], clock: FakeClock
) -> None:
    async with running(fake, settings_for(), clock) as (_, core):
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


async def test_every_answer_is_reported_for_the_metrics(
    fake: FakeDiscord, settings_for: Callable[..., Settings], clock: FakeClock
) -> None:
    heard: list[tuple[str, float]] = []
    both = asyncio.Event()

    def listen(outcome: str, seconds: float) -> None:
        heard.append((outcome, seconds))
        if len(heard) == 2:
            both.set()

    settings = settings_for(DISCORD_ALLOWED_CHANNELS=str(CHANNEL_ID))
    async with running(fake, settings, clock, on_command=listen):
        await command(fake)
        await fake.wait_until(lambda: len(fake.followups) == 1)
        await fake.dispatch_command("claude-usage", channel_id=OTHER_CHANNEL)
        # The bot reports after its answer is sent, so the fake sees nothing to wake on.
        await asyncio.wait_for(both.wait(), timeout=3)

    assert [outcome for outcome, _ in heard] == ["ok", "refused"]
    assert all(0 <= seconds < 3 for _, seconds in heard)


async def test_share_answers_publicly(
    fake: FakeDiscord, settings_for: Callable[..., Settings], clock: FakeClock
) -> None:
    async with running(fake, settings_for(), clock) as (_, core):
        await core.service.get("default")
        callback, _ = await command(fake, share=True)

    assert callback.type == 4
    assert callback.flags & EPHEMERAL == 0
    assert callback.embeds[0]["title"] == "Claude usage: default"


async def test_a_cold_cache_and_a_slow_upstream_defer_then_follow_up(
    fake: FakeDiscord,
    settings_for: Callable[..., Settings],
    clock: FakeClock,
    upstream: SimulatedUpstream,
) -> None:
    upstream.latency = 0.3
    async with running(fake, settings_for(), clock):
        callback, took = await command(fake)
        await fake.wait_until(lambda: len(fake.followups) == 1)

    assert took < 0.3
    assert (callback.type, callback.flags) == (5, EPHEMERAL)
    [followup] = fake.followups
    assert followup.flags == EPHEMERAL
    assert field_names(followup.embeds[0]) == ["5-hour", "Weekly (all models)", "Weekly (Fable)"]


async def test_a_shared_deferred_answer_follows_up_publicly(
    fake: FakeDiscord, settings_for: Callable[..., Settings], clock: FakeClock
) -> None:
    async with running(fake, settings_for(), clock):
        callback, _ = await command(fake, share=True)
        await fake.wait_until(lambda: len(fake.followups) == 1)

    assert (callback.type, callback.flags) == (5, 0)
    assert fake.followups[0].flags == 0


async def test_upstream_rate_limit_still_answers_with_the_last_values_and_their_age(
    fake: FakeDiscord,
    settings_for: Callable[..., Settings],
    clock: FakeClock,
    upstream: SimulatedUpstream,
) -> None:
    async with running(fake, settings_for(), clock) as (_, core):
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


async def test_several_accounts_one_account_and_autocomplete(
    fake: FakeDiscord, settings_for: Callable[..., Settings], clock: FakeClock, two_accounts: str
) -> None:
    settings = settings_for(USAGE_BOT_ACCOUNTS=two_accounts)
    async with running(fake, settings, clock) as (_, core):
        await core.service.get_all()
        everyone, _ = await command(fake)
        bob, _ = await command(fake, account="BOB")
        nobody, _ = await command(fake, account="carol")
        typed = await fake.dispatch_autocomplete("claude-usage", focused="account", value="li")
        blank = await fake.dispatch_autocomplete("claude-usage", focused="account", value="")

    assert [e["title"] for e in everyone.embeds] == ["Claude usage: alice", "Claude usage: bob"]
    assert [e["title"] for e in bob.embeds] == ["Claude usage: bob"]
    assert (nobody.type, nobody.flags, nobody.embeds) == (4, EPHEMERAL, [])
    assert nobody.content == "There is no account named carol; the accounts are: alice, bob."
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
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = settings_for()
    core = build_core(settings, clock=clock)
    broken = BrokenService(loaders=core.loaders, client=core.client, clock=clock)
    async with running(fake, settings, clock, service=broken):
        callback, took = await command(fake)
    await core.aclose()

    assert took < 3
    assert (callback.type, callback.flags, callback.content) == (4, EPHEMERAL, FAILED)
    assert "answering /claude-usage failed" in caplog.text


async def test_stop_finishes_answers_under_way(
    fake: FakeDiscord,
    settings_for: Callable[..., Settings],
    clock: FakeClock,
    upstream: SimulatedUpstream,
) -> None:
    upstream.latency = 0.3
    async with running(fake, settings_for(), clock) as (front, _):
        callback, _ = await command(fake)
        await front.stop()  # while the report is still on its way

    assert callback.type == 5
    assert len(fake.followups) == 1
    assert front.healthy() is False


# -- access lists ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("env", "where", "said"),
    [
        ({"DISCORD_ALLOWED_GUILDS": str(OTHER_GUILD)}, {"guild_id": GUILD_ID}, REFUSED_GUILD),
        ({"DISCORD_ALLOWED_GUILDS": str(GUILD_ID)}, {"guild_id": None}, REFUSED_DM),
        (
            {"DISCORD_ALLOWED_CHANNELS": str(CHANNEL_ID)},
            {"guild_id": GUILD_ID, "channel_id": OTHER_CHANNEL},
            REFUSED_CHANNEL,
        ),
    ],
    ids=["other server", "direct message", "other channel"],
)
async def test_access_lists_refuse_politely_elsewhere(
    fake: FakeDiscord,
    settings_for: Callable[..., Settings],
    clock: FakeClock,
    upstream: SimulatedUpstream,
    env: dict[str, str],
    where: dict[str, Any],
    said: str,
) -> None:
    async with running(fake, settings_for(**env), clock):
        callback = await fake.dispatch_command("claude-usage", options={"share": True}, **where)
        choices = await fake.dispatch_autocomplete(
            "claude-usage", focused="account", value="", **where
        )

    assert (callback.type, callback.flags, callback.content) == (4, EPHEMERAL, said)
    assert callback.embeds == []
    assert choices.choices == []
    assert upstream.requests == []


async def test_access_lists_let_the_allowed_place_in(
    fake: FakeDiscord, settings_for: Callable[..., Settings], clock: FakeClock
) -> None:
    env = {"DISCORD_ALLOWED_GUILDS": str(GUILD_ID), "DISCORD_ALLOWED_CHANNELS": str(CHANNEL_ID)}
    async with running(fake, settings_for(**env), clock) as (_, core):
        await core.service.get("default")
        callback = await fake.dispatch_command("claude-usage")

    assert callback.embeds[0]["title"] == "Claude usage: default"


def test_a_thread_counts_as_its_channel(settings_for: Callable[..., Settings]) -> None:
    settings = settings_for(DISCORD_ALLOWED_CHANNELS=str(CHANNEL_ID))

    assert (
        refusal(settings, guild_id=GUILD_ID, channel_id=OTHER_CHANNEL, parent_id=CHANNEL_ID) is None
    )
    assert refusal(settings, guild_id=GUILD_ID, channel_id=OTHER_CHANNEL, parent_id=None) == (
        REFUSED_CHANNEL
    )


# -- command registration ----------------------------------------------------------------


async def test_first_start_syncs_and_an_unchanged_restart_does_not(
    fake: FakeDiscord, settings_for: Callable[..., Settings], clock: FakeClock
) -> None:
    store = MemoryStore()
    settings = settings_for()
    async with running(fake, settings, clock, store=store):
        pass
    async with running(fake, settings, clock, store=store):
        callback, _ = await command(fake)  # the command registered the first time still works

    assert [(s.guild_id, s.names) for s in fake.command_syncs] == [(None, ["claude-usage"])]
    options = {o["name"]: o for o in fake.command_syncs[0].commands[0]["options"]}
    assert (options["share"]["type"], options["account"]["type"]) == (5, 3)
    assert options["account"]["autocomplete"] is True
    assert json.loads(store.values[SYNC_STATE_KEY])["scope"] == "global"
    assert callback.type in (4, 5)


async def test_a_changed_definition_syncs_again(
    fake: FakeDiscord, settings_for: Callable[..., Settings], clock: FakeClock
) -> None:
    store = MemoryStore()
    settings = settings_for()
    async with running(fake, settings, clock, store=store) as (front, _):
        payload = front.command_payload()
    # What an older version with another description would have left behind.
    older = [{**payload[0], "description": "Show the quota"}]
    record = json.loads(store.values[SYNC_STATE_KEY])
    record["hash"] = command_fingerprint(older, application_id=APPLICATION_ID)
    store.values[SYNC_STATE_KEY] = json.dumps(record)

    async with running(fake, settings, clock, store=store):
        pass

    assert len(fake.command_syncs) == 2
    assert command_fingerprint(older, application_id=APPLICATION_ID) != command_fingerprint(
        payload, application_id=APPLICATION_ID
    )
    assert command_fingerprint(payload, application_id=APPLICATION_ID) != command_fingerprint(
        payload, application_id=APPLICATION_ID + 1
    )


async def test_guild_sync_and_moving_back_to_global_removes_the_guild_command(
    fake: FakeDiscord, settings_for: Callable[..., Settings], clock: FakeClock
) -> None:
    store = AsyncMemoryStore()
    async with running(fake, settings_for(DISCORD_GUILD_ID=str(GUILD_ID)), clock, store=store):
        callback = await fake.dispatch_command("claude-usage", guild_id=GUILD_ID)
    async with running(fake, settings_for(), clock, store=store):
        pass

    assert callback.type in (4, 5)
    assert [(s.guild_id, s.names) for s in fake.command_syncs] == [
        (GUILD_ID, ["claude-usage"]),
        (None, ["claude-usage"]),
        (GUILD_ID, []),
    ]


async def test_the_state_store_remembers_the_sync(
    fake: FakeDiscord, settings_for: Callable[..., Settings], clock: FakeClock, tmp_path: Path
) -> None:
    settings = settings_for()
    for _ in range(2):
        store = await SQLiteStore.open(tmp_path / "state.sqlite3")
        try:
            async with running(fake, settings, clock, store=store):
                pass
        finally:
            await store.close()

    assert len(fake.command_syncs) == 1


async def test_without_a_store_every_start_syncs(
    fake: FakeDiscord, settings_for: Callable[..., Settings], clock: FakeClock
) -> None:
    for _ in range(2):
        async with running(fake, settings_for(), clock):
            pass

    assert len(fake.requests_to(PUT_GLOBAL)) == 2


async def test_a_guild_the_bot_is_not_in_stops_start_with_the_fix(
    fake: FakeDiscord, settings_for: Callable[..., Settings], clock: FakeClock
) -> None:
    settings = settings_for(DISCORD_GUILD_ID=str(OTHER_GUILD))
    core = build_core(settings, clock=clock)
    front = DiscordFrontEnd(settings, core.service, clock=clock, guild_ready_timeout=0.01)

    with pytest.raises(UsageBotError) as raised:
        await front.start()
    await core.aclose()

    assert f"in server {OTHER_GUILD}" in raised.value.message
    assert "invite URL from `usage-bot doctor`" in raised.value.message
    assert fake.command_syncs == []
    assert front.healthy() is False


async def test_a_rejected_token_stops_start_with_the_fix(
    settings_for: Callable[..., Settings], clock: FakeClock
) -> None:
    async with FakeDiscord(bot_token="the-right-one") as fake:
        with point_discord_at(fake):
            settings = settings_for(
                DISCORD_API_BASE_URL=fake.api_url, DISCORD_GATEWAY_URL=fake.gateway_url
            )
            core = build_core(settings, clock=clock)
            front = DiscordFrontEnd(settings, core.service, clock=clock)
            with pytest.raises(UsageBotError) as raised:
                await front.start()
            await core.aclose()

    assert raised.value.message.startswith("Discord rejected DISCORD_BOT_TOKEN: ")
    assert "Reset Token" in raised.value.message
    assert BOT_TOKEN not in raised.value.message


async def eventually(condition: Callable[[], bool], *, within: float = 2) -> None:
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, "the condition never held"
        await asyncio.sleep(0.01)


async def test_healthy_while_connected_and_after_a_resume(
    fake: FakeDiscord, settings_for: Callable[..., Settings], clock: FakeClock
) -> None:
    async with running(fake, settings_for(), clock) as (front, _):
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
    with pytest.raises(DeliveryError) as refused:
        await rejected.post(alert())

    assert unknown.value.retryable is False
    assert "check DISCORD_ALERT_CHANNEL_ID" in unknown.value.message
    assert refused.value.retryable is False
    assert "Discord rejected DISCORD_BOT_TOKEN (401" in refused.value.message
    assert "a-revoked-token" not in refused.value.message


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


def test_notifiers_for_a_webhook_only_setup(make_settings: Callable[..., Settings]) -> None:
    url = f"https://discord.com/api/webhooks/{CHANNEL_ID}/{WEBHOOK_TOKEN}"

    only_webhook = discord_notifiers(make_settings(DISCORD_WEBHOOK_URL=url))
    both = discord_notifiers(
        make_settings(
            DISCORD_WEBHOOK_URL=url,
            DISCORD_BOT_TOKEN=BOT_TOKEN,
            DISCORD_ALERT_CHANNEL_ID=str(CHANNEL_ID),
        )
    )

    assert [n.name for n in only_webhook] == ["discord-webhook"]
    assert [n.name for n in both] == [f"discord:{CHANNEL_ID}", "discord-webhook"]
    assert discord_notifiers(make_settings()) == []


async def test_the_front_end_offers_the_configured_destinations(
    fake: FakeDiscord, settings_for: Callable[..., Settings], clock: FakeClock
) -> None:
    settings = settings_for(DISCORD_ALERT_CHANNEL_ID=str(CHANNEL_ID))
    async with running(fake, settings, clock) as (front, _):
        [notifier] = front.notifiers()
        await notifier.post(alert())

    assert notifier.name == f"discord:{CHANNEL_ID}"
    assert len(fake.channel_messages) == 1


# -- doctor ------------------------------------------------------------------------------


async def test_doctor_with_a_good_token_shows_the_bot_and_the_invite_url(
    fake: FakeDiscord, settings_for: Callable[..., Settings]
) -> None:
    settings = settings_for(
        DISCORD_ALERT_CHANNEL_ID=str(CHANNEL_ID), DISCORD_WEBHOOK_URL=fake.webhook_url
    )

    results = {r.name: r for r in await doctor_checks(settings)}

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
    fake: FakeDiscord, settings_for: Callable[..., Settings], clock: FakeClock
) -> None:
    settings = settings_for(DISCORD_GUILD_ID=str(GUILD_ID))
    async with running(fake, settings, clock):
        pass

    [*_, check, channel] = await doctor_checks(settings)

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

    results = {r.name: r for r in await doctor_checks(settings)}

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
            [check] = await doctor_checks(settings)

    assert (check.name, check.verdict) == ("discord: bot token", "fail")
    assert check.fix is not None
    assert "Reset Token" in check.fix
    assert BOT_TOKEN not in check.detail


async def test_doctor_without_discord_says_nothing(make_settings: Callable[..., Settings]) -> None:
    assert await doctor_checks(make_settings()) == []


# -- secrets -----------------------------------------------------------------------------


async def test_no_token_or_webhook_url_in_any_log_line_or_message(
    fake: FakeDiscord,
    settings_for: Callable[..., Settings],
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    settings = settings_for(
        DISCORD_ALERT_CHANNEL_ID=str(CHANNEL_ID), DISCORD_WEBHOOK_URL=fake.webhook_url
    )
    async with running(fake, settings, clock) as (front, _):
        await command(fake)
        await fake.wait_until(lambda: len(fake.followups) == 1)
        await command(fake, share=True)
        for notifier in front.notifiers():
            await notifier.post(alert())
        fake.fail(POST_WEBHOOK, status=429)
        fake.fail(POST_MESSAGE, status=403)
        errors = []
        for notifier in front.notifiers():
            with pytest.raises(DeliveryError) as raised:
                await notifier.post(alert())
            errors.append(raised.value.message)
    checks = await doctor_checks(settings)

    said = [
        caplog.text,
        *errors,
        *(f"{c.detail} {c.fix}" for c in checks),
        json.dumps([c.data for c in fake.callbacks]),
        json.dumps([m.message for m in fake.followups + fake.channel_messages]),
        json.dumps([m.message for m in fake.webhook_messages]),
    ]
    assert len(fake.channel_messages) == len(fake.webhook_messages) == 1
    assert "discord.http" in caplog.text  # discord.py's own DEBUG lines were captured
    for text in said:
        assert BOT_TOKEN not in text
        assert WEBHOOK_TOKEN not in text
