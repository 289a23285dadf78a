"""Discord embeds for replies and alerts: every response shape, within Discord's limits.

The renderer makes Discord's JSON; the tests read it back through discord.py
(``discord.Embed.from_dict``), as the front end sends it, so that discord.py's own view
of an embed (its length, its fields) is the judge.
"""

from __future__ import annotations

# First: the fake imports discord.py with its audioop DeprecationWarning silenced.
import tests.fakes.discord  # noqa: F401  # isort: skip

from datetime import UTC, datetime, timedelta
from typing import Any

import discord
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests import shapes
from usage_bot._exceptions import CredentialsExpired, RateLimited
from usage_bot._model import AccountUsage, parse_usage
from usage_bot._notify import AlertMessage
from usage_bot._report import AccountReport, ReportRow, build_report, to_the_minute
from usage_bot._texts import FETCHING, HELP_LINES, refused
from usage_bot.frontends import Reply
from usage_bot.frontends.discord import render
from usage_bot.frontends.discord.render import (
    COLOURS,
    NO_DATA_COLOUR,
    RESET_COLOUR,
    as_options,
    embed_size,
    escape_markdown,
    render_reply,
    timestamp,
)

NOW = datetime(2026, 7, 19, 1, 2, 3, tzinfo=UTC)
SESSION_RESET = "2026-07-19T03:39:59.570750+00:00"
WEEK_RESET = "2026-07-24T17:00:00Z"


def render_reports(reports: list[AccountReport]) -> list[discord.Embed]:
    return [discord.Embed.from_dict(embed) for embed in render.render_reports(reports)]


def render_compact(reports: list[AccountReport]) -> discord.Embed:
    return discord.Embed.from_dict(render.render_compact(reports))


def render_alert(message: AlertMessage) -> discord.Embed:
    return discord.Embed.from_dict(render.render_alert(message))


def assert_fits(embeds: list[discord.Embed]) -> None:
    """Discord's limits for the embeds of one message."""
    assert 1 <= len(embeds) <= 10
    for embed in embeds:
        data = embed.to_dict()
        assert 0 < len(data.get("title", "")) <= 256
        assert len(data.get("description", "")) <= 4096
        assert len(data.get("footer", {}).get("text", "")) <= 2048
        fields = data.get("fields", [])
        assert len(fields) <= 25
        for field in fields:
            assert 0 < len(field["name"]) <= 256
            assert 0 < len(field["value"]) <= 1024
    assert sum(len(embed) for embed in embeds) <= 6000


def report(payload: dict[str, Any], *, name: str = "default", **usage: Any) -> AccountReport:
    snapshot = parse_usage(payload, fetched_at=NOW - timedelta(minutes=2))
    return build_report(AccountUsage(name, snapshot, **usage), NOW)


def fields(embed: discord.Embed) -> dict[str, str]:
    return {field.name or "": field.value or "" for field in embed.fields}


def unix(iso: str) -> int:
    """The time as the embeds show it: the nearest minute."""
    return int(to_the_minute(datetime.fromisoformat(iso)).timestamp())


FLAT = {
    "five_hour": {"utilization": 15, "resets_at": SESSION_RESET},
    "seven_day": {"utilization": 81.5, "resets_at": WEEK_RESET},
    "seven_day_opus": None,
    "seven_day_sonnet": {"utilization": 96, "resets_at": WEEK_RESET, "extra": 1},
    "iguana_necktie": {"utilization": 3, "resets_at": None},
    "currency": "EUR",
}
LISTED = {
    "limits": [
        {
            "kind": "session",
            "group": "default",
            "percent": 15,
            "severity": "normal",
            "resets_at": SESSION_RESET,
            "scope": None,
            "is_active": True,
        },
        {
            "kind": "weekly_scoped",
            "group": "default",
            "percent": 81,
            "severity": "warning",
            "resets_at": WEEK_RESET,
            "scope": {"model": {"id": "claude-fable", "display_name": "Fable"}, "surface": None},
            "is_active": True,
        },
        {
            "kind": "daily_routines",
            "group": "default",
            "percent": 40,
            "severity": "normal",
            "resets_at": None,
            "scope": None,
            "is_active": True,
        },
    ],
    "extra_usage": {
        "is_enabled": True,
        "monthly_limit": 5000,
        "used_credits": 2050,
        "utilization": 41,
        "currency": "USD",
    },
}


