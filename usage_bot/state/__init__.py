"""State that outlives the process: the alert ledger, deliveries, usage history, settings.

One back end today, SQLite (:mod:`usage_bot.state.sqlite`); :class:`StateStore` is what
the rest of the bot relies on, so another back end could sit beside it.

Exactly-once announcements (PRODUCT.md: never twice for the same level in the same window,
not after a restart, a chat platform error or with two replicas sharing one database):

1. **Record.** :meth:`StateStore.update_ledger` reads the account's ledger, lets the alert
   engine decide, and writes the new ledger and one pending delivery per (announcement
   key, destination) in one transaction, under the database's write lock: two processes
   take turns, so the second sees what the first decided. A crash loses either both or
   neither.
2. **Claim.** :meth:`StateStore.claim_next` atomically leases the oldest pending delivery
   of a destination to one poster until ``now + lease``. Nobody else claims it meanwhile.
3. **Post**, then **confirm** (:meth:`StateStore.confirm`). A post that fails is
   released with the time to retry at (:meth:`StateStore.release`); a poster that died is
   retried by anyone once its lease has passed. Announcements whose moment has passed are
   dropped (:meth:`StateStore.expire`), never posted late.

Deliveries to one destination go out in the order they were recorded: while the oldest
waits for its retry, the later ones wait too, so "95 %" never arrives before "80 %".

The one case that can still post twice: a poster that dies (``kill -9``, a power cut)
after the platform accepted a post and before its confirm was written leaves a claim
that, once its lease has passed, is posted again, as is a post the platform accepted
after the poster gave up waiting (a timeout). Nothing on this side can tell such a post
from one that never arrived; closing the gap needs the platform's help (an idempotency
key, or a look in the channel for the announcement's key before posting it again).
``tests/test_alert_delivery.py`` shows the crash case.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from usage_bot._alerts import AccountLedger, Assessment
from usage_bot._config import Settings
from usage_bot._model import UsageSnapshot
from usage_bot._notify import AlertMessage

HISTORY_KEEP = timedelta(days=8)
# Finished deliveries are kept well past the longest window (7 days) for inspection.
DELIVERIES_KEEP = timedelta(days=35)

LedgerStep = Callable[[AccountLedger], Assessment]


@dataclass(frozen=True, slots=True)
class Delivery:
    """One announcement on its way to one destination, as claimed by one poster."""

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


class StateStore(Protocol):
    """The bot's persistent state; every method is safe to await from the event loop."""

    async def update_ledger(
        self,
        account: str,
        step: LedgerStep,
        *,
        destinations: Sequence[str],
        now: datetime,
    ) -> Assessment:
        """Run ``step`` on the account's ledger and record its result and deliveries."""
        ...

    async def load_ledger(self, account: str) -> AccountLedger:
        """The account's ledger as persisted (a fresh one if there is none)."""
        ...

    async def claim_next(
        self, destination: str, *, owner: str, now: datetime, lease: timedelta
    ) -> Delivery | None:
        """Lease the destination's oldest pending delivery, if it is due; else None."""
        ...

    async def confirm(self, delivery: Delivery, *, now: datetime) -> bool:
        """Mark a claimed delivery posted; False if it was already finished elsewhere."""
        ...

    async def release(self, delivery: Delivery, *, retry_at: datetime, error: str) -> None:
        """Give a claimed delivery back after a failed post, to retry at ``retry_at``."""
        ...

    async def expire(self, *, now: datetime) -> list[Delivery]:
        """Drop pending deliveries whose moment has passed (not those being posted)."""
        ...

    async def pending(self, destination: str | None = None) -> list[Delivery]:
        """Deliveries not yet posted nor dropped, oldest first."""
        ...

    async def record_usage(self, account: str, snapshot: UsageSnapshot) -> None:
        """Keep every limit of ``snapshot`` in the history (once per fetch)."""
        ...

    async def history(
        self, account: str | None = None, *, since: datetime | None = None
    ) -> list[UsageSample]:
        """The samples kept, oldest first."""
        ...

    async def prune(self, *, now: datetime) -> int:
        """Forget samples older than :data:`HISTORY_KEEP` and old finished deliveries."""
        ...

    async def get_value(self, key: str) -> str | None: ...

    async def set_value(self, key: str, value: str) -> None: ...

    async def close(self) -> None:
        """Release the database; calling it again does nothing."""
        ...


async def open_store(settings: Settings) -> StateStore:
    """The store ``USAGE_BOT_STATE`` names, migrated and ready; raises ConfigError if not."""
    from usage_bot.state.sqlite import SQLiteStore

    return await SQLiteStore.open(settings.state)
