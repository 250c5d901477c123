"""
The embedded journal: one SQLite file, and reading one back.

Owns ``SqliteJournal``: WAL, ``synchronous=FULL``, written from one thread
in one statement per commit, with every write that arrives while a commit is
under way grouped into the next (``submit``: no task per write). A file that
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
import functools
import json
import operator
import os
import sqlite3
import stat
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
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
# SQLite binds at most 32,766 values per statement.
_VALUES_PER_STATEMENT = 32_766 // len(_COLUMNS) * len(_COLUMNS)
_FIELDS = operator.attrgetter(*_COLUMNS)
_RESULT = _COLUMNS.index("result")
_ONE_ROW = f"({', '.join('?' * len(_COLUMNS))})"
_INSERT = f"INSERT OR REPLACE INTO items ({', '.join(_COLUMNS)}) VALUES"
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
    """

    def __init__(
        self, path: str | os.PathLike[str], *, clock: Callable[[], float] = time.time
    ) -> None:
        self.path = Path(path)
        self.clock = clock
        self._executor: ThreadPoolExecutor | None = None
        self._db: sqlite3.Connection | None = None
        self._lock_fd: int | None = None
        # The group commit: the next one's entries and future; the one going.
        self._pending: list[JournalEntry] = []
        self._next: asyncio.Future[None] | None = None
        self._running: asyncio.Future[None] | None = None

    def __repr__(self) -> str:
        return f"<SqliteJournal {str(self.path)!r}>"

    async def open(self, *, api: str = "api-v1") -> tuple[str, list[JournalEntry]]:
        """
        Lock and open the file (creating it), return its run id and entries.

        Raises:
            errors.JournalError: Not a journal (nor a new, empty file), in
                use (by another process, or another run of this object), or
                of runs against the other API (its keys mean nothing there).
        """
        if self._executor is not None:  # its run's state is not ours to undo
            raise errors.JournalError(f"{self.path} is open already: one run at a time")
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
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise errors.JournalError(f"{self.path} is not a regular file")
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
        """Store *entries*; return once they are committed (cancelled, too)."""
        await asyncio.shield(self.submit(entries))

    def submit(self, entries: Sequence[JournalEntry]) -> asyncio.Future[None]:
        """
        Hand *entries* to the next commit; return the future it resolves.

        Every entry of that commit shares the future (await it shielded);
        its exception is marked retrieved: unawaited, it logs nothing.
        """
        self._pending.extend(entries)
        future = self._next
        if future is None:
            future = self._next = asyncio.get_running_loop().create_future()
        if self._running is None:
            self._start()
        return future

    def _start(self) -> None:
        # Hand what is pending to the writer thread at once; its end comes
        # back to the loop as one callback (no task, no wrapped future).
        rows, future, self._pending, self._next = self._pending, self._next, [], None
        if future is None:
            return
        if (executor := self._executor) is None:
            raise errors.JournalError("the journal is closed")
        self._running = future
        loop = asyncio.get_running_loop()

        def committed(done: Future[None]) -> None:  # on the writer thread
            with contextlib.suppress(RuntimeError):  # the loop is closed
                loop.call_soon_threadsafe(self._committed, done, future)

        executor.submit(self._commit, rows).add_done_callback(committed)

    def _committed(self, done: Future[None], future: asyncio.Future[None]) -> None:
        self._running = None
        if not future.done():
            failure = done.exception()
            if failure is None:
                future.set_result(None)
            else:
                future.set_exception(failure)
                future.exception()
        if self._next is not None:  # (even with no rows: its future waits)
            self._start()

    def _commit(self, rows: Sequence[JournalEntry]) -> None:
        if (db := self._db) is None:
            raise errors.JournalError("the journal is closed")
        # Every commit is FULL (fsync'd): an intent must survive a power cut;
        # NORMAL for answers only cost the thread one more trip through the
        # GIL than the fsync saved. One statement is one transaction
        # (autocommit) and one call into SQLite: the thread takes the GIL
        # back once per commit, not once per row.
        values, step = _values(rows), _VALUES_PER_STATEMENT
        if len(values) <= step:
            if values:
                db.execute(_insert(len(rows)), values)
            return
        db.execute("BEGIN IMMEDIATE")
        try:
            for start in range(0, len(values), step):
                chunk = values[start : start + step]
                db.execute(_insert(len(chunk) // len(_COLUMNS)), chunk)
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    async def close(self) -> None:
        """
        Finish pending writes, close the file and release the lock.
        """
        while self._running is not None:
            await asyncio.wait([self._running])
        if self._executor is not None:
            with contextlib.suppress(Exception):
                await self._call(self._close)
            self._executor.shutdown(wait=False)
            self._executor = None

    def _close(self) -> None:
        if self._db is not None:
            self._db.close()
        if self._lock_fd is not None:
            os.close(self._lock_fd)
        self._db = self._lock_fd = None

    async def _call(self, fn: Callable[..., Any], *args: Any) -> Any:
        if self._executor is None:
            raise errors.JournalError("the journal is closed")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, fn, *args)


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
        """Seconds since the run was created."""
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
    counts = dict(Counter(str(entry.state) for entry in entries))
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
    if application_id == 0 and tables == 0 and version == 0:
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


@functools.lru_cache(maxsize=64)
def _insert(count: int) -> str:
    # Built from the constant column names above, never from input.
    return f"{_INSERT} {', '.join([_ONE_ROW] * count)}"


def _values(rows: Sequence[JournalEntry]) -> list[Any]:
    # Every row's values in _COLUMNS order, one flat list (attrgetter: no
    # Python frame per row; the writer thread holds the GIL for less).
    values: list[Any] = []
    for e in rows:
        row = _FIELDS(e)
        if e.result is not None:
            row = (*row[:_RESULT], json.dumps(e.result), *row[_RESULT + 1 :])
        values.extend(row)
    return values


def _entries(db: sqlite3.Connection) -> list[JournalEntry]:
    entries = []
    for row in db.execute(_SELECT).fetchall():
        values = dict(zip(_COLUMNS, row, strict=True))
        values["state"] = ItemState(values["state"])
        if values["result"] is not None:
            values["result"] = json.loads(values["result"])
        entries.append(JournalEntry(**values))
    return entries