def test_flat_windows_each_get_a_field_with_discord_timestamps() -> None:
    [embed] = render_reports([report(FLAT)])

    assert_fits([embed])
    shown = fields(embed)
    assert list(shown) == [
        "5-hour",
        "Weekly (all models)",
        "Weekly (Sonnet)",
        "Iguana necktie",
    ]
    session = shown["5-hour"]
    assert "**15%**" in session
    assert f"<t:{unix(SESSION_RESET)}:R>" in session
    assert f"<t:{unix(SESSION_RESET)}:f>" in session
    assert "🟡" in shown["Weekly (all models)"]
    assert "(warning)" in shown["Weekly (all models)"]
    assert "🔴" in shown["Weekly (Sonnet)"]
    assert shown["Iguana necktie"].endswith("No reset time given")
    assert embed.title == "Claude usage: default"
    assert embed.colour == discord.Colour(COLOURS["critical"])
    assert embed.footer.text == "As of"
    # Read at 01:00:03, shown as 01:00: the nearest minute, like every time shown.
    assert embed.timestamp == datetime(2026, 7, 19, 1, 0, tzinfo=UTC)


def test_limits_list_only_shows_model_limits_unknown_kinds_and_extra_usage() -> None:
    [embed] = render_reports([report(LISTED)])

    assert_fits([embed])
    shown = fields(embed)
    assert list(shown) == ["5-hour", "Weekly (Fable)", "Daily routines"]
    assert f"<t:{unix(WEEK_RESET)}:R>" in shown["Weekly (Fable)"]
    assert embed.description == "Extra usage: 20.50 USD used of 50.00 USD"
    assert embed.colour == discord.Colour(COLOURS["warning"])


def test_the_same_limit_given_both_ways_is_shown_once() -> None:
    [embed] = render_reports([report({**FLAT, **LISTED})])

    assert_fits([embed])
    names = [field.name for field in embed.fields]
    assert names.count("5-hour") == 1
    assert "Weekly (Fable)" in names


@pytest.mark.parametrize(
    ("extra", "text"),
    [
        ({"is_enabled": False}, "Extra usage: off"),
        (
            {"is_enabled": True, "monthly_limit": None, "used_credits": 40843},
            "Extra usage: 408.43 USD used (no monthly limit)",
        ),
    ],
)
def test_extra_usage_is_described(extra: dict[str, Any], text: str) -> None:
    [embed] = render_reports([report({"five_hour": None, "extra_usage": extra})])

    assert embed.description == "Anthropic reported no limits for this account.\n" + text
    assert embed.colour == discord.Colour(NO_DATA_COLOUR)


def test_stale_values_say_their_age_and_why_in_the_footer() -> None:
    rendered = report(FLAT, error=RateLimited(600))

    [embed] = render_reports([rendered])

    assert_fits([embed])
    footer = embed.footer.text or ""
    assert footer.startswith("Last known values, from 2 min ago.")
    assert "rate-limiting" in footer
    assert len(embed.fields) == 4


def test_no_values_at_all_shows_the_error_sentence() -> None:
    usage = AccountUsage("alice", None, error=CredentialsExpired(NOW - timedelta(hours=1)))

    [embed] = render_reports([build_report(usage, NOW)])

    assert_fits([embed])
    assert embed.title == "Claude usage: alice"
    assert embed.description is not None
    assert embed.description.startswith("⚠️ The Claude login expired")
    assert embed.fields == []
    assert embed.footer.text is None
    assert embed.colour == discord.Colour(NO_DATA_COLOUR)


def test_several_accounts_get_one_embed_each() -> None:
    reports = [report(FLAT, name="alice"), report(LISTED, name="bob")]

    embeds = render_reports(reports)

    assert_fits(embeds)
    assert [e.title for e in embeds] == ["Claude usage: alice", "Claude usage: bob"]


