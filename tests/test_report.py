"""The platform-neutral report: its sentences, and the document of ``check --json``."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests import shapes
from usage_bot._exceptions import CredentialsExpired, CredentialsRejected, RateLimited
from usage_bot._model import (
    AccountUsage,
    Breakdown,
    BreakdownRow,
    Dollars,
    Money,
    Spend,
    parse_usage,
)
from usage_bot._report import (
    breakdown_text,
    build_report,
    dollars_text,
    locked_text,
    spend_text,
    to_json,
)

NOW = datetime(2026, 7, 19, 10, 0, tzinfo=UTC)

PLAN_FIELDS = {"id", "label", "percent", "resets_at", "severity"}  # PRODUCT.md's, as they are
ADDED_FIELDS = {"started", "locked_reason", "dollars", "breakdown"}


def usage_of(answer: dict[str, Any], *, fetched_ago: timedelta, **more: Any) -> AccountUsage:
    snapshot = parse_usage(answer, fetched_at=NOW - fetched_ago)
    return AccountUsage("default", snapshot, checked_at=NOW, **more)


# -- an expired login is a state of rest ------------------------------------------------------


def test_values_from_before_the_login_expired_say_so_calmly() -> None:
    usage = usage_of(
        shapes.answer_2026(),
        fetched_ago=timedelta(hours=7, minutes=52),
        error=CredentialsExpired(NOW - timedelta(hours=7, minutes=50)),
    )

    note = build_report(usage, NOW).staleness_note

    assert note == (
        "Last known values, from 7 h 52 min ago. The login expired then; Claude Code has not "
        "run on this machine since."
    )


def test_values_much_older_than_the_expiry_give_both_ages() -> None:
    usage = usage_of(
        shapes.answer_2026(),
        fetched_ago=timedelta(days=2),
        error=CredentialsExpired(NOW - timedelta(hours=5)),
    )

    note = build_report(usage, NOW).staleness_note

    assert note == (
        "Last known values, from 2 d ago. The login expired 5 h ago; Claude Code has not run "
        "on this machine since."
    )


@pytest.mark.parametrize("error", [CredentialsRejected(), RateLimited(120)])
def test_other_errors_keep_their_own_sentence(error: Any) -> None:
    usage = usage_of(shapes.answer_2026(), fetched_ago=timedelta(minutes=12), error=error)

    note = build_report(usage, NOW).staleness_note

    assert note == f"Last known values, from 12 min ago. {error.message}"


def test_an_expired_login_with_no_values_at_all_is_the_error_with_its_fix() -> None:
    error = CredentialsExpired(NOW - timedelta(hours=1))
    report = build_report(AccountUsage("default", None, error, NOW), NOW)

    assert report.staleness_note is None
    assert report.error == error.message
    assert "run `claude`" in error.message


# -- the sentences ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spend", "text"),
    [
        (
            Spend(Money(12.5, "USD"), Money(100, "USD"), Money(150, "USD"), 12.5, "normal"),
            "Spend: 12.50 USD used of 100.00 USD (12%); capped at 150.00 USD",
        ),
        (Spend(Money(1200, "JPY", 0), None, None, None, "normal"), "Spend: 1,200 JPY used"),
        (
            Spend(None, Money(100, "EUR"), None, 96, "critical"),
            "Spend: limit 100.00 EUR (96%, critical)",
        ),
        (Spend(None, None, None, 81, "warning"), "Spend: 81% used (warning)"),
        (Spend(None, None, Money(150, "USD"), None, "normal"), "Spend: capped at 150.00 USD"),
    ],
)
def test_spend(spend: Spend, text: str) -> None:
    assert spend_text(spend) == text


@pytest.mark.parametrize(
    ("dollars", "text"),
    [
        (Dollars(50, 12, 38), "12.00 USD used of 50.00 USD, 38.00 USD left"),
        (Dollars(None, 10.5, None), "10.50 USD used"),
        (Dollars(50, None, 38), "limit 50.00 USD, 38.00 USD left"),
    ],
)
def test_dollars(dollars: Dollars, text: str) -> None:
    assert dollars_text(dollars) == text


def test_a_locked_reason_code_reads_as_words_and_a_sentence_as_it_is() -> None:
    assert locked_text("usage_limit_reached") == "Locked: usage limit reached"
    assert locked_text("Paused by your admin.") == "Locked: Paused by your admin."


def test_a_long_breakdown_is_cut_and_says_how_many_more() -> None:
    rows = tuple(BreakdownRow(f"s{i}", f"Surface {i}", 1.0) for i in range(40))

    text = breakdown_text(Breakdown(rows))

    assert text.startswith("Used by Surface 0 1%, Surface 1 1%")
    assert text.endswith(", 34 more")


# -- check --json -------------------------------------------------------------------------------


def test_json_keeps_the_product_fields_and_adds_the_2026_ones() -> None:
    answer = shapes.answer_2026(
        five_hour=shapes.window(
            100, shapes.SESSION_RESET, used_dollars=50, locked_reason="usage_limit_reached"
        )
    )
    usage = usage_of(answer, fetched_ago=timedelta(minutes=1))

    document = json.loads(json.dumps(to_json([usage], NOW)))

    (account,) = document["accounts"]
    assert set(account) == {
        "name",
        "fetched_at",
        "stale",
        "limits",
        "extra_usage",
        "spend",
        "error",
    }
    assert account["extra_usage"] == {
        "enabled": True,
        "used": 20.5,
        "limit": 50.0,
        "currency": "USD",
    }
    assert account["spend"] == {
        "used": {"amount": 12.5, "currency": "USD"},
        "limit": {"amount": 100.0, "currency": "USD"},
        "cap": {"amount": 150.0, "currency": "USD"},
        "percent": 12.5,
        "severity": "normal",
    }
    limits = {limit["id"]: limit for limit in account["limits"]}
    assert all(set(limit) == PLAN_FIELDS | ADDED_FIELDS for limit in account["limits"])
    assert list(limits) == ["five_hour", "seven_day", "seven_day_fable", "seven_day_sonnet"]
    assert limits["five_hour"] == {
        "id": "five_hour",
        "label": "5-hour",
        "percent": 100.0,
        "resets_at": "2026-07-19T03:39:59.570750+00:00",
        "severity": "critical",
        "started": True,
        "locked_reason": "usage_limit_reached",
        "dollars": {"limit": None, "used": 50.0, "remaining": None},
        "breakdown": None,
    }
    assert limits["seven_day"]["breakdown"] == {
        "as_of": "2026-07-19T00:55:00+00:00",
        "window_started_at": "2026-07-17T17:00:00+00:00",
        "rows": [
            {"key": "claude_code", "label": "Claude Code", "percent": 30.0},
            {"key": "chat", "label": "Chat", "percent": 8.5},
            {"key": "cowork", "label": "Cowork", "percent": 2.0},
            {"key": "other", "label": "Other", "percent": 1.5},
        ],
    }
    assert limits["seven_day_fable"]["severity"] == "critical"


def test_json_says_a_window_has_not_started() -> None:
    usage = usage_of(shapes.answer_2026(), fetched_ago=timedelta(minutes=1))

    (account,) = to_json([usage], NOW)["accounts"]

    five = account["limits"][0]
    assert (five["id"], five["percent"], five["resets_at"], five["started"]) == (
        "five_hour",
        0.0,
        None,
        False,
    )
    assert all(limit["started"] for limit in account["limits"][1:])


def test_json_without_spend_or_values() -> None:
    failed = AccountUsage("default", None, RateLimited(None), NOW)

    (account,) = to_json([failed], NOW)["accounts"]

    assert account["spend"] is None
    assert account["limits"] == []
