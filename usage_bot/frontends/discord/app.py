"""The Discord front end: ``/claude-usage`` as an application command, the Discord alert
destinations, and the Discord part of ``usage-bot doctor``.

Built on discord.py 2.x inside the bot's one asyncio loop, with no privileged intent (only
``guilds``):
:meth:`DiscordFrontEnd.start` logs in and registers the command, then the gateway
connection (and its reconnects) runs in a task. ``DISCORD_API_BASE_URL`` and
``DISCORD_GATEWAY_URL`` are applied to discord.py's process-wide ``Route.BASE`` and
``DiscordWebSocket.DEFAULT_GATEWAY``.

The 3-second deadline: a command is answered at once from the cache when the usage
service would not have to ask the upstream; otherwise it is deferred at once ("thinking")
and the report follows when the service answers. Any failure still answers, in one
sentence.

Command registration spends Discord's rate limits, so the command is synced only when its
definition, the application or the place (``DISCORD_GUILD_ID``, or global) changed since
the last sync, which the bot's state remembers.

The alert destinations post with one plain HTTP request each, so that a post never sleeps
through discord.py's own retries: the alert scheduler decides when to try again.
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import json
import logging
import math
import re
from collections.abc import Awaitable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import aiohttp
import discord
import yarl
from discord import app_commands
from discord.gateway import DiscordWebSocket

from usage_bot import __version__
from usage_bot._checks import CheckResult
from usage_bot._clock import Clock
from usage_bot._config import Secret, Settings
from usage_bot._exceptions import DeliveryError, UsageBotError
from usage_bot._model import AccountUsage
from usage_bot._notify import AlertMessage, Notifier
from usage_bot._report import build_report
from usage_bot._service import UsageService
from usage_bot.frontends import Answers, CommandListener, CommandOutcome, ReconnectGrace
from usage_bot.frontends.discord.render import (
    ACCOUNT_DESCRIPTION,
    COMMAND,
    COMMAND_DESCRIPTION,
    FAILED,
    REFUSED_CHANNEL,
    REFUSED_DM,
    REFUSED_GUILD,
    SHARE_DESCRIPTION,
    STOPPING,
    render_alert,
    render_reports,
    unknown_account,
)

log = logging.getLogger(__name__)

# Logging in and registering the command: discord.py retries 5xx for up to 25 s itself.
START_TIMEOUT = 30.0
# /healthz stays green while the gateway reconnects; down for longer than this is unhealthy.
RECONNECT_GRACE = 60.0
# stop() waits this long for answers still being prepared before cancelling them.
STOP_GRACE = 5.0
POST_TIMEOUT = 10.0
DOCTOR_TIMEOUT = 10.0
SYNC_STATE_KEY = "discord.command_sync"
# Discord asks for "DiscordBot (URL, version)"; Cloudflare may block other agents.
USER_AGENT = f"DiscordBot (usage-bot, {__version__})"
# What the bot needs in the alert channel, and what the invite URL asks for.
BOT_PERMISSIONS = discord.Permissions(view_channel=True, send_messages=True, embed_links=True)
INVITE_SCOPES = ("bot", "applications.commands")

LOGIN_FIX = (
    "copy a new token from the Developer Portal (your application, Bot, Reset Token) and set "
    "DISCORD_BOT_TOKEN to it."
)
NEEDED_PERMISSIONS = "View Channel, Send Messages and Embed Links"
CHANNEL_FIX = f"give the bot {NEEDED_PERMISSIONS} in that channel."
WEBHOOK_FIX = (
    "the webhook was deleted: make a new one (channel settings, Integrations, Webhooks, New "
    "Webhook, Copy Webhook URL) and set DISCORD_WEBHOOK_URL to it."
)

_WEBHOOK_URL = re.compile(
    r"^https?://(?:ptb\.|canary\.)?discord(?:app)?\.com/api/(?:v\d+/)?webhooks/"
    r"(?P<id>[0-9]{15,21})/(?P<token>[A-Za-z0-9._-]+)/?$"
)
_MISSING_ACCESS, _MISSING_PERMISSIONS = 50001, 50013
_UNKNOWN_CHANNEL, _UNKNOWN_GUILD, _UNKNOWN_WEBHOOK = 10003, 10004, 10015
_INVALID_WEBHOOK_TOKEN = 50027
# Channel types a bot can post a message in: text, announcement, threads, voice text chat.
_MESSAGEABLE_CHANNELS = frozenset({0, 2, 5, 10, 11, 12, 13})


class KeyValueStore(Protocol):
    """Where the front end remembers its last command sync: the bot's state store.

    Either kind of method works: plain, or ``async`` (as :class:`usage_bot.state.StateStore`).
    """

    def get_value(self, key: str) -> str | Awaitable[str | None] | None: ...

    def set_value(self, key: str, value: str) -> Awaitable[None] | None: ...


def apply_discord_urls(settings: Settings) -> None:
    """Send discord.py's REST calls and gateway connection where the settings say."""
    discord.http.Route.BASE = settings.discord.api_base_url
    DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(settings.discord.gateway_url)


