"""The usage model: what the upstream said, as an immutable :class:`UsageSnapshot`.

:func:`parse_usage` is pure. It accepts every response shape seen in the wild (flat
windows such as ``five_hour``, the newer ``limits`` list, ``extra_usage``, and the 2026
members: ``spend``, ``seven_day_breakdown``, dollars and ``locked_reason`` on windows),
shows each limit once, and hides a codenamed limit until it has a percent or an end.

A reading is valid as a whole or not at all: every percent anywhere in it must be a
finite number from 0 to 100 (up to 0.5 over is rounding and reads as 100), every amount
of money a finite number, every known member of the type it has upstream, and the answer
must have at least one of the keys the bot knows. Otherwise :class:`UnexpectedResponse`
names the field, and nothing of that reading is used. Unknown keys are ignored.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from usage_bot._exceptions import UnexpectedResponse, UsageBotError

DEFAULT_THRESHOLDS = (80.0, 95.0)

# Flat window keys we know by name; any other "seven_day_<x>" is a per-model weekly
# window, and any other key whose value looks like a window is kept as it is.
_KNOWN_LABELS = {
    "five_hour": "5-hour",
    "seven_day": "Weekly (all models)",
    "seven_day_opus": "Weekly (Opus)",
    "seven_day_sonnet": "Weekly (Sonnet)",
    "seven_day_oauth_apps": "Weekly (OAuth apps)",
    "seven_day_cowork": "Weekly (Cowork)",
}
# Members that are not windows, whatever they hold.
_NOT_WINDOWS = frozenset({"limits", "extra_usage", "spend", "seven_day_breakdown"})
_KIND_IDS = {"session": "five_hour", "weekly_all": "seven_day"}
_SEVERITY_RANK = {"normal": 0, "warning": 1, "critical": 2}
_ACRONYMS = {"oauth": "OAuth", "api": "API", "ai": "AI"}
_SURFACE_LABELS = {"claude_code": "Claude Code", "chat": "Chat", "cowork": "Cowork"}
# The upstream rounds: 100.4 is a full window, 100.5 is a broken answer.
_PERCENT_ROUNDING = 0.5
# No currency has more minor units than this; a larger exponent is a broken answer.
_MAX_DECIMAL_PLACES = 6
# More than any team spends; past it an amount is a broken answer (1e308 "dollars").
_MAX_MAJOR_AMOUNT = 10.0**12


@dataclass(frozen=True, slots=True)
class Dollars:
    """What a window costs, in US dollars, on accounts billed by use (None on plans)."""

    limit: float | None
    used: float | None
    remaining: float | None


@dataclass(frozen=True, slots=True)
class BreakdownRow:
    """One surface's part of the weekly limit: ``key`` as the upstream names it."""

    key: str
    label: str
    percent: float


@dataclass(frozen=True, slots=True)
class Breakdown:
    """Who used the weekly quota (Claude Code, chat, Cowork, other), as of ``as_of``."""

    rows: tuple[BreakdownRow, ...]
    as_of: datetime | None = None
    window_started_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Limit:
    """One quota window: how much of it is used and when it starts afresh.

    A window with no end and nothing used has not started (:attr:`started`): no 5-hour
    session is running. ``breakdown`` is only ever on ``seven_day``.
    """

    id: str
    label: str
    percent: float
    resets_at: datetime | None
    severity: str
    locked_reason: str | None = None
    dollars: Dollars | None = None
    breakdown: Breakdown | None = None

    @property
    def severity_rank(self) -> int:
        """0 normal, 1 warning, 2 critical; an unknown upstream severity counts as warning."""
        return _SEVERITY_RANK.get(self.severity, 1)

    @property
    def started(self) -> bool:
        """False for an inactive window: ``resets_at`` null at 0 % is no window at all."""
        return self.resets_at is not None or self.percent > 0


@dataclass(frozen=True, slots=True)
class ExtraUsage:
    """Pay-as-you-go credits beyond the plan, in major units (20.50, not 2050)."""

    enabled: bool
    used: float | None
    limit: float | None
    currency: str
    decimal_places: int = 2
    percent: float | None = None


