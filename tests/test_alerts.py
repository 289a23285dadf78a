"""The alert engine: thresholds, windows, resets and incidents, as pure functions."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from usage_bot._alerts import (
    LASTING_FAILURE,
    AccountLedger,
    AlertEvent,
    IncidentEnded,
    IncidentStarted,
    ThresholdCrossed,
    WindowReset,
    assess,
    highest_crossed,
    window_id,
)
from usage_bot._config import ResetAnnounce
from usage_bot._exceptions import (
    CredentialsExpired,
    CredentialsMalformed,
    CredentialsRejected,
    ScopeMissing,
    UnexpectedResponse,
    UpstreamServerError,
    UsageBotError,
)
from usage_bot._model import AccountUsage, Limit, UsageSnapshot, parse_usage

T0 = datetime(2026, 7, 19, 1, 0, tzinfo=UTC)
# The upstream's own example: the same window, a fraction of a second apart.
RESETS = datetime(2026, 7, 19, 3, 39, 59, 570750, tzinfo=UTC)
RESETS_JITTERED = datetime(2026, 7, 19, 3, 39, 59, 912345, tzinfo=UTC)
NEXT_RESETS = RESETS + timedelta(hours=5)
THRESHOLDS = (80.0, 95.0)


def limit(
    percent: float, resets_at: datetime | None = RESETS, limit_id: str = "five_hour"
) -> Limit:
    label = {"five_hour": "5-hour"}.get(limit_id, limit_id)
    return Limit(limit_id, label, percent, resets_at, "normal")


def usage(*limits: Limit, at: datetime = T0) -> AccountUsage:
    return AccountUsage("alice", UsageSnapshot(tuple(limits), None, at), None, at)


def failed(
    error: UsageBotError, *, at: datetime, previous: AccountUsage | None = None
) -> AccountUsage:
    snapshot = previous.snapshot if previous is not None else None
    return AccountUsage("alice", snapshot, error, at)


class Engine:
    """Feeds polls to :func:`assess` the way the scheduler does, keeping the ledger."""

    def __init__(self, reset_announce: ResetAnnounce = "alerted") -> None:
        self.ledger = AccountLedger("alice")
        self.reset_announce: ResetAnnounce = reset_announce

    def poll(self, observed: AccountUsage, *, now: datetime | None = None) -> list[AlertEvent]:
        result = assess(
            self.ledger,
            observed,
            now=now or observed.checked_at or T0,
            thresholds=THRESHOLDS,
            reset_announce=self.reset_announce,
        )
        self.ledger = result.ledger
        return list(result.events)

    def levels(self, observed: AccountUsage) -> list[float]:
        return [e.level for e in self.poll(observed) if isinstance(e, ThresholdCrossed)]


# -- thresholds -------------------------------------------------------------------------


def test_each_threshold_is_announced_once_as_usage_climbs() -> None:
    engine = Engine()
    assert engine.levels(usage(limit(50))) == []
    assert engine.levels(usage(limit(85))) == [80.0]
    assert engine.levels(usage(limit(90))) == []
    assert engine.levels(usage(limit(96))) == [95.0]
    assert engine.levels(usage(limit(100))) == []


def test_several_thresholds_crossed_in_one_step_announce_only_the_highest() -> None:
    engine = Engine()
    engine.poll(usage(limit(10)))
    assert engine.levels(usage(limit(97))) == [95.0]


def test_a_first_poll_already_high_announces_only_the_current_level() -> None:
    engine = Engine()
    assert engine.levels(usage(limit(96))) == [95.0]
    assert engine.levels(usage(limit(99))) == []


def test_usage_that_dips_by_a_point_at_most_is_the_same_window() -> None:
    engine = Engine()
    engine.poll(usage(limit(85)))
    assert engine.poll(usage(limit(84))) == []
    assert engine.levels(usage(limit(88))) == []


def test_a_jittered_reset_time_is_the_same_window() -> None:
    engine = Engine()
    [first] = engine.poll(usage(limit(85, RESETS)))
    assert engine.levels(usage(limit(86, RESETS_JITTERED))) == []
    [second] = engine.poll(usage(limit(96, RESETS)))
    assert isinstance(first, ThresholdCrossed)
    assert isinstance(second, ThresholdCrossed)
    assert first.key == "threshold:alice:five_hour:2026-07-19T03:40Z:80"
    assert second.key == "threshold:alice:five_hour:2026-07-19T03:40Z:95"


def test_window_ids_round_to_the_minute() -> None:
    assert window_id(RESETS) == window_id(RESETS_JITTERED) == "2026-07-19T03:40Z"
    assert window_id(None) == "none"


def test_thresholds_apply_to_model_scoped_weekly_limits_from_the_limits_list() -> None:
    payload = {
        "five_hour": {"utilization": 12.0, "resets_at": "2026-07-19T03:39:59.570750+00:00"},
        "limits": [
            {
                "kind": "weekly_scoped",
                "group": "weekly",
                "percent": 81,
                "severity": "warning",
                "resets_at": "2026-07-24T00:00:00Z",
                "scope": {"model": {"id": "claude-fable-5", "display_name": "Fable"}},
                "is_active": True,
            }
        ],
    }
    snapshot = parse_usage(payload, fetched_at=T0)
    [event] = Engine().poll(AccountUsage("alice", snapshot, None, T0))
    assert isinstance(event, ThresholdCrossed)
    assert (event.limit_id, event.label, event.level) == ("seven_day_fable", "Weekly (Fable)", 80)


def test_each_limit_is_judged_on_its_own() -> None:
    engine = Engine()
    events = engine.poll(usage(limit(85), limit(96, NEXT_RESETS, "seven_day")))
    assert [(e.limit_id, e.level) for e in events if isinstance(e, ThresholdCrossed)] == [
        ("five_hour", 80.0),
        ("seven_day", 95.0),
    ]


def test_highest_crossed() -> None:
    assert highest_crossed(79.99, THRESHOLDS) == 0
    assert highest_crossed(80, THRESHOLDS) == 80
    assert highest_crossed(100, THRESHOLDS) == 95


def test_a_threshold_message_names_account_limit_percent_threshold_and_what_to_do() -> None:
    [event] = Engine().poll(usage(limit(96.4)))
    message = event.message()
    assert message.kind == "threshold"
    assert message.key == event.key
    assert message.severity == "critical"
    assert message.title == "alice: 5-hour limit at 96.4 %"
    assert "alice" in message.text
    assert "5-hour" in message.text
    assert "96.4 %" in message.text
    assert "95 %" in message.text
    assert message.advice is not None
    # Apart, for each platform to set off: never said twice.
    assert message.advice not in message.text
    assert message.resets_at == RESETS
    assert message.percent == 96.4
    assert message.threshold == 95


def test_a_lower_threshold_is_a_warning_and_a_used_up_limit_says_so() -> None:
    [warning] = Engine().poll(usage(limit(81)))
    [used_up] = Engine().poll(usage(limit(100)))
    assert warning.message().severity == "warning"
    assert "used up" in (used_up.message().advice or "")


def test_a_threshold_alert_expires_when_its_window_ends() -> None:
    [event] = Engine().poll(usage(limit(85)))
    assert event.expires_at == RESETS


# -- resets -----------------------------------------------------------------------------


def test_a_window_that_alerted_announces_its_reset_once() -> None:
    engine = Engine()
    engine.poll(usage(limit(96)))
    events = engine.poll(usage(limit(3, NEXT_RESETS), at=RESETS + timedelta(minutes=1)))
    [reset] = events
    assert isinstance(reset, WindowReset)
    assert reset.key == "reset:alice:five_hour:2026-07-19T03:40Z"
    assert "fresh again" in reset.message().text
    assert reset.message().resets_at == NEXT_RESETS
    assert engine.poll(usage(limit(4, NEXT_RESETS))) == []


def test_a_reset_window_alerts_again_from_scratch() -> None:
    engine = Engine()
    engine.poll(usage(limit(96)))
    engine.poll(usage(limit(3, NEXT_RESETS)))
    assert engine.levels(usage(limit(85, NEXT_RESETS))) == [80.0]


@pytest.mark.parametrize(
    ("mode", "alerted", "announced"),
    [
        ("alerted", True, True),
        ("alerted", False, False),
        ("always", False, True),
        ("always", True, True),
        ("never", True, False),
    ],
)
def test_reset_announce_modes(mode: ResetAnnounce, alerted: bool, announced: bool) -> None:
    engine = Engine(mode)
    engine.poll(usage(limit(85 if alerted else 10)))
    events = engine.poll(usage(limit(0, NEXT_RESETS)))
    assert any(isinstance(e, WindowReset) for e in events) is announced


def test_a_reset_time_that_vanishes_early_keeps_the_window() -> None:
    engine = Engine()
    engine.poll(usage(limit(96)))
    assert engine.poll(usage(limit(96, None)), now=RESETS - timedelta(hours=1)) == []
    assert engine.poll(usage(limit(97)), now=RESETS - timedelta(minutes=59)) == []


def test_a_reset_time_that_vanishes_when_due_is_a_reset() -> None:
    engine = Engine()
    engine.poll(usage(limit(96)))
    [reset] = engine.poll(usage(limit(0, None)), now=RESETS + timedelta(seconds=1))
    assert isinstance(reset, WindowReset)
    # The next use opens a window: no second announcement for the same reset.
    assert engine.poll(usage(limit(1, NEXT_RESETS))) == []


def test_a_reset_time_that_moves_backwards_at_the_same_percent_is_the_same_window() -> None:
    engine = Engine("always")
    engine.poll(usage(limit(96, NEXT_RESETS)))
    assert engine.poll(usage(limit(96, RESETS))) == []


# -- incidents --------------------------------------------------------------------------


def test_a_rejected_login_opens_an_incident_at_once_and_a_success_closes_it() -> None:
    engine = Engine()
    error = CredentialsRejected()
    [started] = engine.poll(failed(error, at=T0))
    assert isinstance(started, IncidentStarted)
    assert started.key == "incident:alice:1:started"
    message = started.message()
    assert message.kind == "incident_started"
    assert "alice" in message.text
    assert message.advice == error.message
    assert engine.poll(failed(error, at=T0 + timedelta(minutes=3))) == []
    assert engine.poll(failed(ScopeMissing(), at=T0 + timedelta(minutes=6))) == []
    [ended] = engine.poll(usage(limit(10), at=T0 + timedelta(minutes=9)))
    assert isinstance(ended, IncidentEnded)
    assert ended.key == "incident:alice:1:ended"
    assert ended.message().kind == "incident_ended"
    [again] = engine.poll(failed(error, at=T0 + timedelta(minutes=12)))
    assert again.key == "incident:alice:2:started"


def test_an_upstream_failure_opens_an_incident_only_when_it_lasts() -> None:
    engine = Engine()
    ok = usage(limit(50))
    engine.poll(ok)
    minute = timedelta(minutes=1)
    for n in range(1, 15):
        assert engine.poll(failed(UpstreamServerError(503), at=T0 + n * minute, previous=ok)) == []
    [started] = engine.poll(
        failed(UpstreamServerError(503), at=T0 + minute + LASTING_FAILURE, previous=ok)
    )
    assert isinstance(started, IncidentStarted)
    assert "HTTP 503" in started.fix


def test_a_success_in_between_restarts_the_failure_clock() -> None:
    engine = Engine()
    error = UpstreamServerError(500)
    engine.poll(failed(error, at=T0))
    engine.poll(usage(limit(5), at=T0 + timedelta(minutes=10)))
    assert engine.poll(failed(error, at=T0 + timedelta(minutes=20))) == []
    assert engine.poll(failed(error, at=T0 + timedelta(minutes=30))) == []


def test_a_cached_failure_counts_from_when_it_was_checked() -> None:
    engine = Engine()
    error = UpstreamServerError(500)
    engine.poll(failed(error, at=T0))
    # The service hands out the same failed check while it backs off: not a new failure.
    assert engine.poll(failed(error, at=T0), now=T0 + timedelta(hours=1)) == []


def test_a_half_written_login_file_is_not_an_incident_at_once() -> None:
    engine = Engine()
    error = CredentialsMalformed("/claude/.credentials.json", "is not valid JSON")
    assert engine.poll(failed(error, at=T0)) == []


def test_stale_values_beside_an_error_are_not_judged_again() -> None:
    engine = Engine()
    previous = usage(limit(50))
    engine.poll(previous)
    stale = AccountUsage(
        "alice",
        UsageSnapshot((limit(99),), None, T0),
        UpstreamServerError(502),
        T0 + timedelta(minutes=1),
    )
    assert engine.poll(stale) == []


def test_no_snapshot_and_no_error_yet_changes_nothing() -> None:
    engine = Engine()
    result = assess(
        engine.ledger,
        AccountUsage("alice", None),
        now=T0,
        thresholds=THRESHOLDS,
        reset_announce="alerted",
    )
    assert result.events == ()
    assert result.ledger == engine.ledger


# -- windows as the upstream really behaves ----------------------------------------------

MINUTE = timedelta(minutes=1)


def resets(events: list[AlertEvent]) -> list[WindowReset]:
    return [e for e in events if isinstance(e, WindowReset)]


def test_an_end_that_jitters_across_a_minute_boundary_is_the_same_window() -> None:
    engine = Engine("always")
    early = datetime(2026, 7, 19, 3, 39, 59, 400000, tzinfo=UTC)
    late = datetime(2026, 7, 19, 3, 40, 0, 700000, tzinfo=UTC)
    [first] = engine.poll(usage(limit(85, early)))
    assert engine.poll(usage(limit(86, late))) == []
    assert engine.poll(usage(limit(87, early))) == []
    [second] = engine.poll(usage(limit(96, late)))
    assert first.key.rsplit(":", 1)[0] == second.key.rsplit(":", 1)[0]


def test_an_end_moved_ten_minutes_earlier_at_the_same_percent_keeps_the_window() -> None:
    engine = Engine()
    engine.poll(usage(limit(85)))
    moved = RESETS - timedelta(minutes=10)
    assert engine.poll(usage(limit(85, moved))) == []
    assert engine.poll(usage(limit(86, moved))) == []
    # The new end is followed: the window resets at it, on the clock.
    [reset] = engine.poll(failed(UpstreamServerError(503), at=T0), now=moved + 2 * MINUTE)
    assert isinstance(reset, WindowReset)
    assert reset.key == "reset:alice:five_hour:2026-07-19T03:40Z"


def test_an_end_moved_later_at_the_same_percent_keeps_the_window() -> None:
    engine = Engine()
    engine.poll(usage(limit(85)))
    later = RESETS + timedelta(hours=2)
    assert engine.poll(usage(limit(90, later))) == []
    error = UpstreamServerError(503)
    assert engine.poll(failed(error, at=T0), now=RESETS + 2 * MINUTE) == []
    [reset] = engine.poll(failed(error, at=T0), now=later + 2 * MINUTE)
    assert reset.key == "reset:alice:five_hour:2026-07-19T03:40Z"


def test_an_end_flapping_between_two_values_announces_one_reset_and_nothing_else() -> None:
    engine = Engine()
    engine.poll(usage(limit(85)))
    other = RESETS + timedelta(minutes=10)
    announced: list[AlertEvent] = []
    at = RESETS - timedelta(minutes=30)
    for n in range(60):
        end = other if n % 2 else RESETS
        announced += engine.poll(usage(limit(85, end), at=at), now=at)
        at += MINUTE
    keys = [e.key for e in announced]
    assert keys == ["reset:alice:five_hour:2026-07-19T03:40Z"]


def test_a_reading_whose_end_has_passed_raises_no_threshold_alert() -> None:
    engine = Engine()
    now = RESETS + timedelta(minutes=10)
    assert engine.poll(usage(limit(90), at=now), now=now) == []
    # The next window's first reading starts it without a reset announcement.
    assert engine.levels(usage(limit(90, NEXT_RESETS), at=now)) == [80.0]
    assert engine.poll(usage(limit(91, NEXT_RESETS), at=now)) == []


def test_a_past_end_in_one_reading_of_a_live_window_changes_nothing() -> None:
    engine = Engine()
    engine.poll(usage(limit(85)))
    glitch = T0 - timedelta(minutes=10)
    assert engine.poll(usage(limit(90, glitch))) == []
    assert engine.levels(usage(limit(96))) == [95.0]


def test_percent_falling_by_more_than_a_point_is_an_early_reset_said_as_such() -> None:
    engine = Engine()
    engine.poll(usage(limit(85)))
    [reset] = engine.poll(usage(limit(2)))
    assert isinstance(reset, WindowReset)
    assert "early" in reset.message().text
    # Same end as before: the new window is told apart from the old one in its keys.
    [threshold] = engine.poll(usage(limit(81)))
    assert threshold.key == "threshold:alice:five_hour:2026-07-19T03:40Z~1:80"


def test_an_inactive_window_is_no_window_and_the_first_end_starts_one_quietly() -> None:
    engine = Engine("always")
    assert engine.poll(usage(limit(0, None))) == []
    assert engine.poll(usage(limit(0, None))) == []
    assert engine.poll(usage(limit(3, RESETS))) == []
    assert engine.levels(usage(limit(82, RESETS))) == [80.0]


def test_a_window_that_ends_while_usage_cannot_be_read_is_announced_at_its_end() -> None:
    engine = Engine()
    ok = usage(limit(96))
    engine.poll(ok)
    error = UpstreamServerError(503)
    assert engine.poll(failed(error, at=T0, previous=ok), now=RESETS) == []
    events = engine.poll(failed(error, at=T0, previous=ok), now=RESETS + 2 * MINUTE)
    [reset] = resets(events)
    assert reset.message().resets_at is None
    assert "has not been read yet" in reset.message().text
    # The next window, once read, starts without a second announcement.
    assert resets(engine.poll(usage(limit(3, NEXT_RESETS), at=RESETS + timedelta(hours=1)))) == []


def test_a_reset_seen_with_the_next_window_says_it_is_fresh_and_when_it_ends() -> None:
    engine = Engine()
    engine.poll(usage(limit(96)))
    [reset] = engine.poll(usage(limit(3, NEXT_RESETS), at=RESETS + 2 * MINUTE))
    assert isinstance(reset, WindowReset)
    assert "fresh again" in reset.message().text
    assert reset.message().resets_at == NEXT_RESETS


def test_a_window_ended_too_soon_is_resumed_when_its_end_proves_later() -> None:
    engine = Engine()
    engine.poll(usage(limit(85)))
    soon = RESETS - timedelta(minutes=10)
    engine.poll(usage(limit(86, soon)))
    [premature] = engine.poll(usage(limit(86, soon), at=soon + 2 * MINUTE))
    assert isinstance(premature, WindowReset)
    at = soon + 3 * MINUTE
    # The end was RESETS after all: same window, same level, no second reset.
    assert engine.poll(usage(limit(88, RESETS), at=at), now=at) == []
    assert engine.levels(usage(limit(96, RESETS), at=at)) == [95.0]
    assert engine.poll(usage(limit(96, RESETS), at=at), now=RESETS + 2 * MINUTE) == []


# -- an expired login is a state of rest ------------------------------------------------


def test_an_expired_login_is_no_incident_for_a_day_and_then_one() -> None:
    engine = Engine()
    ok = usage(limit(50))
    engine.poll(ok)
    expired_at = T0 + timedelta(hours=1)
    error = CredentialsExpired(expired_at)
    for hours in (1, 6, 12, 23):
        at = T0 + timedelta(hours=hours)
        assert engine.poll(failed(error, at=at, previous=ok), now=at) == [], hours
    at = expired_at + timedelta(hours=24)
    [started] = engine.poll(failed(error, at=at, previous=ok), now=at)
    assert isinstance(started, IncidentStarted)
    assert started.error_code == "credentials_expired"
    [ended] = engine.poll(usage(limit(50, NEXT_RESETS), at=at), now=at)
    assert isinstance(ended, IncidentEnded)


def test_a_login_renewed_within_a_day_posts_nothing_at_all() -> None:
    engine = Engine()
    ok = usage(limit(50))
    engine.poll(ok)
    error = CredentialsExpired(T0)
    night = [T0 + timedelta(hours=h) for h in range(1, 12)]
    for at in night:
        assert engine.poll(failed(error, at=at, previous=ok), now=at) == []
    morning = T0 + timedelta(hours=12)
    assert engine.poll(usage(limit(10, NEXT_RESETS), at=morning), now=morning) == []


@pytest.mark.parametrize(("after", "opens"), [(timedelta(0), True), (None, False)])
def test_the_expired_login_alert_can_come_at_once_or_never(
    after: timedelta | None, opens: bool
) -> None:
    error = CredentialsExpired(T0)
    at = T0 + timedelta(days=30)
    result = assess(
        AccountLedger("alice"),
        failed(error, at=at),
        now=at,
        thresholds=THRESHOLDS,
        reset_announce="alerted",
        expired_login_alert_after=after,
    )
    assert any(isinstance(e, IncidentStarted) for e in result.events) is opens


def test_an_invalid_reading_is_not_assessed_and_later_crossings_still_are() -> None:
    engine = Engine()
    engine.poll(usage(limit(50)))
    bad = UnexpectedResponse("five_hour.utilization is not a finite number from 0 to 100")
    assert engine.poll(failed(bad, at=T0)) == []
    assert engine.levels(usage(limit(85))) == [80.0]
    assert engine.levels(usage(limit(96))) == [95.0]


# -- found by the soak --------------------------------------------------------------------


def test_a_failure_after_a_night_of_expired_login_starts_its_own_clock() -> None:
    engine = Engine()
    ok = usage(limit(50))
    engine.poll(ok)
    expired = CredentialsExpired(T0)
    for hours in range(1, 9):
        at = T0 + timedelta(hours=hours)
        engine.poll(failed(expired, at=at, previous=ok), now=at)
    morning = T0 + timedelta(hours=9)
    # Renewed; the first request meets an outage: not an incident yet, it has not lasted.
    assert engine.poll(failed(UpstreamServerError(503), at=morning, previous=ok)) == []
    later = morning + LASTING_FAILURE
    [started] = engine.poll(failed(UpstreamServerError(503), at=later, previous=ok), now=later)
    assert isinstance(started, IncidentStarted)


def test_a_window_id_repeats_none_of_the_recent_windows() -> None:
    """Early resets with jitter across a minute bring a first end back to a minute already
    used two windows ago: its alerts must not share that window's keys."""
    engine = Engine("always")
    a = datetime(2026, 7, 19, 8, 33, 29, 900000, tzinfo=UTC)
    b = datetime(2026, 7, 19, 8, 33, 30, 800000, tzinfo=UTC)
    c = datetime(2026, 7, 19, 8, 33, 29, 500000, tzinfo=UTC)
    keys: list[str] = []
    for percent, end in ((85, a), (2, b), (50, b), (1, c), (85, c)):
        keys += [e.key for e in engine.poll(usage(limit(percent, end)))]
    assert len(keys) == len(set(keys)) == 4, keys
    assert sum(k.startswith("threshold:") for k in keys) == 2