def _new_client(**options: Any) -> discord.Client:
    """A client with the one intent it needs, ``guilds``, which is not privileged (without
    it discord.py warns at every start), and no warnings about voice, which the bot never
    uses."""
    discord.VoiceClient.warn_nacl = discord.VoiceClient.warn_dave = False
    return discord.Client(intents=discord.Intents(guilds=True), **options)


def refusal(
    settings: Settings, *, guild_id: int | None, channel_id: int | None, parent_id: int | None
) -> str | None:
    """Why ``/claude-usage`` may not be used here, or None; a thread counts as its channel."""
    guilds = settings.discord.allowed_guilds
    if guilds and guild_id is None:
        return REFUSED_DM
    if guilds and guild_id not in guilds:
        return REFUSED_GUILD
    channels = settings.discord.allowed_channels
    if channels and channel_id not in channels and (parent_id is None or parent_id not in channels):
        return REFUSED_CHANNEL
    return None


def command_fingerprint(commands: Sequence[dict[str, Any]], *, application_id: int) -> str:
    """A hash of the commands' definitions as Discord gets them, for this application."""
    canonical = json.dumps(
        {"application_id": application_id, "commands": list(commands)},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        default=str,
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class _SyncRecord:
    """What the last sync put where: ``scope`` is ``"global"`` or ``"guild:<id>"``."""

    application_id: int
    scope: str
    fingerprint: str

    def dump(self) -> str:
        return json.dumps(
            {"application_id": self.application_id, "scope": self.scope, "hash": self.fingerprint}
        )

    @classmethod
    def load(cls, raw: str | None) -> _SyncRecord | None:
        if not raw:
            return None
        try:
            data = json.loads(raw)
            return cls(int(data["application_id"]), str(data["scope"]), str(data["hash"]))
        except (ValueError, TypeError, KeyError):
            return None


# -- the front end -----------------------------------------------------------------------


class DiscordFrontEnd:
    """``/claude-usage`` in Discord; :meth:`notifiers` are its alert destinations.

    :meth:`start` logs in and registers the command (raising :class:`UsageBotError` with
    the fix when it cannot), then keeps the gateway connected in a task until :meth:`stop`.
    """

    name = "discord"

    def __init__(
        self,
        settings: Settings,
        service: UsageService,
        *,
        clock: Clock,
        store: KeyValueStore | None = None,
        guild_ready_timeout: float = 2.0,
        on_command: CommandListener | None = None,
    ) -> None:
        if settings.discord.bot_token is None:
            raise UsageBotError("The Discord front end needs DISCORD_BOT_TOKEN: set the bot token.")
        self._settings = settings
        self._token = settings.discord.bot_token
        self._service = service
        self._clock = clock
        self._store = store
        self._guild = (
            discord.Object(settings.discord.guild_id) if settings.discord.guild_id else None
        )
        self._client = _new_client(
            guild_ready_timeout=guild_ready_timeout,
            # Mentions stay inert whatever a label or account name holds.
            allowed_mentions=discord.AllowedMentions.none(),
        )
        self._tree = self._command_tree()
        self._notifiers = discord_notifiers(settings)
        self._gateway: asyncio.Task[None] | None = None
        self._running = False
        self._answers = Answers(on_command)
        self._grace = ReconnectGrace(clock, RECONNECT_GRACE)

    async def start(self) -> None:
        if self._gateway is not None:
            raise RuntimeError("DiscordFrontEnd.start() was already called")
        apply_discord_urls(self._settings)
        try:
            async with asyncio.timeout(START_TIMEOUT):
                await self._login()
                await self._register()
        except TimeoutError:
            await self._client.close()
            raise UsageBotError(
                f"Discord did not let the bot log in and register /{COMMAND} within "
                f"{START_TIMEOUT:.0f} s; try again later, and check DISCORD_API_BASE_URL."
            ) from None
        except BaseException:
            await self._client.close()
            raise
        user = self._client.user
        log.info(
            "discord: logged in as %s (application %s); /%s registered %s",
            user,
            self._client.application_id,
            COMMAND,
            _place(self._guild),
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

    def notifiers(self) -> Sequence[Notifier]:
        return self._notifiers

    # -- connection --------------------------------------------------------------------

    async def _login(self) -> None:
        try:
            await self._client.login(self._token.reveal())
        except discord.LoginFailure:
            raise UsageBotError(f"Discord rejected DISCORD_BOT_TOKEN: {LOGIN_FIX}") from None
        except discord.HTTPException as exc:
            raise UsageBotError(
                f"Discord's API failed while the bot logged in ({_describe(exc)}); try again "
                "later, and check DISCORD_API_BASE_URL."
            ) from None
        except (aiohttp.ClientError, OSError) as exc:
            raise _unreachable(self._settings, exc) from None
        app = self._client.application
        if app is not None and app.interactions_endpoint_url:
            log.warning(
                "discord: the application has an Interactions Endpoint URL, so Discord sends "
                "/%s there and not to the bot: remove it in the Developer Portal (General "
                "Information).",
                COMMAND,
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

    # -- the command -------------------------------------------------------------------

    def _command_tree(self) -> app_commands.CommandTree[discord.Client]:
        tree: app_commands.CommandTree[discord.Client] = app_commands.CommandTree(self._client)

        @app_commands.command(name=COMMAND, description=COMMAND_DESCRIPTION)
        @app_commands.describe(share=SHARE_DESCRIPTION, account=ACCOUNT_DESCRIPTION)
        async def claude_usage(
            interaction: discord.Interaction, share: bool = False, account: str | None = None
        ) -> None:
            await self._on_command(interaction, share=share, account=account)

        @claude_usage.autocomplete("account")
        async def accounts(
            interaction: discord.Interaction, current: str
        ) -> list[app_commands.Choice[str]]:
            return self._complete_account(interaction, current)

        @tree.error
        async def on_error(
            interaction: discord.Interaction, error: app_commands.AppCommandError
        ) -> None:
            log.error("discord: /%s could not run: %s", COMMAND, error)
            await _say(interaction, FAILED)

        tree.add_command(claude_usage, guild=self._guild)
        return tree

    def command_payload(self) -> list[dict[str, Any]]:
        """The command's definition as it is synced (for the sync fingerprint)."""
        return [c.to_dict(self._tree) for c in self._tree.get_commands(guild=self._guild)]

    async def _register(self) -> None:
        application_id = self._client.application_id
        if application_id is None:  # login sets it; checked for the type checker
            raise UsageBotError("Discord did not say which application the bot belongs to.")
        scope = f"guild:{self._guild.id}" if self._guild else "global"
        wanted = _SyncRecord(
            application_id,
            scope,
            command_fingerprint(self.command_payload(), application_id=application_id),
        )
        last = _SyncRecord.load(await self._remembered())
        if last == wanted:
            log.debug("discord: /%s is unchanged since the last sync", COMMAND)
            return
        try:
            await self._tree.sync(guild=self._guild)
        except discord.Forbidden as exc:
            raise UsageBotError(_sync_refused(self._settings, exc)) from None
        except app_commands.CommandSyncFailure as exc:
            raise UsageBotError(
                f"Discord refused the definition of /{COMMAND} ({_describe(exc)}); this is a "
                "bug in usage-bot: please report it."
            ) from None
        except (discord.HTTPException, aiohttp.ClientError, OSError) as exc:
            # The command Discord already has keeps working; the next start tries again.
            log.warning(
                "discord: could not register /%s (%s); it keeps its previous definition "
                "until the next start.",
                COMMAND,
                _describe(exc),
            )
            return
        log.info("discord: synced /%s %s", COMMAND, _place(self._guild))
        if last is not None and last.application_id == application_id and last.scope != scope:
            await self._unregister(application_id, last.scope)
        await self._remember(wanted.dump())

    async def _unregister(self, application_id: int, scope: str) -> None:
        """Remove the command from where an earlier configuration put it."""
        http = self._client.http
        try:
            if scope == "global":
                await http.bulk_upsert_global_commands(application_id, payload=[])
            else:
                guild_id = int(scope.removeprefix("guild:"))
                await http.bulk_upsert_guild_commands(application_id, guild_id, payload=[])
        except (discord.HTTPException, aiohttp.ClientError, OSError, ValueError) as exc:
            log.warning(
                "discord: could not remove the old /%s (%s): %s", COMMAND, scope, _describe(exc)
            )

    async def _remembered(self) -> str | None:
        if self._store is None:
            return None
        try:
            value = self._store.get_value(SYNC_STATE_KEY)
            return await value if inspect.isawaitable(value) else value
        except Exception:
            log.warning("discord: cannot read the last command sync; syncing", exc_info=True)
            return None

    async def _remember(self, value: str) -> None:
        if self._store is None:
            return
        try:
            done = self._store.set_value(SYNC_STATE_KEY, value)
            if inspect.isawaitable(done):
                await done
        except Exception:
            log.warning("discord: cannot remember the command sync", exc_info=True)

    async def _on_command(
        self, interaction: discord.Interaction, *, share: bool, account: str | None
    ) -> None:
        await self._answers.run(
            self._answer(interaction, share=share, account=account),
            failed=lambda: _say(interaction, FAILED),
            platform="discord",
        )

    async def _answer(
        self, interaction: discord.Interaction, *, share: bool, account: str | None
    ) -> CommandOutcome:
        if not self._running:
            await interaction.response.send_message(STOPPING, ephemeral=True)
            return "refused"
        refused = self._refusal(interaction)
        if refused is not None:
            log.info(
                "discord: refused /%s to user %s in server %s, channel %s",
                COMMAND,
                interaction.user.id,
                interaction.guild_id,
                interaction.channel_id,
            )
            await interaction.response.send_message(refused, ephemeral=True)
            return "refused"
        accounts = self._service.accounts
        names = list(accounts)
        if account is not None and account.strip():
            chosen = _match(account, accounts)
            if chosen is None:
                text = unknown_account(account.strip(), accounts)
                await interaction.response.send_message(text, ephemeral=True)
                return "refused"
            names = [chosen]
        ephemeral = not share
        if not any(self._service.would_fetch(name) for name in names):
            usages = [self._service.peek(name) for name in names]
            await interaction.response.send_message(
                embeds=self._render(usages), ephemeral=ephemeral
            )
            return "ok"
        await interaction.response.defer(ephemeral=ephemeral, thinking=True)
        usages = list(await asyncio.gather(*(self._service.get(name) for name in names)))
        await interaction.followup.send(embeds=self._render(usages), ephemeral=ephemeral)
        return "ok"

    def _complete_account(
        self, interaction: discord.Interaction, current: str
    ) -> list[app_commands.Choice[str]]:
        if self._refusal(interaction) is not None:
            return []
        typed = current.strip().lower()
        matching = [a for a in self._service.accounts if typed in a.lower()]
        return [app_commands.Choice(name=a, value=a) for a in matching[:25]]

    def _refusal(self, interaction: discord.Interaction) -> str | None:
        return refusal(
            self._settings,
            guild_id=interaction.guild_id,
            channel_id=interaction.channel_id,
            parent_id=getattr(interaction.channel, "parent_id", None),
        )

    def _render(self, usages: Sequence[AccountUsage]) -> list[discord.Embed]:
        now = self._clock.now()
        return render_reports([build_report(usage, now) for usage in usages])


def _place(guild: discord.Object | None) -> str:
    return f"in server {guild.id}" if guild else "globally"


def _match(typed: str, accounts: Sequence[str]) -> str | None:
    wanted = typed.strip().lower()
    return next((a for a in accounts if a.lower() == wanted), None)


async def _say(interaction: discord.Interaction, text: str) -> None:
    """Answer with one ephemeral sentence, however far the interaction got; never raises."""
    try:
        if interaction.response.is_done():
            await interaction.followup.send(text, ephemeral=True)
        else:
            await interaction.response.send_message(text, ephemeral=True)
    except (discord.HTTPException, aiohttp.ClientError, OSError) as exc:
        log.warning("discord: could not tell the user that /%s failed: %s", COMMAND, exc)


# -- alert destinations ------------------------------------------------------------------


class DiscordChannelNotifier:
    """Alerts to one channel as the bot (``POST /channels/{id}/messages``).

    One request per post, outside discord.py's retry loop: a 429 or a 5xx comes back as a
    retryable :class:`DeliveryError` at once, and the alert scheduler tries again.
    """

    def __init__(
        self,
        *,
        token: Secret,
        channel_id: int,
        api_base_url: str,
        timeout: float = POST_TIMEOUT,
    ) -> None:
        self._token = token
        self._channel_id = channel_id
        self._url = f"{api_base_url.rstrip('/')}/channels/{channel_id}/messages"
        self._timeout = timeout

    @property
    def name(self) -> str:
        return f"discord:{self._channel_id}"

    async def post(self, message: AlertMessage) -> None:
        headers = {"Authorization": f"Bot {self._token.reveal()}"}
        status, body, headers_back = await _post(
            self._url, _alert_payload(message), headers, self._timeout, self._where
        )
        if status >= 300:
            raise _channel_error(status, body, headers_back, self._channel_id)

    @property
    def _where(self) -> str:
        return f"channel {self._channel_id}"


class DiscordWebhookNotifier:
    """Alerts through an incoming webhook: no bot needed. The URL is a secret.

    A ``discord.com/api/webhooks/ID/TOKEN`` URL is sent to ``DISCORD_API_BASE_URL``, as
    discord.py does; any other URL (a relay) as it is.
    """

    name = "discord-webhook"

    def __init__(self, *, url: Secret, api_base_url: str, timeout: float = POST_TIMEOUT) -> None:
        self._url = url
        self._api_base_url = api_base_url.rstrip("/")
        self._timeout = timeout

    async def post(self, message: AlertMessage) -> None:
        payload = {**_alert_payload(message), "username": "Claude usage"}
        url = _webhook_target(self._url, self._api_base_url).update_query(wait="true")
        status, body, headers = await _post(str(url), payload, {}, self._timeout, "the webhook")
        if status >= 300:
            raise _webhook_error(status, body, headers)


def discord_notifiers(settings: Settings) -> list[Notifier]:
    """The Discord alert destinations the settings configure: the alert channel (with a bot
    token), the webhook, both or neither. Works without a :class:`DiscordFrontEnd`."""
    notifiers: list[Notifier] = []
    token, channel = settings.discord.bot_token, settings.discord.alert_channel_id
    if token is not None and channel is not None:
        notifiers.append(
            DiscordChannelNotifier(
                token=token, channel_id=channel, api_base_url=settings.discord.api_base_url
            )
        )
    if settings.discord.webhook_url is not None:
        notifiers.append(
            DiscordWebhookNotifier(
                url=settings.discord.webhook_url, api_base_url=settings.discord.api_base_url
            )
        )
    return notifiers


def _alert_payload(message: AlertMessage) -> dict[str, Any]:
    return {"embeds": [render_alert(message).to_dict()], "allowed_mentions": {"parse": []}}


def _webhook_target(url: Secret, api_base_url: str) -> yarl.URL:
    match = _WEBHOOK_URL.match(url.reveal())
    if match is None:
        return yarl.URL(url.reveal())
    return yarl.URL(f"{api_base_url}/webhooks/{match['id']}/{match['token']}")


@dataclass(frozen=True, slots=True)
class _Answer:
    """Discord's error body: ``code`` and ``message``, and ``retry_after`` for a 429."""

    code: int
    message: str
    retry_after: float | None

    @classmethod
    def of(cls, body: str, headers: Mapping[str, str]) -> _Answer:
        try:
            data: Any = json.loads(body)
        except ValueError:
            data = None
        if not isinstance(data, dict):
            data = {}
        code, message = data.get("code"), data.get("message")
        retry_after = _seconds(data.get("retry_after"))
        return cls(
            code=code if type(code) is int else 0,
            message=_clean(message) if isinstance(message, str) else "",
            retry_after=retry_after
            if retry_after is not None
            else _seconds(headers.get("retry-after")),
        )

    def __str__(self) -> str:
        return " ".join(part for part in (str(self.code or ""), self.message) if part)


async def _post(
    url: str, payload: dict[str, Any], headers: dict[str, str], time_limit: float, where: str
) -> tuple[int, str, dict[str, str]]:
    """POST once; the status, body and headers, or a retryable :class:`DeliveryError`."""
    try:
        async with (
            aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=time_limit),
                headers={"User-Agent": USER_AGENT},
                trust_env=True,
            ) as session,
            session.post(url, json=payload, headers=headers) as response,
        ):
            body = await response.text()
            return response.status, body, {k.lower(): v for k, v in response.headers.items()}
    except TimeoutError:
        raise DeliveryError(
            f"Discord did not answer within {time_limit:g} s while posting to {where}; the "
            "alert is retried later.",
            retryable=True,
        ) from None
    except (aiohttp.ClientError, OSError) as exc:
        # Never chained or echoed: aiohttp's errors can carry the URL, a secret for webhooks.
        raise DeliveryError(
            f"Cannot reach Discord ({type(exc).__name__}) to post to {where}; the alert is "
            "retried later.",
            retryable=True,
        ) from None


def _transient_error(status: int, answer: _Answer, where: str) -> DeliveryError | None:
    if status == 429:
        wait = answer.retry_after
        when = f"in {wait:.1f} s" if wait is not None else "later"
        return DeliveryError(
            f"Discord is rate-limiting posts to {where}; the alert is retried {when}.",
            retryable=True,
            retry_after=wait,
        )
    if status >= 500:
        return DeliveryError(
            f"Discord failed (HTTP {status}) while posting to {where}; the alert is retried later.",
            retryable=True,
            retry_after=answer.retry_after,
        )
    return None


def _channel_error(
    status: int, body: str, headers: dict[str, str], channel_id: int
) -> DeliveryError:
    answer = _Answer.of(body, headers)
    where = f"channel {channel_id}"
    if (transient := _transient_error(status, answer, where)) is not None:
        return transient
    if status == 401:
        return DeliveryError(
            f"Discord rejected DISCORD_BOT_TOKEN (401 {answer}): {LOGIN_FIX}", retryable=False
        )
    if status == 403 or answer.code in (_MISSING_ACCESS, _MISSING_PERMISSIONS):
        return DeliveryError(
            f"The bot may not post to {where} ({status} {answer}): {CHANNEL_FIX}", retryable=False
        )
    if status == 404:
        return DeliveryError(
            f"Discord knows no {where} that the bot can see (404 {answer}): check "
            "DISCORD_ALERT_CHANNEL_ID (Developer Mode, right-click the channel, Copy Channel "
            "ID), and that the bot is in that server.",
            retryable=False,
        )
    return _refused(status, answer, where)


def _webhook_error(status: int, body: str, headers: dict[str, str]) -> DeliveryError:
    answer = _Answer.of(body, headers)
    if (transient := _transient_error(status, answer, "the webhook")) is not None:
        return transient
    if status in (401, 404) or answer.code in (_UNKNOWN_WEBHOOK, _INVALID_WEBHOOK_TOKEN):
        return DeliveryError(
            f"Discord knows no such webhook ({status} {answer}): {WEBHOOK_FIX}", retryable=False
        )
    if status == 403:
        return DeliveryError(
            f"Discord refused the webhook's post (403 {answer}): check the channel's "
            f"permissions, or {WEBHOOK_FIX}",
            retryable=False,
        )
    return _refused(status, answer, "the webhook")


def _refused(status: int, answer: _Answer, where: str) -> DeliveryError:
    detail = f"HTTP {status} {answer}".rstrip()
    return DeliveryError(
        f"Discord refused the alert to {where} ({detail}); this is likely a bug in usage-bot: "
        "please report it.",
        retryable=False,
    )


def _seconds(raw: object) -> float | None:
    """A wait in seconds from a JSON number or a header, or None."""
    if isinstance(raw, bool) or not isinstance(raw, int | float | str):
        return None
    try:
        value = float(raw)
    except ValueError:
        return None
    return max(value, 0.0) if math.isfinite(value) else None


def _clean(text: str) -> str:
    """Discord's own error message, made safe to log: one short line."""
    return " ".join(text.split())[:200]


def _describe(exc: BaseException) -> str:
    """An error in a few words, without URLs: ``HTTP 403 50001 Missing Access``."""
    if isinstance(exc, discord.HTTPException):
        parts = [f"HTTP {exc.status}", str(exc.code or ""), _clean(exc.text or "")]
        return " ".join(part for part in parts if part)
    return type(exc).__name__


def _unreachable(settings: Settings, exc: BaseException) -> UsageBotError:
    host = yarl.URL(settings.discord.api_base_url).host or settings.discord.api_base_url
    return UsageBotError(
        f"Cannot reach Discord at {host} ({type(exc).__name__}); check this machine's network "
        "(and proxy settings) and DISCORD_API_BASE_URL."
    )


def _sync_refused(settings: Settings, exc: discord.HTTPException) -> str:
    guild = settings.discord.guild_id
    if guild is None:
        return f"Discord refused to register /{COMMAND} ({_describe(exc)}): {LOGIN_FIX}"
    return (
        f"Discord refused to register /{COMMAND} in server {guild} ({_describe(exc)}): add "
        "the bot to that server with the invite URL from `usage-bot doctor` (it asks for the "
        "applications.commands scope), or correct DISCORD_GUILD_ID."
    )


# -- doctor ------------------------------------------------------------------------------


def invite_url(application_id: int) -> str:
    """The URL that adds the bot to a server, with the scopes and permissions it needs."""
    return discord.utils.oauth_url(
        application_id, permissions=BOT_PERMISSIONS, scopes=INVITE_SCOPES
    )


async def doctor_checks(settings: Settings) -> list[CheckResult]:
    """The Discord lines of ``usage-bot doctor``: the bot token, the application and its
    invite URL, the command's registration, the alert channel and the webhook. Posts
    nothing anywhere."""
    results: list[CheckResult] = []
    token = settings.discord.bot_token
    if token is not None:
        apply_discord_urls(settings)
        client = _new_client()
        try:
            results.extend(await _bot_checks(client, settings, token))
        finally:
            await client.close()
    if settings.discord.webhook_url is not None:
        results.append(await _webhook_check(settings, settings.discord.webhook_url))
    return results


async def _bot_checks(
    client: discord.Client, settings: Settings, token: Secret
) -> list[CheckResult]:
    name = "discord: bot token"
    try:
        async with asyncio.timeout(DOCTOR_TIMEOUT):
            await client.login(token.reveal())
    except discord.LoginFailure:
        return [CheckResult(name, "fail", f"Discord rejected {token.masked()}", LOGIN_FIX)]
    except discord.HTTPException as exc:
        return [CheckResult(name, "fail", f"Discord's API failed ({_describe(exc)})")]
    except (aiohttp.ClientError, OSError, TimeoutError) as exc:
        return [CheckResult(name, "fail", _unreachable(settings, exc).message)]
    results = [CheckResult(name, "ok", f"{token.masked()} is the bot {client.user}")]
    app = client.application
    if app is None:  # login fetches it; checked for the type checker
        return results
    results.append(_application_check(app))
    results.append(CheckResult("discord: invite URL", "ok", invite_url(app.id)))
    results.append(await _command_check(client, settings, app.id))
    results.append(await _channel_check(client, settings))
    return results


def _application_check(app: discord.AppInfo) -> CheckResult:
    name = "discord: application"
    if app.interactions_endpoint_url:
        return CheckResult(
            name,
            "fail",
            f"{app.name} ({app.id}) has an Interactions Endpoint URL, so Discord sends "
            f"/{COMMAND} there and not to the bot",
            "remove the Interactions Endpoint URL (Developer Portal, General Information).",
        )
    if app.bot_require_code_grant:
        return CheckResult(
            name,
            "warn",
            f"{app.name} ({app.id}) requires the OAuth2 code grant, so the invite URL fails",
            "turn off Requires OAuth2 Code Grant (Developer Portal, Bot).",
        )
    return CheckResult(name, "ok", f"{app.name} ({app.id})")


async def _command_check(
    client: discord.Client, settings: Settings, application_id: int
) -> CheckResult:
    name = "discord: command"
    guild = settings.discord.guild_id
    where = f"in server {guild}" if guild else "globally"
    try:
        if guild:
            commands = await client.http.get_guild_commands(application_id, guild)
        else:
            commands = await client.http.get_global_commands(application_id)
    except discord.HTTPException as exc:
        if guild and (exc.status == 403 or exc.code == _UNKNOWN_GUILD or exc.status == 404):
            return CheckResult(
                name,
                "fail",
                f"the bot cannot register commands in server {guild} ({_describe(exc)})",
                "open the invite URL above and add the bot to that server, or correct "
                "DISCORD_GUILD_ID (Developer Mode, right-click the server, Copy Server ID).",
            )
        return CheckResult(name, "fail", f"cannot list the commands {where} ({_describe(exc)})")
    except (aiohttp.ClientError, OSError, TimeoutError) as exc:
        return CheckResult(name, "fail", _unreachable(settings, exc).message)
    if any(command.get("name") == COMMAND for command in commands):
        return CheckResult(name, "ok", f"/{COMMAND} is registered {where}")
    later = "" if guild else " (a global command can take a while to reach every server)"
    return CheckResult(
        name,
        "warn",
        f"/{COMMAND} is not registered {where} yet; `usage-bot run` registers it at start{later}",
        "run the bot; set DISCORD_GUILD_ID for instant registration in one server.",
    )


async def _channel_check(client: discord.Client, settings: Settings) -> CheckResult:
    name = "discord: alert channel"
    channel_id = settings.discord.alert_channel_id
    if channel_id is None:
        if settings.discord.webhook_url is not None:
            return CheckResult(name, "skip", "not set: alerts go through the webhook")
        return CheckResult(
            name,
            "warn",
            f"DISCORD_ALERT_CHANNEL_ID is not set: Discord gets no alerts, only /{COMMAND}",
            "set DISCORD_ALERT_CHANNEL_ID to the ID of the channel for alerts (Developer Mode, "
            "right-click the channel, Copy Channel ID).",
        )
    try:
        channel = await client.http.get_channel(channel_id)
    except discord.NotFound as exc:
        return CheckResult(
            name,
            "fail",
            f"Discord knows no channel {channel_id} that the bot can see ({_describe(exc)})",
            "check DISCORD_ALERT_CHANNEL_ID, and that the bot is in that server.",
        )
    except discord.Forbidden as exc:
        return CheckResult(
            name, "fail", f"the bot cannot see channel {channel_id} ({_describe(exc)})", CHANNEL_FIX
        )
    except discord.HTTPException as exc:
        return CheckResult(name, "fail", f"cannot look at channel {channel_id} ({_describe(exc)})")
    except (aiohttp.ClientError, OSError, TimeoutError) as exc:
        return CheckResult(name, "fail", _unreachable(settings, exc).message)
    label = f"#{channel.get('name', '?')} ({channel_id})"
    if channel.get("type") not in _MESSAGEABLE_CHANNELS:
        return CheckResult(
            name,
            "fail",
            f"{label} is not a channel the bot can post messages in",
            "choose a text or announcement channel.",
        )
    return CheckResult(
        name,
        "ok",
        f"alerts go to {label}, where the bot needs {NEEDED_PERMISSIONS}; not test-posted",
    )


async def _webhook_check(settings: Settings, url: Secret) -> CheckResult:
    name = "discord: webhook"
    if _WEBHOOK_URL.match(url.reveal()) is None:
        return CheckResult(
            name,
            "warn",
            "DISCORD_WEBHOOK_URL is not a Discord webhook URL "
            "(https://discord.com/api/webhooks/ID/TOKEN); it is used as it is, but not checked",
        )
    target = _webhook_target(url, settings.discord.api_base_url.rstrip("/"))
    try:
        async with (
            aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=DOCTOR_TIMEOUT),
                headers={"User-Agent": USER_AGENT},
                trust_env=True,
            ) as session,
            session.get(target) as response,
        ):
            body = await response.text()
            status = response.status
            headers = {k.lower(): v for k, v in response.headers.items()}
    except (aiohttp.ClientError, OSError, TimeoutError) as exc:
        return CheckResult(name, "fail", _unreachable(settings, exc).message)
    if status == 200:
        try:
            webhook = json.loads(body)
        except ValueError:
            webhook = {}
        about = webhook if isinstance(webhook, dict) else {}
        return CheckResult(
            name,
            "ok",
            f"posts as {_clean(str(about.get('name', '?')))} to channel "
            f"{about.get('channel_id', '?')}; not test-posted, so that the channel gets no "
            "test message",
        )
    answer = _Answer.of(body, headers)
    if status in (401, 404):
        return CheckResult(
            name, "fail", f"Discord knows no such webhook ({status} {answer})", WEBHOOK_FIX
        )
    return CheckResult(name, "fail", f"Discord answered HTTP {status} ({answer}) for the webhook")
