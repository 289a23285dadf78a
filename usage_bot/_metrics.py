"""Metrics in the Prometheus text format, for ``/metrics``.

A handful of counters and gauges kept in plain dicts and written out by hand: the format
is small and stable, and ``prometheus_client`` would add about 140 ms to start-up for it.
Gauges that are facts about the present (seconds since the last good fetch, percent
used) are computed when scraped, from the usage service, rather than stored.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping

from usage_bot._model import AccountUsage
from usage_bot._service import UsageService

Labels = tuple[tuple[str, str], ...]
LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class Metrics:
    """The bot's counters; ``render`` writes them with the gauges read at scrape time."""

    def __init__(self, service: UsageService) -> None:
        self._service = service
        self.upstream: defaultdict[Labels, int] = defaultdict(int)
        self.commands: defaultdict[Labels, int] = defaultdict(int)
        self._latency_buckets: defaultdict[Labels, list[int]] = defaultdict(
            lambda: [0] * len(LATENCY_BUCKETS)
        )
        self._latency_sum: defaultdict[Labels, float] = defaultdict(float)
        self._latency_count: defaultdict[Labels, int] = defaultdict(int)
        self.alert_counts: Callable[[], Mapping[str, tuple[int, int]]] = dict
        service.add_listener(self._heard)

    def _heard(self, usage: AccountUsage) -> None:
        outcome = usage.error.code if usage.error else "ok"
        self.upstream[(("account", usage.account), ("outcome", outcome))] += 1

    def command_answered(self, platform: str, outcome: str, seconds: float) -> None:
        """A front end answered ``/claude-usage`` (``outcome``: ok, refused, error)."""
        self.commands[(("platform", platform), ("outcome", outcome))] += 1
        key = (("platform", platform),)
        for index, bound in enumerate(LATENCY_BUCKETS):
            if seconds <= bound:
                self._latency_buckets[key][index] += 1
        self._latency_sum[key] += seconds
        self._latency_count[key] += 1

    def render(self) -> str:
        now = self._service.clock.now()
        out: list[str] = []
        _family(
            out,
            "usage_bot_upstream_requests_total",
            "counter",
            "Usage reads by account and outcome (ok, or the error code).",
            self.upstream.items(),
        )
        ages: list[tuple[Labels, float]] = []
        percents: list[tuple[Labels, float]] = []
        for name in self._service.accounts:
            usage = self._service.peek(name)
            age = usage.age(now)
            ages.append(((("account", name),), age.total_seconds() if age else math.nan))
            if usage.snapshot is not None:
                percents.extend(
                    ((("account", name), ("limit", limit.id)), limit.percent)
                    for limit in usage.snapshot.limits
                )
        _family(
            out,
            "usage_bot_last_good_fetch_age_seconds",
            "gauge",
            "Seconds since the last good usage answer (NaN: none yet).",
            ages,
        )
        _family(
            out,
            "usage_bot_percent_used",
            "gauge",
            "Percent used per account and limit, as last seen.",
            percents,
        )
        alerts = self.alert_counts()
        _family(
            out,
            "usage_bot_alerts_posted_total",
            "counter",
            "Alerts delivered, per destination.",
            ((((("destination", d),), ok)) for d, (ok, _) in alerts.items()),
        )
        _family(
            out,
            "usage_bot_alerts_failed_total",
            "counter",
            "Alert posts that failed (and will be retried), per destination.",
            ((((("destination", d),), failed)) for d, (_, failed) in alerts.items()),
        )
        _family(
            out,
            "usage_bot_commands_total",
            "counter",
            "Slash commands answered, per platform and outcome.",
            self.commands.items(),
        )
        out.append("# HELP usage_bot_command_seconds Time to answer a slash command.")
        out.append("# TYPE usage_bot_command_seconds histogram")
        for key, counts in self._latency_buckets.items():
            for bound, count in zip(LATENCY_BUCKETS, counts, strict=True):
                out.append(
                    _sample(
                        "usage_bot_command_seconds_bucket", (*key, ("le", _number(bound))), count
                    )
                )
            out.append(
                _sample(
                    "usage_bot_command_seconds_bucket",
                    (*key, ("le", "+Inf")),
                    self._latency_count[key],
                )
            )
            out.append(_sample("usage_bot_command_seconds_sum", key, self._latency_sum[key]))
            out.append(_sample("usage_bot_command_seconds_count", key, self._latency_count[key]))
        return "\n".join(out) + "\n"


def _family(
    out: list[str], name: str, kind: str, text: str, samples: Iterable[tuple[Labels, float]]
) -> None:
    out.append(f"# HELP {name} {text}")
    out.append(f"# TYPE {name} {kind}")
    out.extend(_sample(name, labels, value) for labels, value in samples)


def _sample(name: str, labels: Labels, value: float) -> str:
    inner = ",".join(f'{k}="{_escape(v)}"' for k, v in labels)
    return f"{name}{{{inner}}} {_number(value)}" if inner else f"{name} {_number(value)}"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: float) -> str:
    if isinstance(value, float) and math.isnan(value):
        return "NaN"
    return repr(float(value)) if isinstance(value, float) else str(value)
