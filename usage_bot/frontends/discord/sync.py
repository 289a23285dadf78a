"""Registering ``/claude-usage`` with Discord only when it changed.

Command registration spends Discord's rate limits (a couple of hundred a day per
application), so a start syncs the command only when its definition, the application or
the place (``DISCORD_GUILD_ID``, or global) changed since the last sync: a fingerprint of
the definition as Discord gets it, remembered in the bot's state under
:data:`SYNC_STATE_KEY`. Moving from a guild to global (or back) also removes the command
from where it was, so that it does not show twice.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp
import discord
from discord import app_commands

from usage_bot._command import COMMAND
from usage_bot._exceptions import StateUnavailable
from usage_bot.frontends.discord.shim import describe
from usage_bot.state import KeyValue

log = logging.getLogger(__name__)

SYNC_STATE_KEY = "discord.command_sync"


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
class SyncRecord:
    """What the last sync put where: ``scope`` is ``"global"`` or ``"guild:<id>"``."""

    application_id: int
    scope: str
    fingerprint: str

    def dump(self) -> str:
        return json.dumps(
            {"application_id": self.application_id, "scope": self.scope, "hash": self.fingerprint}
        )

    @classmethod
    def load(cls, raw: str | None) -> SyncRecord | None:
        if not raw:
            return None
        try:
            data = json.loads(raw)
            return cls(int(data["application_id"]), str(data["scope"]), str(data["hash"]))
        except (ValueError, TypeError, KeyError):
            return None


def command_payload(
    tree: app_commands.CommandTree[discord.Client], guild: discord.Object | None
) -> list[dict[str, Any]]:
    """The commands' definitions as :meth:`CommandTree.sync` sends them."""
    return [command.to_dict(tree) for command in tree.get_commands(guild=guild)]


async def sync_if_changed(
    tree: app_commands.CommandTree[discord.Client],
    *,
    application_id: int,
    guild: discord.Object | None,
    store: KeyValue,
) -> bool:
    """Sync the tree's commands to ``guild`` (None: globally) unless the last sync put
    the same definition there; True when it synced.

    Raises what :meth:`CommandTree.sync` raises; the caller says what it means. A state
    that cannot be used now (:class:`StateUnavailable`) only costs a sync more than needed.
    """
    scope = f"guild:{guild.id}" if guild else "global"
    fingerprint = command_fingerprint(command_payload(tree, guild), application_id=application_id)
    wanted = SyncRecord(application_id, scope, fingerprint)
    last = SyncRecord.load(await _remembered(store))
    if last == wanted:
        log.debug("discord: /%s is unchanged since the last sync", COMMAND)
        return False
    await tree.sync(guild=guild)
    if last is not None and last.application_id == application_id and last.scope != scope:
        await _unregister(tree.client, application_id, last.scope)
    await _remember(store, wanted.dump())
    return True


async def _unregister(client: discord.Client, application_id: int, scope: str) -> None:
    """Remove the command from where an earlier configuration put it."""
    http = client.http
    try:
        if scope == "global":
            await http.bulk_upsert_global_commands(application_id, payload=[])
        else:
            guild_id = int(scope.removeprefix("guild:"))
            await http.bulk_upsert_guild_commands(application_id, guild_id, payload=[])
    except (discord.HTTPException, aiohttp.ClientError, OSError, ValueError) as exc:
        log.warning("discord: could not remove the old /%s (%s): %s", COMMAND, scope, describe(exc))


async def _remembered(store: KeyValue) -> str | None:
    try:
        return await store.get_value(SYNC_STATE_KEY)
    except StateUnavailable as exc:
        log.warning("discord: cannot read the last command sync (%s); syncing", exc.message)
        return None


async def _remember(store: KeyValue, value: str) -> None:
    try:
        await store.set_value(SYNC_STATE_KEY, value)
    except StateUnavailable as exc:
        log.warning("discord: cannot remember the command sync (%s)", exc.message)
