"""
Intents written a window ahead: what a crash, a stop or a slow send leaves.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from sequence_async import (
    BadRequestError,
    ItemState,
    JournalEntry,
    JournalError,
    NeedsReviewError,
    SequenceClient,
    SqliteJournal,
    TriggerOutcome,
    _records,
    read_journal,
)
from sequence_async._journal import as_row
from sequence_async._records import AHEAD_LIMIT, AHEAD_MIN, Recorder
from sequence_async._resume import Planned, plan
from sequence_async.testing import Behavior, FakeSequence, ManualClock

from .test_journal import (
    entry,
    keys_on,
    read_entries,
    requests,
    run_id_of,
    write_entries,
)


API = os.environ.get("SEQUENCE_API") or "api-v1"


@pytest.fixture
def quick(server: FakeSequence) -> FakeSequence:
    """The fake server with every execution ending at once."""
    server.set_behavior("*", Behavior(median=0.0, sigma=0.0))
    return server


class CrashAfterFirstCommit:
    """
    A journal that copies its files after its first commit, then dies.

    The copy is what a ``kill -9`` right after that commit leaves on disk;
    every later write fails, so the run sends nothing after it.
    """

    def __init__(self, path: Path, copy: Path, clock: ManualClock) -> None:
        self.inner = SqliteJournal(path, clock=clock)
        self.clock: Callable[[], float] = clock
        self.path, self.copy = path, copy
        self.dead = False

    async def open(
        self, *, api: str = "api-v1", target: str = ""
    ) -> tuple[str, list[JournalEntry]]:
        """Open the real journal."""
        return await self.inner.open(api=api, target=target)

    async def write(self, entries: Sequence[JournalEntry]) -> None:
        """Commit the first write, copy the files and die: every write fails."""
        if self.dead:
            raise JournalError("the process is gone")
        await self.inner.write(entries)
        for suffix in ("", "-wal"):
            with contextlib.suppress(FileNotFoundError):
                shutil.copyfile(f"{self.path}{suffix}", f"{self.copy}{suffix}")
        self.dead = True
        raise JournalError("the process is gone")

    async def close(self) -> None:
        """Close the real journal."""
        await self.inner.close()


# A run at concurrency 4 writes its first intents in one commit: the first
# item's, and two windows past it.
FIRST_COMMIT = 1 + 2 * AHEAD_MIN


async def crash_after_first_commit(
    live: SequenceClient, clock: ManualClock, tmp_path: Path, count: int
) -> Path:
    """Run *count* items at concurrency 4 until the first commit; the crash copy."""
    copy = tmp_path / "crashed.db"
    journal = CrashAfterFirstCommit(tmp_path / "run.db", copy, clock)
    with pytest.raises(JournalError):  # the answers could not be written
        await live.trigger_all(requests(count), journal=journal, concurrency=4)
    return copy


async def test_a_crash_with_intents_written_ahead_resumes_without_duplicates(
    live: SequenceClient, quick: FakeSequence, clock: ManualClock, tmp_path: Path
) -> None:
    """Intents committed ahead, never sent, then kill -9: each item runs once."""
    copy = await crash_after_first_commit(live, clock, tmp_path, 200)
    crashed = read_journal(copy).counts
    sent_before = quick.counts["trigger_rule"]

    outcomes = await live.trigger_all(
        requests(200), journal=SqliteJournal(copy, clock=clock), concurrency=4
    )

    assert 0 == sent_before
    assert {"sending": FIRST_COMMIT} == crashed
    assert all(o.ok for o in outcomes)
    assert 200 == len(keys_on(quick))
    assert {1} == set(keys_on(quick).values())
    assert {"terminal": 200} == read_journal(copy).counts


async def test_intents_written_ahead_are_reviewed_not_resent_after_a_day(
    live: SequenceClient, quick: FakeSequence, clock: ManualClock, tmp_path: Path
) -> None:
    """Resumed past 23 hours, the unsent window is for a person: no POST for it."""
    copy = await crash_after_first_commit(live, clock, tmp_path, 200)
    clock.advance(25 * 3600)
    quick.advance(25 * 3600)

    outcomes = await live.trigger_all(
        requests(200), journal=SqliteJournal(copy, clock=clock), concurrency=4
    )

    reviewed = [o for o in outcomes if isinstance(o.error, NeedsReviewError)]
    rest = 200 - FIRST_COMMIT
    assert FIRST_COMMIT == len(reviewed)
    assert rest == quick.counts["trigger_rule"]
    assert {"needs_review": FIRST_COMMIT, "terminal": rest} == read_journal(copy).counts


async def planned(
    path: Path, clock: ManualClock, count: int, *entries: JournalEntry
) -> tuple[SqliteJournal, list[Planned]]:
    """An open journal at *path* and the plan of *count* items against it."""
    journal = SqliteJournal(path, clock=clock)
    run_id, recorded = await journal.open(api=API)
    items = plan(
        requests(count), run_id=run_id, entries=recorded, now=clock(), wait=False
    )
    return journal, items


async def recording(
    path: Path, clock: ManualClock, count: int, window: int
) -> tuple[SqliteJournal, list[Planned], Recorder]:
    """The plan of *count* items against the journal at *path*, and its recorder."""
    journal, items = await planned(path, clock, count)
    recorder = Recorder(journal)
    recorder.expect(items, window=window)
    return journal, items, recorder


async def counted_run(
    tmp_path: Path, clock: ManualClock, count: int, window: int
) -> tuple[SqliteJournal, list[Planned], Counted, Recorder]:
    """A plan of *count* items, and its recorder writing through a Counted."""
    journal, items = await planned(tmp_path / "run.db", clock, count)
    counted = Counted(journal)
    recorder = Recorder(counted)
    recorder.expect(items, window=window)
    return journal, items, counted, recorder


async def sending(recorder: Recorder, item: Planned) -> None:
    """Record *item*'s intent, as a run does before sending it."""
    commit = recorder.intent(item)
    if commit is not None:
        await commit


