"""The parser: every response shape of PRODUCT.md becomes one snapshot, each limit once."""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests import shapes
from usage_bot._exceptions import UnexpectedResponse
from usage_bot._model import Dollars, Money, UsageSnapshot, humanise, parse_usage
from usage_bot._simulator import FIVE_HOURS, simulated_usage

NOW = datetime(2026, 7, 19, 1, 2, 3, tzinfo=UTC)


def parse(payload: Any) -> Any:
    return parse_usage(payload, fetched_at=NOW)


def test_flat_windows_with_every_number_and_timestamp_form() -> None:
    snapshot = parse(
        {
            "five_hour": {"utilization": 15, "resets_at": "2026-07-19T03:39:59.570750+00:00"},
            "seven_day": {"utilization": 40.5, "resets_at": "2026-07-22T00:00:00Z", "x": 1},
            "seven_day_opus": None,
            "seven_day_sonnet": {"utilization": 2.0, "resets_at": "2026-07-22T00:00:00.5Z"},
            "seven_day_oauth_apps": {"utilization": 0, "resets_at": None},
            "currency": "EUR",
        }
    )
    assert [(lim.id, lim.label, lim.percent) for lim in snapshot.limits] == [
        ("five_hour", "5-hour", 15.0),
        ("seven_day", "Weekly (all models)", 40.5),
        ("seven_day_oauth_apps", "Weekly (OAuth apps)", 0.0),
        ("seven_day_sonnet", "Weekly (Sonnet)", 2.0),
    ]
    five = snapshot.limit("five_hour")
    assert five is not None
    assert five.resets_at == datetime(2026, 7, 19, 3, 39, 59, 570750, tzinfo=UTC)
    oauth = snapshot.limit("seven_day_oauth_apps")
    assert oauth is not None
    assert oauth.resets_at is None
    assert snapshot.fetched_at == NOW


def test_null_windows_are_dropped_and_unknown_codenames_kept() -> None:
    snapshot = parse(
        {
            "five_hour": None,
            "seven_day_iguana_necktie": {"utilization": 7, "resets_at": None},
            "tangelo_sprout": {"utilization": 3, "resets_at": None, "new": [1]},
            "some_flag": True,
            "nested": {"no": "utilization here"},
        }
    )
    assert [(lim.id, lim.label) for lim in snapshot.limits] == [
        ("seven_day_iguana_necktie", "Weekly (Iguana necktie)"),
        ("tangelo_sprout", "Tangelo sprout"),
    ]


def test_limits_list_merges_with_flat_windows_and_keeps_model_only_limits() -> None:
    snapshot = parse(
        {
            "five_hour": {"utilization": 15.4, "resets_at": "2026-07-19T03:39:59Z"},
            "limits": [
                {
                    "kind": "session",
                    "group": "g",
                    "percent": 15,
                    "severity": "normal",
                    "resets_at": "2026-07-19T03:39:59Z",
                    "scope": None,
                    "is_active": True,
                },
                {
                    "kind": "weekly_all",
                    "percent": 55,
                    "severity": "normal",
                    "resets_at": "2026-07-22T00:00:00Z",
                },
                {
                    "kind": "weekly_scoped",
                    "percent": 81,
                    "severity": "warning",
                    "resets_at": "2026-07-22T00:00:00Z",
                    "scope": {
                        "model": {"id": "claude-fable-5", "display_name": "Fable"},
                        "surface": None,
                    },
                },
                {"kind": "monthly_team_pool", "percent": 5, "severity": "normal"},
            ],
        }
    )
    assert [(lim.id, lim.label) for lim in snapshot.limits] == [
        ("five_hour", "5-hour"),
        ("seven_day", "Weekly (all models)"),
        ("seven_day_fable", "Weekly (Fable)"),
        ("monthly_team_pool", "Monthly team pool"),
    ]
    five = snapshot.limit("five_hour")
    assert five is not None
    assert five.percent == 15.4  # the flat window's finer figure wins
    fable = snapshot.limit("seven_day_fable")
    assert fable is not None
    assert (fable.percent, fable.severity) == (81.0, "warning")


