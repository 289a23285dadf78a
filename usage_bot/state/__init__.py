"""State that outlives a poll: the alert ledger, the delivery queue, usage history, values.

What the rest of the bot relies on is four small Protocols, each used on its own: the
:class:`AlertLedger` (the alert engine's memory), the :class:`DeliveryQueue` (what is on
its way to which destination), the :class:`UsageHistory` (every reading, for pace and
forecasts) and :class:`KeyValue` (a front end's small records). :class:`StateStore` is all
four, plus :meth:`~StateStore.prune` and :meth:`~StateStore.close`; :func:`open_store`
builds the one ``USAGE_BOT_STATE`` names. The back ends, side by side:

- :mod:`usage_bot.state.sqlite`: one SQLite file, shared safely by processes (the default);
- :mod:`usage_bot.state.memory`: this process's memory, the same semantics, forgotten at
  exit (tests, the demo, ``USAGE_BOT_STATE=:memory:``).

Every method is a coroutine, and nothing in a signature belongs to one back end: times
are aware datetimes, claims are opaque strings. A back end's own errors stay inside it:
what cannot be done now (a lock held too long, a read-only or full disk, a database gone)
is raised as :class:`~usage_bot._exceptions.StateUnavailable`, with one sentence naming
``USAGE_BOT_STATE``, and nothing of that call is kept; a location that cannot be used at
all is a :class:`~usage_bot._exceptions.ConfigError` from :func:`open_store`.

Exactly-once announcements (PRODUCT.md: never twice for the same level in the same window,
not after a restart, a chat platform error or with two replicas sharing one database):

1. **Record.** :meth:`AlertLedger.update_ledger` reads the account's ledger, lets the alert
   engine decide, and writes the new ledger and one pending delivery per (announcement
   key, destination) in one transaction, under the database's write lock: two processes
   take turns, so the second sees what the first decided. A crash loses either both or
   neither. A (key, destination) already queued, posted or dropped is not queued again.
2. **Claim.** :meth:`DeliveryQueue.claim_next` atomically leases the oldest pending
   delivery of a destination to one poster until ``now + lease``. Nobody else claims it
   meanwhile.
3. **Post**, then **confirm** (:meth:`DeliveryQueue.confirm`). A post that fails is
   released with the time to retry at (:meth:`DeliveryQueue.release`); a poster that died
   is retried by anyone once its lease has passed. Announcements whose moment has passed
   are dropped (:meth:`DeliveryQueue.expire`), never posted late.

Deliveries to one destination go out in the order they were recorded: while the oldest
waits for its retry, the later ones wait too, so "95 %" never arrives before "80 %".

The one case that can still post twice: a poster that dies (``kill -9``, a power cut)
after the platform accepted a post and before its confirm was written leaves a claim
that, once its lease has passed, is posted again, as is a post the platform accepted
after the poster gave up waiting (a timeout). Nothing on this side can tell such a post
from one that never arrived; closing the gap needs the platform's help (an idempotency
key, or a look in the channel for the announcement's key before posting it again).
``tests/test_alert_delivery.py`` shows the crash case.

A new back end (PostgreSQL is next) is a module here with a class that satisfies
:class:`StateStore`, one ``case`` in :func:`open_store`, and one entry in
``tests/state_backends.py``, which runs the whole shared suite against it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol
from urllib.parse import urlsplit

from usage_bot._alerts import AccountLedger, Assessment
from usage_bot._config import Settings
from usage_bot._exceptions import ConfigError
from usage_bot._model import UsageSnapshot
from usage_bot._notify import AlertMessage

log = logging.getLogger(__name__)

HISTORY_KEEP = timedelta(days=8)
# Finished deliveries are kept well past the longest window (7 days) for inspection.
DELIVERIES_KEEP = timedelta(days=35)

MEMORY = ":memory:"

LedgerStep = Callable[[AccountLedger], Assessment]
"""The alert engine's decision on one ledger. Pure: a back end may run it again if it has
to retry its transaction (as PostgreSQL does after a serialization failure)."""


@dataclass(frozen=True, slots=True)
class Delivery:
    """One announcement on its way to one destination, as claimed by one poster.

    ``claim`` is the back end's opaque token for the current lease (None when unclaimed);
    only the holder of that token can :meth:`~DeliveryQueue.release` it.
    """

    key: str
    destination: str
    message: AlertMessage
    created_at: datetime
    expires_at: datetime | None
    attempts: int
    claim: str | None = None


@dataclass(frozen=True, slots=True)
class UsageSample:
    """One limit's usage as a poll saw it."""

    account: str
    limit_id: str
    percent: float
    resets_at: datetime | None
    sampled_at: datetime


class AlertLedger(Protocol):
    """What the alert engine has announced, per account; its updates queue deliveries."""

    async def load_ledger(self, account: str) -> AccountLedger:
        """The account's ledger as persisted (a fresh one if there is none)."""
        ...

    async def update_ledger(
        self,
        account: str,
        step: LedgerStep,
        *,
        destinations: Sequence[str],
        now: datetime,
    ) -> Assessment:
        """Run ``step`` on the account's ledger; store the ledger it returns (as returned:
        a window it leaves out is forgotten) and queue each of its events for each
        destination, all in one transaction. A ``step`` that raises changes nothing."""
        ...


