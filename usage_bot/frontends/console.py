"""The console: alerts as one line each on a terminal (or any text stream).

The destination used when no chat platform is configured, and by ``usage-bot demo``.
Reset times are shown in the machine's local time zone.
"""

from __future__ import annotations

import sys
from datetime import datetime, timedelta
from typing import TextIO

from usage_bot._notify import AlertMessage, DeliveryError

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