def test_model_without_display_name_uses_its_id() -> None:
    snapshot = parse(
        {
            "limits": [
                {
                    "kind": "weekly_scoped",
                    "percent": 3,
                    "scope": {"model": {"id": "Opus 5.1!"}},
                }
            ]
        }
    )
    assert snapshot.limits[0].id == "seven_day_opus_5_1"


def test_extra_usage_is_in_major_units() -> None:
    snapshot = parse(
        {
            "five_hour": None,
            "extra_usage": {
                "is_enabled": True,
                "monthly_limit": 5000,
                "used_credits": 2050,
                "utilization": 41.0,
                "currency": "usd",
                "future_key": 1,
            },
        }
    )
    extra = snapshot.extra_usage
    assert extra is not None
    assert (extra.enabled, extra.used, extra.limit, extra.currency) == (True, 20.5, 50.0, "USD")


def test_extra_usage_currency_falls_back_to_the_top_level_member() -> None:
    snapshot = parse({"five_hour": None, "currency": "EUR", "extra_usage": {"is_enabled": False}})
    assert snapshot.extra_usage is not None
    assert snapshot.extra_usage.currency == "EUR"
    assert snapshot.extra_usage.used is None


def test_severity_follows_thresholds_when_upstream_gives_none() -> None:
    snapshot = parse_usage(
        {
            "five_hour": {"utilization": 79.9, "resets_at": None},
            "seven_day": {"utilization": 80, "resets_at": None},
            "seven_day_opus": {"utilization": 95, "resets_at": None},
        },
        fetched_at=NOW,
        thresholds=(80, 95),
    )
    assert [lim.severity for lim in snapshot.limits] == ["normal", "warning", "critical"]


@pytest.mark.parametrize(
    ("payload", "fragment"),
    [
        ([], "expected a JSON object"),
        ({"five_hour": {"utilization": "15"}}, "five_hour.utilization"),
        ({"five_hour": {"utilization": True}}, "five_hour.utilization"),
        ({"five_hour": {"utilization": 1, "resets_at": 5}}, "five_hour.resets_at"),
        ({"five_hour": {"utilization": 1, "resets_at": "tomorrow"}}, "five_hour.resets_at"),
        ({"limits": {"kind": "session"}}, "limits"),
        ({"limits": ["session"]}, "limits[0]"),
        ({"limits": [{"percent": 1}]}, "limits[0].kind"),
        ({"limits": [{"kind": "session", "percent": None}]}, "limits[0].percent"),
        ({"limits": [{"kind": "weekly_scoped", "percent": 1, "scope": None}]}, "limits[0]"),
        ({"extra_usage": [1]}, "extra_usage"),
        ({"extra_usage": {"is_enabled": "yes"}}, "is_enabled"),
        ({"extra_usage": {"is_enabled": True, "used_credits": "2050"}}, "used_credits"),
        ({"extra_usage": {"is_enabled": True, "decimal_places": 2.0}}, "decimal_places"),
        ({"extra_usage": {"is_enabled": True, "decimal_places": 400}}, "decimal_places"),
        ({"extra_usage": {"is_enabled": True, "used_credits": 1e308}}, "used_credits"),
        ({"spend": [1]}, "spend"),
        ({"spend": {"used": 1250}}, "spend.used"),
        ({"spend": {"used": {"currency": "USD"}}}, "spend.used.amount_minor"),
        ({"spend": {"cap": shapes.money(10**400)}}, "spend.cap.amount_minor"),
        ({"spend": {"limit": shapes.money(5, exponent=-2)}}, "spend.limit.exponent"),
        ({"spend": {"limit": shapes.money(5, currency=7)}}, "spend.limit.currency"),
        ({"spend": {"percent": 5, "severity": 2}}, "spend.severity"),
        ({"seven_day_breakdown": "all"}, "seven_day_breakdown"),
        ({"seven_day_breakdown": {"rows": {}}}, "seven_day_breakdown.rows"),
        ({"seven_day_breakdown": {"rows": [{"percent": 1}]}}, "rows[0].key"),
        ({"seven_day_breakdown": {"as_of": 5, "rows": []}}, "seven_day_breakdown.as_of"),
        ({"five_hour": shapes.window(1, None, locked_reason=True)}, "five_hour.locked_reason"),
        ({"five_hour": shapes.window(1, None, used_dollars="3")}, "five_hour.used_dollars"),
        ({"five_hour": shapes.window(1, None, limit_dollars=math.inf)}, "limit_dollars"),
        ({"limits": [shapes.listed("session", 1, None, severity=["x"])]}, "limits[0].severity"),
    ],
)
def test_a_field_of_the_wrong_type_is_an_unexpected_response(payload: Any, fragment: str) -> None:
    with pytest.raises(UnexpectedResponse) as caught:
        parse(payload)
    assert fragment in caught.value.message
    assert "update usage-bot" in caught.value.message


