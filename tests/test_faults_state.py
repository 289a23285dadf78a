"""The fault matrix, part 3: the state database and the process (issue 7).

State rows run the real scheduler on the real SQLite store, with the fault made for real
where the machine allows it: another process holding SQLite's write lock, a read-only
bind mount (in a private mount namespace, as root) for a start on a read-only file
system, the file unlinked under the running store. Where a fault cannot be made for real
the test says how it is simulated. The process row kills ``usage-bot run`` (a real
subprocess, against FakeSlack and the simulated upstream) at random moments around its
alert posts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import re
import shutil
import signal
import sqlite3
import stat
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.conftest import write_login
from tests.fakes.slack import FakeSlack
from tests.test_faults import (
    ACCOUNT,
    SLACK_APP_TOKEN,
    SLACK_BOT_TOKEN,
    SLACK_CHANNEL,
    T80,
    T95,
    open_world,
    text_of,
    usage,
)
from usage_bot._clock import FakeClock
from usage_bot._delivery import LEASE, Courier
from usage_bot._exceptions import StateUnavailable
from usage_bot._notify import AlertMessage
from usage_bot._report import to_the_minute
from usage_bot._scheduler import AlertScheduler
from usage_bot._simulator import SimulatedUpstream
from usage_bot.state.sqlite import BUSY_TIMEOUT, SQLiteStore

# Another process that takes SQLite's write lock and keeps it until told to let go.
LOCKER = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
sys.stdin.readline()
conn.execute("COMMIT")
print("released", flush=True)
"""


class Locker:
    """``sqlite3`` in another process, holding an exclusive lock on the state file."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self._process = process

    @classmethod
    async def lock(cls, path: str) -> Locker:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            LOCKER,
            path,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        assert process.stdout is not None
        assert await asyncio.wait_for(process.stdout.readline(), 10) == b"locked\n"
        return cls(process)

    async def release(self) -> None:
        assert self._process.stdin is not None
        assert self._process.stdout is not None
        self._process.stdin.write(b"\n")
        await self._process.stdin.drain()
        assert await asyncio.wait_for(self._process.stdout.readline(), 10) == b"released\n"
        await self._process.wait()


async def test_state_locked_briefly_by_another_process(tmp_path: Path) -> None:
    """Row state-locked-briefly: the poll waits its turn (busy timeout), nothing is lost."""
    async with open_world(tmp_path) as world:
        locker = await Locker.lock(world.settings.state)

        async def release_soon() -> None:
            await asyncio.sleep(BUSY_TIMEOUT / 5)  # the other process's real second
            await locker.release()

        releasing = asyncio.create_task(release_soon())
        try:
            await world.poll(0)
        finally:
            await releasing
        assert world.inbox.summary() == [T80]


async def test_state_locked_for_longer_than_the_busy_timeout(tmp_path: Path) -> None:
    """Row state-locked-long: the poll gives up (StateUnavailable, "database is locked"; the
    scheduler's job logs it and goes on); /claude-usage still answers; the next poll after
    the lock is gone announces what the failed one would have, once."""
    async with open_world(tmp_path) as world:
        locker = await Locker.lock(world.settings.state)
        try:
            with pytest.raises(StateUnavailable, match=r"USAGE_BOT_STATE=.*database is locked"):
                await world.scheduler.poll_once(ACCOUNT)
            shown = await world.command()
            assert "85%" in shown
            assert "Last known values" not in shown
        finally:
            await locker.release()
        await world.poll(0)
        await world.poll()
        assert world.inbox.summary() == [T80]


class LockAfterPost:
    """A destination that posts, then lets another process lock the state file before
    the scheduler can confirm the post (the lock outlasts the busy timeout)."""

    name = "locked-at-confirm"

    def __init__(self, path: str) -> None:
        self.path = path
        self.posted: list[AlertMessage] = []
        self.locker: Locker | None = None

    async def post(self, message: AlertMessage) -> None:
        self.posted.append(message)
        if self.locker is None:
            self.locker = await Locker.lock(self.path)


async def test_state_locked_between_post_and_confirm(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Row state-locked-at-confirm: the post arrived, its confirm cannot be written for
    longer than the busy timeout. The scheduler remembers it and writes it down before
    anything else goes there, instead of leaving the claim to lapse and posting again."""
    destination = LockAfterPost(str(tmp_path / "usage-bot.sqlite3"))
    async with open_world(tmp_path, notifiers=[destination]) as world:
        try:
            await world.poll(0)  # posts, then the confirm waits out the busy timeout
        finally:
            if destination.locker is not None:
                await destination.locker.release()
        for _ in range(4):
            await world.poll(LEASE.total_seconds() / 2)
        assert [m.key for m in destination.posted] == [world.inbox.posted[0].key]
        assert await world.store.pending() == []
    said = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert any("the state store cannot record it" in line for line in said), said


async def test_state_read_only_mid_run(tmp_path: Path) -> None:
    """Row state-read-only-mid-run. Linux refuses to make a file system read-only under
    a file open for writing (EBUSY), so this is what an I/O error remounting it read-only
    (errors=remount-ro) looks like to SQLite, simulated with ``PRAGMA query_only`` on the
    store's connection: every write fails with "attempt to write a readonly database"."""
    path = tmp_path / "usage-bot.sqlite3"
    SQLiteStore.open_blocking(path).close_blocking()  # created 0600 and migrated
    connection = sqlite3.connect(
        path, timeout=BUSY_TIMEOUT, isolation_level=None, check_same_thread=False
    )
    connection.execute("PRAGMA synchronous = FULL")
    store = SQLiteStore(connection, str(path))
    async with open_world(tmp_path, store=store) as world:
        await world.poll(0)
        connection.execute("PRAGMA query_only = ON")
        world.upstream.payload = usage(96)
        for _ in range(3):
            # The scheduler's jobs log these and go on; the next run tries again.
            world.clock.advance(180)
            with pytest.raises(StateUnavailable, match=r"USAGE_BOT_STATE=.*readonly database"):
                await world.scheduler.poll_once(ACCOUNT)
            with pytest.raises(StateUnavailable, match=r"USAGE_BOT_STATE=.*readonly database"):
                await world.scheduler.deliver_pending()
        shown = await world.command()
        assert "96%" in shown, "the command does not need the state"
        assert world.inbox.summary() == [T80]
        connection.execute("PRAGMA query_only = OFF")
        await world.poll()
        await world.poll()
        assert world.inbox.summary() == [T80, T95]


def _read_only_mount_works() -> bool:
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "-m", "true"], capture_output=True, check=False)  # noqa: S607
    return probe.returncode == 0


