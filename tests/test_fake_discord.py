"""The Discord fake answers the real discord.py client the way Discord does."""

from __future__ import annotations

# First: the fake imports discord.py with its audioop DeprecationWarning silenced.
from tests.fakes.discord import BOT_TOKEN, CHANNEL_ID, GUILD_ID, FakeDiscord, point_discord_at  # isort: skip

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
import discord
import pytest
from discord import app_commands

Answer = Callable[[discord.Interaction, bool, str | None], Awaitable[None]]

ACCOUNTS = ["team", "personal", "testing"]


def usage_report(share: bool, account: str | None) -> discord.Embed:
    embed = discord.Embed(title="Claude usage", description=f"account: {account or 'all'}")
    embed.add_field(name="shared", value=str(share))
    return embed


async def answer_at_once(
    interaction: discord.Interaction, share: bool, account: str | None
) -> None:
    await interaction.response.send_message(embed=usage_report(share, account), ephemeral=True)


async def answer_later(interaction: discord.Interaction, share: bool, account: str | None) -> None:
    await interaction.response.defer(ephemeral=True, thinking=True)
    await interaction.followup.send(embed=usage_report(share, account), ephemeral=True)
    await interaction.edit_original_response(content="done")


class UsageBot(discord.Client):
    """A client with the one /claude-usage command, answered by ``answer``."""

    def __init__(self, *, intents: discord.Intents, answer: Answer = answer_at_once) -> None:
        # Without the short guild_ready_timeout, on_ready waits 2 s for GUILD_CREATEs.
        super().__init__(intents=intents, guild_ready_timeout=0.05)
        self.tree = app_commands.CommandTree(self)

        @self.tree.command(name="claude-usage", description="Show the Claude quota")
        async def claude_usage(
            interaction: discord.Interaction, share: bool = False, account: str | None = None
        ) -> None:
            await answer(interaction, share, account)

        @claude_usage.autocomplete("account")
        async def accounts(
            interaction: discord.Interaction, current: str
        ) -> list[app_commands.Choice[str]]:
            return [app_commands.Choice(name=a, value=a) for a in ACCOUNTS if a.startswith(current)]

    async def before_identify_hook(self, shard_id: int | None, *, initial: bool = False) -> None:
        """Re-IDENTIFY at once: discord.py's default sleeps 5 s first."""


@pytest.fixture
async def fake() -> AsyncIterator[FakeDiscord]:
    async with FakeDiscord() as fake:
        with point_discord_at(fake):
            yield fake


@contextlib.asynccontextmanager
async def running(client: discord.Client, fake: FakeDiscord) -> AsyncIterator[None]:
    async with client:
        started = asyncio.create_task(client.start(BOT_TOKEN))
        try:
            await fake.wait_until_ready()
            await asyncio.wait_for(client.wait_until_ready(), timeout=2)
            yield
        finally:
            await client.close()
            await started


@pytest.fixture
async def bot(fake: FakeDiscord) -> AsyncIterator[UsageBot]:
    client = UsageBot(intents=discord.Intents.none())
    async with running(client, fake):
        await client.tree.sync()
        yield client


@pytest.mark.parametrize(
    ("intents", "guild_available"),
    [(discord.Intents.none(), False), (discord.Intents.default(), True)],
    ids=["no intents", "default intents"],
)
async def test_client_becomes_ready_and_heartbeats(
    fake: FakeDiscord, intents: discord.Intents, guild_available: bool
) -> None:
    fake.heartbeat_interval = 0.05
    client = UsageBot(intents=intents)
    async with running(client, fake):
        guild = client.get_guild(GUILD_ID)
        assert guild is not None
        assert guild.unavailable is not guild_available
        assert (guild.get_channel(CHANNEL_ID) is not None) is guild_available
        await fake.wait_until(lambda: fake.heartbeat_count >= 3)
    assert fake.identify_count == 1
    assert fake.identifies[0]["intents"] == intents.value
    assert fake.gateway_connections[0].startswith("/gateway?v=10&encoding=json")


async def test_sync_puts_the_command_globally_and_in_a_guild(
    fake: FakeDiscord, bot: UsageBot
) -> None:
    guild = discord.Object(GUILD_ID)
    bot.tree.copy_global_to(guild=guild)
    await bot.tree.sync(guild=guild)

    assert [(sync.guild_id, sync.names) for sync in fake.command_syncs] == [
        (None, ["claude-usage"]),
        (GUILD_ID, ["claude-usage"]),
    ]
    options = {
        o["name"]: (o["type"], o.get("autocomplete"))
        for o in fake.command_syncs[0].commands[0]["options"]
    }
    assert options == {"share": (5, None), "account": (3, True)}
    assert all(
        r.authorization == f"Bot {BOT_TOKEN}"
        for r in fake.requests_to("PUT /applications/{id}/commands")
    )


async def test_command_answers_with_an_ephemeral_embed(fake: FakeDiscord, bot: UsageBot) -> None:
    callback = await fake.dispatch_command(
        "claude-usage", options={"share": True, "account": "team"}
    )

    assert callback.type == 4
    assert callback.flags == 64
    assert callback.embeds[0]["title"] == "Claude usage"
    assert callback.embeds[0]["description"] == "account: team"
    assert callback.embeds[0]["fields"][0]["value"] == "True"


