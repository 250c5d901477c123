"""
The Redis coordinator on a real Redis Cluster (three primaries, started here).

Every key of one API key carries the same ``{hash tag}``, so each script's
keys land in one slot and the coordinator works through redis-py's
``RedisCluster`` as through ``Redis``: one budget, one 429 pause, one poller
per rule with its stored outcomes. Several coordinators stand for several
processes, as in ``test_redis``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator

import pytest
import pytest_asyncio
import redis
import redis.asyncio

from sequence_async import SequenceClient
from sequence_async._cluster import ClusterLimiter
from sequence_async._coordinator import key_digest, scoped
from sequence_async._wire import MAX_SERVER_DELAY
from sequence_async.errors import RateLimitError
from sequence_async.redis import RedisCoordinator
from sequence_async.testing import Behavior, FakeSequence, demo_seed, serve

from . import redis_cluster
from .conftest import FAST_POLL
from .shared_budget import sleeps, spacing


SLOW_MACHINE = 5.0  # seconds a Redis call may take on a loaded machine


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[int]]:
    """
    The ports of a three-node cluster, for this module; killed at its end.
    """
    with redis_cluster.running(tmp_path_factory.mktemp("cluster")) as ports:
        yield ports


@pytest.fixture(autouse=True)
def _emptied(cluster: list[int]) -> None:
    # Every test starts on an empty cluster: the fake server's key is the
    # same in every test, so one test's budget or pause must not reach the next.
    for port in cluster:
        with redis.Redis(port=port) as node:
            node.flushall()


@pytest_asyncio.fixture
async def quick(api: str) -> AsyncIterator[FakeSequence]:
    """
    The fake server speaking *api* on the wall clock, executions ending in 50 ms.
    """
    seed = demo_seed(rules=1, failure_rate=0.0)
    seed.behaviors["rule_0001"] = Behavior(median=0.05, sigma=0.0)
    async with serve(seed, api=api) as server:
        yield server


def _on(cluster: list[int], **options: float) -> RedisCoordinator:
    return RedisCoordinator.from_url(
        f"redis://127.0.0.1:{cluster[0]}", cluster=True, timeout=SLOW_MACHINE, **options
    )


async def test_clients_on_a_cluster_share_one_budget(
    quick: FakeSequence, cluster: list[int]
) -> None:
    """At 60/min, six requests from two coordinators get six distinct 1 s slots."""
    own = redis.asyncio.RedisCluster(
        host="127.0.0.1", port=cluster[1], decode_responses=True
    )
    clients = [
        SequenceClient(
            quick.api_key,
            api=quick.api,
            base_url=quick.url,
            rate_limit=60,
            rate_limit_burst=1,
            coordinator=coordinator,
        )
        for coordinator in (_on(cluster), RedisCoordinator(own, timeout=SLOW_MACHINE))
    ]
    slots = [sleeps(c, slots=True) for c in clients]
    start = time.monotonic()
    await asyncio.gather(*(c.accounts.list() for c in clients for _ in range(3)))
    for client in clients:
        await client.aclose()
    await own.aclose()

    assert [1, 1, 1, 1] == spacing([s for a in slots for s in a])
    assert min(s for a in slots for s in a) - start > 0.5
    assert 6 == quick.counts["list_accounts"]


async def test_a_429_on_a_cluster_pauses_every_client_no_longer_than_the_cap(
    quick: FakeSequence, cluster: list[int]
) -> None:
    """A huge Retry-After on one client's 429 pauses the other, capped."""
    quick.set_faults(throttles_next=1, retry_after=10 * MAX_SERVER_DELAY)
    first, second = (
        SequenceClient(
            quick.api_key,
            api=quick.api,
            base_url=quick.url,
            rate_limit=600,
            max_retries=0,
            coordinator=_on(cluster),
        )
        for _ in range(2)
    )
    limiter = first._requester.shared.limiter
    assert isinstance(limiter, ClusterLimiter)
    with pytest.raises(RateLimitError):
        await first.accounts.list()
    await asyncio.gather(*limiter._link._tasks)  # type: ignore[attr-defined]
    asked = sleeps(second)
    await second.accounts.list()
    await first.aclose()
    await second.aclose()

    assert 1 == len(asked)
    assert MAX_SERVER_DELAY - 1 < asked[0] <= MAX_SERVER_DELAY


async def test_waits_on_a_cluster_share_outcomes_and_keys_stay_in_one_slot(
    quick: FakeSequence, cluster: list[int]
) -> None:
    """A follower reads the leader's stored outcome; all keys are on one node."""
    async with SequenceClient(
        quick.api_key,
        api=quick.api,
        base_url=quick.url,
        poll=FAST_POLL,
        coordinator=_on(cluster),
    ) as leader:
        execution = await leader.rules.trigger("rule_0001")
        expected = await execution.wait(timeout=10)
    before = sum(quick.counts.values())
    async with SequenceClient(
        quick.api_key,
        api=quick.api,
        base_url=quick.url,
        poll=FAST_POLL,
        coordinator=_on(cluster),
    ) as follower:
        actual = await follower.execution_from_token(execution.to_token()).wait(
            timeout=10
        )
    digest = key_digest(quick.api_key)
    tag = "{" + scoped(digest, api=quick.api, base_url=str(quick.url)) + "}"
    holders = {}
    for port in cluster:
        with redis.Redis(port=port, decode_responses=True) as node:
            holders[port] = sorted(node.scan_iter(match=f"*{tag}*"))

    assert expected == actual
    assert before == sum(quick.counts.values())
    assert 1 == sum(1 for keys in holders.values() if keys), holders
    assert any(":outcome:" in k for keys in holders.values() for k in keys)


def test_a_cluster_coordinator_says_where_it_is(cluster: list[int]) -> None:
    """``from_url(..., cluster=True)`` makes a RedisCluster client, and says so."""
    coordinator = _on(cluster)

    assert isinstance(coordinator._client, redis.asyncio.RedisCluster)
    assert f"cluster 127.0.0.1:{cluster[0]}" in repr(coordinator)