async def test_state_read_only_file_system_at_start(tmp_path: Path) -> None:
    """Row state-read-only-at-start: ``usage-bot run`` on a read-only file system (a
    read-only bind mount in a private mount namespace as root; a 0555 directory and 0444
    file otherwise) stops with exit 2 and one sentence naming USAGE_BOT_STATE."""
    data = tmp_path / "data"
    data.mkdir()
    SQLiteStore.open_blocking(data / "usage-bot.sqlite3").close_blocking()
    write_login(tmp_path / "claude", now=datetime.now(UTC))
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(tmp_path),
        "CLAUDE_CONFIG_DIR": str(tmp_path / "claude"),
        "USAGE_BOT_STATE": str(data / "usage-bot.sqlite3"),
        "USAGE_BOT_HTTP_PORT": "0",
        "USAGE_BOT_API_BASE_URL": "http://127.0.0.1:9",
    }
    command = [sys.executable, "-m", "usage_bot", "run"]
    if _read_only_mount_works():
        mount = f'mount --bind "{data}" "{data}" && mount -o remount,ro,bind "{data}" "{data}"'
        command = ["unshare", "-m", "sh", "-c", f'{mount} && exec "$@"', "sh", *command]
    elif os.geteuid() != 0:
        (data / "usage-bot.sqlite3").chmod(0o444)
        data.chmod(0o555)
    else:
        pytest.skip("root without mount namespaces: root writes through any file mode")
    try:
        done = await asyncio.to_thread(
            subprocess.run,
            command,
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    finally:
        data.chmod(0o755)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert f"USAGE_BOT_STATE={data / 'usage-bot.sqlite3'} cannot be used as the state" in (
        done.stderr
    )
    assert "point it at a writable file on a local disk" in done.stderr


async def test_state_deleted_mid_run(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Row state-deleted-mid-run: the store notices at its next use that the path no longer
    names its file, says so, and writes what it holds back there; so neither the running
    bot nor the next start loses or doubles an announcement."""
    async with open_world(tmp_path) as world:
        await world.poll(0)
        _delete_state(tmp_path)
        world.upstream.payload = usage(96)
        await world.poll()
        await world.poll()
        assert world.inbox.summary() == [T80, T95]
        assert "was deleted while the bot ran" in caplog.text
        assert stat.S_IMODE(os.stat(world.settings.state).st_mode) == 0o600
        # A restart: a new scheduler and store on the same path, written back.
        store = await SQLiteStore.open(world.settings.state)
        courier = Courier(
            queue=store, clock=world.clock, owner="restarted", notifiers=[world.inbox]
        )
        restarted = AlertScheduler(
            settings=world.settings,
            service=world.service,
            store=store,
            courier=courier,
            clock=world.clock,
        )
        try:
            world.clock.advance(180)
            await restarted.poll_once(ACCOUNT)
            await restarted.deliver_pending()
        finally:
            await restarted.stop()
            await store.close()
        assert world.inbox.summary() == [T80, T95]


def _delete_state(folder: Path) -> None:
    for leftover in folder.glob("usage-bot.sqlite3*"):
        leftover.unlink()


# -- the process: SIGKILL at random moments --------------------------------------------------

ITERATIONS = 3
HOLD = 1.2  # how long FakeSlack holds a post, when it does


def _snapshot(state: Path) -> list[tuple[str, str, str, str | None]]:
    """``(key, destination, status, claimed_by)`` of every delivery, as the dead left it."""
    if not state.exists():
        return []
    with contextlib.closing(sqlite3.connect(state, timeout=10)) as conn:
        try:
            rows = conn.execute(
                "SELECT key, destination, status, claimed_by FROM deliveries ORDER BY seq"
            ).fetchall()
        except sqlite3.OperationalError:  # killed before the schema was written
            return []
    return [(str(r[0]), str(r[1]), str(r[2]), r[3]) for r in rows]


def _lapse_leases(state: Path) -> None:
    """Two minutes pass for the claims the dead left (their lease), without waiting them."""
    with contextlib.closing(sqlite3.connect(state, timeout=10, isolation_level=None)) as conn:
        conn.execute(
            "UPDATE deliveries SET not_before_us = 0 "
            "WHERE status = 'pending' AND claimed_by IS NOT NULL"
        )


def _posted_windows(slack: FakeSlack) -> Counter[int]:
    """How many times an alert for each window (by its reset time) reached the channel."""
    posted: Counter[int] = Counter()
    for post in slack.posts:
        found = re.search(r"<!date\^(\d+)\^", text_of(post))
        assert found, post
        posted[int(found[1])] += 1
    return posted


async def test_sigkill_at_random_moments_around_alert_posts(
    tmp_path: Path, slack: FakeSlack
) -> None:
    """Row process-sigkill: ``usage-bot run`` is killed with SIGKILL at a random moment
    after it has recorded an alert: before the claim, while FakeSlack holds the post
    (before Slack acted on it, or after), or after the confirm. The claims the dead left
    are let lapse (their lease's two minutes, without the wait), the next process
    carries on. In the end every window's alert reached Slack; any second copy must be
    explained by a kill that landed after Slack took the post and before the confirm."""
    seed = random.randrange(2**32)  # noqa: S311 - picks timings, not secrets
    rng = random.Random(seed)  # noqa: S311
    clock = FakeClock()
    state = tmp_path / "usage-bot.sqlite3"
    write_login(tmp_path / "claude", now=datetime.now(UTC))
    first_reset = datetime.now(UTC).replace(microsecond=0) + timedelta(days=1)
    windows = [first_reset + timedelta(hours=i) for i in range(ITERATIONS + 1)]
    kills: list[str] = []
    in_the_window: set[tuple[str, int]] = set()

    async with SimulatedUpstream(clock=clock, token=None) as upstream:
        env = {
            "PATH": os.environ.get("PATH", ""),
            "HOME": str(tmp_path),
            "CLAUDE_CONFIG_DIR": str(tmp_path / "claude"),
            "USAGE_BOT_STATE": str(state),
            "USAGE_BOT_API_BASE_URL": upstream.url,
            "USAGE_BOT_HTTP_PORT": "0",
            "USAGE_BOT_POLL_SECONDS": "1",
            "USAGE_BOT_RESET_ANNOUNCE": "never",
            "SLACK_BOT_TOKEN": SLACK_BOT_TOKEN,
            "SLACK_APP_TOKEN": SLACK_APP_TOKEN,
            "SLACK_API_BASE_URL": slack.api_url,
            "SLACK_ALERT_CHANNEL": SLACK_CHANNEL,
        }

        async def start() -> asyncio.subprocess.Process:
            return await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "usage_bot",
                "run",
                env=env,
                cwd=tmp_path,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL,
            )

        async def until(condition: object, what: str, within: float = 30) -> None:
            assert callable(condition)
            deadline = time.monotonic() + within
            while not condition():
                assert time.monotonic() < deadline, f"seed {seed}: never {what}"
                await asyncio.sleep(0.02)

        def recorded() -> int:
            return sum(1 for row in _snapshot(state) if row[1].startswith("slack:"))

        for i in range(ITERATIONS):
            # A limit of its own each time: one window after another of the same limit at
            # 96 % would be one window with a moved end (PRODUCT.md, "Windows").
            upstream.payload = {
                f"seven_day_w{i}": {"utilization": 96.0, "resets_at": windows[i].isoformat()}
            }
            plan = rng.choice(["held before Slack acts", "held after Slack acts", "not held"])
            if plan != "not held":
                slack.delay("chat.postMessage", HOLD, accepted=plan == "held after Slack acts")
            process = await start()
            try:
                await until(lambda i=i: recorded() > i, f"recorded window {i}")
                await asyncio.sleep(rng.uniform(0, HOLD + 0.3))
            finally:
                with contextlib.suppress(ProcessLookupError):
                    process.send_signal(signal.SIGKILL)
                await process.wait()
            await asyncio.sleep(0.3)  # let FakeSlack finish what was under way
            posted = _posted_windows(slack)
            left = [
                key
                for key, destination, status, claim in _snapshot(state)
                if destination.startswith("slack:") and status == "pending" and claim
            ]
            # A claim the previous kill left may be left again, unposted, by this one: a post
            # counts once, as (key, how many times it reached Slack).
            unconfirmed = {
                (key, posted[_epoch_of(key, windows)])
                for key in left
                if posted[_epoch_of(key, windows)] > _done(state, key)
            }
            new = unconfirmed - in_the_window
            in_the_window |= unconfirmed
            kills.append(f"{plan}: {len(left)} claim(s) left, {len(new)} newly posted unconfirmed")
            _lapse_leases(state)

        last = ITERATIONS - 1
        upstream.payload = {
            f"seven_day_w{last}": {"utilization": 96.0, "resets_at": windows[last].isoformat()}
        }
        asked = len(upstream.requests)
        process = await start()
        try:
            # Running (its signal handlers in place) once it has asked the upstream.
            await until(lambda: len(upstream.requests) > asked, "started")
            await until(
                lambda: (
                    bool(_snapshot(state))
                    and all(r[2] == "done" for r in _snapshot(state) if r[1].startswith("slack:"))
                ),
                "delivered everything",
            )
        finally:
            process.send_signal(signal.SIGTERM)
            code = await asyncio.wait_for(process.wait(), 15)
    assert code == 0, f"seed {seed}: SIGTERM ended usage-bot with {code}"
    posted = _posted_windows(slack)
    expected = {_shown(w) for w in windows[:ITERATIONS]}
    report = f"seed {seed}: kills {kills}; posts per window {dict(posted)}"
    print(report)
    assert set(posted) == expected, f"missed: {report}"
    duplicates = sum(n - 1 for n in posted.values())
    assert duplicates == len(in_the_window), f"doubled: {report}"


def _epoch_of(key: str, windows: list[datetime]) -> int:
    # threshold:default:seven_day_w3:2026-07-20T13:05Z:95 -> the window resetting then
    found = re.search(r":(\d{4}-\d\d-\d\dT\d\d:\d\dZ)(?:~\d+)?:", key)
    assert found, key
    when = datetime.strptime(found[1], "%Y-%m-%dT%H:%MZ").replace(tzinfo=UTC)
    return next(_shown(w) for w in windows if abs(w - when) <= timedelta(minutes=1))


def _shown(window: datetime) -> int:
    """A window's reset time as Slack's date token carries it: the nearest minute."""
    return int(to_the_minute(window).timestamp())


def _done(state: Path, key: str) -> int:
    rows = _snapshot(state)
    return sum(
        1 for k, d, status, _ in rows if k == key and d.startswith("slack:") and status == "done"
    )


def test_every_state_row_is_documented() -> None:
    doc = (Path(__file__).parent.parent / "docs" / "reliability.md").read_text(encoding="utf-8")
    for row_id in (
        "state-locked-briefly",
        "state-locked-long",
        "state-locked-at-confirm",
        "state-read-only-mid-run",
        "state-read-only-at-start",
        "state-deleted-mid-run",
        "process-sigkill",
    ):
        assert f"`{row_id}`" in doc
