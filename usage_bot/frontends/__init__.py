"""Chat front ends: each answers ``/claude-usage`` on its platform and offers alert
destinations. The composition root picks them from the settings; the Slack and Discord
SDKs are imported only inside their own modules.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from usage_bot._notify import Notifier


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
