"""
A hostile server on the wire (review of 2026-11-27, sixth round).

A trigger answered as the budget ran out ended in a bare ``ValueError`` (read
as "nothing was sent"); a slow trigger ran past ``trigger_and_wait``'s budget;
a server's request id made the handle's own token unreadable; pages larger
than asked for, or cursors of a megabyte, grew memory without end.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Any

import pytest
from aiohttp import web

from sequence_async import SequenceClient
from sequence_async._execution import Execution
from sequence_async._resources import wait_triggered
from sequence_async._rules import RuleExecutions
from sequence_async.errors import (
    APITimeoutError,
    OutcomeUnknownError,
    ResponseValidationError,
    WaitTimeoutError,
)
from sequence_async.testing import Behavior, FakeSequence

from .conftest import API_KEY, FakeTransport, answer, envelope, hostile, requester


async def test_a_trigger_that_spent_the_budget_is_a_wait_timeout() -> None:
    """timeout=0 reached wait(): a bare ValueError, as if nothing had been sent."""
    transport = FakeTransport(answer(500, {}))
    execution = Execution(
        id="rex_1",
        rule_id="rule_1",
        request_id=None,
        idempotency_key="key-1",
        triggered_at=datetime.now(UTC),
        requester=requester(transport),
    )
    with pytest.raises(WaitTimeoutError) as raised:
        await wait_triggered(execution, 2.0, deadline=time.monotonic() - 0.001)

    assert raised.value.execution is execution
    assert "after 2s" in str(raised.value)
    assert [] == transport.sent  # the budget is spent: no last look either


async def test_a_trigger_attempt_is_cut_to_what_is_left_of_the_budget() -> None:
    """A trigger answered after 7.5 s held trigger_and_wait(timeout=2) for all of it."""
    keys: list[str] = []
    stalled = asyncio.Event()

    async def trigger(request: web.Request) -> web.Response:
        keys.append(request.headers["Idempotency-Key"])
        await stalled.wait()  # never set: the client must give up first
        raise AssertionError

    async with (
        hostile({("POST", "/rules/rule_1/trigger"): trigger}) as base_url,
        SequenceClient(API_KEY, base_url=base_url, timeout=30, max_retries=0) as client,
    ):
        started = time.monotonic()
        with pytest.raises(OutcomeUnknownError) as raised:
            await client.trigger_and_wait("rule_1", timeout=0.5)
        spent = time.monotonic() - started

    assert keys == [raised.value.idempotency_key]
    assert spent < 10  # the budget's 0.5 s, not the attempt's 30


def _page(count: int, cursor: str) -> Any:
    item = {"id": "rex_1", "rule_id": "rule_1", "status": "executed"}
    return answer(
        200,
        envelope(
            [item] * count,
            page_info={"end_cursor": cursor, "has_next_page": True},
        ),
    )


async def test_a_page_larger_than_asked_for_is_refused() -> None:
    """8,000 items in a page of 100, page after page: 346 MB and counting."""
    listing = RuleExecutions(requester(FakeTransport(_page(101, "c1")))).list(
        rule_id="rule_1"
    )
    with pytest.raises(ResponseValidationError, match="101 items in a page of"):
        [item async for item in listing]


async def test_a_cursor_longer_than_any_cursor_is_refused() -> None:
    """Each 1 MB cursor was kept whole (and sent back): memory without end."""
    transport = FakeTransport(_page(1, "c" * 3000))
    pages = RuleExecutions(requester(transport)).list(rule_id="rule_1").pages()
    with pytest.raises(ResponseValidationError, match="a cursor of 3000 characters"):
        [page async for page in pages]

    assert 1 == len(transport.sent)


async def test_a_queue_in_the_rate_limiter_never_sends_a_trigger_past_its_budget(
    server: FakeSequence,
) -> None:
    """12 calls of 1 s at 60/min: the 12th ran 12 s, and 9 sent late as "unknown"."""
    async with SequenceClient(
        server.api_key,
        api=server.api,
        base_url=server.url,
        rate_limit=6,  # a slot every 10 s, after the burst's one
        rate_limit_burst=1,
    ) as client:
        await client.rules.trigger("rule_0001")  # the burst's token
        ended = await asyncio.gather(
            *(client.trigger_and_wait("rule_0001", timeout=0.5) for _ in range(2)),
            return_exceptions=True,
        )
    unsent = [e for e in ended if isinstance(e, APITimeoutError)]

    assert 1 == server.counts["trigger_rule"]  # the first; no more came
    assert 2 == len(unsent)
    assert all(e.sent is False for e in unsent)
    assert all("before it was sent" in str(e) for e in unsent)


async def test_a_wait_timeout_of_trigger_and_wait_names_the_callers_timeout(
    server: FakeSequence, live: SequenceClient
) -> None:
    """It named what the trigger had left of the budget (0.00128098s)."""
    server.set_behavior("rule_0004", Behavior(median=86_400.0, sigma=0.0))
    with pytest.raises(WaitTimeoutError) as raised:  # (2 s: a slow trigger's too)
        await live.trigger_and_wait("rule_0004", timeout=2.0)

    assert 2.0 == raised.value.timeout
    assert "after 2s" in str(raised.value)


@pytest.mark.parametrize(
    ("ids", "server_id", "kept"),
    [
        ("rex_1", "", False),
        ("rex_1", "r" * 300, False),
        ("rex_1", "bad\x00id", False),
        ("😀" * 255, "😀" * 255, True),
    ],
    ids=["empty request id", "300 chars", "control in request id", "emoji ids"],
)
async def test_every_token_a_handle_makes_resumes(
    ids: str, server_id: str, kept: bool
) -> None:
    """A server's request id (or 255 emoji, escaped) spoiled the handle's own token."""

    async def trigger(request: web.Request) -> web.Response:
        data = {"execution_id": ids, "status": "in_progress"}
        return web.json_response({"request_id": server_id, "data": data}, status=202)

    async with (
        hostile({("POST", "/rules/rule_1/trigger"): trigger}) as base_url,
        SequenceClient(API_KEY, base_url=base_url) as client,
    ):
        execution = await client.rules.trigger("rule_1")
        again = client.execution_from_token(execution.to_token())

    assert (execution.id, execution.idempotency_key) == (
        again.id,
        again.idempotency_key,
    )
    assert (server_id if kept else None) == again.request_id  # (unprintable: out)
