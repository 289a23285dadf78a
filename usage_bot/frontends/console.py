"""The console: alerts as one line each on a terminal, and the console front end.

The console is an alert destination always (in a container, alerts then reach the
logs too) and the front end when no chat platform is configured. Times are local.
"""

from __future__ import annotations

import asyncio
import shutil
import sys
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import TextIO

from usage_bot._exceptions import DeliveryError
from usage_bot._notify import AlertMessage, Notifier
from usage_bot._report import build_report
from usage_bot._service import UsageService
from usage_bot._terminal import render_reports

_MARKS = {"critical": "!!", "warning": "! "}


class ConsoleNotifier:
    """Prints each alert as one line to ``stream`` (standard output by default)."""

    name = "console"

    def __init__(self, stream: TextIO | None = None) -> None:
        # None: whatever sys.stdout is when posting, so redirection (and pytest) work.
        self._stream = stream

    async def post(self, message: AlertMessage) -> None:
        stream = self._stream or sys.stdout
        try:
            stream.write(format_alert_line(message) + "\n")
            stream.flush()
        except (OSError, ValueError) as exc:
            # ValueError: the stream was closed under us; trying again will not reopen it.
            raise DeliveryError(
                f"cannot write alerts to the console ({type(exc).__name__})", retryable=False
            ) from None


def format_alert_line(message: AlertMessage) -> str:
    """``!! alice: 5-hour limit at 96 % - Account alice has used ... Resets Sun 19 Jul 05:40.``"""
    mark = _MARKS.get(message.severity, "  ")
    line = f"{mark} {message.title} - {message.text}"
    if message.resets_at is not None:
        verb = "Resets" if message.kind == "threshold" else "Next reset"
        line += f" {verb} {local_time(message.resets_at)}."
    return line


def local_time(moment: datetime) -> str:
    """``Sun 19 Jul 05:40 CEST``: the machine's time zone, to the nearest minute."""
    # The upstream says 03:39:59.57 for a window that resets at 03:40.
    local = (moment + timedelta(seconds=30)).astimezone()
    return local.strftime("%a %d %b %H:%M %Z").strip()


class ConsoleFrontEnd:
    """The front end when no chat platform is configured: the report on the terminal.

    It prints every account's report once the first values arrive, and, when standard
    input is a terminal, answers a typed ``/claude-usage [NAME]`` (or just Enter) as the
    chat front ends do.
    """

    name = "console"

    def __init__(
        self,
        service: UsageService,
        *,
        out: TextIO | None = None,
        interactive: bool | None = None,
    ) -> None:
        self._service = service
        self._out = out
        self._interactive = sys.stdin.isatty() if interactive is None else interactive
        self._tasks: list[asyncio.Task[None]] = []
        self._running = False

    async def start(self) -> None:
        self._running = True
        self._tasks.append(asyncio.create_task(self._show(self._service.accounts)))
        if self._interactive:
            self._tasks.append(asyncio.create_task(self._read_commands()))

    async def stop(self) -> None:
        self._running = False
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()

    def healthy(self) -> bool:
        return self._running

    def notifiers(self) -> Sequence[Notifier]:
        return ()

    async def answer(self, line: str) -> None:
        """One typed command: ``/claude-usage``, ``/claude-usage NAME``, or ``help``."""
        words = line.strip().removeprefix("/claude-usage").split()
        if words and words[0] in ("help", "?"):
            self._print(
                "Type /claude-usage (or press Enter) for the report, "
                "/claude-usage NAME for one account."
            )
            return
        names = self._service.accounts
        if words and words[0] in names:
            names = (words[0],)
        elif words:
            self._print(f"No account {words[0]!r}; accounts: {', '.join(names)}.")
            return
        await self._show(names)

    async def _show(self, names: Sequence[str]) -> None:
        usages = [await self._service.get(name) for name in names]
        now = self._service.clock.now()
        width = shutil.get_terminal_size((80, 24)).columns
        self._print(render_reports([build_report(u, now) for u in usages], now=now, width=width))

    async def _read_commands(self) -> None:
        loop = asyncio.get_running_loop()
        while self._running:
            line = await loop.run_in_executor(None, sys.stdin.readline)
            if not line:
                return  # end of input: keep running, stop listening
            await self.answer(line)

    def _print(self, text: str) -> None:
        out = self._out or sys.stdout
        out.write(text + "\n")
        out.flush()
