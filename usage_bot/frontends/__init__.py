"""Chat front ends: each answers ``/claude-usage`` on its platform and offers alert
destinations. The composition root picks them from the settings; the Slack and Discord
SDKs are imported only inside their own modules.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal, Protocol

from usage_bot._clock import Clock
from usage_bot._notify import Notifier

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
