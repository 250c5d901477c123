"""
The benchmarks of design §9, side by side in one run: ``nox -s bench``.

1. Bulk trigger throughput: ``trigger_many(wait=False)`` against a raw aiohttp
   loop sending the same requests at the same concurrency, to a fake server in
   another process (so client and server each have a core).
2. Requests per completed execution: 1,000 executions over 20 rules, median
   3 s, waited through the shared poller, against a naive per-execution poller
   with the same schedule.
3. Under a server-side rate limit: 429s that reach the caller, and total time
   against the theoretical minimum (requests sent / the client's rate).
4. Memory: peak RSS growth for 10,000 pending waits.

Each prints a line; the whole run ends with a Markdown table of the ratios.
Pass ``--quick`` for a smaller, faster run (smoke test).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import aiohttp

from sequence_async import PollPolicy, SequenceClient
from sequence_async.testing import Behavior, demo_seed, serve


def rss_mb() -> tuple[float, float]:
    """
    Current and peak resident memory of this process, in MB.
    """
    fields = dict(
        line.split(":", 1)
        for line in Path("/proc/self/status").read_text().splitlines()
        if ":" in line
    )
    return int(fields["VmRSS"].split()[0]) / 1024, int(
        fields["VmHWM"].split()[0]
    ) / 1024


class ServerProcess:
    """
    ``sequence-async serve`` in a child process.
    """

    def __init__(self, *extra: str) -> None:
        self.args = [
            sys.executable,
            "-m",
            "sequence_async",
            "serve",
            "--port",
            "0",
            "--json",
            *extra,
        ]

    def __enter__(self) -> dict[str, str]:
        self.process = subprocess.Popen(self.args, stdout=subprocess.PIPE, text=True)
        assert self.process.stdout is not None
        info: dict[str, str] = json.loads(self.process.stdout.readline())
        return info

    def __exit__(self, *_: object) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)
        if self.process.stdout:
            self.process.stdout.close()


async def raw_loop(
    url: str, key: str, rules: list[str], n: int, concurrency: int
) -> float:
    """
    Trigger n times with plain aiohttp; return requests per second.
    """
    queue = iter(range(n))
    connector = aiohttp.TCPConnector(limit=100)
    async with aiohttp.ClientSession(connector=connector) as http:

        async def worker() -> None:
            for i in queue:
                headers = {
                    "Authorization": f"ApiKey {key}",
                    "X-Request-ID": str(uuid.uuid4()),
                    "Idempotency-Key": str(uuid.uuid4()),
                    "Content-Type": "application/json",
                }
                async with http.post(
                    f"{url}/rules/{rules[i % len(rules)]}/trigger",
                    data=b"{}",
                    headers=headers,
                ) as r:
                    body = await r.json()
                    assert r.status == 202, body
                    assert body["data"]["execution_id"]

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return n / (time.perf_counter() - started)


async def sdk_loop(
    url: str, key: str, rules: list[str], n: int, concurrency: int
) -> float:
    """
    Trigger n times with trigger_many(wait=False); return requests per second.
    """
    async with SequenceClient(key, base_url=url) as client:
        started = time.perf_counter()
        ok = 0
        async with client.trigger_many(
            (rules[i % len(rules)] for i in range(n)),
            concurrency=concurrency,
            wait=False,
        ) as run:
            async for outcome in run:
                ok += outcome.ok
        assert ok == n
        return n / (time.perf_counter() - started)


async def bench_throughput(n: int, rounds: int) -> dict[str, float]:
    """
    Benchmark 1: SDK versus raw aiohttp, interleaved rounds, medians.
    """
    with ServerProcess() as info:
        url, key = info["url"], info["api_key"]
        rules = [f"rule_{k:04d}" for k in range(1, 11)]
        await raw_loop(url, key, rules, 500, 16)  # warm up both paths
        await sdk_loop(url, key, rules, 500, 16)
        raw, sdk = [], []
        for _ in range(rounds):
            raw.append(await raw_loop(url, key, rules, n, 16))
            sdk.append(await sdk_loop(url, key, rules, n, 16))
    result = {"raw_rps": statistics.median(raw), "sdk_rps": statistics.median(sdk)}
    result["ratio"] = result["sdk_rps"] / result["raw_rps"]
    print(
        f"1. throughput: raw {result['raw_rps']:.0f} req/s, sdk {result['sdk_rps']:.0f} req/s, ratio {result['ratio']:.3f}"
    )
    return result


async def naive_wait(
    client: SequenceClient, execution_id: str, policy: PollPolicy
) -> int:
    """
    Poll one execution by id on the same schedule, alone; return polls sent.
    """
    polls = 0
    delay = policy.delay(1)
    while True:
        await asyncio.sleep(delay)
        polls += 1
        try:
            result = await client.rule_executions.get(execution_id)
        except Exception:  # noqa: BLE001 (a naive poller just tries again)
            continue
        if result.done:
            return polls
        delay = policy.delay(polls + 1)


async def bench_efficiency(n: int, rules: int, median: float) -> dict[str, float]:
    """
    Benchmark 2: requests per completed execution, shared poller versus naive.
    """
    seed = demo_seed(rules=rules)
    for rule_id in [r["id"] for r in seed.rules]:
        seed.behaviors[rule_id] = Behavior(median=median, sigma=0.5)
    requests = [f"rule_{(i % rules) + 1:04d}" for i in range(n)]
    async with serve(seed, rng_seed=1, record=False) as server:
        async with SequenceClient(server.api_key, base_url=server.url) as client:
            started = time.perf_counter()
            outcomes = await client.trigger_all(requests, concurrency=16, timeout=120)
            shared_seconds = time.perf_counter() - started
        assert all(o.result is not None and o.result.done for o in outcomes)
        shared = sum(server.counts.values()) / n
    async with serve(seed, rng_seed=1, record=False) as server:
        async with SequenceClient(server.api_key, base_url=server.url) as client:
            started = time.perf_counter()
            executions = await client.trigger_all(requests, concurrency=16, wait=False)
            await asyncio.gather(
                *(
                    naive_wait(client, o.execution.id, PollPolicy())
                    for o in executions
                    if o.execution
                )
            )
            naive_seconds = time.perf_counter() - started
        naive = sum(server.counts.values()) / n
    print(
        f"2. requests per execution: shared {shared:.2f} ({shared_seconds:.1f}s), "
        f"naive {naive:.2f} ({naive_seconds:.1f}s)"
    )
    return {
        "shared": shared,
        "naive": naive,
        "shared_s": shared_seconds,
        "naive_s": naive_seconds,
    }


async def bench_rate_limit(n: int) -> dict[str, float]:
    """
    Benchmark 3: no 429 reaches the caller; time against requests / rate.
    """
    server_rate, client_rate = 1200, 1080  # per minute: the client stays under
    seed = demo_seed(rules=10)
    for rule_id in [r["id"] for r in seed.rules]:
        seed.behaviors[rule_id] = Behavior(median=0.3, sigma=0.3)
    async with serve(
        seed, rate_limit=server_rate, rate_burst=20, record=False
    ) as server:
        async with SequenceClient(
            server.api_key,
            base_url=server.url,
            rate_limit=client_rate,
            rate_limit_burst=2,
        ) as client:
            started = time.perf_counter()
            outcomes = await client.trigger_all(
                [f"rule_{(i % 10) + 1:04d}" for i in range(n)],
                concurrency=16,
                timeout=300,
            )
            seconds = time.perf_counter() - started
        sent = sum(server.counts.values())
        throttled = server.statuses[429]
    errors = sum(1 for o in outcomes if not o.ok and "429" in str(o.error))
    minimum = sent / (client_rate / 60)
    print(
        f"3. rate limit: {sent} requests, {throttled} answered 429, {errors} reached the caller; "
        f"{seconds:.1f}s vs minimum {minimum:.1f}s (x{seconds / minimum:.2f})"
    )
    return {
        "429_server": throttled,
        "429_caller": errors,
        "ratio": seconds / minimum,
        "seconds": seconds,
        "minimum": minimum,
    }


async def bench_memory(n: int) -> dict[str, float]:
    """
    Benchmark 4: peak RSS growth while n waits are pending.

    The server runs in another process, so only the client is measured; its
    executions last an hour, so every wait stays pending.
    """
    with ServerProcess("--median", "3600") as info:
        policy = PollPolicy(wait_initial=0.5, multiplier=1.0, wait_max=0.5)
        async with SequenceClient(
            info["api_key"], base_url=info["url"], poll=policy
        ) as client:
            outcomes = await client.trigger_all(
                [f"rule_{(i % 10) + 1:04d}" for i in range(n)],
                concurrency=32,
                wait=False,
            )
            handles = [o.execution for o in outcomes if o.execution]
            del outcomes
            before, _ = rss_mb()
            waits = [asyncio.create_task(h.wait(timeout=None)) for h in handles]
            await asyncio.sleep(3)  # a few shared poll rounds
            _, peak = rss_mb()
            for w in waits:
                w.cancel()
            await asyncio.gather(*waits, return_exceptions=True)
    growth = peak - before
    print(
        f"4. memory: {n} pending waits, peak RSS growth {growth:.1f} MB ({growth * 1024 * 1024 / n:.0f} B per wait)"
    )
    return {"growth_mb": growth, "per_wait_b": growth * 1024 * 1024 / n}


async def main() -> None:
    """
    Run every benchmark and print the summary table.
    """
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "--quick", action="store_true", help="smaller sizes (a smoke test)"
    )
    args = parser.parse_args()
    quick = args.quick
    print(f"# sequence-async benchmarks, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
    print(
        f"# {platform.platform()}, Python {platform.python_version()}, {os.cpu_count()} cores"
    )
    t = await bench_throughput(1_000 if quick else 5_000, 1 if quick else 3)
    e = await bench_efficiency(200 if quick else 1_000, 20, 3.0)
    r = await bench_rate_limit(60 if quick else 300)
    m = await bench_memory(1_000 if quick else 10_000)
    print()
    print("| benchmark | measured | target |")
    print("| --- | --- | --- |")
    print(
        f"| 1. bulk trigger throughput vs raw aiohttp | {t['ratio']:.2f}x ({t['sdk_rps']:.0f} vs {t['raw_rps']:.0f} req/s) | >= 0.90x |"
    )
    print(
        f"| 2. requests per completed execution | {e['shared']:.2f} (naive poller {e['naive']:.2f}) | <= 1.3 |"
    )
    print(
        f"| 3. 429s reaching the caller; time vs minimum | {r['429_caller']:.0f}; {r['ratio']:.2f}x | 0; <= 1.15x |"
    )
    print(
        f"| 4. peak RSS growth, pending waits | {m['growth_mb']:.1f} MB | <= 50 MB for 10,000 |"
    )


if __name__ == "__main__":
    asyncio.run(main())
