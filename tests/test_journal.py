"""
Crash-safe bulk runs: the journal, resuming, the 24-hour rule, kill -9.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import math
import os
import random
import signal
import sqlite3
import sys
import textwrap
import uuid
from pathlib import Path
from typing import Any

import attrs
import pytest

from sequence_async import (
    APIConnectionError,
    AuthenticationError,
    BadRequestError,
    ItemState,
    JournalEntry,
    JournalError,
    NeedsReviewError,
    NotFoundError,
    PermissionDeniedError,
    SequenceClient,
    ServerError,
    SqliteJournal,
    TriggerRequest,
    read_journal,
)
from sequence_async._journal import FIELDS, as_entry, as_row, state_after
from sequence_async._journal_file import COLUMNS, statements
from sequence_async._resume import derive_key
from sequence_async.testing import Behavior, FakeSequence, ManualClock

from .conftest import NO_WAIT_RETRIES


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
    run_id, _ = await journal.open(api=os.environ.get("SEQUENCE_API") or "api-v1")
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
    run_id, _ = await journal.open(api=os.environ.get("SEQUENCE_API") or "api-v1")
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


async def write_entries(path: Path, clock: ManualClock, *entries: JournalEntry) -> str:
    """Record *entries* in the journal at *path*; return its run id."""
    journal = SqliteJournal(path, clock=clock)
    run_id, _ = await journal.open(api=os.environ.get("SEQUENCE_API") or "api-v1")
    await journal.write(list(entries))
    await journal.close()
    return run_id


def entry(
    run_id: str,
    position: int,
    state: ItemState,
    sent_at: float,
    *,
    rule_id: str | None = None,
    amount: int | None = None,
    **fields: Any,
) -> JournalEntry:
    """An item as a journal records it (a demo rule by position by default)."""
    return JournalEntry(
        position=position,
        identity=f"position:{position}",
        rule_id=rule_id or RULES[position % 3],
        amount=amount,
        idempotency_key=derive_key(run_id, position),
        state=state,
        sent_at=sent_at,
        updated_at=sent_at,
        **fields,
    )


async def run_id_of(path: Path, clock: ManualClock) -> str:
    """Create the journal at *path* and return its run id."""
    return await write_entries(path, clock)


async def test_the_first_send_time_is_kept_across_failed_resends(
    live: SequenceClient, quick: FakeSequence, clock: ManualClock, tmp_path: Path
) -> None:
    """A resend whose answer is lost keeps the first sent_at: at +25 h, no POST."""
    path = tmp_path / "run.db"
    run_id = await run_id_of(path, clock)
    first = clock()
    await write_entries(path, clock, entry(run_id, 0, ItemState.UNKNOWN, first))
    quick.advance(10 * 3600)
    quick.set_faults("trigger_rule", errors_next=10)
    await live.trigger_all(requests(1), journal=SqliteJournal(path, clock=clock))
    (recorded,) = read_journal(path).needs_attention
    quick.advance(15 * 3600)
    quick.set_faults("trigger_rule")
    sent = quick.counts["trigger_rule"]

    outcomes = await live.trigger_all(
        requests(1), journal=SqliteJournal(path, clock=clock)
    )

    assert (ItemState.UNKNOWN, first) == (recorded.state, recorded.sent_at)
    assert sent == quick.counts["trigger_rule"]
    assert isinstance(outcomes[0].error, NeedsReviewError)


async def test_a_resend_that_never_connected_leaves_the_item_unknown(
    clock: ManualClock, tmp_path: Path
) -> None:
    """After an earlier send, a refused connection proves nothing: still unknown."""
    path = tmp_path / "run.db"
    run_id = await run_id_of(path, clock)
    await write_entries(path, clock, entry(run_id, 0, ItemState.UNKNOWN, clock()))
    async with SequenceClient(
        "sk_test", base_url="http://127.0.0.1:9/api/v1", retry=NO_WAIT_RETRIES
    ) as client:
        outcomes = await client.trigger_all(
            requests(1), journal=SqliteJournal(path, clock=clock)
        )

    assert isinstance(outcomes[0].error, APIConnectionError)
    assert [ItemState.UNKNOWN] == [e.state for e in read_journal(path).needs_attention]


@pytest.mark.parametrize(
    ("error", "earlier", "expected"),
    [
        # A store may fail after the send too (recording its answer).
        (JournalError("disk full"), False, ItemState.UNKNOWN),
        (APIConnectionError("refused", sent=False), False, ItemState.FAILED),
        (APIConnectionError("refused", sent=False), True, ItemState.UNKNOWN),
        (ServerError("bad gateway", status=502), False, ItemState.UNKNOWN),
        # Refused before acting, and mendable (the key, its scopes, the
        # rule): sent again on resume, never final.
        (AuthenticationError("bad key", status=401), False, ItemState.FAILED),
        (PermissionDeniedError("no scope", status=403), False, ItemState.FAILED),
        (NotFoundError("no", status=404), False, ItemState.FAILED),
        (NotFoundError("no", status=404), True, ItemState.UNKNOWN),
        (BadRequestError("bad body", status=400), False, ItemState.REJECTED),
        (ValueError("bad amount"), False, ItemState.REJECTED),
    ],
)
def test_only_errors_that_prove_nothing_ran_allow_a_resend(
    error: Exception, earlier: bool, expected: ItemState
) -> None:
    """`failed` (sent again at any age) needs proof; anything else is unknown."""
    assert expected == state_after(error, earlier=earlier)


async def test_reconciliation_never_takes_another_items_execution(
    live: SequenceClient, quick: FakeSequence, clock: ManualClock, tmp_path: Path
) -> None:
    """An execution another item recorded is not a match for an old unsettled one."""
    path = tmp_path / "run.db"
    run_id = await run_id_of(path, clock)
    sent_at = clock()
    other = await live.rules.trigger(RULES[0], idempotency_key=derive_key(run_id, 3))
    await write_entries(
        path,
        clock,
        entry(run_id, 0, ItemState.SENDING, sent_at),
        entry(run_id, 1, ItemState.REJECTED, sent_at, error_type="BadRequestError"),
        entry(run_id, 2, ItemState.REJECTED, sent_at, error_type="BadRequestError"),
        entry(run_id, 3, ItemState.ACCEPTED, sent_at, execution_id=other.id),
    )
    quick.advance(23.5 * 3600)

    outcomes = await live.trigger_all(
        requests(4), journal=SqliteJournal(path, clock=clock), concurrency=4
    )

    assert isinstance(outcomes[0].error, NeedsReviewError)
    assert other.id == (outcomes[3].execution.id if outcomes[3].execution else None)


async def test_a_duplicate_key_is_one_rejected_item_in_a_journalled_run(
    live: SequenceClient, quick: FakeSequence, tmp_path: Path
) -> None:
    """Positions stay aligned and nothing odd is sent for a duplicate key."""
    batch = [
        TriggerRequest(RULES[0], idempotency_key="same"),
        TriggerRequest(RULES[1], idempotency_key="same"),
        TriggerRequest(RULES[2]),
    ]

    outcomes = await live.trigger_all(batch, journal=tmp_path / "run.db")

    assert [True, False, True] == [o.ok for o in outcomes]
    assert isinstance(outcomes[1].error, ValueError)
    assert RULES[1] == outcomes[1].request.rule_id
    assert 2 == quick.counts["trigger_rule"]


async def test_a_failed_reconciliation_leaves_the_item_for_the_next_resume(
    live: SequenceClient, quick: FakeSequence, clock: ManualClock, tmp_path: Path
) -> None:
    """A 5xx while listing executions keeps the item unknown, never rejected."""
    path = tmp_path / "run.db"
    run_id = await run_id_of(path, clock)
    await write_entries(path, clock, entry(run_id, 0, ItemState.SENDING, clock()))
    quick.advance(25 * 3600)
    quick.set_faults("list_rule_executions", errors_next=10)

    await live.trigger_all(requests(1), journal=SqliteJournal(path, clock=clock))

    assert [ItemState.UNKNOWN] == [e.state for e in read_journal(path).needs_attention]


async def test_a_directory_is_not_a_journal(
    live: SequenceClient, tmp_path: Path
) -> None:
    """A path that cannot be a file is a JournalError."""
    with pytest.raises(JournalError):
        await live.trigger_all(requests(1), journal=tmp_path)


async def test_a_journal_of_the_other_api_is_refused(
    live: SequenceClient, quick: FakeSequence, tmp_path: Path
) -> None:
    """A run's journal records its API: a client of the other one gets JournalError."""
    path = tmp_path / "run.db"
    await live.trigger_all(requests(1), journal=path, wait=False)
    other = "platform-v1" if live.api == "api-v1" else "api-v1"
    sent = quick.counts["trigger_rule"]

    async with SequenceClient(
        quick.api_key, base_url="http://127.0.0.1:9/x", api=other
    ) as client:
        with pytest.raises(JournalError, match="records a run against"):
            await client.trigger_all(requests(1), journal=path)

    assert sent == quick.counts["trigger_rule"]


