"""The alert scheduler end to end: a fake upstream (httpx.MockTransport), the real usage
service, the real SQLite store, and destinations that fail on demand. Time is a FakeClock;
the tests drive polls and deliveries directly, except where APScheduler itself is tested.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import tempfile
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from usage_bot._alerts import highest_crossed, window_id
from usage_bot._client import UsageClient
from usage_bot._clock import FakeClock
from usage_bot._config import AccountSpec, AlertConfig, Settings, UpstreamConfig
from usage_bot._credentials import CredentialLoader
from usage_bot._delivery import LEASE, NOT_RETRYABLE_PAUSE, Courier
from usage_bot._exceptions import DeliveryError, StoreClosed
from usage_bot._metrics import Metrics
from usage_bot._notify import AlertMessage
from usage_bot._scheduler import AlertScheduler
from usage_bot._service import UsageService
from usage_bot.frontends.console import ConsoleNotifier
from usage_bot.state.sqlite import SQLiteStore

T0 = datetime(2026, 7, 19, 0, 0, tzinfo=UTC)
RESETS = datetime(2026, 7, 19, 3, 39, 59, 570750, tzinfo=UTC)
NEXT_RESETS = RESETS + timedelta(hours=5)
SLACK = "slack:C0123456789"


class Upstream:
    """The usage endpoint: a 5-hour window whose ``resets_at`` jitters like the real one."""

    def __init__(self) -> None:
        self.percent = 0.0
        self.resets_at = RESETS
        self.requests = 0

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.requests += 1
        assert request.headers["authorization"] == "Bearer sk-ant-oat01-test"
        # The same window, a different fraction of a second on every answer.
        jittered = self.resets_at + timedelta(microseconds=(self.requests * 341_597) % 400_000)
        return httpx.Response(
            200,
            json={
                "five_hour": {"utilization": self.percent, "resets_at": jittered.isoformat()},
                "seven_day": {"utilization": 10.0, "resets_at": "2026-07-24T00:00:00Z"},
            },
        )


class Destination:
    """An alert destination that records what arrives and fails when told to."""

    def __init__(self, name: str = SLACK, posted: list[AlertMessage] | None = None) -> None:
        self.name = name
        self.posted: list[AlertMessage] = [] if posted is None else posted
        self.failures: list[Exception] = []
        self.always: Exception | None = None
        self.attempts = 0
        self.arrived = asyncio.Event()

    async def post(self, message: AlertMessage) -> None:
        self.attempts += 1
        if self.always is not None:
            raise self.always
        if self.failures:
            raise self.failures.pop(0)
        self.posted.append(message)
        self.arrived.set()

    @property
    def keys(self) -> list[str]:
        return [m.key for m in self.posted]


def write_credentials(directory: Path, *, expires_at: datetime) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    login = {
        "claudeAiOauth": {
            "accessToken": "sk-ant-oat01-test",
            "refreshToken": "sk-ant-ort01-test",
            "expiresAt": int(expires_at.timestamp() * 1000),
            "scopes": ["user:inference", "user:profile"],
            "subscriptionType": "max",
        }
    }
    (directory / ".credentials.json").write_text(json.dumps(login), encoding="utf-8")


@dataclass
class Bot:
    """One process's worth of the bot: service, store and scheduler on a shared state file."""

    scheduler: AlertScheduler
    service: UsageService
    client: UsageClient
    store: SQLiteStore
    metrics: Metrics
    destinations: list[Destination | ConsoleNotifier] = field(default_factory=list)

    async def step(self, clock: FakeClock, seconds: float = 60) -> None:
        """Time passes, then one scheduled poll runs, then deliveries."""
        clock.advance(seconds)
        await self.scheduler.poll_once("alice")
        await self.scheduler.deliver_pending()

    async def close(self) -> None:
        await self.scheduler.stop()
        await self.store.close()
        await self.service.aclose()
        await self.client.aclose()