def test_a_reset_says_usage_cannot_be_read_only_when_it_cannot() -> None:
    engine = Engine()
    engine.poll(usage(limit(96)))
    after = RESETS + 2 * MINUTE
    # The upstream still shows the finished window: readable, just not the new one yet.
    [reset] = engine.poll(usage(limit(96), at=after), now=after)
    assert isinstance(reset, WindowReset)
    assert "has not been read yet." in reset.message().text
    assert "cannot be read" not in reset.message().text


def test_a_fall_in_the_minute_after_the_end_is_not_called_early() -> None:
    engine = Engine()
    engine.poll(usage(limit(96)))
    just_after = RESETS + timedelta(seconds=30)
    [reset] = engine.poll(usage(limit(2, NEXT_RESETS), at=just_after), now=just_after)
    assert isinstance(reset, WindowReset)
    assert "early" not in reset.message().text
    assert "fresh again" in reset.message().text


# -- the property -----------------------------------------------------------------------
#
# A ground-truth upstream for one limit: real windows with real ends, usage that only
# climbs within a window, Anthropic moving an end or resetting a window early, idle gaps
# with no window, and what the endpoint makes of it: jittering ends (across minute
# boundaries), an end flapping between two values, stale readings of a window already
# over, invalid readings and an expired login. The judge knows which real window each
# reading belongs to; the invariant is PRODUCT.md's: each (window, level) announced at most
# once, every real crossing announced, and each reset at most once.

