"""Slack rendering: every response shape of PRODUCT.md as Block Kit, within Block Kit's limits."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests import shapes
from usage_bot._exceptions import CredentialsExpired, RateLimited
from usage_bot._model import AccountUsage, parse_usage
from usage_bot._notify import AlertMessage
from usage_bot._report import AccountReport, build_report
from usage_bot._texts import FETCHING
from usage_bot.frontends import Reply
from usage_bot.frontends.slack.render import (
    MAX_BLOCKS,
    MAX_HEADER,
    MAX_TEXT,
    SlackMessage,
    date_token,
    render_alert,
    render_help,
    render_reports,
    reply_payload,
)

NOW = datetime(2026, 7, 19, 1, 0, tzinfo=UTC)
RESET = "2026-07-19T03:39:59.570750+00:00"

FLAT = {
    "five_hour": {"utilization": 15, "resets_at": RESET},
    "seven_day": {"utilization": 81.5, "resets_at": "2026-07-22T00:00:00Z", "extra": 1},
    "seven_day_opus": None,
    "seven_day_sonnet": {"utilization": 96.0, "resets_at": "2026-07-22T00:00:00.123Z"},
    "seven_day_oauth_apps": {"utilization": 0, "resets_at": None},
    "seven_day_cowork": {"utilization": 3.25, "resets_at": "2026-07-22T00:00:00+02:00"},
    "iguana_necktie": {"utilization": 42, "resets_at": "2026-07-20T00:00:00Z"},
    "currency": "EUR",
}
LISTED = {
    "limits": [
        {
            "kind": "session",
            "group": "default",
            "percent": 15,
            "severity": "normal",
            "resets_at": RESET,
            "scope": None,
            "is_active": True,
        },
        {
            "kind": "weekly_scoped",
            "group": "default",
            "percent": 81,
            "severity": "warning",
            "resets_at": "2026-07-22T00:00:00Z",
            "scope": {"model": {"id": "claude-fable", "display_name": "Fable"}, "surface": None},
            "is_active": True,
        },
        {
            "kind": "monthly_burst",
            "group": "x",
            "percent": 5,
            "severity": "elevated",
            "resets_at": None,
            "scope": None,
            "is_active": False,
        },
    ]
}
EXTRA_ON = {
    "extra_usage": {
        "is_enabled": True,
        "monthly_limit": 5000,
        "used_credits": 2050,
        "utilization": 41.0,
        "currency": "USD",
    }
}
EXTRA_UNLIMITED = {
    "extra_usage": {"is_enabled": True, "monthly_limit": None, "used_credits": 40843}
}
EXTRA_OFF = {"extra_usage": {"is_enabled": False, "monthly_limit": None, "used_credits": None}}

SHAPES: dict[str, dict[str, Any]] = {
    "flat": FLAT,
    "listed": LISTED,
    "both": {**FLAT, **LISTED, **EXTRA_ON},
    "extra unlimited": {**LISTED, **EXTRA_UNLIMITED},
    "extra off": {**FLAT, **EXTRA_OFF},
    "2026": shapes.answer_2026(),
    "nothing in the known members": {"five_hour": None, "seven_day": None},
}


def usage(payload: dict[str, Any], *, account: str = "default", age: float = 0) -> AccountUsage:
    fetched = NOW - timedelta(seconds=age)
    return AccountUsage(account, parse_usage(payload, fetched_at=fetched), checked_at=NOW)


def report(payload: dict[str, Any], **kwargs: Any) -> AccountReport:
    return build_report(usage(payload, **kwargs), NOW)


def assert_within_block_kit(message: SlackMessage) -> None:
    assert message.text
    assert len(message.text) <= MAX_TEXT
    assert 0 < len(message.blocks) <= MAX_BLOCKS
    for block in message.blocks:
        if block["type"] == "header":
            assert block["text"]["type"] == "plain_text"
            assert 0 < len(block["text"]["text"]) <= MAX_HEADER
        elif block["type"] == "section":
            assert 0 < len(block["text"]["text"]) <= MAX_TEXT
        elif block["type"] == "context":
            assert 0 < len(block["elements"]) <= 10
            assert all(0 < len(e["text"]) <= MAX_TEXT for e in block["elements"])
        else:
            pytest.fail(f"unexpected block {block['type']}")
    json.dumps(message.payload("ephemeral"))


def shown(message: SlackMessage) -> str:
    parts = []
    for block in message.blocks:
        if "text" in block:
            parts.append(block["text"]["text"])
        parts.extend(element["text"] for element in block.get("elements", []))
    return "\n".join(parts)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("accounts", [1, 3])
@pytest.mark.parametrize("pending", [False, True])
def test_every_response_shape_stays_within_block_kit(
    shape: str, accounts: int, pending: bool
) -> None:
    reports = [report(SHAPES[shape], account=f"acct{i}") for i in range(accounts)]

    message = render_reports(reports, pending=pending)

    assert_within_block_kit(message)


def test_one_account_in_full() -> None:
    message = render_reports([report({**FLAT, **LISTED, **EXTRA_ON})])

    text = shown(message)
    assert message.blocks[0]["text"]["text"] == "Claude usage: default"
    for label in (
        "5-hour",
        "Weekly (all models)",
        "Weekly (Sonnet)",
        "Weekly (OAuth apps)",
        "Weekly (Cowork)",
        "Weekly (Fable)",
        "Iguana necktie",
        "Monthly burst",
    ):
        assert f"*{label}*" in text
    assert "Weekly (Opus)" not in text
    assert text.count("*5-hour*") == 1, "the same limit given both ways is shown once"
    five_hour = message.blocks[1]["text"]["text"]
    assert five_hour == (
        ":large_green_circle: *5-hour*   *15%*\n`██░░░░░░░░`   resets "
        "<!date^1784432400^{date_short_pretty} {time}|2026-07-19 03:40 UTC> (in 2 h 39 min)"
    )
    assert ":large_yellow_circle: *Weekly (Fable)*" in text
    assert ":red_circle: *Weekly (Sonnet)*" in text
    assert ":large_yellow_circle: *Monthly burst*" in text, "unknown severity shows as warning"
    assert "*Weekly (OAuth apps)*   *0%*\n`░░░░░░░░░░`   not started" in text
    assert "*Iguana necktie*   *42%*" in text
    assert "Extra usage: 20.50 USD used of 50.00 USD" in text
    assert "Account *default* · updated <!date^1784422800^{time}|2026-07-19 01:00 UTC>" in text
    assert "Last known" not in text
    assert message.text.startswith("Claude usage for default: 5-hour 15%, Weekly (all models) 82%")


def test_stale_values_say_their_age_and_why() -> None:
    stale = AccountUsage(
        "default",
        parse_usage(LISTED, fetched_at=NOW - timedelta(minutes=12)),
        error=RateLimited(600, wait=600),
        checked_at=NOW,
    )

    message = render_reports([build_report(stale, NOW)])

    context = message.blocks[-1]
    assert context["type"] == "context"
    assert context["elements"][1]["text"] == (
        ":hourglass_flowing_sand: Last known values, from 12 min ago. Anthropic is "
        "rate-limiting usage requests; the bot asks again in 10 min and shows the last "
        "known values until then."
    )
    assert "(last known, 12 min old)" in message.text


def test_an_error_without_values_is_one_sentence() -> None:
    failed = AccountUsage("default", None, error=RateLimited(None), checked_at=NOW)

    message = render_reports([build_report(failed, NOW)])

    assert_within_block_kit(message)
    assert [block["type"] for block in message.blocks] == ["header", "section"]
    assert shown(message).endswith(":warning: " + RateLimited(None).message)
    assert message.text == "Claude usage for default: " + RateLimited(None).message


def test_several_accounts_compactly() -> None:
    reports = [report(LISTED, account="alice"), report(FLAT, account="bob", age=11 * 60)]

    message = render_reports(reports)

    assert_within_block_kit(message)
    assert message.blocks[0]["text"]["text"] == "Claude usage: 2 accounts"
    alice, bob = (block["text"]["text"] for block in message.blocks[1:3])
    assert alice.startswith("*alice*\n:large_green_circle: 5-hour `██░░░░░░░░` *15%* · resets <!")
    assert "Weekly (Fable)" in alice
    assert bob.endswith("_Last known values, from 11 min ago._")
    assert "`/claude-usage NAME`" in shown(message)


def test_pending_note_when_newer_values_follow() -> None:
    message = render_reports([report(LISTED, age=300)], pending=True)

    assert "Values from 5 min ago; newer values follow as soon as Anthropic answers." in (
        shown(message)
    )


def test_upstream_text_cannot_inject_mentions_or_links() -> None:
    payload = {"limits": [{**LISTED["limits"][0], "kind": "<!channel>&<http://x|y>"}]}

    text = shown(render_reports([report(payload)]))

    assert "<!channel>" not in text
    assert "&lt;!channel&gt;&amp;&lt;http://x|y&gt;" in text


@pytest.mark.parametrize("count", [49, 120, 3000])
def test_many_limits_stay_within_block_kit(count: int) -> None:
    windows = {
        f"seven_day_model_{i:04d}": {"utilization": i % 101, "resets_at": RESET}
        for i in range(count)
    }

    message = render_reports([report({**windows, **EXTRA_ON})])

    assert_within_block_kit(message)
    text = shown(message)
    if count <= 120:
        assert all(f"Weekly (Model {i:04d})" in text for i in range(count))
    else:
        assert "more not shown here" in text


@pytest.mark.parametrize("count", [48, 60, 500])
def test_many_accounts_stay_within_block_kit(count: int) -> None:
    reports = [report({**FLAT, **LISTED}, account=f"account-{i:03d}") for i in range(count)]

    message = render_reports(reports)

    assert_within_block_kit(message)
    if count <= 60:
        assert all(f"*account-{i:03d}*" in shown(message) for i in range(count))


def test_long_names_are_cut_to_fit() -> None:
    name = "a" * 64
    windows = {f"seven_day_{'x' * 3100}": {"utilization": 50, "resets_at": RESET}}

    message = render_reports([report(windows, account=name)])

    assert_within_block_kit(message)
    assert message.blocks[0]["text"]["text"] == f"Claude usage: {name}"


def test_date_token() -> None:
    moment = datetime(2026, 7, 19, 5, 39, 29, tzinfo=UTC).astimezone()

    assert date_token(moment) == (
        "<!date^1784439540^{date_short_pretty} {time}|2026-07-19 05:39 UTC>"
    )


# 23:59:59.57 is midnight: the console says 00:00, and so must Slack (it would say 23:59).
LAST_SECOND = "2026-07-19T23:59:59.570750+00:00"
MIDNIGHT = "<!date^1784505600^{date_short_pretty} {time}|2026-07-20 00:00 UTC>"


def test_every_time_shown_is_the_nearest_minute() -> None:
    moment = datetime.fromisoformat(LAST_SECOND)
    payload = {"five_hour": {"utilization": 15, "resets_at": LAST_SECOND}}
    snapshot = parse_usage(payload, fetched_at=moment - timedelta(hours=3))
    shown_report = shown(render_reports([build_report(AccountUsage("default", snapshot), NOW)]))
    alert = AlertMessage(
        kind="threshold",
        key="k",
        account="default",
        title="5-hour limit at 95%",
        text="The 5-hour limit of default is at 95%.",
        resets_at=moment,
    )
    message = render_alert(alert)

    assert f"resets {MIDNIGHT}" in shown_report
    # The time of the values too: 20:59:59.57 is 21:00.
    assert "updated <!date^1784494800^{time}|2026-07-19 21:00 UTC>" in shown_report
    assert f"Resets {MIDNIGHT}." in shown(message)
    assert message.text.endswith("Resets 2026-07-20 00:00 UTC.")


def test_help_names_the_accounts_and_what_was_not_understood() -> None:
    message = render_help(["alice", "bob"], unknown="<@U1> please")

    text = shown(message)
    assert text.startswith("I don't understand `&lt;@U1&gt; please`.")
    assert "`/claude-usage share`" in text
    assert "Accounts: `alice`, `bob`." in text
    assert_within_block_kit(message)


def test_the_help_in_full() -> None:
    message = render_help(["default"])

    assert message.blocks[0]["text"]["text"] == (
        "*/claude-usage* shows how much of the team's Claude subscription quota is used, and "
        "when each limit resets.\n"
        "• `/claude-usage`: the report, only for you\n"
        "• `/claude-usage share`: the report, posted in this channel\n"
        "• `/claude-usage NAME`: one account in full (also `share NAME`)\n"
        "• `/claude-usage help`: this help"
    )
    assert "Accounts:" not in shown(message), "one account: nothing to choose"


def test_what_was_not_understood_is_quoted_short() -> None:
    text = shown(render_help([], unknown="x" * 500))

    assert text.startswith("I don't understand `" + "x" * 99 + "…`.")


# -- replies: what ack and respond are given ----------------------------------------------


def test_a_report_for_the_channel_is_in_channel() -> None:
    reply = Reply("usage", visibility="channel", reports=(report(LISTED),))

    payload = reply_payload(reply)

    assert payload["response_type"] == "in_channel"
    assert payload["blocks"][0]["text"]["text"] == "Claude usage: default"
    assert payload["text"].startswith("Claude usage for default: 5-hour 15%")


def test_a_pending_report_is_private_and_says_newer_values_follow() -> None:
    reply = Reply("usage", reports=(report(LISTED, age=300),), pending=True)

    payload = reply_payload(reply)

    assert payload["response_type"] == "ephemeral"
    assert "newer values follow" in payload["text"]


def test_a_notice_is_its_sentence_alone() -> None:
    assert reply_payload(Reply("notice", text=FETCHING)) == {
        "text": FETCHING,
        "response_type": "ephemeral",
    }


def test_the_help_reply_names_the_accounts_and_what_was_not_understood() -> None:
    reply = Reply("help", not_understood="carol", accounts=("alice", "bob"))

    payload = reply_payload(reply)

    assert payload["response_type"] == "ephemeral"
    text = payload["blocks"][0]["text"]["text"]
    assert text.startswith("I don't understand `carol`.\n\n*/claude-usage* shows")
    assert text.endswith("\n\nAccounts: `alice`, `bob`.")


# -- alerts --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "severity", "marker"),
    [
        ("threshold", "warning", ":large_yellow_circle:"),
        ("threshold", "critical", ":red_circle:"),
        ("reset", "normal", ":arrows_counterclockwise:"),
        ("incident_started", "critical", ":warning:"),
        ("incident_ended", "normal", ":white_check_mark:"),
    ],
)
def test_alerts(kind: Any, severity: str, marker: str) -> None:
    alert = AlertMessage(
        kind=kind,
        key="k",
        account="alice",
        title="Weekly (Fable) at 95% for alice",
        text="Weekly (Fable) has used 95% of its quota.",
        severity=severity,
        resets_at=datetime(2026, 7, 22, tzinfo=UTC),
        advice="Switch to another model until it resets.",
    )

    message = render_alert(alert)

    assert_within_block_kit(message)
    header, section, context = message.blocks
    assert header["text"]["text"] == alert.title
    assert section["text"]["text"] == (
        f"{marker} Weekly (Fable) has used 95% of its quota.\n"
        "Resets <!date^1784678400^{date_short_pretty} {time}|2026-07-22 00:00 UTC>."
    )
    assert [e["text"] for e in context["elements"]] == [
        ":bulb: Switch to another model until it resets.",
        "Account *alice*",
    ]
    assert message.text == (
        "Weekly (Fable) at 95% for alice: Weekly (Fable) has used 95% of its quota. "
        "Resets 2026-07-22 00:00 UTC."
    )


def test_alert_without_reset_or_advice() -> None:
    alert = AlertMessage(
        kind="incident_started", key="k", account="bob", title="t" * 400, text="Cannot read."
    )

    message = render_alert(alert)

    assert_within_block_kit(message)
    assert "Resets" not in shown(message)


# -- the 2026 shapes --------------------------------------------------------------------------

LOCKED_SESSION = shapes.window(
    100,
    RESET,
    limit_dollars=50,
    used_dollars=50,
    remaining_dollars=0,
    locked_reason="usage_limit_reached",
)


def section_of(message: SlackMessage, label: str) -> str:
    return next(
        block["text"]["text"]
        for block in message.blocks
        if block["type"] == "section" and f"*{label}*" in block["text"]["text"]
    )


def test_a_2026_answer_in_full() -> None:
    message = render_reports([report(shapes.answer_2026(five_hour=LOCKED_SESSION))])

    assert_within_block_kit(message)
    assert section_of(message, "5-hour") == (
        ":red_circle: *5-hour*   *100%*\n`██████████`   resets "
        "<!date^1784432400^{date_short_pretty} {time}|2026-07-19 03:40 UTC> (in 2 h 39 min)\n"
        ":lock: Locked: usage limit reached\n"
        "50.00 USD used of 50.00 USD, 0.00 USD left"
    )
    assert section_of(message, "Weekly (all models)").endswith(
        "\nUsed by Claude Code 30%, Chat 8.5%, Cowork 2%, Other 1.5%"
    )
    assert section_of(message, "Weekly (Fable)").startswith(":red_circle: *Weekly (Fable)*")
    text = shown(message)
    assert (
        ":credit_card: Spend: 12.50 USD used of 100.00 USD (12%); capped at 150.00 USD\n"
        ":moneybag: Extra usage: 20.50 USD used of 50.00 USD"
    ) in text
    assert "Tangelo" not in text


def test_an_inactive_session_reads_not_started() -> None:
    message = render_reports([report(shapes.answer_2026())])

    assert section_of(message, "5-hour") == (
        ":large_green_circle: *5-hour*   *0%*\n`░░░░░░░░░░`   not started"
    )


def test_several_accounts_show_the_new_lines_compactly() -> None:
    reports = [
        report(shapes.answer_2026(five_hour=LOCKED_SESSION), account="alice"),
        report(FLAT, account="bob"),
    ]

    message = render_reports(reports)

    assert_within_block_kit(message)
    alice = message.blocks[1]["text"]["text"]
    assert "5-hour `██████████` *100%* · resets <!" in alice
    assert "\n      _:lock: Locked: usage limit reached_\n" in alice
    assert "\n      _Used by Claude Code 30%, Chat 8.5%, Cowork 2%, Other 1.5%_\n" in alice
    assert ":credit_card: Spend: 12.50 USD used" in alice
    assert "5-hour" in message.blocks[2]["text"]["text"]


def test_upstream_names_in_the_breakdown_cannot_inject_mentions() -> None:
    answer = shapes.answer_2026(
        seven_day_breakdown=shapes.breakdown(("other", "<!here> & <@U1>", 5)),
        five_hour=shapes.window(1, RESET, locked_reason="<!channel>"),
    )

    text = shown(render_reports([report(answer)]))

    assert "<!here>" not in text
    assert "<!channel>" not in text
    assert "Used by &lt;!here&gt; &amp; &lt;@U1&gt; 5%" in text
    assert "Locked: &lt;!channel&gt;" in text


def test_a_huge_breakdown_and_locked_reason_stay_within_block_kit() -> None:
    rows = [(f"surface_{i}", "x" * 500, i % 100) for i in range(500)]
    answer = shapes.answer_2026(
        seven_day_breakdown=shapes.breakdown(*rows),
        five_hour=shapes.window(1, RESET, locked_reason="y" * 10_000),
    )

    for accounts in (1, 3):
        message = render_reports([report(answer, account=f"a{i}") for i in range(accounts)])
        assert_within_block_kit(message)
        assert "494 more" in shown(message)


def test_an_expired_login_reads_as_a_state_of_rest() -> None:
    stale = AccountUsage(
        "default",
        parse_usage(shapes.answer_2026(), fetched_at=NOW - timedelta(hours=8, minutes=2)),
        error=CredentialsExpired(NOW - timedelta(hours=8)),
        checked_at=NOW,
    )

    message = render_reports([build_report(stale, NOW)])

    assert message.blocks[-1]["elements"][1]["text"] == (
        ":hourglass_flowing_sand: Last known values, from 8 h 2 min ago. The login expired "
        "then; Claude Code has not run on this machine since."
    )
