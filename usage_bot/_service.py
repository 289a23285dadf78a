"""The usage service: the one place that asks the upstream, and the cache in front of it.

However many slash commands and scheduled polls ask, each account has at most one
request in flight and at most one every ``min_interval`` seconds (30, or the poll
interval when shorter). A 429 waits as a positive ``retry-after`` says (capped at an
hour); without one, or with ``retry-after: 0`` (as the upstream often answers), it backs
off from 5 minutes, doubling on each 429 in a row, capped at an hour: polling again soon
is what earns the penalties of hours users report. 5xx, timeouts and network errors back
off exponentially from ``min_interval``. While the upstream fails, callers get the last
good snapshot with the error beside it, so they can show its age.

The login is read in a worker thread (a slow disk or the macOS keychain never stalls the
loop), and a login that expires while the service waits out a back-off is noticed at
once: that needs no request, only a look at the file.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from usage_bot._client import MAX_RETRY_AFTER, UsageClient
from usage_bot._clock import Clock
from usage_bot._credentials import CredentialLoader
from usage_bot._events import NO_OBSERVER, Observer, UsageRead
from usage_bot._exceptions import (
    CredentialsError,
    CredentialsExpired,
    RateLimited,
    ScopeMissing,
    UnexpectedResponse,
    UnknownAccount,
    UpstreamError,
    UsageBotError,
)
from usage_bot._model import DEFAULT_THRESHOLDS, AccountUsage, UsageSnapshot, parse_usage

log = logging.getLogger(__name__)

RATE_LIMIT_BACKOFF_START = 300.0
ERROR_BACKOFF_CAP = 600.0


@dataclass
class _AccountState:
    loader: CredentialLoader
    usage: AccountUsage
    next_allowed: float = float("-inf")
    rate_limited_in_a_row: int = 0
    failed_in_a_row: int = 0
    # When the login last read expires: to notice it, during a back-off, without asking.
    login_expires_at: datetime | None = None
    inflight: asyncio.Task[AccountUsage] | None = field(default=None, repr=False)


class UsageService:
    """Per-account cache, single flight and back-off in front of :class:`UsageClient`."""

    def __init__(
        self,
        *,
        loaders: Sequence[CredentialLoader],
        client: UsageClient,
        clock: Clock,
        min_interval: float = 30.0,
        thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
        observer: Observer = NO_OBSERVER,
    ) -> None:
        self._client = client
        self._clock = clock
        self._min_interval = min_interval
        self._thresholds = tuple(thresholds)
        self._accounts = {
            loader.account.name: _AccountState(loader, AccountUsage(loader.account.name, None))
            for loader in loaders
        }
        self._observer = observer

    @property
    def accounts(self) -> tuple[str, ...]:
        return tuple(self._accounts)

    @property
    def clock(self) -> Clock:
        return self._clock

    def peek(self, account: str) -> AccountUsage:
        """What is known now, without asking anyone."""
        return self._state(account).usage

    def peek_all(self) -> list[AccountUsage]:
        """What is known of every account now, in the configured order."""
        return [state.usage for state in self._accounts.values()]

    def would_fetch(self, account: str) -> bool:
        """True when :meth:`get` would have to wait for the upstream."""
        state = self._state(account)
        return state.inflight is not None or self._clock.monotonic() >= state.next_allowed

    def due_in(self, account: str) -> float:
        """Seconds until :meth:`get` may ask the upstream again; 0 when it may now."""
        state = self._state(account)
        if state.inflight is not None:
            return 0.0
        return max(state.next_allowed - self._clock.monotonic(), 0.0)

    async def get(self, account: str) -> AccountUsage:
        """The freshest values the spacing rules allow; never raises for upstream trouble."""
        state = self._state(account)
        if state.inflight is None:
            if self._clock.monotonic() < state.next_allowed:
                await self._notice_expiry(state)
                return state.usage
            state.inflight = asyncio.create_task(self._refresh(state))
            state.inflight.add_done_callback(lambda _: setattr(state, "inflight", None))
        # Shielded: a caller that gives up (a chat deadline) must not cancel the request
        # that every other caller is waiting for.
        return await asyncio.shield(state.inflight)

    async def get_all(self) -> list[AccountUsage]:
        return list(await asyncio.gather(*(self.get(name) for name in self._accounts)))

    async def aclose(self) -> None:
        tasks = [s.inflight for s in self._accounts.values() if s.inflight is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _state(self, account: str) -> _AccountState:
        try:
            return self._accounts[account]
        except KeyError:
            raise UnknownAccount(account) from None

    async def _notice_expiry(self, state: _AccountState) -> None:
        """While the upstream may not be asked, still tell when the login has expired."""
        expires = state.login_expires_at
        if expires is None or expires > self._clock.now():
            return
        if isinstance(state.usage.error, CredentialsExpired):
            return
        try:
            credentials = await asyncio.to_thread(state.loader.read)
        except CredentialsError:
            return  # a login problem of another kind: the next request says which
        state.login_expires_at = credentials.expires_at
        if credentials.expires_at is not None and credentials.expires_at <= self._clock.now():
            self._settle(state, error=CredentialsExpired(credentials.expires_at))

    async def _refresh(self, state: _AccountState) -> AccountUsage:
        clock = self._clock
        started = clock.monotonic()
        try:
            credentials = await asyncio.to_thread(state.loader.load, clock.now())
            state.login_expires_at = credentials.expires_at
            try:
                payload = await self._client.fetch(credentials.token.reveal(), now=clock.now())
            except ScopeMissing:
                # The upstream says what the login did not: say where it came from (its
                # scopes, if it lists any, claim user:profile: not worth repeating).
                raise ScopeMissing(from_file=credentials.from_file) from None
            snapshot = parse_usage(payload, fetched_at=clock.now(), thresholds=self._thresholds)
        except CredentialsError as exc:
            if isinstance(exc, CredentialsExpired):
                state.login_expires_at = exc.expired_at
            # Nothing or a rejected token was sent: re-read the login on the next call, but
            # a request that did reach the upstream still counts against the spacing.
            sent = exc.code in ("credentials_rejected", "scope_missing")
            state.next_allowed = started + (self._min_interval if sent else 0.0)
            return self._settle(state, error=exc)
        except UpstreamError as exc:
            wait = self._backoff(state, exc)
            state.next_allowed = started + wait
            if isinstance(exc, RateLimited):
                exc = RateLimited(exc.retry_after, wait=wait)
            return self._settle(state, error=exc)
        except Exception:
            log.exception("unexpected failure while reading usage for %s", state.loader.account)
            state.next_allowed = started + self._min_interval
            return self._settle(state, error=UnexpectedResponse("an internal error"))
        state.rate_limited_in_a_row = state.failed_in_a_row = 0
        state.next_allowed = started + self._min_interval
        return self._settle(state, snapshot=snapshot)

    def _backoff(self, state: _AccountState, exc: UpstreamError) -> float:
        if isinstance(exc, RateLimited):
            state.rate_limited_in_a_row += 1
            if exc.retry_after:  # a positive retry-after; 0 is no guidance at all
                wait = max(exc.retry_after, self._min_interval)
            else:
                wait = RATE_LIMIT_BACKOFF_START * 2.0 ** (state.rate_limited_in_a_row - 1)
            return min(wait, MAX_RETRY_AFTER)
        state.failed_in_a_row += 1
        wait = self._min_interval * 2.0 ** (state.failed_in_a_row - 1)
        return min(wait, max(ERROR_BACKOFF_CAP, self._min_interval))

    def _settle(
        self,
        state: _AccountState,
        *,
        snapshot: UsageSnapshot | None = None,
        error: UsageBotError | None = None,
    ) -> AccountUsage:
        previous = state.usage
        state.usage = AccountUsage(
            account=previous.account,
            snapshot=snapshot or previous.snapshot,
            error=error,
            checked_at=self._clock.now(),
        )
        if error is not None:
            log.warning("usage for %s: %s", previous.account, error.message)
        self._observer.observe(UsageRead(previous.account, error.code if error else "ok"))
        return state.usage