def long_report(name: str, count: int, label_length: int) -> AccountReport:
    rows = tuple(
        ReportRow(
            limit_id=f"limit_{i}",
            label=f"{i:02d} " + "x" * label_length,
            percent=float(i % 101),
            severity=("normal", "warning", "critical")[i % 3],
            severity_rank=i % 3,
            resets_at=NOW + timedelta(hours=i),
            resets_in=timedelta(hours=i),
        )
        for i in range(count)
    )
    return AccountReport(
        account=name,
        rows=rows,
        extra_usage=None,
        fetched_at=NOW,
        age=timedelta(0),
        stale=False,
        error=None,
        error_code=None,
    )


def test_an_extreme_account_is_cut_to_fit_and_says_so() -> None:
    [embed] = render_reports([long_report("default", 60, 400)])

    assert_fits([embed])
    last = embed.fields[-1]
    assert last.name == "More limits"
    assert last.value is not None
    shown = len(embed.fields) - 1
    assert last.value.startswith(f"{60 - shown} more not shown here")
    assert embed.fields[0].name is not None
    assert embed.fields[0].name.startswith("00 xxx")


def test_too_much_for_one_embed_each_becomes_one_compact_embed() -> None:
    reports = [long_report(f"acct{i}", 10, 100) for i in range(4)]

    [embed] = render_reports(reports)

    assert_fits([embed])
    assert embed.title == "Claude usage"
    assert [f.name for f in embed.fields] == [f"🔴 acct{i}" for i in range(4)]
    first = embed.fields[0].value or ""
    assert f"resets {timestamp(NOW, 'R')}" in first


def test_more_accounts_than_fields_are_summed_up() -> None:
    reports = [report(FLAT, name=f"account{i:02d}") for i in range(40)]

    [embed] = render_reports(reports)

    assert_fits([embed])
    last = embed.fields[-1]
    assert last.name == "More accounts"
    assert "/claude-usage account:NAME" in (last.value or "")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    accounts=st.integers(min_value=1, max_value=30),
    limits=st.integers(min_value=0, max_value=40),
    label_length=st.integers(min_value=0, max_value=600),
)
def test_every_answer_fits_discords_limits(accounts: int, limits: int, label_length: int) -> None:
    reports = [long_report(f"a{i}", limits, label_length) for i in range(accounts)]

    assert_fits(render_reports(reports))


def alert(**overrides: Any) -> AlertMessage:
    fields: dict[str, Any] = {
        "kind": "threshold",
        "key": "default:five_hour:2026-07-19T03:39:59+00:00:95",
        "account": "default",
        "title": "5-hour limit at 95%",
        "text": "The 5-hour limit of default is at 95%.",
        "severity": "critical",
        "limit_id": "five_hour",
        "limit_label": "5-hour",
        "percent": 95.0,
        "threshold": 95.0,
        "resets_at": datetime.fromisoformat(SESSION_RESET),
        "advice": "Pause long agent runs until it resets.",
    }
    return AlertMessage(**{**fields, **overrides})


# 23:59:59.57 is midnight: the console says 00:00, and so must Discord (it would say 23:59).
LAST_SECOND = "2026-07-19T23:59:59.570750+00:00"
MIDNIGHT = 1784505600


def test_every_time_shown_is_the_nearest_minute() -> None:
    payload = {"five_hour": {"utilization": 15, "resets_at": LAST_SECOND}}
    snapshot = parse_usage(payload, fetched_at=datetime.fromisoformat(LAST_SECOND))
    [shown_report] = render.render_reports([build_report(AccountUsage("default", snapshot), NOW)])
    shown_alert = render.render_alert(alert(resets_at=datetime.fromisoformat(LAST_SECOND)))

    assert shown_report["fields"][0]["value"].endswith(
        f"Resets <t:{MIDNIGHT}:R> · <t:{MIDNIGHT}:f>"
    )
    assert shown_report["timestamp"] == "2026-07-20T00:00:00+00:00"
    assert shown_alert["description"].endswith(f"Resets <t:{MIDNIGHT}:f> (<t:{MIDNIGHT}:R>).")


def test_alert_embed_has_title_text_reset_time_advice_and_account() -> None:
    embed = render_alert(alert())

    assert_fits([embed])
    assert embed.title == "5-hour limit at 95%"
    assert embed.description == (
        "🔴 The 5-hour limit of default is at 95%.\n"
        f"Resets <t:{unix(SESSION_RESET)}:f> (<t:{unix(SESSION_RESET)}:R>)."
    )
    assert fields(embed) == {"What to do": "Pause long agent runs until it resets."}
    assert embed.footer.text == "Account: default"
    assert embed.colour == discord.Colour(COLOURS["critical"])


