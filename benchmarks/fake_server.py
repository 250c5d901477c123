"""
The package's fake server in a child process, for benchmarks 2, 4 and 5.

Usage: ``python fake_server.py --rules 20 --median 3 --sigma 0.5 --rng-seed 1
[--api platform-v1] [--rate-limit 600 --rate-burst 20]`` (a per-key limit
answering 429, as ``sequence-async serve --rate-limit``).
Prints ``{"url": ..., "api_key": ...}`` once listening. Each line read on
stdin is a command, answered with one JSON line:

- ``report``: ``{"requests": N, "by_route": {...}, "statuses": {...},
  "finish_at": {id: t}}``,
  where ``finish_at`` is the wall-clock time (``time.time()``) the server
  drew for each execution to end: the moment it turns terminal for any poll
  that comes after it;
- ``quit`` (or stdin closed): stop.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

from sequence_async.testing import Behavior, demo_seed, serve


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rules", type=int, default=20)
    parser.add_argument("--median", type=float, default=3.0)
    parser.add_argument("--sigma", type=float, default=0.5)
    parser.add_argument("--rng-seed", type=int, default=1)
    parser.add_argument("--api", default="api-v1", choices=["api-v1", "platform-v1"])
    parser.add_argument("--rate-limit", type=int, default=None)
    parser.add_argument("--rate-burst", type=int, default=None)
    args = parser.parse_args()
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader), sys.stdin
    )
    seed = demo_seed(rules=args.rules, failure_rate=0.0)
    async with serve(
        seed,
        rng_seed=args.rng_seed,
        record=False,
        api=args.api,
        rate_limit=args.rate_limit,
        rate_burst=args.rate_burst,
    ) as server:
        server.set_behavior("*", Behavior(median=args.median, sigma=args.sigma))
        print(json.dumps({"url": server.url, "api_key": server.api_key}), flush=True)
        while line := (await reader.readline()).decode().strip():
            if line == "quit":
                break
            if line == "report":
                # The server's own record of each execution's drawn end.
                executions = server.state.executions
                report = {
                    "requests": sum(server.counts.values()),
                    "by_route": dict(server.counts),
                    "statuses": dict(server.statuses),
                    "finish_at": {i: e.finish_at for i, e in executions.items()},
                }
                print(json.dumps(report), flush=True)


if __name__ == "__main__":
    asyncio.run(main())
