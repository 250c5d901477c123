"""
The bulk-run journal's vocabulary: item states, entries, the store protocol.

Owns ``ItemState`` (and ``state_after``, the state an error leaves),
``JournalEntry`` (one item's row) and ``Journal``, the small protocol a
store implements (``_sqlite_journal.SqliteJournal`` is the embedded
default), and ``GroupCommit``, what a store that groups writes into shared
commits may add, taking entries as ``Row``s (``as_row``, ``as_entry``): a
run writes two per item, and a tuple costs a small part of a frozen object.
"""

from __future__ import annotations

import asyncio
import enum
import operator
from collections.abc import Callable, Sequence
from typing import Any, Protocol, runtime_checkable

import attrs

from . import errors


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


# A JournalEntry's values in field order, its state as the plain string.
Row = tuple[Any, ...]
FIELDS = tuple(field.name for field in attrs.fields(JournalEntry))
_VALUES = operator.attrgetter(*FIELDS)
_STATE = FIELDS.index("state")


def as_row(entry: JournalEntry) -> Row:
    """
    *entry* as a ``Row``.

    Raises:
        ValueError: Its state is not an ``ItemState`` (nor one's value).
    """
    row: Row = _VALUES(entry)
    state = str(ItemState(row[_STATE]))
    return (*row[:_STATE], state, *row[_STATE + 1 :])


def as_entry(row: Row) -> JournalEntry:
    """The ``JournalEntry`` *row* stands for."""
    fields = dict(zip(FIELDS, row, strict=True))
    fields["state"] = ItemState(fields["state"])
    return JournalEntry(**fields)


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

    ``submit_rows`` hands entries, as rows, to the next commit without
    waiting and returns the future that commit resolves (shared by every
    entry in it, in the order submitted). A journal without it is grouped
    by the run itself, one ``write`` at a time.
    """

    def submit_rows(self, rows: Sequence[Row]) -> asyncio.Future[None]:
        """Hand *rows* to the next commit; return its future."""


_REFUSED = (401, 403, 404)


def state_after(error: Exception, *, earlier: bool) -> ItemState:
    """
    The state *error* leaves an item in (*earlier*: a run may have sent it).

    Only an error that proves the item was never carried out, with no
    earlier send, gives ``failed`` (sent again at any age) or ``rejected``
    (final); every other error leaves it ``unknown``.
    """
    if isinstance(error, errors.NeedsReviewError):
        return ItemState.NEEDS_REVIEW
    if earlier:
        return ItemState.UNKNOWN
    # Refused before acting (not authorised, no such rule): sent again on
    # resume, once the key or the rule is mended. (A JournalError proves
    # nothing: a store may fail after the send, recording its answer.)
    not_sent = (
        (isinstance(error, errors.APIConnectionError) and not error.sent)
        or isinstance(error, errors.RateLimitError | errors.ClientClosedError)
        or (isinstance(error, errors.APIStatusError) and error.status in _REFUSED)
    )
    if not_sent:
        return ItemState.FAILED
    definite = isinstance(error, TypeError | ValueError) or (
        isinstance(error, errors.APIStatusError)
        and error.status < 500
        and error.status not in (408, 409, 429)
    )
    return ItemState.REJECTED if definite else ItemState.UNKNOWN