def test_humanise() -> None:
    assert humanise("oauth_apps") == "OAuth apps"
    assert humanise("weekly-scoped thing") == "Weekly scoped thing"


# -- a reading is valid as a whole or not at all -------------------------------------------


INVALID_PERCENTS = [-5, -0.001, 100.5, 150, 1e308, math.nan, math.inf, -math.inf, "15", True]


@pytest.mark.parametrize("bad", INVALID_PERCENTS, ids=repr)
@pytest.mark.parametrize(
    ("where", "answer"),
    [
        ("five_hour.utilization", lambda bad: {"five_hour": shapes.window(bad, None)}),
        ("tangelo_sprout.utilization", lambda bad: {"tangelo_sprout": {"utilization": bad}}),
        ("limits[0].percent", lambda bad: {"limits": [shapes.listed("session", bad, None)]}),
        (
            "extra_usage.utilization",
            lambda bad: {"five_hour": None, "extra_usage": shapes.extra_usage(utilization=bad)},
        ),
        ("spend.percent", lambda bad: {"five_hour": None, "spend": shapes.spend(percent=bad)}),
        (
            "seven_day_breakdown.rows[1].percent",
            lambda bad: {
                "seven_day": shapes.window(40, shapes.WEEK_RESET),
                "seven_day_breakdown": shapes.breakdown(("chat", "Chat", 3), ("other", "", bad)),
            },
        ),
    ],
)
def test_a_percent_out_of_range_refuses_the_whole_reading(
    where: str, answer: Any, bad: Any
) -> None:
    with pytest.raises(UnexpectedResponse) as caught:
        parse(answer(bad))
    assert where in caught.value.message


def test_a_huge_percent_is_not_quoted_whole() -> None:
    with pytest.raises(UnexpectedResponse) as caught:
        parse({"five_hour": {"utilization": 10**400, "resets_at": None}})
    assert "five_hour.utilization is a number far over 100" in caught.value.message
    assert len(caught.value.message) < 300


@pytest.mark.parametrize(("sent", "read"), [(100, 100.0), (100.49, 100.0), (99.5, 99.5), (0, 0.0)])
def test_just_over_100_is_rounding_and_reads_as_100(sent: float, read: float) -> None:
    snapshot = parse(
        {
            "five_hour": shapes.window(sent, shapes.SESSION_RESET),
            "limits": [shapes.listed("weekly_all", sent, shapes.WEEK_RESET)],
            "spend": shapes.spend(percent=sent),
        }
    )
    assert [limit.percent for limit in snapshot.limits] == [read, read]
    assert snapshot.spend is not None
    assert snapshot.spend.percent == read


def test_negative_zero_reads_as_zero() -> None:
    snapshot = parse({"five_hour": shapes.window(-0.0, shapes.SESSION_RESET)})
    assert math.copysign(1, snapshot.limits[0].percent) == 1