def test_reset_announcement_is_blue_without_advice() -> None:
    embed = render_alert(alert(kind="reset", severity="normal", advice=None, resets_at=None))

    assert embed.colour == discord.Colour(RESET_COLOUR)
    assert embed.fields == []
    assert embed.description is not None
    assert embed.description.startswith("🔄 ")


def test_an_oversized_alert_is_cut_to_fit() -> None:
    embed = render_alert(alert(title="T" * 500, text="x" * 5000, advice="a" * 2000))

    assert_fits([embed])


# -- the 2026 shapes --------------------------------------------------------------------------

LOCKED_SESSION = shapes.window(
    100,
    SESSION_RESET,
    limit_dollars=50,
    used_dollars=50,
    remaining_dollars=0,
    locked_reason="usage_limit_reached",
)


def test_a_2026_answer() -> None:
    [embed] = render_reports([report(shapes.answer_2026())])

    assert_fits([embed])
    shown = fields(embed)
    assert list(shown) == ["5-hour", "Weekly (all models)", "Weekly (Fable)", "Weekly (Sonnet)"]
    assert shown["5-hour"] == "🟢 `░░░░░░░░░░` **0%**\nNot started"
    week = shown["Weekly (all models)"].splitlines()
    assert week[1] == f"Resets <t:{unix(WEEK_RESET)}:R> · <t:{unix(WEEK_RESET)}:f>"
    assert week[2] == "Used by Claude Code 30%, Chat 8.5%, Cowork 2%, Other 1.5%"
    assert shown["Weekly (Fable)"].startswith("🔴 `██████████` **96%** (critical)")
    assert embed.description == (
        "Spend: 12.50 USD used of 100.00 USD (12%); capped at 150.00 USD\n"
        "Extra usage: 20.50 USD used of 50.00 USD"
    )
    assert embed.colour == discord.Colour(COLOURS["critical"])


def test_a_locked_window_says_why_and_what_it_cost() -> None:
    [embed] = render_reports([report(shapes.answer_2026(five_hour=LOCKED_SESSION))])

    assert fields(embed)["5-hour"].splitlines()[2:] == [
        "🔒 Locked: usage limit reached",
        "50.00 USD used of 50.00 USD, 0.00 USD left",
    ]


def test_the_compact_embed_keeps_each_limit_with_its_details() -> None:
    reports = [
        report(shapes.answer_2026(five_hour=LOCKED_SESSION), name="alice"),
        report(FLAT, name="bob"),
    ]

    embed = render_compact(reports)

    assert_fits([embed])
    alice = (embed.fields[0].value or "").splitlines()
    five = next(i for i, line in enumerate(alice) if "5-hour" in line)
    assert alice[five + 1] == "  *🔒 Locked: usage limit reached*"
    assert alice[five + 2] == "  *50.00 USD used of 50.00 USD, 0.00 USD left*"
    week = next(i for i, line in enumerate(alice) if "Weekly (all models)" in line)
    assert alice[week + 1].startswith("  *Used by Claude Code 30%")
    assert "Spend: 12.50 USD used" in (embed.fields[0].value or "")


def test_an_inactive_session_in_the_compact_embed() -> None:
    embed = render_compact([report(shapes.answer_2026(), name="a"), report(FLAT, name="b")])

    first = (embed.fields[0].value or "").splitlines()[0]
    assert first == "🟢 `░░░░░░░░` **0%** 5-hour · not started"


def test_markdown_in_upstream_names_is_inert() -> None:
    answer = shapes.answer_2026(
        seven_day_breakdown=shapes.breakdown(("other", "**bold** `code`", 5)),
    )

    [embed] = render_reports([report(answer)])

    assert "Used by \\*\\*bold\\*\\* \\`code\\` 5%" in fields(embed)["Weekly (all models)"]


