"""Chat front ends: each answers ``/claude-usage`` on its platform and offers alert
destinations. The composition root picks them from the settings; the Slack and Discord
SDKs are imported only inside their own modules.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Literal, Protocol

from usage_bot._clock import Clock
from usage_bot._notify import Notifier

log = logging.getLogger(__name__)

CommandOutcome = Literal["ok", "refused", "error"]
CommandListener = Callable[[CommandOutcome, float], None]
"""Hears of every ``/claude-usage`` answered: its outcome and the seconds the user waited
for the whole answer (follow-ups included); the runner feeds it to the metrics."""


class ReconnectGrace:
    """A connection's health, forgiving a short drop: the SDKs reconnect on their own, so
    a front end counts as unwell only once it has been down for ``seconds``."""

    def __init__(self, clock: Clock, seconds: float) -> None:
        self._clock = clock
        self._seconds = seconds
        self._down_since: float | None = None

    def count_from_now(self) -> None:
        """Treat the connection as down from now (it is still being made)."""
        self._down_since = self._clock.monotonic()

    def healthy(self, connected: bool) -> bool:
        if connected:
            self._down_since = None
            return True
        now = self._clock.monotonic()
        if self._down_since is None:
            self._down_since = now
        return now - self._down_since < self._seconds


class FrontEnd(Protocol):
    """What the composition root needs of a front end."""

    @property
    def name(self) -> str: ...

    async def start(self) -> None:
        """Connect and begin answering; returns once running (work goes on in tasks).
        Raises :class:`usage_bot._exceptions.UsageBotError` when it cannot start."""
        ...

    async def stop(self) -> None:
        """Stop taking new commands, finish what is in flight, disconnect."""
        ...

    def healthy(self) -> bool:
        """True while connected (or reconnecting within reason)."""
        ...

    def notifiers(self) -> Sequence[Notifier]:
        """The alert destinations this front end offers (may be empty)."""
        ...


class Answers:
    """The ``/claude-usage`` answers under way in a front end.

    :meth:`run` answers one command: the user hears one sentence whatever goes wrong,
    and the listener hears the outcome and how long the user waited (real time, not the
    injected clock). :meth:`finish` lets the answers under way end when the front end
    stops, cancelling those that take longer than the grace.
    """

    def __init__(self, listener: CommandListener | None) -> None:
        self._listener = listener
        self._tasks: set[asyncio.Task[Any]] = set()

    async def run(
        self,
        answer: Awaitable[CommandOutcome],
        *,
        failed: Callable[[], Awaitable[None]],
        platform: str,
    ) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        started = time.perf_counter()
        outcome: CommandOutcome = "error"
        try:
            outcome = await answer
        except Exception:
            log.exception("%s: answering /claude-usage failed", platform)
            try:
                await failed()
            except Exception:
                log.warning("%s: could not tell the user that it failed", platform, exc_info=True)
        finally:
            if self._listener is not None:
                self._listener(outcome, time.perf_counter() - started)

    async def finish(self, grace: float) -> None:
        if not self._tasks:
            return
        _, late = await asyncio.wait(self._tasks, timeout=grace)
        for task in late:
            task.cancel()
        await asyncio.gather(*late, return_exceptions=True)