@pytest.mark.parametrize(
    "answer",
    [
        {},
        {"organization_uuid": "f00", "currency": "EUR"},
        {"extra_usage": shapes.extra_usage()},
        {"spend": shapes.spend(), "seven_day_breakdown": shapes.breakdown()},
        {"usage": {"five_hour": shapes.window(10, None)}},
        {"limits": None},
    ],
)
def test_an_answer_with_none_of_the_known_members_is_unexpected(answer: dict[str, Any]) -> None:
    with pytest.raises(UnexpectedResponse) as caught:
        parse(answer)
    assert "none of the members the bot knows" in caught.value.message


@pytest.mark.parametrize(
    "answer",
    [
        {"five_hour": None, "seven_day": None},
        {"limits": []},
        {"tangelo_sprout": {"utilization": 0.0, "resets_at": None}},
    ],
)
def test_known_members_with_nothing_in_them_are_no_limits(answer: dict[str, Any]) -> None:
    assert parse(answer).limits == ()


# -- the 2026 shapes --------------------------------------------------------------------------


def test_a_whole_2026_answer() -> None:
    snapshot = parse(shapes.answer_2026())

    assert [(lim.id, lim.label, lim.percent) for lim in snapshot.limits] == [
        ("five_hour", "5-hour", 0.0),
        ("seven_day", "Weekly (all models)", 42.0),
        ("seven_day_fable", "Weekly (Fable)", 96.0),
        ("seven_day_sonnet", "Weekly (Sonnet)", 12.0),
    ]
    five, week, fable, sonnet = snapshot.limits
    assert not five.started
    assert five.resets_at is None
    assert week.started
    assert fable.severity == "critical"
    assert fable.severity_rank == 2
    assert week.breakdown is not None
    assert [(row.key, row.label, row.percent) for row in week.breakdown.rows] == [
        ("claude_code", "Claude Code", 30.0),
        ("chat", "Chat", 8.5),
        ("cowork", "Cowork", 2.0),
        ("other", "Other", 1.5),
    ]
    assert week.breakdown.as_of == datetime(2026, 7, 19, 0, 55, tzinfo=UTC)
    assert week.breakdown.window_started_at == datetime(2026, 7, 17, 17, tzinfo=UTC)
    assert all(limit.breakdown is None for limit in (five, fable, sonnet))
    assert all(limit.dollars is None and limit.locked_reason is None for limit in snapshot.limits)
    assert snapshot.spend is not None
    assert snapshot.spend.used == Money(12.5, "USD", 2)
    assert snapshot.spend.limit == Money(100.0, "USD", 2)
    assert snapshot.spend.cap == Money(150.0, "USD", 2)
    assert (snapshot.spend.percent, snapshot.spend.severity) == (12.5, "normal")
    assert snapshot.extra_usage is not None
    assert snapshot.extra_usage.percent == 41.0


def test_an_inactive_session_from_the_limits_list_alone_has_not_started() -> None:
    snapshot = parse({"limits": [shapes.listed("session", 0, None, is_active=False)]})

    (five,) = snapshot.limits
    assert (five.id, five.started) == ("five_hour", False)


def test_a_known_window_with_use_but_no_end_has_started() -> None:
    snapshot = parse({"five_hour": shapes.window(3.0, None)})

    assert snapshot.limits[0].started


@pytest.mark.parametrize(
    ("placeholder", "shown"),
    [
        ({"utilization": 0.0, "resets_at": None}, False),
        ({"utilization": 0, "resets_at": None, "more": 1}, False),
        ({"utilization": 0.0, "resets_at": shapes.WEEK_RESET}, True),
        ({"utilization": 0.5, "resets_at": None}, True),
    ],
)
def test_a_codenamed_limit_appears_once_it_has_a_percent_or_an_end(
    placeholder: dict[str, Any], shown: bool
) -> None:
    for key in ("tangelo_sprout", "seven_day_iguana_necktie"):
        snapshot = parse({"five_hour": shapes.window(5, shapes.SESSION_RESET), key: placeholder})
        assert (snapshot.limit(key) is not None) is shown, key
    listed = {"limits": [shapes.listed("monthly_burst", placeholder["utilization"], None)]}
    if placeholder["resets_at"] is None:
        assert (parse(listed).limit("monthly_burst") is not None) is shown


