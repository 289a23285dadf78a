"""The soak's short form for CI, and the soak's judge put to the test.

The full soak is ``python -m tests.soak --days 7 --accounts 5 --seed N`` (a minute or so);
see :mod:`tests.soak` for what it simulates and how it judges. Here: two days of two
accounts with trouble three times as often as in an ordinary week, so that they meet every
kind of fault and of upstream behaviour the soak draws; and then the judge on weeks told
by hand, each with the bug it must notice.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import pytest

from tests.soak import (
    T0,
    Decision,
    Destination,
    Dropped,
    Episode,
    Received,
    Report,
    Request,
    Served,
    Shown,
    Week,
    judge,
    soak,
)
from usage_bot._clock import FakeClock
from usage_bot._notify import AlertMessage

# A seed whose two days meet every fault and every upstream behaviour the soak draws (the
# first test below keeps it so), and the first account's day off: its login stays expired
# for more than a day, and is renewed before the run ends.
SEED = 30
DAYS = 2
TROUBLE = 3


@pytest.fixture(scope="module")
def short_soak() -> Report:
    return asyncio.run(soak(days=DAYS, accounts=2, seed=SEED, trouble=TROUBLE))


def test_the_short_soak_meets_every_kind_of_trouble(short_soak: Report) -> None:
    report, shown = short_soak, "\n".join(short_soak.lines())
    assert report.expected >= 20, shown
    assert {"401", "429", "5xx", "timeout", "invalid"} <= set(report.upstream_failures), shown
    assert len(report.invalid_served) >= 2, shown
    assert {"ends moved", "ends flapping"} <= set(report.anthropic), shown
    assert any(kind.startswith("reset early") for kind in report.anthropic), shown
    assert {"no window", "stale, its end past", "end in another minute than the last"} <= set(
        report.readings
    ), shown
    assert report.rules["alerts in a period whose end moved"], shown
    assert report.rules["readings past their end that would have alerted"], shown
    assert report.rules["resets due while usage could not be read"], shown
    assert report.nightly_expiries >= 1, shown
    assert len(report.long_expiry_lengths) == 1, shown
    assert {"retryable", "not-retryable"} <= set(report.destination_failures), shown
    assert {"before post", "after post"} <= set(report.crashes), shown
    assert report.restarts >= 2, shown
    assert report.incidents > 0, shown


def test_the_short_soak_loses_and_doubles_no_alert(short_soak: Report) -> None:
    report, shown = short_soak, "\n".join(short_soak.lines())
    assert report.duplicated == 0, shown
    assert report.missed == 0, shown
    assert report.unasked == 0, shown
    assert report.unexpected_errors == [], shown
    assert report.delivered + report.dropped_as_allowed == report.expected, shown


def test_the_short_soak_assesses_no_invalid_reading(short_soak: Report) -> None:
    report, shown = short_soak, "\n".join(short_soak.lines())
    assert not report.invalid_accepted, shown
    assert report.after_accepted_invalid == 0, shown


def test_the_short_soak_says_cannot_read_usage_only_when_the_rules_do(short_soak: Report) -> None:
    report, shown = short_soak, "\n".join(short_soak.lines())
    assert report.incident_duplicates == 0, shown
    assert report.incidents_missed == 0, shown
    assert report.unexplained_incidents == 0, shown
    assert report.incidents_not_closed == 0, shown
    assert (report.long_expiries, report.long_expiry_alerts) == (1, 1), shown
    assert report.long_expiry_readable_again == 1, shown
    assert report.incidents_not_opened == 0, shown
    assert report.expiry_incidents == 0, shown


# -- the judge, on weeks told by hand ------------------------------------------------------

END = T0 + timedelta(hours=5)  # the first window's end
NEXT = END + timedelta(hours=5)


def minutes(n: float) -> datetime:
    return T0 + timedelta(minutes=n)


@dataclass
class Story:
    """A week in miniature: what the upstream answered (one limit, the 5-hour one, of one
    account), what the engine decided at which poll, and what reached the channel."""

    served: list[Served] = field(default_factory=list)
    requests: list[Request] = field(default_factory=list)
    decisions: dict[str, Decision] = field(default_factory=dict)
    channel: Destination = field(default_factory=lambda: Destination("slack", FakeClock(T0), []))
    expired: list[tuple[datetime, datetime | None]] = field(default_factory=list)
    drops: list[Dropped] = field(default_factory=list)

    def answer(
        self,
        at: datetime,
        percent: float,
        end: datetime | None = END,
        window: int | None = 0,
        *,
        invalid: str | None = None,
        accepted: bool | None = None,
    ) -> None:
        shown = Shown(window, percent, end, stale=end is not None and at > end)
        self.served.append(
            Served("alice", at, {"five_hour": shown}, invalid, "five_hour", accepted)
        )
        self.requests.append(Request("alice", at, "invalid" if invalid else "ok"))

    def no_window(self, at: datetime) -> None:
        self.answer(at, 0.0, None, None)

    def fail(self, at: datetime, outcome: str = "5xx") -> None:
        self.requests.append(Request("alice", at, outcome))

    def decide(
        self, at: datetime, kind: str, key: str, level: float | None = None, *, copies: int = 1
    ) -> None:
        message = AlertMessage(
            kind=kind,  # type: ignore[arg-type]
            key=key,
            account="alice",
            title="t",
            text="x",
            limit_id=None if kind.startswith("incident") else "five_hour",
            threshold=level,
        )
        self.decisions.setdefault(key, Decision(at, message))
        self.channel.received += [Received(at, message)] * copies

    def decide_unposted(self, at: datetime, key: str, level: float) -> None:
        """Decided, but its destination fails (not retryably) from then until after the
        window's end, and the scheduler gives it up at the end it was decided with."""
        self.decide(at, "threshold", key, level, copies=0)
        self.channel.faults.append(Episode(at, END + timedelta(minutes=5), "not-retryable"))
        self.drops.append(Dropped(key, "slack", END))

    def verdict(self, until: datetime = NEXT) -> Report:
        report = Report(days=1, accounts=1, seed=0)
        week = Week(
            until=until,
            served=self.served,
            requests=self.requests,
            decisions=self.decisions,
            destinations=[self.channel],
            drops=self.drops,
            expired={"alice": self.expired},
        )
        judge(report, week)
        return report