async def start_bot(
    home: Path,
    clock: FakeClock,
    upstream: Upstream,
    *destinations: Destination | ConsoleNotifier,
    stop_grace: float = 1.0,
    reset_announce: str = "alerted",
) -> Bot:
    config = Settings(
        upstream=UpstreamConfig(accounts=(AccountSpec("alice", home / "alice"),), poll_seconds=1),
        alerts=AlertConfig(
            thresholds=(80.0, 95.0),
            reset_announce="always" if reset_announce == "always" else "alerted",
        ),
        state=str(home / "usage-bot.sqlite3"),
    )
    client = UsageClient(
        base_url="https://api.anthropic.test",
        user_agent="claude-code/2.1.0",
        transport=httpx.MockTransport(upstream.handler),
    )
    metrics = Metrics()
    for destination in destinations:
        metrics.destination(destination.name)
    service = UsageService(
        loaders=[CredentialLoader(spec, config.upstream) for spec in config.upstream.accounts],
        client=client,
        clock=clock,
        min_interval=config.upstream.min_fetch_interval,
        thresholds=config.alerts.thresholds,
        observer=metrics,
    )
    store = await SQLiteStore.open(config.state)
    courier = Courier(
        queue=store,
        clock=clock,
        owner=f"test-{uuid.uuid4().hex[:6]}",
        notifiers=destinations,
        observer=metrics,
        stop_grace=stop_grace,
    )
    scheduler = AlertScheduler(
        settings=config, service=service, store=store, courier=courier, clock=clock
    )
    return Bot(scheduler, service, client, store, metrics, list(destinations))


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture
def home(tmp_path: Path, clock: FakeClock) -> Path:
    write_credentials(tmp_path / "alice", expires_at=T0 + timedelta(days=30))
    return tmp_path


@pytest.fixture
def upstream() -> Upstream:
    return Upstream()


@pytest.fixture
def slack() -> Destination:
    return Destination()


def summary(messages: list[AlertMessage]) -> list[tuple[str, float | None]]:
    return [(m.kind, m.threshold) for m in messages]


CLIMB = [("threshold", 80.0), ("threshold", 95.0), ("reset", None)]


# -- the product's promise --------------------------------------------------------------


async def test_a_climb_and_a_reset_post_80_95_and_reset_once_each_despite_a_429(
    home: Path, clock: FakeClock, upstream: Upstream, slack: Destination
) -> None:
    slack.failures.append(
        DeliveryError("Slack is rate-limiting the bot", retryable=True, retry_after=2)
    )
    console_out = io.StringIO()
    bot = await start_bot(home, clock, upstream, slack, ConsoleNotifier(console_out))
    try:
        upstream.percent = 50
        await bot.step(clock)
        upstream.percent = 85
        await bot.step(clock)
        assert slack.posted == []
        # The console is not held up by Slack's trouble.
        assert console_out.getvalue().count("\n") == 1
        upstream.percent = 96
        await bot.step(clock)
        clock.advance((RESETS - clock.now()).total_seconds())
        upstream.percent, upstream.resets_at = 2, NEXT_RESETS
        await bot.step(clock)
        for _ in range(5):
            await bot.step(clock)
        assert summary(slack.posted) == CLIMB
        assert slack.keys == [
            "threshold:alice:five_hour:2026-07-19T03:40Z:80",
            "threshold:alice:five_hour:2026-07-19T03:40Z:95",
            "reset:alice:five_hour:2026-07-19T03:40Z",
        ]
        assert bot.metrics.posted == {SLACK: 3, "console": 3}
        assert bot.metrics.failed == {SLACK: 1, "console": 0}
        lines = console_out.getvalue().splitlines()
        assert len(lines) == 3
        assert "alice: 5-hour limit at 85 %" in lines[0]
        assert "fresh again" in lines[2]
        history = await bot.store.history("alice")
        assert [s.percent for s in history if s.limit_id == "five_hour"] == [
            50,
            85,
            96,
            2,
            2,
            2,
            2,
            2,
            2,
        ]
    finally:
        await bot.close()


async def test_a_restart_in_the_middle_of_a_window_posts_nothing_again(
    home: Path, clock: FakeClock, upstream: Upstream, slack: Destination
) -> None:
    upstream.percent = 85
    first = await start_bot(home, clock, upstream, slack)
    await first.step(clock)
    await first.close()
    second = await start_bot(home, clock, upstream, slack)
    try:
        await second.step(clock)
        upstream.percent = 96
        await second.step(clock)
        await second.step(clock)
    finally:
        await second.close()
    third = await start_bot(home, clock, upstream, slack)
    try:
        await third.step(clock)
    finally:
        await third.close()
    assert summary(slack.posted) == CLIMB[:2]


async def test_a_post_that_failed_before_a_restart_is_posted_after_it(
    home: Path, clock: FakeClock, upstream: Upstream, slack: Destination
) -> None:
    slack.failures.append(DeliveryError("Slack answered 500", retryable=True))
    upstream.percent = 85
    first = await start_bot(home, clock, upstream, slack)
    await first.step(clock)
    await first.close()
    assert slack.posted == []
    second = await start_bot(home, clock, upstream, slack)
    try:
        await second.step(clock)
    finally:
        await second.close()
    assert summary(slack.posted) == CLIMB[:1]


