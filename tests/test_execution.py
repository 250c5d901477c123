"""
Tests of Execution handles and waiting.

Against the fake server over real HTTP where behaviour crosses the wire, with
aioresponses for exact request sequences (in each profile's paths and
shapes, through ``Mocked``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import socket
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
import pytest_asyncio
from aioresponses import aioresponses as Aioresponses  # noqa: N812

from sequence_async import (
    ClientClosedError,
    ExecutionFailedError,
    ExecutionStatus,
    NotFoundError,
    PermissionDeniedError,
    PollPolicy,
    ResponseValidationError,
    SequenceClient,
    WaitTimeoutError,
)
from sequence_async.testing import Behavior, FakeSequence

from .conftest import (
    API_KEY,
    BASE_URL,
    FAST_POLL,
    NO_WAIT_RETRIES,
    Wire,
    envelope,
    url,
)


class Mocked:
    """
    One profile's answers to a wait on rule ``r1``'s execution ``rex_1``.
    """

    def __init__(self, wire: Wire, mock: Aioresponses) -> None:
        self.wire, self.mock = wire, mock
        platform = wire.dialect.platform
        # Platform names an execution under its rule.
        self.execution = url(
            "/rules/r1/executions/rex_1" if platform else "/rule-executions/rex_1"
        )

    def trigger(self) -> None:
        """``POST /rules/r1/trigger`` answers ``rex_1``."""
        body = self.wire.dialect.envelope("req_1", {"execution_id": "rex_1"}, None)
        self.mock.post(url("/rules/r1/trigger"), payload=body)

    def execution_is(self, status: str) -> None:
        """The next GET of ``rex_1`` answers *status*."""
        data = {"id": "rex_1", "rule_id": "r1", "status": status}
        self.mock.get(
            self.execution, payload=self.wire.dialect.envelope("req_2", data, None)
        )


@pytest.fixture
def mocked(wire: Wire, mock_http: Aioresponses) -> Mocked:
    """``Mocked`` answers of *wire*'s profile (the test runs once per profile)."""
    return Mocked(wire, mock_http)


@pytest_asyncio.fixture
async def wire_client(wire: Wire) -> AsyncIterator[SequenceClient]:
    """Like ``client``, in *wire*'s profile."""
    async with SequenceClient(
        API_KEY, api=wire.api, base_url=BASE_URL, poll=FAST_POLL, retry=NO_WAIT_RETRIES
    ) as c:
        yield c


def other_tasks() -> set[asyncio.Task[object]]:
    """
    Tasks other than the test's own and the fake server's (accept, handlers).
    """
    server_side = ("RequestHandler.", "BaseSelectorEventLoop.")
    return {
        t
        for t in asyncio.all_tasks()
        if t is not asyncio.current_task()
        and not t.get_coro().__qualname__.startswith(server_side)  # type: ignore[union-attr]
    }


async def test_trigger_and_wait_returns_the_finished_execution(
    live: SequenceClient, server: FakeSequence
) -> None:
    """trigger_and_wait returns the terminal execution from the fake server."""
    server.set_behavior("rule_0001", Behavior(median=0.0, sigma=0.0))

    result = await live.trigger_and_wait("rule_0001", manual_execute_amount=1_500)

    assert (ExecutionStatus.EXECUTED, "rule_0001", 2) == (
        result.status,
        result.rule_id,
        result.transfers_completed,
    )


async def test_wait_polls_until_the_server_finishes_it(
    live: SequenceClient, server: FakeSequence
) -> None:
    """A handle waits while in_progress and returns once the server ends the run."""
    execution = await live.rules.trigger("rule_0001")
    waiting = asyncio.create_task(execution.wait(timeout=30))
    # Polls go one at a time: when the second arrives, the first was seen.
    await server.wait_for_requests("get_rule_execution", 2)
    assert (ExecutionStatus.IN_PROGRESS, False) == (execution.status, execution.done)

    server.finish(execution.id, "partial")
    result = await waiting

    assert (ExecutionStatus.PARTIAL, True) == (result.status, execution.done)
    assert result is execution.result


async def test_failed_execution_raises_with_its_result(
    live: SequenceClient, server: FakeSequence
) -> None:
    """A failed run raises ExecutionFailedError carrying the result."""
    server.set_behavior("rule_0001", Behavior(median=0.0, sigma=0.0, failure_rate=1.0))

    with pytest.raises(ExecutionFailedError) as info:
        await live.trigger_and_wait("rule_0001")

    assert ExecutionStatus.FAILED == info.value.result.status
    assert "Insufficient funds" in str(info.value)


