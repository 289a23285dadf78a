"""What happened, as frozen records, for whoever watches: metrics, and tests.

The parts of the bot that do things (the usage service, the front ends, the delivery
courier) each take one :class:`Observer` and tell it every event, once, as it happens.
Nothing else is wired by callbacks: a new watcher implements :meth:`Observer.observe`,
and a new kind of event is one more record here. An observer that fails is logged and
never stops the work it watches (:class:`Observers` sees to that).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal, Protocol, TypeVar

log = logging.getLogger(__name__)

CommandOutcome = Literal["ok", "refused", "error"]


@dataclass(frozen=True, slots=True)
class UsageRead:
    """One attempt to read an account's usage: ``outcome`` is ``ok`` or the error's code."""

    account: str
    outcome: str


@dataclass(frozen=True, slots=True)
class CommandAnswered:
    """A ``/claude-usage`` was answered in full; ``seconds`` is what the user waited (real
    time, the follow-up included)."""

    platform: str
    outcome: CommandOutcome
    seconds: float


@dataclass(frozen=True, slots=True)
class AlertPosted:
    """An announcement reached a destination (and was recorded as such)."""

    destination: str
    key: str


@dataclass(frozen=True, slots=True)
class AlertFailed:
    """A post did not arrive; it is retried (``retryable``) or waits for a fix."""

    destination: str
    key: str
    retryable: bool


@dataclass(frozen=True, slots=True)
class AlertDropped:
    """An announcement given up because its moment passed (its window ended)."""

    destination: str
    key: str


Event = UsageRead | CommandAnswered | AlertPosted | AlertFailed | AlertDropped
E = TypeVar("E", UsageRead, CommandAnswered, AlertPosted, AlertFailed, AlertDropped)


class Observer(Protocol):
    """Hears of every event; must not block (it runs in the event loop)."""

    def observe(self, event: Event) -> None: ...


class Observers:
    """Several observers as one; one that raises is logged and the others still hear."""

    def __init__(self, observers: Iterable[Observer] = ()) -> None:
        self._observers = list(observers)

    def add(self, observer: Observer) -> None:
        self._observers.append(observer)

    def observe(self, event: Event) -> None:
        for observer in self._observers:
            try:
                observer.observe(event)
            except Exception:
                log.exception("an observer failed on %s", type(event).__name__)


class Recorder:
    """Keeps every event, in order: for tests and the demo."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def observe(self, event: Event) -> None:
        self.events.append(event)

    def of(self, kind: type[E]) -> list[E]:
        return [e for e in self.events if isinstance(e, kind)]


NO_OBSERVER: Observer = Observers()
