"""Discord's view of reports and alerts: embeds, pure functions of their inputs.

Every time a reader sees is a Discord timestamp token (``<t:UNIX:R>``, ``<t:UNIX:f>``) or
the embed's own timestamp, so that each reader sees their own time zone. Every message
keeps within Discord's embed limits (:data:`MAX_EMBEDS` embeds, :data:`MAX_FIELDS` fields,
:data:`MAX_TOTAL` characters in all, and the limit of each part), however many accounts
and limits there are: what does not fit is summed up in a last field. The sentences the
Discord front end says live here too.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

import discord
from discord.utils import escape_markdown

from usage_bot._notify import AlertMessage
from usage_bot._report import (
    NOT_STARTED,
    AccountReport,
    ReportRow,
    bar,
    extra_usage_text,
    format_percent,
    spend_text,
)

COMMAND = "claude-usage"

# Discord's limits (https://discord.com/developers/docs/resources/message#embed-object-embed-limits).
MAX_EMBEDS = 10
MAX_FIELDS = 25
MAX_TITLE = 256
MAX_DESCRIPTION = 4096
MAX_FIELD_NAME = 256
MAX_FIELD_VALUE = 1024
MAX_FOOTER = 2048
MAX_TOTAL = 6000

COLOURS = {"normal": 0x57F287, "warning": 0xFEE75C, "critical": 0xED4245}
NO_DATA_COLOUR = 0x99AAB5
RESET_COLOUR = 0x5865F2
_SEVERITIES = ("normal", "warning", "critical")
_MARKERS = {0: "🟢", 1: "🟡", 2: "🔴"}
_ALERT_MARKERS = {"reset": "🔄", "incident_started": "⚠️", "incident_ended": "✅"}
_BAR_WIDTH = 10
_COMPACT_BAR_WIDTH = 8

FAILED = (
    "Sorry, something went wrong while answering; the bot logged the details. Try again in "
    "a minute, and if it keeps failing, check the bot's log."
)
STOPPING = "usage-bot is restarting; try again in a minute."
REFUSED_GUILD = (
    f"Sorry, /{COMMAND} is not available in this server. Ask whoever runs usage-bot to add "
    "this server's ID to DISCORD_ALLOWED_GUILDS."
)
REFUSED_DM = (
    f"Sorry, /{COMMAND} is not available in direct messages here; use it in one of the "
    "team's servers."
)
REFUSED_CHANNEL = (
    f"Sorry, /{COMMAND} is not available in this channel. Ask whoever runs usage-bot to add "
    "this channel's ID to DISCORD_ALLOWED_CHANNELS, or try it in an allowed channel."
)
COMMAND_DESCRIPTION = "Show the team's Claude quota: each limit, how much is used, when it resets"
SHARE_DESCRIPTION = "Post the report in this channel for everyone (otherwise only you see it)"
ACCOUNT_DESCRIPTION = "Show only this account (otherwise all of them)"


def unknown_account(name: str, accounts: Sequence[str]) -> str:
    known = ", ".join(escape_markdown(a) for a in accounts)
    return _truncate(
        f"There is no account named {escape_markdown(name)}; the accounts are: {known}.", 2000
    )


@dataclass(frozen=True, slots=True)
class _Field:
    name: str
    value: str

    @property
    def size(self) -> int:
        return len(self.name) + len(self.value)


# -- reports -----------------------------------------------------------------------------


def render_reports(reports: Sequence[AccountReport]) -> list[discord.Embed]:
    """The answer to ``/claude-usage``: one embed per account when they all fit in one
    message, otherwise one compact embed with a field per account."""
    if len(reports) == 1:
        return [render_report(reports[0])]
    if len(reports) <= MAX_EMBEDS:
        embeds = [render_report(report) for report in reports]
        if sum(len(embed) for embed in embeds) <= MAX_TOTAL:
            return embeds
    return [render_compact(reports)]


def render_report(report: AccountReport) -> discord.Embed:
    """One account in full: a field per limit, extra usage in the description, staleness
    in the footer and the time of the values as the embed's timestamp."""
    title = _truncate(f"Claude usage: {escape_markdown(report.account)}", MAX_TITLE)
    description = _truncate("\n".join(_account_notes(report)), MAX_DESCRIPTION)
    footer = _truncate(_footer(report), MAX_TOTAL - len(title) - len(description))
    room = MAX_TOTAL - len(title) - len(description) - len(footer)
    fields = _fit([_limit_field(row) for row in report.rows], room, _more_limits)
    return _embed(
        title=title,
        description=description,
        colour=_colour(report),
        fields=fields,
        footer=footer,
        timestamp=report.fetched_at,
    )


