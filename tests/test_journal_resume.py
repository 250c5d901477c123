"""
Resuming journalled runs where attacks broke them.

The 23-hour rule at send time, reconciliation (one execution per item, of
the item's amount), max_failures on resume, items refused before they are
recorded, the states errors leave, and journals that are not ours to take.
"""

from __future__ import annotations

import asyncio
import math
import sqlite3
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from sequence_async import (
    AuthenticationError,
    ItemState,
    JournalError,
    NeedsReviewError,
    SequenceClient,
    SqliteJournal,
    TriggerRequest,
    read_journal,
)
from sequence_async._resume import derive_key
from sequence_async.testing import Behavior, FakeSequence, ManualClock

from .conftest import FAST_POLL, NO_WAIT_RETRIES
from .test_journal import RULES, entry, keys_on, run_id_of, write_entries


@pytest.fixture
def quick(server: FakeSequence) -> FakeSequence:
    """The fake server with every execution ending at once."""
    server.set_behavior("*", Behavior(median=0.0, sigma=0.0))
    return server


async def test_an_item_that_ages_past_23_hours_during_a_long_resume_is_not_resent(
    live: SequenceClient, quick: FakeSequence, clock: ManualClock, tmp_path: Path
) -> None:
    """The 23-hour rule holds when the item is sent, not only when planned."""
    path = tmp_path / "run.db"
    run_id = await run_id_of(path, clock)
    first = clock()
    for n in range(8):  # run 1: each executed, its answer lost
        await live.rules.trigger(RULES[0], idempotency_key=derive_key(run_id, n))
    await write_entries(
        path,
        clock,
        *(
            entry(run_id, n, ItemState.UNKNOWN, first, rule_id=RULES[0])
            for n in range(8)
        ),
    )
    quick.advance(22.5 * 3600)

    def slow(progress: Any) -> None:  # 15 minutes per item: a long resume
        if progress.triggering == 0:
            quick.advance(900)

    await live.trigger_all(
        [RULES[0]] * 8,
        journal=SqliteJournal(path, clock=clock),
        concurrency=1,
        wait=False,
        on_progress=slow,
    )

    assert {1} == set(keys_on(quick).values())  # nobody paid twice
    assert clock() - first > 24 * 3600  # (the last items were past 24 h)


async def test_two_old_items_never_claim_one_execution(
    live: SequenceClient, quick: FakeSequence, clock: ManualClock, tmp_path: Path
) -> None:
    """Reconciliations listing at once: the one execution goes to one item."""
    path = tmp_path / "run.db"
    run_id = await run_id_of(path, clock)
    sent_at = clock()
    others = []
    for n in range(2, 130):  # the listing takes two pages
        made = await live.rules.trigger(RULES[0], idempotency_key=derive_key(run_id, n))
        others.append(
            entry(
                run_id,
                n,
                ItemState.ACCEPTED,
                sent_at,
                rule_id=RULES[0],
                execution_id=made.id,
            )
        )
    real = await live.rules.trigger(RULES[0], idempotency_key=derive_key(run_id, 0))
    sending = [
        entry(run_id, n, ItemState.SENDING, sent_at, rule_id=RULES[0]) for n in (0, 1)
    ]
    await write_entries(path, clock, *others, *sending)
    quick.advance(25 * 3600)

    outcomes = await live.trigger_all(
        [RULES[0]] * 130, journal=SqliteJournal(path, clock=clock), wait=False
    )

    found = [o.execution.id for o in outcomes[:2] if o.execution is not None]
    assert [real.id] == found
    assert 1 == sum(isinstance(o.error, NeedsReviewError) for o in outcomes[:2])


@pytest.mark.parametrize("sent", [False, True])
async def test_reconciliation_keeps_only_executions_of_the_items_amount(
    live: SequenceClient,
    quick: FakeSequence,
    clock: ManualClock,
    tmp_path: Path,
    sent: bool,
) -> None:
    """Someone else's run of the rule for another amount is never the item's."""
    path = tmp_path / "run.db"
    run_id = await run_id_of(path, clock)
    mine = entry(run_id, 0, ItemState.SENDING, clock(), rule_id=RULES[0], amount=999)
    await write_entries(path, clock, mine)
    await live.rules.trigger(RULES[0], manual_execute_amount=500)  # not ours
    made = None
    if sent:
        key = derive_key(run_id, 0)
        made = await live.rules.trigger(
            RULES[0], manual_execute_amount=999, idempotency_key=key
        )
    quick.advance(25 * 3600)

    outcomes = await live.trigger_all(
        [TriggerRequest(RULES[0], manual_execute_amount=999)],
        journal=SqliteJournal(path, clock=clock),
    )

    found = outcomes[0].execution
    assert (made.id if made else None) == (found.id if found else None)
    assert sent != isinstance(outcomes[0].error, NeedsReviewError)


