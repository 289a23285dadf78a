"""The courier: takes the announcements the state store holds and posts them, each to
each destination, exactly once (see :mod:`usage_bot.state` for claim, post, confirm).

Delivery is per destination, each in its own task, so one failing destination neither
blocks nor duplicates the others; and :meth:`Courier.wake` only starts those tasks, never
waits for them, so a slow chat platform does not hold up the polls (nor, through them,
the alerts to the other destinations). Within a destination, announcements go out in
order:

- a :class:`~usage_bot._exceptions.DeliveryError` with ``retryable`` (or any unexpected
  error, or a post that takes over :data:`POST_DEADLINE`) is retried with exponential
  back-off, or after ``retry_after`` when the platform says so;
- one that is not retryable (a wrong channel, a revoked token) is logged once with its
  message, which says the fix, and retried only every :data:`NOT_RETRYABLE_PAUSE`, in
  case someone fixes it;
- an announcement whose moment has passed (a threshold alert after its window reset) is
  dropped with a log line;
- a post that arrived but whose confirm cannot be written (the state store locked or
  failing) is remembered, and its confirm retried before anything else goes to that
  destination: left to its lease, it would be posted again.

Every post, failure and drop is told to the observer. Time for the back-off comes from the
injected clock; tests call :meth:`Courier.deliver_pending` and never sleep.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import timedelta

from usage_bot._clock import Clock
from usage_bot._events import NO_OBSERVER, AlertDropped, AlertFailed, AlertPosted, Observer
from usage_bot._exceptions import DeliveryError, StateUnavailable
from usage_bot._notify import Notifier
from usage_bot._timing import MAX_RETRY_AFTER, STOP_GRACE
from usage_bot.state import Delivery, DeliveryQueue

log = logging.getLogger(__name__)

# A claim outlives the longest post, so no one else retries a post still under way.
POST_DEADLINE = 60.0
LEASE = timedelta(seconds=120)
RETRY_START = 5.0
RETRY_CAP = 300.0
NOT_RETRYABLE_PAUSE = 3600.0


class Courier:
    """Posts what the queue holds to every destination; one worker task per destination."""

    def __init__(
        self,
        *,
        queue: DeliveryQueue,
        clock: Clock,
        owner: str,
        notifiers: Sequence[Notifier] = (),
        observer: Observer = NO_OBSERVER,
        stop_grace: float = STOP_GRACE,
    ) -> None:
        self._queue = queue
        self._clock = clock
        self._owner = owner
        self._observer = observer
        self._stop_grace = stop_grace
        self._notifiers: dict[str, Notifier] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._failures: Counter[str] = Counter()
        self._reported: dict[str, str] = {}
        self._workers: dict[str, asyncio.Task[None]] = {}
        self._wanted: set[str] = set()
        self._unconfirmed: dict[str, Delivery] = {}
        self._running: set[asyncio.Task[object]] = set()
        self._stopping = False
        for notifier in notifiers:
            self.add(notifier)

    def add(self, notifier: Notifier) -> None:
        """Send alerts to ``notifier`` too; its ``name`` keys its delivery bookkeeping."""
        if notifier.name in self._notifiers:
            raise ValueError(f"two alert destinations are both named {notifier.name!r}")
        self._notifiers[notifier.name] = notifier
        self._locks[notifier.name] = asyncio.Lock()

    @property
    def destinations(self) -> tuple[str, ...]:
        return tuple(self._notifiers)

    # -- the work ---------------------------------------------------------------------

    async def deliver_pending(self) -> None:
        """Post every delivery that is due, each destination on its own, and wait."""
        await self.drop_expired()
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

    async def drop_expired(self) -> None:
        """Give up the announcements whose moment has passed (logged, and observed)."""
        for delivery in await self._queue.expire(now=self._clock.now()):
            self._observer.observe(AlertDropped(delivery.destination, delivery.key))
            log.warning(
                "gave up posting %s to %s: its moment passed (after %d attempt(s))",
                delivery.key,
                delivery.destination,
                delivery.attempts,
            )

    def wake(self) -> None:
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

    async def stop(self) -> None:
        """Let posts under way finish (within ``stop_grace``), then stop taking more.

        Anything not finished by then stays claimed in the store and is retried (by this
        process after a restart, or by another one) once its lease has passed.
        """
        self._stopping = True
        running = set(self._running) | set(self._workers.values())
        if running:
            _, late = await asyncio.wait(running, timeout=self._stop_grace)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)

    @asynccontextmanager
    async def tracked(self) -> AsyncIterator[None]:
        """Remember the calling task, so that :meth:`stop` lets it finish."""
        task = asyncio.current_task()
        if task is not None:
            self._running.add(task)
        try:
            yield
        finally:
            if task is not None:
                self._running.discard(task)

    async def _worker(self, notifier: Notifier) -> None:
        """Deliver to one destination for as long as it is woken; one per destination."""
        name = notifier.name
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
                    delivery = await self._queue.claim_next(
                        name, owner=self._owner, now=self._clock.now(), lease=LEASE
                    )
                except StateUnavailable as exc:
                    log.error("cannot read the alert queue for %s: %s", name, exc.message)
                    return
                if delivery is None:
                    return
                if not await self._post(notifier, delivery):
                    return

    async def _post(self, notifier: Notifier, delivery: Delivery) -> bool:
        """One attempt; True when it arrived (so the next one may go)."""
        name = notifier.name
        try:
            async with asyncio.timeout(POST_DEADLINE):
                await notifier.post(delivery.message)
        except DeliveryError as exc:
            await self._failed_post(delivery, exc.retryable, exc.retry_after, exc.message)
            return False
        except TimeoutError:
            reason = f"the post took over {POST_DEADLINE:.0f} s"
            await self._failed_post(delivery, True, None, reason)
            return False
        except Exception as exc:  # noqa: BLE001 - a notifier's bug is retried like a 5xx
            # Only the type is logged: an unexpected error's text may quote a webhook URL.
            reason = f"unexpected {type(exc).__name__}"
            await self._failed_post(delivery, True, None, reason)
            return False
        self._observer.observe(AlertPosted(name, delivery.key))
        self._failures[name] = 0
        if self._reported.pop(name, None) is not None:
            log.info("alerts reach %s again", name)
        return await self._confirm(delivery)

    async def _confirm(self, delivery: Delivery) -> bool:
        """Write down that ``delivery`` arrived; False if that cannot be done now."""
        name = delivery.destination
        try:
            confirmed = await self._queue.confirm(delivery, now=self._clock.now())
        except StateUnavailable as exc:
            if name not in self._unconfirmed:
                log.warning(
                    "%s reached %s but the state store cannot record it, so recording it is "
                    "retried before anything else is posted there: %s",
                    delivery.key,
                    name,
                    exc.message,
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
        self._observer.observe(AlertFailed(name, delivery.key, retryable))
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
        await self._queue.release(delivery, retry_at=retry_at, error=reason)