async def test_deferred_answer_then_followup_and_edit(fake: FakeDiscord) -> None:
    client = UsageBot(intents=discord.Intents.none(), answer=answer_later)
    async with running(client, fake):
        await client.tree.sync()
        callback = await fake.dispatch_command("claude-usage")
        await fake.wait_until(lambda: len(fake.original_edits) == 1)

    assert (callback.type, callback.flags) == (5, 64)
    [followup] = fake.followups
    assert followup.flags == 64
    assert followup.embeds[0]["description"] == "account: all"
    assert fake.original_edits[0].content == "done"


async def test_a_command_in_a_thread_comes_from_a_thread_of_its_channel(fake: FakeDiscord) -> None:
    seen: list[object] = []

    async def note_the_channel(
        interaction: discord.Interaction, share: bool, account: str | None
    ) -> None:
        seen.append(interaction.channel)
        await answer_at_once(interaction, share, account)

    client = UsageBot(intents=discord.Intents.none(), answer=note_the_channel)
    async with running(client, fake):
        await client.tree.sync()
        thread_id = fake.add_thread(parent_id=CHANNEL_ID)
        callback = await fake.dispatch_command("claude-usage", channel_id=thread_id)

    assert callback.type == 4
    [thread] = seen
    assert isinstance(thread, discord.Thread)
    assert (thread.id, thread.parent_id) == (thread_id, CHANNEL_ID)


async def test_autocomplete_offers_matching_accounts(fake: FakeDiscord, bot: UsageBot) -> None:
    callback = await fake.dispatch_autocomplete("claude-usage", focused="account", value="te")

    assert callback.type == 8
    assert callback.choices == [
        {"name": "team", "value": "team"},
        {"name": "testing", "value": "testing"},
    ]


async def test_webhook_message_arrives(fake: FakeDiscord) -> None:
    async with aiohttp.ClientSession() as session:
        webhook = discord.Webhook.from_url(fake.webhook_url, session=session)
        sent = await webhook.send(embed=usage_report(False, None), username="Quota", wait=True)

    [message] = fake.webhook_messages
    assert sent.id == message.id
    assert message.embeds[0]["title"] == "Claude usage"
    assert message.message["author"]["username"] == "Quota"


async def test_rate_limited_message_is_retried_and_arrives_once(
    fake: FakeDiscord, bot: UsageBot
) -> None:
    fake.fail("POST /channels/{channel_id}/messages", status=429, retry_after=0.1)
    channel = await bot.fetch_channel(CHANNEL_ID)
    assert isinstance(channel, discord.TextChannel)

    await channel.send("quota at 80%")

    assert [r.status for r in fake.requests_to("POST /channels/{id}/messages")] == [429, 200]
    assert [m.content for m in fake.channel_messages] == ["quota at 80%"]


@pytest.mark.parametrize(
    ("status", "error", "code"),
    [(403, discord.Forbidden, 50001), (404, discord.NotFound, 10003)],
)
async def test_refused_message_raises(
    fake: FakeDiscord, bot: UsageBot, status: int, error: type[discord.HTTPException], code: int
) -> None:
    fake.fail("POST /channels/{id}/messages", status=status)

    with pytest.raises(error) as raised:
        await bot.get_partial_messageable(CHANNEL_ID).send("quota at 80%")

    assert raised.value.code == code
    assert fake.channel_messages == []


async def test_server_error_is_retried(fake: FakeDiscord, bot: UsageBot) -> None:
    fake.fail("POST /channels/{id}/messages", status=500)

    await bot.get_partial_messageable(CHANNEL_ID).send("quota at 80%")  # after discord.py's 1 s

    assert [r.status for r in fake.requests_to("POST /channels/{id}/messages")] == [500, 200]


async def test_wrong_token_fails_login() -> None:
    async with FakeDiscord(bot_token="the-right-one") as fake:
        with point_discord_at(fake):
            client = discord.Client(intents=discord.Intents.none())
            async with client:
                with pytest.raises(discord.LoginFailure):
                    await client.login(BOT_TOKEN)


async def test_dropped_gateway_is_resumed_and_missed_events_replayed(
    fake: FakeDiscord, bot: UsageBot
) -> None:
    await fake.drop_gateway()
    # Sent before the client is back: the RESUME replays it.
    callback = await fake.dispatch_command("claude-usage")

    assert callback.type == 4
    assert (fake.identify_count, fake.resume_count) == (1, 1)
    assert fake.replayed == ["INTERACTION_CREATE"]
    assert fake.gateway_connections[-1].startswith("/resume-gateway?")


async def test_session_lost_with_the_connection_is_identified_again(
    fake: FakeDiscord, bot: UsageBot
) -> None:
    await fake.drop_gateway(resumable=False)
    await fake.wait_until(lambda: fake.identify_count == 2)
    await fake.wait_until_ready()

    callback = await fake.dispatch_command("claude-usage")

    assert callback.type == 4
    assert fake.resume_count == 1  # refused with INVALID_SESSION