async def test_two_processes_sharing_one_state_file_post_each_alert_once(
    home: Path, clock: FakeClock, upstream: Upstream
) -> None:
    arrived: list[AlertMessage] = []
    one = await start_bot(home, clock, upstream, Destination(posted=arrived))
    two = await start_bot(home, clock, upstream, Destination(posted=arrived))
    try:
        for percent, resets in [(50, RESETS), (85, RESETS), (96, RESETS), (3, NEXT_RESETS)]:
            upstream.percent, upstream.resets_at = percent, resets
            clock.advance(60)
            await asyncio.gather(one.scheduler.poll_once("alice"), two.scheduler.poll_once("alice"))
            await asyncio.gather(one.scheduler.deliver_pending(), two.scheduler.deliver_pending())
    finally:
        await one.close()
        await two.close()
    assert summary(arrived) == CLIMB


async def test_a_login_expired_for_a_day_gives_one_alert_with_the_fix_and_one_when_fixed(
    home: Path, clock: FakeClock, upstream: Upstream, slack: Destination
) -> None:
    upstream.percent = 20
    bot = await start_bot(home, clock, upstream, slack)
    try:
        await bot.step(clock)
        write_credentials(home / "alice", expires_at=clock.now() - timedelta(minutes=1))
        for _ in range(5):
            await bot.step(clock)
        assert slack.posted == []  # a night without Claude Code is not an incident
        clock.advance(24 * 3600)
        for _ in range(5):
            await bot.step(clock)
        write_credentials(home / "alice", expires_at=clock.now() + timedelta(hours=8))
        for _ in range(3):
            await bot.step(clock)
    finally:
        await bot.close()
    assert [m.kind for m in slack.posted] == ["incident_started", "incident_ended"]
    started = slack.posted[0]
    assert "alice" in started.text
    assert "expired" in (started.advice or "")
    assert "log in again" in (started.advice or "")
    assert "sk-ant" not in started.text + (started.advice or "")


# -- delivery ---------------------------------------------------------------------------


async def test_a_destination_that_cannot_work_is_reported_once_and_tried_hourly(
    home: Path,
    clock: FakeClock,
    upstream: Upstream,
    slack: Destination,
    caplog: pytest.LogCaptureFixture,
) -> None:
    slack.always = DeliveryError(
        "Slack says channel_not_found: invite the bot to the alert channel", retryable=False
    )
    console_out = io.StringIO()
    upstream.percent = 85
    bot = await start_bot(home, clock, upstream, slack, ConsoleNotifier(console_out))
    try:
        with caplog.at_level(logging.WARNING, logger="usage_bot"):
            for _ in range(10):
                await bot.step(clock)
        assert slack.attempts == 1
        reports = [r for r in caplog.records if "channel_not_found" in r.getMessage()]
        assert len(reports) == 1
        assert reports[0].levelno == logging.ERROR
        assert console_out.getvalue().count("\n") == 1
        slack.always = None
        await bot.step(clock, NOT_RETRYABLE_PAUSE)
        assert summary(slack.posted) == CLIMB[:1]
    finally:
        await bot.close()


async def test_an_alert_whose_window_ended_is_dropped_with_a_log_line(
    home: Path,
    clock: FakeClock,
    upstream: Upstream,
    slack: Destination,
    caplog: pytest.LogCaptureFixture,
) -> None:
    slack.always = DeliveryError("Slack answered 503", retryable=True)
    upstream.percent = 85
    bot = await start_bot(home, clock, upstream, slack)
    try:
        await bot.step(clock)
        clock.advance((RESETS - clock.now()).total_seconds() + 1)
        with caplog.at_level(logging.WARNING, logger="usage_bot"):
            await bot.scheduler.deliver_pending()
        assert any("gave up posting threshold:alice" in r.getMessage() for r in caplog.records)
        assert bot.metrics.dropped[SLACK] == 1
        slack.always = None
        upstream.percent, upstream.resets_at = 1, NEXT_RESETS
        await bot.step(clock)
        assert summary(slack.posted) == CLIMB[2:]
    finally:
        await bot.close()


