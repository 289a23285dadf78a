"""The usage model: what the upstream said, as an immutable :class:`UsageSnapshot`.

:func:`parse_usage` is pure. It accepts every response shape seen in the wild (flat
windows such as ``five_hour``, the newer ``limits`` list, ``extra_usage``), shows each
limit once, and raises :class:`UnexpectedResponse` for a field of the wrong type.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from usage_bot._exceptions import UnexpectedResponse

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
_KIND_IDS = {"session": "five_hour", "weekly_all": "seven_day"}
_SEVERITY_RANK = {"normal": 0, "warning": 1, "critical": 2}
_ACRONYMS = {"oauth": "OAuth", "api": "API", "ai": "AI"}


@dataclass(frozen=True, slots=True)
class Limit:
    """One quota window: how much of it is used and when it starts afresh."""

    id: str
    label: str
    percent: float
    resets_at: datetime | None
    severity: str

    @property
    def severity_rank(self) -> int:
        """0 normal, 1 warning, 2 critical; an unknown upstream severity counts as warning."""
        return _SEVERITY_RANK.get(self.severity, 1)


@dataclass(frozen=True, slots=True)
class ExtraUsage:
    """Pay-as-you-go credits beyond the plan, in major units (20.50, not 2050)."""

    enabled: bool
    used: float | None
    limit: float | None
    currency: str


@dataclass(frozen=True, slots=True)
class UsageSnapshot:
    """Everything one usage answer said, at the time it was fetched."""

    limits: tuple[Limit, ...]
    extra_usage: ExtraUsage | None
    fetched_at: datetime

    def limit(self, limit_id: str) -> Limit | None:
        return next((limit for limit in self.limits if limit.id == limit_id), None)

    @property
    def worst_severity_rank(self) -> int:
        return max((limit.severity_rank for limit in self.limits), default=0)


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
    for key, value in payload.items():
        if key in ("limits", "extra_usage") or not _is_window(value):
            continue
        limit = _flat_window(str(key), value, thresholds)
        merged[limit.id] = limit
    for limit in _limits_list(payload.get("limits"), thresholds):
        merged[limit.id] = _merge(merged.get(limit.id), limit)
    extra = _extra_usage(payload.get("extra_usage"), payload.get("currency"))
    limits = tuple(sorted(merged.values(), key=lambda lim: order_key(lim.id)))
    return UsageSnapshot(limits=limits, extra_usage=extra, fetched_at=fetched_at)


def _is_window(value: object) -> bool:
    return isinstance(value, Mapping) and "utilization" in value


def _flat_window(key: str, window: Mapping[str, Any], thresholds: Sequence[float]) -> Limit:
    percent = _number(window["utilization"], f"{key}.utilization")
    return Limit(
        id=key,
        label=label_for(key),
        percent=percent,
        resets_at=_timestamp(window.get("resets_at"), f"{key}.resets_at"),
        severity=severity_for(percent, thresholds),
    )


def _limits_list(raw: object, thresholds: Sequence[float]) -> Iterable[Limit]:
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
        percent = _number(item.get("percent"), f"{where}.percent")
        severity = item.get("severity")
        if severity is not None and not isinstance(severity, str):
            raise UnexpectedResponse(f"{where}.severity is {_type_name(severity)}")
        limit_id, label = _identify(kind, item.get("scope"), where)
        yield Limit(
            id=limit_id,
            label=label,
            percent=percent,
            resets_at=_timestamp(item.get("resets_at"), f"{where}.resets_at"),
            severity=severity or severity_for(percent, thresholds),
        )


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
    return ExtraUsage(
        enabled=enabled,
        used=_money(raw.get("used_credits"), "extra_usage.used_credits"),
        limit=_money(raw.get("monthly_limit"), "extra_usage.monthly_limit"),
        currency=currency.upper(),
    )


def _money(raw: object, where: str) -> float | None:
    if raw is None:
        return None
    return round(_number(raw, where) / 100, 2)


def _number(raw: object, where: str) -> float:
    if isinstance(raw, bool) or not isinstance(raw, int | float):
        raise UnexpectedResponse(f"{where} is {_type_name(raw)}, not a number")
    value = float(raw)
    if not math.isfinite(value):
        raise UnexpectedResponse(f"{where} is not a finite number")
    return value


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


def _type_name(value: object) -> str:
    if value is None:
        return "null"
    names = {bool: "a boolean", str: "a string", list: "a list", dict: "an object"}
    return names.get(type(value), "a number" if isinstance(value, int | float) else "unknown")