BASE = datetime(2026, 7, 19, 0, 0, 0, tzinfo=UTC)
WINDOW = timedelta(hours=5)


@dataclass(frozen=True)
class Step:
    """One poll: ``gap`` minutes after the last, with what happened in between."""

    gap: int
    use: float
    kind: str  # plain, move, early, flap, stale, invalid, expired, jitter
    shift: int


KINDS = ("plain", "plain", "plain", "jitter", "move", "early", "flap", "stale", "invalid")
KINDS += ("expired",)
steps_strategy = st.lists(
    st.builds(
        Step,
        gap=st.sampled_from([1, 3, 3, 3, 10, 30, 90]),
        use=st.sampled_from([0.0, 0.0, 0.5, 2.0, 5.0, 12.0, 30.0]),
        kind=st.sampled_from(KINDS),
        shift=st.integers(-30, 30),
    ),
    max_size=80,
)


@settings(max_examples=300, deadline=None)
@given(
    steps=steps_strategy,
    thresholds=st.sampled_from([(80.0, 95.0), (50.0, 80.0, 95.0), (90.0,)]),
    mode=st.sampled_from(["alerted", "always", "never"]),
)
def test_each_window_and_level_is_announced_once_and_every_real_crossing_is(
    steps: list[Step], thresholds: tuple[float, ...], mode: ResetAnnounce
) -> None:
    ledger = AccountLedger("alice")
    now = BASE
    window = 0  # the real window's number; -1 while idle (no window)
    end: datetime | None = BASE + WINDOW
    pct = 0.0
    last_valid: float | None = None  # what the engine last read of this window
    crossed: dict[int, float] = {}  # real window -> highest level a timely reading showed
    levels: dict[int, list[float]] = defaultdict(list)
    keys: list[str] = []
    previous_end: datetime | None = None
    for n, step in enumerate(steps):
        now += timedelta(minutes=step.gap)
        if end is not None and now > end:
            # The window is over: idle until used again, then a new one from now.
            previous_end = end
            window, end, pct, last_valid = -1, None, 0.0, None
        if step.use and end is None:
            window, end, pct, last_valid = n + 1, now + WINDOW, 0.0, None
        early = step.kind == "early" and end is not None and last_valid is not None
        if early and last_valid is not None and last_valid > 6 and pct > 6:
            window, end, pct, last_valid = n + 1, now + WINDOW, 0.0, None
        if step.kind == "move" and end is not None:
            moved = end + timedelta(minutes=step.shift)
            if moved > now + 2 * MINUTE:
                end = moved
        if end is not None:
            pct = min(100.0, pct + step.use)
        observed: AccountUsage
        if step.kind in ("invalid", "expired"):
            error: UsageBotError = (
                UnexpectedResponse("bad")
                if step.kind == "invalid"
                else CredentialsExpired(now - MINUTE)
            )
            observed = AccountUsage("alice", None, error, now)
        else:
            shown_end, shown_pct = end, pct
            if step.kind == "jitter" and shown_end is not None:
                shown_end += timedelta(microseconds=step.shift * 30_000)
            if step.kind == "flap" and shown_end is not None and n % 2:
                shown_end -= timedelta(minutes=10)
            if step.kind == "stale" and end is None and previous_end is not None:
                shown_end, shown_pct = previous_end, 100.0  # the old window's last word
            snapshot = UsageSnapshot(
                (Limit("five_hour", "5-hour", shown_pct, shown_end, "normal"),), None, now
            )
            observed = AccountUsage("alice", snapshot, None, now)
            if end is not None and shown_end is not None and now - shown_end <= MINUTE:
                last_valid = pct
                level = highest_crossed(pct, thresholds)
                crossed[window] = max(crossed.get(window, 0.0), level)
        result = assess(ledger, observed, now=now, thresholds=thresholds, reset_announce=mode)
        ledger = result.ledger
        for event in result.events:
            keys.append(event.key)
            if isinstance(event, ThresholdCrossed):
                levels[window].append(event.level)
                assert event.level == highest_crossed(event.percent, thresholds)
    # At most once: no key twice, thresholds rising within each real window.
    announced = [k for k in keys if not k.startswith("incident:")]
    assert len(announced) == len(set(announced))
    for number, got in levels.items():
        assert number != -1
        assert got == sorted(set(got)), (number, got)
    # Every real crossing announced: the highest level each window reached, in time.
    for number, level in crossed.items():
        if level:
            assert levels[number], (number, level)
            assert levels[number][-1] == level, (number, level, levels)


def test_the_ledger_is_a_plain_value() -> None:
    engine = Engine()
    engine.poll(usage(limit(85)))
    copy = replace(engine.ledger, windows=dict(engine.ledger.windows))
    assert copy == engine.ledger
