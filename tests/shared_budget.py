"""
What a shared (Redis) rate budget hands out, recorded instead of slept.

The budget answers each reservation with a wait measured from the store's
clock at that moment. On a loaded machine the reservations of one test come
at different moments, so the waits alone tell little; the slots they end at,
on the client's clock, keep their spacing however late each call ran.
"""

from __future__ import annotations

import time
from itertools import pairwise

from sequence_async import SequenceClient
from sequence_async._cluster import ClusterLimiter


def limiter_of(client: SequenceClient) -> ClusterLimiter:
    """
    Return the client's shared-budget limiter.
    """
    limiter = client._requester.shared.limiter
    assert isinstance(limiter, ClusterLimiter)
    return limiter


def sleeps(client: SequenceClient, *, slots: bool = False) -> list[float]:
    """
    Record the client's budget waits (with *slots*, the monotonic times they end).
    """
    asked: list[float] = []

    async def record(seconds: float) -> None:
        asked.append(time.monotonic() + seconds if slots else seconds)

    limiter_of(client)._sleep = record  # type: ignore[method-assign]
    return asked


def spacing(slots: list[float]) -> list[int]:
    """
    The whole seconds between consecutive slots, in time order.
    """
    ends = sorted(slots)
    return [round(later - earlier) for earlier, later in pairwise(ends)]