@pytest.mark.parametrize("accounts", [1, 3, 12])
def test_a_huge_breakdown_and_locked_reason_fit_discords_limits(accounts: int) -> None:
    rows = [(f"surface_{i}", "*" * 500, i % 100) for i in range(500)]
    answer = shapes.answer_2026(
        seven_day_breakdown=shapes.breakdown(*rows),
        five_hour=shapes.window(1, SESSION_RESET, locked_reason="_" * 10_000),
    )

    assert_fits(render_reports([report(answer, name=f"a{i}") for i in range(accounts)]))


def test_an_expired_login_reads_as_a_state_of_rest_in_the_footer() -> None:
    expired = report(FLAT, error=CredentialsExpired(NOW - timedelta(minutes=1)))

    [embed] = render_reports([expired])

    assert embed.footer.text == (
        "Last known values, from 2 min ago. The login expired then; Claude Code has not run "
        "on this machine since."
    )


# -- replies -------------------------------------------------------------------------------


def test_a_usage_reply_is_its_embeds_private_unless_shared() -> None:
    reports = (report(FLAT, name="alice"), report(LISTED, name="bob"))

    private = render_reply(Reply("usage", reports=reports))
    shared = render_reply(Reply("usage", visibility="channel", reports=reports))

    assert private.ephemeral is True
    assert shared.ephemeral is False
    assert private.content == shared.content == ""
    assert [e["title"] for e in private.embeds] == ["Claude usage: alice", "Claude usage: bob"]
    assert private.embeds == shared.embeds


def test_a_notice_is_one_private_sentence_without_embeds() -> None:
    said = render_reply(Reply("notice", text=refused("server", "discord"), refused=True))

    assert (said.content, said.embeds, said.ephemeral) == (
        refused("server", "discord"),
        (),
        True,
    )
    assert render_reply(Reply("notice", text=FETCHING)).content == FETCHING


def test_the_help_says_what_was_not_understood_and_shows_discords_options() -> None:
    shown = render_reply(Reply("help", not_understood="ca`rol", accounts=("alice", "bob")))

    [embed] = shown.embeds
    assert_fits([discord.Embed.from_dict(embed)])
    lines = embed["description"].splitlines()
    # As the user typed it: in Discord's options, not the grammar's words.
    assert lines[0] == "I don't understand `account:ca'rol`."
    assert lines[1].startswith("`/claude-usage` shows how much")
    # The grammar's lines, each in the options a Discord user picks.
    assert len(lines[2:-1]) == len(HELP_LINES)
    assert lines[2:-1] == [
        "`/claude-usage`: the report, only for you",
        "`/claude-usage share:True`: the report, posted in this channel",
        "`/claude-usage account:NAME`: one account in full (also `share:True account:NAME`)",
        "`/claude-usage account:help`: this help",
    ]
    assert lines[-1] == "Accounts: `alice`, `bob`."
    assert (shown.content, shown.ephemeral) == ("", True)


def test_the_grammars_words_as_discords_options() -> None:
    assert as_options("") == ""
    assert as_options("share") == "share:True"
    assert as_options("NAME") == "account:NAME"
    assert as_options("share NAME") == "share:True account:NAME"
    assert as_options("help") == "account:help"


def test_what_was_not_understood_is_shown_as_the_options_typed() -> None:
    shown = render_reply(Reply("help", not_understood="share carol"))

    [embed] = shown.embeds
    assert embed["description"].splitlines()[0] == (
        "I don't understand `share:True account:carol`."
    )


def test_a_help_for_one_account_lists_none() -> None:
    [embed] = render_reply(Reply("help", accounts=("default",))).embeds

    assert "Accounts:" not in embed["description"]
    assert embed["description"].startswith("`/claude-usage` shows")


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.sampled_from("ab _*~|`\\>#-[]()<>:/.\n htps"), max_size=40))
def test_markdown_is_escaped_as_discord_py_escapes_it(text: str) -> None:
    assert escape_markdown(text) == discord.utils.escape_markdown(text)


def test_embed_size_counts_what_discord_py_counts() -> None:
    embeds = [
        *render.render_reports([long_report(f"a{i}", 5, 20) for i in range(3)]),
        render.render_alert(alert()),
        render.render_compact([report(FLAT), report(LISTED)]),
    ]

    for embed in embeds:
        assert embed_size(embed) == len(discord.Embed.from_dict(embed))