@pytest.mark.parametrize("position", [0, 7, 10, 2_000, 99_999, 10**12])
def test_derived_keys_are_the_uuid5_of_the_run_and_the_position(position: int) -> None:
    """The key formula never changes: a resumed journal's keys stay the same."""
    run_id = "5f0c7a3e-9a51-4e1d-8f7b-2d7c0b1e6a42"

    key = derive_key(run_id, position)

    assert str(uuid.uuid5(uuid.UUID(run_id), f"item:{position}")) == key


async def test_entries_read_back_as_written_whatever_they_leave_empty(
    clock: ManualClock, tmp_path: Path
) -> None:
    """Rows of every shape, in one write too large for one SQLite statement."""
    path = tmp_path / "run.db"
    run_id = await run_id_of(path, clock)
    shapes = [
        lambda n: entry(run_id, n, ItemState.SENDING, clock()),
        lambda n: entry(run_id, n, ItemState.SENDING, clock(), amount=0),
        lambda n: entry(run_id, n, ItemState.ACCEPTED, 1.5, execution_id=f"exe_{n}"),
        lambda n: entry(
            run_id, n, ItemState.FAILED, 0.0, error_type="E", error_message=""
        ),
        lambda n: entry(run_id, n, ItemState.UNKNOWN, clock(), amount=5, status="x"),
    ]
    written = [shapes[n % len(shapes)](n) for n in range(3_000)]  # 39,000 values
    first = entry(run_id, 0, ItemState.FAILED, 1.0, error_type="E")

    await write_entries(path, clock, first, *written)

    assert written == await read_entries(path, clock)


