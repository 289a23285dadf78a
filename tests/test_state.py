"""The SQLite state store: schema, file mode, ledger, claims, history, settings."""

from __future__ import annotations

import asyncio
import sqlite3
import stat
import sys
import tempfile
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from usage_bot._alerts import (
    AccountLedger,
    Assessment,
    IncidentRecord,
    IncidentStarted,
    ThresholdCrossed,
    WindowRecord,
)
from usage_bot._config import Settings
from usage_bot._exceptions import ConfigError, StoreClosed
from usage_bot._model import Limit, UsageSnapshot
from usage_bot.state import HISTORY_KEEP, Delivery, open_store
from usage_bot.state.sqlite import _MIGRATIONS as MIGRATIONS
from usage_bot.state.sqlite import SCHEMA_VERSION, SQLiteStore

NOW = datetime(2026, 7, 19, 1, 0, tzinfo=UTC)
RESETS = datetime(2026, 7, 19, 3, 39, 59, 570750, tzinfo=UTC)
LEASE = timedelta(seconds=120)
DESTINATIONS = ("slack:C0123456789", "console")


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "state" / "usage-bot.sqlite3"


@pytest.fixture
async def store(db: Path) -> AsyncIterator[SQLiteStore]:
    opened = await SQLiteStore.open(db)
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
    store: SQLiteStore,
    *events: ThresholdCrossed | IncidentStarted,
    destinations: tuple[str, ...] = DESTINATIONS,
    now: datetime = NOW,
) -> Assessment:
    def step(ledger: AccountLedger) -> Assessment:
        return Assessment(ledger, tuple(events))

    return await store.update_ledger("alice", step, destinations=destinations, now=now)


async def claim(
    store: SQLiteStore, destination: str = "console", *, now: datetime = NOW, owner: str = "one"
) -> Delivery | None:
    return await store.claim_next(destination, owner=owner, now=now, lease=LEASE)


# -- the file ---------------------------------------------------------------------------


def test_a_new_file_is_created_private_migrated_and_in_wal_mode(db: Path) -> None:
    SQLiteStore.open_blocking(db).close_blocking()
    assert stat.S_IMODE(db.stat().st_mode) == 0o600
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    conn.close()
    assert {"windows", "incidents", "deliveries", "samples", "settings"} <= tables


async def test_opening_again_keeps_what_was_stored(db: Path) -> None:
    first = await SQLiteStore.open(db)
    await first.set_value("discord.command_hash", "abc")
    await first.close()
    second = await SQLiteStore.open(db)
    assert await second.get_value("discord.command_hash") == "abc"
    await second.close()


async def test_a_file_from_a_newer_version_is_refused_with_the_fix(db: Path) -> None:
    db.parent.mkdir()
    with sqlite3.connect(db) as conn:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(ConfigError, match="newer usage-bot") as caught:
        await SQLiteStore.open(db)
    assert "USAGE_BOT_STATE" in caught.value.message


