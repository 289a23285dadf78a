"""The parser: every response shape of PRODUCT.md becomes one snapshot, each limit once."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from usage_bot._exceptions import UnexpectedResponse
from usage_bot._model import humanise, parse_usage

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
            "extra_usage": {
                "is_enabled": True,
                "monthly_limit": 5000,
                "used_credits": 2050,
                "utilization": 41.0,
                "currency": "usd",
                "future_key": 1,
            }
        }
    )
    extra = snapshot.extra_usage
    assert extra is not None
    assert (extra.enabled, extra.used, extra.limit, extra.currency) == (True, 20.5, 50.0, "USD")


def test_extra_usage_currency_falls_back_to_the_top_level_member() -> None:
    snapshot = parse({"currency": "EUR", "extra_usage": {"is_enabled": False}})
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