async def test_an_unexpected_error_is_retried_without_logging_its_text(
    home: Path,
    clock: FakeClock,
    upstream: Upstream,
    slack: Destination,
    caplog: pytest.LogCaptureFixture,
) -> None:
    slack.failures.append(RuntimeError("POST https://hooks.slack.com/services/T0/B0/secret"))
    upstream.percent = 85
    bot = await start_bot(home, clock, upstream, slack)
    try:
        with caplog.at_level(logging.DEBUG):
            await bot.step(clock)
            await bot.step(clock)
        assert summary(slack.posted) == CLIMB[:1]
        assert "hooks.slack.com" not in caplog.text
        assert "RuntimeError" in caplog.text
    finally:
        await bot.close()


async def test_retries_back_off_and_honour_retry_after(
    home: Path, clock: FakeClock, upstream: Upstream, slack: Destination
) -> None:
    slack.failures.extend(
        [
            DeliveryError("429", retryable=True, retry_after=30),
            DeliveryError("500", retryable=True),
            DeliveryError("500", retryable=True),
        ]
    )
    upstream.percent = 85
    bot = await start_bot(home, clock, upstream, slack)
    try:
        await bot.step(clock)
        assert slack.attempts == 1
        clock.advance(29)
        await bot.scheduler.deliver_pending()
        assert slack.attempts == 1
        clock.advance(1)
        await bot.scheduler.deliver_pending()  # the second failure: next try in 10 s
        assert slack.attempts == 2
        for wait, attempts in [(9, 2), (1, 3), (19, 3), (1, 4)]:
            clock.advance(wait)
            await bot.scheduler.deliver_pending()
            assert slack.attempts == attempts
        assert summary(slack.posted) == CLIMB[:1]
    finally:
        await bot.close()


async def test_two_destinations_with_one_name_are_refused(
    home: Path, clock: FakeClock, upstream: Upstream
) -> None:
    bot = await start_bot(home, clock, upstream, Destination())
    try:
        with pytest.raises(ValueError, match="both named"):
            bot.scheduler.courier.add(Destination())
    finally:
        await bot.close()


# -- APScheduler, for real --------------------------------------------------------------


async def test_start_polls_at_once_and_stop_is_prompt_and_closes_the_store(
    home: Path, clock: FakeClock, upstream: Upstream, slack: Destination
) -> None:
    upstream.percent = 85
    bot = await start_bot(home, clock, upstream, slack)
    await bot.scheduler.start()
    try:
        assert bot.scheduler.healthy()
        await asyncio.wait_for(slack.arrived.wait(), timeout=5)
        assert summary(slack.posted) == CLIMB[:1]
    finally:
        loop = asyncio.get_running_loop()
        started = loop.time()
        await bot.close()
        assert loop.time() - started < 1
    assert not bot.scheduler.healthy()
    assert sum(n for (account, _), n in bot.metrics.reads.items() if account == "alice") >= 1
    with pytest.raises(StoreClosed):
        await bot.store.get_value("anything")


class SlowDestination(Destination):
    def __init__(self) -> None:
        super().__init__()
        self.entered = asyncio.Event()
        self.release = asyncio.Event()

    async def post(self, message: AlertMessage) -> None:
        self.entered.set()
        await self.release.wait()
        await super().post(message)


async def test_stop_lets_a_post_under_way_finish(
    home: Path, clock: FakeClock, upstream: Upstream
) -> None:
    slow = SlowDestination()
    upstream.percent = 85
    bot = await start_bot(home, clock, upstream, slow)
    await bot.scheduler.start()
    await asyncio.wait_for(slow.entered.wait(), timeout=5)
    stopping = asyncio.create_task(bot.close())
    await asyncio.sleep(0.01)
    slow.release.set()
    await asyncio.wait_for(stopping, timeout=5)
    assert summary(slow.posted) == CLIMB[:1]
    store = await SQLiteStore.open(home / "usage-bot.sqlite3")
    assert await store.pending() == []
    await store.close()


async def test_a_post_that_outlasts_stop_is_left_for_a_retry(
    home: Path, clock: FakeClock, upstream: Upstream
) -> None:
    stuck = SlowDestination()
    upstream.percent = 85
    bot = await start_bot(home, clock, upstream, stuck, stop_grace=0.05)
    await bot.scheduler.start()
    await asyncio.wait_for(stuck.entered.wait(), timeout=5)
    await asyncio.wait_for(bot.close(), timeout=2)
    assert stuck.posted == []
    again = Destination()
    later = await start_bot(home, clock, upstream, again)
    try:
        await later.step(clock)
        assert again.posted == []  # still leased to the process that stopped
        await later.step(clock, LEASE.total_seconds())
        assert summary(again.posted) == CLIMB[:1]
    finally:
        await later.close()


