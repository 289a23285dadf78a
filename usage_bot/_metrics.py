"""Metrics for ``/metrics``, the Prometheus way: an :class:`~usage_bot._events.Observer`
that counts what happens, and an exposition built by ``prometheus_client``.

Names follow Prometheus' conventions: base units (seconds, a 0-1 ratio), ``_total`` for
counters, a ``_timestamp_seconds`` gauge for "when last" (rather than an age that is stale
the moment it is scraped), a histogram for durations, ``usage_bot_build_info``, and the
``process_*`` metrics of the process collector.

Counting is plain Python, so that it costs nothing at start-up: ``prometheus_client``
(about 150 ms to import) is loaded at the first scrape, and only then. Facts about the
present (each limit's use, when each account was last read) are read at scrape time from
what the caller passes in, not stored.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from usage_bot import __version__
from usage_bot._events import (
    AlertDropped,
    AlertFailed,
    AlertPosted,
    CommandAnswered,
    Event,
    UsageRead,
)
from usage_bot._model import AccountUsage

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

COMMAND_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


@dataclass(frozen=True, slots=True)
class Exposition:
    """What ``/metrics`` answers: the body and its content type (with the format's version)."""

    body: bytes
    content_type: str


class Metrics:
    """Counts events as they come; :meth:`render` writes them with the gauges of now."""

    def __init__(self) -> None:
        self.reads: Counter[tuple[str, str]] = Counter()
        self.commands: Counter[tuple[str, str]] = Counter()
        self.posted: Counter[str] = Counter()
        self.failed: Counter[str] = Counter()
        self.dropped: Counter[str] = Counter()
        # Per platform: how many answers took at most each bucket's bound, their sum, count.
        self._buckets: defaultdict[str, list[int]] = defaultdict(lambda: [0] * len(COMMAND_BUCKETS))
        self._seconds: defaultdict[str, float] = defaultdict(float)
        self._answered: Counter[str] = Counter()
        self._registry: CollectorRegistry | None = None
        self._usages: Sequence[AccountUsage] = ()

    def observe(self, event: Event) -> None:
        match event:
            case UsageRead(account=account, outcome=outcome):
                self.reads[account, outcome] += 1
            case CommandAnswered(platform=platform, outcome=outcome, seconds=seconds):
                self.commands[platform, outcome] += 1
                buckets = self._buckets[platform]
                for index, bound in enumerate(COMMAND_BUCKETS):
                    if seconds <= bound:
                        buckets[index] += 1
                self._seconds[platform] += seconds
                self._answered[platform] += 1
            case AlertPosted(destination=destination):
                self.posted[destination] += 1
            case AlertFailed(destination=destination):
                self.failed[destination] += 1
            case AlertDropped(destination=destination):
                self.dropped[destination] += 1

    def destination(self, name: str) -> None:
        """A destination exists: its counters show 0 before its first alert."""
        for counter in (self.posted, self.failed, self.dropped):
            counter[name] += 0

    def render(self, usages: Sequence[AccountUsage]) -> Exposition:
        """The exposition, with each account's gauges as ``usages`` says now."""
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        self._usages = usages
        return Exposition(generate_latest(self._registry_now()), CONTENT_TYPE_LATEST)

    def _registry_now(self) -> CollectorRegistry:
        if self._registry is None:
            from prometheus_client import CollectorRegistry, ProcessCollector

            registry = CollectorRegistry(auto_describe=False)
            ProcessCollector(registry=registry)
            registry.register(_Collector(self))
            self._registry = registry
        return self._registry

    def collect(self) -> Iterator[Any]:
        """The bot's own metric families (prometheus_client's types, imported by now)."""
        from prometheus_client.core import (
            CounterMetricFamily,
            GaugeMetricFamily,
            HistogramMetricFamily,
        )

        info = GaugeMetricFamily(
            "usage_bot_build_info", "The running usage-bot's version.", labels=["version"]
        )
        info.add_metric([__version__], 1)
        yield info

        reads = CounterMetricFamily(
            "usage_bot_usage_reads",
            "Attempts to read an account's usage, by outcome: ok, or the error's code "
            "(a login problem is counted without any request upstream).",
            labels=["account", "outcome"],
        )
        for (account, outcome), count in sorted(self.reads.items()):
            reads.add_metric([account, outcome], count)
        yield reads

        used = GaugeMetricFamily(
            "usage_bot_limit_used_ratio",
            "How much of each limit is used, 0 to 1, as last read.",
            labels=["account", "limit"],
        )
        last = GaugeMetricFamily(
            "usage_bot_last_success_timestamp_seconds",
            "When each account's usage was last read successfully (Unix time).",
            labels=["account"],
        )
        for usage in self._usages:
            if usage.snapshot is None:
                continue
            last.add_metric([usage.account], usage.snapshot.fetched_at.timestamp())
            for limit in usage.snapshot.limits:
                used.add_metric([usage.account, limit.id], limit.percent / 100)
        yield used
        yield last

        for name, counter, text in (
            ("usage_bot_alerts_posted", self.posted, "Alerts delivered, per destination."),
            (
                "usage_bot_alert_post_failures",
                self.failed,
                "Alert posts that failed (each retry counts), per destination.",
            ),
            (
                "usage_bot_alerts_dropped",
                self.dropped,
                "Alerts given up because their moment passed, per destination.",
            ),
        ):
            family = CounterMetricFamily(name, text, labels=["destination"])
            for destination, count in sorted(counter.items()):
                family.add_metric([destination], count)
            yield family

        commands = CounterMetricFamily(
            "usage_bot_commands",
            "Slash commands answered, per platform and outcome (ok, refused, error).",
            labels=["platform", "outcome"],
        )
        for (platform, outcome), count in sorted(self.commands.items()):
            commands.add_metric([platform, outcome], count)
        yield commands

        durations = HistogramMetricFamily(
            "usage_bot_command_duration_seconds",
            "How long a user waited for a slash command's whole answer.",
            labels=["platform"],
        )
        for platform, counts in sorted(self._buckets.items()):
            buckets = [(repr(bound), n) for bound, n in zip(COMMAND_BUCKETS, counts, strict=True)]
            buckets.append(("+Inf", self._answered[platform]))
            durations.add_metric([platform], buckets, sum_value=self._seconds[platform])
        yield durations


class _Collector:
    """prometheus_client's collector protocol, over :class:`Metrics`."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[Any]:
        return self._metrics.collect()