async def test_a_stopped_run_undoes_the_intents_of_items_it_never_sent(
    clock: ManualClock, tmp_path: Path
) -> None:
    """Written ahead, never sent: back to the earlier entry, or `failed`."""
    path = tmp_path / "run.db"
    run_id = await run_id_of(path, clock)
    earlier = entry(run_id, 2, ItemState.UNKNOWN, clock() - 3600)
    await write_entries(path, clock, earlier)
    journal, items, recorder = await recording(path, clock, 6, 2)

    await sending(recorder, items[0])
    written = read_journal(path).counts
    await recorder.drain()
    await journal.close()

    after = {e.position: e for e in read_journal(path).needs_attention}
    assert {"sending": 5} == written  # the item and two windows
    assert {"sending": 1, "failed": 3, "unknown": 1} == read_journal(path).counts
    assert (ItemState.UNKNOWN, earlier.sent_at) == (after[2].state, after[2].sent_at)


async def test_an_intent_written_ahead_and_sent_late_gets_the_send_time(
    clock: ManualClock, tmp_path: Path
) -> None:
    """sent_at is never later than the send, and never far earlier."""
    path = tmp_path / "run.db"
    journal, items, recorder = await recording(path, clock, 4, 4)
    written = clock()

    await sending(recorder, items[0])
    await sending(recorder, items[1])
    clock.advance(AHEAD_LIMIT + 1)
    await sending(recorder, items[2])
    await recorder.drain()
    await journal.close()

    sent_at = {e.position: e.sent_at for e in await read_entries(path, clock)}
    assert {0: written, 1: written, 2: clock(), 3: None} == sent_at


async def test_the_intents_of_a_window_share_one_write(
    clock: ManualClock, tmp_path: Path
) -> None:
    """A journal with `write` only gets one write per group, not one per item."""
    journal, items, counted, recorder = await counted_run(tmp_path, clock, 8, 3)

    await asyncio.gather(*(sending(recorder, p) for p in items[:3]))
    await recorder.drain()
    await journal.close()

    assert [7, 4] == counted.writes  # the first and two windows; 4 undone
    assert {"sending": 3, "failed": 4} == read_journal(journal.path).counts


class Counted:
    """An open journal seen through `write` only, counting entries per write."""

    def __init__(self, inner: SqliteJournal) -> None:
        self.inner = inner
        self.clock = inner.clock
        self.writes: list[int] = []
        self.states: list[list[ItemState]] = []  # of each write's entries
        self.written = asyncio.Event()

    async def open(
        self, *, api: str = "api-v1", target: str = ""
    ) -> tuple[str, list[JournalEntry]]:
        """Not used: the journal is open already."""
        raise NotImplementedError

    async def write(self, entries: Sequence[JournalEntry]) -> None:
        """Count, then write through."""
        self.writes.append(len(entries))
        self.states.append([e.state for e in entries])
        await self.inner.write(entries)
        self.written.set()

    async def close(self) -> None:
        """Not used: the test closes the journal."""


async def test_the_next_intents_are_written_while_a_window_and_a_half_is_left(
    clock: ManualClock, tmp_path: Path
) -> None:
    """A commit as slow as sending a whole window stalls no send: it starts early."""
    journal, items, counted, recorder = await counted_run(tmp_path, clock, 12, 2)

    for item in items[:3]:  # the third leaves 2 of a 1.5-window margin
        await sending(recorder, item)
    await recorder.drain()
    await journal.close()

    assert [ItemState.SENDING] * 5 == counted.states[0]  # the first, two windows
    assert [ItemState.SENDING] * 2 == counted.states[1][:2]  # up to two past the third


