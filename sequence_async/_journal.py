"""
The bulk-run journal's vocabulary: item states, entries, the store protocol.

Owns ``ItemState``, ``JournalEntry`` (one item's row) and ``Journal``, the
small protocol a store implements (``_sqlite_journal.SqliteJournal`` is the
embedded default), and ``GroupCommit``, what a store that groups writes into
shared commits may add.
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Callable, Sequence
from typing import Any, Protocol, runtime_checkable

import attrs


class ItemState(enum.StrEnum):
    """
    Where a journalled item stands.

    ``sending``: its intent is durable and its trigger may be on the wire.
    ``accepted``: the trigger's answer named an execution. ``terminal``: the
    execution ended. ``failed``: surely not carried out (sent again on
    resume). ``rejected``: refused by the server or before sending (final).
    ``unknown``: may have been carried out (like ``sending`` on resume).
    ``needs_review``: too old to send again and not matched to an execution:
    a person decides.
    """

    SENDING = "sending"
    ACCEPTED = "accepted"
    TERMINAL = "terminal"
    FAILED = "failed"
    REJECTED = "rejected"
    UNKNOWN = "unknown"
    NEEDS_REVIEW = "needs_review"


@attrs.frozen(kw_only=True)
class JournalEntry:
    """
    One item of a journalled run, as stored.

    ``identity`` is ``key:<idempotency key>`` for items with the caller's key,
    else ``position:<n>``. ``result`` is the execution's JSON once terminal.
    Times are the journal clock's seconds (``time.time()`` by default).
    """

    position: int
    identity: str
    rule_id: str
    amount: int | None
    idempotency_key: str
    state: ItemState
    sent_at: float | None = None
    execution_id: str | None = None
    status: str | None = None
    result: dict[str, Any] | None = None
    error_type: str | None = None
    error_message: str | None = None
    updated_at: float = 0.0


class Journal(Protocol):
    """
    What ``trigger_many(journal=...)`` needs of a store.

    ``open`` returns the run id (made once, when the store is new, and kept)
    and every entry recorded so far; ``write`` makes entries durable (insert
    or replace by position) before it returns; ``close`` releases the store.
    ``clock`` gives the wall-clock seconds the journal records.
    """

    clock: Callable[[], float]

    async def open(
        self, *, api: str = "api-v1", target: str = ""
    ) -> tuple[str, list[JournalEntry]]:
        """
        Open (or create) the store of a run against *api*; say its run.

        *target* is the server's base URL: a store of runs against another
        should be refused (its outcomes are nobody's there).
        """

    async def write(self, entries: Sequence[JournalEntry]) -> None:
        """Store *entries* durably."""

    async def close(self) -> None:
        """Release the store."""


@runtime_checkable
class GroupCommit(Protocol):
    """
    What a journal that groups writes may offer besides ``write``.

    ``submit`` hands entries to the next commit without waiting and returns
    the future that commit resolves (shared by every entry in it, in the
    order submitted). A journal without it is grouped by the run itself,
    one ``write`` at a time.
    """

    def submit(self, entries: Sequence[JournalEntry]) -> asyncio.Future[None]:
        """Hand *entries* to the next commit; return its future."""