@dataclass(frozen=True, slots=True)
class Money:
    """An amount in major units (12.5), with the minor-unit places its currency has."""

    amount: float
    currency: str
    decimal_places: int = 2


@dataclass(frozen=True, slots=True)
class Spend:
    """The 2026 ``spend`` member: money used against a limit and a hard cap."""

    used: Money | None
    limit: Money | None
    cap: Money | None
    percent: float | None
    severity: str

    @property
    def severity_rank(self) -> int:
        return _SEVERITY_RANK.get(self.severity, 1)


@dataclass(frozen=True, slots=True)
class UsageSnapshot:
    """Everything one usage answer said, at the time it was fetched."""

    limits: tuple[Limit, ...]
    extra_usage: ExtraUsage | None
    fetched_at: datetime
    spend: Spend | None = None

    def limit(self, limit_id: str) -> Limit | None:
        return next((limit for limit in self.limits if limit.id == limit_id), None)

    @property
    def worst_severity_rank(self) -> int:
        return max((limit.severity_rank for limit in self.limits), default=0)


@dataclass(frozen=True, slots=True)
class AccountUsage:
    """What the bot knows of one account: the last good snapshot and the last error."""

    account: str
    snapshot: UsageSnapshot | None
    error: UsageBotError | None = None
    checked_at: datetime | None = None

    @property
    def stale(self) -> bool:
        """True when the values shown are not what the upstream would say now."""
        return self.snapshot is not None and self.error is not None

    def age(self, now: datetime) -> timedelta | None:
        if self.snapshot is None:
            return None
        return max(now - self.snapshot.fetched_at, timedelta(0))


def severity_for(percent: float, thresholds: Sequence[float] = DEFAULT_THRESHOLDS) -> str:
    """The severity the bot gives a percentage: critical at the top threshold and over."""
    if thresholds and percent >= max(thresholds):
        return "critical"
    if thresholds and percent >= min(thresholds):
        return "warning"
    return "normal"


def humanise(name: str) -> str:
    """``iguana_necktie`` -> ``Iguana necktie``; ``oauth_apps`` -> ``OAuth apps``."""
    words = [w for w in re.split(r"[_\-\s]+", name) if w]
    if not words:
        return name
    out = [_ACRONYMS.get(w.lower(), w) for w in words]
    first = out[0]
    out[0] = first if first in _ACRONYMS.values() else first[:1].upper() + first[1:]
    return " ".join(out)


def slug(text: str) -> str:
    """Lower case, every run of non-alphanumerics as one ``_``."""
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")


def label_for(limit_id: str) -> str:
    if limit_id in _KNOWN_LABELS:
        return _KNOWN_LABELS[limit_id]
    if limit_id.startswith("seven_day_"):
        return f"Weekly ({humanise(limit_id.removeprefix('seven_day_'))})"
    return humanise(limit_id)


def order_key(limit_id: str) -> tuple[int, str]:
    """5-hour, weekly all models, weekly per model, then the rest; by id within a group."""
    if limit_id == "five_hour":
        return (0, "")
    if limit_id == "seven_day":
        return (1, "")
    if limit_id.startswith("seven_day_"):
        return (2, limit_id)
    return (3, limit_id)


