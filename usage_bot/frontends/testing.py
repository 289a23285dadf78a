"""A front end in memory, for tests: :meth:`TestFrontEnd.push` a command as a user would
type it, :meth:`TestFrontEnd.pop` the replies in the order a user would see them; and an
alert destination whose posts :meth:`TestFrontEnd.pop_alert` returns. The command goes
through the same :class:`~usage_bot.frontends.CommandCore` as Slack's and Discord's, so
command and alert behaviour is tested without a chat platform; their own tests keep only
what is theirs (the SDK, the layout, the platform's errors).
"""

from __future__ import annotations

import math
from collections import deque

from usage_bot._command import AccessPolicy, Caller
from usage_bot._events import NO_OBSERVER, CommandOutcome, Observer
from usage_bot._exceptions import DeliveryError
from usage_bot._notify import AlertMessage
from usage_bot._texts import FAILED
from usage_bot.frontends import Answers, CommandCore, Reply


class TestFrontEnd:
    """``/claude-usage`` and alerts, in memory. ``patience`` is how long a command may wait
    for the upstream before it says "fetching" (Slack's is a second; by default, as long
    as it takes, so a test reads one reply per command)."""

    __test__ = False  # not a pytest test class, whatever its name

    def __init__(
        self,
        commands: CommandCore,
        *,
        policy: AccessPolicy | None = None,
        platform: str = "test",
        patience: float = math.inf,
        observer: Observer = NO_OBSERVER,
    ) -> None:
        self._commands = commands
        self._policy = policy or AccessPolicy()
        self._platform = platform
        self._patience = None if math.isinf(patience) else patience
        self._answers = Answers(platform, observer)
        self._replies: deque[Reply] = deque()
        self._alerts: deque[AlertMessage] = deque()
        self.failures: deque[DeliveryError] = deque()
        self.running = False

    # -- the front end ----------------------------------------------------------------------

    name = "test"

    async def start(self) -> None:
        self.running = True

    async def stop(self) -> None:
        self.running = False
        await self._answers.finish(1.0)

    def healthy(self) -> bool:
        return self.running

    async def push(
        self,
        text: str = "",
        *,
        user: str = "U0TEST0001",
        channel: str | None = "C0TEST0001",
        server: str | None = None,
        parent_channel: str | None = None,
    ) -> None:
        """Type ``/claude-usage TEXT``; every reply it gets is queued for :meth:`pop`."""
        caller = Caller(self._platform, user, channel, server, parent_channel)

        async def answer() -> CommandOutcome:
            decided = self._commands.plan(text, caller=caller, policy=self._policy)
            within = self._patience if self._patience is not None else 1e9
            given = await self._commands.answer(decided, platform=self._platform, within=within)
            self._replies.append(given.now)
            if given.later is not None:
                self._replies.append(await given.later)
            return "refused" if given.now.refused else "ok"

        async def failed() -> None:
            self._replies.append(Reply("notice", text=FAILED))

        await self._answers.run(answer(), failed=failed)

    def pop(self) -> Reply:
        """The oldest reply not yet looked at; IndexError when there is none."""
        return self._replies.popleft()

    @property
    def replies(self) -> tuple[Reply, ...]:
        return tuple(self._replies)

    # -- the alert destination --------------------------------------------------------------

    async def post(self, message: AlertMessage) -> None:
        """Posted, unless a failure was queued in :attr:`failures` for this post."""
        if self.failures:
            raise self.failures.popleft()
        self._alerts.append(message)

    def pop_alert(self) -> AlertMessage:
        return self._alerts.popleft()

    @property
    def alerts(self) -> tuple[AlertMessage, ...]:
        return tuple(self._alerts)
