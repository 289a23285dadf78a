"""Discord's view of replies and alerts: embeds, pure functions of their inputs.

An embed here is the JSON object Discord's API takes (:data:`Embed`), so this module
imports no discord.py: the alert destinations post it as it is, and the front end hands
it to discord.py with ``discord.Embed.from_dict``.

Every time a reader sees is a Discord timestamp token (``<t:UNIX:R>``, ``<t:UNIX:f>``) or
the embed's own timestamp, so that each reader sees their own time zone; each is the
nearest minute (:func:`~usage_bot._report.to_the_minute`), as on the console, where
Discord would cut the seconds off (a reset at 03:39:59.57 shown as 03:39). Every message
keeps within Discord's embed limits (:data:`MAX_EMBEDS` embeds, :data:`MAX_FIELDS` fields,
:data:`MAX_TOTAL` characters in all, and the limit of each part), however many accounts
and limits there are: what does not fit is summed up in a last field. The sentences come
from :mod:`usage_bot._texts`; only their layout is Discord's.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeAlias

from usage_bot._notify import AlertMessage
from usage_bot._report import (
    NOT_STARTED,
    AccountReport,
    ReportRow,
    bar,
    extra_usage_text,
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

Embed: TypeAlias = dict[str, Any]
"""Discord's embed object as JSON: ``title``, ``description``, ``color``, ``fields``, ..."""

# Discord's limits (https://discord.com/developers/docs/resources/message#embed-object-embed-limits).
MAX_EMBEDS = 10
MAX_FIELDS = 25
MAX_TITLE = 256
MAX_DESCRIPTION = 4096
MAX_FIELD_NAME = 256
MAX_FIELD_VALUE = 1024
MAX_FOOTER = 2048
MAX_TOTAL = 6000
MAX_CONTENT = 2000

COLOURS = {"normal": 0x57F287, "warning": 0xFEE75C, "critical": 0xED4245}
NO_DATA_COLOUR = 0x99AAB5
RESET_COLOUR = 0x5865F2
HELP_COLOUR = 0x5865F2
_SEVERITIES = ("normal", "warning", "critical")
_MARKERS = {0: "🟢", 1: "🟡", 2: "🔴"}
_ALERT_MARKERS = {"reset": "🔄", "incident_started": "⚠️", "incident_ended": "✅"}
_BAR_WIDTH = 10
_COMPACT_BAR_WIDTH = 8


@dataclass(frozen=True, slots=True)
class DiscordMessage:
    """What one reply is in Discord: its text, its embeds, and whether only the caller
    sees it (an ephemeral message)."""

    content: str
    embeds: tuple[Embed, ...]
    ephemeral: bool


def render_reply(reply: Reply) -> DiscordMessage:
    """A ``/claude-usage`` reply as Discord shows it."""
    private = reply.visibility == "private"
    if reply.kind == "usage":
        note = f"*{PENDING_NOTE[:1].upper()}{PENDING_NOTE[1:]}*" if reply.pending else ""
        return DiscordMessage(note, tuple(render_reports(reply.reports)), private)
    if reply.kind == "help":
        return DiscordMessage("", (render_help(reply),), private)
    return DiscordMessage(_truncate(reply.text, MAX_CONTENT), (), private)


@dataclass(frozen=True, slots=True)
class _Field:
    name: str
    value: str

    @property
    def size(self) -> int:
        return len(self.name) + len(self.value)


# -- the help ------------------------------------------------------------------------------


def render_help(reply: Reply) -> Embed:
    """The grammar's help, with each line as Discord's options (``share:True``,
    ``account:NAME``), and what was not understood first, as the options it was typed in."""
    lines = [f"`{SLASH}` {HELP_INTRO}"]
    if reply.not_understood:
        # Inside a code span: a backtick of its own would end it early.
        typed = _truncate(as_options(reply.not_understood).replace("`", "'"), 100)
        lines.insert(0, not_understood(typed))
    for words, meaning in HELP_LINES:
        typed = f"{SLASH} {as_options(words)}".rstrip()
        lines.append(f"`{typed}`: {_CODE.sub(lambda m: f'`{as_options(m[1])}`', meaning)}")
    if (listed := accounts_line(reply.accounts)) is not None:
        lines.append(listed)
    return _embed(
        title=SLASH,
        description=_truncate("\n".join(lines), MAX_DESCRIPTION),
        colour=HELP_COLOUR,
        fields=(),
    )