def render_compact(reports: Sequence[AccountReport]) -> discord.Embed:
    """Several accounts in one embed: a field per account, a line per limit."""
    title = "Claude usage"
    fields = [_account_field(report) for report in reports]
    fields = _fit(fields, MAX_TOTAL - len(title), _more_accounts)
    worst = max((_rank(r.worst_severity) for r in reports if r.rows), default=0)
    colour = COLOURS[_SEVERITIES[worst]]
    return _embed(title=title, description="", colour=colour, fields=fields)


def _limit_field(row: ReportRow) -> _Field:
    value = f"{_marker(row)} `{bar(row.percent, _BAR_WIDTH)}` **{format_percent(row.percent)}**"
    if row.severity_rank > 0:
        value += f" ({escape_markdown(row.severity)})"
    if row.resets_at is not None:
        value += f"\nResets {timestamp(row.resets_at, 'R')} · {timestamp(row.resets_at, 'f')}"
    else:
        value += "\n" + ("No reset time given" if row.started else NOT_STARTED.capitalize())
    value = "\n".join([value, *_details(row)])
    # Discord refuses an empty field name.
    name = escape_markdown(row.label.strip()) or escape_markdown(row.limit_id) or "Limit"
    return _Field(_truncate(name, MAX_FIELD_NAME), _truncate(value, MAX_FIELD_VALUE))


def _details(row: ReportRow) -> list[str]:
    """What locked the limit, its dollars, who used it: a line each under the limit."""
    lines = [escape_markdown(detail) for detail in row.details]
    if row.locked_reason and lines:
        lines[0] = f"🔒 {lines[0]}"
    return lines


def _more_limits(left: Sequence[_Field]) -> _Field:
    return _Field(
        "More limits",
        f"{len(left)} more not shown here: {_truncate(', '.join(f.name for f in left), 900)}",
    )


def _account_field(report: AccountReport) -> _Field:
    marker = _MARKERS[_rank(report.worst_severity)] if report.rows else "⚪"
    name = _truncate(f"{marker} {escape_markdown(report.account)}", MAX_FIELD_NAME)
    # A limit and its details are one entry, so that cutting to fit keeps them together.
    lines = [
        "\n".join(
            [
                f"{_marker(row)} `{bar(row.percent, _COMPACT_BAR_WIDTH)}` "
                f"**{format_percent(row.percent)}** {escape_markdown(row.label)}"
                + _compact_resets(row),
                *(f"  *{detail}*" for detail in _details(row)),
            ]
        )
        for row in report.rows
    ]
    notes = _account_notes(report)
    if report.staleness_note:
        notes.append(f"*{report.staleness_note}*")
    value = _lines_within([*lines, *notes], MAX_FIELD_VALUE, len(lines))
    return _Field(name, value)


def _compact_resets(row: ReportRow) -> str:
    if row.resets_at is not None:
        return f" · resets {timestamp(row.resets_at, 'R')}"
    return "" if row.started else f" · {NOT_STARTED}"


def _more_accounts(left: Sequence[_Field]) -> _Field:
    return _Field(
        "More accounts",
        f"{len(left)} more not shown here; ask for one with `/{COMMAND} account:NAME`.",
    )


def _account_notes(report: AccountReport) -> list[str]:
    """The sentences beside the limits: why nothing is shown, spend and extra usage."""
    notes: list[str] = []
    if report.fetched_at is None:
        notes.append(f"⚠️ {report.error}" if report.error else "No usage is known yet.")
    elif not report.rows:
        notes.append("Anthropic reported no limits for this account.")
    if report.spend is not None:
        notes.append(escape_markdown(spend_text(report.spend)))
    if report.extra_usage is not None:
        notes.append(escape_markdown(extra_usage_text(report.extra_usage)))
    return notes