def parse_usage(
    payload: object,
    *,
    fetched_at: datetime,
    thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
) -> UsageSnapshot:
    """Turn the upstream's JSON into a snapshot, or raise :class:`UnexpectedResponse`."""
    if not isinstance(payload, Mapping):
        raise UnexpectedResponse(f"expected a JSON object, got {_type_name(payload)}")
    merged: dict[str, Limit] = {}
    named: set[str] = set()
    for key, value in payload.items():
        if key in _NOT_WINDOWS or not _is_window(value):
            continue
        limit = _flat_window(str(key), value, thresholds)
        merged[limit.id] = limit
        if limit.id in _KNOWN_LABELS:
            named.add(limit.id)
    raw_limits = payload.get("limits")
    for limit, is_named in _limits_list(raw_limits, thresholds):
        merged[limit.id] = _merge(merged.get(limit.id), limit)
        if is_named:
            named.add(limit.id)
    top_currency = payload.get("currency")
    extra = _extra_usage(payload.get("extra_usage"), top_currency)
    spend = _spend(payload.get("spend"), top_currency, thresholds)
    breakdown = _breakdown(payload.get("seven_day_breakdown"))
    if not merged and raw_limits is None and not any(key in _KNOWN_LABELS for key in payload):
        raise UnexpectedResponse(
            "it has none of the members the bot knows: no five_hour, seven_day or limits"
        )
    if breakdown is not None and "seven_day" in merged:
        merged["seven_day"] = replace(merged["seven_day"], breakdown=breakdown)
    # A codenamed limit at 0 % with no end is a placeholder, not something to show yet.
    shown = (limit for limit in merged.values() if limit.id in named or limit.started)
    limits = tuple(sorted(shown, key=lambda lim: order_key(lim.id)))
    return UsageSnapshot(limits=limits, extra_usage=extra, fetched_at=fetched_at, spend=spend)


def _is_window(value: object) -> bool:
    return isinstance(value, Mapping) and "utilization" in value


def _flat_window(key: str, window: Mapping[str, Any], thresholds: Sequence[float]) -> Limit:
    percent = _percent(window["utilization"], f"{key}.utilization")
    return Limit(
        id=key,
        label=label_for(key),
        percent=percent,
        resets_at=_timestamp(window.get("resets_at"), f"{key}.resets_at"),
        severity=severity_for(percent, thresholds),
        locked_reason=_text(window.get("locked_reason"), f"{key}.locked_reason"),
        dollars=_dollars(window, key),
    )


def _limits_list(raw: object, thresholds: Sequence[float]) -> Iterable[tuple[Limit, bool]]:
    """Each listed limit, and whether the bot knows it by name (not a codenamed kind)."""
    if raw is None:
        return
    if not isinstance(raw, list):
        raise UnexpectedResponse(f"limits is {_type_name(raw)}, not a list")
    for index, item in enumerate(raw):
        where = f"limits[{index}]"
        if not isinstance(item, Mapping):
            raise UnexpectedResponse(f"{where} is {_type_name(item)}, not an object")
        kind = item.get("kind")
        if not isinstance(kind, str) or not kind:
            raise UnexpectedResponse(f"{where}.kind is missing")
        percent = _percent(item.get("percent"), f"{where}.percent")
        severity = _text(item.get("severity"), f"{where}.severity")
        limit_id, label = _identify(kind, item.get("scope"), where)
        limit = Limit(
            id=limit_id,
            label=label,
            percent=percent,
            resets_at=_timestamp(item.get("resets_at"), f"{where}.resets_at"),
            severity=severity or severity_for(percent, thresholds),
            locked_reason=_text(item.get("locked_reason"), f"{where}.locked_reason"),
            dollars=_dollars(item, where),
        )
        yield limit, kind in _KIND_IDS or kind == "weekly_scoped"


def _identify(kind: str, scope: object, where: str) -> tuple[str, str]:
    if kind in _KIND_IDS:
        limit_id = _KIND_IDS[kind]
        return limit_id, label_for(limit_id)
    if kind == "weekly_scoped":
        model = scope.get("model") if isinstance(scope, Mapping) else None
        if not isinstance(model, Mapping):
            raise UnexpectedResponse(f"{where} is a weekly_scoped limit without a model")
        name = model.get("display_name") or model.get("id")
        if not isinstance(name, str) or not slug(name):
            raise UnexpectedResponse(f"{where}.scope.model has no name")
        limit_id = f"seven_day_{slug(name)}"
        known = _KNOWN_LABELS.get(limit_id)
        return limit_id, known or f"Weekly ({name})"
    return kind, humanise(kind)