def test_an_unusable_path_is_a_configuration_error(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    with pytest.raises(ConfigError, match=r"USAGE_BOT_STATE=.*writable file"):
        SQLiteStore.open_blocking(blocker / "state.sqlite3")


def test_a_file_that_is_not_a_database_is_a_configuration_error(db: Path) -> None:
    db.parent.mkdir()
    db.write_bytes(b"this is not SQLite" * 100)
    with pytest.raises(ConfigError, match="USAGE_BOT_STATE"):
        SQLiteStore.open_blocking(db)


def test_an_empty_state_file_is_reported_as_a_truncation_and_a_new_one_is_not(
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


def test_a_ledger_of_schema_1_reads_as_active_windows(db: Path) -> None:
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


async def test_open_store_follows_the_settings(db: Path) -> None:
    store = await open_store(Settings(state=str(db)))
    await store.close()
    assert isinstance(store, SQLiteStore)
    assert store.path == str(db)


async def test_a_closed_store_says_so_and_closing_twice_is_fine(store: SQLiteStore) -> None:
    await store.close()
    await store.close()
    with pytest.raises(StoreClosed):
        await store.get_value("x")


# -- the ledger -------------------------------------------------------------------------


async def test_a_fresh_account_has_an_empty_ledger(store: SQLiteStore) -> None:
    assert await store.load_ledger("alice") == AccountLedger("alice")


moments = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
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


@settings(max_examples=40, deadline=None)
@given(ledger=ledgers)
def test_any_ledger_survives_a_restart_exactly(ledger: AccountLedger) -> None:
    """What the engine remembers comes back the same, so a restart changes no decision."""

    async def round_trip(path: Path) -> AccountLedger:
        store = await SQLiteStore.open(path)
        await store.update_ledger(
            "alice", lambda _: Assessment(ledger), destinations=DESTINATIONS, now=NOW
        )
        await store.close()
        reopened = await SQLiteStore.open(path)
        try:
            return await reopened.load_ledger("alice")
        finally:
            await reopened.close()

    with tempfile.TemporaryDirectory() as tmp:
        assert asyncio.run(round_trip(Path(tmp) / "state.sqlite3")) == ledger


async def test_a_step_that_raises_records_nothing(store: SQLiteStore) -> None:
    def broken(ledger: AccountLedger) -> Assessment:
        raise RuntimeError("engine bug")

    with pytest.raises(RuntimeError):
        await store.update_ledger("alice", broken, destinations=DESTINATIONS, now=NOW)
    await announce(store, crossed(80))
    assert len(await store.pending()) == 2


# -- deliveries -------------------------------------------------------------------------


async def test_each_announcement_is_queued_once_per_destination(store: SQLiteStore) -> None:
    await announce(store, crossed(80))
    await announce(store, crossed(80))  # the same key again: already queued
    pending = await store.pending()
    assert [(d.key, d.destination) for d in pending] == [
        ("threshold:alice:five_hour:2026-07-19T03:40Z:80", "slack:C0123456789"),
        ("threshold:alice:five_hour:2026-07-19T03:40Z:80", "console"),
    ]
    assert pending[0].message == crossed(80).message()
    assert pending[0].expires_at == RESETS


async def test_claim_post_confirm(store: SQLiteStore) -> None:
    await announce(store, crossed(80), crossed(95))
    first = await claim(store)
    assert first is not None
    assert first.key.endswith(":80")
    assert first.attempts == 1
    # The oldest is out: the next waits for it, so 95 never overtakes 80.
    assert await claim(store) is None
    assert await store.confirm(first, now=NOW)
    second = await claim(store)
    assert second is not None
    assert second.key.endswith(":95")
    assert await store.confirm(second, now=NOW)
    assert await claim(store) is None
    assert [d.destination for d in await store.pending()] == ["slack:C0123456789"] * 2


async def test_destinations_are_independent(store: SQLiteStore) -> None:
    await announce(store, crossed(80))
    assert await claim(store, "console") is not None
    assert await claim(store, "slack:C0123456789") is not None


async def test_an_unconfirmed_claim_is_retried_once_its_lease_has_passed(
    store: SQLiteStore,
) -> None:
    await announce(store, crossed(80))
    lost = await claim(store, owner="died")
    assert lost is not None
    assert await claim(store, now=NOW + LEASE - timedelta(seconds=1), owner="two") is None
    retried = await claim(store, now=NOW + LEASE, owner="two")
    assert retried is not None
    assert retried.key == lost.key
    assert retried.attempts == 2


async def test_a_released_delivery_waits_for_its_retry_time(store: SQLiteStore) -> None:
    await announce(store, crossed(80))
    first = await claim(store)
    assert first is not None
    retry_at = NOW + timedelta(seconds=30)
    await store.release(first, retry_at=retry_at, error="HTTP 429")
    assert await claim(store, now=retry_at - timedelta(seconds=1)) is None
    again = await claim(store, now=retry_at)
    assert again is not None
    assert again.attempts == 2


async def test_a_stale_claim_cannot_release_the_one_that_took_over(store: SQLiteStore) -> None:
    await announce(store, crossed(80))
    stale = await claim(store, owner="slow")
    current = await claim(store, now=NOW + LEASE, owner="fast")
    assert stale is not None
    assert current is not None
    await store.release(stale, retry_at=NOW, error="late failure")
    assert await claim(store, now=NOW + LEASE + timedelta(seconds=1)) is None


async def test_confirm_says_when_someone_else_finished_first(store: SQLiteStore) -> None:
    await announce(store, crossed(80))
    slow = await claim(store, owner="slow")
    fast = await claim(store, now=NOW + LEASE, owner="fast")
    assert slow is not None
    assert fast is not None
    assert await store.confirm(fast, now=NOW)
    assert not await store.confirm(slow, now=NOW)


async def test_deliveries_whose_moment_passed_are_dropped(store: SQLiteStore) -> None:
    await announce(store, crossed(80))
    assert await store.expire(now=RESETS - timedelta(seconds=1)) == []
    dropped = await store.expire(now=RESETS)
    assert {d.destination for d in dropped} == set(DESTINATIONS)
    assert await store.pending() == []
    assert await claim(store, now=RESETS) is None


async def test_a_delivery_being_posted_is_not_dropped_under_the_poster(
    store: SQLiteStore,
) -> None:
    await announce(store, crossed(80))
    posting = await claim(store, now=RESETS - timedelta(seconds=1))
    assert posting is not None
    assert [d.destination for d in await store.expire(now=RESETS)] == ["slack:C0123456789"]
    assert await store.confirm(posting, now=RESETS)


async def test_two_stores_on_one_file_never_claim_the_same_delivery(db: Path) -> None:
    one, two = await SQLiteStore.open(db), await SQLiteStore.open(db)
    keys = [crossed(float(level)) for level in range(1, 41)]
    await announce(one, *keys, destinations=("a", "b", "c"))
    claimed: list[tuple[str, str]] = []

    async def worker(store: SQLiteStore, name: str) -> None:
        for _ in range(400):
            for destination in ("a", "b", "c"):
                delivery = await claim(store, destination, owner=name)
                if delivery is not None:
                    claimed.append((delivery.key, delivery.destination))
                    await store.confirm(delivery, now=NOW)
            if not await store.pending():
                return

    await asyncio.gather(worker(one, "one"), worker(two, "two"), worker(one, "three"))
    await one.close()
    await two.close()
    assert len(claimed) == 120
    assert len(set(claimed)) == 120


async def test_a_process_killed_between_claim_and_confirm_loses_nothing(db: Path) -> None:
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


async def test_the_history_keeps_every_sample_once(store: SQLiteStore) -> None:
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


async def test_pruning_keeps_eight_days_of_history(store: SQLiteStore) -> None:
    now = NOW + timedelta(days=30)
    await store.record_usage("alice", snapshot(10, now - HISTORY_KEEP - timedelta(minutes=1)))
    await store.record_usage("alice", snapshot(20, now - HISTORY_KEEP + timedelta(minutes=1)))
    await store.record_usage("alice", snapshot(30, now))
    assert await store.prune(now=now) == 2
    assert [s.percent for s in await store.history("alice") if s.limit_id == "five_hour"] == [
        20,
        30,
    ]


async def test_pruning_forgets_old_finished_deliveries_but_not_pending_ones(
    store: SQLiteStore,
) -> None:
    await announce(store, crossed(80), crossed(95), destinations=("console",))
    done = await claim(store)
    assert done is not None
    await store.confirm(done, now=NOW)
    assert await store.prune(now=NOW + timedelta(days=40)) == 1
    assert [d.key[-2:] for d in await store.pending()] == ["95"]


# -- settings ---------------------------------------------------------------------------


async def test_values_are_kept_and_replaced(store: SQLiteStore) -> None:
    assert await store.get_value("discord.command_hash") is None
    await store.set_value("discord.command_hash", "one")
    await store.set_value("discord.command_hash", "two")
    assert await store.get_value("discord.command_hash") == "two"