def a_window_that_alerts(story: Story) -> None:
    """80 % and 95 % in the first window, then the next window's first answer."""
    story.answer(minutes(0), 85.0)
    story.decide(minutes(0), "threshold", "w1:80", 80)
    story.answer(minutes(3), 96.0)
    story.decide(minutes(3), "threshold", "w1:95", 95)
    story.answer(END + timedelta(minutes=2), 10.0, NEXT, 1)
    story.decide(END + timedelta(minutes=2), "reset", "reset:w1")


def test_the_judge_passes_a_window_announced_as_the_rules_say() -> None:
    story = Story()
    a_window_that_alerts(story)
    report = story.verdict()
    assert (report.expected, report.delivered, report.thresholds, report.resets) == (3, 3, 2, 1)
    assert report.ok, "\n".join(report.lines())


def test_the_judge_sees_a_lost_and_a_doubled_alert() -> None:
    """The soak's verdict is worth something only if it would notice: here it must."""
    story = Story()
    story.answer(minutes(0), 85.0)
    story.decide(minutes(0), "threshold", "w1:80", 80, copies=2)  # doubled
    story.answer(minutes(3), 96.0)  # 95 % is never decided
    story.answer(END + timedelta(minutes=2), 10.0, NEXT, 1)
    story.decide(END + timedelta(minutes=2), "reset", "reset:w1")
    report = story.verdict()
    assert (report.expected, report.delivered, report.duplicated, report.missed) == (3, 2, 1, 1)
    assert not report.ok


def test_the_judge_sees_an_80_alert_posted_again_after_a_moved_end() -> None:
    story = Story()
    story.answer(minutes(0), 85.0)
    story.decide(minutes(0), "threshold", "w1:80", 80)
    moved = END + timedelta(minutes=20)  # Anthropic moved the end: the same window
    story.answer(minutes(3), 86.0, moved)
    story.decide(minutes(3), "threshold", "w1-moved:80", 80)  # taken for a new window
    report = story.verdict()
    assert report.duplicated == 1
    assert not report.ok
    assert "2 copies" in report.wrong_alerts[0]


