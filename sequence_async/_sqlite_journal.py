"""
The embedded journal: one SQLite file, and reading one back.

Owns ``SqliteJournal``: WAL, ``synchronous=FULL``, written from one thread,
with every write that arrives while a commit is under way grouped into the
next commit (so the intents of a concurrency window share one). A file that
is not a journal, or a damaged one, is refused and never written; a journal
in use by another process is refused too (an exclusive ``flock`` on the
file). Owns ``read_journal`` and ``JournalSummary`` too.

The standard ``sqlite3`` module is used on a dedicated thread rather than a
dependency such as aiosqlite: the same design, and the library keeps needing
nothing beyond aiohttp, attrs, cattrs and tenacity.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import sqlite3
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import attrs

from . import errors
from ._journal import ItemState, JournalEntry


_APPLICATION_ID = 0x53514A4C  # "SQJL": a sequence-async journal
_SCHEMA = 1
_COLUMNS = (
    "position",
    "identity",
    "rule_id",
    "amount",
    "idempotency_key",
    "state",
    "sent_at",
    "execution_id",
    "status",
    "result",
    "error_type",
    "error_message",
    "updated_at",
)
# Built from the constant column names above, never from input.
_INSERT = (
    f"INSERT OR REPLACE INTO items ({', '.join(_COLUMNS)}) "  # noqa: S608
    f"VALUES ({', '.join('?' * len(_COLUMNS))})"
)
_SELECT = f"SELECT {', '.join(_COLUMNS)} FROM items ORDER BY position"  # noqa: S608
_TABLES = (
    "CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)",
    (
        "CREATE TABLE items (position INTEGER PRIMARY KEY,"
        " identity TEXT NOT NULL UNIQUE, rule_id TEXT NOT NULL, amount INTEGER,"
        " idempotency_key TEXT NOT NULL, state TEXT NOT NULL, sent_at REAL,"
        " execution_id TEXT, status TEXT, result TEXT, error_type TEXT,"
        " error_message TEXT, updated_at REAL NOT NULL)"
    ),
)


class SqliteJournal:
    """
    A journal in one SQLite file, created if missing.

    Args:
        path: The file.
        clock: Wall-clock seconds (injectable, to test the 24-hour rules).

    Raises:
        errors.JournalError: On ``open``: the file is not a journal, or
            another process has it open.
    """

    def __init__(
        self, path: str | os.PathLike[str], *, clock: Callable[[], float] = time.time
    ) -> None:
        self.path = Path(path)
        self.clock = clock
        self._executor: ThreadPoolExecutor | None = None
        self._db: sqlite3.Connection | None = None
        self._lock_fd: int | None = None
        self._pending: list[tuple[Sequence[JournalEntry], asyncio.Future[None]]] = []
        self._flusher: asyncio.Task[None] | None = None

    def __repr__(self) -> str:
        return f"<SqliteJournal {str(self.path)!r}>"

    async def open(self, *, api: str = "api-v1") -> tuple[str, list[JournalEntry]]:
        """
        Lock and open the file (creating it), return its run id and entries.

        Raises:
            errors.JournalError: Not a journal, in use, or a journal of runs
                against the other API (its keys mean nothing there).
        """
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="sequence-journal")
        try:
            opened: tuple[str, list[JournalEntry]] = await self._call(self._open, api)
        except BaseException:
            await self.close()
            raise
        return opened

    def _open(self, api: str) -> tuple[str, list[JournalEntry]]:
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise errors.JournalError(f"{self.path} cannot be opened: {exc}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise errors.JournalError(
                f"{self.path} is in use by another process; one run at a time"
            ) from None
        self._lock_fd = fd
        db = self._db = _connect(self.path)
        try:
            if not _check(db, self.path):
                _create(db, self.clock(), api)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            _check_api(db, self.path, api)
            return _read(db)
        except errors.JournalError:
            raise
        except (sqlite3.Error, ValueError, TypeError, KeyError) as exc:
            raise errors.JournalError(
                f"{self.path} is a damaged journal ({type(exc).__name__}: {exc});"
                " it was left as it is"
            ) from None

    async def write(self, entries: Sequence[JournalEntry]) -> None:
        """
        Store *entries*; return once they are committed.
        """
        future = asyncio.get_running_loop().create_future()
        self._pending.append((entries, future))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush())
        await future  # cancelled, the write still lands (the batch was taken)

    async def _flush(self) -> None:
        while self._pending:
            batch, self._pending = self._pending, []
            rows = [e for entries, _ in batch for e in entries]
            try:
                await self._call(self._commit, rows)
            except BaseException as exc:  # noqa: BLE001 (handed to every writer)
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for _, future in batch:
                if not future.done():
                    future.set_result(None)

    def _commit(self, rows: Sequence[JournalEntry]) -> None:
        db = self._db
        if db is None:
            raise errors.JournalError("the journal is closed")
        # An intent must survive a power cut (fsync, FULL); answers only a
        # crash of this process (NORMAL: the next FULL commit syncs them too).
        # A lost answer costs a replay with the same key, never a payment.
        intents = any(e.state is ItemState.SENDING for e in rows)
        db.execute(f"PRAGMA synchronous={'FULL' if intents else 'NORMAL'}")
        db.execute("BEGIN IMMEDIATE")
        try:
            db.executemany(_INSERT, [_row(e) for e in rows])
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    async def close(self) -> None:
        """
        Finish pending writes, close the file and release the lock.
        """
        if self._flusher is not None:
            await asyncio.wait([self._flusher])
        if self._executor is not None:
            with contextlib.suppress(Exception):
                await self._call(self._close)
            self._executor.shutdown(wait=False)
            self._executor = None

    def _close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    async def _call(self, fn: Callable[..., Any], *args: Any) -> Any:
        if self._executor is None:
            raise errors.JournalError("the journal is closed")
        return await asyncio.get_running_loop().run_in_executor(
            self._executor, fn, *args
        )


@attrs.frozen(kw_only=True)
class JournalSummary:
    """
    What ``read_journal`` tells of a journal: counts, items for a person, age.
    """

    path: str
    run_id: str
    created_at: float
    counts: dict[str, int]
    needs_attention: tuple[JournalEntry, ...]

    def age(self, now: float | None = None) -> float:
        """
        Seconds since the run was created.
        """
        return (time.time() if now is None else now) - self.created_at


def read_journal(path: str | os.PathLike[str]) -> JournalSummary:
    """
    Read a journal file without changing it (a running run may hold it).

    ``needs_attention`` lists the items in ``needs_review``, ``unknown`` and
    ``rejected``.

    Raises:
        errors.JournalError: No such file, or not a journal.
    """
    file = Path(path)
    if not file.is_file():
        raise errors.JournalError(f"{file}: no such journal")
    db = _connect(file, read_only=True)
    try:
        if not _check(db, file):
            raise errors.JournalError(f"{file} is an empty file, not a journal")
        meta = dict(db.execute("SELECT name, value FROM meta").fetchall())
        run_id, entries = _read(db)
    except (sqlite3.Error, ValueError, TypeError, KeyError) as exc:
        raise errors.JournalError(
            f"{file} is a damaged journal ({type(exc).__name__}: {exc})"
        ) from None
    finally:
        db.close()
    counts: dict[str, int] = {}
    for entry in entries:
        counts[entry.state] = counts.get(entry.state, 0) + 1
    attention = {ItemState.NEEDS_REVIEW, ItemState.UNKNOWN, ItemState.REJECTED}
    return JournalSummary(
        path=str(file),
        run_id=run_id,
        created_at=float(meta["created_at"]),
        counts=counts,
        needs_attention=tuple(e for e in entries if e.state in attention),
    )


def _connect(path: Path, *, read_only: bool = False) -> sqlite3.Connection:
    uri = f"{path.absolute().as_uri()}?mode={'ro' if read_only else 'rw'}"
    try:
        return sqlite3.connect(
            uri,
            uri=True,
            check_same_thread=False,
            isolation_level=None,  # autocommit: every transaction is explicit
        )
    except sqlite3.Error as exc:
        raise errors.JournalError(f"{path} cannot be opened: {exc}") from None


def _check(db: sqlite3.Connection, path: Path) -> bool:
    # Whether *db* is one of our journals (True) or a new, empty file (False);
    # anything else is refused before a single byte is written.
    try:
        application_id = db.execute("PRAGMA application_id").fetchone()[0]
        tables = db.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
        version = db.execute("PRAGMA user_version").fetchone()[0]
    except sqlite3.DatabaseError as exc:
        raise errors.JournalError(
            f"{path} is not a sequence-async journal ({exc})"
        ) from None
    if application_id == 0 and tables == 0:
        return False
    if application_id != _APPLICATION_ID:
        raise errors.JournalError(
            f"{path} is not a sequence-async journal; it was left as it is"
        )
    if version != _SCHEMA:
        raise errors.JournalError(
            f"{path} is a journal of schema {version}; this version reads {_SCHEMA}"
        )
    return True


def _check_api(db: sqlite3.Connection, path: Path, api: str) -> None:
    # A journal's keys and ids belong to the API its run spoke (older
    # journals, without the row, were api-v1's).
    row = db.execute("SELECT value FROM meta WHERE name = 'api'").fetchone()
    recorded = row[0] if row else "api-v1"
    if recorded != api:
        raise errors.JournalError(
            f"{path} records a run against {recorded}; this client speaks {api}:"
            " its keys and ids mean nothing there"
        )


def _create(db: sqlite3.Connection, now: float, api: str) -> None:
    # One transaction: a crash half-way leaves an empty file, which is new.
    db.execute("BEGIN IMMEDIATE")
    db.execute(f"PRAGMA application_id = {_APPLICATION_ID}")
    db.execute(f"PRAGMA user_version = {_SCHEMA}")
    for table in _TABLES:
        db.execute(table)
    db.executemany(
        "INSERT INTO meta (name, value) VALUES (?, ?)",
        [("run_id", str(uuid.uuid4())), ("created_at", repr(now)), ("api", api)],
    )
    db.execute("COMMIT")


def _read(db: sqlite3.Connection) -> tuple[str, list[JournalEntry]]:
    meta = dict(db.execute("SELECT name, value FROM meta").fetchall())
    run_id = str(uuid.UUID(meta["run_id"]))
    float(meta["created_at"])
    return run_id, _entries(db)


def _row(e: JournalEntry) -> tuple[Any, ...]:
    # In _COLUMNS order (attrs.asdict per row cost more than the commit).
    return (
        e.position,
        e.identity,
        e.rule_id,
        e.amount,
        e.idempotency_key,
        str(e.state),
        e.sent_at,
        e.execution_id,
        e.status,
        None if e.result is None else json.dumps(e.result),
        e.error_type,
        e.error_message,
        e.updated_at,
    )


def _entries(db: sqlite3.Connection) -> list[JournalEntry]:
    entries = []
    for row in db.execute(_SELECT).fetchall():
        values = dict(zip(_COLUMNS, row, strict=True))
        values["state"] = ItemState(values["state"])
        if values["result"] is not None:
            values["result"] = json.loads(values["result"])
        entries.append(JournalEntry(**values))
    return entries
