"""
The benchmarks of design §9, side by side in one run: ``nox -s bench``.

1. Bulk trigger throughput of the client (``throughput.py``): the SDK's
   ``trigger_many(wait=False)``, a raw aiohttp loop and an httpx loop,
   interleaved over several rounds, on asyncio and on uvloop, against
   several minimal trigger servers sharing one port (so that the client, not
   the server, is what is measured).
2. Requests per execution and detection lag of waits (``polling.py``): the
   shared poller against a naive per-execution poller, same seed.
3. Under a server-side rate limit: 429s that reach the caller, and total time
   against the theoretical minimum (requests sent / the client's rate).
4. Memory: peak RSS growth for 10,000 pending waits.
5. Many worker processes on one key (``cluster.py``, issue #11): independent
   clients against clients coordinated through Redis.

With benchmark 1, when ``valgrind`` is on PATH, 1b (``instructions.py``)
counts the client's instructions per request of the SDK and raw aiohttp, a
figure this shared VM's load does not move (``--no-instructions`` skips it).

Each prints its lines; the run ends with a Markdown table of the figures and
targets (reported, never asserted). ``--quick`` is a smoke run (< 60 s);
``--only 1,2`` runs some of them.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import sys
import time
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path


if "--without-otel" in sys.argv:
    # Hide opentelemetry-api from the client, as if it were not installed:
    # the SDK then records no spans or metrics.
    sys.modules["opentelemetry"] = None  # type: ignore[assignment]

import cluster
import instructions
import polling
import throughput

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
    with polling.fake_server(
        "--rules", "10", "--median", "3600", "--sigma", "0"
    ) as server:
        policy = PollPolicy(wait_initial=0.5, multiplier=1.0, wait_max=0.5)
        async with SequenceClient(
            server.api_key, base_url=server.url, poll=policy
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
            pending = sum(not w.done() for w in waits)
            for w in waits:
                w.cancel()
            await asyncio.gather(*waits, return_exceptions=True)
    growth = peak - before
    print(
        f"4. memory: {pending} of {n} waits pending, peak RSS growth {growth:.1f} MB "
        f"({growth * 1024 * 1024 / n:.0f} B per wait)"
    )
    return {"growth_mb": growth, "per_wait_b": growth * 1024 * 1024 / n, "n": n}


def _met(ok: bool | None) -> str:
    return "" if ok is None else "met" if ok else "**missed**"


def _r(s: dict[str, float], digits: int = 2) -> str:
    return f"{s['median']:.{digits}f}x ({s['min']:.{digits}f}-{s['max']:.{digits}f})"


def _row(what: str, measured: str, target: str = "", ok: bool | None = None) -> str:
    return f"| {what} | {measured} | {target} | {_met(ok)} |"


def table(
    t: dict[str, dict[str, dict[str, float]]] | None,
    p: dict[str, dict[str, float]] | None,
    r: dict[str, float] | None,
    m: dict[str, float] | None,
) -> list[str]:
    """
    The summary table: one row per figure, with its target and verdict.
    """
    rows = ["| benchmark | measured | target | |", "| --- | --- | --- | --- |"]
    for loop, f in (t or {}).items():
        ratio, cpu, x = f["sdk_vs_aiohttp"], f["cpu_sdk_vs_aiohttp"], f["sdk_vs_httpx"]
        sdk, raw = f["sdk_rps"]["median"], f["aiohttp_rps"]["median"]
        rows.append(
            _row(
                f"1. throughput, {loop}: SDK / raw aiohttp (median of rounds, min-max)",
                f"{_r(ratio)}; {sdk:,.0f} vs {raw:,.0f} req/s",
                ">= 0.95x",
                ratio["median"] >= 0.95,
            )
        )
        sdk, raw = f["sdk_cpu_us"]["median"], f["aiohttp_cpu_us"]["median"]
        rows.append(
            _row(
                f"1. client CPU per request, {loop}: raw aiohttp / SDK",
                f"{_r(cpu)}; {sdk:.0f} vs {raw:.0f} us",
                "(>= 0.95x)",
                cpu["median"] >= 0.95,
            )
        )
        journal, extra = f["journal_vs_sdk"], f["journal_us_per_item"]
        rows.append(
            _row(
                f"1. throughput, {loop}: SDK with a journal / without (#12)",
                f"{_r(journal)}; +{extra['median']:.0f} us CPU per item",
                ">= 0.8x; < 1 ms per item",
                journal["median"] >= 0.8 and extra["median"] < 1000,
            )
        )
        noop = f["noop_otel_vs_absent"]
        rows.append(
            _row(
                f"1. throughput, {loop}: opentelemetry-api present, no SDK / absent",
                _r(noop),
                ">= 0.97x",
                noop["median"] >= 0.97,
            )
        )
        otel = f["otel_vs_sdk"]
        rows.append(
            _row(
                f"1. throughput, {loop}: full OpenTelemetry SDK, in-memory / none",
                _r(otel),
                "(reported)",
            )
        )
        rows.append(
            _row(
                f"1. throughput, {loop}: SDK / httpx",
                f"{_r(x, 1)}; httpx {f['httpx_rps']['median']:,.0f} req/s",
                ">= 10x",
                x["median"] >= 10,
            )
        )
    if p:
        shared, naive = p["shared"], p["naive"]
        per = shared["requests_per_execution"]
        rows.append(
            _row(
                "2. requests per completed execution, triggers included",
                f"{per:.2f} (naive poller {naive['requests_per_execution']:.2f})",
                "<= 1.2",
                per <= 1.2,
            )
        )
        rows.append(
            _row(
                "2. detection lag p50: shared vs naive",
                f"{shared['lag_p50']:.2f} s vs {naive['lag_p50']:.2f} s",
                "shared <= naive",
                shared["lag_p50"] <= naive["lag_p50"],
            )
        )
        x = shared["lag_p95"] / naive["lag_p95"]
        rows.append(
            _row(
                "2. detection lag p95: shared vs naive",
                f"{shared['lag_p95']:.2f} s vs {naive['lag_p95']:.2f} s ({x:.2f}x)",
                "<= 1.25x",
                x <= 1.25,
            )
        )
        rows.append(
            _row(
                "2. detection lag p99 / max: shared vs naive",
                f"{shared['lag_p99']:.2f} / {shared['lag_max']:.2f} s vs "
                f"{naive['lag_p99']:.2f} / {naive['lag_max']:.2f} s",
            )
        )
    if r:
        rows.append(
            _row(
                "3. 429s reaching the caller; time vs minimum",
                f"{r['429_caller']:.0f} ({r['429_server']:.0f} at the server); "
                f"{r['ratio']:.2f}x",
                "0; <= 1.15x",
                r["429_caller"] == 0 and r["ratio"] <= 1.15,
            )
        )
    if m:
        rows.append(
            _row(
                f"4. peak RSS growth, {m['n']:,.0f} pending waits",
                f"{m['growth_mb']:.1f} MB ({m['per_wait_b'] / 1024:.1f} KB per wait)",
                "<= 50 MB for 10,000",
                m["growth_mb"] * 10_000 / m["n"] <= 50,
            )
        )
    return rows


def _otel_state() -> str:
    try:
        installed = version("opentelemetry-api")
    except PackageNotFoundError:
        return "off (opentelemetry-api not installed)"
    if sys.modules.get("opentelemetry", ...) is None:
        return f"off (opentelemetry-api {installed} hidden by --without-otel)"
    return f"on (opentelemetry-api {installed} installed; no-op unless configured)"


def main() -> None:
    """
    Run the benchmarks and print the summary table.
    """
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "--quick", action="store_true", help="smaller sizes (a smoke test, < 60 s)"
    )
    parser.add_argument(
        "--only", default="1,2,3,4,5", help="comma-separated benchmarks to run"
    )
    parser.add_argument(
        "--servers", type=int, default=2, help="trigger server processes (bench 1)"
    )
    parser.add_argument("--rounds", type=int, help="rounds of bench 1")
    parser.add_argument(
        "--items",
        type=int,
        help="triggers per run of bench 1 (10,000, #12's payroll run; 1,000 quick)",
    )
    parser.add_argument(
        "--no-instructions",
        action="store_true",
        help="skip 1b, the callgrind count of bench 1 (needs valgrind)",
    )
    parser.add_argument(
        "--without-otel",
        action="store_true",
        help="hide opentelemetry-api from the client (no SDK telemetry)",
    )
    args = parser.parse_args()
    quick, only = args.quick, {int(x) for x in args.only.split(",")}
    started = time.perf_counter()
    print(f"# sequence-async benchmarks, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
    print(
        f"# {platform.platform()}, Python {platform.python_version()}, "
        f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}; "
        + ", ".join(
            f"{name} {version(name)}" for name in ("aiohttp", "httpx", "uvloop")
        )
    )
    print(f"# SDK telemetry (OpenTelemetry): {_otel_state()}")
    t = p = r = m = c = i = None
    if 1 in only:
        t = throughput.bench_throughput(
            args.items or (1_000 if quick else 10_000),
            args.rounds or (1 if quick else 9),
            args.servers,
        )
        if args.no_instructions or not instructions.available():
            print("# 1b skipped (--no-instructions, or no valgrind on PATH)")
        else:
            i = instructions.bench_instructions(200 if quick else 1_000)
    if 2 in only:
        p = polling.bench_polling(200 if quick else 1_000, 20, 1.0 if quick else 3.0)
    if 3 in only:
        r = asyncio.run(bench_rate_limit(60 if quick else 300))
    if 4 in only:
        m = asyncio.run(bench_memory(1_000 if quick else 10_000))
    if 5 in only:
        c = cluster.bench_cluster(count=12 if quick else 100)
    print()
    print("\n".join(table(t, p, r, m) + instructions.rows(i) + cluster.rows(c)))
    print(f"\n# {time.perf_counter() - started:.0f} s in all")


if __name__ == "__main__":
    main()
