"""The alert engine: thresholds, windows, resets and incidents, as pure functions."""

from __future__ import annotations

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
    UpstreamServerError,
    UsageBotError,
)
from usage_bot._model import Limit, UsageSnapshot, parse_usage
from usage_bot._service import AccountUsage

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


def test_usage_that_falls_and_rises_again_in_a_window_announces_nothing_new() -> None:
    engine = Engine()
    engine.poll(usage(limit(85)))
    assert engine.levels(usage(limit(60))) == []
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
    assert message.advice in message.text
    assert message.resets_at == RESETS
    assert message.percent == 96.4
    assert message.threshold == 95


def test_a_lower_threshold_is_a_warning_and_a_used_up_limit_says_so() -> None:
    [warning] = Engine().poll(usage(limit(81)))
    [used_up] = Engine().poll(usage(limit(100)))
    assert warning.message().severity == "warning"
    assert "used up" in used_up.message().text


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


def test_a_reset_time_that_moves_backwards_is_a_new_window_without_an_announcement() -> None:
    engine = Engine("always")
    engine.poll(usage(limit(96, NEXT_RESETS)))
    assert engine.levels(usage(limit(96, RESETS))) == [95.0]


# -- incidents --------------------------------------------------------------------------


def test_expired_credentials_open_an_incident_at_once_and_a_success_closes_it() -> None:
    engine = Engine()
    error = CredentialsExpired(T0 - timedelta(hours=1))
    [started] = engine.poll(failed(error, at=T0))
    assert isinstance(started, IncidentStarted)
    assert started.key == "incident:alice:1:started"
    message = started.message()
    assert message.kind == "incident_started"
    assert "alice" in message.text
    assert error.message in message.text
    assert message.advice == error.message
    assert engine.poll(failed(error, at=T0 + timedelta(minutes=3))) == []
    assert engine.poll(failed(CredentialsRejected(), at=T0 + timedelta(minutes=6))) == []
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


# -- the property -----------------------------------------------------------------------

BASE = datetime(2026, 7, 19, 0, 0, 59, 500000, tzinfo=UTC)
WINDOW = timedelta(hours=5)
LIMITS = ("five_hour", "seven_day_fable")


@dataclass(frozen=True)
class Poll:
    """A successful poll: whether each limit's window moved on, and its percent."""

    moves: tuple[bool, bool]
    percents: tuple[float, float]
    jitter_us: int


@dataclass(frozen=True)
class Fail:
    """A failed poll: expired credentials, or an upstream 500."""

    expired: bool


percent = st.floats(0, 100, allow_nan=False)
polls = st.builds(
    Poll,
    moves=st.tuples(st.booleans(), st.booleans()),
    percents=st.tuples(percent, percent),
    jitter_us=st.integers(0, 400_000),
)
fails = st.builds(Fail, expired=st.booleans())


@settings(max_examples=200, deadline=None)
@given(
    steps=st.lists(st.one_of(polls, polls, fails), max_size=40),
    thresholds=st.sampled_from([(80.0, 95.0), (50.0, 80.0, 95.0), (90.0,)]),
    mode=st.sampled_from(["alerted", "always", "never"]),
)
def test_every_rise_of_the_highest_crossed_level_is_announced_once_and_nothing_else(
    steps: list[Poll | Fail],
    thresholds: tuple[float, ...],
    mode: ResetAnnounce,
) -> None:
    """Against a model, step by step: per (limit, window) each rise of the running maximum
    of the highest crossed threshold is one announcement; each window change after an
    alert (any, in ``always`` mode) one reset; expired credentials open an incident at
    once, a 500 once failures have lasted 15 minutes, and a success closes it."""
    ledger = AccountLedger("alice")
    window = dict.fromkeys(LIMITS, 0)
    seen: dict[str, int] = {}
    top: dict[tuple[str, int], float] = {}
    incident_open = False
    failing_since: datetime | None = None
    last: AccountUsage | None = None
    announced: list[tuple[object, ...]] = []
    for n, step in enumerate(steps):
        now = BASE + timedelta(minutes=n)
        expected: list[tuple[object, ...]] = []
        if isinstance(step, Poll):
            if incident_open:
                expected.append(("ended",))
                incident_open = False
            failing_since = None
            limits = []
            for limit_id, moved, pct in zip(LIMITS, step.moves, step.percents, strict=True):
                window[limit_id] += int(moved)
                w = window[limit_id]
                resets = BASE + (w + 1) * WINDOW + timedelta(microseconds=step.jitter_us)
                limits.append(Limit(limit_id, limit_id, pct, resets, "normal"))
                if limit_id in seen and seen[limit_id] != w:
                    old = seen[limit_id]
                    if mode == "always" or (mode == "alerted" and top.get((limit_id, old))):
                        expected.append(("reset", limit_id, old))
                seen[limit_id] = w
                level = highest_crossed(pct, thresholds)
                if level > top.get((limit_id, w), 0):
                    top[limit_id, w] = level
                    expected.append(("threshold", limit_id, w, level))
            last = usage(*limits, at=now)
            observed = last
        else:
            failing_since = failing_since or now
            error: UsageBotError = (
                CredentialsExpired(now) if step.expired else UpstreamServerError(500)
            )
            if not incident_open and (step.expired or now - failing_since >= LASTING_FAILURE):
                expected.append(("started",))
                incident_open = True
            observed = failed(error, at=now, previous=last)
        result = assess(ledger, observed, now=now, thresholds=thresholds, reset_announce=mode)
        ledger = result.ledger
        assert [_describe(e) for e in result.events] == expected
        announced.extend(expected)
    once = [a for a in announced if a[0] in ("threshold", "reset")]
    assert len(once) == len(set(once))


def _describe(event: AlertEvent) -> tuple[object, ...]:
    if isinstance(event, ThresholdCrossed):
        return ("threshold", event.limit_id, _window_number(event.window), event.level)
    if isinstance(event, WindowReset):
        return ("reset", event.limit_id, _window_number(event.window))
    if isinstance(event, IncidentStarted):
        return ("started",)
    return ("ended",)


def _window_number(window: datetime | None) -> int:
    assert window is not None
    return round((window - BASE) / WINDOW) - 1


def test_the_ledger_is_a_plain_value() -> None:
    engine = Engine()
    engine.poll(usage(limit(85)))
    copy = replace(engine.ledger, windows=dict(engine.ledger.windows))
    assert copy == engine.ledger
