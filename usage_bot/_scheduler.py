"""The alert scheduler: polls each account, runs the alert engine, delivers what it says.

Every ``USAGE_BOT_POLL_SECONDS`` (APScheduler, first run at start) each account is asked
through the shared :class:`~usage_bot._service.UsageService`, so scheduled polls and slash
commands share one cache and one request budget. A poll records the history sample, then
lets :func:`~usage_bot._alerts.assess` decide inside the store's transaction, which
records one pending delivery per announcement and destination (see :mod:`usage_bot.state`
for why that makes announcements exactly-once).

Delivery is per destination, each in its own task, so one failing destination neither
blocks nor duplicates the others; and a poll only wakes those tasks, never waits for
them, so a slow chat platform does not hold up the polls (nor, through them, the
alerts to the other destinations). Within a destination, announcements go out in order:

- a :class:`~usage_bot._notify.DeliveryError` with ``retryable`` (or any unexpected error,
  or a post that takes over :data:`POST_TIMEOUT`) is retried with exponential back-off,
  or after ``retry_after`` when the platform says so;
- one that is not retryable (a wrong channel, a revoked token) is logged once with its
  message, which says the fix, and retried only every :data:`NOT_RETRYABLE_PAUSE`, in
  case someone fixes it;
- an announcement whose moment has passed (a threshold alert after its window reset) is
  dropped with a log line;
- a post that arrived but whose confirm cannot be written (the database locked or
  failing) is remembered, and its confirm retried before anything else goes to that
  destination: left to its lease, it would be posted again.

Time (for the engine and the back-off) comes from the injected clock; APScheduler only
decides when jobs run. Tests call :meth:`AlertScheduler.poll_once` and
:meth:`AlertScheduler.deliver_pending` directly and never sleep.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import sqlite3
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

from apscheduler.schedulers.asyncio import (  # type: ignore[import-untyped]  # ships no types
    AsyncIOScheduler,
)

from usage_bot._alerts import AccountLedger, AlertEvent, Assessment, assess
from usage_bot._clock import Clock
from usage_bot._config import Settings
from usage_bot._exceptions import DeliveryError
from usage_bot._notify import Notifier
from usage_bot._service import UsageService
from usage_bot.state import Delivery, StateStore

log = logging.getLogger(__name__)

# A claim outlives the longest post, so no one else retries a post still under way.
POST_TIMEOUT = 60.0
LEASE = timedelta(seconds=120)
RETRY_START = 5.0
RETRY_CAP = 300.0
MAX_RETRY_AFTER = 3600.0
NOT_RETRYABLE_PAUSE = 3600.0
DELIVERY_INTERVAL = 5.0
PRUNE_INTERVAL = 3600.0
# A scheduled poll that comes at most this early (or a quarter of the poll interval, if
# less) for the account's next fetch waits for it rather than reuse the last answer.
POLL_JITTER = 1.0
# Of the 10 s a container gets after SIGTERM: time left for posts already under way.
STOP_GRACE = 5.0


class AlertScheduler:
    """Polls every account on a schedule and delivers alerts to every notifier."""

    def __init__(
        self,
        *,
        settings: Settings,
        service: UsageService,
        store: StateStore,
        notifiers: Sequence[Notifier] = (),
        clock: Clock | None = None,
        delivery_interval: float = DELIVERY_INTERVAL,
        stop_grace: float = STOP_GRACE,
        owner: str | None = None,
    ) -> None:
        self._settings = settings
        self._service = service
        self._store = store
        self._clock = clock or service.clock
        self._delivery_interval = delivery_interval
        self._stop_grace = stop_grace
        self._owner = owner or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._notifiers: dict[str, Notifier] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._failures: Counter[str] = Counter()
        self._reported: dict[str, str] = {}
        self._posted: Counter[str] = Counter()
        self._failed: Counter[str] = Counter()
        self._dropped: Counter[str] = Counter()
        self._polls: Counter[str] = Counter()
        self._scheduler: AsyncIOScheduler | None = None
        self._running: set[asyncio.Task[object]] = set()
        self._workers: dict[str, asyncio.Task[None]] = {}
        self._wanted: set[str] = set()
        self._unconfirmed: dict[str, Delivery] = {}
        self._stopping = False
        for notifier in notifiers:
            self.add_notifier(notifier)

    # -- configuration ----------------------------------------------------------------

    def add_notifier(self, notifier: Notifier) -> None:
        """Send alerts to ``notifier`` too; its ``name`` keys its delivery bookkeeping."""
        if notifier.name in self._notifiers:
            raise ValueError(f"two alert destinations are both named {notifier.name!r}")
        self._notifiers[notifier.name] = notifier
        self._locks[notifier.name] = asyncio.Lock()
        for counter in (self._posted, self._failed, self._dropped):
            counter[notifier.name] += 0

    @property
    def destinations(self) -> tuple[str, ...]:
        return tuple(self._notifiers)

    # -- metrics ----------------------------------------------------------------------

    @property
    def posted(self) -> Mapping[str, int]:
        """Alerts posted, per destination."""
        return dict(self._posted)

    @property
    def failed(self) -> Mapping[str, int]:
        """Failed post attempts (each retry counts), per destination."""
        return dict(self._failed)

    @property
    def dropped(self) -> Mapping[str, int]:
        """Alerts given up because their moment passed, per destination."""
        return dict(self._dropped)

    def alert_counts(self) -> Mapping[str, tuple[int, int]]:
        """``{destination: (posted, failed)}``, as :class:`usage_bot._metrics.Metrics` reads."""
        return {name: (self._posted[name], self._failed[name]) for name in self._posted}

    @property
    def polls(self) -> Mapping[str, int]:
        """Polls completed, per account."""
        return dict(self._polls)

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
            ", ".join(self._notifiers) or "none",
        )

    async def stop(self) -> None:
        """Let posts under way finish (within ``stop_grace``), then close the store.

        Anything not finished by then stays claimed in the store and is retried (by this
        process after a restart, or by another one) once its lease has passed.
        """
        self._stopping = True
        scheduler, self._scheduler = self._scheduler, None
        if scheduler is not None:
            scheduler.pause()
        if self._running:
            _, late = await asyncio.wait(set(self._running), timeout=self._stop_grace)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
        if scheduler is not None and scheduler.running:
            scheduler.shutdown(wait=False)
            # APScheduler shuts down in a loop callback: let it run while the loop is alive.
            await asyncio.sleep(0)
        await self._store.close()

    # -- the work ---------------------------------------------------------------------

    async def poll_once(self, account: str) -> tuple[AlertEvent, ...]:
        """Ask for the account's usage, record it, and queue what the engine announces."""
        usage = await self._service.get(account)
        if usage.error is None and usage.snapshot is not None:
            await self._store.record_usage(account, usage.snapshot)
        now = self._clock.now()

        def step(ledger: AccountLedger) -> Assessment:
            return assess(
                ledger,
                usage,
                now=now,
                thresholds=self._settings.alerts.thresholds,
                reset_announce=self._settings.alerts.reset_announce,
                expired_login_alert_after=self._settings.alerts.expired_login_alert_after,
            )

        assessment = await self._store.update_ledger(
            account, step, destinations=tuple(self._notifiers), now=now
        )
        self._polls[account] += 1
        for event in assessment.events:
            log.info("alert for %s: %s", account, event.key)
        return assessment.events

    async def poll_all(self) -> tuple[AlertEvent, ...]:
        events: list[AlertEvent] = []
        for account in self._service.accounts:
            events.extend(await self.poll_once(account))
        return tuple(events)

    async def deliver_pending(self) -> None:
        """Post every delivery that is due, each destination on its own."""
        await self._drop_expired()
        notifiers = list(self._notifiers.values())
        results = await asyncio.gather(
            *(self._deliver_to(n) for n in notifiers), return_exceptions=True
        )
        for notifier, result in zip(notifiers, results, strict=True):
            if isinstance(result, Exception):
                log.error(
                    "delivering alerts to %s failed (%s); they stay queued",
                    notifier.name,
                    type(result).__name__,
                )
            elif isinstance(result, BaseException):
                raise result

    async def _drop_expired(self) -> None:
        for delivery in await self._store.expire(now=self._clock.now()):
            self._dropped[delivery.destination] += 1
            log.warning(
                "gave up posting %s to %s: its moment passed (after %d attempt(s))",
                delivery.key,
                delivery.destination,
                delivery.attempts,
            )

    def _wake_deliveries(self) -> None:
        """Have each destination's worker post what is due, without waiting for it."""
        if self._stopping:
            return
        for name, notifier in self._notifiers.items():
            self._wanted.add(name)
            worker = self._workers.get(name)
            if worker is None or worker.done():  # done: cancelled before it ever ran
                self._workers[name] = asyncio.create_task(
                    self._worker(notifier), name=f"usage-bot deliveries to {name}"
                )

    async def _worker(self, notifier: Notifier) -> None:
        """Deliver to one destination for as long as it is woken; one per destination."""
        name = notifier.name
        async with self._tracked():
            try:
                while name in self._wanted and not self._stopping:
                    self._wanted.discard(name)
                    try:
                        await self._deliver_to(notifier)
                    except Exception as exc:  # noqa: BLE001 - the queue keeps them; say so
                        log.error(
                            "delivering alerts to %s failed (%s); they stay queued",
                            name,
                            type(exc).__name__,
                        )
            finally:
                # With no await since the last look at _wanted, no wake-up is lost.
                if self._workers.get(name) is asyncio.current_task():
                    del self._workers[name]

    async def _deliver_to(self, notifier: Notifier) -> None:
        name = notifier.name
        async with self._locks[name]:
            unconfirmed = self._unconfirmed.get(name)
            if unconfirmed is not None and not await self._confirm(unconfirmed):
                return
            while not self._stopping:
                try:
                    delivery = await self._store.claim_next(
                        name, owner=self._owner, now=self._clock.now(), lease=LEASE
                    )
                except Exception:
                    log.exception("cannot read the alert queue for %s", name)
                    return
                if delivery is None:
                    return
                if not await self._post(notifier, delivery):
                    return

    async def _post(self, notifier: Notifier, delivery: Delivery) -> bool:
        """One attempt; True when it arrived (so the next one may go)."""
        name = notifier.name
        try:
            async with asyncio.timeout(POST_TIMEOUT):
                await notifier.post(delivery.message)
        except DeliveryError as exc:
            await self._failed_post(delivery, exc.retryable, exc.retry_after, exc.message)
            return False
        except TimeoutError:
            reason = f"the post took over {POST_TIMEOUT:.0f} s"
            await self._failed_post(delivery, True, None, reason)
            return False
        except Exception as exc:  # noqa: BLE001 - a notifier's bug is retried like a 5xx
            # Only the type is logged: an unexpected error's text may quote a webhook URL.
            reason = f"unexpected {type(exc).__name__}"
            await self._failed_post(delivery, True, None, reason)
            return False
        self._posted[name] += 1
        self._failures[name] = 0
        if self._reported.pop(name, None) is not None:
            log.info("alerts reach %s again", name)
        return await self._confirm(delivery)

    async def _confirm(self, delivery: Delivery) -> bool:
        """Write down that ``delivery`` arrived; False if that cannot be done now."""
        name = delivery.destination
        try:
            confirmed = await self._store.confirm(delivery, now=self._clock.now())
        except Exception as exc:  # noqa: BLE001 - retried before the destination's next post
            if name not in self._unconfirmed:
                log.warning(
                    "%s reached %s but the state database cannot record it (%s: %s); "
                    "recording it is retried before anything else is posted there",
                    delivery.key,
                    name,
                    type(exc).__name__,
                    exc,
                )
            self._unconfirmed[name] = delivery
            return False
        if self._unconfirmed.pop(name, None) is not None:
            log.info("recorded that %s reached %s", delivery.key, name)
        if not confirmed:
            log.warning("%s was also posted to %s by another process", delivery.key, name)
        return True

    async def _failed_post(
        self,
        delivery: Delivery,
        retryable: bool,
        retry_after: float | None,
        reason: str,
    ) -> None:
        name = delivery.destination
        self._failed[name] += 1
        self._failures[name] += 1
        if retryable:
            if retry_after is not None:
                wait = min(max(retry_after, 0.0), MAX_RETRY_AFTER)
            else:
                wait = min(RETRY_START * 2.0 ** (self._failures[name] - 1), RETRY_CAP)
            log.warning(
                "could not post %s to %s (%s); retrying in %.0f s", delivery.key, name, reason, wait
            )
        else:
            wait = NOT_RETRYABLE_PAUSE
            if self._reported.get(name) != reason:
                self._reported[name] = reason
                log.error("alerts cannot reach %s: %s", name, reason)
        retry_at = self._clock.now() + timedelta(seconds=wait)
        await self._store.release(delivery, retry_at=retry_at, error=reason)

    # -- jobs (exceptions end here: a job that raises would only be logged by APScheduler)

    async def _poll_job(self, account: str) -> None:
        async with self._tracked():
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
            except sqlite3.Error as exc:
                # A locked or read-only database is the operator's to fix, not a bug: one
                # sentence, and the next poll catches up.
                log.error(
                    "the poll of %s could not be recorded in USAGE_BOT_STATE (%s); the next "
                    "poll tries again",
                    account,
                    exc,
                )
            except Exception:
                log.exception("the scheduled poll of %s failed", account)
            self._wake_deliveries()

    async def _deliver_job(self) -> None:
        async with self._tracked():
            if self._stopping:
                return
            try:
                await self._drop_expired()
            except Exception:
                log.exception("dropping alerts whose moment passed failed")
            self._wake_deliveries()

    async def _prune_job(self) -> None:
        async with self._tracked():
            if self._stopping:
                return
            try:
                removed = await self._store.prune(now=self._clock.now())
            except Exception:
                log.exception("pruning the state database failed")
            else:
                if removed:
                    log.info("pruned %d old record(s) from the state database", removed)

    @asynccontextmanager
    async def _tracked(self) -> AsyncIterator[None]:
        """Remember the job's task, so that :meth:`stop` can let it finish."""
        task = asyncio.current_task()
        if task is not None:
            self._running.add(task)
        try:
            yield
        finally:
            if task is not None:
                self._running.discard(task)
