"""The state store in this process's memory: what SQLite keeps, kept until the process ends.

For tests (a scheduler or front end needs no file), for the demo, and for
``USAGE_BOT_STATE=:memory:``. Its semantics are the SQLite store's, down to the details
``tests/test_state.py`` runs against both: the ledger and the deliveries it queues are
written together or not at all; a (key, destination) is queued once, ever (until pruned);
claims are leased, oldest first per destination, and wait for ``not_before``; a release
touches only its own claim; expiry spares live claims; times come back in UTC. Each call
holds one :class:`asyncio.Lock` and does its work without awaiting, so it is atomic
among the event loop's tasks; no threads, no sleeping.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Literal

from usage_bot._alerts import AccountLedger, Assessment, IncidentRecord, WindowRecord
from usage_bot._exceptions import StoreClosed
from usage_bot._model import UsageSnapshot
from usage_bot.state import (
    DELIVERIES_KEEP,
    HISTORY_KEEP,
    Delivery,
    LedgerStep,
    UsageSample,
)

Status = Literal["pending", "done", "dropped"]


@dataclass(slots=True)
class _Row:
    """One delivery as the store keeps it (a row of SQLite's ``deliveries``)."""

    delivery: Delivery
    status: Status = "pending"
    claimed_by: str | None = None
    not_before: datetime | None = None
    last_error: str | None = None
    finished_at: datetime | None = None

    def due(self, now: datetime) -> bool:
        return self.not_before is None or self.not_before <= now

    def as_delivery(self) -> Delivery:
        return replace(self.delivery, claim=self.claimed_by)


class MemoryStore:
    """:class:`usage_bot.state.StateStore` in memory. Nothing survives the process."""

    def __init__(self) -> None:
        self._lock = asyncio.Lock()
        self._closed = False
        self._ledgers: dict[str, AccountLedger] = {}
        # Insertion order is the order of recording (SQLite's ``seq``): a row is never
        # moved, and one pruned and queued again goes to the end, as a new ``seq`` would.
        self._deliveries: dict[tuple[str, str], _Row] = {}
        self._samples: dict[tuple[str, str, datetime], UsageSample] = {}
        self._values: dict[str, str] = {}

    async def close(self) -> None:
        self._closed = True

    # -- the alert ledger -------------------------------------------------------------

    async def load_ledger(self, account: str) -> AccountLedger:
        async with self._open():
            return _copy(self._ledgers.get(account) or AccountLedger(account=account))

    async def update_ledger(
        self,
        account: str,
        step: LedgerStep,
        *,
        destinations: Sequence[str],
        now: datetime,
    ) -> Assessment:
        async with self._open():
            at = _utc(now)
            assessment = step(_copy(self._ledgers.get(account) or AccountLedger(account=account)))
            # Everything is worked out before anything is kept: all or nothing.
            ledger = _normalised(assessment.ledger)
            queued: list[_Row] = []
            for event in assessment.events:
                message = event.message()
                expires_at = _utc(event.expires_at)
                queued.extend(
                    _Row(Delivery(message.key, destination, message, at, expires_at, 0))
                    for destination in destinations
                )
            self._ledgers[ledger.account] = ledger
            for row in queued:
                self._deliveries.setdefault((row.delivery.key, row.delivery.destination), row)
            return assessment

    # -- deliveries -------------------------------------------------------------------

    async def claim_next(
        self, destination: str, *, owner: str, now: datetime, lease: timedelta
    ) -> Delivery | None:
        async with self._open():
            at = _utc(now)
            row = next(
                (
                    r
                    for r in self._deliveries.values()
                    if r.delivery.destination == destination and r.status == "pending"
                ),
                None,
            )
            # Only the oldest may go: the later ones wait for it, to keep the order.
            if row is None or not row.due(at):
                return None
            row.claimed_by = f"{owner}#{uuid.uuid4().hex[:12]}"
            row.not_before = at + lease
            row.delivery = replace(row.delivery, attempts=row.delivery.attempts + 1)
            return row.as_delivery()

    async def confirm(self, delivery: Delivery, *, now: datetime) -> bool:
        async with self._open():
            at = _utc(now)
            row = self._pending(delivery)
            if row is None:
                return False
            row.status, row.finished_at = "done", at
            row.claimed_by = row.last_error = None
            return True

    async def release(self, delivery: Delivery, *, retry_at: datetime, error: str) -> None:
        async with self._open():
            at = _utc(retry_at)
            row = self._pending(delivery)
            # Only our own claim: one taken over after our lease ran out is not ours.
            if row is None or row.claimed_by is None or row.claimed_by != delivery.claim:
                return
            row.claimed_by, row.not_before, row.last_error = None, at, error

    async def expire(self, *, now: datetime) -> list[Delivery]:
        async with self._open():
            at = _utc(now)
            gone = [
                row
                for row in self._deliveries.values()
                if row.status == "pending"
                and row.delivery.expires_at is not None
                and row.delivery.expires_at <= at
                and not (row.claimed_by is not None and not row.due(at))
            ]
            dropped = [row.as_delivery() for row in gone]
            for row in gone:
                row.status, row.finished_at, row.claimed_by = "dropped", at, None
            return dropped

    async def pending(self, destination: str | None = None) -> list[Delivery]:
        async with self._open():
            return [
                row.as_delivery()
                for row in self._deliveries.values()
                if row.status == "pending"
                and (destination is None or row.delivery.destination == destination)
            ]

    # -- usage history ----------------------------------------------------------------

    async def record_usage(self, account: str, snapshot: UsageSnapshot) -> None:
        sampled_at = _utc(snapshot.fetched_at)
        samples = [
            UsageSample(account, limit.id, limit.percent, _maybe_utc(limit.resets_at), sampled_at)
            for limit in snapshot.limits
        ]
        async with self._open():
            # A cached snapshot handed out again is the same sample, not a new one.
            for sample in samples:
                self._samples.setdefault((account, sample.limit_id, sampled_at), sample)

    async def history(
        self, account: str | None = None, *, since: datetime | None = None
    ) -> list[UsageSample]:
        start = None if since is None else _utc(since)
        async with self._open():
            return sorted(
                (
                    s
                    for s in self._samples.values()
                    if (account is None or s.account == account)
                    and (start is None or s.sampled_at >= start)
                ),
                key=lambda s: (s.sampled_at, s.account, s.limit_id),
            )

    async def prune(self, *, now: datetime) -> int:
        async with self._open():
            at = _utc(now)
            old_samples = [k for k, s in self._samples.items() if s.sampled_at < at - HISTORY_KEEP]
            old_deliveries = [
                k
                for k, row in self._deliveries.items()
                if row.finished_at is not None and row.finished_at < at - DELIVERIES_KEEP
            ]
            for sample_key in old_samples:
                del self._samples[sample_key]
            for delivery_key in old_deliveries:
                del self._deliveries[delivery_key]
            return len(old_samples) + len(old_deliveries)

    # -- small records ----------------------------------------------------------------

    async def get_value(self, key: str) -> str | None:
        async with self._open():
            return self._values.get(key)

    async def set_value(self, key: str, value: str) -> None:
        async with self._open():
            self._values[key] = value

    # -- plumbing ---------------------------------------------------------------------

    def _open(self) -> asyncio.Lock:
        """The lock every call holds, once the store is known to be open."""
        if self._closed:
            raise StoreClosed()
        return self._lock

    def _pending(self, delivery: Delivery) -> _Row | None:
        row = self._deliveries.get((delivery.key, delivery.destination))
        return row if row is not None and row.status == "pending" else None


def _utc(moment: datetime) -> datetime:
    """``moment`` in UTC, as SQLite gives it back; a naive time is refused there too."""
    if moment.utcoffset() is None:
        raise TypeError(f"the state keeps aware times only, not {moment!r}")
    return moment.astimezone(UTC)


def _maybe_utc(moment: datetime | None) -> datetime | None:
    return None if moment is None else _utc(moment)


def _normalised(ledger: AccountLedger) -> AccountLedger:
    """The ledger as SQLite would give it back: times in UTC, its own copy of the windows."""
    windows = {
        limit_id: replace(
            record, window=_maybe_utc(record.window), resets_at=_maybe_utc(record.resets_at)
        )
        for limit_id, record in ledger.windows.items()
    }
    incident = ledger.incident
    return AccountLedger(
        account=ledger.account,
        windows=windows,
        incident=IncidentRecord(
            open=incident.open,
            number=incident.number,
            failing_since=_maybe_utc(incident.failing_since),
            last_failed_check=_maybe_utc(incident.last_failed_check),
        ),
    )


def _copy(ledger: AccountLedger) -> AccountLedger:
    """A ledger whose windows the caller may change without changing the store's."""
    return replace(ledger, windows=dict[str, WindowRecord](ledger.windows))