async def read_entries(path: Path, clock: ManualClock) -> list[JournalEntry]:
    """Every entry of the journal at *path*, as a resume reads them."""
    journal = SqliteJournal(path, clock=clock)
    _, entries = await journal.open(api=os.environ.get("SEQUENCE_API") or "api-v1")
    await journal.close()
    return entries


def test_an_entry_and_its_row_are_the_same_item_in_the_files_column_order() -> None:
    """A run hands its store rows; they stand for entries, column by column."""
    terminal = entry(
        "5f0c7a3e-9a51-4e1d-8f7b-2d7c0b1e6a42",
        3,
        ItemState.TERMINAL,
        1.5,
        amount=7,
        execution_id="exe_3",
        status="executed",
        result={"id": "exe_3"},
    )

    spelled = attrs.evolve(terminal, state="terminal")  # type: ignore[arg-type]
    unknown = attrs.evolve(terminal, state="paid")  # type: ignore[arg-type]

    assert COLUMNS == FIELDS
    assert terminal == as_entry(as_row(terminal)) == as_entry(as_row(spelled))
    assert "terminal" == as_row(terminal)[FIELDS.index("state")]
    assert str is type(as_row(terminal)[FIELDS.index("state")])
    with pytest.raises(ValueError, match="paid"):
        as_row(unknown)


