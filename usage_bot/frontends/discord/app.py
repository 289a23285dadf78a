"""The Discord front end: ``/claude-usage`` as an application command, on discord.py 2.x
inside the bot's one asyncio loop, with no privileged intent (only ``guilds``).

:meth:`DiscordFrontEnd.start` logs in and registers the command (:mod:`.sync`), then the
gateway connection (and its reconnects) runs in a task. This module only translates: an
interaction becomes a :class:`~usage_bot._command.Caller` and the grammar's words
(:func:`~usage_bot._command.words_of`), the :class:`~usage_bot.frontends.CommandCore`
decides and answers, and :mod:`.render` lays the reply out.

The 3-second deadline: a reply that needs nothing from the upstream is sent at once;
otherwise the interaction is deferred at once ("thinking") and the reply follows when the
usage service answers. Any failure still answers, in one sentence.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable

import aiohttp
import discord
from discord import app_commands
from discord.gateway import DiscordWebSocket

from usage_bot._clock import Clock
from usage_bot._command import COMMAND, AccessPolicy, Caller, Plan, Refused, refusal, words_of
from usage_bot._config import DiscordConfig
from usage_bot._events import CommandOutcome, Observer
from usage_bot._exceptions import FrontEndFailed
from usage_bot._texts import (
    ACCOUNT_DESCRIPTION,
    COMMAND_DESCRIPTION,
    FAILED,
    SHARE_DESCRIPTION,
    STOPPING,
)
from usage_bot._timing import RECONNECT_GRACE, STOP_GRACE
from usage_bot.frontends import Answers, CommandCore, ReconnectGrace, Reply
from usage_bot.frontends.discord.notify import LOGIN_FIX, unreachable
from usage_bot.frontends.discord.render import DiscordMessage, render_reply
from usage_bot.frontends.discord.shim import describe, new_client, point_discord_at
from usage_bot.frontends.discord.sync import sync_if_changed
from usage_bot.state import KeyValue

log = logging.getLogger(__name__)

# Logging in and registering the command: discord.py retries 5xx for up to 25 s itself.
START_TIMEOUT = 30.0
_MAX_CHOICES = 25  # Discord shows at most 25 autocomplete choices


class DiscordFrontEnd:
    """``/claude-usage`` in Discord.

    :meth:`start` logs in and registers the command (raising :class:`FrontEndFailed` with
    the fix when it cannot), then keeps the gateway connected in a task until :meth:`stop`.
    ``store`` remembers the last command sync; every answer is told to ``observer``.
    """

    name = "discord"

    def __init__(
        self,
        config: DiscordConfig,
        *,
        commands: CommandCore,
        clock: Clock,
        store: KeyValue,
        observer: Observer,
        guild_ready_timeout: float = 2.0,
    ) -> None:
        if config.bot_token is None:
            raise FrontEndFailed(
                "The Discord front end needs DISCORD_BOT_TOKEN: set the bot token."
            )
        self._config = config
        self._token = config.bot_token
        self._commands = commands
        self._store = store
        self._policy = access_policy(config)
        self._guild = discord.Object(config.guild_id) if config.guild_id else None
        self._client = new_client(
            guild_ready_timeout=guild_ready_timeout,
            # Mentions stay inert whatever a label or account name holds.
            allowed_mentions=discord.AllowedMentions.none(),
        )
        self._tree = self._command_tree()
        self._gateway: asyncio.Task[None] | None = None
        self._running = False
        self._answers = Answers("discord", observer)
        self._grace = ReconnectGrace(clock, RECONNECT_GRACE)

    async def start(self) -> None:
        if self._gateway is not None:
            raise RuntimeError("DiscordFrontEnd.start() was already called")
        point_discord_at(self._config)
        try:
            async with asyncio.timeout(START_TIMEOUT):
                await self._login()
                await self._register()
        except TimeoutError:
            await self._client.close()
            raise FrontEndFailed(
                f"Discord did not let the bot log in and register /{COMMAND} within "
                f"{START_TIMEOUT:.0f} s; try again later, and check DISCORD_API_BASE_URL."
            ) from None
        except BaseException:
            await self._client.close()
            raise
        log.info(
            "discord: logged in as %s (application %s); /%s registered %s",
            self._client.user,
            self._client.application_id,
            COMMAND,
            self._place,
        )
        self._grace.count_from_now()
        self._running = True
        self._gateway = asyncio.create_task(self._stay_connected(), name="discord-gateway")

    async def stop(self) -> None:
        self._running = False
        await self._answers.finish(STOP_GRACE)
        await self._client.close()
        if self._gateway is not None:
            # Closing ends the connection loop, unless it sleeps before a reconnect.
            done, _ = await asyncio.wait({self._gateway}, timeout=STOP_GRACE)
            if not done:
                self._gateway.cancel()
                await asyncio.gather(self._gateway, return_exceptions=True)

    def healthy(self) -> bool:
        if not self._running or self._gateway is None or self._gateway.done():
            return False
        ws: DiscordWebSocket | None = self._client.ws
        return self._grace.healthy(ws is not None and ws.open)

    @property
    def _place(self) -> str:
        return f"in server {self._guild.id}" if self._guild else "globally"

    # -- connection ----------------------------------------------------------------------

    async def _login(self) -> None:
        try:
            await self._client.login(self._token.reveal())
        except discord.LoginFailure:
            raise FrontEndFailed(f"Discord rejected DISCORD_BOT_TOKEN: {LOGIN_FIX}") from None
        except discord.HTTPException as exc:
            raise FrontEndFailed(
                f"Discord's API failed while the bot logged in ({describe(exc)}); try again "
                "later, and check DISCORD_API_BASE_URL."
            ) from None
        except (aiohttp.ClientError, OSError) as exc:
            raise FrontEndFailed(unreachable(self._config.api_base_url, exc)) from None
        app = self._client.application
        if app is not None and app.interactions_endpoint_url:
            log.warning(
                "discord: the application has an Interactions Endpoint URL, so Discord sends "
                "/%s there and not to the bot: remove it in the Developer Portal (General "
                "Information).",
                COMMAND,
            )

    async def _register(self) -> None:
        application_id = self._client.application_id
        if application_id is None:  # login sets it; checked for the type checker
            raise FrontEndFailed("Discord did not say which application the bot belongs to.")
        try:
            synced = await sync_if_changed(
                self._tree, application_id=application_id, guild=self._guild, store=self._store
            )
        except discord.Forbidden as exc:
            raise FrontEndFailed(self._sync_refused(exc)) from None
        except app_commands.CommandSyncFailure as exc:
            raise FrontEndFailed(
                f"Discord refused the definition of /{COMMAND} ({describe(exc)}); this is a "
                "bug in usage-bot: please report it."
            ) from None
        except (discord.HTTPException, aiohttp.ClientError, OSError) as exc:
            # The command Discord already has keeps working; the next start tries again.
            log.warning(
                "discord: could not register /%s (%s); it keeps its previous definition "
                "until the next start.",
                COMMAND,
                describe(exc),
            )
            return
        if synced:
            log.info("discord: synced /%s %s", COMMAND, self._place)

    def _sync_refused(self, exc: discord.HTTPException) -> str:
        guild = self._config.guild_id
        if guild is None:
            return f"Discord refused to register /{COMMAND} ({describe(exc)}): {LOGIN_FIX}"
        return (
            f"Discord refused to register /{COMMAND} in server {guild} ({describe(exc)}): add "
            "the bot to that server with the invite URL from `usage-bot doctor` (it asks for "
            "the applications.commands scope), or correct DISCORD_GUILD_ID."
        )

    async def _stay_connected(self) -> None:
        try:
            await self._client.connect(reconnect=True)
        except discord.ConnectionClosed as exc:
            if exc.code == 4004:
                log.error("discord: the gateway rejected DISCORD_BOT_TOKEN: %s", LOGIN_FIX)
            else:
                log.error(
                    "discord: the gateway closed the connection for good (code %s); restart "
                    "the bot, and check DISCORD_GATEWAY_URL.",
                    exc.code,
                )
        except Exception:
            log.exception("discord: the gateway connection failed for good")

    # -- the command ---------------------------------------------------------------------

    def _command_tree(self) -> app_commands.CommandTree[discord.Client]:
        tree: app_commands.CommandTree[discord.Client] = app_commands.CommandTree(self._client)

        @app_commands.command(name=COMMAND, description=COMMAND_DESCRIPTION)
        @app_commands.describe(share=SHARE_DESCRIPTION, account=ACCOUNT_DESCRIPTION)
        async def claude_usage(
            interaction: discord.Interaction, share: bool = False, account: str | None = None
        ) -> None:
            await self._answers.run(
                self._answer(interaction, words_of(share=share, account=account)),
                failed=lambda: _say(interaction, FAILED),
            )

        @claude_usage.autocomplete("account")
        async def accounts(
            interaction: discord.Interaction, current: str
        ) -> list[app_commands.Choice[str]]:
            if refusal(self._policy, caller_of(interaction)) is not None:
                return []
            typed = current.strip().lower()
            matching = [a for a in self._commands.accounts if typed in a.lower()]
            return [app_commands.Choice(name=a, value=a) for a in matching[:_MAX_CHOICES]]

        @tree.error
        async def on_error(
            interaction: discord.Interaction, error: app_commands.AppCommandError
        ) -> None:
            log.error("discord: /%s could not run: %s", COMMAND, error)
            await _say(interaction, FAILED)

        tree.add_command(claude_usage, guild=self._guild)
        return tree

    async def _answer(self, interaction: discord.Interaction, words: str) -> CommandOutcome:
        if not self._running:
            await interaction.response.send_message(STOPPING, ephemeral=True)
            return "refused"
        caller = caller_of(interaction)
        decided = self._commands.plan(words, caller=caller, policy=self._policy)
        if isinstance(decided, Refused):
            log.info(
                "discord: refused /%s to user %s in server %s, channel %s (%s)",
                COMMAND,
                caller.user,
                caller.server,
                caller.channel,
                decided.reason,
            )
        # Discord waits for nothing: what needs the upstream is deferred, then followed up.
        given = await self._commands.answer(decided, platform="discord", within=0)
        if given.later is None:
            await _send(interaction, render_reply(given.now))
            return "refused" if given.now.refused else "ok"
        shared = isinstance(decided, Plan) and decided.visibility == "channel"
        try:
            await interaction.response.defer(ephemeral=not shared, thinking=True)
        except BaseException:
            _discard(given.later)
            raise
        await _follow_up(interaction, render_reply(await given.later))
        return "ok"


def access_policy(config: DiscordConfig) -> AccessPolicy:
    """``DISCORD_ALLOWED_GUILDS`` and ``DISCORD_ALLOWED_CHANNELS`` as the grammar's policy."""
    return AccessPolicy(
        channels=frozenset(str(channel) for channel in config.allowed_channels),
        servers=frozenset(str(guild) for guild in config.allowed_guilds),
    )