def _footer(report: AccountReport) -> str:
    if report.fetched_at is None:
        return ""
    return _truncate(report.staleness_note or "As of", MAX_FOOTER)


def _colour(report: AccountReport) -> int:
    if not report.rows:
        return NO_DATA_COLOUR
    return COLOURS[report.worst_severity]


# -- alerts ------------------------------------------------------------------------------


def render_alert(message: AlertMessage) -> discord.Embed:
    """An alert: the title, the sentence with its marker, the reset time, the advice and
    the account."""
    marker = _ALERT_MARKERS.get(message.kind) or _MARKERS[_rank(message.severity)]
    lines = [f"{marker} {escape_markdown(message.text)}"]
    if message.resets_at is not None:
        lines.append(
            f"Resets {timestamp(message.resets_at, 'f')} ({timestamp(message.resets_at, 'R')})."
        )
    fields = (
        [_Field("What to do", _truncate(escape_markdown(message.advice), MAX_FIELD_VALUE))]
        if message.advice
        else []
    )
    if message.kind == "reset":
        colour = RESET_COLOUR
    elif message.kind == "incident_ended":
        colour = COLOURS["normal"]
    else:
        colour = COLOURS[_SEVERITIES[_rank(message.severity)]]
    return _embed(
        title=_truncate(message.title, MAX_TITLE),
        description=_truncate("\n".join(lines), MAX_DESCRIPTION),
        colour=colour,
        fields=fields,
        footer=_truncate(f"Account: {message.account}", MAX_FOOTER),
    )


# -- pieces ------------------------------------------------------------------------------


def timestamp(moment: datetime, style: str) -> str:
    """``<t:1784432399:R>``: Discord shows it in the reader's own time zone."""
    return f"<t:{int(moment.timestamp())}:{style}>"


def _embed(
    *,
    title: str,
    description: str,
    colour: int,
    fields: Sequence[_Field],
    footer: str = "",
    timestamp: datetime | None = None,
) -> discord.Embed:
    embed = discord.Embed(
        title=title, description=description or None, colour=colour, timestamp=timestamp
    )
    for field in fields:
        embed.add_field(name=field.name, value=field.value, inline=False)
    if footer:
        embed.set_footer(text=footer)
    return embed


def _fit(
    fields: Sequence[_Field], room: int, overflow: Callable[[Sequence[_Field]], _Field]
) -> list[_Field]:
    """As many fields as fit in :data:`MAX_FIELDS` and ``room`` characters, in order; when
    some do not, a last field made by ``overflow`` says what was left out."""
    if len(fields) <= MAX_FIELDS and sum(f.size for f in fields) <= room:
        return list(fields)
    for keep in range(min(len(fields), MAX_FIELDS - 1), -1, -1):
        kept, note = list(fields[:keep]), overflow(fields[keep:])
        if sum(f.size for f in kept) + note.size <= room:
            return [*kept, note]
    return []


def _lines_within(lines: Sequence[str], limit: int, countable: int) -> str:
    """``lines`` joined, within ``limit`` characters; the first ``countable`` lines may be
    left out (the rest are notes that must stay), and a last line says how many were."""
    notes = [_truncate(line, limit // 2) for line in lines[countable:]]
    shown = list(lines[:countable])
    while shown:
        left = countable - len(shown)
        more = [f"…and {left} more"] if left else []
        text = "\n".join([*shown, *more, *notes])
        if len(text) <= limit:
            return text
        shown.pop()
    more = [f"…and {countable} more"] if countable else []
    return _truncate("\n".join([*more, *notes]), limit) or "-"


def _marker(row: ReportRow) -> str:
    return _MARKERS[max(0, min(row.severity_rank, 2))]


def _rank(severity: str) -> int:
    """0 normal, 1 warning, 2 critical; an unknown severity counts as a warning."""
    return _SEVERITIES.index(severity) if severity in _SEVERITIES else 1


def _truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
