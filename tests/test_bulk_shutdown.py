"""
Stopping a bulk run from anywhere, and what it leaves.

aclose() from another task, a crash in on_progress, cancellation and failed
commits while a journalled run winds down: whatever stops it, nothing more
starts, the journal is let go, and a cancellation is never replaced by
another error.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest

from sequence_async import (
    BulkProgress,
    ItemState,
    JournalEntry,
    JournalError,
    NotFoundError,
    NotStartedError,
    SequenceClient,
    SqliteJournal,
    TriggerRequest,
)
from sequence_async.testing import Behavior, FakeSequence

from .test_execution import other_tasks
from .test_journal import keys_on


class Abort(BaseException):
    """Raised by an on_progress that wants the run over (not an Exception)."""


class Watched:
    """
    A SQLite journal that says when it is closed, and can fail every answer.

    With ``fail_answers``, a write holding an ``accepted`` entry raises
    ``JournalError`` (a full disk, say) and sets ``failed``.
    """

    def __init__(self, path: Path, *, fail_answers: bool = False) -> None:
        self.inner = SqliteJournal(path)
        self.clock = self.inner.clock
        self.fail_answers = fail_answers
        self.failed = asyncio.Event()
        self.closed = False

    async def open(
        self, *, api: str = "api-v1", target: str = ""
    ) -> tuple[str, list[JournalEntry]]:
        """Open the real journal."""
        return await self.inner.open(api=api, target=target)

    async def write(self, entries: Sequence[JournalEntry]) -> None:
        """Commit *entries*, or fail a write of answers."""
        if self.fail_answers and any(e.state is ItemState.ACCEPTED for e in entries):
            self.failed.set()
            raise JournalError("database or disk is full")
        await self.inner.write(entries)

    async def close(self) -> None:
        """Close the real journal (its lock is let go)."""
        self.closed = True
        await self.inner.close()


@pytest.fixture
def quick(server: FakeSequence) -> FakeSequence:
    """The fake server with every execution ending at once."""
    server.set_behavior("*", Behavior(median=0.0, sigma=0.0))
    return server


async def test_a_base_exception_from_on_progress_starts_nothing_more(
    live: SequenceClient, quick: FakeSequence
) -> None:
    """Once on_progress raises a BaseException, no new item starts (not 199 more)."""
    raised = False

    def progress(_: BulkProgress) -> None:
        nonlocal raised
        if not raised:
            raised = True
            raise Abort

    async def run_all() -> None:
        async with live.trigger_many(
            ["rule_0001"] * 200, concurrency=4, wait=False, on_progress=progress
        ) as run:
            async for _ in run:
                pass

    with pytest.raises(Abort):
        await run_all()

    assert len(quick.executions()) <= 4  # at most the triggers already going
    assert not other_tasks()


async def test_a_cancellation_while_winding_down_still_lets_go_of_the_journal(
    live: SequenceClient, quick: FakeSequence, tmp_path: Path
) -> None:
    """Cancelled as it winds down, a run still closes its journal: it resumes."""
    journal = Watched(tmp_path / "run.db")
    items = ["rule_0001"] * 6
    left = asyncio.Event()

    async def consume() -> None:
        async with live.trigger_many(items, wait=False, journal=journal) as run:
            async for _ in run:
                break
            left.set()  # leaving the block winds the run down

    task = asyncio.create_task(consume())
    await left.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    assert journal.closed
    resumed = await live.trigger_all(items, wait=False, journal=tmp_path / "run.db")
    assert 6 == len(resumed)  # not "in use by another process"
    assert {1} == set(keys_on(quick).values())


async def test_a_failed_commit_of_answers_is_raised_and_the_journal_let_go(
    live: SequenceClient, quick: FakeSequence, tmp_path: Path
) -> None:
    """A commit that fails is raised at the end of the run; the journal is closed."""
    journal = Watched(tmp_path / "run.db", fail_answers=True)

    with pytest.raises(JournalError, match="disk is full"):
        await live.trigger_all(["rule_0001"] * 3, wait=False, journal=journal)

    assert journal.closed


async def test_a_failed_commit_never_replaces_a_cancellation(
    live: SequenceClient, server: FakeSequence, tmp_path: Path
) -> None:
    """Cancelled after a commit failed, the run ends cancelled, not with that error."""
    journal = Watched(tmp_path / "run.db", fail_answers=True)

    async def consume() -> None:
        # The executions never end (the clock stands still): it waits.
        async with live.trigger_many(["rule_0001"] * 3, journal=journal) as run:
            async for _ in run:
                pass

    task = asyncio.create_task(consume())
    await journal.failed.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    assert journal.closed


async def test_aclose_from_another_task_returns_when_the_run_fails_to_start(
    live: SequenceClient, server: FakeSequence, tmp_path: Path
) -> None:
    """A journalled run whose input breaks while it is read: aclose() returns.

    The aclose() came first: it stops the reading, and the loop simply ends.
    """
    reading, broken = asyncio.Event(), asyncio.Event()

    async def payouts() -> AsyncIterator[str]:
        yield "rule_0001"
        reading.set()
        await broken.wait()
        raise ConnectionError("the database went away")

    run = live.trigger_many(payouts(), journal=tmp_path / "run.db")
    consumer = asyncio.create_task(anext(run))
    await reading.wait()
    # A shutdown handler; it runs before the input wakes (the loop is FIFO).
    closer = asyncio.create_task(run.aclose())
    broken.set()

    with pytest.raises(StopAsyncIteration):
        await consumer
    async with asyncio.timeout(30):  # a safety net: the bug was a hang
        await closer
    assert 0 == server.counts.get("trigger_rule", 0)


async def test_aclose_from_another_task_while_the_loop_body_runs_ends_the_loop(
    live: SequenceClient, quick: FakeSequence, tmp_path: Path
) -> None:
    """After an outside aclose(), the consumer's loop ends: no RuntimeError."""
    run = live.trigger_many(
        ["rule_0001"] * 5, wait=False, concurrency=2, journal=tmp_path / "run.db"
    )
    took_one, go_on = asyncio.Event(), asyncio.Event()
    taken = []

    async def consume() -> None:
        async for outcome in run:
            taken.append(outcome)
            took_one.set()
            await go_on.wait()  # handling the outcome, outside the run

    consumer = asyncio.create_task(consume())
    await took_one.wait()
    # It winds the run down before the consumer goes on (the loop is FIFO).
    closer = asyncio.create_task(run.aclose())
    go_on.set()

    await consumer  # its loop ends: no "already running" RuntimeError
    await closer
    assert 1 == len(taken)
    assert not other_tasks()


async def test_items_not_started_after_max_failures_keep_their_request_and_key(
    live: SequenceClient, quick: FakeSequence, tmp_path: Path
) -> None:
    """With or without a journal, a NotStartedError outcome names its real item."""
    items = [TriggerRequest("rule_nope")] + [
        TriggerRequest("rule_0001", idempotency_key=f"pay-{n}") for n in range(3)
    ]

    for journal in (None, tmp_path / "run.db"):
        outcomes = await live.trigger_all(
            items, concurrency=1, max_failures=1, journal=journal
        )

        assert isinstance(outcomes[0].error, NotFoundError)
        assert [NotStartedError] * 3 == [type(o.error) for o in outcomes[1:]]
        assert items[1:] == [o.request for o in outcomes[1:]]
        assert ["pay-0", "pay-1", "pay-2"] == [o.idempotency_key for o in outcomes[1:]]
