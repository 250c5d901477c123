"""
Tests of the client-side token bucket, alone and against the fake server.

Time is a ``ManualClock`` given to the bucket: a test moves it and sees what
is admitted. The bucket's timer still runs on the event loop, so a test that
needs a queued waiter woken either lets a new ``acquire`` re-arm the timer at
the clock's new time (it fires at once when a token is due) or waits for the
short real delay the timer was armed with; ``asyncio.timeout`` only bounds a
failure. ``started`` runs a call up to its first wait, so no test sleeps to
let a task reach the queue.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

import pytest

from sequence_async import RetryPolicy, SequenceClient, errors
from sequence_async._ratelimit import Priority, TokenBucket
from sequence_async._requester import Shared
from sequence_async._resources import Accounts
from sequence_async.testing import ManualClock, serve

from .conftest import FakeTransport, Wire, answer


T = TypeVar("T")


async def started(call: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
    """
    Run *call* as a task; return once it has run up to its first wait (or end).
    """
    running = asyncio.Event()

    async def run() -> T:
        running.set()
        return await call

    task = asyncio.create_task(run())
    await running.wait()  # wakes only after the task's first step has run
    return task


async def test_burst_is_admitted_at_once() -> None:
    """Up to burst tokens are granted without waiting; the next one waits."""
    clock = ManualClock(0.0)
    bucket = TokenBucket(60, burst=3, clock=clock)

    burst = [await started(bucket.acquire()) for _ in range(3)]
    fourth = await started(bucket.acquire())

    assert [True, True, True, False] == [t.done() for t in [*burst, fourth]]
    assert "<TokenBucket 60/min, 1 waiting>" == repr(bucket)
    fourth.cancel()
    with pytest.raises(asyncio.CancelledError):
        await fourth


async def test_triggers_are_served_before_polls() -> None:
    """When tokens are short, a waiting trigger goes before an earlier poll."""
    clock = ManualClock(0.0)
    bucket = TokenBucket(6000, burst=1, clock=clock)  # a token per 10 ms
    bucket.drain(0.05)  # nothing is admitted for 50 ms: both calls below queue
    order: list[str] = []

    async def take(name: str, priority: Priority) -> None:
        await bucket.acquire(priority)
        order.append(name)

    poll = await started(take("poll", Priority.POLL))
    trigger = await started(take("trigger", Priority.TRIGGER))
    assert "2 waiting" in repr(bucket)
    clock.advance(1.0)  # the drain is over; one token (the burst) is due
    async with asyncio.timeout(5):
        await trigger

    assert (["trigger"], False) == (order, poll.done())

    clock.advance(1.0)  # the next token
    async with asyncio.timeout(5):
        await poll
    assert ["trigger", "poll"] == order


async def test_drain_blocks_until_retry_after() -> None:
    """After drain(s), nothing is admitted before s seconds, and all are at s."""
    clock = ManualClock(100.0)
    bucket = TokenBucket(6000, burst=10, clock=clock)
    bucket.drain(5.0)
    waiter = await started(bucket.acquire())

    clock.advance(4.5)
    early = await started(bucket.acquire())  # re-arms the timer at 104.5

    assert (False, False) == (waiter.done(), early.done())

    clock.advance(0.5)
    due = await started(bucket.acquire())  # at 105 the timer fires at once
    async with asyncio.timeout(5):
        await asyncio.gather(waiter, early, due)


async def test_a_fresh_call_waits_out_a_drain_then_goes_at_once() -> None:
    """With nothing queued, a call in the drain waits; one at its end does not."""
    clock = ManualClock(100.0)
    bucket = TokenBucket(6000, burst=10, clock=clock)
    bucket.drain(5.0)

    clock.advance(4.5)
    early = await started(bucket.acquire())
    assert not early.done()
    early.cancel()
    with pytest.raises(asyncio.CancelledError):
        await early

    clock.advance(0.5)
    on_time = await started(bucket.acquire())
    assert on_time.done()


async def test_cancelled_waiters_give_nothing_up() -> None:
    """A cancelled acquire leaves the queue and the bucket usable."""
    clock = ManualClock(0.0)
    bucket = TokenBucket(6000, burst=1, clock=clock)
    await bucket.acquire()
    waiter = await started(bucket.acquire())
    assert "1 waiting" in repr(bucket)

    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter

    assert "0 waiting" in repr(bucket)
    clock.advance(1.0)
    after = await started(bucket.acquire())
    assert after.done()  # admitted at once: nothing was left queued ahead of it


def test_rate_must_be_positive() -> None:
    """A zero or negative rate is refused."""
    with pytest.raises(ValueError, match="rate_limit"):
        TokenBucket(0)


async def test_no_429_reaches_the_caller_below_the_server_limit(api: str) -> None:
    """With the client's limit under the server's, the server never answers 429."""
    # Headroom in both rate and burst: a client bucket measures when requests
    # leave, the server's when they arrive, and connection setup bunches them.
    async with (
        serve(rate_limit=6000, rate_burst=30, api=api) as server,
        SequenceClient(
            server.api_key,
            api=api,
            base_url=server.url,
            rate_limit=3000,
            rate_limit_burst=5,
            max_retries=0,
        ) as client,
    ):
        await asyncio.gather(*(client.rules.list() for _ in range(60)))

    assert 0 == server.statuses[429]
    assert 60 == server.statuses[200]


async def test_without_the_limiter_the_server_throttles(api: str) -> None:
    """The same load without a client limit does meet 429s (the test has teeth)."""
    async with (
        serve(rate_limit=6000, rate_burst=30, api=api) as server,
        SequenceClient(
            server.api_key, api=api, base_url=server.url, max_retries=0
        ) as client,
    ):
        results = await asyncio.gather(
            *(client.rules.list() for _ in range(60)), return_exceptions=True
        )

    assert server.statuses[429] > 0
    assert any(isinstance(r, Exception) for r in results)


async def test_a_429_drains_the_client_bucket(wire: Wire) -> None:
    """A 429 with Retry-After stops the client's limiter for that long."""
    clock = ManualClock(0.0)
    transport = FakeTransport(
        answer(
            429,
            {
                "error": {
                    "code": wire.dialect.code("rate_limit_exceeded", None),
                    "message": "Too many.",
                }
            },
            headers={"Retry-After": "3"},
        ),
        wire.listing([]),
    )
    plain = wire.requester(transport, retry=RetryPolicy(max_retries=0))
    accounts = Accounts(
        plain.evolve(shared=Shared(transport, limiter=TokenBucket(600, clock=clock)))
    )
    with pytest.raises(errors.RateLimitError):
        await accounts.list()

    blocked = await started(accounts.list())
    clock.advance(2.5)
    still = await started(accounts.list())

    assert (False, False, 1) == (blocked.done(), still.done(), len(transport.sent))

    clock.advance(0.5)
    due = await started(accounts.list())
    async with asyncio.timeout(5):
        results = await asyncio.gather(blocked, still, due)
    assert [[], [], []] == list(results)
    assert 4 == len(transport.sent)
