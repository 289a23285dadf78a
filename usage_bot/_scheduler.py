"""The alert scheduler: polls each account on a schedule, runs the alert engine, and
wakes the courier.

Every ``USAGE_BOT_POLL_SECONDS`` (APScheduler, first run at start) each account is asked
through the shared :class:`~usage_bot._service.UsageService`, so scheduled polls and slash
commands share one cache and one request budget. A poll records the history sample, then
lets :func:`~usage_bot._alerts.assess` decide inside the store's transaction, which
records one pending delivery per announcement and destination (see :mod:`usage_bot.state`
for why that makes announcements exactly-once); the :class:`~usage_bot._delivery.Courier`
posts them. Every few seconds a job drops what expired and wakes the courier again (for
retries); every hour one prunes old history.

Time (for the engine) comes from the injected clock; APScheduler only decides when jobs
run. Tests call :meth:`AlertScheduler.poll_once` and the courier's ``deliver_pending``
directly and never sleep.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

from apscheduler.schedulers.asyncio import (  # type: ignore[import-untyped]  # ships no types
    AsyncIOScheduler,
)

from usage_bot._alerts import AccountLedger, AlertEvent, Assessment, assess
from usage_bot._clock import Clock
from usage_bot._config import Settings
from usage_bot._delivery import Courier
from usage_bot._exceptions import StateUnavailable
from usage_bot._service import UsageService
from usage_bot.state import StateStore

log = logging.getLogger(__name__)

DELIVERY_INTERVAL = 5.0
PRUNE_INTERVAL = 3600.0
# A scheduled poll that comes at most this early (or a quarter of the poll interval, if
# less) for the account's next fetch waits for it rather than reuse the last answer.
POLL_JITTER = 1.0


class AlertScheduler:
    """Polls every account on a schedule; what the engine announces, the courier posts."""

    def __init__(
        self,
        *,
        settings: Settings,
        service: UsageService,
        store: StateStore,
        courier: Courier,
        clock: Clock | None = None,
        delivery_interval: float = DELIVERY_INTERVAL,
    ) -> None:
        self._settings = settings
        self._service = service
        self._store = store
        self._clock = clock or service.clock
        self._delivery_interval = delivery_interval
        self.courier = courier
        self._scheduler: AsyncIOScheduler | None = None
        self._stopping = False

    def healthy(self) -> bool:
        """True while the scheduler runs its jobs."""
        return self._scheduler is not None and self._scheduler.running and not self._stopping

    # -- start and stop ---------------------------------------------------------------

    async def start(self) -> None:
        """Schedule the polls (the first at once), retries and pruning in the running loop."""
        if self._scheduler is not None:
            raise RuntimeError("the alert scheduler is already started")
        self._stopping = False
        scheduler = AsyncIOScheduler(event_loop=asyncio.get_running_loop(), timezone=UTC)
        first = datetime.now(UTC)
        common = {"coalesce": True, "max_instances": 1, "misfire_grace_time": None}
        for account in self._service.accounts:
            scheduler.add_job(
                self._poll_job,
                "interval",
                seconds=self._settings.upstream.poll_seconds,
                args=[account],
                id=f"poll:{account}",
                next_run_time=first,
                **common,
            )
        scheduler.add_job(
            self._deliver_job,
            "interval",
            seconds=self._delivery_interval,
            id="deliver",
            **common,
        )
        scheduler.add_job(
            self._prune_job,
            "interval",
            seconds=PRUNE_INTERVAL,
            id="prune",
            next_run_time=first,
            **common,
        )
        if logging.getLogger("apscheduler").level == logging.NOTSET:
            # Unless told otherwise, keep APScheduler from logging every run of every job.
            logging.getLogger("apscheduler").setLevel(logging.WARNING)
        scheduler.start()
        self._scheduler = scheduler
        log.info(
            "alert scheduler started: %d account(s) every %d s, destinations: %s",
            len(self._service.accounts),
            self._settings.upstream.poll_seconds,
            ", ".join(self.courier.destinations) or "none",
        )

    async def stop(self) -> None:
        """No new jobs; polls and posts under way finish within the courier's grace."""
        self._stopping = True
        scheduler, self._scheduler = self._scheduler, None
        if scheduler is not None:
            scheduler.pause()
        await self.courier.stop()
        if scheduler is not None and scheduler.running:
            scheduler.shutdown(wait=False)
            # APScheduler shuts down in a loop callback: let it run while the loop is alive.
            await asyncio.sleep(0)

    # -- the work ---------------------------------------------------------------------

    async def poll_once(self, account: str) -> tuple[AlertEvent, ...]:
        """Ask for the account's usage, record it, and queue what the engine announces."""
        usage = await self._service.get(account)
        if usage.error is None and usage.snapshot is not None:
            await self._store.record_usage(account, usage.snapshot)
        now = self._clock.now()
        alerts = self._settings.alerts

        def step(ledger: AccountLedger) -> Assessment:
            return assess(
                ledger,
                usage,
                now=now,
                thresholds=alerts.thresholds,
                reset_announce=alerts.reset_announce,
                expired_login_alert_after=alerts.expired_login_alert_after,
            )

        assessment = await self._store.update_ledger(
            account, step, destinations=self.courier.destinations, now=now
        )
        for event in assessment.events:
            log.info("alert for %s: %s", account, event.key)
        return assessment.events

    async def poll_all(self) -> tuple[AlertEvent, ...]:
        events: list[AlertEvent] = []
        for account in self._service.accounts:
            events.extend(await self.poll_once(account))
        return tuple(events)

    async def deliver_pending(self) -> None:
        """What the deliver job does, and waits for: drop what expired, post what is due."""
        await self.courier.deliver_pending()

    # -- jobs (exceptions end here: a job that raises would only be logged by APScheduler)

    async def _poll_job(self, account: str) -> None:
        async with self.courier.tracked():
            if self._stopping:
                return
            # With a poll interval of 30 s or less the spacing is the poll interval: a poll
            # that fires a few ms before the last fetch is that old would get the same
            # answer again, and the account would be fetched every other poll only.
            wait = self._service.due_in(account)
            if 0 < wait <= min(POLL_JITTER, self._settings.upstream.poll_seconds / 4):
                await asyncio.sleep(wait)
            try:
                await self.poll_once(account)
            except StateUnavailable as exc:
                # A locked or read-only store is the operator's to fix, not a bug: one
                # sentence, and the next poll catches up.
                log.error(
                    "the poll of %s was not recorded, and the next poll tries again: %s",
                    account,
                    exc.message,
                )
            except Exception:
                log.exception("the scheduled poll of %s failed", account)
            self.courier.wake()

    async def _deliver_job(self) -> None:
        async with self.courier.tracked():
            if self._stopping:
                return
            try:
                await self.courier.drop_expired()
            except StateUnavailable as exc:
                log.error(
                    "dropping alerts whose moment passed waits for the state: %s", exc.message
                )
            except Exception:
                log.exception("dropping alerts whose moment passed failed")
            self.courier.wake()

    async def _prune_job(self) -> None:
        async with self.courier.tracked():
            if self._stopping:
                return
            try:
                removed = await self._store.prune(now=self._clock.now())
            except StateUnavailable as exc:
                log.error("pruning old history waits for the state: %s", exc.message)
            except Exception:
                log.exception("pruning the state store failed")
            else:
                if removed:
                    log.info("pruned %d old record(s) from the state store", removed)
