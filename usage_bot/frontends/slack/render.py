"""Slack's view of replies and alerts: Block Kit messages, pure functions of their inputs.

Every time a reader sees is a ``<!date^…>`` token, so that Slack shows it in the reader's
own time zone; the text after ``|`` is the UTC fallback for clients that cannot. Each
is the nearest minute (:func:`~usage_bot._report.to_the_minute`), as on the console: Slack
itself would cut the seconds off, and show a reset at 03:39:59.57 as 03:39. Every
message keeps within Block Kit's limits (:data:`MAX_BLOCKS`, :data:`MAX_HEADER`,
:data:`MAX_TEXT`), however many accounts and limits there are, and carries a plain
``text`` for notifications. The sentences are :mod:`usage_bot._texts`'; only their
layout is Slack's. No Slack SDK is imported here: the incoming webhook renders with it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from usage_bot._command import Visibility
from usage_bot._notify import AlertMessage
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
from usage_bot._texts import (
    HELP_INTRO,
    HELP_LINES,
    PENDING_NOTE,
    SLASH,
    accounts_line,
    not_understood,
)
from usage_bot.frontends import Reply

MAX_BLOCKS = 50
MAX_HEADER = 150
MAX_TEXT = 3000
MAX_CONTEXT_ELEMENTS = 10
# The notification text: Slack allows far more, but nobody reads more than this.
MAX_FALLBACK = 2000
# What of a text that was not understood is quoted back in the help.
MAX_QUOTED = 100

Block = dict[str, Any]
ResponseType = Literal["ephemeral", "in_channel"]

RESPONSE_TYPES: dict[Visibility, ResponseType] = {"private": "ephemeral", "channel": "in_channel"}

_SEVERITY_MARKERS = {0: ":large_green_circle:", 1: ":large_yellow_circle:", 2: ":red_circle:"}
_ALERT_MARKERS = {
    "reset": ":arrows_counterclockwise:",
    "incident_started": ":warning:",
    "incident_ended": ":white_check_mark:",
}
_DATE_FORMAT = "{date_short_pretty} {time}"


@dataclass(frozen=True, slots=True)
class SlackMessage:
    """A message as Slack takes it: ``text`` for notifications, ``blocks`` for the eye."""

    text: str
    blocks: tuple[Block, ...] = ()

    def payload(self, response_type: ResponseType | None = None) -> dict[str, Any]:
        """The keyword arguments of ``ack``, ``respond`` and ``chat.postMessage``."""
        payload: dict[str, Any] = {"text": self.text}
        if self.blocks:
            payload["blocks"] = list(self.blocks)
        if response_type is not None:
            payload["response_type"] = response_type
        return payload


# -- reports -----------------------------------------------------------------------------


def render_reports(reports: Sequence[AccountReport], *, pending: bool = False) -> SlackMessage:
    """One account in full, or several compactly. ``pending``: newer values are coming."""
    if len(reports) == 1:
        return render_report(reports[0], pending=pending)
    return render_compact(reports, pending=pending)


def render_report(report: AccountReport, *, pending: bool = False) -> SlackMessage:
    """A header, one section per limit, extra usage, and a context line with the age."""
    sections = [_limit_section(row) for row in report.rows]
    sections.extend(_money_lines(report))
    if not report.rows:
        sections.append(_nothing_to_show(report))
    context = _context(report, pending=pending)
    blocks = [_header(f"Claude usage: {report.account}")]
    room = MAX_BLOCKS - len(blocks) - (1 if context else 0)
    blocks.extend(_section(text) for text in _fit(sections, room))
    if context:
        blocks.append(_context_block(context))
    return SlackMessage(_fallback([report], pending=pending), tuple(blocks))


def render_compact(reports: Sequence[AccountReport], *, pending: bool = False) -> SlackMessage:
    """Every account in one section each: a line per limit, extra usage, staleness."""
    sections = [_account_summary(report) for report in reports]
    notes = [f"`{SLASH} NAME` shows one account in full."]
    if pending:
        notes.insert(0, f":hourglass_flowing_sand: {PENDING_NOTE}")
    blocks = [_header(f"Claude usage: {len(reports)} accounts")]
    blocks.extend(_section(text) for text in _fit(sections, MAX_BLOCKS - 2))
    blocks.append(_context_block(notes))
    return SlackMessage(_fallback(reports, pending=pending), tuple(blocks))


def _limit_section(row: ReportRow) -> str:
    first = f"{_marker(row)} *{escape(row.label)}*   *{format_percent(row.percent)}*"
    return "\n".join([f"{first}\n`{bar(row.percent)}`   {_resets(row)}", *_details(row)])


def _details(row: ReportRow) -> list[str]:
    """What locked the limit, its dollars, who used it: a line each under the limit."""
    lines = [escape(detail) for detail in row.details]
    if row.locked_reason and lines:
        lines[0] = f":lock: {lines[0]}"
    return lines


def _money_lines(report: AccountReport) -> list[str]:
    lines = []
    if report.spend is not None:
        lines.append(f":credit_card: {escape(spend_text(report.spend))}")
    if report.extra_usage is not None:
        lines.append(f":moneybag: {escape(extra_usage_text(report.extra_usage))}")
    return lines


def _account_summary(report: AccountReport) -> str:
    lines = [f"*{escape(report.account)}*"]
    for row in report.rows:
        percent = format_percent(row.percent)
        lines.append(
            f"{_marker(row)} {escape(row.label)} `{bar(row.percent)}` *{percent}* · {_resets(row)}"
        )
        lines.extend(f"      _{detail}_" for detail in _details(row))
    lines.extend(_money_lines(report))
    note = report.staleness_note
    if note:
        lines.append(f":hourglass_flowing_sand: _{escape(note)}_")
    elif not report.rows:
        lines.append(_nothing_to_show(report))
    return "\n".join(lines)


def _resets(row: ReportRow) -> str:
    if row.resets_at is None:
        return "no reset time given" if row.started else NOT_STARTED
    until = f" (in {format_duration(row.resets_in)})" if row.resets_in is not None else ""
    return f"resets {date_token(row.resets_at)}{until}"


def _nothing_to_show(report: AccountReport) -> str:
    if report.error:
        return f":warning: {escape(report.error)}"
    return "No limits reported."


def _context(report: AccountReport, *, pending: bool) -> list[str]:
    if report.fetched_at is None:
        return []
    elements = [
        f"Account *{escape(report.account)}* · updated {date_token(report.fetched_at, '{time}')}"
    ]
    note = report.staleness_note
    if note:
        elements.append(f":hourglass_flowing_sand: {escape(note)}")
    if pending:
        age = f"Values from {format_duration(report.age)} ago; " if report.age and not note else ""
        elements.append(f":hourglass_flowing_sand: {age}{PENDING_NOTE}")
    return elements


def _fallback(reports: Sequence[AccountReport], *, pending: bool) -> str:
    parts = []
    for report in reports:
        limits = ", ".join(f"{row.label} {format_percent(row.percent)}" for row in report.rows)
        if limits and report.stale and report.age is not None:
            limits += f" (last known, {format_duration(report.age)} old)"
        parts.append(f"{report.account}: {limits or report.error or 'no limits reported'}")
    text = "Claude usage for " + "; ".join(parts)
    if pending:
        text += f" ({PENDING_NOTE})"
    return _truncate(text, MAX_FALLBACK)


# -- a reply to the command -------------------------------------------------------------


def render_reply(reply: Reply) -> SlackMessage:
    """Any :class:`~usage_bot.frontends.Reply`: the report, the help, or a notice."""
    if reply.kind == "usage":
        return render_reports(reply.reports, pending=reply.pending)
    if reply.kind == "help":
        return render_help(reply.accounts, unknown=reply.not_understood)
    return render_notice(reply.text)


def reply_payload(reply: Reply) -> dict[str, Any]:
    """The keyword arguments of ``ack`` and ``respond`` for ``reply``."""
    return render_reply(reply).payload(RESPONSE_TYPES[reply.visibility])


def render_help(accounts: Sequence[str], *, unknown: str | None = None) -> SlackMessage:
    """The help; ``unknown`` is the text that was not understood, if that is why."""
    lines = []
    if unknown:
        lines.append(not_understood(escape(_truncate(unknown, MAX_QUOTED))))
    usage = [f"• `{_typed(words)}`: {meaning}" for words, meaning in HELP_LINES]
    lines.append("\n".join([f"*{SLASH}* {HELP_INTRO}", *usage]))
    listed = accounts_line([escape(name) for name in accounts])
    if listed is not None:
        lines.append(listed)
    text = "\n\n".join(lines)
    return SlackMessage(_truncate(text, MAX_FALLBACK), (_section(text),))


def _typed(words: str) -> str:
    return f"{SLASH} {words}".rstrip()


def render_notice(text: str) -> SlackMessage:
    """One sentence, in a message of its own (refusals, failures, "fetching")."""
    return SlackMessage(text)


# -- alerts ------------------------------------------------------------------------------


def render_alert(message: AlertMessage) -> SlackMessage:
    """An alert: the title, the sentence with its marker, the reset time, the advice."""
    marker = _ALERT_MARKERS.get(message.kind) or _SEVERITY_MARKERS.get(
        _severity_rank(message.severity), ":large_yellow_circle:"
    )
    body = f"{marker} {escape(message.text)}"
    if message.resets_at is not None:
        body += f"\nResets {date_token(message.resets_at)}."
    context = [f"Account *{escape(message.account)}*"]
    if message.advice:
        context.insert(0, f":bulb: {escape(message.advice)}")
    blocks = (
        _header(message.title),
        _section(body),
        _context_block(context),
    )
    fallback = f"{message.title}: {message.text}"
    if message.resets_at is not None:
        fallback += f" Resets {_utc(message.resets_at)}."
    return SlackMessage(_truncate(fallback, MAX_FALLBACK), blocks)


def _severity_rank(severity: str) -> int:
    return {"normal": 0, "warning": 1, "critical": 2}.get(severity, 1)


# -- Block Kit ---------------------------------------------------------------------------


def date_token(moment: datetime, fmt: str = _DATE_FORMAT) -> str:
    """``<!date^1784432400^{date_short_pretty} {time}|2026-07-19 03:40 UTC>``, for
    03:39:59.57: the nearest minute, as everywhere."""
    shown = to_the_minute(moment)
    return f"<!date^{int(shown.timestamp())}^{fmt}|{_utc(shown)}>"


def _utc(moment: datetime) -> str:
    return to_the_minute(moment).astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def escape(text: str) -> str:
    """Text from elsewhere (the upstream, users), made inert in Slack's mrkdwn."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _marker(row: ReportRow) -> str:
    return _SEVERITY_MARKERS[max(0, min(row.severity_rank, 2))]