def test_the_judge_sees_a_reset_announced_at_an_end_that_had_moved_later() -> None:
    story = Story()
    story.answer(minutes(0), 85.0)
    story.decide(minutes(0), "threshold", "w1:80", 80)
    moved = END + timedelta(minutes=20)
    story.answer(END - timedelta(minutes=30), 86.0, moved)
    story.answer(END - timedelta(minutes=3), 87.0, moved)
    story.decide(END + timedelta(minutes=2), "reset", "reset:w1")  # at the old end: too soon
    report = story.verdict()
    assert report.unasked == 1
    assert report.missed == 1  # the reset due at the moved end never came
    assert "before its period was over" in report.wrong_alerts[0]


def test_the_judge_takes_an_end_flapping_between_two_values_for_one_window() -> None:
    story = Story()
    other = END - timedelta(minutes=10)
    for n in range(20):
        story.answer(minutes(60 + 3 * n), 85.0 + n / 10, other if n % 2 else END)
    story.decide(minutes(60), "threshold", "w1:80", 80)
    assert story.verdict(until=END).ok
    story.decide(minutes(63), "threshold", "w1-other:80", 80)  # the other end: a new window?
    assert story.verdict(until=END).duplicated == 1


def test_the_judge_lets_an_alert_go_when_its_window_ended_while_its_destination_failed() -> None:
    story = Story()
    story.answer(END - timedelta(minutes=40), 85.0)
    story.decide_unposted(END - timedelta(minutes=40), "w1:80", 80)
    report = story.verdict(until=END)
    assert (report.expected, report.dropped_as_allowed, report.missed) == (1, 1, 0)
    assert report.ok


def test_the_judge_sees_an_alert_dropped_at_an_end_that_had_moved_later() -> None:
    story = Story()
    story.answer(END - timedelta(minutes=40), 85.0)
    story.decide_unposted(END - timedelta(minutes=40), "w1:80", 80)
    story.answer(END - timedelta(minutes=30), 86.0, END + timedelta(minutes=20))  # moved
    report = story.verdict(until=END)
    assert (report.dropped_as_allowed, report.missed) == (0, 1)


def an_early_reset_announced_while_the_channel_fails(story: Story) -> None:
    """Reset early an hour before the end (the new window keeps the end); the reset
    announcement waits for the channel, and is given up at that end."""
    story.answer(minutes(0), 85.0)
    story.decide(minutes(0), "threshold", "w1:80", 80)
    story.answer(END - timedelta(minutes=60), 1.0, END, 1)
    story.decide(END - timedelta(minutes=60), "reset", "reset:w1", copies=0)
    story.channel.faults.append(Episode(END - timedelta(minutes=61), END, "not-retryable"))
    story.drops.append(Dropped("reset:w1", "slack", END))


def test_the_judge_lets_a_reset_go_once_the_next_window_ended_too() -> None:
    story = Story()
    an_early_reset_announced_while_the_channel_fails(story)
    story.answer(END - timedelta(minutes=3), 1.2, END, 1)
    report = story.verdict(until=END)
    assert (report.dropped_as_allowed, report.missed) == (1, 0)


def test_the_judge_sees_a_reset_dropped_while_it_was_still_news() -> None:
    story = Story()
    an_early_reset_announced_while_the_channel_fails(story)
    story.answer(END - timedelta(minutes=3), 1.2, NEXT, 1)  # the next window's end moved
    report = story.verdict(until=END)
    assert (report.dropped_as_allowed, report.missed) == (0, 1)


def test_the_judge_sees_an_alert_raised_by_a_reading_past_its_end() -> None:
    story = Story()
    story.answer(minutes(0), 85.0)
    story.decide(minutes(0), "threshold", "w1:80", 80)
    story.answer(END + timedelta(minutes=3), 97.0)  # the old window's last word: too late
    story.decide(END + timedelta(minutes=3), "threshold", "w1:95", 95)
    report = story.verdict(until=END + timedelta(minutes=5))
    assert report.unasked == 1
    assert "past its end" in report.wrong_alerts[0]


def test_the_judge_sees_an_alert_raised_by_an_invalid_reading() -> None:
    story = Story()
    story.answer(minutes(0), 50.0)
    story.answer(minutes(3), 50.0, invalid="150", accepted=True)  # the model took it
    story.decide(minutes(3), "threshold", "w1:95", 95)
    story.answer(minutes(6), 51.0)
    report = story.verdict(until=END)
    assert report.invalid_accepted == {"150": 1}
    assert report.after_accepted_invalid == 1
    assert not report.ok


