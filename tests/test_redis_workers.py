"""
Many worker processes on one key, coordinated on a real Redis (or Valkey).

Every process here is real: one ``sequence-async serve --rate-limit`` fake
server, one Redis server, and worker subprocesses (``redis_worker.py``) that
trigger and wait. What the workers report (every HTTP request's time and
status, every outcome, every WARNING) is what the assertions read. The
module runs once per API profile: the server and the workers speak it.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from sequence_async.testing import Behavior, demo_seed

from . import redis_server


WORKER = Path(__file__).with_name("redis_worker.py")
RULES = [f"rule_{n:04d}" for n in range(1, 6)]
SERVER_RATE = 4800  # requests per minute per key, at the fake server
PROCESS_TIMEOUT = 90  # seconds: no worker can hang the suite
SLOW = 2.0  # seconds an execution takes in the kill tests
LEASE = 1.0  # seconds, the workers' lease

pytestmark = pytest.mark.apis(scope="module")  # one fast server per profile


@contextlib.contextmanager
def _served(tmp_path: Path, api: str, *, median: float) -> Iterator[dict[str, str]]:
    # A ``sequence-async serve --rate-limit`` process speaking *api* whose
    # executions all take *median* seconds; yields the workers' environment.
    seed = demo_seed(rules=len(RULES), failure_rate=0.0)
    for rule_id in RULES:
        seed.behaviors[rule_id] = Behavior(median=median, sigma=0.0)
    path = tmp_path / "seed.json"
    path.write_text(seed.to_json())
    with subprocess.Popen(  # noqa: S603
        [
            sys.executable,
            "-m",
            "sequence_async",
            "serve",
            "--port",
            "0",
            "--seed",
            str(path),
            "--rate-limit",
            str(SERVER_RATE),
            "--json",
            "--api",
            api,
        ],
        stdout=subprocess.PIPE,
        text=True,
    ) as process:
        try:
            assert process.stdout is not None
            info = json.loads(process.stdout.readline())
            env = {k: v for k, v in os.environ.items() if not k.startswith("SEQUENCE_")}
            yield env | {
                "SEQUENCE_API_KEY": info["api_key"],
                "SEQUENCE_BASE_URL": info["url"],
                "SEQUENCE_API": api,
            }
        finally:
            process.terminate()
            process.wait(timeout=30)


@pytest.fixture(scope="module")
def served(
    tmp_path_factory: pytest.TempPathFactory, api: str
) -> Iterator[dict[str, str]]:
    """
    A fake server speaking *api* whose executions take 0.3 s, for the module.
    """
    with _served(tmp_path_factory.mktemp("fast"), api, median=0.3) as env:
        yield env


@pytest.fixture
def slow_served(tmp_path: Path, api: str) -> Iterator[dict[str, str]]:
    """
    A fake server speaking *api* whose executions take 2 s: pending when we kill.
    """
    with _served(tmp_path, api, median=SLOW) as env:
        yield env


def _worker(env: dict[str, str], redis_url: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(  # noqa: S603
        [
            sys.executable,
            str(WORKER),
            "--redis",
            redis_url,
            "--rules",
            ",".join(RULES),
            *args,
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )


def _report(process: subprocess.Popen[str], cue: bool = False) -> dict[str, Any]:
    try:
        out, _ = process.communicate("go\n" if cue else None, timeout=PROCESS_TIMEOUT)
    finally:
        process.kill()  # a no-op once it has exited
    assert 0 == process.returncode, out
    return dict(json.loads(out.splitlines()[-1]))


def _ready(process: subprocess.Popen[str]) -> dict[str, Any]:
    # The worker's line saying it has triggered its first executions.
    assert process.stdout is not None
    line = process.stdout.readline()
    assert line, "the worker ended before it was ready"
    return dict(json.loads(line))


def _busiest_window(times: list[float], width: float) -> int:
    times = sorted(times)
    most, start = 0, 0
    for end, t in enumerate(times):
        while t - times[start] > width:
            start += 1
        most = max(most, end - start + 1)
    return most


def test_four_workers_share_one_budget_and_see_no_429(
    served: dict[str, str], fresh: redis.Redis, redis_url: str
) -> None:
    """4 processes x 100 waits on 5 rules: one budget, 0 429s, few requests."""
    rate, burst = SERVER_RATE, 10
    workers = [
        _worker(served, redis_url, "--rate", str(rate), "--burst", str(burst))
        for _ in range(4)
    ]
    reports = [_report(w) for w in workers]
    requests = [r for report in reports for r in report["requests"]]
    outcomes = [o for report in reports for o in report["outcomes"]]
    statuses = [status for _, status in requests]
    busiest = _busiest_window([t for t, _ in requests], 2.0)
    warnings = [w for report in reports for w in report["warnings"]]

    assert ["executed"] * 400 == outcomes
    assert 0 == statuses.count(429)
    assert [] == warnings
    # One budget for the four: in any 2 s, two seconds' worth plus the burst
    # (170), and a quarter more for processes that wake late on a busy
    # 2-core machine and send reserved slots together. Four independent
    # budgets would allow four times 170.
    assert busiest <= 1.25 * (2 * rate / 60 + burst), busiest
    assert len(requests) / len(outcomes) <= 1.3, len(requests)


def test_a_leader_killed_mid_run_is_replaced_and_every_wait_ends(
    slow_served: dict[str, str], fresh: redis.Redis, redis_url: str
) -> None:
    """A rule's poller killed (-9): another takes its lease, every wait ends."""
    workers = [
        _worker(slow_served, redis_url, "--count", "20", "--hold", "20")
        for _ in range(2)
    ]
    tokens = [_ready(w)["token"] for w in workers]
    leases = {fresh.get(key) for key in fresh.scan_iter(match="*:lease:*")}
    leader = next(n for n, token in enumerate(tokens) if token in leases)
    os.kill(workers[leader].pid, signal.SIGKILL)
    killed = time.time()
    workers[leader].communicate(timeout=PROCESS_TIMEOUT)  # closes its pipes
    survivors = [_report(w, cue=True) for n, w in enumerate(workers) if n != leader]

    assert ["executed"] * 20 == [o for r in survivors for o in r["outcomes"]]
    # Every execution had ended by killed + SLOW; the lease passes within
    # LEASE and the new leader polls at once, then every 2 s at most (the
    # workers' poll policy); 2 s more for a busy machine. A lost lease would
    # leave waits to time out (30 s) instead.
    latest = max(r["finished"] for r in survivors) - killed
    assert latest < SLOW + LEASE + 2.0 + 2.0, latest


def test_redis_killed_mid_run_every_wait_ends_through_the_fallback(
    served: dict[str, str],
) -> None:
    """Redis killed (-9): one WARNING per worker, and every wait still ends."""
    with redis_server.running() as server:
        workers = [
            _worker(served, server.url, "--count", "30", "--hold", "15")
            for _ in range(2)
        ]
        for worker in workers:
            _ready(worker)
        server.kill()
        reports = [_report(w, cue=True) for w in workers]
    statuses = [s for r in reports for _, s in r["requests"]]

    assert ["executed"] * 60 == [o for r in reports for o in r["outcomes"]]
    assert [1, 1] == [len(r["warnings"]) for r in reports]
    assert all("Redis is unreachable" in r["warnings"][0] for r in reports)
    assert 0 == statuses.count(429)