def _merge(flat: Limit | None, listed: Limit) -> Limit:
    """The same limit given both ways: the flat window's finer percent, the list's severity."""
    if flat is None:
        return listed
    return replace(
        flat,
        resets_at=flat.resets_at or listed.resets_at,
        severity=listed.severity if listed.severity_rank >= flat.severity_rank else flat.severity,
        locked_reason=flat.locked_reason or listed.locked_reason,
        dollars=flat.dollars or listed.dollars,
    )


def _extra_usage(raw: object, top_currency: object) -> ExtraUsage | None:
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        raise UnexpectedResponse(f"extra_usage is {_type_name(raw)}, not an object")
    enabled = raw.get("is_enabled", False)
    if not isinstance(enabled, bool):
        raise UnexpectedResponse("extra_usage.is_enabled is not true or false")
    currency = raw.get("currency") or top_currency or "USD"
    if not isinstance(currency, str):
        raise UnexpectedResponse("extra_usage.currency is not a string")
    places = _decimal_places(raw.get("decimal_places"), "extra_usage.decimal_places")
    utilization = raw.get("utilization")
    return ExtraUsage(
        enabled=enabled,
        used=_money(raw.get("used_credits"), "extra_usage.used_credits", places),
        limit=_money(raw.get("monthly_limit"), "extra_usage.monthly_limit", places),
        currency=currency.upper(),
        decimal_places=places,
        percent=None if utilization is None else _percent(utilization, "extra_usage.utilization"),
    )


def _spend(raw: object, top_currency: object, thresholds: Sequence[float]) -> Spend | None:
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        raise UnexpectedResponse(f"spend is {_type_name(raw)}, not an object")
    used, limit, cap = (
        _amount(raw.get(name), f"spend.{name}", top_currency) for name in ("used", "limit", "cap")
    )
    percent = None if raw.get("percent") is None else _percent(raw["percent"], "spend.percent")
    severity = _text(raw.get("severity"), "spend.severity")
    if used is None and limit is None and cap is None and percent is None:
        return None
    if severity is None:
        severity = "normal" if percent is None else severity_for(percent, thresholds)
    return Spend(used=used, limit=limit, cap=cap, percent=percent, severity=severity)


def _amount(raw: object, where: str, top_currency: object) -> Money | None:
    """``{"amount_minor": 1250, "currency": "USD", "exponent": 2}`` is 12.50 USD."""
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        raise UnexpectedResponse(f"{where} is {_type_name(raw)}, not an amount of money")
    places = _decimal_places(raw.get("exponent"), f"{where}.exponent")
    minor = raw.get("amount_minor")
    if minor is None:
        raise UnexpectedResponse(f"{where}.amount_minor is missing")
    amount = _money(minor, f"{where}.amount_minor", places) or 0.0
    currency = raw.get("currency") or top_currency or "USD"
    if not isinstance(currency, str):
        raise UnexpectedResponse(f"{where}.currency is not a string")
    return Money(amount=amount, currency=currency.upper(), decimal_places=places)


def _breakdown(raw: object) -> Breakdown | None:
    where = "seven_day_breakdown"
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        raise UnexpectedResponse(f"{where} is {_type_name(raw)}, not an object")
    rows = raw.get("rows")
    if rows is None:
        rows = []
    if not isinstance(rows, list):
        raise UnexpectedResponse(f"{where}.rows is {_type_name(rows)}, not a list")
    parsed = []
    for index, row in enumerate(rows):
        at = f"{where}.rows[{index}]"
        if not isinstance(row, Mapping):
            raise UnexpectedResponse(f"{at} is {_type_name(row)}, not an object")
        key = row.get("key")
        if not isinstance(key, str) or not key:
            raise UnexpectedResponse(f"{at}.key is missing")
        shown = _text(row.get("display_name"), f"{at}.display_name")
        label = shown or _SURFACE_LABELS.get(key) or humanise(key)
        parsed.append(BreakdownRow(key, label, _percent(row.get("percent"), f"{at}.percent")))
    return Breakdown(
        rows=tuple(parsed),
        as_of=_timestamp(raw.get("as_of"), f"{where}.as_of"),
        window_started_at=_timestamp(raw.get("window_started_at"), f"{where}.window_started_at"),
    )