def _header(text: str) -> Block:
    return {
        "type": "header",
        "text": {"type": "plain_text", "text": _truncate(text, MAX_HEADER), "emoji": True},
    }


def _section(text: str) -> Block:
    return {"type": "section", "text": {"type": "mrkdwn", "text": _truncate(text, MAX_TEXT)}}


def _context_block(elements: Sequence[str]) -> Block:
    return {
        "type": "context",
        "elements": [
            {"type": "mrkdwn", "text": _truncate(text, MAX_TEXT)}
            for text in elements[:MAX_CONTEXT_ELEMENTS]
        ],
    }


def _fit(texts: Sequence[str], room: int) -> list[str]:
    """Section texts for at most ``room`` sections of at most :data:`MAX_TEXT` characters.

    One section per text when they fit; otherwise neighbours share a section; what still
    does not fit is left out, and the last section says so.
    """
    pieces = [piece for text in texts for piece in _split(text)]
    if len(pieces) <= room:
        return pieces
    packed: list[str] = []
    for piece in pieces:
        if packed and len(packed[-1]) + 2 + len(piece) <= MAX_TEXT:
            packed[-1] += "\n\n" + piece
        else:
            packed.append(piece)
    if len(packed) <= room:
        return packed
    more = "_…and more not shown here: ask for one account with_ " + f"`{SLASH} NAME`."
    kept = packed[: max(room - 1, 0)]
    return [*kept, more] if room > 0 else []


def _split(text: str) -> list[str]:
    """``text`` in pieces of at most :data:`MAX_TEXT` characters, cut between lines."""
    if len(text) <= MAX_TEXT:
        return [text]
    pieces: list[str] = []
    for line in text.split("\n"):
        line = _truncate(line, MAX_TEXT)
        if pieces and len(pieces[-1]) + 1 + len(line) <= MAX_TEXT:
            pieces[-1] += "\n" + line
        else:
            pieces.append(line)
    return pieces


def _truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