async def test_failed_execution_returned_when_asked(
    live: SequenceClient, server: FakeSequence
) -> None:
    """raise_on_failure=False returns the failed result."""
    server.set_behavior("rule_0001", Behavior(median=0.0, sigma=0.0, failure_rate=1.0))

    result = await live.trigger_and_wait("rule_0001", raise_on_failure=False)

    assert ExecutionStatus.FAILED == result.status


async def test_timeout_carries_the_handle_and_last_status(
    live: SequenceClient, server: FakeSequence
) -> None:
    """On timeout the error holds the handle and last status; waiting again works."""
    execution = await live.rules.trigger("rule_0001")

    with pytest.raises(WaitTimeoutError) as info:
        await execution.wait(timeout=0.05)
    server.finish(execution.id)
    result = await info.value.execution.wait(timeout=30)

    assert info.value.execution is execution
    assert "in_progress" == info.value.last_status
    assert "not cancelled" in str(info.value)
    assert ExecutionStatus.EXECUTED == result.status
    assert not other_tasks()


async def test_a_timeout_says_why_the_last_look_found_nothing(
    live: SequenceClient,
) -> None:
    """A server that cannot be reached: the error says so, not only 'not seen'."""
    execution = await live.rules.trigger("rule_0001")
    with socket.socket() as closed:  # a port that nothing listens on
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    async with SequenceClient(
        "sk_test", base_url=f"http://127.0.0.1:{port}/api/v1", max_retries=0
    ) as elsewhere:
        handle = elsewhere.execution_from_token(execution.to_token())
        with pytest.raises(WaitTimeoutError) as info:
            await handle.wait(timeout=0.5)

    assert "not seen yet; the last look failed: APIConnectionError" in str(info.value)


@pytest.mark.parametrize("timeout", [0, -1])
async def test_non_positive_timeout_is_rejected(
    live: SequenceClient, timeout: float
) -> None:
    """Timeout must be positive or None."""
    execution = await live.rules.trigger("rule_0001")

    with pytest.raises(ValueError, match="timeout"):
        await execution.wait(timeout=timeout)


async def test_unknown_status_keeps_waiting_with_one_warning(
    wire_client: SequenceClient, mocked: Mocked, caplog: pytest.LogCaptureFixture
) -> None:
    """An unknown status is not terminal; it is logged once at WARNING."""
    mocked.trigger()
    for status in ("settling", "settling", "settling", "executed"):
        mocked.execution_is(status)

    result = await wire_client.trigger_and_wait("r1")

    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert ExecutionStatus.EXECUTED == result.status
    assert 1 == len(warnings)
    assert "settling" in warnings[0].getMessage().lower()


async def test_404_right_after_trigger_means_not_visible_yet(
    wire_client: SequenceClient, mocked: Mocked
) -> None:
    """404s within the grace period keep the wait going."""
    mocked.trigger()
    mocked.mock.get(mocked.execution, status=404, repeat=False)
    mocked.mock.get(mocked.execution, status=404)
    mocked.execution_is("executed")

    result = await wire_client.trigger_and_wait("r1")

    assert ExecutionStatus.EXECUTED == result.status


async def test_404_after_the_grace_period_is_raised(
    wire_client: SequenceClient, mocked: Mocked
) -> None:
    """An execution still unknown 30 s after its trigger raises NotFoundError."""
    old = (datetime.now(UTC) - timedelta(seconds=60)).isoformat()
    token = json.dumps(
        {"v": 1, "id": "rex_1", "rule_id": "r1", "triggered_at": old}
        | {"api": mocked.wire.api}
    )
    mocked.mock.get(mocked.execution, status=404, repeat=True)

    with pytest.raises(NotFoundError):
        await wire_client.execution_from_token(token).wait(timeout=10)


async def test_404_then_visible_against_the_fake_server(server: FakeSequence) -> None:
    """With the server's visibility delay the wait rides out the 404s."""
    server.set_visibility_delay(1.0)
    server.set_behavior("rule_0001", Behavior(median=0.0, sigma=0.0))
    async with SequenceClient(
        server.api_key, base_url=server.url, poll=FAST_POLL
    ) as client:
        execution = await client.rules.trigger("rule_0001")
        waiting = asyncio.create_task(execution.wait(timeout=30))
        await server.wait_for_requests("get_rule_execution", 2)
        server.advance(1.0)
        result = await waiting

    assert ExecutionStatus.EXECUTED == result.status
    assert server.statuses[404] >= 2


