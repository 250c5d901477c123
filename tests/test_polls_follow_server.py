"""
Tests of polls that follow the server's hints, on both API profiles.

``next_attempt_at`` holds polls back, settling runs are polled on the slow
cadence, ``until="transfers_created"`` returns once only settlement is left,
and a poll answer's ``Retry-After`` delays the rule's next poll. Time on the
server moves only through its manual clock; the client's waits are bounded
by their own deadlines, never by sleeps.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime

import attrs
import pytest

from sequence_async import (
    ExecutionStatus,
    SequenceClient,
    TransferStatus,
    WaitTimeoutError,
)
from sequence_async._execution import Execution
from sequence_async._wire import Response
from sequence_async.testing import Behavior, FakeSequence

from .conftest import FAST_POLL, FakeTransport, requester


SLOW_SETTLEMENT = attrs.evolve(FAST_POLL, settlement_interval=3600.0)


async def test_no_poll_comes_before_next_attempt_at(
    server: FakeSequence, live: SequenceClient
) -> None:
    """A run whose next attempt is an hour away is not polled again meanwhile."""
    server.set_behavior("*", Behavior(median=1000.0, sigma=0.0))
    execution = await live.rules.trigger("rule_0001")
    server.retry_later(execution.id, 3600.0)

    with pytest.raises(WaitTimeoutError):
        await execution.wait(0.3)

    # The first poll saw next_attempt_at; the only other is the last look.
    assert 2 == server.counts["get_rule_execution"]
    assert execution.result is not None
    assert execution.result.next_attempt_at is not None


async def test_the_job_runs_at_next_attempt_at_on_the_manual_clock(
    server: FakeSequence, live: SequenceClient
) -> None:
    """At next_attempt_at the fake runs the job; a later wait sees the end."""
    server.set_behavior("*", Behavior(median=1000.0, sigma=0.0))
    execution = await live.rules.trigger("rule_0001")
    server.retry_later(execution.id, 60.0)

    server.advance(60.0)
    result = await execution.wait(5)

    assert (ExecutionStatus.EXECUTED, None) == (result.status, result.next_attempt_at)


async def test_settling_runs_are_polled_on_the_slow_cadence(
    server: FakeSequence, live: SequenceClient
) -> None:
    """in_progress with pending transfers and no next attempt: the slow cadence."""
    server.set_behavior("*", Behavior(median=0.0, sigma=0.0))
    server.set_settlement(7200.0)
    execution = await live.rules.trigger("rule_0001")

    with pytest.raises(WaitTimeoutError):
        await execution.wait(0.3, poll=SLOW_SETTLEMENT)
    polls = server.counts["get_rule_execution"]
    server.advance(7200.0)
    result = await execution.wait(5, poll=SLOW_SETTLEMENT)

    assert 2 == polls  # one poll saw the settlement; then the last look
    assert (ExecutionStatus.EXECUTED, 0) == (result.status, result.transfers_pending)


async def test_until_transfers_created_returns_once_only_settlement_is_left(
    server: FakeSequence, live: SequenceClient
) -> None:
    """trigger_and_wait(until="transfers_created") returns the settling run."""
    server.set_behavior("*", Behavior(median=0.0, sigma=0.0))
    server.set_settlement(3 * 86_400.0)

    result = await live.trigger_and_wait(
        "rule_0001", manual_execute_amount=2_000, until="transfers_created"
    )
    transfers = [await live.transfers.get(t) for t in result.transfer_ids]

    assert (ExecutionStatus.IN_PROGRESS, True) == (result.status, result.settling)
    assert len(result.transfer_ids) == result.transfers_pending
    assert {TransferStatus.PENDING} == {t.status for t in transfers}


async def test_trigger_many_can_stop_at_transfers_created(
    server: FakeSequence, live: SequenceClient
) -> None:
    """trigger_all(until="transfers_created") ends every item at settlement."""
    server.set_behavior("*", Behavior(median=0.0, sigma=0.0))
    server.set_settlement(86_400.0)

    outcomes = await live.trigger_all(
        ["rule_0001", "rule_0001", "rule_0003"], until="transfers_created"
    )

    assert [True] * 3 == [o.ok for o in outcomes]
    assert [True] * 3 == [o.result is not None and o.result.settling for o in outcomes]


async def test_a_bad_until_is_refused_before_the_trigger(
    server: FakeSequence, live: SequenceClient
) -> None:
    """Until must be "settled" or "transfers_created"; nothing is sent otherwise."""
    with pytest.raises(ValueError, match="until must be one of"):
        await live.trigger_and_wait("rule_0001", until="accepted")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="until must be one of"):
        live.trigger_many(["rule_0001"], until="done")  # type: ignore[arg-type]

    assert 0 == server.counts["trigger_rule"]


@pytest.mark.parametrize(
    ("code", "body"),
    [
        (200, {"request_id": "q", "data": {"id": "e-1", "status": "in_progress"}}),
        (429, {"error": {"code": "rate_limit_exceeded", "message": "slow down"}}),
    ],
)
async def test_a_retry_after_on_a_poll_holds_the_rule_s_next_poll(
    code: int, body: dict[str, object]
) -> None:
    """Retry-After on a poll's answer (200 or 429): nothing more until it passes."""
    answer = Response(code, {"Retry-After": "30"}, json.dumps(body).encode())
    transport = FakeTransport(answer)
    execution = Execution(
        id="e-1",
        rule_id="r1",
        request_id=None,
        idempotency_key=None,
        triggered_at=datetime.now(UTC),
        requester=requester(transport),
    )

    with pytest.raises(WaitTimeoutError):
        await execution.wait(0.3)

    # One poll (with no retry past the deadline), then the last look.
    assert 2 == len(transport.sent)


@pytest.mark.apis("platform-v1")
async def test_platform_coalesced_polls_list_by_page_number_every_mode(
    server: FakeSequence, live: SequenceClient
) -> None:
    """On Platform, waits on one rule share GET /rules/{id}/executions?page=1."""
    server.set_behavior("*", Behavior(median=0.0, sigma=0.0))
    handles = [await live.rules.trigger("rule_0001") for _ in range(3)]

    results = await asyncio.gather(*(h.wait(5) for h in handles))

    queries = [r.query for r in server.requests_to("list_rule_executions")]
    paths = {r.path for r in server.requests_to("list_rule_executions")}
    assert [ExecutionStatus.EXECUTED] * 3 == [r.status for r in results]
    assert {"/platform/v1/rules/rule_0001/executions"} == paths
    assert queries
    assert {("1", "100", "ALL")} == {
        (q["page"], q["pageSize"], q["executionMode"]) for q in queries
    }
