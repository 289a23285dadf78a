"""The soak's short form for CI: a simulated day of two accounts, with every kind of fault.

The full soak is ``python -m tests.soak --days 7 --accounts 5 --seed N`` (a minute or two);
see :mod:`tests.soak` for what it simulates and how it judges.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from pathlib import Path

from tests.soak import (
    T0,
    Account,
    Destination,
    Received,
    Report,
    Served,
    Upstream,
    _judge,
    expected_announcements,
    soak,
)
from usage_bot._clock import FakeClock
from usage_bot._notify import AlertMessage

# A seed whose day meets nearly every fault the soak draws (all but a body that is not
# JSON, which the fault matrix covers): the assertions below keep it so.
SEED = 56


async def test_a_simulated_day_with_faults_and_restarts_loses_and_doubles_nothing() -> None:
    report = await soak(days=1, accounts=2, seed=SEED)
    shown = "\n".join(report.lines())
    assert report.duplicated == 0, shown
    assert report.missed == 0, shown
    assert report.unasked == 0, shown
    assert report.incident_duplicates == 0, shown
    assert report.unexplained_incidents == 0, shown
    assert report.unexpected_errors == [], shown
    assert report.ok, shown
    assert report.delivered + report.dropped_as_allowed == report.expected
    # Not a quiet day: alerts to make, and trouble of every kind on the way.
    assert report.expected >= 20, shown
    assert {"401", "429", "5xx", "timeout"} <= set(report.upstream_failures), shown
    assert {"expired", "rotate"} <= set(report.login_faults), shown
    assert {"retryable", "not-retryable"} <= set(report.destination_failures), shown
    assert {"before post", "after post"} <= set(report.crashes), shown
    assert report.restarts >= 2, shown
    assert report.incidents > 0, shown


def test_the_judge_sees_a_lost_and_a_doubled_alert(tmp_path: Path) -> None:
    """The soak's verdict is worth something only if it would notice: here it must."""
    alice = Account("alice", tmp_path, random.Random(0))  # noqa: S311 - a simulation
    five_hour = alice.limits["five_hour"]
    first = five_hour.window(T0)
    ends = five_hour.curves[first].end
    second = five_hour.window(ends + timedelta(minutes=1))
    served = [
        Served("alice", T0, {"five_hour": (first, 85.0)}),
        Served("alice", T0 + timedelta(minutes=3), {"five_hour": (first, 96.0)}),
        Served("alice", ends + timedelta(minutes=1), {"five_hour": (second, 10.0)}),
    ]
    people = {"alice": alice}
    expected = expected_announcements(people, served)
    assert set(expected) == {
        ("threshold", "alice", "five_hour", str(first), "80"),
        ("threshold", "alice", "five_hour", str(first), "95"),
        ("reset", "alice", "five_hour", str(second)),
    }

    def alert(kind: str, level: float | None, resets_at: datetime) -> Received:
        message = AlertMessage(
            kind=kind,  # type: ignore[arg-type]
            key=f"{kind}:{level}",
            account="alice",
            title="t",
            text="x",
            limit_id="five_hour",
            threshold=level,
            resets_at=resets_at,
        )
        return Received(T0 + timedelta(hours=1), message)

    channel = Destination("slack", FakeClock(T0), [])
    channel.received = [
        alert("threshold", 80.0, ends),
        alert("threshold", 80.0, ends),  # doubled
        # 95 % never arrives
        alert("reset", None, five_hour.curves[second].end),
    ]
    upstream = Upstream(FakeClock(T0), people, {"alice": []}, random.Random(0))  # noqa: S311
    upstream.served = served
    report = Report(days=1, accounts=1, seed=0)
    _judge(report, people, upstream, [channel], {"alice": []}, {"alice": []})
    assert (report.expected, report.delivered, report.duplicated, report.missed) == (3, 2, 1, 1)
    assert not report.ok