async def test_failed_polls_do_not_end_the_wait(
    wire_client: SequenceClient, mocked: Mocked
) -> None:
    """Polls failing past their retries are retried on the poll schedule."""
    mocked.trigger()
    for _ in range(6):
        mocked.mock.get(mocked.execution, status=503)
    mocked.execution_is("executed")

    result = await wire_client.trigger_and_wait("r1")

    assert ExecutionStatus.EXECUTED == result.status


async def test_non_retryable_poll_errors_end_the_wait(
    wire_client: SequenceClient, mocked: Mocked
) -> None:
    """A 403 while polling is raised: waiting cannot succeed."""
    mocked.trigger()
    code = mocked.wire.dialect.code("forbidden", None)
    mocked.mock.get(
        mocked.execution,
        status=403,
        payload={"error": {"code": code, "message": "m"}},
    )

    with pytest.raises(PermissionDeniedError):
        await wire_client.trigger_and_wait("r1")


async def test_cancelling_trigger_and_wait_stops_polling_and_leaks_nothing(
    live: SequenceClient, server: FakeSequence
) -> None:
    """Cancelling the task stops polls at once; no task or group is left."""
    task = asyncio.create_task(live.trigger_and_wait("rule_0001"))
    await server.wait_for_requests("get_rule_execution", 3)

    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    # No task is left that could poll again.
    assert not other_tasks()
    (execution,) = server.executions()
    assert "in_progress" == execution["status"]


async def test_resume_token_round_trip(
    live: SequenceClient, server: FakeSequence
) -> None:
    """A token taken in one client resumes the wait in another."""
    execution = await live.rules.trigger("rule_0001", idempotency_key="order-7")
    token = execution.to_token()
    server.finish(execution.id)

    async with SequenceClient(
        server.api_key, base_url=server.url, poll=FAST_POLL
    ) as other:
        resumed = other.execution_from_token(token)
        result = await resumed.wait(timeout=30)

    assert (execution.id, "rule_0001", "order-7", execution.triggered_at) == (
        resumed.id,
        resumed.rule_id,
        resumed.idempotency_key,
        resumed.triggered_at,
    )
    assert ExecutionStatus.EXECUTED == result.status
    assert len(token) < 300


@pytest.mark.parametrize(
    "token",
    [
        "not json",
        "[]",
        '{"v": 2, "id": "a", "rule_id": "b", "triggered_at": "2024-01-01T00:00:00Z"}',
        '{"v": 1, "id": "a", "rule_id": "b"}',
        '{"v": 1, "id": "", "rule_id": "b", "triggered_at": "2024-01-01T00:00:00Z"}',
        '{"v": 1, "id": "a", "rule_id": "b", "triggered_at": "yesterday"}',
    ],
)
async def test_bad_tokens_raise_value_error(client: SequenceClient, token: str) -> None:
    """Anything but a valid version-1 token is a ValueError."""
    with pytest.raises(ValueError, match="token"):
        client.execution_from_token(token)


async def test_refresh_fetches_the_latest_state(
    live: SequenceClient, server: FakeSequence
) -> None:
    """refresh() returns the latest state and updates status."""
    execution = await live.rules.trigger("rule_0001")
    server.finish(execution.id, "failed")

    result = await execution.refresh()

    assert (ExecutionStatus.FAILED, ExecutionStatus.FAILED) == (
        result.status,
        execution.status,
    )
    assert "rule_0001" in repr(execution)


async def test_wait_on_a_done_handle_returns_at_once(
    live: SequenceClient, server: FakeSequence
) -> None:
    """A handle already seen terminal answers without polling."""
    execution = await live.rules.trigger("rule_0001")
    server.finish(execution.id)
    await execution.refresh()
    polls = server.counts["get_rule_execution"]

    result = await execution.wait()

    assert ExecutionStatus.EXECUTED == result.status
    assert polls == server.counts["get_rule_execution"]


async def test_closing_the_client_ends_pending_waits(
    live: SequenceClient, server: FakeSequence
) -> None:
    """A wait pending when the client closes ends with ClientClosedError."""
    execution = await live.rules.trigger("rule_0001")
    waiting = asyncio.create_task(execution.wait(timeout=30))
    await server.wait_for_requests("get_rule_execution", 2)

    await live.aclose()

    with pytest.raises(ClientClosedError):
        await waiting


COALESCE_POLL = PollPolicy(wait_initial=0.05, multiplier=1.0, wait_max=0.05, jitter=0.0)


