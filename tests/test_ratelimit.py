"""
Tests of the client-side token bucket, alone and against the fake server.
"""

from __future__ import annotations

import asyncio

import pytest

from sequence_async import SequenceClient
from sequence_async._ratelimit import Priority, TokenBucket
from sequence_async.testing import serve


async def test_burst_is_admitted_at_once() -> None:
    """Up to burst tokens are granted without waiting."""
    bucket = TokenBucket(60, burst=3)

    for _ in range(3):
        await asyncio.wait_for(bucket.acquire(), timeout=0.01)

    assert "60/min" in repr(bucket)


async def test_triggers_are_served_before_polls() -> None:
    """When tokens are short, a waiting trigger goes before an earlier poll."""
    bucket = TokenBucket(6000, burst=1)
    await bucket.acquire()
    order: list[str] = []

    async def take(name: str, priority: Priority) -> None:
        await bucket.acquire(priority)
        order.append(name)

    poll = asyncio.create_task(take("poll", Priority.POLL))
    await asyncio.sleep(0)
    trigger = asyncio.create_task(take("trigger", Priority.TRIGGER))
    await asyncio.gather(poll, trigger)

    assert ["trigger", "poll"] == order


async def test_drain_blocks_until_retry_after() -> None:
    """After drain(s), nothing is admitted before s seconds."""
    now = [100.0]
    bucket = TokenBucket(6000, burst=10, clock=lambda: now[0])
    bucket.drain(5.0)
    waiter = asyncio.create_task(bucket.acquire())
    await asyncio.sleep(0.02)

    assert not waiter.done()

    now[0] += 5.0
    bucket._wake()
    await asyncio.wait_for(waiter, timeout=1)


async def test_cancelled_waiters_give_nothing_up() -> None:
    """A cancelled acquire leaves the queue and the bucket usable."""
    bucket = TokenBucket(6000, burst=1)
    await bucket.acquire()
    waiter = asyncio.create_task(bucket.acquire())
    await asyncio.sleep(0)

    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    await asyncio.wait_for(bucket.acquire(), timeout=1)

    assert not any(bucket._queues)


def test_rate_must_be_positive() -> None:
    """A zero or negative rate is refused."""
    with pytest.raises(ValueError, match="rate_limit"):
        TokenBucket(0)


async def test_no_429_reaches_the_caller_below_the_server_limit() -> None:
    """With the client's limit under the server's, the server never answers 429."""
    # Headroom in both rate and burst: a client bucket measures when requests
    # leave, the server's when they arrive, and connection setup bunches them.
    async with (
        serve(rate_limit=6000, rate_burst=30) as server,
        SequenceClient(
            server.api_key,
            base_url=server.url,
            rate_limit=3000,
            rate_limit_burst=5,
            max_retries=0,
        ) as client,
    ):
        await asyncio.gather(*(client.rules.list() for _ in range(60)))

    assert 0 == server.statuses[429]
    assert 60 == server.statuses[200]


async def test_without_the_limiter_the_server_throttles() -> None:
    """The same load without a client limit does meet 429s (the test has teeth)."""
    async with (
        serve(rate_limit=6000, rate_burst=30) as server,
        SequenceClient(server.api_key, base_url=server.url, max_retries=0) as client,
    ):
        results = await asyncio.gather(
            *(client.rules.list() for _ in range(60)), return_exceptions=True
        )

    assert server.statuses[429] > 0
    assert any(isinstance(r, Exception) for r in results)


async def test_a_429_drains_the_client_bucket() -> None:
    """A 429 with Retry-After stops the client's limiter for that long."""
    async with serve() as server:
        server.set_faults("list_rules", throttles_next=1, retry_after=3)
        async with SequenceClient(
            server.api_key, base_url=server.url, rate_limit=600, max_retries=0
        ) as client:
            with pytest.raises(Exception, match="429"):
                await client.rules.list()
            sent = server.counts["list_rules"]

            with pytest.raises(TimeoutError):
                async with asyncio.timeout(0.2):
                    await client.rules.list()
            assert sent == server.counts["list_rules"]
