"""
Benchmark 2: requests per execution and detection lag, shared poller vs naive.

The package's fake server runs in a child process (``fake_server.py``), a
fresh one per poller with the same seed, so both pollers face the same
executions with the same drawn durations. N executions over R rules with
log-normal durations are triggered at concurrency 16:

- ``shared``: ``client.trigger_many(..., wait=True)``: the shared poller;
- ``naive``: ``trigger_many(wait=False)``, then one task per execution
  polling ``GET /rule-executions/{id}`` alone on the same ``PollPolicy``
  schedule (first poll ``delay(1)`` after the trigger returned, then each
  ``delay(n)`` after the last answer).

Either API profile (``--api platform-v1``: the fake server and the client
speak Platform v1; polls are ``/rules/{ruleId}/executions[/{id}]``). Run
alone: ``python benchmarks/polling.py --api platform-v1 [-n 1000]``.

Detection lag: the server draws each execution's end when it is triggered
(``finish_at``, wall clock); any request after that moment sees it terminal.
The child reports every ``finish_at``; the client stamps ``time.time()``
when each wait returns (same host, same clock). Lag = return - finish_at:
the poll schedule's wait plus one round trip. Requests are counted by the
server, triggers included.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sequence_async import PollPolicy, SequenceClient


class FakeServer:
    """
    ``fake_server.py`` in a child process, driven over its stdin.
    """

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.process = process
        assert process.stdout is not None
        info = json.loads(process.stdout.readline())
        self.url: str = info["url"]
        self.api_key: str = info["api_key"]

    def report(self) -> dict[str, Any]:
        assert self.process.stdin is not None
        assert self.process.stdout is not None
        self.process.stdin.write("report\n")
        self.process.stdin.flush()
        report: dict[str, Any] = json.loads(self.process.stdout.readline())
        return report


@contextmanager
def fake_server(*args: str) -> Iterator[FakeServer]:
    """
    Run ``fake_server.py`` with *args*; stop it on exit.
    """
    script = str(Path(__file__).with_name("fake_server.py"))
    process = subprocess.Popen(
        [sys.executable, script, *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        yield FakeServer(process)
    finally:
        if process.stdin:
            process.stdin.close()  # the child stops at end of input
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stdout:
            process.stdout.close()


async def naive_wait(
    client: SequenceClient, execution_id: str, rule_id: str, policy: PollPolicy
) -> float:
    """
    Poll one execution alone on the policy's schedule; return when it ended.
    """
    polls = 0
    while True:
        polls += 1
        await asyncio.sleep(policy.delay(polls))
        try:
            result = await client.rule_executions.get(execution_id, rule_id=rule_id)
        except Exception:  # noqa: BLE001 (a naive poller just tries again)
            continue
        if result.done:
            return time.time()


async def run_shared(
    url: str, key: str, requests: list[str], api: str
) -> dict[str, float]:
    ended: dict[str, float] = {}
    async with (
        SequenceClient(key, base_url=url, api=api) as client,
        client.trigger_many(requests, concurrency=16, timeout=300) as run,
    ):
        async for outcome in run:
            assert outcome.result is not None, outcome
            assert outcome.result.done, outcome
            ended[outcome.result.id] = time.time()
    return ended


async def run_naive(
    url: str, key: str, requests: list[str], api: str
) -> dict[str, float]:
    waits: dict[str, asyncio.Task[float]] = {}
    policy = PollPolicy()
    async with SequenceClient(key, base_url=url, api=api) as client:
        async with client.trigger_many(requests, concurrency=16, wait=False) as run:
            async for outcome in run:
                assert outcome.execution is not None, outcome
                execution_id = outcome.execution.id
                waits[execution_id] = asyncio.create_task(
                    naive_wait(client, execution_id, outcome.execution.rule_id, policy)
                )
        return {i: await task for i, task in waits.items()}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def measure(
    kind: str, n: int, rules: int, median: float, rng_seed: int, *, api: str = "api-v1"
) -> dict[str, float]:
    """
    One poller against a fresh fake server: requests per execution and lag.
    """
    requests = [f"rule_{(i % rules) + 1:04d}" for i in range(n)]
    args = ["--rules", str(rules), "--median", str(median), "--rng-seed", str(rng_seed)]
    args += ["--api", api]
    with fake_server(*args) as server:
        started = time.perf_counter()
        run = run_shared if kind == "shared" else run_naive
        ended = asyncio.run(run(server.url, server.api_key, requests, api))
        seconds = time.perf_counter() - started
        report = server.report()
    lags = [ended[i] - report["finish_at"][i] for i in ended]
    return {
        "requests_per_execution": report["requests"] / n,
        "lag_p50": percentile(lags, 0.50),
        "lag_p95": percentile(lags, 0.95),
        "lag_p99": percentile(lags, 0.99),
        "lag_max": max(lags),
        "lag_min": min(lags),
        "lag_mean": statistics.fmean(lags),
        "seconds": seconds,
    }


def bench_polling(
    n: int, rules: int, median: float, rng_seed: int = 1, api: str = "api-v1"
) -> dict[str, dict[str, float]]:
    """
    Shared poller then naive poller, same seed; print and return both.
    """
    result = {
        kind: measure(kind, n, rules, median, rng_seed, api=api)
        for kind in ("shared", "naive")
    }
    for kind, r in result.items():
        print(
            f"2. {api} {kind} poller: {r['requests_per_execution']:.2f} requests per execution, "
            f"lag p50 {r['lag_p50']:.2f}s p95 {r['lag_p95']:.2f}s p99 {r['lag_p99']:.2f}s "
            f"max {r['lag_max']:.2f}s "
            f"(min {r['lag_min'] * 1000:.0f} ms), total {r['seconds']:.1f}s"
        )
    return result


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--api", default="api-v1", choices=["api-v1", "platform-v1"])
    parser.add_argument("-n", type=int, default=1_000)
    options = parser.parse_args()
    bench_polling(options.n, 20, 3.0, api=options.api)
