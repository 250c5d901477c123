"""
The embedded journal: one SQLite file, written from one thread.

Owns ``SqliteJournal``: WAL, ``synchronous=FULL``, written from one thread,
with every write that arrives while a commit is under way grouped into the
next (``submit_rows``: no task per write). A file that is not a journal, or a
damaged one, is refused and never written; a journal in use by another
process is refused too (an exclusive ``flock`` on the
file). The file's format is ``_journal_file``'s. Owns ``as_journal``: what
a run's ``journal=`` names (a path: a ``SqliteJournal``).

The standard ``sqlite3`` module is used on a dedicated thread rather than a
dependency such as aiosqlite: the same design, and the library keeps needing
nothing beyond aiohttp, attrs, cattrs and tenacity.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import sqlite3
import stat
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from . import _journal_file as file
from . import errors
from ._journal import Journal, JournalEntry, Row, as_row


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
        self._pending: list[Row] = []
        self._next: asyncio.Future[None] | None = None
        self._running: asyncio.Future[None] | None = None
        self._closing: asyncio.Future[None] | None = None
        # Set once the file is let go; the file's device and inode.
        self._let_go_event = threading.Event()
        self._file_id: tuple[int, int] | None = None
        # Where the file locked at open is (the place check's own: close()
        # resets _file_id while a commit may still run).
        self._where, self._opened = self.path, (-1, -1)

    def __repr__(self) -> str:
        return f"<SqliteJournal {str(self.path)!r}>"

    async def open(
        self, *, api: str = "api-v1", target: str = ""
    ) -> tuple[str, list[JournalEntry]]:
        """
        Lock and open the file (creating it), return its run id and entries.

        Raises:
            errors.JournalError: Not a journal (nor a new, empty file), in
                use (by another process, or another run of this object), or
                of runs against the other API, or another server (*target*,
                its base URL: its keys and outcomes mean nothing there).
        """
        if self._closing is not None and not self._closing.done():
            await asyncio.shield(self._closing)  # (a close cancelled goes on)
        if self._executor is not None:  # its run's state is not ours to undo
            raise errors.JournalError(f"{self.path} is open already: one run at a time")
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="sequence-journal")
        try:
            opened: tuple[str, list[JournalEntry]] = await self._call(
                self._open, api, target
            )
        except BaseException:
            await self.close()
            raise
        return opened

    def _open(self, api: str, target: str) -> tuple[str, list[JournalEntry]]:
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise errors.JournalError(f"{self.path} cannot be opened: {exc}") from None
        if not _lock(fd):
            os.close(fd)
            raise errors.JournalError(
                f"{self.path} is in use by another process; one run at a time"
            )
        self._lock_fd, self._opened = fd, _file_id(fd)
        self._where = self.path.absolute()  # (a chdir later moves nothing)
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise errors.JournalError(f"{self.path} is not a regular file")
        db = self._db = file.connect(self.path)
        with file.damaged(self.path):
            if not file.check(db, self.path):
                file.create(db, self.clock(), api, target)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            file.check_run(db, self.path, api, target)
            return file.read(db)

    async def write(self, entries: Sequence[JournalEntry]) -> None:
        """Store *entries*; return once they are committed (cancelled, too)."""
        await asyncio.shield(self.submit_rows([as_row(e) for e in entries]))

    def submit_rows(self, rows: Sequence[Row]) -> asyncio.Future[None]:
        """
        Hand *rows* to the next commit; return the future it resolves.

        Every row of that commit shares the future (await it shielded);
        its exception is marked retrieved: unawaited, it logs nothing.
        """
        self._pending.extend(rows)
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
        executor = self._executor  # closed, or moved: nothing is written
        failure = None if executor is None else self._misplaced()
        if executor is None or failure is not None:
            closed = errors.JournalError("the journal is closed")
            future.set_exception(failure or closed)
            future.exception()
            return
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

    def _commit(self, rows: Sequence[Row]) -> None:
        if (db := self._db) is None:
            raise errors.JournalError("the journal is closed")
        # Every commit is FULL (fsync'd): an intent must survive a power cut;
        # NORMAL for answers only cost the thread one more trip through the
        # GIL than the fsync saved. One statement is one transaction
        # (autocommit) and one call into SQLite: the thread takes the GIL
        # back once per commit, not once per row.
        try:
            done = file.statements(rows)
            if len(done) <= 1:
                for statement, values in done:
                    db.execute(statement, values)
                return
            db.execute("BEGIN IMMEDIATE")
            try:
                for statement, values in done:
                    db.execute(statement, values)
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
        # A full disk, say, or a value SQLite cannot hold (text that is not
        # UTF-8, an integer past 64 bits): typed, and the file intact.
        except (sqlite3.Error, ValueError, OverflowError, RecursionError) as exc:
            raise errors.JournalError(
                f"{self.path} could not be written: {type(exc).__name__}: {exc}"
            ) from None

    def _misplaced(self) -> errors.JournalError | None:
        # The path must still name the file locked and written. Moved or
        # deleted mid-run, the journal's records would be where no resume
        # looks (SQLite skips a moved file's last checkpoint), and a resume
        # from a new file would send every item again, with new keys. (On
        # the loop, between commits: the writer then wants no GIL.)
        try:
            here = self._where.stat()
            kept = (here.st_dev, here.st_ino) == self._opened
        except OSError:
            kept = False
        if not kept:
            return errors.JournalError(
                f"{self.path} was moved or deleted while this run wrote it: put "
                "the file (and its -wal) back there before resuming; a resume "
                "from a new file would trigger every item sent again"
            )
        return None

    async def close(self) -> None:
        """
        Finish pending writes, close the file and release the lock.

        Cancelled, even by the loop's shutdown, the file is still closed and
        its lock let go (on the journal's thread, after any commit under
        way); ``close()`` again waits for that.
        """
        if self._closing is None or self._closing.done():
            self._let_go_event, self._file_id = threading.Event(), None
            if self._lock_fd is not None:  # an open of the file here waits for it
                self._file_id = self._opened  # (the locked file's, read at open)
                with _CLOSING_LOCK:
                    _CLOSING[self._file_id] = self._let_go_event
            self._closing = asyncio.ensure_future(self._shut())
            # (a task cancelled before it starts runs no finally of its own)
            self._closing.add_done_callback(lambda _: self._let_go())
        await asyncio.shield(self._closing)

    async def _shut(self) -> None:
        try:
            while self._running is not None:
                await asyncio.wait([self._running])
        finally:
            closed = self._let_go()
        if closed is not None:  # (shielded: a cancel must not stop the close)
            with contextlib.suppress(Exception):
                await asyncio.shield(asyncio.wrap_future(closed))

    def _let_go(self) -> Future[None] | None:
        # Close the file and let its lock go on the journal's one thread,
        # after any commit under way (an open of the file in this process
        # waits till then: close() said so). None when that is done already.
        executor, self._executor = self._executor, None
        if executor is None:
            return None
        db, fd, self._db, self._lock_fd = self._db, self._lock_fd, None, None
        closed = executor.submit(_close, db, fd, self._file_id, self._let_go_event)
        executor.shutdown(wait=False)
        return closed

    async def _call(self, fn: Callable[..., Any], *args: Any) -> Any:
        if self._executor is None:
            raise errors.JournalError("the journal is closed")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, fn, *args)


# The files this process is closing, by device and inode: an open of one
# waits until its lock is let go (a close goes on when cancelled), rather
# than call it in use.
_CLOSING: dict[tuple[int, int], threading.Event] = {}
_CLOSING_LOCK = threading.Lock()
_CLOSE_WAIT = 30.0


def _file_id(fd: int) -> tuple[int, int]:
    # The file *fd* opens, by device and inode (the key of _CLOSING).
    stat_of = os.fstat(fd)
    return stat_of.st_dev, stat_of.st_ino


def _lock(fd: int, *, again: bool = True) -> bool:
    # Lock the file *fd* opens; False if another holder keeps it.
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        if not again:
            return False
        with _CLOSING_LOCK:
            closing = _CLOSING.get(_file_id(fd))
        if closing is not None:  # (else it may have been let go just now)
            closing.wait(_CLOSE_WAIT)
        return _lock(fd, again=False)
    return True


def _close(
    db: sqlite3.Connection | None,
    fd: int | None,
    file_id: tuple[int, int] | None,
    let_go: threading.Event,
) -> None:
    # On the journal's thread: close *db*, then the lock *fd*; tell waiters.
    try:
        if db is not None:
            db.close()
    finally:
        if fd is not None:
            os.close(fd)
        with _CLOSING_LOCK:
            if file_id is not None and _CLOSING.get(file_id) is let_go:
                del _CLOSING[file_id]
        let_go.set()


def as_journal(journal: object) -> Journal:
    """The journal *journal* names (a path: a ``SqliteJournal``), or TypeError."""
    if isinstance(journal, str | os.PathLike):
        return SqliteJournal(journal)
    if not all(
        callable(getattr(journal, name, None))
        for name in ("open", "write", "close", "clock")
    ):
        raise TypeError(
            "journal must be a path (str or os.PathLike) or a Journal, not "
            f"{type(journal).__name__}"
        )
    return journal  # type: ignore[return-value]