async def test_pending_executions_of_one_rule_share_list_polls(
    server: FakeSequence,
) -> None:
    """500 executions of 5 rules cost a few list calls per tick, not 500 polls."""
    rules = [f"rule_{n:04d}" for n in range(1, 6)]
    async with SequenceClient(
        server.api_key, base_url=server.url, poll=COALESCE_POLL
    ) as client:
        executions = [await client.rules.trigger(r) for r in rules for _ in range(100)]
        waits = [asyncio.create_task(e.wait(timeout=60)) for e in executions]
        await server.wait_for_requests("list_rule_executions", 15)
        for execution in executions:
            server.finish(execution.id)
        results = await asyncio.gather(*waits)

    polls = server.counts["list_rule_executions"] + server.counts["get_rule_execution"]
    assert [e.id for e in executions] == [r.id for r in results]
    assert {ExecutionStatus.EXECUTED} == {r.status for r in results}
    # 500 independent pollers would have sent 500 requests per tick; the
    # shared poller sends one list call per rule per tick.
    ticks = server.counts["list_rule_executions"] / len(rules)
    assert ticks >= 3
    assert polls <= len(rules) * (ticks + 2)
    assert polls < 500


async def test_more_than_a_page_of_pending_executions(server: FakeSequence) -> None:
    """With 250 pending executions of one rule, list polls page until all are seen."""
    async with SequenceClient(
        server.api_key, base_url=server.url, poll=COALESCE_POLL
    ) as client:
        executions = [await client.rules.trigger("rule_0001") for _ in range(250)]
        for execution in executions:
            server.finish(execution.id)
        results = await asyncio.gather(*(e.wait(timeout=60) for e in executions))

    assert {ExecutionStatus.EXECUTED} == {r.status for r in results}
    # A second page: by cursor on api-v1, by page number on platform-v1.
    assert any(
        r.query.get("after") or r.query.get("page") == "2"
        for r in server.requests_to("list_rule_executions")
    )


async def test_out_of_order_finishes_reach_the_right_waiters(
    server: FakeSequence,
) -> None:
    """Executions of one rule ending in random order each get their own result."""
    statuses = ["executed", "partial", "failed"]
    async with SequenceClient(
        server.api_key, base_url=server.url, poll=FAST_POLL
    ) as client:
        executions = [await client.rules.trigger("rule_0002") for _ in range(30)]
        waits = {
            e.id: asyncio.create_task(e.wait(timeout=60, raise_on_failure=False))
            for e in executions
        }
        expected = {e.id: statuses[n % 3] for n, e in enumerate(executions)}
        order = list(expected)
        random.Random(7).shuffle(order)
        for start in (0, 10, 20):
            for execution_id in order[start : start + 10]:
                server.finish(execution_id, expected[execution_id])
            if start < 20:  # a poll sees this batch alone (ten remain pending)
                seen = server.counts["list_rule_executions"]
                await server.wait_for_requests("list_rule_executions", seen + 1)
        got = {i: (await w).status for i, w in waits.items()}

    assert expected == got


async def test_cancelling_one_waiter_leaves_the_others(server: FakeSequence) -> None:
    """One cancelled waiter of a rule does not disturb the others."""
    async with SequenceClient(
        server.api_key, base_url=server.url, poll=FAST_POLL
    ) as client:
        executions = [await client.rules.trigger("rule_0003") for _ in range(5)]
        waits = [asyncio.create_task(e.wait(timeout=60)) for e in executions]
        await server.wait_for_requests("list_rule_executions", 3)
        waits[2].cancel()
        for execution in executions:
            server.finish(execution.id)
        results = await asyncio.gather(*waits, return_exceptions=True)

        assert isinstance(results[2], asyncio.CancelledError)
        assert [ExecutionStatus.EXECUTED] * 4 == [
            r.status for r in results if not isinstance(r, BaseException)
        ]
        assert not other_tasks()


async def test_execution_from_id_gives_a_handle(
    live: SequenceClient, server: FakeSequence
) -> None:
    """execution_from_id fetches an execution and returns a handle to wait on."""
    execution = await live.rules.trigger("rule_0002")

    handle = await live.execution_from_id(execution.id, rule_id="rule_0002")
    server.finish(execution.id)
    result = await handle.wait(timeout=30)

    assert ("rule_0002", ExecutionStatus.EXECUTED) == (handle.rule_id, result.status)


async def test_execution_from_id_needs_a_rule(
    client: SequenceClient, mock_http: Aioresponses
) -> None:
    """An execution without rule_id cannot be waited on: ResponseValidationError."""
    mock_http.get(
        url("/rule-executions/rex_1"),
        payload=envelope({"id": "rex_1", "status": "in_progress"}),
    )

    with pytest.raises(ResponseValidationError, match="of rule None"):
        await client.execution_from_id("rex_1")