def test_the_judge_sees_an_early_reset_missed() -> None:
    story = Story()
    story.answer(minutes(0), 85.0)
    story.decide(minutes(0), "threshold", "w1:80", 80)
    # Anthropic resets the window an hour before its end; the new one keeps the end.
    story.answer(END - timedelta(minutes=60), 1.5, END, 1)
    story.answer(END - timedelta(minutes=20), 82.0, END, 1)
    report = story.verdict(until=END)
    assert report.missed == 2  # the reset, and the new window's 80 %
    story.decide(END - timedelta(minutes=60), "reset", "reset:w1")
    story.decide(END - timedelta(minutes=20), "threshold", "w2:80", 80)
    assert story.verdict(until=END).ok


def test_the_judge_wants_a_reset_at_its_end_while_usage_cannot_be_read() -> None:
    story = Story()
    story.answer(END - timedelta(minutes=30), 96.0)
    story.decide(END - timedelta(minutes=30), "threshold", "w1:95", 95)
    for n in range(30):  # the upstream fails from before the end until well after it
        story.fail(END - timedelta(minutes=27 - 3 * n))
    story.decide(END - timedelta(minutes=12), "incident_started", "incident:alice:1:started")
    assert story.verdict().missed == 1
    story.decide(END + timedelta(minutes=2), "reset", "reset:w1")
    assert story.verdict().ok


def test_the_judge_sees_a_reset_announced_long_after_its_end() -> None:
    story = Story()
    story.answer(END - timedelta(minutes=30), 96.0)
    story.decide(END - timedelta(minutes=30), "threshold", "w1:95", 95)
    story.answer(END + timedelta(minutes=40), 3.0, NEXT, 1)
    story.decide(END + timedelta(minutes=40), "reset", "reset:w1")  # not on the clock
    report = story.verdict()
    assert (report.unasked, report.missed) == (1, 1)
    assert "late" in report.wrong_alerts[0]


LATER = END + timedelta(minutes=90)


def a_window_that_goes_inactive() -> Story:
    """80 %, then no window after its end (nobody works), then a new one later."""
    story = Story()
    story.answer(END - timedelta(minutes=30), 85.0)
    story.decide(END - timedelta(minutes=30), "threshold", "w1:80", 80)
    story.no_window(END + timedelta(minutes=1))
    story.decide(END + timedelta(minutes=1), "reset", "reset:w1")
    story.no_window(END + timedelta(minutes=60))
    story.answer(LATER, 2.0, LATER + timedelta(hours=5), 1)
    return story


def test_the_judge_wants_one_reset_when_a_window_goes_inactive() -> None:
    assert a_window_that_goes_inactive().verdict().ok
    doubled = a_window_that_goes_inactive()
    doubled.decide(END + timedelta(minutes=4), "reset", "reset:w1-again")
    assert doubled.verdict().duplicated == 1
    started = a_window_that_goes_inactive()
    started.decide(LATER, "reset", "reset:w2")  # a window starting is no reset
    assert started.verdict().unasked == 1


# -- the judge on "cannot read usage" ------------------------------------------------------

NIGHT = T0 + timedelta(hours=14)  # the login expires
MORNING = NIGHT + timedelta(hours=16)  # and Claude Code renews it


def a_night(story: Story) -> None:
    story.answer(NIGHT - timedelta(minutes=3), 10.0, NIGHT + timedelta(hours=3))
    story.expired.append((NIGHT, MORNING))


def test_the_judge_sees_an_incident_posted_for_a_nightly_expiry() -> None:
    story = Story()
    a_night(story)
    story.answer(MORNING, 0.0, MORNING + timedelta(hours=5), 1)
    assert story.verdict(until=MORNING + timedelta(hours=1)).ok
    story.decide(NIGHT + timedelta(hours=2), "incident_started", "incident:alice:1:started")
    story.decide(MORNING, "incident_ended", "incident:alice:1:ended")
    report = story.verdict(until=MORNING + timedelta(hours=1))
    assert report.expiry_incidents == 1
    assert not report.ok