async def test_max_failures_on_resume_still_waits_on_items_already_triggered(
    live: SequenceClient, quick: FakeSequence, tmp_path: Path
) -> None:
    """Items triggered before are waited on, never reported not started."""
    path = tmp_path / "run.db"
    items: list[TriggerRequest | str] = [
        TriggerRequest(RULES[0], manual_execute_amount=-1),
        *[RULES[0]] * 5,
    ]
    await live.trigger_all(items, journal=path, wait=False)
    triggered = quick.counts["trigger_rule"]

    outcomes = await live.trigger_all(
        items, journal=path, max_failures=1, concurrency=1
    )

    assert isinstance(outcomes[0].error, ValueError)  # refused again
    assert all(o.ok and o.result is not None for o in outcomes[1:])
    assert triggered == quick.counts["trigger_rule"]


async def test_a_resume_gets_past_the_failures_an_earlier_run_stopped_at(
    live: SequenceClient, quick: FakeSequence, tmp_path: Path
) -> None:
    """Known failures do not count toward max_failures: every resume goes further."""
    path = tmp_path / "run.db"
    items = [RULES[0], "rule_nope", RULES[1], "rule_nope2", RULES[2], RULES[0]]
    first = await live.trigger_all(items, journal=path, max_failures=2, concurrency=1)

    again = await live.trigger_all(items, journal=path, max_failures=2, concurrency=1)

    assert [True, False, True, False, False, False] == [o.ok for o in first]
    assert [True, False, True, False, True, True] == [o.ok for o in again]


async def test_items_refused_before_sending_never_stop_a_journalled_run(
    live: SequenceClient, quick: FakeSequence, tmp_path: Path
) -> None:
    """Never recorded, a refused item would be new to every resume: it never counts."""
    path = tmp_path / "run.db"
    refused = TriggerRequest(RULES[0], manual_execute_amount=-1)
    items: list[TriggerRequest | str] = [refused] * 3 + [RULES[1]] * 5
    sent = quick.counts["trigger_rule"]

    outcomes = await live.trigger_all(items, journal=path, max_failures=3, wait=False)

    assert 3 * [ValueError] + 5 * [type(None)] == [type(o.error) for o in outcomes]
    assert sent + 5 == quick.counts["trigger_rule"]


async def test_max_failures_leaves_an_item_an_earlier_run_may_have_sent_unknown(
    live: SequenceClient, quick: FakeSequence, clock: ManualClock, tmp_path: Path
) -> None:
    """Not sent again after the stop, it is not called not-started: its key is given."""
    path = tmp_path / "run.db"
    run_id = await run_id_of(path, clock)
    await write_entries(
        path, clock, entry(run_id, 1, ItemState.UNKNOWN, clock(), rule_id=RULES[0])
    )

    outcomes = await live.trigger_all(
        ["rule_nope", RULES[0]],
        journal=SqliteJournal(path, clock=clock),
        max_failures=1,
        concurrency=1,
    )

    assert "OutcomeUnknownError" == type(outcomes[1].error).__name__
    assert derive_key(run_id, 1) == outcomes[1].idempotency_key
    assert 1 == quick.counts["trigger_rule"]  # the 404 only


@pytest.mark.parametrize(
    "bad",
    [
        TriggerRequest(RULES[0], manual_execute_amount=math.nan),  # type: ignore[arg-type]
        TriggerRequest(RULES[0], manual_execute_amount="100"),  # type: ignore[arg-type]
        TriggerRequest(RULES[0], manual_execute_amount=True),
        TriggerRequest(RULES[0], manual_execute_amount=2**70),
        TriggerRequest(RULES[0], manual_execute_amount=-1),
        TriggerRequest(RULES[0], manual_execute_amount=Decimal(5)),  # type: ignore[arg-type]
        TriggerRequest(123),  # type: ignore[arg-type]
        TriggerRequest(None),  # type: ignore[arg-type]
        TriggerRequest(".."),
        TriggerRequest(RULES[0], request_id="bad\nid"),
    ],
)
async def test_an_item_its_trigger_would_refuse_is_refused_before_it_is_recorded(
    live: SequenceClient, quick: FakeSequence, tmp_path: Path, bad: TriggerRequest
) -> None:
    """Its own TypeError/ValueError, each run; its neighbours unharmed."""
    path = tmp_path / "run.db"
    batch: list[TriggerRequest | str] = [RULES[0], bad, RULES[1], RULES[2]]

    runs = [
        await live.trigger_all(batch, journal=path, concurrency=4) for _ in range(2)
    ]

    for outcomes in runs:
        assert [True, False, True, True] == [o.ok for o in outcomes]
        assert isinstance(outcomes[1].error, TypeError | ValueError)
    assert {"terminal": 3} == read_journal(path).counts
    assert 3 == quick.counts["trigger_rule"]


