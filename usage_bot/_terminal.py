"""The report as terminal text, readable from 40 columns up; times in local time.

Each limit is one line at 80 columns (three at 40: label and percent, bar, reset), with
what locked it, its dollars and who used it on indented lines below.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from datetime import datetime, timedelta, tzinfo

from usage_bot._report import (
    NOT_STARTED,
    AccountReport,
    ReportRow,
    bar,
    extra_usage_text,
    format_duration,
    format_percent,
    spend_text,
    to_the_minute,
)

_MARKERS = {0: "", 1: " !", 2: " !!"}


def wrap(text: str, width: int, **options: str) -> list[str]:
    """Lines of at most ``width``, broken between words: never inside ``usage-bot`` or a
    URL at its hyphens (a word longer than the line is still cut, as it must be)."""
    return textwrap.wrap(text, width, break_on_hyphens=False, **options)  # type: ignore[arg-type]


def fill(text: str, width: int, **options: str) -> str:
    return "\n".join(wrap(text, width, **options))


def render_reports(
    reports: Sequence[AccountReport],
    *,
    now: datetime,
    width: int = 80,
    tz: tzinfo | None = None,
    unicode: bool = True,
) -> str:
    return "\n\n".join(
        render_report(r, now=now, width=width, tz=tz, unicode=unicode) for r in reports
    )


def render_report(
    report: AccountReport,
    *,
    now: datetime,
    width: int = 80,
    tz: tzinfo | None = None,
    unicode: bool = True,
) -> str:
    width = max(width, 30)
    header = f"Claude usage: {report.account}"
    if report.fetched_at is not None and report.age is not None:
        header += f" (as of {_clock_time(report.fetched_at, now, tz)})"
    lines = wrap(header, width)
    label_width = max((len(row.label) for row in report.rows), default=0)
    wide = [_wide_row(row, label_width, now, tz, unicode) for row in report.rows]
    if all(len(line) <= width for line in wide):
        for row, line in zip(report.rows, wide, strict=True):
            lines.append(line)
            lines.extend(_details(row, width, indent="    "))
    else:
        for row in report.rows:
            lines.extend(_narrow_row(row, width, now, tz, unicode))
            lines.extend(_details(row, width, indent="  "))
    if report.spend is not None:
        lines.extend(wrap(spend_text(report.spend), width))
    if report.extra_usage is not None:
        lines.extend(wrap(extra_usage_text(report.extra_usage), width))
    note = report.staleness_note
    if note:
        lines.extend(wrap(note, width))
    elif report.error:
        lines.extend(wrap(report.error, width))
    elif not report.rows:
        lines.append("No limits reported.")
    return "\n".join(lines)


def _wide_row(
    row: ReportRow, label_width: int, now: datetime, tz: tzinfo | None, unicode: bool
) -> str:
    label = row.label.ljust(label_width)
    filled = bar(row.percent, 10, **_bar_chars(unicode))
    marker = _MARKERS.get(min(row.severity_rank, 2), "")
    percent = format_percent(row.percent).rjust(5)
    return f"  {label}  {filled} {percent}{marker:3}  {_resets(row, now, tz)}".rstrip()


def _narrow_row(
    row: ReportRow, width: int, now: datetime, tz: tzinfo | None, unicode: bool
) -> list[str]:
    marker = _MARKERS.get(min(row.severity_rank, 2), "")
    percent = format_percent(row.percent) + marker
    label = row.label[: width - len(percent) - 1]
    lines = [label + " " * (width - len(label) - len(percent)) + percent]
    lines.append(bar(row.percent, width, **_bar_chars(unicode)))
    lines.extend(wrap(_resets(row, now, tz), width))
    return lines


def _details(row: ReportRow, width: int, *, indent: str) -> list[str]:
    return [
        line
        for detail in row.details
        for line in wrap(detail, width, initial_indent=indent, subsequent_indent=indent + "  ")
    ]


def _resets(row: ReportRow, now: datetime, tz: tzinfo | None) -> str:
    """``resets 20:39 (in 3 h 39 min)``, ``not started``, or nothing when no end is known."""
    if row.resets_at is not None:
        return f"resets {_when(row, now, tz)}"
    return "" if row.started else NOT_STARTED


def _bar_chars(unicode: bool) -> dict[str, str]:
    return {"full": "█", "empty": "░"} if unicode else {"full": "#", "empty": "."}


def _when(row: ReportRow, now: datetime, tz: tzinfo | None) -> str:
    assert row.resets_at is not None
    until = row.resets_in or timedelta(0)
    return f"{_clock_time(row.resets_at, now, tz)} (in {format_duration(until)})"


def _clock_time(moment: datetime, now: datetime, tz: tzinfo | None) -> str:
    """``15:39`` today, ``Tue 15:39`` within a week (weekly windows), else the date."""
    local, local_now = to_the_minute(moment).astimezone(tz), now.astimezone(tz)
    if local.date() == local_now.date():
        return local.strftime("%H:%M")
    if abs((local.date() - local_now.date()).days) <= 7:
        return local.strftime("%a %H:%M")
    return local.strftime("%Y-%m-%d %H:%M")
