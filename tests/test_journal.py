"""
Crash-safe bulk runs: the journal, resuming, the 24-hour rule, kill -9.
"""

from __future__ import annotations

import asyncio
import collections
import os
import random
import signal
import sqlite3
import sys
import textwrap
from pathlib import Path

import pytest

from sequence_async import (
    ItemState,
    JournalEntry,
    JournalError,
    NeedsReviewError,
    SequenceClient,
    SqliteJournal,
    TriggerRequest,
    read_journal,
)
from sequence_async._resume import derive_key
from sequence_async.testing import Behavior, FakeSequence, ManualClock


RULES = ("rule_0001", "rule_0002", "rule_0003")


def requests(count: int) -> list[TriggerRequest]:
    """*count* trigger requests over the demo rules (MANUAL ones get amounts)."""
    return [TriggerRequest(RULES[n % 3]) for n in range(count)]


@pytest.fixture
def quick(server: FakeSequence) -> FakeSequence:
    """The fake server with every execution ending at once."""
    server.set_behavior("*", Behavior(median=0.0, sigma=0.0))
    return server


def keys_on(server: FakeSequence) -> collections.Counter[str | None]:
    """How many executions the server made per idempotency key."""
    return collections.Counter(e["idempotency_key"] for e in server.executions())


async def test_a_journalled_run_records_every_item(
    live: SequenceClient, quick: FakeSequence, tmp_path: Path
) -> None:
    """Each item ends terminal in the journal, with a deterministic 36-char key."""
    path = tmp_path / "run.db"

    outcomes = await live.trigger_all(requests(9), journal=path)

    summary = read_journal(path)
    assert all(o.ok for o in outcomes)
    assert {"terminal": 9} == summary.counts
    assert [derive_key(summary.run_id, n) for n in range(9)] == [
        o.idempotency_key for o in outcomes
    ]
    assert {36} == {len(o.idempotency_key or "") for o in outcomes}


async def test_resuming_a_finished_run_sends_nothing(
    live: SequenceClient, quick: FakeSequence, tmp_path: Path
) -> None:
    """A finished run replays its outcomes from the journal: 0 POSTs, 0 polls."""
    path = tmp_path / "run.db"
    first = await live.trigger_all(requests(6), journal=path)
    sent = dict(quick.counts)

    again = await live.trigger_all(requests(6), journal=path)

    assert sent == dict(quick.counts)
    assert all(o.from_journal for o in again)
    assert [o.result for o in first] == [o.result for o in again]


async def test_a_changed_input_is_refused_before_sending(
    live: SequenceClient, quick: FakeSequence, tmp_path: Path
) -> None:
    """Another rule, amount or key at a recorded position is a ValueError."""
    path = tmp_path / "run.db"
    await live.trigger_all(requests(3), journal=path, wait=False)
    sent = quick.counts["trigger_rule"]
    changed = [
        [TriggerRequest("rule_0002"), *requests(3)[1:]],
        [*requests(3)[:2], TriggerRequest("rule_0003", idempotency_key="mine")],
        requests(2),
    ]

    for batch in changed:
        with pytest.raises(ValueError, match="not the same input"):
            await live.trigger_all(batch, journal=path)

    assert sent == quick.counts["trigger_rule"]


async def test_accepted_items_are_waited_on_not_triggered_again(
    live: SequenceClient, quick: FakeSequence, tmp_path: Path
) -> None:
    """A run that stopped after the triggers resumes by waiting only."""
    path = tmp_path / "run.db"
    await live.trigger_all(requests(4), journal=path, wait=False)
    sent = quick.counts["trigger_rule"]

    outcomes = await live.trigger_all(requests(4), journal=path)

    assert sent == quick.counts["trigger_rule"]
    assert all(o.ok and o.result is not None for o in outcomes)
    assert {"terminal": 4} == read_journal(path).counts


async def test_old_unsettled_sends_are_reconciled_never_resent(
    live: SequenceClient, quick: FakeSequence, clock: ManualClock, tmp_path: Path
) -> None:
    """Past 23 hours, a `sending` item is matched to its execution, or reviewed."""
    path = tmp_path / "run.db"
    journal = SqliteJournal(path, clock=clock)
    run_id, _ = await journal.open()
    sent_at = clock()
    await live.rules.trigger(RULES[0], idempotency_key=derive_key(run_id, 0))
    await journal.write(
        [
            JournalEntry(
                position=n,
                identity=f"position:{n}",
                rule_id=RULES[n],
                amount=None,
                idempotency_key=derive_key(run_id, n),
                state=ItemState.SENDING,
                sent_at=sent_at,
                updated_at=sent_at,
            )
            for n in range(2)
        ]
    )
    await journal.close()
    quick.advance(25 * 3600)
    sent = quick.counts["trigger_rule"]

    outcomes = await live.trigger_all(
        requests(2), journal=SqliteJournal(path, clock=clock)
    )

    assert sent == quick.counts["trigger_rule"]
    assert outcomes[0].ok
    assert isinstance(outcomes[1].error, NeedsReviewError)
    assert {"terminal": 1, "needs_review": 1} == read_journal(path).counts
    assert 1 == len(read_journal(path).needs_attention)