# -- the property, end to end -----------------------------------------------------------


@dataclass(frozen=True)
class Usage:
    percent: float
    new_window: bool


@dataclass(frozen=True)
class Failing:
    destination: int
    retry_after: float | None
    retryable: bool


@dataclass(frozen=True)
class Restart:
    pass


actions = st.lists(
    st.one_of(
        st.builds(Usage, percent=st.floats(0, 100, allow_nan=False), new_window=st.booleans()),
        st.builds(
            Failing,
            destination=st.integers(0, 1),
            retry_after=st.none() | st.floats(0, 120),
            retryable=st.booleans(),
        ),
        st.just(Restart()),
    ),
    max_size=14,
)


@settings(max_examples=25, deadline=None)
@given(actions=actions)
def test_every_alert_reaches_every_destination_exactly_once(
    actions: list[Usage | Failing | Restart],
) -> None:
    """For any usage, restarts and failed posts: each destination receives, in order,
    each rise of the highest crossed level of each window and each reset after one,
    once; nothing else."""
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(_scenario(Path(tmp), actions))


async def _scenario(home: Path, actions: list[Usage | Failing | Restart]) -> None:
    clock = FakeClock(T0)
    write_credentials(home / "alice", expires_at=T0 + timedelta(days=365))
    upstream = Upstream()
    # Week-long windows: retries never outlast one, so nothing is dropped.
    upstream.resets_at = T0 + timedelta(days=7)
    destinations = [Destination("a"), Destination("b")]
    expected: list[str] = []
    levels: dict[str, float] = {}
    window: str | None = None  # the current window's id in keys
    last_percent: float | None = None
    bot = await start_bot(home, clock, upstream, *destinations)
    try:
        for action in actions:
            if isinstance(action, Restart):
                await bot.close()
                bot = await start_bot(home, clock, upstream, *destinations)
                continue
            if isinstance(action, Failing):
                destinations[action.destination].failures.append(
                    DeliveryError(
                        "failed", retryable=action.retryable, retry_after=action.retry_after
                    )
                )
                continue
            if action.new_window:
                upstream.resets_at += timedelta(days=7)
            upstream.percent = action.percent
            # PRODUCT.md, "Windows": a new window when the percent falls by more than a
            # point; a moved end at a percent that did not fall is the same window.
            fell = last_percent is not None and action.percent < last_percent - 1
            if window is None or fell:
                if window is not None and levels.get(window):
                    expected.append(f"reset:alice:five_hour:{window}")
                base = window_id(upstream.resets_at)
                if window is not None and window.split("~")[0] == base:
                    serial = int(window.partition("~")[2] or 0) + 1
                    window = f"{base}~{serial}"
                else:
                    window = base
            last_percent = action.percent
            level = highest_crossed(action.percent, (80.0, 95.0))
            if level > levels.get(window, 0):
                levels[window] = level
                expected.append(f"threshold:alice:five_hour:{window}:{level:g}")
            await bot.step(clock)
        for _ in range(200):
            if not await bot.store.pending():
                break
            await bot.step(clock, NOT_RETRYABLE_PAUSE / 4)
    finally:
        await bot.close()
    for destination in destinations:
        assert destination.keys == expected


# -- the console ------------------------------------------------------------------------


async def test_the_console_prints_one_line_with_the_reset_in_local_time() -> None:
    out = io.StringIO()
    message = AlertMessage(
        kind="threshold",
        key="threshold:alice:five_hour:2026-07-19T03:40Z:95",
        account="alice",
        title="alice: 5-hour limit at 96 %",
        text="Account alice has used 96 % of its 5-hour limit.",
        severity="critical",
        resets_at=RESETS,
    )
    await ConsoleNotifier(out).post(message)
    line = out.getvalue()
    local = RESETS.astimezone()
    assert line.count("\n") == 1
    assert line.startswith("!! alice: 5-hour limit at 96 % - Account alice has used 96 %")
    # 03:39:59.57 is shown as the minute it means, in this machine's zone.
    assert f"Resets {(local + timedelta(seconds=1)).strftime('%a %d %b %H:%M')}" in line


async def test_a_closed_console_is_a_delivery_error_not_worth_retrying() -> None:
    out = io.StringIO()
    out.close()
    message = AlertMessage(kind="reset", key="k", account="alice", title="t", text="x")
    with pytest.raises(DeliveryError) as caught:
        await ConsoleNotifier(out).post(message)
    assert not caught.value.retryable