def test_a_commit_is_one_statement_up_to_2048_rows() -> None:
    """One call into SQLite per commit (each lets the GIL go): padded, not split."""
    run_id = "5f0c7a3e-9a51-4e1d-8f7b-2d7c0b1e6a42"
    rows = [as_row(entry(run_id, n, ItemState.SENDING, 1.0)) for n in range(3)]
    accepted = as_row(entry(run_id, 2, ItemState.ACCEPTED, 2.0, execution_id="e"))

    (one,) = statements([*rows, accepted])
    many = [as_row(entry(run_id, n, ItemState.SENDING, 1.0)) for n in range(2049)]
    big = statements(many)

    sql, values = one
    assert 4 == sql.count("(?")
    assert 4 * len(COLUMNS) == len(values)
    assert values[-len(COLUMNS) :] == values[-2 * len(COLUMNS) : -len(COLUMNS)]
    assert "e" in values
    assert math.isnan(values[COLUMNS.index("amount")])
    assert [2048, 1] == [len(v) // len(COLUMNS) for _, v in big]


async def test_an_item_written_twice_in_one_write_keeps_its_last_entry(
    clock: ManualClock, tmp_path: Path
) -> None:
    """As two writes in turn would: the later entry replaces the earlier one."""
    path = tmp_path / "run.db"
    run_id = await run_id_of(path, clock)
    sending = entry(run_id, 1, ItemState.SENDING, clock())
    accepted = entry(run_id, 1, ItemState.ACCEPTED, clock(), execution_id="exe_1")
    other = entry(run_id, 2, ItemState.SENDING, clock())

    await write_entries(path, clock, sending, other, accepted)
    first = await read_entries(path, clock)
    await write_entries(path, clock, other, sending)

    assert [accepted, other] == first
    assert [sending, other] == await read_entries(path, clock)


async def test_a_value_sqlite_cannot_hold_is_a_journal_error(
    clock: ManualClock, tmp_path: Path
) -> None:
    """Text that is not UTF-8, an integer past 64 bits: typed, nothing written."""
    path = tmp_path / "run.db"
    run_id = await run_id_of(path, clock)
    bad = [
        entry(run_id, 0, ItemState.FAILED, 1.0, error_message="\ud800"),
        entry(run_id, 0, ItemState.SENDING, 1.0, amount=2**70),
    ]

    for one in bad:
        journal = SqliteJournal(path, clock=clock)
        await journal.open(api=os.environ.get("SEQUENCE_API") or "api-v1")
        with pytest.raises(JournalError, match="could not be written"):
            await journal.write([one])
        await journal.close()

    assert [] == await read_entries(path, clock)


async def test_a_cancelled_close_still_lets_the_file_go(
    clock: ManualClock, tmp_path: Path
) -> None:
    """Ctrl-C as a run closes its journal: the next run here may open the file."""
    path = tmp_path / "run.db"
    await run_id_of(path, clock)
    api = os.environ.get("SEQUENCE_API") or "api-v1"
    for turns in range(20):  # the cancel lands at another point each time
        journal = SqliteJournal(path, clock=clock)
        await journal.open(api=api)
        closing = asyncio.ensure_future(journal.close())
        for _ in range(1 + turns % 5):  # (close() has begun)
            await asyncio.sleep(0)
        closing.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await closing

        again = SqliteJournal(path, clock=clock)
        await again.open(api=api)
        await again.close()


def test_a_close_cut_short_by_the_loops_end_still_lets_the_file_go(
    clock: ManualClock, tmp_path: Path
) -> None:
    """Ctrl-C at a run's end: asyncio.run cancels the close's own task too."""
    path = tmp_path / "run.db"
    api = os.environ.get("SEQUENCE_API") or "api-v1"

    async def first() -> None:
        journal = SqliteJournal(path, clock=clock)
        await journal.open(api=api)
        asyncio.ensure_future(journal.close())  # noqa: RUF006 (the loop ends)
        await asyncio.sleep(0)  # close() began; the loop's end cancels the rest

    async def second() -> None:
        async with asyncio.timeout(10):  # a hang fails, it does not time
            again = SqliteJournal(path, clock=clock)
            await again.open(api=api)
            await again.close()

    asyncio.run(first())
    asyncio.run(second())


async def test_an_open_while_another_journal_closes_the_file_waits_for_it(
    clock: ManualClock, tmp_path: Path
) -> None:
    """In one process, a close under way is not "another process", twice over."""
    path = tmp_path / "run.db"
    api = os.environ.get("SEQUENCE_API") or "api-v1"
    first = SqliteJournal(path, clock=clock)
    for _ in range(2):  # the same object, closed a second time
        await first.open(api=api)
        closing = asyncio.ensure_future(first.close())
        await asyncio.sleep(0)  # close() began

        second = SqliteJournal(path, clock=clock)
        async with asyncio.timeout(10):  # a hang fails, it does not time
            await second.open(api=api)
        await second.close()
        await closing