def test_a_model_scoped_limit_at_zero_without_an_end_is_named_and_shown() -> None:
    snapshot = parse(
        {
            "limits": [
                shapes.listed("weekly_scoped", 0, None, scope=shapes.model_scope("x", "Fable"))
            ]
        }
    )
    (fable,) = snapshot.limits
    assert (fable.id, fable.started) == ("seven_day_fable", False)


def test_windows_carry_dollars_and_a_locked_reason() -> None:
    snapshot = parse(
        {
            "five_hour": shapes.window(
                100,
                shapes.SESSION_RESET,
                limit_dollars=50,
                used_dollars=50.004,
                remaining_dollars=0,
                locked_reason="usage_limit_reached",
            ),
            "seven_day": shapes.window(20, shapes.WEEK_RESET, used_dollars=10.5),
            "seven_day_sonnet": shapes.window(1, shapes.WEEK_RESET, locked_reason=""),
        }
    )
    five, week, sonnet = snapshot.limits
    assert five.dollars == Dollars(limit=50.0, used=50.0, remaining=0.0)
    assert five.locked_reason == "usage_limit_reached"
    assert week.dollars == Dollars(limit=None, used=10.5, remaining=None)
    assert week.locked_reason is None
    assert (sonnet.dollars, sonnet.locked_reason) == (None, None)


def test_the_same_limit_given_both_ways_keeps_the_locked_reason_of_either() -> None:
    snapshot = parse(
        {
            "five_hour": shapes.window(100, shapes.SESSION_RESET),
            "limits": [
                shapes.listed("session", 100, shapes.SESSION_RESET, locked_reason="rate_limited")
            ],
        }
    )
    assert snapshot.limits[0].locked_reason == "rate_limited"


@pytest.mark.parametrize(
    ("places", "used", "limit"), [(None, 20.5, 50.0), (2, 20.5, 50.0), (0, 2050.0, 5000.0)]
)
def test_extra_usage_decimal_places_say_what_a_minor_unit_is(
    places: int | None, used: float, limit: float
) -> None:
    extra = shapes.extra_usage()
    del extra["decimal_places"]
    if places is not None:
        extra["decimal_places"] = places
    snapshot = parse({"five_hour": None, "extra_usage": extra})
    assert snapshot.extra_usage is not None
    assert (snapshot.extra_usage.used, snapshot.extra_usage.limit) == (used, limit)
    assert snapshot.extra_usage.decimal_places == (2 if places is None else places)


def test_extra_usage_with_three_decimal_places() -> None:
    extra = shapes.extra_usage(used_credits=12345, monthly_limit=None, decimal_places=3)
    snapshot = parse({"five_hour": None, "extra_usage": extra, "currency": "KWD"})
    assert snapshot.extra_usage is not None
    assert snapshot.extra_usage.used == 12.345


def test_spend_amounts_use_their_own_exponent_and_currency() -> None:
    snapshot = parse(
        {
            "five_hour": None,
            "currency": "EUR",
            "spend": {
                "used": shapes.money(1200, "JPY", 0),
                "limit": {"amount_minor": 990},
                "severity": "critical",
                "future": {"x": 1},
            },
        }
    )
    assert snapshot.spend is not None
    assert snapshot.spend.used == Money(1200.0, "JPY", 0)
    assert snapshot.spend.limit == Money(9.9, "EUR", 2)
    assert snapshot.spend.cap is None
    assert snapshot.spend.percent is None
    assert snapshot.spend.severity == "critical"


