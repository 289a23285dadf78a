"""Upstream answers in the shapes PRODUCT.md describes, to build tests from.

Written from PRODUCT.md's "The upstream", not copied from anyone's captures: the flat
windows, the ``limits`` list, ``extra_usage``, and the members seen since mid-2026
(``spend``, ``seven_day_breakdown``, dollars and ``locked_reason`` on windows, codenamed
placeholders, inactive windows). Each builder returns a fresh ``dict``; keyword
arguments replace or add members.
"""

from __future__ import annotations

from typing import Any

SESSION_RESET = "2026-07-19T03:39:59.570750+00:00"
WEEK_RESET = "2026-07-24T17:00:00Z"
WEEK_STARTED = "2026-07-17T17:00:00Z"


def window(utilization: float | None, resets_at: str | None, **more: Any) -> dict[str, Any]:
    """A flat window as a 2026 plan sends it: the dollars null, nothing locked."""
    return {
        "utilization": utilization,
        "resets_at": resets_at,
        "limit_dollars": None,
        "used_dollars": None,
        "remaining_dollars": None,
        "locked_reason": None,
    } | more


def listed(kind: str, percent: float, resets_at: str | None, **more: Any) -> dict[str, Any]:
    """One entry of the ``limits`` list."""
    return {
        "kind": kind,
        "group": "default",
        "percent": percent,
        "severity": "normal",
        "resets_at": resets_at,
        "scope": None,
        "is_active": True,
    } | more


def model_scope(model_id: str, display_name: str) -> dict[str, Any]:
    return {"model": {"id": model_id, "display_name": display_name}, "surface": None}


def money(amount_minor: float, currency: str = "USD", exponent: int = 2) -> dict[str, Any]:
    return {"amount_minor": amount_minor, "currency": currency, "exponent": exponent}


def spend(**more: Any) -> dict[str, Any]:
    """12.50 USD used of a 100.00 USD limit, capped at 150.00 USD."""
    return {
        "used": money(1250),
        "limit": money(10000),
        "cap": money(15000),
        "percent": 12.5,
        "severity": "normal",
        "period": "monthly",
    } | more


def breakdown(*rows: tuple[str, str, float], **more: Any) -> dict[str, Any]:
    """``seven_day_breakdown``; rows as ``(key, display_name, percent)``."""
    rows = rows or (
        ("claude_code", "Claude Code", 30.0),
        ("chat", "Chat", 8.5),
        ("cowork", "Cowork", 2),
        ("other", "Other", 1.5),
    )
    return {
        "as_of": "2026-07-19T00:55:00Z",
        "window_started_at": WEEK_STARTED,
        "rows": [{"key": key, "display_name": name, "percent": pct} for key, name, pct in rows],
    } | more


def extra_usage(**more: Any) -> dict[str, Any]:
    return {
        "is_enabled": True,
        "monthly_limit": 5000,
        "used_credits": 2050,
        "utilization": 41.0,
        "currency": "USD",
        "decimal_places": 2,
    } | more


def answer_2026(**more: Any) -> dict[str, Any]:
    """A whole answer of late 2026: no session running, the weekly limit with its
    breakdown, a model-scoped limit only in ``limits``, a codenamed placeholder, spend."""
    return {
        "five_hour": window(0.0, None),
        "seven_day": window(42.0, WEEK_RESET),
        "seven_day_opus": None,
        "seven_day_sonnet": window(12.0, WEEK_RESET),
        "tangelo_sprout": {"utilization": 0.0, "resets_at": None},
        "seven_day_breakdown": breakdown(),
        "limits": [
            listed("session", 0, None, is_active=False),
            listed("weekly_all", 42, WEEK_RESET),
            listed(
                "weekly_scoped",
                96,
                WEEK_RESET,
                severity="critical",
                scope=model_scope("claude-fable", "Fable"),
            ),
        ],
        "spend": spend(),
        "extra_usage": extra_usage(),
        "organization_uuid": "00000000-0000-0000-0000-000000000000",
    } | more
