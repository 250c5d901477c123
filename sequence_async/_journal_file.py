"""
A journal's file: its tables, rows and checks, and reading one back.

Owns the format ``SqliteJournal`` writes (``create``, ``check``,
``check_run``, ``statements``, ``read``), whose checks refuse a file
that is not a journal, or one of runs against another API or server;
and ``read_journal`` and ``JournalSummary``.
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
import os
import sqlite3
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import attrs

from . import _convert, errors, models
from ._checks import FIRST_INSTANT, LAST_INSTANT, segment
from ._journal import ItemState, JournalEntry, Row


_APPLICATION_ID = 0x53514A4C  # "SQJL": a sequence-async journal
_SCHEMA = 1
COLUMNS = (
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
# What a run writes in each column (None: may be NULL). SQLite keeps any
# value in any column: a hand edit may leave a BLOB where text goes.
_NULL = type(None)
_TYPES: dict[str, tuple[type, ...]] = {
    "position": (int,),
    "identity": (str,),
    "rule_id": (str,),
    "amount": (int, _NULL),
    "idempotency_key": (str,),
    "state": (str,),
    "sent_at": (float, int, _NULL),
    "execution_id": (str, _NULL),
    "status": (str, _NULL),
    "result": (str, _NULL),
    "error_type": (str, _NULL),
    "error_message": (str, _NULL),
    "updated_at": (float, int),
}
_RESULT = COLUMNS.index("result")
_SELECT = f"SELECT {', '.join(COLUMNS)} FROM items ORDER BY position"  # noqa: S608
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
    # Of the failed items, those never sent (the run stopped before them,
    # or wrote their intent ahead and ended): a resume sends them.
    never_sent: int = 0

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
    try:
        found = file.is_file()
    except OSError as exc:  # a name too long, a folder we may not enter
        raise errors.JournalError(f"{file} cannot be read: {exc.strerror}") from None
    if not found:
        what = "a directory, not a journal" if file.is_dir() else "no such journal"
        raise errors.JournalError(f"{file}: {what}")
    db = connect(file, read_only=True)
    try:
        with damaged(file):
            if not check(db, file):
                raise errors.JournalError(f"{file} is an empty file, not a journal")
            meta = dict(db.execute("SELECT name, value FROM meta").fetchall())
            run_id, entries = read(db)
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
        never_sent=sum(
            e.state is ItemState.FAILED and e.error_type == "NotStartedError"
            for e in entries
        ),
    )


@contextlib.contextmanager
def damaged(path: Path) -> Iterator[None]:
    """
    Raise what a damaged file raises as a ``JournalError`` naming *path*.

    SQLite's errors and values no run writes; the file is left as it is.
    """
    try:
        yield
    except (sqlite3.Error, ValueError, TypeError, KeyError) as exc:
        raise errors.JournalError(
            f"{path} is a damaged journal ({type(exc).__name__}: {exc});"
            " it was left as it is"
        ) from None


def connect(path: Path, *, read_only: bool = False) -> sqlite3.Connection:
    """
    Open *path* with SQLite (never creating it), in autocommit mode.
    """
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


def check(db: sqlite3.Connection, path: Path) -> bool:
    """
    Whether *db* is one of our journals (True) or a new, empty file (False).

    Anything else is refused before a single byte is written.
    """
    try:
        application_id = db.execute("PRAGMA application_id").fetchone()[0]
        tables = db.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
        version = db.execute("PRAGMA user_version").fetchone()[0]
    except sqlite3.OperationalError as exc:  # e.g. no -shm file can be made
        raise errors.JournalError(
            f"{path} cannot be read here ({exc}); SQLite writes a -shm file"
            " beside it: copy it, with its -wal file, to a writable directory"
        ) from None
    except sqlite3.DatabaseError as exc:
        raise errors.JournalError(
            f"{path} is not a sequence-async journal ({exc})"
        ) from None
    if application_id == 0 and tables == 0 and version == 0:
        if path.stat().st_size:  # not ours (SQLite reads 1 byte as empty)
            raise errors.JournalError(
                f"{path} is not a sequence-async journal; it was left as it is"
            )
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


def check_run(db: sqlite3.Connection, path: Path, api: str, target: str) -> None:
    """
    Refuse a journal of runs against another API or server (base URL).

    Its keys, ids and outcomes mean nothing there: a resume would replay
    "executed" for payments that server never made. (Older journals hold no
    API row, api-v1's; and a journal bound to no target is bound to this
    run's.)
    """
    rows = dict(db.execute("SELECT name, value FROM meta").fetchall())
    recorded = rows.get("api", "api-v1")
    if recorded != api:
        raise errors.JournalError(
            f"{path} records a run against {recorded}; this client speaks {api}:"
            " its keys and ids mean nothing there"
        )
    bound = rows.get("target") or ""  # (a journal opened without one: unbound)
    if target and not bound:
        db.execute("REPLACE INTO meta (name, value) VALUES ('target', ?)", (target,))
    elif target and bound != target:
        raise errors.JournalError(
            f"{path} records a run against {bound[:200]!r}; this client sends to"
            f" {target[:200]!r}: its outcomes mean nothing there"
        )


def create(db: sqlite3.Connection, now: float, api: str, target: str) -> None:
    """
    Make *db* a new journal of a run against *api* and *target*.
    """
    # One transaction: a crash half-way leaves an empty file, which is new.
    db.execute("BEGIN IMMEDIATE")
    db.execute(f"PRAGMA application_id = {_APPLICATION_ID}")
    db.execute(f"PRAGMA user_version = {_SCHEMA}")
    for table in _TABLES:
        db.execute(table)
    db.executemany(
        "INSERT INTO meta (name, value) VALUES (?, ?)",
        [
            ("run_id", str(uuid.uuid4())),
            ("created_at", repr(now)),
            ("api", api),
            ("target", target),
        ],
    )
    db.execute("COMMIT")


def read(db: sqlite3.Connection) -> tuple[str, list[JournalEntry]]:
    """
    The run id and the items of a checked journal.
    """
    meta = dict(db.execute("SELECT name, value FROM meta").fetchall())
    run_id = str(uuid.UUID(meta["run_id"]))
    if not math.isfinite(float(meta["created_at"])):
        raise ValueError(f"created_at is {meta['created_at'][:20]!r}")
    return run_id, entries(db)


# Rows per statement: a power of two, at most this many (SQLite binds at
# most 32,766 values in one).
_MAX_ROWS = 2048
# A None is bound as NaN, which SQLite stores as NULL. (The sqlite3 module
# binds a float at once, but a None through its adapter lookup, which raises
# and formats an AttributeError inside: a dozen per item, more than the write.)
_NULL_BOUND = math.nan


@functools.lru_cache(maxsize=16)
def insert(count: int) -> str:
    """
    The statement writing *count* rows (built from constant names, never input).
    """
    rows = ", ".join([f"({', '.join('?' * len(COLUMNS))})"] * count)
    return f"INSERT OR REPLACE INTO items ({', '.join(COLUMNS)}) VALUES {rows}"  # noqa: S608 (constant names)


def statements(rows: Sequence[Row]) -> list[tuple[str, list[Any]]]:
    """
    The statements (and their values) writing *rows*, in one transaction.

    A position written twice keeps its last row. The rows are written in
    statements of a power of two rows (at most 2,048), the last padded with
    its last row (written again, the same): a commit is one statement, one
    call into SQLite, and a dozen statements, prepared once and kept, write
    any commit. (Each call lets the GIL go; the writer thread then waits to
    take it back, up to the 5 ms switch interval on uvloop, whose loop
    seldom lets it go: a statement per group of rows made commits slow.)
    """
    unique = list({row[0]: row for row in rows}.values())
    values: list[Any] = []
    for row in unique:
        if row[_RESULT] is not None:
            row = (*row[:_RESULT], json.dumps(row[_RESULT]), *row[_RESULT + 1 :])  # noqa: PLW2901
        values.extend([_NULL_BOUND if value is None else value for value in row])
    done, width = [], len(COLUMNS)
    for start in range(0, len(unique), _MAX_ROWS):
        chunk = values[start * width : (start + _MAX_ROWS) * width]
        given = len(chunk) // width
        count = 1 << (given - 1).bit_length()  # a power of two, padded
        chunk.extend(chunk[-width:] * (count - given))
        done.append((insert(count), chunk))
    return done


def entries(db: sqlite3.Connection) -> list[JournalEntry]:
    """
    Every item of *db*, in input order.

    Raises:
        TypeError: A value of another type than its column's (a hand edit
            may leave a BLOB where text goes).
        ValueError: A value no run writes (a hand edit): a time that is not
            a finite number in the range of a date, an id that is not one, a
            result that is not JSON, or not the ended execution a
            ``terminal`` item holds; an ``accepted`` or ``terminal`` item
            without its execution id.
    """
    found = []
    for row in db.execute(_SELECT).fetchall():
        fields = dict(zip(COLUMNS, row, strict=True))
        _check_values(fields)
        fields["state"] = ItemState(fields["state"])
        if fields["result"] is not None:
            try:
                fields["result"] = json.loads(fields["result"])
            except RecursionError:
                raise ValueError(f"item {fields['position']}: result") from None
        entry = JournalEntry(**fields)
        _check_execution(entry)
        found.append(entry)
    return found


# The times the client accepts as instants (_checks.instant), as timestamps.
_EARLIEST, _LATEST = FIRST_INSTANT.timestamp(), LAST_INSTANT.timestamp()


def _check_values(fields: dict[str, Any]) -> None:
    position = fields["position"]
    for name, value in fields.items():
        if not isinstance(value, _TYPES[name]):
            raise TypeError(
                f"item {position!r:.20}: {name} is {type(value).__name__}, "
                "which no run writes"
            )
    if position < 0 or not fields["identity"] or not fields["idempotency_key"]:
        raise ValueError(f"item {position}: no position, identity or key")
    for name in ("sent_at", "updated_at"):
        when = fields[name]
        if when is not None and not (
            math.isfinite(when) and _EARLIEST <= when <= _LATEST
        ):
            raise ValueError(f"item {position}: {name} {when!r:.40}")
    for name in ("rule_id", "execution_id"):
        if fields[name] is not None:
            try:
                segment(fields[name], name)  # it goes in a path
            except ValueError as exc:
                raise ValueError(f"item {position}: {exc}") from None


def _check_execution(entry: JournalEntry) -> None:
    # What a run writes with each state: an accepted item names its
    # execution; a terminal one holds that execution, ended.
    if entry.state not in (ItemState.ACCEPTED, ItemState.TERMINAL):
        return
    problem = None
    if entry.execution_id is None:
        problem = "no execution id"
    elif entry.state is ItemState.TERMINAL:
        try:
            ended = _convert.structure(entry.result, models.RuleExecution)
        except errors.ResponseValidationError:
            ended = None
        if ended is None or ended.id != entry.execution_id or not ended.done:
            problem = "no ended execution of that id"
    if problem is not None:
        raise ValueError(f"item {entry.position} ({entry.state}): {problem}")