def _dollars(window: Mapping[str, Any], where: str) -> Dollars | None:
    limit, used, remaining = (
        _money(window.get(f"{name}_dollars"), f"{where}.{name}_dollars")
        for name in ("limit", "used", "remaining")
    )
    if limit is None and used is None and remaining is None:
        return None
    return Dollars(limit=limit, used=used, remaining=remaining)


def _money(raw: object, where: str, minor_units: int | None = None) -> float | None:
    """An amount in major units, rounded to the cent (or to its currency's minor unit);
    ``minor_units``: ``raw`` counts minor units, that many places to one major unit."""
    if raw is None:
        return None
    if isinstance(raw, bool) or not isinstance(raw, int | float):
        raise UnexpectedResponse(f"{where} is {_type_name(raw)}, not a number")
    if isinstance(raw, int) and raw.bit_length() > 64:
        raise UnexpectedResponse(f"{where} is not a plausible amount of money")
    major = float(raw) / math.pow(10, minor_units or 0)
    if not math.isfinite(major) or abs(major) > _MAX_MAJOR_AMOUNT:
        raise UnexpectedResponse(f"{where} is not a plausible amount of money")
    return round(major, 2 if minor_units is None else minor_units)


def _decimal_places(raw: object, where: str) -> int:
    if raw is None:
        return 2
    if isinstance(raw, bool) or not isinstance(raw, int) or not 0 <= raw <= _MAX_DECIMAL_PLACES:
        raise UnexpectedResponse(f"{where} is not a whole number from 0 to {_MAX_DECIMAL_PLACES}")
    return raw


def _percent(raw: object, where: str) -> float:
    """A finite number from 0 to 100 (up to 0.5 over reads as 100), or the whole reading
    is refused."""
    if isinstance(raw, bool) or not isinstance(raw, int | float):
        raise UnexpectedResponse(f"{where} is {_type_name(raw)}, not a number")
    if isinstance(raw, float) and not math.isfinite(raw):
        name = "NaN" if math.isnan(raw) else "Infinity" if raw > 0 else "-Infinity"
        raise UnexpectedResponse(f"{where} is {name}, not a finite number")
    if not 0 <= raw < 100 + _PERCENT_ROUNDING:
        raise UnexpectedResponse(f"{where} is {_shown(raw)}, not a percent from 0 to 100")
    return min(float(raw), 100.0) + 0.0  # + 0.0: -0.0 reads as 0


def _text(raw: object, where: str) -> str | None:
    """An optional string member; empty reads as absent."""
    if raw is None:
        return None
    if not isinstance(raw, str):
        raise UnexpectedResponse(f"{where} is {_type_name(raw)}, not a string")
    return raw or None


def _timestamp(raw: object, where: str) -> datetime | None:
    if raw is None:
        return None
    if not isinstance(raw, str):
        raise UnexpectedResponse(f"{where} is {_type_name(raw)}, not a timestamp")
    try:
        parsed = datetime.fromisoformat(raw)
        # In UTC from here on; a time at the edge of the calendar may not fit in UTC.
        return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    except (ValueError, OverflowError):
        raise UnexpectedResponse(f"{where} is not an ISO 8601 timestamp") from None


def _shown(number: float) -> str:
    """A number short enough to quote in a sentence, however long the upstream made it."""
    if isinstance(number, int) and number.bit_length() > 64:
        return "a number far over 100" if number > 0 else "a number far under 0"
    return f"{number:.6g}"


def _type_name(value: object) -> str:
    if value is None:
        return "null"
    names = {bool: "a boolean", str: "a string", list: "a list", dict: "an object"}
    return names.get(type(value), "a number" if isinstance(value, int | float) else "unknown")
