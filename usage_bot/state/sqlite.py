"""The state store in one SQLite file (``USAGE_BOT_STATE``), shared safely by processes.

The file is created readable by its owner only (SQLite gives its ``-wal`` and ``-shm``
files the same mode). It runs in WAL mode, so readers never wait for the writer, with a
busy timeout, so two processes sharing it take turns instead of failing, and with full
sync, so a committed announcement survives a power cut as well as a ``kill -9``. Every
write is one ``BEGIN IMMEDIATE`` transaction: the write lock is taken before anything is
read, which is what makes read-decide-write and claims atomic across processes.

The schema is versioned with ``PRAGMA user_version``; :data:`_MIGRATIONS` holds each
version's statements, applied in order in one transaction when the file is opened.

Calls run in a worker thread (:func:`asyncio.to_thread`), one at a time per store, so a
busy database never stalls the event loop. Times are stored as integer microseconds since
the epoch, in UTC: exact, and they sort.

``sqlite3`` stays in this module: an error SQLite raises while opening is a
:class:`~usage_bot._exceptions.ConfigError` (the bot does not start), and one raised by a
call is a :class:`~usage_bot._exceptions.StateUnavailable` saying, in one sentence, what
it means and what to do (:data:`_MEANINGS`), with SQLite's own error chained to it. The
call's transaction is rolled back: nothing of it is kept.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sqlite3
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, fields, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar, overload

from usage_bot._alerts import AccountLedger, Assessment, IncidentRecord, WindowRecord
from usage_bot._exceptions import ConfigError, StateUnavailable, StoreClosed
from usage_bot._model import UsageSnapshot
from usage_bot._notify import AlertMessage
from usage_bot.state import (
    DELIVERIES_KEEP,
    HISTORY_KEEP,
    Delivery,
    LedgerStep,
    UsageSample,
)

T = TypeVar("T")

log = logging.getLogger(__name__)

BUSY_TIMEOUT = 5.0
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)

_MIGRATIONS: tuple[tuple[str, ...], ...] = (
    # 1: the first schema.
    (
        """
        CREATE TABLE windows (
            account TEXT NOT NULL,
            limit_id TEXT NOT NULL,
            window_us INTEGER,
            resets_at_us INTEGER,
            level REAL NOT NULL DEFAULT 0,
            updated_us INTEGER NOT NULL,
            PRIMARY KEY (account, limit_id)
        )
        """,
        """
        CREATE TABLE incidents (
            account TEXT PRIMARY KEY,
            open INTEGER NOT NULL DEFAULT 0,
            number INTEGER NOT NULL DEFAULT 0,
            failing_since_us INTEGER,
            last_failed_check_us INTEGER,
            updated_us INTEGER NOT NULL
        )
        """,
        """
        CREATE TABLE deliveries (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            key TEXT NOT NULL,
            destination TEXT NOT NULL,
            account TEXT NOT NULL,
            kind TEXT NOT NULL,
            message TEXT NOT NULL,
            created_us INTEGER NOT NULL,
            expires_us INTEGER,
            status TEXT NOT NULL DEFAULT 'pending'
                CHECK (status IN ('pending', 'done', 'dropped')),
            claimed_by TEXT,
            not_before_us INTEGER NOT NULL DEFAULT 0,
            attempts INTEGER NOT NULL DEFAULT 0,
            last_error TEXT,
            finished_us INTEGER,
            UNIQUE (key, destination)
        )
        """,
        "CREATE INDEX deliveries_queue ON deliveries (destination, status, seq)",
        """
        CREATE TABLE samples (
            account TEXT NOT NULL,
            limit_id TEXT NOT NULL,
            percent REAL NOT NULL,
            resets_at_us INTEGER,
            sampled_us INTEGER NOT NULL,
            PRIMARY KEY (account, limit_id, sampled_us)
        )
        """,
        "CREATE INDEX samples_age ON samples (sampled_us)",
        """
        CREATE TABLE settings (
            key TEXT PRIMARY KEY,
            value TEXT NOT NULL,
            updated_us INTEGER NOT NULL
        )
        """,
    ),
    # 2: windows followed as the upstream really behaves (moved ends, early resets,
    # inactive windows): the last percent read, the phase, and what tells two windows
    # with the same first end apart. Rows of version 1 are active windows.
    (
        "ALTER TABLE windows ADD COLUMN percent REAL",
        "ALTER TABLE windows ADD COLUMN phase TEXT NOT NULL DEFAULT 'active'",
        "ALTER TABLE windows ADD COLUMN serial INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE windows ADD COLUMN reset_announced INTEGER NOT NULL DEFAULT 0",
    ),
    # 3: the ids of the windows before each one (space-separated), so that a new window's
    # id repeats none of them.
    ("ALTER TABLE windows ADD COLUMN recent TEXT NOT NULL DEFAULT ''",),
)
SCHEMA_VERSION = len(_MIGRATIONS)


class SQLiteStore:
    """:class:`usage_bot.state.StateStore` in one SQLite file. Build it with :meth:`open`.

    ``busy_timeout``: how long a call waits for another process's write lock before it
    gives up with StateUnavailable.
    """

    def __init__(
        self, connection: sqlite3.Connection, path: str, *, busy_timeout: float = BUSY_TIMEOUT
    ) -> None:
        # None once closed, or between losing the file and opening it again (see _connection).
        self._conn: sqlite3.Connection | None = connection
        self._closed = False
        self._lock = threading.Lock()
        self.path = path
        self._busy_timeout = busy_timeout
        self._inode = _inode(path)
        # The -wal and -shm files this connection uses, to remove them if the file goes.
        self._companions = {name: _inode(path + name) for name in _COMPANIONS}

    @classmethod
    async def open(cls, path: str | Path, *, busy_timeout: float = BUSY_TIMEOUT) -> SQLiteStore:
        """Open (creating it 0600 if needed) and migrate; raise ConfigError if it cannot."""
        return await asyncio.to_thread(cls.open_blocking, path, busy_timeout=busy_timeout)

    @classmethod
    def open_blocking(cls, path: str | Path, *, busy_timeout: float = BUSY_TIMEOUT) -> SQLiteStore:
        """:meth:`open` for code outside the event loop (``doctor``, scripts)."""
        where = str(path)
        try:
            if where != ":memory:":
                _warn_if_truncated(Path(where).expanduser(), str(path))
                _create_private(Path(where).expanduser())
                where = str(Path(where).expanduser())
            conn = sqlite3.connect(
                where, timeout=busy_timeout, isolation_level=None, check_same_thread=False
            )
        except (OSError, sqlite3.Error) as exc:
            raise _unusable(str(path), exc) from None
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if mode != "wal" and where != ":memory:":
                log.warning(
                    "USAGE_BOT_STATE=%s cannot use write-ahead logging (journal mode %s); "
                    "keep it on a local disk, not a network share",
                    path,
                    mode,
                )
            conn.execute("PRAGMA synchronous = FULL")
            _migrate(conn, str(path))
        except sqlite3.Error as exc:
            conn.close()
            raise _unusable(str(path), exc) from None
        except BaseException:
            conn.close()
            raise
        return cls(conn, where, busy_timeout=busy_timeout)

    async def close(self) -> None:
        await asyncio.to_thread(self.close_blocking)

    def close_blocking(self) -> None:
        """:meth:`close` for code outside the event loop."""
        with self._lock:
            self._closed = True
            conn, self._conn = self._conn, None
            if conn is not None:
                try:
                    conn.close()
                except sqlite3.Error as exc:
                    raise self._unavailable(exc) from exc

    # -- the alert ledger -------------------------------------------------------------

    async def load_ledger(self, account: str) -> AccountLedger:
        return await self._run(lambda conn: _load_ledger(conn, account))

    async def update_ledger(
        self,
        account: str,
        step: LedgerStep,
        *,
        destinations: Sequence[str],
        now: datetime,
    ) -> Assessment:
        def run(conn: sqlite3.Connection) -> Assessment:
            with _write(conn):
                assessment = step(_load_ledger(conn, account))
                _save_ledger(conn, assessment.ledger, now)
                for event in assessment.events:
                    message = event.message()
                    for destination in destinations:
                        conn.execute(
                            "INSERT OR IGNORE INTO deliveries (key, destination, account, "
                            "kind, message, created_us, expires_us) VALUES (?, ?, ?, ?, ?, ?, ?)",
                            (
                                message.key,
                                destination,
                                account,
                                message.kind,
                                _encode_message(message),
                                _us(now),
                                _us(event.expires_at),
                            ),
                        )
                return assessment

        return await self._run(run)

    # -- deliveries -------------------------------------------------------------------

    async def claim_next(
        self, destination: str, *, owner: str, now: datetime, lease: timedelta
    ) -> Delivery | None:
        at, until = _us(now), _us(now + lease)

        def run(conn: sqlite3.Connection) -> Delivery | None:
            with _write(conn):
                row = conn.execute(
                    "SELECT seq, key, destination, message, created_us, expires_us, attempts, "
                    "claimed_by, not_before_us FROM deliveries "
                    "WHERE destination = ? AND status = 'pending' ORDER BY seq LIMIT 1",
                    (destination,),
                ).fetchone()
                # Only the oldest may go: the later ones wait for it, to keep the order.
                if row is None or row[8] > at:
                    return None
                claim = f"{owner}#{uuid.uuid4().hex[:12]}"
                conn.execute(
                    "UPDATE deliveries SET claimed_by = ?, not_before_us = ?, "
                    "attempts = attempts + 1 WHERE seq = ?",
                    (claim, until, row[0]),
                )
                delivery = _delivery(row[1:])
                return replace(delivery, attempts=delivery.attempts + 1, claim=claim)

        return await self._run(run)

    async def confirm(self, delivery: Delivery, *, now: datetime) -> bool:
        def run(conn: sqlite3.Connection) -> bool:
            with _write(conn):
                done = conn.execute(
                    "UPDATE deliveries SET status = 'done', finished_us = ?, claimed_by = NULL, "
                    "last_error = NULL WHERE key = ? AND destination = ? AND status = 'pending'",
                    (_us(now), delivery.key, delivery.destination),
                )
                return done.rowcount == 1

        return await self._run(run)

    async def release(self, delivery: Delivery, *, retry_at: datetime, error: str) -> None:
        def run(conn: sqlite3.Connection) -> None:
            with _write(conn):
                # Only our own claim: one taken over after our lease ran out is not ours.
                conn.execute(
                    "UPDATE deliveries SET claimed_by = NULL, not_before_us = ?, last_error = ? "
                    "WHERE key = ? AND destination = ? AND status = 'pending' "
                    "AND claimed_by = ?",
                    (_us(retry_at), error, delivery.key, delivery.destination, delivery.claim),
                )

        await self._run(run)

    async def expire(self, *, now: datetime) -> list[Delivery]:
        def run(conn: sqlite3.Connection) -> list[Delivery]:
            at = _us(now)
            with _write(conn):
                rows = conn.execute(
                    "SELECT seq, key, destination, message, created_us, expires_us, attempts, "
                    "claimed_by, not_before_us FROM deliveries "
                    "WHERE status = 'pending' AND expires_us <= ? "
                    "AND NOT (claimed_by IS NOT NULL AND not_before_us > ?) ORDER BY seq",
                    (at, at),
                ).fetchall()
                conn.executemany(
                    "UPDATE deliveries SET status = 'dropped', finished_us = ?, "
                    "claimed_by = NULL WHERE seq = ?",
                    [(at, row[0]) for row in rows],
                )
            return [_delivery(row[1:]) for row in rows]

        return await self._run(run)

    async def pending(self, destination: str | None = None) -> list[Delivery]:
        def run(conn: sqlite3.Connection) -> list[Delivery]:
            rows = conn.execute(
                "SELECT key, destination, message, created_us, expires_us, attempts, claimed_by, "
                "not_before_us FROM deliveries WHERE status = 'pending' "
                "AND (?1 IS NULL OR destination = ?1) ORDER BY seq",
                (destination,),
            ).fetchall()
            return [_delivery(row) for row in rows]

        return await self._run(run)

    # -- usage history ----------------------------------------------------------------

    async def record_usage(self, account: str, snapshot: UsageSnapshot) -> None:
        rows = [
            (account, limit.id, limit.percent, _us(limit.resets_at), _us(snapshot.fetched_at))
            for limit in snapshot.limits
        ]

        def run(conn: sqlite3.Connection) -> None:
            with _write(conn):
                # A cached snapshot handed out again is the same sample, not a new one.
                conn.executemany(
                    "INSERT OR IGNORE INTO samples (account, limit_id, percent, resets_at_us, "
                    "sampled_us) VALUES (?, ?, ?, ?, ?)",
                    rows,
                )

        await self._run(run)

    async def history(
        self, account: str | None = None, *, since: datetime | None = None
    ) -> list[UsageSample]:
        def run(conn: sqlite3.Connection) -> list[UsageSample]:
            rows = conn.execute(
                "SELECT account, limit_id, percent, resets_at_us, sampled_us FROM samples "
                "WHERE (?1 IS NULL OR account = ?1) AND (?2 IS NULL OR sampled_us >= ?2) "
                "ORDER BY sampled_us, account, limit_id",
                (account, _us(since)),
            ).fetchall()
            return [
                UsageSample(
                    account=row[0],
                    limit_id=row[1],
                    percent=row[2],
                    resets_at=_time(row[3]),
                    sampled_at=_from_us(row[4]),
                )
                for row in rows
            ]

        return await self._run(run)

    async def prune(self, *, now: datetime) -> int:
        def run(conn: sqlite3.Connection) -> int:
            with _write(conn):
                samples = conn.execute(
                    "DELETE FROM samples WHERE sampled_us < ?", (_us(now - HISTORY_KEEP),)
                )
                deliveries = conn.execute(
                    "DELETE FROM deliveries WHERE status != 'pending' AND finished_us < ?",
                    (_us(now - DELIVERIES_KEEP),),
                )
                return samples.rowcount + deliveries.rowcount

        return await self._run(run)

    # -- small settings ---------------------------------------------------------------

    async def get_value(self, key: str) -> str | None:
        def run(conn: sqlite3.Connection) -> str | None:
            row = conn.execute("SELECT value FROM settings WHERE key = ?", (key,)).fetchone()
            return None if row is None else str(row[0])

        return await self._run(run)

    async def set_value(self, key: str, value: str) -> None:
        now = _us(datetime.now(UTC))

        def run(conn: sqlite3.Connection) -> None:
            with _write(conn):
                conn.execute(
                    "INSERT INTO settings (key, value, updated_us) VALUES (?, ?, ?) "
                    "ON CONFLICT (key) DO UPDATE SET value = excluded.value, "
                    "updated_us = excluded.updated_us",
                    (key, value, now),
                )

        await self._run(run)

    # -- plumbing ---------------------------------------------------------------------

    async def _run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        return await asyncio.to_thread(self._locked, work)

    def _locked(self, work: Callable[[sqlite3.Connection], T]) -> T:
        with self._lock:
            if self._closed:
                raise StoreClosed()
            try:
                conn = self._connection()
            except (sqlite3.Error, OSError) as exc:
                raise self._unavailable(exc) from exc
            except ConfigError as exc:  # the file now at the path cannot be opened
                raise StateUnavailable(exc.problems[0]) from exc
            try:
                return work(conn)
            except sqlite3.Error as exc:
                raise self._unavailable(exc) from exc

    def _connection(self) -> sqlite3.Connection:
        """The connection to work on: the open one while the path still names its file.

        If the file was deleted or replaced, an open connection would go on writing to a
        file no one will open again, and the next start would forget every announcement.
        So what it holds is written back to the path (if the path is free; if another file
        stands there, that one is used), the old connection is closed, its ``-wal`` and
        ``-shm`` files are removed (SQLite would otherwise replay the old file's log into
        the new one: https://sqlite.org/howtocorrupt.html#_mispairing_database_files), and
        a new connection is opened. If writing back fails, the old connection is kept, to
        try again at the next call; if opening fails, the next call tries again.
        """
        conn = self._conn
        if conn is not None and (self._inode is None or _inode(self.path) == self._inode):
            return conn
        if conn is not None:
            deleted = _inode(self.path) is None
            if deleted:
                log.error(
                    "USAGE_BOT_STATE=%s was deleted while the bot ran; writing the alert "
                    "state back to it",
                    self.path,
                )
                _create_private(Path(self.path))
                try:
                    conn.execute("VACUUM INTO ?", (self.path,))
                except BaseException:
                    # Half a copy would pass for "another file" next time: start it again.
                    Path(self.path).unlink(missing_ok=True)
                    raise
            else:
                log.warning(
                    "USAGE_BOT_STATE=%s was replaced by another file while the bot ran; using it",
                    self.path,
                )
            self._conn = None
            conn.close()
            for name, inode in self._companions.items():
                # Next to a written-back file, any is the old one's; next to a replacement,
                # only those still ours are (the replacement may have brought its own).
                if deleted or (inode is not None and _inode(self.path + name) == inode):
                    Path(self.path + name).unlink(missing_ok=True)
        fresh = SQLiteStore.open_blocking(self.path, busy_timeout=self._busy_timeout)
        assert fresh._conn is not None
        self._conn, self._inode, self._companions = fresh._conn, fresh._inode, fresh._companions
        return fresh._conn

    def _unavailable(self, exc: sqlite3.Error | OSError) -> StateUnavailable:
        """The one sentence for an error SQLite (or the file system) raised during a call."""
        if isinstance(exc, OSError):
            said, name = exc.strerror or str(exc), "OS"
        else:
            said, name = str(exc), getattr(exc, "sqlite_errorname", None) or ""
        primary = "_".join(name.split("_")[:2])  # SQLITE_IOERR_WRITE -> SQLITE_IOERR
        meaning, fix = _MEANINGS.get(primary, _MEANINGS[""])
        meaning = meaning.format(busy=f"{self._busy_timeout:g}")
        return StateUnavailable(
            f"USAGE_BOT_STATE={self.path} cannot be used now: {said} ({meaning}); {fix}."
        )


# What SQLite's primary result codes mean to whoever runs the bot, and what to do. Nothing
# of a failed call is kept, and the scheduler catches up on its next poll by itself.
_MEANINGS: Mapping[str, tuple[str, str]] = {
    "SQLITE_BUSY": (
        "another process kept it locked for over {busy} s",
        "if this lasts, stop whatever holds it open (an sqlite3 shell, a backup)",
    ),
    "SQLITE_LOCKED": (
        "another connection kept it locked",
        "if this lasts, stop whatever holds it open (an sqlite3 shell, a backup)",
    ),
    "SQLITE_READONLY": (
        "the file or its file system cannot be written",
        "make both writable by the bot's user; the bot then catches up by itself",
    ),
    "SQLITE_FULL": ("its disk is full", "free space on it; the bot then catches up by itself"),
    "SQLITE_IOERR": (
        "the disk failed to read or write it",
        "check the disk (the volume, in a container); the bot tries again",
    ),
    "SQLITE_CANTOPEN": (
        "the file or its folder cannot be opened",
        "check that its folder exists and is writable by the bot's user",
    ),
    "SQLITE_PERM": (
        "the bot's user may not write it",
        "make the file and its folder writable by that user",
    ),
    "SQLITE_CORRUPT": (
        "the file is damaged",
        "restore it from a backup, or move it aside and restart (alerts of the current "
        "windows may then be posted again)",
    ),
    "SQLITE_NOTADB": (
        "the file is not a usage-bot state database",
        "point USAGE_BOT_STATE back at the bot's own file",
    ),
    "OS": (
        "the file system refused",
        "check that its folder exists and is writable by the bot's user",
    ),
    "": ("the state database failed", "the bot tries again; if this lasts, report it"),
}


_COMPANIONS = ("-wal", "-shm")


def _inode(path: str) -> int | None:
    """The file's identity, to notice it deleted or replaced; None for none (or memory)."""
    if path == ":memory:":
        return None
    try:
        return os.stat(path).st_ino
    except OSError:
        return None


def _warn_if_truncated(path: Path, shown: str) -> None:
    """A state file that exists but is empty is what a truncation leaves (a new file does
    not exist yet): the memory of what was announced is gone, and the operator should know."""
    try:
        empty = path.stat().st_size == 0 and path.is_file()
    except OSError:
        return
    if empty:
        log.warning(
            "USAGE_BOT_STATE=%s is empty (0 bytes, as a truncation leaves it): starting with "
            "a fresh alert ledger, so alerts already posted in the current windows may be "
            "posted again",
            shown,
        )


def _create_private(path: Path) -> None:
    """Create the file readable by its owner only; an existing file keeps its mode."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    os.close(fd)


def _unusable(path: str, exc: BaseException) -> ConfigError:
    reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
    return ConfigError(
        [
            f"USAGE_BOT_STATE={path} cannot be used as the state database ({reason}): point "
            "it at a writable file on a local disk (a volume, in a container)."
        ]
    )


def _migrate(conn: sqlite3.Connection, path: str) -> None:
    with _write(conn):
        version = int(conn.execute("PRAGMA user_version").fetchone()[0])
        if version > SCHEMA_VERSION:
            raise ConfigError(
                [
                    f"USAGE_BOT_STATE={path} was written by a newer usage-bot (schema "
                    f"{version}; this one knows up to {SCHEMA_VERSION}): upgrade usage-bot, "
                    "or point USAGE_BOT_STATE at another file."
                ]
            )
        for number, statements in enumerate(_MIGRATIONS[version:], start=version + 1):
            for statement in statements:
                conn.execute(statement)
            # PRAGMA takes no parameters; ``number`` is our own integer.
            conn.execute(f"PRAGMA user_version = {number}")


@contextmanager
def _write(conn: sqlite3.Connection) -> Iterator[None]:
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def _load_ledger(conn: sqlite3.Connection, account: str) -> AccountLedger:
    windows = {
        row[0]: WindowRecord(
            window=_time(row[1]),
            resets_at=_time(row[2]),
            level=row[3],
            percent=row[4],
            phase=row[5] if row[5] in ("active", "ended", "idle") else "active",
            serial=row[6],
            reset_announced=bool(row[7]),
            recent=tuple(row[8].split()),
        )
        for row in conn.execute(
            "SELECT limit_id, window_us, resets_at_us, level, percent, phase, serial, "
            "reset_announced, recent FROM windows WHERE account = ?",
            (account,),
        )
    }
    row = conn.execute(
        "SELECT open, number, failing_since_us, last_failed_check_us FROM incidents "
        "WHERE account = ?",
        (account,),
    ).fetchone()
    incident = (
        IncidentRecord()
        if row is None
        else IncidentRecord(
            open=bool(row[0]),
            number=row[1],
            failing_since=_time(row[2]),
            last_failed_check=_time(row[3]),
        )
    )
    return AccountLedger(account=account, windows=windows, incident=incident)


def _save_ledger(conn: sqlite3.Connection, ledger: AccountLedger, now: datetime) -> None:
    at = _us(now)
    # The ledger is stored as the engine returned it: a window it dropped is forgotten.
    conn.execute("DELETE FROM windows WHERE account = ?", (ledger.account,))
    conn.executemany(
        "INSERT INTO windows (account, limit_id, window_us, resets_at_us, level, percent, "
        "phase, serial, reset_announced, recent, updated_us) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            (
                ledger.account,
                limit_id,
                _us(r.window),
                _us(r.resets_at),
                r.level,
                r.percent,
                r.phase,
                r.serial,
                int(r.reset_announced),
                " ".join(r.recent),
                at,
            )
            for limit_id, r in ledger.windows.items()
        ],
    )
    incident = ledger.incident
    conn.execute(
        "INSERT INTO incidents (account, open, number, failing_since_us, last_failed_check_us, "
        "updated_us) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (account) DO UPDATE SET "
        "open = excluded.open, number = excluded.number, "
        "failing_since_us = excluded.failing_since_us, "
        "last_failed_check_us = excluded.last_failed_check_us, updated_us = excluded.updated_us",
        (
            ledger.account,
            int(incident.open),
            incident.number,
            _us(incident.failing_since),
            _us(incident.last_failed_check),
            at,
        ),
    )


def _delivery(row: Sequence[Any]) -> Delivery:
    """A Delivery from ``key, destination, message, created_us, expires_us, attempts,
    claimed_by`` (and any columns after them)."""
    return Delivery(
        key=row[0],
        destination=row[1],
        message=_decode_message(row[2]),
        created_at=_from_us(row[3]),
        expires_at=_time(row[4]),
        attempts=row[5],
        claim=row[6],
    )


_MESSAGE_FIELDS = frozenset(f.name for f in fields(AlertMessage))


def _encode_message(message: AlertMessage) -> str:
    data = asdict(message)
    data["resets_at"] = message.resets_at.isoformat() if message.resets_at else None
    return json.dumps(data, ensure_ascii=False)


def _decode_message(text: str) -> AlertMessage:
    data = json.loads(text)
    # A row written by a newer version may carry fields this one does not know.
    known = {k: v for k, v in data.items() if k in _MESSAGE_FIELDS}
    if known.get("resets_at") is not None:
        known["resets_at"] = datetime.fromisoformat(known["resets_at"])
    return AlertMessage(**known)


@overload
def _us(moment: datetime) -> int: ...


@overload
def _us(moment: datetime | None) -> int | None: ...


def _us(moment: datetime | None) -> int | None:
    if moment is None:
        return None
    return (moment - _EPOCH) // _MICROSECOND


def _from_us(value: int) -> datetime:
    return _EPOCH + timedelta(microseconds=value)


def _time(value: int | None) -> datetime | None:
    return None if value is None else _from_us(value)
