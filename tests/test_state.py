"""The state store: one suite of behaviour for every back end, then what only SQLite has.

Every test before "SQLite only" runs once per back end of ``tests/state_backends.py``
(the ``store`` and ``backend`` fixtures): what the scheduler and the front ends may rely
on, whichever back end ``USAGE_BOT_STATE`` picks. The queue's properties under any
interleaving of posters are in ``tests/test_state_queue.py``.
"""

from __future__ import annotations

import asyncio
import logging
import re
import sqlite3
import stat
import sys
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import usage_bot
from tests.state_backends import BackEnd, params
from usage_bot._alerts import (
    AccountLedger,
    Assessment,
    IncidentRecord,
    IncidentStarted,
    ThresholdCrossed,
    WindowRecord,
)
from usage_bot._config import Settings
from usage_bot._exceptions import ConfigError, StateUnavailable, StoreClosed
from usage_bot._model import Limit, UsageSnapshot
from usage_bot.state import HISTORY_KEEP, Delivery, StateStore, open_store
from usage_bot.state.memory import MemoryStore
from usage_bot.state.sqlite import _MIGRATIONS as MIGRATIONS
from usage_bot.state.sqlite import SCHEMA_VERSION, SQLiteStore

NOW = datetime(2026, 7, 19, 1, 0, tzinfo=UTC)
RESETS = datetime(2026, 7, 19, 3, 39, 59, 570750, tzinfo=UTC)
LEASE = timedelta(seconds=120)
DESTINATIONS = ("slack:C0123456789", "console")


@pytest.fixture(params=params())
def backend(request: pytest.FixtureRequest) -> BackEnd:
    back_end: BackEnd = request.param
    return back_end


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """Where a back end keeps its state for one test."""
    return tmp_path / "state"


@pytest.fixture
async def store(backend: BackEnd, folder: Path) -> AsyncIterator[StateStore]:
    opened = await backend.open(folder)
    yield opened
    await opened.close()


def crossed(level: float, *, limit_id: str = "five_hour", at: datetime = NOW) -> ThresholdCrossed:
    return ThresholdCrossed(
        account="alice",
        limit_id=limit_id,
        label="5-hour",
        level=level,
        percent=level + 1,
        window=RESETS,
        resets_at=RESETS,
        severity="warning",
        at=at,
    )


async def announce(
    store: StateStore,
    *events: ThresholdCrossed | IncidentStarted,
    destinations: tuple[str, ...] = DESTINATIONS,
    now: datetime = NOW,
    ledger: AccountLedger | None = None,
) -> Assessment:
    def step(current: AccountLedger) -> Assessment:
        return Assessment(ledger or current, tuple(events))

    return await store.update_ledger("alice", step, destinations=destinations, now=now)


async def claim(
    store: StateStore, destination: str = "console", *, now: datetime = NOW, owner: str = "one"
) -> Delivery | None:
    return await store.claim_next(destination, owner=owner, now=now, lease=LEASE)


def window(level: float = 80) -> WindowRecord:
    return WindowRecord(window=RESETS, resets_at=RESETS, level=level, percent=level + 1)


# -- opening ----------------------------------------------------------------------------


async def test_open_store_takes_a_path_as_a_sqlite_file(tmp_path: Path) -> None:
    db = tmp_path / "usage-bot.sqlite3"
    store = await open_store(Settings(state=str(db)))
    await store.close()
    assert isinstance(store, SQLiteStore)
    assert store.path == str(db)


async def test_open_store_takes_a_sqlite_url(tmp_path: Path) -> None:
    db = tmp_path / "usage-bot.sqlite3"
    # As SQLAlchemy writes them: three slashes, then the path (here an absolute one).
    store = await open_store(Settings(state=f"sqlite:///{db}"))
    await store.close()
    assert isinstance(store, SQLiteStore)
    assert store.path == str(db)


