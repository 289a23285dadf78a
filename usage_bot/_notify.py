"""Alert destinations: the platform-neutral :class:`AlertMessage` and the :class:`Notifier`
protocol every destination (Slack, Discord, webhooks, the console) implements.

A notifier posts one message or raises :class:`DeliveryError`, saying whether trying again
can help (a 429, a 5xx, a dropped connection) or not (a wrong channel, a revoked token).
Retrying, back-off and exactly-once bookkeeping belong to the alert scheduler, not here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal, Protocol

AlertKind = Literal["threshold", "reset", "incident_started", "incident_ended"]


@dataclass(frozen=True, slots=True)
class AlertMessage:
    """One announcement, before any platform formats it.

    ``text`` is a complete plain sentence without times; ``advice`` (what to do, or the
    fix) is apart, for each platform to set off as it likes (the console adds it to the
    line); ``resets_at`` is rendered by each platform in the reader's own time zone (Slack
    ``<!date^…>``, Discord ``<t:…>``, local time on the console). ``key`` identifies the
    announcement for exactly-once delivery.
    """

    kind: AlertKind
    key: str
    account: str
    title: str
    text: str
    severity: str = "normal"
    limit_id: str | None = None
    limit_label: str | None = None
    percent: float | None = None
    threshold: float | None = None
    resets_at: datetime | None = None
    advice: str | None = None


class Notifier(Protocol):
    """A place alerts go: ``name`` is stable (it keys delivery bookkeeping), e.g.
    ``slack:C0123456789``, ``slack-webhook``, ``discord:1234``, ``discord-webhook``,
    ``console``."""

    @property
    def name(self) -> str: ...

    async def post(self, message: AlertMessage) -> None:
        """Deliver ``message`` once, or raise :class:`DeliveryError`."""
        ...