async def test_a_failed_item_sent_again_gets_a_new_send_time(
    live: SequenceClient, quick: FakeSequence, clock: ManualClock, tmp_path: Path
) -> None:
    """`failed` was never carried out: its old sent_at must not age the resend."""
    path = tmp_path / "run.db"
    run_id = await run_id_of(path, clock)
    await write_entries(
        path, clock, entry(run_id, 0, ItemState.FAILED, clock(), rule_id=RULES[0])
    )
    quick.advance(30 * 3600)
    quick.set_faults("trigger_rule", drops_next=10)  # it runs; the answer is lost
    await live.trigger_all([RULES[0]], journal=SqliteJournal(path, clock=clock))
    quick.set_faults("trigger_rule")
    quick.advance(3600)

    outcomes = await live.trigger_all(
        [RULES[0]], journal=SqliteJournal(path, clock=clock)
    )

    assert outcomes[0].ok
    assert {derive_key(run_id, 0): 1} == keys_on(quick)


async def test_a_wait_until_transfers_exist_is_not_recorded_as_settled(
    live: SequenceClient, quick: FakeSequence, tmp_path: Path
) -> None:
    """A later resume waits for the settlement instead of replaying `in_progress`."""
    path = tmp_path / "run.db"
    quick.set_settlement(3600)
    first = await live.trigger_all([RULES[0]], journal=path, until="transfers_created")
    assert first[0].result is not None
    assert not first[0].result.done
    assert {"accepted": 1} == read_journal(path).counts
    quick.advance(3601)

    again = await live.trigger_all([RULES[0]], journal=path)

    assert again[0].result is not None
    assert again[0].result.done
    assert {"terminal": 1} == read_journal(path).counts


async def test_a_run_refused_for_its_key_completes_once_the_key_is_mended(
    quick: FakeSequence, tmp_path: Path
) -> None:
    """A 401 proves nothing ran: `failed`, sent again by the next run."""
    path = tmp_path / "run.db"
    settings: dict[str, Any] = {
        "api": quick.api,
        "base_url": quick.url,
        "poll": FAST_POLL,
        "retry": NO_WAIT_RETRIES,
    }
    async with SequenceClient("sk_wrong_key", **settings) as wrong:
        refused = await wrong.trigger_all([RULES[0], RULES[1]], journal=path)
    async with SequenceClient(quick.api_key, **settings) as mended:
        done = await mended.trigger_all([RULES[0], RULES[1]], journal=path)

    assert all(isinstance(o.error, AuthenticationError) for o in refused)
    assert all(o.ok for o in done)
    assert {"terminal": 2} == read_journal(path).counts


async def test_one_journal_object_in_two_runs_at_once_leaves_the_first_alone(
    live: SequenceClient, quick: FakeSequence, tmp_path: Path
) -> None:
    """The second run is refused; the first goes on to the end, recorded."""
    journal = SqliteJournal(tmp_path / "run.db")
    gate = quick.pause("trigger_rule")
    first = asyncio.ensure_future(live.trigger_all(RULES, journal=journal))
    await gate.reached(1)

    with pytest.raises(JournalError, match="open already"):
        await live.trigger_all(RULES, journal=journal)
    gate.release()

    assert all(o.ok for o in await first)
    assert {"terminal": 3} == read_journal(journal.path).counts


@pytest.mark.parametrize("journal", [123, b"run.db", True, object()])
def test_a_journal_neither_path_nor_journal_is_a_type_error_at_the_call(
    journal: Any,
) -> None:
    """Raised by trigger_many itself, not later as an AttributeError."""
    client = SequenceClient("sk_test", base_url="http://127.0.0.1:9/api/v1")

    with pytest.raises(TypeError, match="journal must be a path"):
        client.trigger_many(RULES, journal=journal)


def test_an_empty_database_of_another_program_is_not_taken(tmp_path: Path) -> None:
    """No tables, but marked by someone else: refused and left as it was."""
    path = tmp_path / "theirs.db"
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA user_version = 42")
    before = path.read_bytes()

    with pytest.raises(JournalError, match="not a sequence-async journal"):
        asyncio.run(SqliteJournal(path).open())

    assert before == path.read_bytes()


def test_a_device_is_not_a_journal(tmp_path: Path) -> None:
    """/dev/null is refused as not a regular file, before SQLite opens it."""
    beside = [Path(f"/dev/null{end}") for end in ("-journal", "-wal", "-shm")]
    before = [path.exists() for path in beside]

    with pytest.raises(JournalError, match="not a regular file"):
        asyncio.run(SqliteJournal("/dev/null").open())

    assert before == [path.exists() for path in beside]  # nothing made beside it
