"""
Profile one client kind of benchmark 1 (not part of ``nox -s bench``).

Usage::

    python benchmarks/profile_client.py sdk --n 20000 --loop asyncio
    py-spy record --format raw -o sdk.txt -- python benchmarks/profile_client.py sdk
    python benchmarks/profile_client.py sdk --cprofile sdk.pstats

Starts the trigger servers, runs the kind once to warm up, then *n* triggers,
and prints requests per second and CPU microseconds per request.
``--summary FILE`` reads a py-spy ``raw`` (collapsed stacks) file instead and
prints the share of samples under each SDK function and under aiohttp.
"""

from __future__ import annotations

import argparse
import cProfile
import re
from collections import Counter
from pathlib import Path

import throughput


def summarise(path: Path, top: int) -> None:
    """
    Print where the samples of a py-spy raw profile go (inclusive shares).
    """
    inclusive: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        samples = int(count)
        total += samples
        seen = set()
        for frame in stack.split(";"):
            match = re.match(r"(.+?) \((.+?):\d+\)", frame)
            if not match:
                continue
            function, filename = match.groups()
            module = filename.rsplit("/", 1)[-1]
            if "sequence_async" in filename or "aiohttp" in filename:
                package = "sdk" if "sequence_async" in filename else "aiohttp"
                key = f"{package}: {module}:{function}"
            else:
                key = f"other: {module}:{function}"
            if key not in seen:
                seen.add(key)
                inclusive[key] += samples
    print(f"{total} samples; inclusive share of the top {top} frames:")
    for key, samples in inclusive.most_common(top):
        print(f"{samples / total:7.1%}  {key}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("kind", nargs="?", choices=list(throughput.KINDS))
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--loop", choices=["asyncio", "uvloop"], default="asyncio")
    parser.add_argument("--servers", type=int, default=2)
    parser.add_argument("--cprofile", type=Path, help="write cProfile stats here")
    parser.add_argument("--summary", type=Path, help="summarise a py-spy raw file")
    parser.add_argument("--top", type=int, default=45)
    args = parser.parse_args()
    if args.summary:
        summarise(args.summary, args.top)
        return
    if args.kind is None:
        parser.error("name a client kind, or --summary FILE")
    factory = throughput.loops()[args.loop]
    with throughput.trigger_servers(args.servers) as (url, pids):
        throughput.measure(factory, args.kind, url, 1000, pids)
        profiler = cProfile.Profile() if args.cprofile else None
        if profiler:
            profiler.enable()
        result = throughput.measure(factory, args.kind, url, args.n, pids)
        if profiler:
            profiler.disable()
            profiler.dump_stats(args.cprofile)
    print(
        f"{args.kind} on {args.loop}: {result['rps']:.0f} req/s, "
        f"{result['cpu_us']:.0f} us CPU per request"
    )


if __name__ == "__main__":
    main()
