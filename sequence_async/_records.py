"""
What a journalled run records at each step of an item, and when.

Owns ``Recorder``: the journal opened with the run's plan (``plan``) and
closed whatever ends the run (``close``); the intent before the send, the
execution as it is named, the end, all handed to the journal in groups
(one ``write`` per commit, whatever joined while the previous commit was
under way). The answers (the execution named, the end), which no send
waits on, join the next commit of intents, or one of their own once a
window of them waits or ``ANSWERS_DELAY`` has passed.

Owns the window of intents written ahead: when the run's plan is known
(``expect``), the intents of the items up to two windows ahead (a window is
16 times the run's concurrency, at least 64) are committed while the items
before them are sent, half a window at a time, so that a send rarely waits
on a commit (with a window of 16, half the sends waited: a commit is an
fsync), nor on a slow one (one that takes as long as sending a window).

The state an error leaves is ``_journal.state_after``'s.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

from . import _convert, _resume, errors
from ._journal import (
    GroupCommit,
    ItemState,
    Journal,
    Row,
    as_entry,
    as_row,
    state_after,
)
from ._outcomes import TriggerOutcome, TriggerRequest
from ._resume import Action, Planned, Refused


if TYPE_CHECKING:
    from ._execution import Execution
    from ._requester import Requester


log = logging.getLogger("sequence_async")

# An intent written ahead carries the time it was written as ``sent_at``
# (never later than the send). Sent later than this, it is written again
# with the time of the send, so that reconciliation's five-minute window
# around ``sent_at`` still holds the execution.
AHEAD_LIMIT = 60.0
# Answers wait at most this long (seconds) for the next commit of intents.
ANSWERS_DELAY = 0.25
# The window of intents written ahead: 16 items per worker, at least 64 (with
# 4, a journal on uvloop ran at 0.74x of the run without one; 16, 0.81x).
AHEAD_PER_WORKER, AHEAD_MIN = 16, 64


class Recorder:
    """
    Writes each step of a journalled item before the run goes on.
    """

    def __init__(self, journal: Journal) -> None:
        self.journal = journal
        self.claimed: set[str] = set()
        self._sent_at: dict[int, float] = {}
        # Entries go to the journal's own group commit when it has one,
        # else to ours: one write at a time, of whatever joined meanwhile.
        self._submit = (
            journal.submit_rows if isinstance(journal, GroupCommit) else self._group
        )
        self._pending: list[Row] = []
        self._commit: asyncio.Future[None] | None = None
        self._flusher: asyncio.Task[None] | None = None
        self._last: asyncio.Future[None] | None = None  # the latest commit
        self._watched: asyncio.Future[None] | None = None  # of answers
        self._answers: list[Row] = []  # for the next commit
        self._answers_due: asyncio.TimerHandle | None = None
        self._reconciling = asyncio.Lock()
        self._failure: BaseException | None = None  # of a commit of answers
        # The window ahead: the items to send, in order; how many of them
        # have their intent written; those not sent yet, with their commit
        # and (when this run gave it) the time written.
        self._sends: list[Planned] = []
        self._order: dict[int, int] = {}
        self._window = 1
        self._ahead = 0
        self._intents: dict[int, tuple[Planned, asyncio.Future[None]]] = {}
        self._stamped: dict[int, float] = {}

    def _row(
        self,
        planned: Planned,
        state: ItemState,
        execution_id: str | None = None,
        *,
        status: str | None = None,
        result: dict[str, Any] | None = None,
        error: Exception | None = None,
    ) -> Row:
        # The entry of *planned* in *state*, as a row (in ``FIELDS`` order).
        request = planned.request
        error_type = error_message = None
        if error is not None:
            error_type, error_message = type(error).__name__, _text(str(error)[:500])
        if status is not None:
            status = _text(status)
        return (
            planned.index,
            planned.identity,
            request.rule_id,
            request.manual_execute_amount,
            planned.key,
            str(state),  # (the plain string: StrEnum's str)
            self._sent_at.get(planned.index),
            execution_id,
            status,
            result,
            error_type,
            error_message,
            self.journal.clock(),
        )

    async def plan(
        self,
        raw: Sequence[object],
        *,
        check: Callable[[object], TriggerRequest],
        api: str,
        target: str,
        wait: bool,
        per_minute: float | None,
        concurrency: int,
    ) -> list[Planned | Refused]:
        """
        Open the journal and plan the input *raw* against it (``_resume.prepare``).

        From then on intents are written ahead for a run of *concurrency*.
        """
        plan = await _resume.prepare(
            self.journal,
            self.claimed,
            raw,
            check=check,
            api=api,
            target=target,
            wait=wait,
            per_minute=per_minute,
        )
        self.expect(plan, window=max(AHEAD_MIN, AHEAD_PER_WORKER * concurrency))
        return plan

    def expect(self, plan: Sequence[object], *, window: int) -> None:
        """
        Learn the run's plan, in sending order, and its *window*.

        From then on, whenever fewer than one and a half windows past the
        item being sent have their intent written, those up to two windows
        past it get theirs, in one group: at most two windows are ever
        written ahead and not sent.
        """
        self._sends = [
            p for p in plan if isinstance(p, Planned) and p.action is Action.SEND
        ]
        self._order = {p.index: n for n, p in enumerate(self._sends)}
        self._window = max(1, window)

    def remember(self, planned: Planned) -> None:
        """Carry over *planned*'s send time and execution (no one else's)."""
        entry = planned.entry
        if entry is None:  # a new item: nothing to carry over
            return
        if (earlier := _resume.earlier_send(planned)) is not None:
            self._sent_at[planned.index] = earlier
        if entry.execution_id is not None:
            self.claimed.add(entry.execution_id)

    async def obtain(
        self,
        planned: Planned,
        requester: Requester,
        trigger: Callable[[], Awaitable[Execution]],
    ) -> Execution:
        """
        A journalled item's execution: found again, or triggered after its intent.

        Raises:
            errors.NeedsReviewError: An old send matched no execution.
        """
        if planned.action is Action.RECONCILE or (
            planned.entry is not None and _resume.expired(planned, self.journal.clock())
        ):
            self._intents.pop(planned.index, None)  # written ahead, not sent
            async with self._reconciling:  # one claim of an execution at a time
                found = await _resume.reconcile(planned, requester, self.claimed)
            if found is None:
                raise _resume.needs_review(planned)
            self.accepted(planned, found)
            return _resume.handle(planned, found, requester)
        if (commit := self.intent(planned)) is not None:
            await asyncio.shield(commit)  # one commit, many items: never cancel it
        execution = await trigger()
        self.accepted(planned, execution.id)
        return execution

    def intent(self, planned: Planned) -> asyncio.Future[None] | None:
        """
        Record the intent: from here the trigger may be on the wire.

        Returns its commit to await (shielded: one commit, many items), or
        None once it is committed (often it was, written ahead). The first
        send's time is kept: Sequence's 24 hours count from it.
        """
        index = planned.index
        now = self.journal.clock()
        position = self._order.get(index)
        if position is not None and self._ahead <= position + self._window * 3 // 2:
            self._write_ahead(position, now)
        written = self._intents.pop(index, None)
        stamped = self._stamped.pop(index, None)
        if (
            written is None
            or ((commit := written[1]).done() and commit.exception() is not None)
            or (stamped is not None and now - stamped > AHEAD_LIMIT)
        ):
            if stamped is not None:  # this run's stamp, not a send: restamp
                self._sent_at[index] = now
            self._sent_at.setdefault(index, now)
            commit = self._put([self._row(planned, ItemState.SENDING)])
        if not commit.done():
            return commit
        commit.result()
        return None

    def _write_ahead(self, position: int, now: float) -> None:
        # Fewer than 1.5 windows past *position* written: up to two, now.
        end = position + 1 + 2 * self._window
        batch = self._sends[self._ahead : end]
        self._ahead = end
        if not batch:
            return
        entries = []
        for planned in batch:
            index = planned.index
            if index not in self._sent_at:
                new = planned.entry is None  # (nothing earlier: no call)
                earlier = None if new else _resume.earlier_send(planned)
                if earlier is not None:
                    self._sent_at[index] = earlier
                else:
                    self._sent_at[index] = self._stamped[index] = now
            entries.append(self._row(planned, ItemState.SENDING))
        commit = self._put(entries)
        for planned in batch:
            self._intents[planned.index] = (planned, commit)

    def accepted(self, planned: Planned, execution_id: str) -> None:
        """
        Record the execution the trigger (or a reconciliation) named.
        """
        self.claimed.add(execution_id)
        self._soon(self._row(planned, ItemState.ACCEPTED, execution_id))

    def ended(self, planned: Planned, outcome: TriggerOutcome) -> None:
        """
        Record how the item ended, when that changes its state.
        """
        execution_id = outcome.execution.id if outcome.execution else None
        result = outcome.result
        if result is not None and result.done:  # (not until transfers exist)
            entry = self._row(
                planned,
                ItemState.TERMINAL,
                execution_id,
                status=str(result.status),
                result=_convert.unstructure(result),
            )
        elif outcome.error is None or execution_id is not None:
            return  # accepted (not waited, or the wait ended early): as recorded
        else:
            error = outcome.error
            entry = self._row(
                planned,
                state_after(error, earlier=_resume.may_have_run(planned)),
                error=error,
            )
        self._soon(entry)

    def _soon(self, entry: Row) -> None:
        # Answers join the next commit of intents, or a commit of their own
        # once a window of them waits or ANSWERS_DELAY has passed; the item
        # goes on without waiting for it. A crash before then leaves the
        # item `sending` (sent again with its key: the server replays it) or
        # `accepted` (waited on again). Only the intent must be durable
        # before the send.
        self._answers.append(entry)
        if len(self._answers) >= self._window:
            self._put([])
        elif self._answers_due is None:
            loop = asyncio.get_running_loop()
            self._answers_due = loop.call_later(ANSWERS_DELAY, self._put, [])

    def _check(self, commit: asyncio.Future[None]) -> None:
        failure = commit.exception()
        if failure is not None and self._failure is None:
            self._failure = failure

    def _put(self, entries: list[Row]) -> asyncio.Future[None]:
        # Add the answers waiting, then *entries*, to the next commit; return
        # the future it resolves.
        answers = self._answers
        if answers:
            self._answers = []
            entries = answers + entries
        if self._answers_due is not None:
            self._answers_due.cancel()
            self._answers_due = None
        commit = self._last = self._submit(entries)
        if answers and commit is not self._watched:
            self._watched = commit
            commit.add_done_callback(self._check)
        return commit

    def _group(self, entries: Sequence[Row]) -> asyncio.Future[None]:
        self._pending.extend(entries)
        if self._commit is None:
            self._commit = asyncio.get_running_loop().create_future()
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush())
        return self._commit

    async def _flush(self) -> None:
        while self._commit is not None:
            entries, commit = self._pending, self._commit
            self._pending, self._commit = [], None
            try:
                await self.journal.write([as_entry(row) for row in entries])
            except Exception as exc:  # noqa: BLE001 (handed to every waiter)
                commit.set_exception(exc)
                commit.exception()  # retrieved: a group of answers has no waiter
            else:
                commit.set_result(None)

    async def drain(self) -> None:
        """
        Wait until every write handed to the journal is committed.

        First the intents written ahead of items never sent are undone: such
        an item written ahead and never sent gets its earlier entry back, or
        ``failed`` (surely not carried out: sent again on resume). A commit
        of answers that failed raises here.
        """
        unsent, self._intents = self._intents, {}
        restored = [
            as_row(planned.entry) if planned.entry else self._never_sent(planned)
            for planned, _ in unsent.values()
        ]
        if restored or self._answers:
            self._put(restored)
        if self._last is not None:  # commits end in order: the last, last
            await asyncio.wait([self._last])
        if self._failure is not None:
            failure, self._failure = self._failure, None
            raise failure

    async def close(self, ending: BaseException | None) -> None:
        """
        Drain, then close the journal whatever happens (its lock is let go).

        A failed commit raises only when the run ends without an error of
        its own: *ending* (a cancellation, the input's error) is never
        replaced by it; the failure is logged instead.
        """
        try:
            await self.drain()
        except Exception:
            if ending is None or isinstance(ending, GeneratorExit):
                raise
            log.exception("the journal's last commits failed")
        finally:
            await self.journal.close()

    def _never_sent(self, planned: Planned) -> Row:
        self._sent_at.pop(planned.index, None)
        return self._row(
            planned,
            ItemState.FAILED,
            error=errors.NotStartedError("not sent: the run ended before this item"),
        )


def _text(told: str) -> str:
    # A server's text as SQLite can store it: a lone surrogate (JSON may
    # carry one, "\ud800") is kept escaped, never failing the commit.
    return told.encode("utf-8", "backslashreplace").decode("utf-8")