class DeliveryQueue(Protocol):
    """Announcements waiting to be posted, per destination, oldest first, each leased to
    one poster at a time (``owner``: who claims, e.g. ``host:pid:random``)."""

    async def claim_next(
        self, destination: str, *, owner: str, now: datetime, lease: timedelta
    ) -> Delivery | None:
        """Lease the destination's oldest pending delivery until ``now + lease``, if it is
        due (never claimed, released for a time now past, or its lease ran out); else
        None, also when a later one is due: the order is kept."""
        ...

    async def confirm(self, delivery: Delivery, *, now: datetime) -> bool:
        """Mark a claimed delivery posted; False if it was already finished elsewhere."""
        ...

    async def release(self, delivery: Delivery, *, retry_at: datetime, error: str) -> None:
        """Give a claimed delivery back after a failed post, to retry at ``retry_at``; does
        nothing if its claim is no longer the current one (another poster took over)."""
        ...

    async def expire(self, *, now: datetime) -> list[Delivery]:
        """Drop pending deliveries whose moment has passed, except those under a live lease
        (being posted), and return them."""
        ...

    async def pending(self, destination: str | None = None) -> list[Delivery]:
        """Deliveries not yet posted nor dropped, oldest first."""
        ...


class UsageHistory(Protocol):
    """Every limit's readings, kept for :data:`HISTORY_KEEP`."""

    async def record_usage(self, account: str, snapshot: UsageSnapshot) -> None:
        """Keep every limit of ``snapshot``; one sample per (account, limit, fetch time), so
        a cached snapshot handed out again adds nothing."""
        ...

    async def history(
        self, account: str | None = None, *, since: datetime | None = None
    ) -> list[UsageSample]:
        """The samples kept (of one account, from ``since`` on), by time, then account and
        limit."""
        ...


class KeyValue(Protocol):
    """Small records a part of the bot keeps for itself, e.g. Discord's last command sync."""

    async def get_value(self, key: str) -> str | None:
        """The value last set for ``key``, or None."""
        ...

    async def set_value(self, key: str, value: str) -> None:
        """Set ``key`` to ``value``, replacing what was there."""
        ...


class StateStore(AlertLedger, DeliveryQueue, UsageHistory, KeyValue, Protocol):
    """The bot's whole state, as :func:`open_store` returns it; safe to share between
    asyncio tasks, and (for a database back end) between processes."""

    async def prune(self, *, now: datetime) -> int:
        """Forget samples older than :data:`HISTORY_KEEP` and deliveries finished over
        :data:`DELIVERIES_KEEP` ago; the number of records removed."""
        ...

    async def close(self) -> None:
        """Let go of the state; any call afterwards raises StoreClosed; closing again does
        nothing."""
        ...


async def open_store(settings: Settings) -> StateStore:
    """The store ``USAGE_BOT_STATE`` names, migrated and ready; ConfigError if it cannot be.

    A path, or ``sqlite:///path``, is a SQLite file; ``:memory:`` keeps the state in this
    process only (with a warning: a restart forgets what was announced).
    """
    location = settings.state
    scheme = location.partition("://")[0].lower() if "://" in location else ""
    match scheme:
        case "" | "sqlite":
            path = location.split("://", 1)[1].removeprefix("/") if scheme else location
            if path == MEMORY:
                return _memory_store()
            from usage_bot.state.sqlite import SQLiteStore

            return await SQLiteStore.open(path)
        case "postgresql" | "postgres":
            # Issue 12, later: ``usage_bot.state.postgresql.PostgreSQLStore.open(location)``.
            raise ConfigError(
                [
                    f"USAGE_BOT_STATE={_shown(location)}: this version of usage-bot keeps its "
                    "state in SQLite only; point USAGE_BOT_STATE at a file path, or upgrade "
                    "usage-bot for PostgreSQL."
                ]
            )
        case _:
            raise ConfigError(
                [
                    f"USAGE_BOT_STATE={_shown(location)}: unknown kind of database "
                    f"{scheme!r}; use a file path (SQLite), sqlite:///path, or :memory:."
                ]
            )


def _memory_store() -> StateStore:
    from usage_bot.state.memory import MemoryStore

    log.warning(
        "USAGE_BOT_STATE=%s keeps the alert state in this process only: after a restart, "
        "alerts already posted in the current windows may be posted again",
        MEMORY,
    )
    return MemoryStore()


def _shown(location: str) -> str:
    """``location`` fit for a message: a URL's password replaced by ``***``."""
    try:
        parts = urlsplit(location)
    except ValueError:
        return location.split("://", 1)[0] + "://…"
    if parts.password is None:
        return location
    host = parts.netloc.rpartition("@")[2]
    return parts._replace(netloc=f"{parts.username}:***@{host}").geturl()
