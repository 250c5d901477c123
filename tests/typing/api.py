"""
The public API as the README shows it, checked by mypy --strict, never run.

``nox -s typing`` type-checks this file: a misspelt keyword or a missing
export fails the session. Keep it in step with the README.
"""

from __future__ import annotations

import aiohttp

from sequence_async import (
    BulkProgress,
    Execution,
    InFlightItem,
    OutcomeUnknownError,
    Paginator,
    PollPolicy,
    RetryPolicy,
    RuleExecution,
    SequenceClient,
    Transfer,
    TriggerOutcome,
    TriggerRequest,
    WaitTimeoutError,
)
from sequence_async.testing import Behavior, FakeSequence, serve


async def quickstart() -> None:
    async with SequenceClient() as client:
        result: RuleExecution = await client.trigger_and_wait(
            "rule_01HXYZ1234",
            manual_execute_amount=150_000,
            idempotency_key="payout-42",
            request_id="req-1",
            timeout=600,
            raise_on_failure=False,
            poll=PollPolicy(wait_initial=0.5),
        )
        print(result.status, result.transfer_ids)


async def handles(client: SequenceClient) -> None:
    execution: Execution = await client.rules.trigger(
        "rule_1", idempotency_key="k", request_id="r"
    )
    token: str = execution.to_token()
    again: Execution = client.execution_from_token(token)
    fetched: Execution = await client.execution_from_id(again.id, request_id="r2")
    try:
        await fetched.wait(30, raise_on_failure=True, request_id="r3")
    except WaitTimeoutError as error:
        await error.execution.wait(None)
    await execution.refresh(request_id="r4")


async def bulk(client: SequenceClient) -> None:
    def progress(p: BulkProgress) -> None:
        print(p.triggering, p.waiting, p.finished)

    requests: list[TriggerRequest | str] = [
        TriggerRequest("rule_1", manual_execute_amount=100, idempotency_key="a"),
        "rule_2",
    ]
    async with client.trigger_many(
        requests,
        concurrency=8,
        wait=True,
        timeout=120,
        max_failures=3,
        on_progress=progress,
    ) as run:
        async for outcome in run:
            key: str | None = outcome.idempotency_key
            if isinstance(outcome.error, OutcomeUnknownError):
                print(outcome.error.idempotency_key, key)
        pending: list[InFlightItem] = run.in_flight()
        print(pending)
    ordered: list[TriggerOutcome] = await client.trigger_all(
        requests, concurrency=4, wait=False, timeout=None
    )
    print(ordered)


async def settings(session: aiohttp.ClientSession) -> None:
    client = SequenceClient(
        "sk_test",
        base_url="https://api.getsequence.io/api/v1",
        timeout=10.0,
        retry=RetryPolicy(max_retries=5, wait_initial=0.2, wait_max=4.0),
        rate_limit=100,
        rate_limit_burst=5,
        session=session,
        default_headers={"X-Team": "payouts"},
        poll=PollPolicy(wait_initial=1.0, multiplier=1.5, wait_max=15.0),
        max_response_bytes=1_000_000,
    )
    view = client.with_options(timeout=2.0, max_retries=0, retry=None, poll=None)
    listing: Paginator[Transfer] = view.transfers.list(
        account_id="acc_1", page_size=50, start_after="cursor-1"
    )
    async for page in listing.pages():
        print(page.page_info.end_cursor)
    await client.aclose()


async def testing() -> None:
    async with serve() as server:
        checked: FakeSequence = server
        checked.set_behavior("*", Behavior(median=0.0, sigma=0.0))
        checked.set_faults("trigger_rule", throttles_next=1, retry_after=1)


async def platform() -> None:
    async with SequenceClient(api="platform-v1", called_reason="nightly payouts") as c:
        result: RuleExecution = await c.trigger_and_wait(
            "551ff9b6-…",
            manual_execute_amount=250_000,
            simulation=True,
            until="transfers_created",
            called_reason="this one",
        )
        print(result.settling, result.next_attempt_at, result.execution_mode)
        await c.rule_executions.get("4306b3e8-…", rule_id="551ff9b6-…")
        async for x in c.external_transactions.list(account_ids=["a", "b"]):
            print(x.amount_in_cents)
        async for entry in c.audit_logs.list(action="TRIGGER_RULE"):
            print(entry.outcome)
        view = c.with_options(
            called_reason="audit", poll=PollPolicy(settlement_interval=900)
        )
        await view.trigger_all(["r"], until="transfers_created")
    async with serve(api="platform-v1", settlement=3600) as server:
        server.set_settlement(7200)
        server.retry_later("rex_1", 60)
