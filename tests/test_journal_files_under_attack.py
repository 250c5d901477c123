"""
Journals met in the wild (review of 2026-11-27).

A clock stepped back since a send, a resume against another server, a full
disk, a one-byte file that is not a journal, hand-edited values, an input
still being filled when aclose() comes: none pays twice, replays outcomes
that are nobody's, overwrites a file, hangs or escapes as an untyped error.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from pathlib import Path

import attrs
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
from sequence_async._journal import as_row
from sequence_async._resume import Action, Planned, derive_key, reconcile
from sequence_async.testing import FakeSequence, ManualClock

from .conftest import FakeTransport, ok, requester
from .test_cli_support import run_cli
from .test_journal import (
    RULES,
    entry,
    keys_on,
    quick,
    requests,
    run_id_of,
    write_entries,
)


__all__ = ["quick"]  # the fixture, shared with test_journal


async def test_a_send_time_ahead_of_the_clock_is_reconciled_never_resent(
    live: SequenceClient, quick: FakeSequence, clock: ManualClock, tmp_path: Path
) -> None:
    """The clock stepped back since the send: its age says nothing; no resend."""
    path = tmp_path / "run.db"
    run_id = await run_id_of(path, clock)
    ahead = clock() + 48 * 3600  # sent while the clock ran two days fast
    await live.rules.trigger(RULES[0], idempotency_key=derive_key(run_id, 0))
    await write_entries(path, clock, entry(run_id, 0, ItemState.UNKNOWN, ahead))
    sent = quick.counts["trigger_rule"]

    (outcome,) = await live.trigger_all(
        requests(1), journal=SqliteJournal(path, clock=clock)
    )

    assert sent == quick.counts["trigger_rule"]
    assert isinstance(outcome.error, NeedsReviewError)  # no time to look around


async def test_a_journal_of_another_server_is_refused_before_sending(
    live: SequenceClient, quick: FakeSequence, tmp_path: Path
) -> None:
    """A sandbox rehearsal resumed against production replayed 'executed'."""
    path = tmp_path / "run.db"
    await live.trigger_all(requests(2), journal=path)
    elsewhere = SequenceClient(
        quick.api_key, api=quick.api, base_url=f"{quick.url}/other"
    )

    async with elsewhere:
        with pytest.raises(JournalError, match="records a run against"):
            await elsewhere.trigger_all(requests(2), journal=path)


def test_a_full_disk_is_a_journal_error_not_a_raw_sqlite_one(tmp_path: Path) -> None:
    """Writes past the file size limit (a full disk) raise JournalError."""
    script = textwrap.dedent(
        f"""
        import asyncio, resource, signal
        from sequence_async import ItemState, JournalEntry, JournalError, SqliteJournal

        async def main():
            journal = SqliteJournal({str(tmp_path / "run.db")!r})
            await journal.open()
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, 64 * 1024))
            try:
                for batch in range(200):
                    await journal.write([
                        JournalEntry(position=n, identity=f"position:{{n}}",
                            rule_id="r" * 500, amount=None, idempotency_key="k",
                            state=ItemState.SENDING, updated_at=1.0)
                        for n in range(batch * 50, batch * 50 + 50)
                    ])
            except JournalError as exc:
                print("JournalError", exc)
            finally:
                await journal.close()

        asyncio.run(main())
        """
    )

    done = subprocess.run(  # noqa: S603
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert done.stdout.startswith("JournalError"), done.stdout + done.stderr[-2000:]
    assert "could not be written" in done.stdout


@pytest.mark.parametrize("content", [b"x", b"\n"])
async def test_a_one_byte_file_is_refused_and_left_as_it_is(
    tmp_path: Path, content: bytes
) -> None:
    """SQLite reads one byte as an empty database: only an empty file is new."""
    path = tmp_path / "notes.txt"
    path.write_bytes(content)

    with pytest.raises(JournalError, match="not a sequence-async journal"):
        await SqliteJournal(path).open()

    assert content == path.read_bytes()


@pytest.mark.parametrize(
    "edit",
    [
        "UPDATE items SET sent_at = '2026-01-01 10:00'",
        "UPDATE items SET result = '" + "[" * 5000 + "]" * 5000 + "'",
        "UPDATE meta SET value = 'nan' WHERE name = 'created_at'",
        """UPDATE items SET result = '{"id": 1}'""",
        "UPDATE items SET result = NULL",
        "UPDATE items SET execution_id = NULL",
        "UPDATE items SET state = 'accepted', execution_id = ''",
        "UPDATE items SET state = 'bogus'",
        "UPDATE items SET result = '{not json'",
        "DELETE FROM meta WHERE name = 'run_id'",
        "UPDATE meta SET value = 'not-a-uuid' WHERE name = 'run_id'",
        "UPDATE items SET state = 'accepted', execution_id = '..'",
        "UPDATE items SET execution_id = 'rex/../../accounts'",
        "UPDATE items SET sent_at = 1e300",
        "UPDATE items SET sent_at = 253402300799.0",
        "UPDATE items SET updated_at = 'abc'",
        "UPDATE items SET error_message = x'00ff'",
        "UPDATE items SET rule_id = x'72756c65'",
        "UPDATE items SET amount = 1.5",
        "UPDATE items SET idempotency_key = ''",
        "UPDATE items SET position = -1",
    ],
    ids=[
        "text send time",
        "deep result",
        "NaN creation",
        "result not an execution",
        "terminal without result",
        "terminal without execution id",
        "accepted with empty execution id",
        "unknown state",
        "result not JSON",
        "no run id",
        "run id not a uuid",
        "execution id that leaves its path segment",
        "execution id with a slash",
        "send time past any date",
        "send time in the last second of year 9999",
        "text update time",
        "blob error message",
        "blob rule id",
        "fractional amount",
        "empty key",
        "negative position",
    ],
)
async def test_a_hand_edited_journal_is_a_journal_error_everywhere(
    live: SequenceClient, quick: FakeSequence, tmp_path: Path, edit: str
) -> None:
    """A person's edit a run never writes: JournalError, and journal show exits 2.

    Each edit is made to a journal a real run finished, so that the edit alone
    is what makes it damaged.
    """
    path = tmp_path / "run.db"
    (done,) = await live.trigger_all(requests(1), journal=path)
    assert {"terminal": 1} == read_journal(path).counts, done
    with sqlite3.connect(path) as db:
        db.execute(edit)
    db.close()

    with pytest.raises(JournalError, match="damaged"):
        await live.trigger_all(requests(1), journal=path)
    with pytest.raises(JournalError, match="damaged"):
        read_journal(path)
    shown = run_cli("journal", "show", str(path), "--json", env=dict(os.environ))

    assert 2 == shown.returncode
    assert "Traceback" not in shown.stderr


async def test_aclose_from_another_task_stops_a_journalled_run_still_reading(
    live: SequenceClient, quick: FakeSequence, tmp_path: Path
) -> None:
    """An input still being filled (a queue): aclose() used to hang for ever."""
    third = asyncio.Event()
    never = asyncio.Event()

    async def filling() -> AsyncIterator[str]:
        for rule_id in RULES:
            yield rule_id
        third.set()
        await never.wait()  # more to come, some day
        yield RULES[0]

    run = live.trigger_many(filling(), journal=tmp_path / "run.db")

    async def consume() -> list[object]:
        return [outcome async for outcome in run]

    consumer = asyncio.create_task(consume())
    await third.wait()
    async with asyncio.timeout(30):  # a safety net: the bug was a hang
        await run.aclose()

    assert [] == await consumer
    assert 0 == quick.counts["trigger_rule"]


@pytest.mark.parametrize(
    ("listed", "found"), [("rex_1", "rex_1"), ("..", None), ("", None)]
)
async def test_an_old_send_matching_an_id_that_is_not_one_is_left_for_a_person(
    listed: str, found: str | None
) -> None:
    """An execution listed with id '..' cannot be waited on: not matched, reviewed."""
    sent_at = datetime(2026, 11, 1, tzinfo=UTC).timestamp()
    execution = {
        "id": listed,
        "rule_id": "rule_0001",
        "status": "executed",
        "trigger_type": "manual",
        "created_at": "2026-11-01T00:00:10Z",
    }
    planned = Planned(
        index=0,
        request=TriggerRequest("rule_0001"),
        key="k-0",
        identity="position:0",
        action=Action.RECONCILE,
        entry=entry(str(uuid.uuid4()), 0, ItemState.SENDING, sent_at),
    )

    got = await reconcile(planned, requester(FakeTransport(ok([execution]))), set())

    assert found == got


@pytest.mark.parametrize("how", ["moved", "deleted"])
async def test_a_journal_moved_or_deleted_mid_run_ends_it_with_a_journal_error(
    live: SequenceClient, quick: FakeSequence, tmp_path: Path, how: str
) -> None:
    """Its records would be where no resume looks: the run stops, loudly."""
    path, aside = tmp_path / "run.db", tmp_path / "aside.db"

    async def take_all() -> None:
        async with live.trigger_many(requests(400), journal=path, concurrency=4) as run:
            taken = 0
            async for _ in run:
                taken += 1
                if taken == 20:
                    if how == "moved":
                        path.rename(aside)
                    else:
                        path.unlink()

    with pytest.raises(JournalError, match="moved or deleted while this run"):
        await take_all()
    sent = quick.counts["trigger_rule"]
    if how == "moved":  # put back, the resume sends each item once in all
        aside.rename(path)
        outcomes = await live.trigger_all(requests(400), journal=path)

    assert sent < 400
    if how == "moved":
        assert all(o.ok for o in outcomes)
        assert {1} == set(keys_on(quick).values())
        assert 400 == len(keys_on(quick))


def test_a_journal_that_cannot_be_looked_at_is_a_journal_error(
    tmp_path: Path,
) -> None:
    """A name past the system's limit: JournalError (journal show exits 2)."""
    path = tmp_path / ("x" * 300 + ".db")

    with pytest.raises(JournalError, match="cannot be read"):
        read_journal(path)
    done = run_cli("journal", "show", str(path))

    assert 2 == done.returncode
    assert "Traceback" not in done.stderr