def test_spend_without_a_severity_follows_the_thresholds() -> None:
    snapshot = parse({"five_hour": None, "spend": shapes.spend(percent=96, severity=None)})
    assert snapshot.spend is not None
    assert snapshot.spend.severity == "critical"


def test_spend_with_nothing_in_it_is_no_spend() -> None:
    assert parse({"five_hour": None, "spend": {"period": "monthly"}}).spend is None


def test_a_breakdown_without_a_weekly_limit_is_checked_but_not_shown() -> None:
    snapshot = parse(
        {"five_hour": shapes.window(1, None), "seven_day_breakdown": shapes.breakdown()}
    )
    assert all(limit.breakdown is None for limit in snapshot.limits)


def test_breakdown_rows_without_a_display_name_are_named_from_their_key() -> None:
    rows = [{"key": "claude_code", "percent": 4}, {"key": "mobile_app", "percent": 1}]
    snapshot = parse(
        {
            "seven_day": shapes.window(5, shapes.WEEK_RESET),
            "seven_day_breakdown": {"rows": rows, "new": True},
        }
    )
    week = snapshot.limit("seven_day")
    assert week is not None
    assert week.breakdown is not None
    assert [row.label for row in week.breakdown.rows] == ["Claude Code", "Mobile app"]
    assert week.breakdown.as_of is None


@pytest.mark.parametrize(
    ("hours", "session", "weekly", "fable"),
    [(0, 10.0, 35.0, 72.0), (4, 86.0, 36.4, 80.0), (4.5, 95.5, 36.6, 81.0), (5, 10.0, 36.8, 82.0)],
)
def test_the_simulated_account_shows_the_2026_shapes_and_keeps_its_crossings(
    hours: float, session: float, weekly: float, fable: float
) -> None:
    origin = datetime(2026, 7, 19, tzinfo=UTC)
    now = origin + FIVE_HOURS * (hours / 5)

    snapshot = parse_usage(simulated_usage(now, origin), fetched_at=now)

    assert [(lim.id, lim.percent) for lim in snapshot.limits] == [
        ("five_hour", session),
        ("seven_day", weekly),
        ("seven_day_fable", fable),
    ]
    week = snapshot.limits[1]
    assert week.breakdown is not None
    assert [row.label for row in week.breakdown.rows] == ["Claude Code", "Chat", "Cowork", "Other"]
    assert sum(row.percent for row in week.breakdown.rows) == pytest.approx(weekly, abs=0.2)
    assert week.breakdown.window_started_at == origin


# -- properties ---------------------------------------------------------------------------------

PROPERTIES = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

valid_percents = (
    st.integers(0, 100)
    | st.floats(0, 100, allow_nan=False)
    | st.floats(100, 100.49, allow_nan=False)
)
ends = st.none() | st.sampled_from(
    [shapes.SESSION_RESET, shapes.WEEK_RESET, "2026-07-20T00:00:00Z"]
)
dollars = st.none() | st.integers(0, 10**6) | st.floats(0, 10**6, allow_nan=False)


@st.composite
def flat_windows(draw: st.DrawFn) -> Any:
    if draw(st.integers(0, 5)) == 0:
        return None
    more = draw(
        st.fixed_dictionaries(
            {},
            optional={
                "limit_dollars": dollars,
                "used_dollars": dollars,
                "remaining_dollars": dollars,
                "locked_reason": st.none() | st.text(max_size=20),
                "surface": st.text(max_size=5),
            },
        )
    )
    return {"utilization": draw(valid_percents), "resets_at": draw(ends)} | more