async def test_open_store_keeps_memory_in_memory_and_warns(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = await open_store(Settings(state=":memory:"))
    await store.close()
    assert isinstance(store, MemoryStore)
    [warning] = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert "USAGE_BOT_STATE=:memory:" in warning.getMessage()
    assert "may be posted again" in warning.getMessage()


async def test_open_store_says_postgresql_is_not_here_yet_without_the_password() -> None:
    with pytest.raises(ConfigError) as caught:
        await open_store(Settings(state="postgresql://bot:hunter2@db.internal:5432/usage"))
    [problem] = caught.value.problems
    assert problem.startswith("USAGE_BOT_STATE=postgresql://bot:***@db.internal:5432/usage")
    assert "hunter2" not in caught.value.message
    assert "SQLite" in problem


@pytest.mark.parametrize("location", ["mysql://db/usage", "redis://cache:6379", "s3://bucket/x"])
async def test_open_store_refuses_an_unknown_kind_naming_the_setting(location: str) -> None:
    with pytest.raises(ConfigError) as caught:
        await open_store(Settings(state=location))
    [problem] = caught.value.problems
    assert problem.startswith(f"USAGE_BOT_STATE={location}: unknown kind of database")
    assert "file path" in problem


async def test_a_closed_store_says_so_and_closing_twice_is_fine(store: StateStore) -> None:
    await store.close()
    await store.close()
    with pytest.raises(StoreClosed):
        await store.get_value("x")
    with pytest.raises(StateUnavailable):  # what callers catch: StoreClosed is one
        await claim(store)


async def test_a_durable_back_end_keeps_everything_over_a_reopening(
    backend: BackEnd, folder: Path
) -> None:
    if not backend.durable:
        pytest.skip(f"{backend.name} keeps nothing past its process")
    first = await backend.open(folder)
    await announce(first, crossed(80), ledger=AccountLedger("alice", {"five_hour": window()}))
    await first.set_value("discord.command_hash", "abc")
    await first.record_usage("alice", snapshot(10, NOW))
    await first.close()
    second = await backend.open(folder)
    try:
        assert await second.get_value("discord.command_hash") == "abc"
        assert (await second.load_ledger("alice")).windows == {"five_hour": window()}
        assert len(await second.pending()) == 2
        assert len(await second.history()) == 2
    finally:
        await second.close()


# -- the ledger -------------------------------------------------------------------------


async def test_a_fresh_account_has_an_empty_ledger(store: StateStore) -> None:
    assert await store.load_ledger("alice") == AccountLedger("alice")


moments = st.datetimes(
    min_value=datetime(2000, 1, 1),
    max_value=datetime(2100, 1, 1),
    timezones=st.sampled_from([UTC, timezone(timedelta(hours=-7)), timezone(timedelta(hours=9))]),
)
records = st.builds(
    WindowRecord,
    window=st.none() | moments,
    resets_at=st.none() | moments,
    level=st.sampled_from([0.0, 50.0, 80.0, 95.0, 97.5]),
    percent=st.none() | st.floats(0, 100),
    phase=st.sampled_from(["active", "ended", "idle"]),
    serial=st.integers(0, 5),
    reset_announced=st.booleans(),
    recent=st.lists(st.from_regex(r"\A\d{4}-\d\d-\d\dT\d\d:\d\dZ(~\d)?\Z"), max_size=3).map(tuple),
)
ledgers = st.builds(
    AccountLedger,
    account=st.just("alice"),
    windows=st.dictionaries(st.text(min_size=1, max_size=20), records, max_size=4),
    incident=st.builds(
        IncidentRecord,
        open=st.booleans(),
        number=st.integers(0, 10_000),
        failing_since=st.none() | moments,
        last_failed_check=st.none() | moments,
    ),
)


@pytest.mark.parametrize("back_end", params())
@settings(max_examples=30, deadline=None)
@given(first=ledgers, then=ledgers)
def test_any_ledger_comes_back_exactly(
    back_end: BackEnd, first: AccountLedger, then: AccountLedger
) -> None:
    """What the engine stores comes back the same (after a restart, where the back end
    survives one), so a restart changes no decision; the second replaces the first."""

    async def round_trip(folder: Path) -> list[AccountLedger]:
        store = await back_end.open(folder)
        seen = []
        for ledger in (first, then):
            await store.update_ledger(
                "alice", lambda _, it=ledger: Assessment(it), destinations=DESTINATIONS, now=NOW
            )
            seen.append(await store.load_ledger("alice"))
        if back_end.durable:
            await store.close()
            store = await back_end.open(folder)
            seen.append(await store.load_ledger("alice"))
        await store.close()
        return seen

    with tempfile.TemporaryDirectory() as tmp:
        seen = asyncio.run(round_trip(Path(tmp)))
    assert seen == [first, then, then][: len(seen)]


async def test_the_ledger_is_stored_as_the_step_returned_it(store: StateStore) -> None:
    both = AccountLedger("alice", {"five_hour": window(80), "seven_day": window(95)})
    await announce(store, ledger=both)
    one = AccountLedger("alice", {"seven_day": window(95)})
    await announce(store, ledger=one)
    assert await store.load_ledger("alice") == one


async def test_the_step_sees_the_stored_ledger_and_its_result_is_returned(
    store: StateStore,
) -> None:
    stored = AccountLedger("alice", {"five_hour": window(80)})
    await announce(store, ledger=stored)
    seen: list[AccountLedger] = []

    def step(ledger: AccountLedger) -> Assessment:
        seen.append(ledger)
        return Assessment(ledger, (crossed(95),))

    result = await store.update_ledger("alice", step, destinations=("console",), now=NOW)
    assert seen == [stored]
    assert result == Assessment(stored, (crossed(95),))


async def test_a_step_that_raises_records_nothing(store: StateStore) -> None:
    def broken(ledger: AccountLedger) -> Assessment:
        raise RuntimeError("engine bug")

    with pytest.raises(RuntimeError):
        await store.update_ledger("alice", broken, destinations=DESTINATIONS, now=NOW)
    assert await store.load_ledger("alice") == AccountLedger("alice")
    assert await store.pending() == []
    await announce(store, crossed(80))
    assert len(await store.pending()) == 2


async def test_accounts_have_ledgers_of_their_own(store: StateStore) -> None:
    await announce(store, ledger=AccountLedger("alice", {"five_hour": window()}))
    assert await store.load_ledger("bob") == AccountLedger("bob")


# -- deliveries -------------------------------------------------------------------------


async def test_each_announcement_is_queued_once_per_destination(store: StateStore) -> None:
    await announce(store, crossed(80))
    await announce(store, crossed(80))  # the same key again: already queued
    pending = await store.pending()
    assert [(d.key, d.destination) for d in pending] == [
        ("threshold:alice:five_hour:2026-07-19T03:40Z:80", "slack:C0123456789"),
        ("threshold:alice:five_hour:2026-07-19T03:40Z:80", "console"),
    ]
    assert pending[0].message == crossed(80).message()
    assert pending[0].expires_at == RESETS
    assert pending[0].created_at == NOW
    assert (pending[0].attempts, pending[0].claim) == (0, None)
    assert [d.destination for d in await store.pending("console")] == ["console"]


async def test_an_announcement_posted_or_dropped_is_not_queued_again(store: StateStore) -> None:
    await announce(store, crossed(80), destinations=("console",))
    posted = await claim(store)
    assert posted is not None
    assert await store.confirm(posted, now=NOW)
    await announce(store, crossed(80), crossed(95), destinations=("console",))
    assert [d.key[-2:] for d in await store.pending()] == ["95"]
    assert await store.expire(now=RESETS) != []
    await announce(store, crossed(95), destinations=("console",), now=RESETS)
    assert await store.pending() == []


async def test_claim_post_confirm(store: StateStore) -> None:
    await announce(store, crossed(80), crossed(95))
    first = await claim(store)
    assert first is not None
    assert first.key.endswith(":80")
    assert first.attempts == 1
    assert first.claim is not None
    assert first.claim.startswith("one#")
    # The oldest is out: the next waits for it, so 95 never overtakes 80.
    assert await claim(store) is None
    assert await store.confirm(first, now=NOW)
    second = await claim(store)
    assert second is not None
    assert second.key.endswith(":95")
    assert await store.confirm(second, now=NOW)
    assert await claim(store) is None
    assert [d.destination for d in await store.pending()] == ["slack:C0123456789"] * 2


async def test_a_claim_shows_in_the_pending_list(store: StateStore) -> None:
    await announce(store, crossed(80), destinations=("console",))
    claimed = await claim(store)
    assert await store.pending() == [claimed]


async def test_destinations_are_independent(store: StateStore) -> None:
    await announce(store, crossed(80))
    assert await claim(store, "console") is not None
    assert await claim(store, "slack:C0123456789") is not None
    assert await claim(store, "nowhere") is None


async def test_an_unconfirmed_claim_is_retried_once_its_lease_has_passed(
    store: StateStore,
) -> None:
    await announce(store, crossed(80))
    lost = await claim(store, owner="died")
    assert lost is not None
    assert await claim(store, now=NOW + LEASE - timedelta(seconds=1), owner="two") is None
    retried = await claim(store, now=NOW + LEASE, owner="two")
    assert retried is not None
    assert retried.key == lost.key
    assert retried.attempts == 2
    assert retried.claim != lost.claim


async def test_a_released_delivery_waits_for_its_retry_time(store: StateStore) -> None:
    await announce(store, crossed(80))
    first = await claim(store)
    assert first is not None
    retry_at = NOW + timedelta(seconds=30)
    await store.release(first, retry_at=retry_at, error="HTTP 429")
    assert [d.claim for d in await store.pending("console")] == [None]
    assert await claim(store, now=retry_at - timedelta(seconds=1)) is None
    again = await claim(store, now=retry_at)
    assert again is not None
    assert again.attempts == 2


async def test_a_release_may_bring_the_retry_forward(store: StateStore) -> None:
    await announce(store, crossed(80))
    first = await claim(store)
    assert first is not None
    await store.release(first, retry_at=NOW, error="HTTP 500")
    assert await claim(store, now=NOW) is not None


async def test_a_stale_claim_cannot_release_the_one_that_took_over(store: StateStore) -> None:
    await announce(store, crossed(80))
    stale = await claim(store, owner="slow")
    current = await claim(store, now=NOW + LEASE, owner="fast")
    assert stale is not None
    assert current is not None
    await store.release(stale, retry_at=NOW, error="late failure")
    assert await claim(store, now=NOW + LEASE + timedelta(seconds=1)) is None
    assert [d.claim for d in await store.pending("console")] == [current.claim]


async def test_an_unclaimed_delivery_cannot_be_released(store: StateStore) -> None:
    await announce(store, crossed(80))
    [unclaimed, _] = await store.pending()
    await store.release(unclaimed, retry_at=NOW + timedelta(hours=1), error="never claimed")
    assert await claim(store, "slack:C0123456789") is not None


async def test_confirm_says_when_someone_else_finished_first(store: StateStore) -> None:
    await announce(store, crossed(80))
    slow = await claim(store, owner="slow")
    fast = await claim(store, now=NOW + LEASE, owner="fast")
    assert slow is not None
    assert fast is not None
    assert await store.confirm(fast, now=NOW)
    assert not await store.confirm(slow, now=NOW)
    assert not await store.confirm(fast, now=NOW)


async def test_deliveries_whose_moment_passed_are_dropped(store: StateStore) -> None:
    await announce(store, crossed(80))
    assert await store.expire(now=RESETS - timedelta(seconds=1)) == []
    dropped = await store.expire(now=RESETS)
    assert {d.destination for d in dropped} == set(DESTINATIONS)
    assert await store.pending() == []
    assert await claim(store, now=RESETS) is None
    assert await store.expire(now=RESETS) == []


async def test_a_delivery_being_posted_is_not_dropped_under_the_poster(
    store: StateStore,
) -> None:
    await announce(store, crossed(80))
    posting = await claim(store, now=RESETS - timedelta(seconds=1))
    assert posting is not None
    assert [d.destination for d in await store.expire(now=RESETS)] == ["slack:C0123456789"]
    assert await store.confirm(posting, now=RESETS)


async def test_a_delivery_whose_lease_ran_out_or_was_released_is_dropped(
    store: StateStore,
) -> None:
    await announce(store, crossed(80))
    abandoned = await claim(store, now=RESETS - LEASE)
    released = await claim(store, "slack:C0123456789", now=RESETS - LEASE)
    assert abandoned is not None
    assert released is not None
    await store.release(released, retry_at=RESETS + LEASE, error="HTTP 503")
    dropped = await store.expire(now=RESETS)
    assert {(d.destination, d.attempts) for d in dropped} == {
        ("console", 1),
        ("slack:C0123456789", 1),
    }
    assert not await store.confirm(abandoned, now=RESETS)


async def test_two_handles_never_claim_the_same_delivery(backend: BackEnd, folder: Path) -> None:
    """Two processes on one file (one store shared by tasks, in memory), three posters."""
    one = await backend.open(folder)
    two = await backend.again(one, folder)
    keys = [crossed(float(level)) for level in range(1, 41)]
    await announce(one, *keys, destinations=("a", "b", "c"))
    claimed: list[tuple[str, str]] = []

    async def worker(store: StateStore, name: str) -> None:
        for _ in range(400):
            for destination in ("a", "b", "c"):
                delivery = await claim(store, destination, owner=name)
                if delivery is not None:
                    claimed.append((delivery.key, delivery.destination))
                    await store.confirm(delivery, now=NOW)
                await asyncio.sleep(0)  # let the others in, as a thread switch would
            if not await store.pending():
                return

    await asyncio.gather(worker(one, "one"), worker(two, "two"), worker(one, "three"))
    await one.close()
    await two.close()
    assert len(claimed) == 120
    assert len(set(claimed)) == 120


# -- history ----------------------------------------------------------------------------


def snapshot(percent: float, at: datetime) -> UsageSnapshot:
    return UsageSnapshot(
        (
            Limit("five_hour", "5-hour", percent, RESETS, "normal"),
            Limit("seven_day", "Weekly (all models)", percent / 2, None, "normal"),
        ),
        None,
        at,
    )


async def test_the_history_keeps_every_sample_once(store: StateStore) -> None:
    first = snapshot(10, NOW)
    await store.record_usage("alice", first)
    await store.record_usage("alice", first)  # the same fetch, handed out again
    await store.record_usage("alice", snapshot(20, NOW + timedelta(minutes=3)))
    await store.record_usage("bob", snapshot(30, NOW + timedelta(minutes=4)))
    alice = await store.history("alice")
    assert [(s.limit_id, s.percent) for s in alice] == [
        ("five_hour", 10),
        ("seven_day", 5),
        ("five_hour", 20),
        ("seven_day", 10),
    ]
    assert alice[0].resets_at == RESETS
    assert alice[0].sampled_at == NOW
    assert alice[1].resets_at is None
    recent = await store.history(since=NOW + timedelta(minutes=1))
    assert {s.account for s in recent} == {"alice", "bob"}
    assert len(recent) == 4
    assert len(await store.history(since=NOW + timedelta(minutes=3))) == 4
    assert await store.history("carol") == []


async def test_the_history_is_in_time_then_account_then_limit_order(store: StateStore) -> None:
    await store.record_usage("bob", snapshot(30, NOW))
    await store.record_usage("alice", snapshot(20, NOW))
    await store.record_usage("alice", snapshot(10, NOW - timedelta(minutes=3)))
    assert [(s.account, s.limit_id, s.percent) for s in await store.history()] == [
        ("alice", "five_hour", 10),
        ("alice", "seven_day", 5),
        ("alice", "five_hour", 20),
        ("alice", "seven_day", 10),
        ("bob", "five_hour", 30),
        ("bob", "seven_day", 15),
    ]


async def test_the_whole_history_includes_samples_from_before_1970(store: StateStore) -> None:
    long_ago = datetime(1969, 7, 20, 20, 17, tzinfo=UTC)
    await store.record_usage("alice", snapshot(10, long_ago))
    assert [s.sampled_at for s in await store.history()] == [long_ago, long_ago]


async def test_pruning_keeps_eight_days_of_history(store: StateStore) -> None:
    now = NOW + timedelta(days=30)
    await store.record_usage("alice", snapshot(10, now - HISTORY_KEEP - timedelta(minutes=1)))
    await store.record_usage("alice", snapshot(20, now - HISTORY_KEEP + timedelta(minutes=1)))
    await store.record_usage("alice", snapshot(30, now))
    assert await store.prune(now=now) == 2
    assert [s.percent for s in await store.history("alice") if s.limit_id == "five_hour"] == [
        20,
        30,
    ]
    assert await store.prune(now=now) == 0


async def test_pruning_forgets_old_finished_deliveries_but_not_pending_ones(
    store: StateStore,
) -> None:
    await announce(store, crossed(80), crossed(95), destinations=("console",))
    done = await claim(store)
    assert done is not None
    await store.confirm(done, now=NOW)
    assert await store.prune(now=NOW + timedelta(days=34)) == 0
    assert await store.prune(now=NOW + timedelta(days=40)) == 1
    assert [d.key[-2:] for d in await store.pending()] == ["95"]


async def test_an_announcement_pruned_long_ago_is_queued_after_the_pending_ones(
    store: StateStore,
) -> None:
    await announce(store, crossed(80), destinations=("console",))
    done = await claim(store)
    assert done is not None
    await store.confirm(done, now=NOW)
    later = NOW + timedelta(days=40)
    await announce(store, crossed(95), destinations=("console",), now=later)
    assert await store.prune(now=later) == 1
    await announce(store, crossed(80), destinations=("console",), now=later)
    assert [d.key[-2:] for d in await store.pending()] == ["95", "80"]


# -- times ------------------------------------------------------------------------------


async def test_times_come_back_in_utc(store: StateStore) -> None:
    elsewhere = timezone(timedelta(hours=2))
    await announce(store, crossed(80), destinations=("console",), now=NOW.astimezone(elsewhere))
    await store.record_usage("alice", snapshot(10, NOW.astimezone(elsewhere)))
    [delivery] = await store.pending()
    [sample, _] = await store.history()
    for moment in (delivery.created_at, delivery.expires_at, sample.sampled_at, sample.resets_at):
        assert moment is not None
        assert moment.tzinfo is UTC


NAIVE = NOW.replace(tzinfo=None)
NAIVE_CALLS: dict[str, Callable[[StateStore], Awaitable[object]]] = {
    "claim_next": lambda store: claim(store, now=NAIVE),
    "update_ledger": lambda store: announce(store, crossed(80), now=NAIVE),
    "record_usage": lambda store: store.record_usage("alice", snapshot(10, NAIVE)),
    "history": lambda store: store.history(since=NAIVE),
    "expire": lambda store: store.expire(now=NAIVE),
}


@pytest.mark.parametrize("call", NAIVE_CALLS.values(), ids=NAIVE_CALLS.keys())
async def test_a_time_without_a_zone_is_refused_and_changes_nothing(
    store: StateStore, call: Callable[[StateStore], Awaitable[object]]
) -> None:
    with pytest.raises(TypeError):
        await call(store)
    assert await store.pending() == []
    assert await store.history() == []
    assert await store.load_ledger("alice") == AccountLedger("alice")


# -- small records ----------------------------------------------------------------------


async def test_values_are_kept_and_replaced(store: StateStore) -> None:
    assert await store.get_value("discord.command_hash") is None
    await store.set_value("discord.command_hash", "one")
    await store.set_value("discord.command_hash", "two")
    await store.set_value("other", "")
    assert await store.get_value("discord.command_hash") == "two"
    assert await store.get_value("other") == ""


# -- SQLite only: the file, its schema, and SQLite's errors -----------------------------


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "state" / "usage-bot.sqlite3"


def test_sqlite_a_new_file_is_created_private_migrated_and_in_wal_mode(db: Path) -> None:
    SQLiteStore.open_blocking(db).close_blocking()
    assert stat.S_IMODE(db.stat().st_mode) == 0o600
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    conn.close()
    assert {"windows", "incidents", "deliveries", "samples", "settings"} <= tables


async def test_sqlite_a_file_from_a_newer_version_is_refused_with_the_fix(db: Path) -> None:
    db.parent.mkdir()
    with sqlite3.connect(db) as conn:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(ConfigError, match="newer usage-bot") as caught:
        await SQLiteStore.open(db)
    assert "USAGE_BOT_STATE" in caught.value.message


def test_sqlite_an_unusable_path_is_a_configuration_error(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    with pytest.raises(ConfigError, match=r"USAGE_BOT_STATE=.*writable file"):
        SQLiteStore.open_blocking(blocker / "state.sqlite3")


def test_sqlite_a_file_that_is_not_a_database_is_a_configuration_error(db: Path) -> None:
    db.parent.mkdir()
    db.write_bytes(b"this is not SQLite" * 100)
    with pytest.raises(ConfigError, match="USAGE_BOT_STATE"):
        SQLiteStore.open_blocking(db)


def test_sqlite_an_empty_state_file_is_reported_as_a_truncation_and_a_new_one_is_not(
    db: Path, caplog: pytest.LogCaptureFixture
) -> None:
    db.parent.mkdir()
    SQLiteStore.open_blocking(db).close_blocking()
    assert not [r for r in caplog.records if r.levelname == "WARNING"]
    db.write_bytes(b"")  # what `> usage-bot.sqlite3` or a full disk's truncation leaves
    SQLiteStore.open_blocking(db).close_blocking()
    [warning] = [r for r in caplog.records if r.levelname == "WARNING"]
    text = warning.getMessage()
    assert f"USAGE_BOT_STATE={db}" in text
    assert "0 bytes" in text
    assert "may be posted again" in text


def test_sqlite_a_ledger_of_schema_1_reads_as_active_windows(db: Path) -> None:
    db.parent.mkdir()
    conn = sqlite3.connect(db, isolation_level=None)
    for statement in MIGRATIONS[0]:
        conn.execute(statement)
    conn.execute("PRAGMA user_version = 1")
    conn.execute(
        "INSERT INTO windows (account, limit_id, window_us, resets_at_us, level, updated_us) "
        "VALUES ('alice', 'five_hour', 1784432399570750, 1784432399912345, 80, 0)"
    )
    conn.close()
    store = SQLiteStore.open_blocking(db)
    try:
        ledger = asyncio.run(store.load_ledger("alice"))
    finally:
        store.close_blocking()
    record = ledger.windows["five_hour"]
    assert (record.level, record.phase, record.percent, record.serial) == (80, "active", None, 0)
    assert record.id == "2026-07-19T03:40Z"


async def test_sqlite_a_process_killed_between_claim_and_confirm_loses_nothing(db: Path) -> None:
    """A real ``kill -9`` after the claim: the delivery is neither lost nor doubled."""
    store = await SQLiteStore.open(db)
    await announce(store, crossed(80), destinations=("console",))
    await store.close()
    script = (
        "import asyncio, os, signal, sys\n"
        "from datetime import datetime, timedelta\n"
        "from usage_bot.state.sqlite import SQLiteStore\n"
        "async def main():\n"
        "    store = await SQLiteStore.open(sys.argv[1])\n"
        "    now = datetime.fromisoformat(sys.argv[2])\n"
        "    got = await store.claim_next('console', owner='doomed', now=now,\n"
        "                                 lease=timedelta(seconds=120))\n"
        "    assert got is not None\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
        "asyncio.run(main())\n"
    )
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        script,
        str(db),
        NOW.isoformat(),
        stderr=asyncio.subprocess.PIPE,
    )
    _, stderr = await asyncio.wait_for(child.communicate(), timeout=30)
    assert child.returncode == -9, stderr
    store = await SQLiteStore.open(db)
    assert await claim(store, now=NOW + timedelta(seconds=60)) is None
    retried = await claim(store, now=NOW + LEASE)
    assert retried is not None
    assert retried.attempts == 2
    assert await store.confirm(retried, now=NOW + LEASE)
    assert await store.pending() == []
    await store.close()


async def test_sqlite_a_database_locked_too_long_is_unavailable_and_keeps_nothing(
    db: Path,
) -> None:
    """A second real connection holds ``BEGIN EXCLUSIVE`` past the busy timeout."""
    store = await SQLiteStore.open(db, busy_timeout=0.1)
    locker = sqlite3.connect(db, isolation_level=None)
    locker.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(StateUnavailable) as caught:
            await announce(store, crossed(80), ledger=AccountLedger("alice", {"x": window()}))
    finally:
        locker.execute("ROLLBACK")
        locker.close()
    assert caught.value.message == (
        f"USAGE_BOT_STATE={db} cannot be used now: database is locked (another process kept "
        "it locked for over 0.1 s); if this lasts, stop whatever holds it open (an sqlite3 "
        "shell, a backup)."
    )
    assert isinstance(caught.value.__cause__, sqlite3.OperationalError)
    assert await store.load_ledger("alice") == AccountLedger("alice")
    assert await store.pending() == []
    await announce(store, crossed(80))
    assert len(await store.pending()) == 2
    await store.close()


async def _own_connection(db: Path, *pragmas: str) -> SQLiteStore:
    """A store on a connection of the test's own, migrated, with ``pragmas`` applied."""
    SQLiteStore.open_blocking(db).close_blocking()
    connection = sqlite3.connect(db, isolation_level=None, check_same_thread=False)
    for pragma in pragmas:
        connection.execute(pragma)
    return SQLiteStore(connection, str(db))


async def test_sqlite_a_read_only_database_is_unavailable(db: Path) -> None:
    """What a file system remounted read-only looks like to SQLite (``query_only``: Linux
    refuses to remount under a file open for writing)."""
    store = await _own_connection(db, "PRAGMA query_only = ON")
    with pytest.raises(StateUnavailable) as caught:
        await store.set_value("x", "y")
    assert caught.value.message == (
        f"USAGE_BOT_STATE={db} cannot be used now: attempt to write a readonly database (the "
        "file or its file system cannot be written); make both writable by the bot's user; "
        "the bot then catches up by itself."
    )
    assert await store.get_value("x") is None  # reading still works
    await store.close()


async def test_sqlite_a_full_disk_is_unavailable_and_the_ledger_is_not_half_written(
    db: Path,
) -> None:
    """``max_page_count`` at the file's size now: SQLite's "disk is full" for real."""
    SQLiteStore.open_blocking(db).close_blocking()
    with sqlite3.connect(db) as conn:
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
    conn.close()
    store = await _own_connection(db, f"PRAGMA max_page_count = {pages}")
    many = [crossed(float(level)) for level in range(1, 101)]
    with pytest.raises(StateUnavailable, match="full") as caught:
        await announce(store, *many, ledger=AccountLedger("alice", {"five_hour": window()}))
    assert caught.value.message.startswith(
        f"USAGE_BOT_STATE={db} cannot be used now: database or disk is full (its disk is full)"
    )
    assert await store.load_ledger("alice") == AccountLedger("alice")
    assert await store.pending() == []
    await store.close()


def _delete(db: Path, *, with_wal: bool) -> None:
    for leftover in db.parent.glob(f"{db.name}*" if with_wal else db.name):
        leftover.unlink()


def _mode(db: Path) -> int:
    return stat.S_IMODE(db.stat().st_mode)


@pytest.mark.parametrize("with_wal", [True, False], ids=["with its -wal and -shm", "alone"])
async def test_sqlite_a_state_file_deleted_under_the_store_is_written_back(
    db: Path, caplog: pytest.LogCaptureFixture, with_wal: bool
) -> None:
    store = await SQLiteStore.open(db)
    await announce(store, crossed(80))
    _delete(db, with_wal=with_wal)
    assert len(await store.pending()) == 2
    assert "was deleted while the bot ran" in caplog.text
    assert _mode(db) == 0o600
    await announce(store, crossed(95))
    await store.close()
    reopened = await SQLiteStore.open(db)
    assert len(await reopened.pending()) == 4
    await reopened.close()
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()


def _replace(db: Path, content: bytes) -> None:
    db.unlink()
    db.write_bytes(content)


async def test_sqlite_a_state_file_replaced_by_garbage_is_unavailable_until_it_is_gone(
    db: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The replacement is what the operator chose; while it is no database, every call
    says so; once it is removed, a fresh state starts there, as at a start."""
    store = await SQLiteStore.open(db)
    await announce(store, crossed(80))
    _replace(db, b"not a database at all" * 400)
    for _ in range(2):
        with pytest.raises(StateUnavailable) as caught:
            await store.pending()
        assert caught.value.message.startswith(
            f"USAGE_BOT_STATE={db} cannot be used as the state database"
        )
    assert "was replaced by another file" in caplog.text
    _delete(db, with_wal=True)
    assert await store.pending() == []
    await store.close()


async def test_sqlite_a_closed_store_cannot_be_used_from_its_thread_either(db: Path) -> None:
    store = SQLiteStore.open_blocking(db)
    store.close_blocking()
    with pytest.raises(StoreClosed):
        await store.pending()


def test_sqlite_no_other_module_names_sqlite3() -> None:
    """A back end's errors stay inside it (STYLE.md): callers catch StateUnavailable."""
    package = Path(usage_bot.__file__).parent
    naming = {
        path.relative_to(package).as_posix()
        for path in package.rglob("*.py")
        if re.search(r"^\s*(import|from)\s+sqlite3\b", path.read_text(encoding="utf-8"), re.M)
    }
    assert naming == {"state/sqlite.py"}