def caller_of(interaction: discord.Interaction) -> Caller:
    """Who used the command where, in Discord's ids; a thread's parent is its channel."""
    channel = interaction.channel
    parent = channel.parent_id if isinstance(channel, discord.Thread) else None
    return Caller(
        "discord",
        user=str(interaction.user.id),
        channel=_id(interaction.channel_id),
        server=_id(interaction.guild_id),
        parent_channel=_id(parent),
    )


def _id(snowflake: int | None) -> str | None:
    return None if snowflake is None else str(snowflake)


def _embeds(message: DiscordMessage) -> list[discord.Embed]:
    return [discord.Embed.from_dict(embed) for embed in message.embeds]


async def _send(interaction: discord.Interaction, message: DiscordMessage) -> None:
    await interaction.response.send_message(
        message.content or None, embeds=_embeds(message), ephemeral=message.ephemeral
    )


async def _follow_up(interaction: discord.Interaction, message: DiscordMessage) -> None:
    if message.content:
        await interaction.followup.send(
            message.content, embeds=_embeds(message), ephemeral=message.ephemeral
        )
    else:
        await interaction.followup.send(embeds=_embeds(message), ephemeral=message.ephemeral)


def _discard(later: Awaitable[Reply]) -> None:
    """Close a follow-up that will never be sent, so that it is not left un-awaited."""
    if inspect.iscoroutine(later):
        later.close()


async def _say(interaction: discord.Interaction, text: str) -> None:
    """Answer with one ephemeral sentence, however far the interaction got; never raises."""
    try:
        if interaction.response.is_done():
            await interaction.followup.send(text, ephemeral=True)
        else:
            await interaction.response.send_message(text, ephemeral=True)
    except (discord.HTTPException, aiohttp.ClientError, OSError) as exc:
        log.warning("discord: could not tell the user that /%s failed: %s", COMMAND, describe(exc))
