"""
What a journalled run records at each step of an item.

Owns ``Recorder`` (the intent before the send, the execution as it is
named, the end) and the rule for the state an error leaves: only an error
that proves an item was never carried out, with no earlier send, gives
``failed`` (sent again at any age) or ``rejected`` (final); every other
error leaves it ``unknown``.
"""

from __future__ import annotations

import asyncio
from typing import Any

from . import _convert, errors
from ._journal import ItemState, Journal, JournalEntry
from ._outcomes import TriggerOutcome
from ._resume import Planned


class Recorder:
    """
    Writes each step of a journalled item before the run goes on.
    """

    def __init__(self, journal: Journal) -> None:
        self.journal = journal
        self.claimed: set[str] = set()
        self._sent_at: dict[int, float] = {}
        self._writes: set[asyncio.Future[None]] = set()

    def _entry(self, planned: Planned, state: ItemState, **fields: Any) -> JournalEntry:
        now = self.journal.clock()
        return JournalEntry(
            position=planned.index,
            identity=planned.identity,
            rule_id=planned.request.rule_id,
            amount=planned.request.manual_execute_amount,
            idempotency_key=planned.key,
            state=state,
            sent_at=self._sent_at.get(planned.index),
            updated_at=now,
            **fields,
        )

    def remember(self, planned: Planned) -> None:
        """
        Carry over what the journal knew of *planned*.

        Its send time, and its execution, which no other item may claim.
        """
        entry = planned.entry
        if entry is not None and entry.sent_at is not None:
            self._sent_at[planned.index] = entry.sent_at
        if entry is not None and entry.execution_id is not None:
            self.claimed.add(entry.execution_id)

    async def sending(self, planned: Planned) -> None:
        """
        Record the intent: from here the trigger may be on the wire.

        The first send's time is kept: Sequence's 24 hours count from it.
        """
        self._sent_at.setdefault(planned.index, self.journal.clock())
        await self.journal.write([self._entry(planned, ItemState.SENDING)])

    def accepted(self, planned: Planned, execution_id: str) -> None:
        """
        Record the execution the trigger (or a reconciliation) named.
        """
        self.claimed.add(execution_id)
        entry = self._entry(planned, ItemState.ACCEPTED, execution_id=execution_id)
        self._soon([entry])

    def ended(self, planned: Planned, outcome: TriggerOutcome) -> None:
        """
        Record how the item ended, when that changes its state.
        """
        execution_id = outcome.execution.id if outcome.execution else None
        result = outcome.result
        if result is not None:
            entry = self._entry(
                planned,
                ItemState.TERMINAL,
                execution_id=execution_id,
                status=str(result.status),
                result=_convert.unstructure(result),
            )
        elif outcome.error is None or execution_id is not None:
            return  # accepted (not waited, or the wait ended early): as recorded
        else:
            error = outcome.error
            entry = self._entry(
                planned,
                _state_of(error, earlier=_may_have_run(planned)),
                error_type=type(error).__name__,
                error_message=str(error)[:500],
            )
        self._soon([entry])

    def _soon(self, entries: list[JournalEntry]) -> None:
        # Answers are written at once, but the item goes on without waiting
        # for the commit: a crash before it leaves the item `sending` (sent
        # again with its key: the server replays it) or `accepted` (waited on
        # again). Only the intent must be durable before the send.
        task = asyncio.ensure_future(self.journal.write(entries))
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)

    async def drain(self) -> None:
        """
        Wait until every write handed to the journal is committed.
        """
        if self._writes:
            await asyncio.gather(*self._writes)


def _may_have_run(planned: Planned) -> bool:
    # Whether an earlier run may have sent the item: then no error of this
    # run can prove it was never carried out.
    entry = planned.entry
    return entry is not None and entry.state is not ItemState.FAILED


def _state_of(error: Exception, *, earlier: bool) -> ItemState:
    # Only an error that proves the item was never carried out gives
    # `failed` (sent again at any age) or `rejected` (final); anything else,
    # or anything after an earlier send, leaves it `unknown`.
    if isinstance(error, errors.NeedsReviewError):
        return ItemState.NEEDS_REVIEW
    if earlier:
        return ItemState.UNKNOWN
    not_sent = (
        isinstance(error, errors.APIConnectionError) and not error.sent
    ) or isinstance(error, errors.RateLimitError | errors.ClientClosedError)
    if not_sent:
        return ItemState.FAILED
    definite = isinstance(error, TypeError | ValueError) or (
        isinstance(error, errors.APIStatusError)
        and error.status < 500
        and error.status not in (408, 409, 429)
    )
    return ItemState.REJECTED if definite else ItemState.UNKNOWN