def test_the_judge_sees_a_short_failure_after_the_night_called_lasting() -> None:
    """The night the login was expired is rest, not 16 hours of failing."""
    story = Story()
    a_night(story)
    story.fail(MORNING)
    story.decide(MORNING, "incident_started", "incident:alice:1:started")
    story.answer(MORNING + timedelta(minutes=3), 0.0, MORNING + timedelta(hours=5), 1)
    story.decide(MORNING + timedelta(minutes=3), "incident_ended", "incident:alice:1:ended")
    report = story.verdict(until=MORNING + timedelta(hours=1))
    assert report.expiry_incidents == 1
    assert "less than a day" in report.wrong_incidents[0]


def test_the_judge_takes_a_failure_lasting_15_minutes_after_the_night() -> None:
    story = Story()
    a_night(story)
    for n in range(6):
        story.fail(MORNING + timedelta(minutes=3 * n))
    story.decide(MORNING + timedelta(minutes=15), "incident_started", "incident:alice:1:started")
    story.answer(MORNING + timedelta(minutes=18), 0.0, MORNING + timedelta(hours=5), 1)
    story.decide(MORNING + timedelta(minutes=18), "incident_ended", "incident:alice:1:ended")
    report = story.verdict(until=MORNING + timedelta(hours=1))
    assert report.ok, "\n".join(report.lines())


def test_the_judge_wants_one_incident_for_a_login_expired_over_a_day() -> None:
    story = Story()
    renewed = NIGHT + timedelta(hours=30)
    story.answer(NIGHT - timedelta(minutes=3), 10.0, NIGHT + timedelta(hours=3))
    story.expired.append((NIGHT, renewed))
    story.answer(renewed, 0.0, renewed + timedelta(hours=5), 1)
    until = renewed + timedelta(hours=1)
    report = story.verdict(until=until)
    assert (report.long_expiries, report.long_expiry_alerts) == (1, 0)
    assert not report.ok
    story.decide(NIGHT + timedelta(hours=24, minutes=2), "incident_started", "incident:alice:1:s")
    story.decide(renewed, "incident_ended", "incident:alice:1:e")
    report = story.verdict(until=until)
    assert (report.long_expiry_alerts, report.long_expiry_readable_again) == (1, 1)
    assert report.ok, "\n".join(report.lines())
    story.channel.received.append(story.channel.received[-2])  # "cannot read usage" twice
    assert story.verdict(until=until).incident_duplicates == 1


def test_the_judge_sees_a_lasting_failure_not_said() -> None:
    story = Story()
    story.answer(minutes(0), 10.0)
    for n in range(1, 8):
        story.fail(minutes(3 * n))  # 18 minutes of 5xx
    story.answer(minutes(24), 10.0)
    report = story.verdict(until=END)
    assert report.incidents_not_opened == 1
    story.decide(minutes(18), "incident_started", "incident:alice:1:started")
    story.decide(minutes(24), "incident_ended", "incident:alice:1:ended")
    assert story.verdict(until=END).ok


def test_the_judge_sees_a_rejected_token_not_said_at_once() -> None:
    story = Story()
    story.answer(minutes(0), 10.0)
    story.fail(minutes(3), "401")
    story.answer(minutes(6), 10.0)
    assert story.verdict(until=END).incidents_not_opened == 1


def test_the_judge_sees_the_upstream_asked_again_too_soon_after_a_429() -> None:
    story = Story()
    story.answer(minutes(0), 10.0)
    story.fail(minutes(3), "429")  # no retry-after: 5 minutes
    story.fail(minutes(8), "429")  # then 10
    story.answer(minutes(18), 10.0)
    assert story.verdict(until=END).asked_too_soon == 0
    story.requests.insert(3, Request("alice", minutes(15), "ok"))  # 7 min after the second
    report = story.verdict(until=END)
    assert report.asked_too_soon == 1
    assert "not 600 s" in report.unexpected_errors[0]


def test_the_judge_sees_a_retry_after_not_waited_for() -> None:
    story = Story()
    story.fail(minutes(0), "429")
    story.requests[-1] = Request("alice", minutes(0), "429", retry_after=3600.0)
    story.answer(minutes(30), 10.0)
    assert story.verdict(until=END).asked_too_soon == 1


def test_the_judge_sees_an_incident_without_a_fault() -> None:
    story = Story()
    story.answer(minutes(0), 10.0)
    story.decide(minutes(1), "incident_started", "incident:alice:1:started")
    report = story.verdict(until=END)
    assert report.unexplained_incidents == 1
    assert report.incidents_not_closed == 0  # no good answer came after it