_CODE = re.compile(r"`([^`]*)`")


def as_options(words: str) -> str:
    """The grammar's words as Discord's options: ``share NAME`` is ``share:True
    account:NAME``; words other than ``share`` go in ``account``, which takes any words."""
    parts = words.split()
    options = ["share:True"] if "share" in parts else []
    rest = [word for word in parts if word != "share"]
    if rest:
        options.append("account:" + " ".join(rest))
    return " ".join(options)


# -- reports -------------------------------------------------------------------------------


def render_reports(reports: Sequence[AccountReport]) -> list[Embed]:
    """The answer to ``/claude-usage``: one embed per account when they all fit in one
    message, otherwise one compact embed with a field per account."""
    if len(reports) == 1:
        return [render_report(reports[0])]
    if len(reports) <= MAX_EMBEDS:
        embeds = [render_report(report) for report in reports]
        if sum(embed_size(embed) for embed in embeds) <= MAX_TOTAL:
            return embeds
    return [render_compact(reports)]


def render_report(report: AccountReport) -> Embed:
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


def render_compact(reports: Sequence[AccountReport]) -> Embed:
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
        f"{len(left)} more not shown here; ask for one with `{SLASH} {as_options('NAME')}`.",
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


# -- alerts --------------------------------------------------------------------------------


def render_alert(message: AlertMessage) -> Embed:
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


# -- pieces --------------------------------------------------------------------------------


def timestamp(moment: datetime, style: str) -> str:
    """``<t:1784432400:R>`` for 03:39:59.57: Discord shows it in the reader's own time
    zone; the nearest minute, as everywhere."""
    return f"<t:{int(to_the_minute(moment).timestamp())}:{style}>"


def embed_size(embed: Embed) -> int:
    """The characters Discord counts against :data:`MAX_TOTAL`: title, description, field
    names and values, footer and author."""
    fields = embed.get("fields", ())
    return (
        len(embed.get("title", ""))
        + len(embed.get("description", ""))
        + sum(len(field["name"]) + len(field["value"]) for field in fields)
        + len(embed.get("footer", {}).get("text", ""))
        + len(embed.get("author", {}).get("name", ""))
    )


# discord.utils.escape_markdown's default (links left alone), copied so that rendering
# needs no discord.py; tests/test_discord_render.py checks that the two agree.
_MARKDOWN_COMMON = r"^>(?:>>)?\s|\[.+\]\(.+\)|^#{1,3}|^\s*-"
_URL = r"(?P<url><[^: >]+:\/[^ >]+>|(?:https?|steam):\/\/[^\s<]+[^<.,:;\"\'\]\s])"
_MARKDOWN = re.compile(rf"(?:{_URL}|(?P<markdown>[_\\~|\*`]|{_MARKDOWN_COMMON}))", re.MULTILINE)


def escape_markdown(text: str) -> str:
    """``text`` with Discord's markdown made inert (a backslash before each mark)."""
    return _MARKDOWN.sub(lambda m: m["url"] or "\\" + m["markdown"], text)


def _embed(
    *,
    title: str,
    description: str,
    colour: int,
    fields: Sequence[_Field],
    footer: str = "",
    timestamp: datetime | None = None,
) -> Embed:
    embed: Embed = {"title": title, "color": colour}
    if description:
        embed["description"] = description
    if fields:
        embed["fields"] = [{"name": f.name, "value": f.value, "inline": False} for f in fields]
    if footer:
        embed["footer"] = {"text": footer}
    if timestamp is not None:
        embed["timestamp"] = to_the_minute(timestamp).astimezone(UTC).isoformat()
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
