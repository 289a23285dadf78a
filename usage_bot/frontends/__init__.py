"""Chat front ends: each answers ``/claude-usage`` on its platform. The composition root
(:mod:`usage_bot._app`) picks them from the settings; a platform's SDK is imported only
inside its own package (``frontends/slack/``, ``frontends/discord/``), and importing this
module or those packages' ``__init__`` imports none.

What every front end shares is here: the :class:`FrontEnd` protocol, the
:class:`CommandCore` that turns a command into :class:`Reply` values (the same for every
platform: only their layout differs), :class:`Answers` for the answers under way, and
:class:`ReconnectGrace` for a connection's health.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from usage_bot._clock import Clock
from usage_bot._command import AccessPolicy, Caller, Plan, Refused, ShowHelp, Visibility, plan
from usage_bot._events import NO_OBSERVER, CommandAnswered, CommandOutcome, Observer
from usage_bot._model import AccountUsage
from usage_bot._report import AccountReport, build_report
from usage_bot._service import UsageService
from usage_bot._texts import FETCHING, FETCHING_SHARED, refused

log = logging.getLogger(__name__)


class FrontEnd(Protocol):
    """What the composition root needs of a front end."""

    @property
    def name(self) -> str: ...

    async def start(self) -> None:
        """Connect and begin answering; returns once running (work goes on in tasks).
        Raises :class:`usage_bot._exceptions.FrontEndFailed` when it cannot start."""
        ...

    async def stop(self) -> None:
        """Stop taking new commands, finish what is in flight, disconnect."""
        ...

    def healthy(self) -> bool:
        """True while connected (or reconnecting within reason)."""
        ...


# -- the command core ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Reply:
    """One answer to ``/claude-usage``, before any platform lays it out.

    ``kind`` is ``usage`` (the ``reports``; ``pending``: newer values follow), ``help``
    (``not_understood`` the text that was not, when that is why; ``accounts`` to choose
    from) or ``notice`` (one sentence, ``text``: a refusal, "fetching", a failure).
    """

    kind: Literal["usage", "help", "notice"]
    visibility: Visibility = "private"
    reports: tuple[AccountReport, ...] = ()
    pending: bool = False
    text: str = ""
    not_understood: str | None = None
    accounts: tuple[str, ...] = ()
    refused: bool = False


@dataclass(frozen=True, slots=True)
class Answer:
    """The reply to give now, and, when the upstream is slow, the one to follow it."""

    now: Reply
    later: asyncio.Future[Reply] | None = None


class CommandCore:
    """The one ``/claude-usage`` of every front end: the plan (:mod:`usage_bot._command`),
    then what the usage service can say within the platform's patience."""

    def __init__(self, *, service: UsageService, clock: Clock) -> None:
        self._service = service
        self._clock = clock

    @property
    def accounts(self) -> tuple[str, ...]:
        return self._service.accounts

    def plan(self, text: str, *, caller: Caller, policy: AccessPolicy) -> Plan | Refused:
        return plan(text, caller=caller, accounts=self._service.accounts, policy=policy)

    async def answer(self, decided: Plan | Refused, *, platform: str, within: float) -> Answer:
        """The answer to ``decided``; waits for the upstream at most ``within`` seconds.

        Answered at once from what is known when no account needs the upstream; else the
        upstream gets ``within`` seconds; else the known values (or, with none known or
        for the channel, a notice) now, and the fresh report later.
        """
        if isinstance(decided, Refused):
            text = refused(decided.reason, platform)
            return Answer(Reply("notice", text=text, refused=True))
        request = decided.request
        if isinstance(request, ShowHelp):
            reply = Reply("help", not_understood=request.not_understood, accounts=self.accounts)
            return Answer(reply)
        names, shown = decided.accounts, decided.visibility
        service = self._service
        if not any(service.would_fetch(name) for name in names):
            return Answer(self._usage([service.peek(n) for n in names], shown))
        fetching = asyncio.ensure_future(asyncio.gather(*(service.get(n) for n in names)))
        done, _ = await asyncio.wait({fetching}, timeout=within)
        if done:
            return Answer(self._usage(fetching.result(), shown))
        known = [service.peek(name) for name in names]
        if shown == "private" and all(usage.snapshot is not None for usage in known):
            now = self._usage(known, "private", pending=True)
        else:
            now = Reply("notice", text=FETCHING_SHARED if shown == "channel" else FETCHING)

        async def later() -> Reply:
            return self._usage(await fetching, shown)

        # A task, not a bare coroutine: a front end that could not send ``now`` need not
        # await it (the request goes on for the cache's sake either way).
        return Answer(now, asyncio.ensure_future(later()))

    def _usage(
        self, usages: Sequence[AccountUsage], shown: Visibility, *, pending: bool = False
    ) -> Reply:
        now = self._clock.now()
        reports = tuple(build_report(usage, now) for usage in usages)
        return Reply("usage", visibility=shown, reports=reports, pending=pending)


# -- what every front end needs besides ------------------------------------------------------


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


class Answers:
    """The ``/claude-usage`` answers under way in a front end.

    :meth:`run` answers one command: the user hears one sentence whatever goes wrong, and
    the observer hears :class:`~usage_bot._events.CommandAnswered` (real time, not the
    injected clock). :meth:`finish` lets the answers under way end when the front end
    stops, cancelling those that take longer than the grace.
    """

    def __init__(self, platform: str, observer: Observer = NO_OBSERVER) -> None:
        self._platform = platform
        self._observer = observer
        self._tasks: set[asyncio.Task[Any]] = set()

    async def run(
        self,
        answer: Awaitable[CommandOutcome],
        *,
        failed: Callable[[], Awaitable[None]],
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
            log.exception("%s: answering /claude-usage failed", self._platform)
            try:
                await failed()
            except Exception:
                log.warning(
                    "%s: could not tell the user that it failed", self._platform, exc_info=True
                )
        finally:
            seconds = time.perf_counter() - started
            self._observer.observe(CommandAnswered(self._platform, outcome, seconds))

    async def finish(self, grace: float) -> None:
        # Not the caller's own task: a command whose answer stops the front end (a test)
        # must not wait for itself.
        others = self._tasks - {asyncio.current_task()}
        if not others:
            return
        _, late = await asyncio.wait(others, timeout=grace)
        for task in late:
            task.cancel()
        await asyncio.gather(*late, return_exceptions=True)
