"""
One worker process of benchmark 5 (``cluster.py``): trigger and wait, report.

Usage: ``python cluster_worker.py --url URL --key KEY --rules 10 --count 100
--rate 600 --burst 10 [--redis URL]``. Without ``--redis`` the client is
independent (its own in-process limiter and poller). It builds its client,
prints ``{"ready": true}``, starts when a line comes on stdin, and prints one
JSON line: the outcomes by kind, the time it finished (``time.time()``), and
for a coordinated client the limiter's overhead per request.

*Limiter overhead* is the time ``acquire`` takes beyond the wait the limiter
was told to sleep (the reservation script's answer, or a 429 pause): the
Redis round trip of the reservation (queueing for a connection included)
plus the event loop's lateness in waking at the slot. It is split into those
two parts: ``reserve_ms`` (from asking for a slot to being told it: the
script's round trip, and for a request that came while another reservation
was in flight, that one's end too, since they gather into the next call) and
``late_ms`` (sleep taken beyond the sleep asked for). ``lag_ms`` is the same lateness for a plain ``asyncio.sleep(0.02)``
looping beside the run: what the machine and the event loop cost any
timer, limiter or not.
"""

# ruff: noqa: SLF001 (the benchmark times the limiter from inside)

from __future__ import annotations

import argparse
import asyncio
import contextvars
import json
import sys
import time
from collections import Counter
from typing import Any

from sequence_async import SequenceClient
from sequence_async._cluster import ClusterLimiter


# Seconds the current acquire was told to sleep (one list per acquire).
_ASKED: contextvars.ContextVar[list[float]] = contextvars.ContextVar("asked")


def instrument(limiter: ClusterLimiter) -> dict[str, list[float]]:
    """
    Measure every ``acquire`` of *limiter*; return the lists it fills (ms).
    """
    seen: dict[str, list[float]] = {"overhead_ms": [], "reserve_ms": [], "late_ms": []}
    acquire, sleep, reserve = limiter.acquire, limiter._sleep, limiter._reserve

    async def timed_acquire(*args: Any, **kwargs: Any) -> None:
        asked: list[float] = []
        _ASKED.set(asked)
        started = time.perf_counter()
        await acquire(*args, **kwargs)
        spent = time.perf_counter() - started
        seen["overhead_ms"].append((spent - sum(asked)) * 1000)

    async def timed_sleep(seconds: float) -> None:
        started = time.perf_counter()
        await sleep(seconds)
        seen["late_ms"].append((time.perf_counter() - started - seconds) * 1000)
        _ASKED.get([]).append(seconds)

    async def timed_reserve(tolerance: int) -> int:
        started = time.perf_counter()
        try:
            return await reserve(tolerance)
        finally:
            seen["reserve_ms"].append((time.perf_counter() - started) * 1000)

    limiter.acquire = timed_acquire  # type: ignore[method-assign]
    limiter._sleep = timed_sleep  # type: ignore[method-assign]
    limiter._reserve = timed_reserve  # type: ignore[method-assign]
    return seen


async def probe_lag(lags: list[float]) -> None:
    """
    Sleep 20 ms again and again; record how late each wake-up is (ms).
    """
    while True:
        started = time.perf_counter()
        await asyncio.sleep(0.02)
        lags.append((time.perf_counter() - started - 0.02) * 1000)


async def main(args: argparse.Namespace) -> None:
    """Trigger and wait; report."""
    coordinator = None
    if args.redis:
        from sequence_async.redis import RedisCoordinator

        coordinator = RedisCoordinator.from_url(args.redis, timeout=5.0)
    rules = [f"rule_{(i % args.rules) + 1:04d}" for i in range(args.count)]
    async with SequenceClient(
        args.key,
        base_url=args.url,
        rate_limit=args.rate,
        rate_limit_burst=args.burst,
        coordinator=coordinator or False,
    ) as client:
        limiter = client._requester.shared.limiter
        seen = {}
        if isinstance(limiter, ClusterLimiter):
            # Connected before the start, as a worker that has been up a while.
            await limiter._link.check()
            seen = instrument(limiter)
        print(json.dumps({"ready": True}), flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        lags: list[float] = []
        probe = asyncio.create_task(probe_lag(lags))
        outcomes = await client.trigger_all(
            rules, concurrency=args.concurrency, timeout=600
        )
        finished = time.time()
        probe.cancel()
    kinds = Counter("ok" if o.ok else type(o.error).__name__ for o in outcomes)
    seen["lag_ms"] = lags
    print(json.dumps({"outcomes": kinds, "finished": finished, **seen}), flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--redis", default=None)
    parser.add_argument("--rules", type=int, default=10)
    parser.add_argument("--count", type=int, default=100)
    parser.add_argument("--rate", type=float, required=True)
    parser.add_argument("--burst", type=float, default=None)
    parser.add_argument("--concurrency", type=int, default=16)
    asyncio.run(main(parser.parse_args()))
