"""The terminal report: readable at 80 and at 40 columns, in local time, in plain ASCII."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from tests import shapes
from usage_bot._exceptions import CredentialsExpired, RateLimited, UpstreamTimeout, UsageBotError
from usage_bot._model import AccountUsage, ExtraUsage, Limit, UsageSnapshot, parse_usage
from usage_bot._report import AccountReport, build_report
from usage_bot._terminal import render_report, render_reports

NOW = datetime(2026, 7, 19, 0, 0, tzinfo=UTC)
# 17:00 on the 18th where the reader is: a reset at 03:39:59.57 UTC is 20:40 that local day.
PACIFIC = timezone(timedelta(hours=-7), "PDT")

LIMITS = (
    Limit("five_hour", "5-hour", 15.0, datetime(2026, 7, 19, 3, 39, 59, tzinfo=UTC), "normal"),
    Limit("seven_day", "Weekly (all models)", 42.0, NOW + timedelta(days=3, hours=2), "normal"),
    Limit("seven_day_opus", "Weekly (Opus)", 81.0, NOW + timedelta(days=3, hours=2), "warning"),
    Limit("seven_day_fable", "Weekly (Fable)", 96.0, NOW + timedelta(days=3), "critical"),
    Limit("iguana_necktie", "Iguana necktie", 4.5, None, "normal"),
)
PERCENTS = ("15%", "42%", "81%", "96%", "4.5%")


def report_of(
    limits: tuple[Limit, ...] = LIMITS,
    *,
    extra: ExtraUsage | None = None,
    account: str = "default",
    error: UsageBotError | None = None,
    fetched_ago: timedelta = timedelta(minutes=1),
    snapshot: bool = True,
) -> AccountReport:
    taken = (
        UsageSnapshot(limits=limits, extra_usage=extra, fetched_at=NOW - fetched_ago)
        if snapshot
        else None
    )
    usage = AccountUsage(account=account, snapshot=taken, error=error, checked_at=NOW)
    return build_report(usage, NOW)


def render(report: AccountReport, width: int, *, unicode: bool = True) -> str:
    return render_report(report, now=NOW, width=width, tz=PACIFIC, unicode=unicode)


def assert_fits(text: str, width: int) -> None:
    too_wide = [line for line in text.splitlines() if len(line) > width]
    assert not too_wide, f"wider than {width}: {too_wide}"


@pytest.mark.parametrize("width", [80, 40])
def test_every_limit_is_shown_with_its_percent_within_the_width(width: int) -> None:
    extra = ExtraUsage(enabled=True, used=5.0, limit=50.0, currency="USD")
    text = render(report_of(extra=extra), width)
    assert_fits(text, width)
    assert text.splitlines()[0].startswith("Claude usage: default")
    for limit, percent in zip(LIMITS, PERCENTS, strict=True):
        assert limit.label in text
        assert percent in text
    assert "5.00 USD" in text
    assert "50.00 USD" in text


@pytest.mark.parametrize("width", [80, 40])
def test_limits_keep_their_order(width: int) -> None:
    text = render(report_of(), width)
    places = [text.index(limit.label) for limit in LIMITS]
    assert places == sorted(places)


@pytest.mark.parametrize("width", [80, 40])
def test_times_are_local_to_the_injected_time_zone(width: int) -> None:
    text = render(report_of(), width)
    assert "(as of 16:59)" in text.splitlines()[0]
    # Rounded to the nearest minute, as every time the bot shows.
    assert "20:40" in text
    assert "20:39" not in text
    assert "03:39" not in text
    assert "in 3 h 39 min" in text


def test_a_reset_days_away_names_the_day() -> None:
    text = render(report_of(), 80)
    fable = next(line for line in text.splitlines() if "Weekly (Fable)" in line)
    assert "Tue 17:00" in fable
    assert "(in 3 d)" in fable


def test_a_limit_without_a_reset_time_says_nothing_of_resets() -> None:
    for width in (80, 40):
        text = render(report_of((LIMITS[-1],)), width)
        assert "Iguana necktie" in text
        assert "resets" not in text


@pytest.mark.parametrize("width", [80, 40])
def test_warning_and_critical_are_marked(width: int) -> None:
    lines = render(report_of(), width).splitlines()
    opus = next(line for line in lines if "Weekly (Opus)" in line)
    fable = next(line for line in lines if "Weekly (Fable)" in line)
    five = next(line for line in lines if "5-hour" in line)
    assert "81% !" in opus
    assert "!!" not in opus
    assert "96% !!" in fable
    assert "!" not in five


def test_wide_rows_are_one_line_each_with_a_bar() -> None:
    lines = render(report_of(), 80).splitlines()
    rows = [line for line in lines if any(limit.label in line for limit in LIMITS)]
    assert len(rows) == len(LIMITS)
    five = rows[0]
    assert "██░░░░░░░░" in five


def test_narrow_rows_put_the_bar_on_its_own_line() -> None:
    lines = render(report_of(), 40).splitlines()
    index = next(i for i, line in enumerate(lines) if line.startswith("5-hour"))
    assert lines[index].endswith("15%")
    assert len(lines[index]) == 40
    assert lines[index + 1] == "██████" + "░" * 34
    assert lines[index + 2].startswith("resets 20:40")


@pytest.mark.parametrize("width", [80, 40])
def test_ascii_fallback(width: int) -> None:
    extra = ExtraUsage(enabled=True, used=5.0, limit=50.0, currency="EUR")
    text = render(report_of(extra=extra), width, unicode=False)
    assert text.isascii()
    assert_fits(text, width)
    for limit, percent in zip(LIMITS, PERCENTS, strict=True):
        assert limit.label in text
        assert percent in text
    assert "#" in text
    assert "." in text


def test_unicode_bars_by_default() -> None:
    text = render_report(report_of(), now=NOW, width=80, tz=PACIFIC)
    assert "█" in text
    assert "#" not in text


@pytest.mark.parametrize("width", [80, 40])
def test_stale_values_say_how_old_and_why(width: int) -> None:
    report = report_of(error=RateLimited(120.0), fetched_ago=timedelta(minutes=12))
    text = render(report, width)
    assert_fits(text, width)
    assert "Last known values, from 12 min ago." in " ".join(text.split())
    assert "rate-limiting" in text
    for limit in LIMITS:
        assert limit.label in text


@pytest.mark.parametrize("width", [80, 40])
def test_an_error_without_values_is_shown_wrapped(width: int) -> None:
    text = render(report_of(error=UpstreamTimeout(), snapshot=False), width)
    assert_fits(text, width)
    assert text.splitlines()[0] == "Claude usage: default"
    assert "did not answer in time" in " ".join(text.split())


def test_no_limits_says_so() -> None:
    text = render(report_of(()), 40)
    assert "No limits reported." in text


def test_extra_usage_off() -> None:
    extra = ExtraUsage(enabled=False, used=None, limit=None, currency="USD")
    assert "Extra usage: off" in render(report_of(extra=extra), 40)


def test_several_accounts_are_separated_by_a_blank_line() -> None:
    text = render_reports(
        [report_of(account="alice"), report_of(account="bob")], now=NOW, width=40, tz=PACIFIC
    )
    assert "Claude usage: alice" in text
    assert "\n\nClaude usage: bob" in text
    assert_fits(text, 40)


def test_a_weekly_reset_a_week_away_fits_80_columns() -> None:
    week = (
        Limit("five_hour", "5-hour", 1.0, NOW + timedelta(hours=4), "normal"),
        Limit("seven_day", "Weekly (all models)", 2.0, NOW + timedelta(days=6, hours=21), "normal"),
    )
    assert_fits(render(report_of(week), 80), 80)


@pytest.mark.parametrize(
    ("extra", "account"),
    [
        (ExtraUsage(enabled=True, used=20.5, limit=100.0, currency="USD"), "default"),
        (ExtraUsage(enabled=True, used=408.43, limit=None, currency="USD"), "default"),
        (None, "engineering-team"),
    ],
)
def test_long_lines_fit_40_columns(extra: ExtraUsage | None, account: str) -> None:
    assert_fits(render(report_of(extra=extra, account=account), 40), 40)


def test_long_labels_are_shown_whole_at_80_columns() -> None:
    models = (
        Limit("seven_day_claude_opus_4", "Weekly (Claude Opus 4)", 10.0, None, "normal"),
        Limit("seven_day_claude_opus_4_1", "Weekly (Claude Opus 4.1)", 20.0, None, "normal"),
    )
    text = render(report_of(models), 80)
    assert_fits(text, 80)
    for limit in models:
        assert limit.label in text


# -- the 2026 shapes --------------------------------------------------------------------------


def report_2026(**members: object) -> AccountReport:
    answer = shapes.answer_2026(**members)
    usage = AccountUsage(
        "default", parse_usage(answer, fetched_at=NOW - timedelta(minutes=1)), checked_at=NOW
    )
    return build_report(usage, NOW)


LOCKED_SESSION = shapes.window(
    100,
    shapes.SESSION_RESET,
    limit_dollars=50,
    used_dollars=50,
    remaining_dollars=0,
    locked_reason="usage_limit_reached",
)


@pytest.mark.parametrize("width", [80, 40])
@pytest.mark.parametrize("unicode", [True, False])
def test_a_2026_answer_fits_and_shows_everything(width: int, unicode: bool) -> None:
    text = render(report_2026(five_hour=LOCKED_SESSION), width, unicode=unicode)

    assert_fits(text, width)
    assert text.isascii() or unicode
    flat = " ".join(text.split())
    for shown in (
        "5-hour",
        "Locked: usage limit reached",
        "50.00 USD used of 50.00 USD, 0.00 USD left",
        "Weekly (all models)",
        "Used by Claude Code 30%, Chat 8.5%, Cowork 2%, Other 1.5%",
        "Weekly (Fable)",
        "96% !!",
        "Spend: 12.50 USD used of 100.00 USD (12%); capped at 150.00 USD",
        "Extra usage: 20.50 USD used of 50.00 USD",
    ):
        assert shown in flat, shown
    assert "Tangelo" not in text, "a codenamed placeholder at 0 % with no end stays hidden"


def test_details_are_indented_under_their_limit_at_80_columns() -> None:
    lines = render(report_2026(five_hour=LOCKED_SESSION), 80).splitlines()

    five = next(i for i, line in enumerate(lines) if line.startswith("  5-hour"))
    assert lines[five + 1] == "    Locked: usage limit reached"
    assert lines[five + 2] == "    50.00 USD used of 50.00 USD, 0.00 USD left"
    week = next(i for i, line in enumerate(lines) if line.startswith("  Weekly (all models)"))
    assert lines[week + 1] == "    Used by Claude Code 30%, Chat 8.5%, Cowork 2%, Other 1.5%"
    assert lines[week + 2].startswith("  Weekly (Fable)")


def test_the_breakdown_follows_the_weekly_reset_at_40_columns() -> None:
    lines = render(report_2026(), 40).splitlines()

    week = next(i for i, line in enumerate(lines) if line.startswith("Weekly (all models)"))
    assert lines[week + 2].startswith("resets ")
    assert lines[week + 3] == "  Used by Claude Code 30%, Chat 8.5%,"
    assert lines[week + 4] == "    Cowork 2%, Other 1.5%"


@pytest.mark.parametrize("width", [80, 40])
def test_an_inactive_session_reads_not_started(width: int) -> None:
    text = render(report_2026(), width)

    five = text[text.index("5-hour") : text.index("Weekly (all models)")]
    assert "0%" in five
    assert "not started" in five
    assert "resets" not in five
    assert "no reset" not in five.lower()


def test_spend_in_a_currency_without_minor_units() -> None:
    spend = {"used": shapes.money(1200, "JPY", 0), "severity": "warning"}

    text = render(report_2026(spend=spend), 80)

    assert "Spend: 1,200 JPY used (warning)" in text


@pytest.mark.parametrize("width", [80, 40])
def test_an_expired_login_reads_as_a_state_of_rest(width: int) -> None:
    fetched_ago = timedelta(hours=8, minutes=3)
    report = report_of(error=CredentialsExpired(NOW - timedelta(hours=8)), fetched_ago=fetched_ago)

    text = " ".join(render(report, width).split())

    assert (
        "Last known values, from 8 h 3 min ago. The login expired then; Claude Code has not "
        "run on this machine since." in text
    )
    assert "run `claude`" not in text


def test_long_upstream_text_is_cut_and_stays_ascii() -> None:
    answer_rows = [(f"s{i}", "x" * 500, 1) for i in range(10)]
    report = report_2026(
        seven_day_breakdown=shapes.breakdown(*answer_rows),
        five_hour=shapes.window(1, shapes.SESSION_RESET, locked_reason="y" * 10_000),
    )

    for width in (80, 40):
        text = render(report, width, unicode=False)
        assert text.isascii()
        assert_fits(text, width)
        assert len(text) < 3000
        assert "4 more" in text