@st.composite
def listed_limits(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(st.sampled_from(["session", "weekly_all", "weekly_scoped", "monthly_burst"]))
    scope = None
    if kind == "weekly_scoped":
        scope = shapes.model_scope("m", draw(st.sampled_from(["Fable", "Opus", "Claude 9"])))
    severity = draw(st.sampled_from(["normal", "warning", "critical", "unheard_of"]))
    return shapes.listed(kind, draw(valid_percents), draw(ends), severity=severity, scope=scope)


@st.composite
def valid_answers(draw: st.DrawFn) -> dict[str, Any]:
    """Any answer of the shapes of PRODUCT.md, every percent valid."""
    keys = ["five_hour", "seven_day", "seven_day_opus", "seven_day_sonnet", "tangelo_sprout"]
    answer: dict[str, Any] = {"five_hour": draw(flat_windows())}
    for key in draw(st.lists(st.sampled_from(keys[1:]), unique=True)):
        answer[key] = draw(flat_windows())
    if draw(st.booleans()):
        answer["limits"] = draw(st.lists(listed_limits(), max_size=4))
    if draw(st.booleans()):
        rows = draw(
            st.lists(
                st.tuples(
                    st.sampled_from(["claude_code", "chat", "cowork", "other"]),
                    st.sampled_from(["", "Claude Code", "Chat"]),
                    valid_percents,
                ),
                max_size=4,
            )
        )
        answer["seven_day_breakdown"] = shapes.breakdown(*rows) if rows else {"rows": []}
    if draw(st.booleans()):
        answer["spend"] = shapes.spend(percent=draw(st.none() | valid_percents))
    if draw(st.booleans()):
        answer["extra_usage"] = shapes.extra_usage(
            utilization=draw(st.none() | valid_percents),
            decimal_places=draw(st.integers(0, 4)),
        )
    return answer


def percent_places(answer: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any], str]]:
    """Where each percent of ``answer`` is: the field's name, its container and key."""
    for key, value in answer.items():
        if isinstance(value, dict) and "utilization" in value and key != "extra_usage":
            yield f"{key}.utilization", value, "utilization"
    for index, item in enumerate(answer.get("limits", [])):
        yield f"limits[{index}].percent", item, "percent"
    if "extra_usage" in answer:
        yield "extra_usage.utilization", answer["extra_usage"], "utilization"
    if "spend" in answer:
        yield "spend.percent", answer["spend"], "percent"
    for index, row in enumerate(answer.get("seven_day_breakdown", {}).get("rows", [])):
        yield f"seven_day_breakdown.rows[{index}].percent", row, "percent"


def every_percent(snapshot: UsageSnapshot) -> Iterator[float]:
    for limit in snapshot.limits:
        yield limit.percent
        if limit.breakdown is not None:
            yield from (row.percent for row in limit.breakdown.rows)
    if snapshot.spend is not None and snapshot.spend.percent is not None:
        yield snapshot.spend.percent
    if snapshot.extra_usage is not None and snapshot.extra_usage.percent is not None:
        yield snapshot.extra_usage.percent


invalid_percents = (
    st.floats(max_value=0, exclude_max=True, allow_nan=False)
    | st.floats(min_value=100.5, allow_nan=False)
    | st.integers(max_value=-1)
    | st.integers(min_value=101)
    | st.sampled_from([math.nan, 1e308, "42", "", True, False, [50], {"value": 50}])
)


@PROPERTIES
@given(valid_answers())
def test_every_valid_answer_parses_with_every_percent_from_0_to_100(answer: Any) -> None:
    snapshot = parse(answer)

    percents = list(every_percent(snapshot))
    assert all(0 <= percent <= 100 for percent in percents), percents
    assert len({limit.id for limit in snapshot.limits}) == len(snapshot.limits)
    placeholder = snapshot.limit("tangelo_sprout")
    assert placeholder is None or placeholder.started


@PROPERTIES
@given(valid_answers(), st.data())
def test_an_invalid_percent_anywhere_refuses_the_whole_reading(answer: Any, data: Any) -> None:
    places = list(percent_places(answer))
    if not places:
        return
    where, container, key = data.draw(st.sampled_from(places))
    container[key] = data.draw(invalid_percents)

    with pytest.raises(UnexpectedResponse) as caught:
        parse(answer)
    assert where in caught.value.message