async def test_a_write_under_way_when_close_is_called_is_committed(
    tmp_path: Path,
) -> None:
    """close() finishes it: never a false 'moved or deleted' (300 races)."""
    path, failed, run_id = tmp_path / "run.db", 0, str(uuid.UUID(int=1))
    for position in range(300):
        journal = SqliteJournal(path)
        await journal.open()
        row = as_row(entry(run_id, position, ItemState.SENDING, 1.7e9))
        writing = journal.submit_rows([row])  # on the writer thread at once
        await journal.close()
        try:
            await writing
        except JournalError:
            failed += 1

    assert 0 == failed
    assert 300 == sum(read_journal(path).counts.values())


async def test_a_custom_journals_send_time_in_year_one_ends_no_wait(
    live: SequenceClient, quick: FakeSequence
) -> None:
    """Only the SQLite file checks its times: a handle near year 1 still polls."""
    first = await live.rules.trigger(RULES[0])
    second = await live.rules.trigger(RULES[0])
    year_one = -62_135_596_800.0 + 30  # 0001-01-01T00:00:30Z

    class YearOne:
        clock = staticmethod(time.time)

        async def open(self, **_: str) -> tuple[str, list[JournalEntry]]:
            return str(uuid.UUID(int=1)), [
                attrs.evolve(
                    entry(str(uuid.UUID(int=1)), n, ItemState.ACCEPTED, year_one),
                    rule_id=RULES[0],
                    execution_id=execution.id,
                )
                for n, execution in enumerate((first, second))
            ]

        async def write(self, entries: Sequence[JournalEntry]) -> None:
            pass

        async def close(self) -> None:
            pass

    outcomes = await live.trigger_all([TriggerRequest(RULES[0])] * 2, journal=YearOne())

    assert [True, True] == [o.ok for o in outcomes]
