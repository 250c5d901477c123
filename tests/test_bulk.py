"""
Tests of bulk triggering against the fake server over real HTTP.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from sequence_async import (
    BulkProgress,
    ExecutionFailedError,
    ExecutionStatus,
    NotFoundError,
    NotStartedError,
    PermissionDeniedError,
    SequenceClient,
    TriggerRequest,
    WaitTimeoutError,
)
from sequence_async.testing import Behavior, FakeSequence, Permission

from .test_execution import other_tasks


@pytest.fixture
def quick(server: FakeSequence) -> FakeSequence:
    """
    The fake server with every demo rule finishing at once.
    """
    server.set_behavior("*", Behavior(median=0.0, sigma=0.0))
    return server


async def test_mixed_outcomes_are_reported_per_item(
    live: SequenceClient, quick: FakeSequence
) -> None:
    """Success, failed run, forbidden and not found each end as their own outcome."""
    quick.set_behavior("rule_0002", Behavior(median=0.0, sigma=0.0, failure_rate=1.0))
    quick.state.keys[quick.api_key] = (
        Permission(
            scope="TRIGGER_RULES", resources=("rule_0001", "rule_0002", "rule_nope")
        ),
        Permission(scope="READ_RULE_EXECUTIONS"),
    )

    outcomes = await live.trigger_all(
        ["rule_0001", TriggerRequest("rule_0002"), "rule_0003", "rule_nope"],
        concurrency=2,
    )

    assert [0, 1, 2, 3] == [o.index for o in outcomes]
    assert [True, False, False, False] == [o.ok for o in outcomes]
    assert ExecutionStatus.EXECUTED == outcomes[0].result.status  # type: ignore[union-attr]
    assert isinstance(outcomes[1].error, ExecutionFailedError)
    assert ExecutionStatus.FAILED == outcomes[1].result.status  # type: ignore[union-attr]
    assert isinstance(outcomes[2].error, PermissionDeniedError)
    assert isinstance(outcomes[3].error, NotFoundError)
    assert (None, None) == (outcomes[2].execution, outcomes[2].result)


async def test_a_huge_concurrency_makes_no_more_workers_than_items(
    live: SequenceClient, quick: FakeSequence
) -> None:
    """concurrency=1,000,000 over 3 items starts at most 4 tasks, not a million."""
    most = 0

    async with live.trigger_many(
        ["rule_0001"] * 3, concurrency=1_000_000, wait=False
    ) as run:
        async for outcome in run:
            assert outcome.ok, outcome.error
            most = max(most, len(other_tasks()))

    assert 1 <= most <= 5  # 3 workers (a 4th finds the input done) and the end
    assert not other_tasks()


async def test_on_progress_raising_a_base_exception_ends_the_run_not_hangs(
    live: SequenceClient, quick: FakeSequence
) -> None:
    """A CancelledError from on_progress reaches the caller; no hang, no task left."""

    def progress(p: BulkProgress) -> None:
        if p.succeeded:
            raise asyncio.CancelledError

    seen: list[int] = []

    async def consume() -> None:
        async with asyncio.timeout(30):  # a safety net: the bug was a hang
            async with live.trigger_many(
                ["rule_0001"] * 3, concurrency=1, wait=False, on_progress=progress
            ) as run:
                async for outcome in run:
                    seen.append(outcome.index)  # noqa: PERF401 (kept as they come)

    with pytest.raises(asyncio.CancelledError):
        await consume()

    assert 0 in seen  # the item whose count raised still came out
    assert not other_tasks()


async def test_outcomes_not_taken_yet_stay_in_flight_until_taken(
    live: SequenceClient, quick: FakeSequence
) -> None:
    """Breaking out early hands back every sent item not taken, with its key."""
    ended = asyncio.Event()

    def progress(p: BulkProgress) -> None:
        if p.finished >= 10:
            ended.set()

    async with live.trigger_many(
        ["rule_0001"] * 50, concurrency=16, wait=False, on_progress=progress
    ) as run:
        first = await anext(run)
        await ended.wait()  # outcomes have ended that nobody took yet
        left = run.in_flight()

    taken_and_left = {first.idempotency_key} | {i.idempotency_key for i in left}
    assert first.index not in {i.index for i in left}
    assert len(quick.state.idempotency_keys) > 1  # more went out than was taken
    assert set(quick.state.idempotency_keys) <= taken_and_left


async def test_input_is_consumed_lazily(
    live: SequenceClient, quick: FakeSequence
) -> None:
    """A generator of 100,000 requests is pulled only as far as work starts."""
    pulled = 0

    def requests() -> Iterator[str]:
        nonlocal pulled
        for _ in range(100_000):
            pulled += 1
            yield "rule_0001"

    seen = 0
    async with live.trigger_many(requests(), concurrency=4, wait=False) as run:
        async for _ in run:
            seen += 1
            if seen == 10:
                break

    assert 10 == seen
    assert pulled <= 10 + 2 * 4
    assert not other_tasks()


async def test_concurrency_bound_is_respected(
    live: SequenceClient, quick: FakeSequence
) -> None:
    """No more than `concurrency` triggers are ever at the server at once."""
    quick.set_faults("trigger_rule", latency=0.01)

    outcomes = await live.trigger_all(["rule_0001"] * 40, concurrency=5, wait=False)

    assert all(o.ok for o in outcomes)
    assert 5 == quick.max_in_flight


async def test_async_iterables_and_progress(
    live: SequenceClient, quick: FakeSequence
) -> None:
    """An async iterable works; on_progress sees the final counts."""

    async def requests() -> AsyncIterator[TriggerRequest]:
        for n in range(6):
            yield TriggerRequest("rule_0001", manual_execute_amount=100 * (n + 1))

    progress: list[BulkProgress] = []
    outcomes = await live.trigger_all(
        requests(), concurrency=3, on_progress=progress.append
    )

    last = progress[-1]
    assert all(o.ok for o in outcomes)
    assert (6, 0, 0, 6, 0, 0, 6) == (
        last.started,
        last.triggering,
        last.waiting,
        last.succeeded,
        last.failed,
        last.not_started,
        last.finished,
    )


async def test_max_failures_stops_starting_new_items(
    live: SequenceClient, quick: FakeSequence
) -> None:
    """After max_failures failures, the rest are not started and never sent."""
    outcomes = await live.trigger_all(["rule_nope"] * 10, concurrency=1, max_failures=3)

    errors = [type(o.error) for o in outcomes]
    assert [NotFoundError] * 3 + [NotStartedError] * 7 == errors
    assert 3 == quick.counts["trigger_rule"]


async def test_duplicate_idempotency_keys_are_rejected_before_sending(
    live: SequenceClient, quick: FakeSequence
) -> None:
    """A key used twice in one batch fails its second item locally."""
    outcomes = await live.trigger_all(
        [
            TriggerRequest("rule_0001", idempotency_key="k1"),
            TriggerRequest("rule_0002", idempotency_key="k1"),
        ],
        wait=False,
    )

    assert [True, False] == [o.ok for o in outcomes]
    assert isinstance(outcomes[1].error, ValueError)
    assert 1 == quick.counts["trigger_rule"]


async def test_bad_items_are_outcomes(
    live: SequenceClient, quick: FakeSequence
) -> None:
    """An item that is neither a rule id nor a TriggerRequest is a TypeError outcome."""
    items: list[Any] = [
        "rule_0001",
        42,
        TriggerRequest("rule_0001", manual_execute_amount=-1),
    ]
    outcomes = await live.trigger_all(items, wait=False)

    assert [True, False, False] == [o.ok for o in outcomes]
    assert isinstance(outcomes[1].error, TypeError)
    assert isinstance(outcomes[2].error, ValueError)


async def test_wait_false_returns_handles(
    live: SequenceClient, quick: FakeSequence
) -> None:
    """wait=False yields outcomes with a handle and no result."""
    (outcome,) = await live.trigger_all(["rule_0001"], wait=False)

    assert outcome.execution is not None
    assert outcome.result is None
    assert outcome.execution.id in [e["id"] for e in quick.executions()]


async def test_cancelling_the_consumer_cancels_in_flight_work(
    live: SequenceClient, server: FakeSequence
) -> None:
    """Cancelling the consumer stops triggers and waits; nothing leaks."""

    async def consume() -> None:
        async with live.trigger_many(["rule_0001"] * 50, concurrency=4) as run:
            async for _ in run:
                pass

    task = asyncio.create_task(consume())
    await server.wait_for_requests("trigger_rule", 8)

    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    # No task is left that could trigger or poll again.
    assert not other_tasks()


async def test_aclose_from_another_task_ends_the_loop_and_hands_back_the_work(
    live: SequenceClient, server: FakeSequence
) -> None:
    """aclose() while another task waits inside the loop ends that loop, not raises."""
    run = live.trigger_many(["rule_0001"] * 8, concurrency=4)
    taken: list[object] = []

    async def consume() -> None:
        # Waits inside the run: the executions never end.
        taken.extend([outcome async for outcome in run])

    task = asyncio.create_task(consume())
    await server.wait_for_requests("trigger_rule", 8)

    await run.aclose()
    await task  # ended, without an error

    assert [] == taken
    sent = set(server.state.idempotency_keys)
    assert 8 == len(sent)
    assert sent == {item.idempotency_key for item in run.in_flight()}
    assert not other_tasks()


async def test_aclose_before_iterating_sends_nothing(
    live: SequenceClient, server: FakeSequence
) -> None:
    """A run closed before its first outcome was asked for never starts."""
    run = live.trigger_many(["rule_0001"] * 3)

    await run.aclose()

    assert [] == [outcome async for outcome in run]
    assert 0 == server.counts.get("trigger_rule", 0)


async def test_timeouts_are_outcomes(
    live: SequenceClient, server: FakeSequence
) -> None:
    """A wait that times out is that item's outcome; the execution goes on."""
    (outcome,) = await live.trigger_all(["rule_0001"], timeout=0.05)

    assert isinstance(outcome.error, WaitTimeoutError)
    assert outcome.execution is not None


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"concurrency": 0}, "concurrency"), ({"max_failures": 0}, "max_failures")],
)
async def test_bad_options_raise_at_the_call(
    live: SequenceClient, server: FakeSequence, kwargs: dict[str, Any], match: str
) -> None:
    """Concurrency and max_failures below 1 raise at once, before anything is sent."""
    with pytest.raises(ValueError, match=match):
        live.trigger_many(["rule_0001"], **kwargs)

    assert 0 == server.counts["trigger_rule"]


async def test_failing_input_iterator_is_raised(
    live: SequenceClient, quick: FakeSequence
) -> None:
    """An exception from the caller's iterator comes out of the loop."""

    def requests() -> Iterator[str]:
        yield "rule_0001"
        raise RuntimeError("input broke")

    with pytest.raises(RuntimeError, match="input broke"):
        await live.trigger_all(requests(), wait=False)
    assert not other_tasks()


async def test_progress_moves_an_item_from_triggering_to_waiting(
    live: SequenceClient, server: FakeSequence
) -> None:
    """on_progress sees a triggered item as waiting while its wait runs."""
    progress: list[BulkProgress] = []
    execution_done = asyncio.Event()

    def seen(p: BulkProgress) -> None:
        progress.append(p)
        if p.waiting == 1:
            execution_done.set()

    async def finish_when_waiting() -> None:
        await execution_done.wait()
        (execution,) = server.executions()
        server.finish(execution["id"])

    finisher = asyncio.create_task(finish_when_waiting())
    await live.trigger_all(["rule_0001"], on_progress=seen)
    await finisher

    assert [(1, 0), (0, 1), (0, 0)] == [(p.triggering, p.waiting) for p in progress]