async def test_the_last_items_of_a_run_without_answers_end_the_run(
    clock: ManualClock, tmp_path: Path
) -> None:
    """Past the end of the plan, the window writes nothing, and drain returns."""
    path = tmp_path / "run.db"
    await run_id_of(path, clock)
    for journal_of in (lambda j: j, Counted):
        journal, items = await planned(path, clock, 3)
        recorder = Recorder(journal_of(journal))
        recorder.expect(items, window=4)

        for item in items:
            await sending(recorder, item)
        async with asyncio.timeout(30):  # a hang fails, it does not time
            await recorder.drain()
        await journal.close()

        assert {"sending": 3} == read_journal(path).counts


async def test_an_empty_submit_during_a_commit_resolves(
    clock: ManualClock, tmp_path: Path
) -> None:
    """Nothing to write still gets its commit, after the one under way."""
    path = tmp_path / "run.db"
    await run_id_of(path, clock)
    journal, items = await planned(path, clock, 1)
    first = journal.submit_rows([as_row(entry_of(items[0], clock))])
    empty = journal.submit_rows([])

    async with asyncio.timeout(30):  # a hang fails, it does not time
        await asyncio.gather(first, empty)
    await journal.close()

    assert {"sending": 1} == read_journal(path).counts


def entry_of(item: Planned, clock: ManualClock) -> JournalEntry:
    """The intent of *item*, sent now."""
    return JournalEntry(
        position=item.index,
        identity=item.identity,
        rule_id=item.request.rule_id,
        amount=None,
        idempotency_key=item.key,
        state=ItemState.SENDING,
        sent_at=clock(),
        updated_at=clock(),
    )


async def test_answers_join_the_next_commit_of_intents(
    clock: ManualClock, tmp_path: Path
) -> None:
    """An execution named is not a commit of its own while intents follow."""
    journal, items, counted, recorder = await counted_run(tmp_path, clock, 8, 2)

    await sending(recorder, items[0])
    recorder.accepted(items[0], "exe_0")
    for item in items[1:4]:  # the second leaves under 1.5 windows written
        await sending(recorder, item)
    await recorder.drain()
    await journal.close()

    joined = next(states for states in counted.states if ItemState.ACCEPTED in states)
    assert [ItemState.SENDING] * 5 == counted.states[0]
    assert [ItemState.ACCEPTED] + [ItemState.SENDING] * 2 == joined[:3]
    assert {"accepted": 1, "sending": 3, "failed": 3} == read_journal(
        journal.path
    ).counts


async def test_answers_with_no_intents_to_join_are_committed_soon(
    clock: ManualClock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With nothing left to send, an answer still goes, before the run's end."""
    monkeypatch.setattr(_records, "ANSWERS_DELAY", 0.0)
    journal, items, counted, recorder = await counted_run(tmp_path, clock, 1, 2)
    await sending(recorder, items[0])
    counted.written.clear()

    recorder.accepted(items[0], "exe_0")
    async with asyncio.timeout(30):  # a hang fails, it does not time
        await counted.written.wait()
    committed = read_journal(journal.path).counts
    await recorder.drain()
    await journal.close()

    assert [[ItemState.SENDING], [ItemState.ACCEPTED]] == counted.states
    assert {"accepted": 1} == committed


async def test_a_window_of_answers_is_committed_at_once(
    clock: ManualClock, tmp_path: Path
) -> None:
    """Answers waiting never outnumber a window: the window's answer sends them."""
    journal, items, counted, recorder = await counted_run(tmp_path, clock, 2, 2)
    for item in items:
        await sending(recorder, item)

    recorder.accepted(items[0], "exe_0")
    first = list(counted.writes)
    recorder.accepted(items[1], "exe_1")
    async with asyncio.timeout(30):  # a hang fails, it does not time
        await recorder.drain()
    await journal.close()

    assert [2] == first
    assert [2, 2] == counted.writes
    assert {"accepted": 2} == read_journal(journal.path).counts


async def test_a_servers_text_that_is_not_utf_8_is_stored_escaped(
    clock: ManualClock, tmp_path: Path
) -> None:
    """A lone surrogate from JSON neither fails the commit nor other items."""
    path = tmp_path / "run.db"
    _, items, recorder = await recording(path, clock, 2, 1)
    for item in items:
        await sending(recorder, item)
    told = BadRequestError("bad \ud800 amount", status=400)

    recorder.accepted(items[0], "exe_0")
    recorder.ended(
        items[1], TriggerOutcome(index=1, request=items[1].request, error=told)
    )
    await recorder.close(None)

    stored = {e.position: e for e in await read_entries(path, clock)}
    assert ItemState.ACCEPTED == stored[0].state
    assert ItemState.REJECTED == stored[1].state
    assert "bad \\ud800 amount" in str(stored[1].error_message)
