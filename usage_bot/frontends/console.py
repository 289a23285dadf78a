"""The console: alerts as one line each on a terminal, and the console front end.

The console is an alert destination always (in a container, alerts then reach the
logs too) and the front end when no chat platform is configured. Times are local.
"""

from __future__ import annotations

import asyncio
import math
import shutil
import sys
from datetime import datetime
from typing import TextIO

from usage_bot._clock import Clock
from usage_bot._command import AccessPolicy, Caller
from usage_bot._exceptions import DeliveryError
from usage_bot._notify import AlertMessage
from usage_bot._report import to_the_minute
from usage_bot._terminal import fill, render_reports
from usage_bot._texts import HELP_INTRO, HELP_LINES, SLASH, accounts_line, not_understood
from usage_bot.frontends import CommandCore, Reply

_MARKS = {"critical": "!!", "warning": "! "}


class ConsoleNotifier:
    """Prints each alert to ``stream`` (standard output by default): one line each, as a
    log reader wants, or wrapped to ``width`` columns for a person at a terminal."""

    name = "console"

    def __init__(self, stream: TextIO | None = None, *, width: int | None = None) -> None:
        # None: whatever sys.stdout is when posting, so redirection (and pytest) work.
        self._stream = stream
        self._width = width

    async def post(self, message: AlertMessage) -> None:
        stream = self._stream or sys.stdout
        line = format_alert_line(message)
        if self._width is not None:
            line = fill(line, self._width, subsequent_indent="   ")
        try:
            stream.write(line + "\n")
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
    if message.advice:
        line += f" {message.advice}"
    if message.resets_at is not None:
        verb = "Resets" if message.kind == "threshold" else "Next reset"
        line += f" {verb} {local_time(message.resets_at)}."
    return line


def local_time(moment: datetime) -> str:
    """``Sun 19 Jul 05:40 CEST``: the machine's time zone, to the nearest minute."""
    local = to_the_minute(moment).astimezone()
    return local.strftime("%a %d %b %H:%M %Z").strip()


class ConsoleFrontEnd:
    """The front end when no chat platform is configured: the report on the terminal.

    It prints every account's report once the first values arrive, and, when standard
    input is a terminal, answers a typed ``/claude-usage [WORDS]`` (or just Enter) with the
    same command core as the chat front ends: the same words mean the same here.
    """

    name = "console"

    def __init__(
        self,
        commands: CommandCore,
        *,
        clock: Clock,
        out: TextIO | None = None,
        interactive: bool | None = None,
    ) -> None:
        self._commands = commands
        self._clock = clock
        self._out = out
        self._interactive = sys.stdin.isatty() if interactive is None else interactive
        self._tasks: list[asyncio.Task[None]] = []
        self._running = False

    async def start(self) -> None:
        self._running = True
        self._tasks.append(asyncio.create_task(self.answer("")))
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

    async def answer(self, line: str) -> None:
        """One typed line: ``/claude-usage WORDS``, or the words alone."""
        words = line.strip().removeprefix(SLASH)
        decided = self._commands.plan(words, caller=Caller("console"), policy=AccessPolicy())
        given = await self._commands.answer(decided, platform="console", within=math.inf)
        self._print(self._render(given.now))
        if given.later is not None:
            self._print(self._render(await given.later))

    def _render(self, reply: Reply) -> str:
        if reply.kind == "usage":
            now = self._clock.now()
            width = shutil.get_terminal_size((80, 24)).columns
            return render_reports(reply.reports, now=now, width=width)
        if reply.kind == "help":
            lines = [f"{SLASH} {HELP_INTRO}"]
            if reply.not_understood:
                lines.insert(0, not_understood(reply.not_understood))
            lines += [
                f"  {SLASH} {words}".rstrip() + f": {meaning}" for words, meaning in HELP_LINES
            ]
            if (listed := accounts_line(reply.accounts)) is not None:
                lines.append(listed)
            lines.append("Press Enter alone for the report.")
            return "\n".join(lines)
        return reply.text

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