async def test_recent_unsettled_sends_are_sent_again_with_their_key(
    live: SequenceClient, quick: FakeSequence, clock: ManualClock, tmp_path: Path
) -> None:
    """Within 23 hours, a `sending` item is re-sent with its key: the server replays."""
    path = tmp_path / "run.db"
    journal = SqliteJournal(path, clock=clock)
    run_id, _ = await journal.open()
    key = derive_key(run_id, 0)
    await live.rules.trigger(RULES[0], idempotency_key=key)
    await journal.write(
        [
            JournalEntry(
                position=0,
                identity="position:0",
                rule_id=RULES[0],
                amount=None,
                idempotency_key=key,
                state=ItemState.SENDING,
                sent_at=clock(),
                updated_at=clock(),
            )
        ]
    )
    await journal.close()
    quick.advance(3600)

    await live.trigger_all(requests(1), journal=SqliteJournal(path, clock=clock))

    assert {key: 1} == keys_on(quick)


async def test_foreign_and_corrupt_files_are_refused_and_left_alone(
    live: SequenceClient, tmp_path: Path
) -> None:
    """A text file or another program's SQLite file is a JournalError, unchanged."""
    text = tmp_path / "notes.txt"
    text.write_bytes(b"not a database at all\n" * 100)
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as db:
        db.execute("CREATE TABLE t (x)")
    before = {p: p.read_bytes() for p in (text, other)}

    for path in (text, other):
        with pytest.raises(JournalError, match="not a sequence-async journal"):
            await live.trigger_all(requests(1), journal=path)

    assert before == {p: p.read_bytes() for p in (text, other)}


async def test_one_process_at_a_time(live: SequenceClient, tmp_path: Path) -> None:
    """A journal held open by a run refuses a second opener."""
    path = tmp_path / "run.db"
    holder = SqliteJournal(path)
    await holder.open()
    try:
        with pytest.raises(JournalError, match="in use"):
            await live.trigger_all(requests(1), journal=path)
    finally:
        await holder.close()


WORKER = textwrap.dedent(
    """
    import asyncio, sys
    from sequence_async import PollPolicy, RetryPolicy, SequenceClient, TriggerRequest

    async def main() -> None:
        url, key, path, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
        rules = ("rule_0001", "rule_0002", "rule_0003")
        items = [TriggerRequest(rules[n % 3]) for n in range(count)]
        poll = PollPolicy(wait_initial=0.01, multiplier=1.0, wait_max=0.01, jitter=0)
        retry = RetryPolicy(max_retries=3, wait_initial=0, wait_max=0)
        async with SequenceClient(key, base_url=url, poll=poll, retry=retry) as c:
            async with c.trigger_many(items, journal=path, concurrency=8) as run:
                async for _ in run:
                    pass

    asyncio.run(main())
    """
)


async def test_kill_9_at_random_points_loses_and_duplicates_nothing(
    quick: FakeSequence, tmp_path: Path
) -> None:
    """20 kills of a 2,000-item run, then a resume: one execution per item."""
    count, kills = 2000, 20
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    path = tmp_path / "payroll.db"
    args = [sys.executable, str(script), str(quick.url), quick.api_key, str(path)]
    thresholds = sorted(random.Random(1234).sample(range(50, count - 50), kills))
    killed = 0

    for threshold in thresholds:
        worker = await asyncio.create_subprocess_exec(*args, str(count))
        arrived = asyncio.create_task(
            quick.wait_for_requests("trigger_rule", threshold)
        )
        ended = asyncio.create_task(worker.wait())
        await asyncio.wait([arrived, ended], return_when=asyncio.FIRST_COMPLETED)
        arrived.cancel()
        if worker.returncode is None:
            os.kill(worker.pid, signal.SIGKILL)
            killed += 1
        await ended
    finisher = await asyncio.create_subprocess_exec(*args, str(count))
    assert 0 == await finisher.wait()
    posts = quick.counts["trigger_rule"]
    again = await asyncio.create_subprocess_exec(*args, str(count))
    assert 0 == await again.wait()

    per_key = keys_on(quick)
    assert kills == killed
    assert count == len(per_key)
    assert {1} == set(per_key.values())
    assert {"terminal": count} == read_journal(path).counts
    assert posts == quick.counts["trigger_rule"]
