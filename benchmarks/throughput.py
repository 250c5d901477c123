"""
Benchmark 1: bulk trigger throughput of the client, not of a server.

Several ``trigger_server.py`` processes share one port (``SO_REUSEPORT``) and
answer each trigger with a canned 202 envelope at a small fraction of a
client's cost per request. One client process (this one) runs three client
kinds against them, interleaved in every round (the order rotates), on the
default asyncio loop and on uvloop:

- ``sdk``: ``client.trigger_many(rule_ids, concurrency=16, wait=False)``;
- ``aiohttp``: a raw aiohttp loop with a fixed set of 16 worker tasks sending
  the same requests (the SDK's headers, a fresh uuid4 ``X-Request-ID`` and
  ``Idempotency-Key`` each, ``{}`` as body) and parsing the JSON answer;
- ``httpx``: the same loop on an ``httpx.AsyncClient``.

Each measurement records wall time and this process's CPU time, so the
report has requests per second and CPU microseconds per request; ratios are
taken within each round (same moment, same machine load), then summarised
as median and min-max.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import aiohttp
import httpx

from sequence_async import SequenceClient, __version__, _otel


try:
    import uvloop
except ImportError:  # pragma: no cover (the bench group installs it)
    uvloop = None
try:  # the full OpenTelemetry SDK, for the "sdk_otel" kind
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
        InMemorySpanExporter,
    )
except ImportError:  # pragma: no cover
    TracerProvider = None

CONCURRENCY = 16
KEY = "sk_bench"
RULES = [f"rule_{k:04d}" for k in range(1, 11)]
HEADERS = {
    "User-Agent": f"sequence-async/{__version__}",
    "Accept": "application/json",
    "Accept-Encoding": "gzip, deflate",
    "Content-Type": "application/json",
}
Measure = Callable[[str, int], Awaitable[int]]


@contextmanager
def trigger_servers(count: int) -> Iterator[tuple[str, list[int]]]:
    """
    Start *count* trigger servers on one port; yield the base URL and pids.
    """
    script = str(Path(__file__).with_name("trigger_server.py"))
    processes: list[subprocess.Popen[str]] = []
    try:
        port = 0
        for _ in range(count):
            process = subprocess.Popen(
                [sys.executable, script, str(port)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            processes.append(process)
            assert process.stdout is not None
            port = json.loads(process.stdout.readline())["port"]
        yield f"http://127.0.0.1:{port}/api/v1", [p.pid for p in processes]
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=30)
            for stream in (process.stdin, process.stdout):
                if stream:
                    stream.close()


def cpu_seconds(pid: int) -> float:
    """
    User plus system CPU seconds a process has used so far.
    """
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _headers() -> dict[str, str]:
    return {
        "Authorization": f"ApiKey {KEY}",
        "X-Request-ID": str(uuid.uuid4()),
        "Idempotency-Key": str(uuid.uuid4()),
        **HEADERS,
    }


def _check(status: int, body: bytes) -> None:
    data = json.loads(body)
    if status != 202 or not data["data"]["execution_id"]:
        raise AssertionError(f"unexpected answer {status}: {body[:200]!r}")


async def _bulk(n: int, client: SequenceClient, **options: Any) -> int:
    await client.rules.trigger(RULES[0])  # open the session and a connection
    ok = 0
    async with client.trigger_many(
        (RULES[i % len(RULES)] for i in range(n)),
        concurrency=CONCURRENCY,
        wait=False,
        **options,
    ) as run:
        async for outcome in run:
            ok += outcome.ok
    return ok


async def run_sdk(url: str, n: int) -> int:
    async with SequenceClient(KEY, base_url=url) as client:
        return await _bulk(n, client)


async def run_sdk_journal(url: str, n: int) -> int:
    """The SDK with a journal: every item's intent committed before it is sent."""
    with tempfile.TemporaryDirectory() as directory:
        async with SequenceClient(KEY, base_url=url) as client:
            return await _bulk(n, client, journal=Path(directory) / "run.db")


async def run_sdk_no_otel(url: str, n: int) -> int:
    """The SDK as if opentelemetry-api were not installed (its code path)."""
    available, _otel.AVAILABLE = _otel.AVAILABLE, False
    try:
        return await run_sdk(url, n)
    finally:
        _otel.AVAILABLE = available


async def run_sdk_otel(url: str, n: int) -> int:
    """The SDK recording spans and metrics with the full OpenTelemetry SDK."""
    if TracerProvider is None:
        return await run_sdk(url, n)
    tracing = TracerProvider()
    tracing.add_span_processor(SimpleSpanProcessor(InMemorySpanExporter()))
    meters = MeterProvider(metric_readers=[InMemoryMetricReader()])
    try:
        async with SequenceClient(
            KEY, base_url=url, tracer_provider=tracing, meter_provider=meters
        ) as client:
            return await _bulk(n, client)
    finally:
        tracing.shutdown()
        meters.shutdown()


async def run_aiohttp(url: str, n: int) -> int:
    connector = aiohttp.TCPConnector(limit=100)
    async with aiohttp.ClientSession(connector=connector) as http:
        async with http.post(
            f"{url}/rules/{RULES[0]}/trigger", data=b"{}", headers=_headers()
        ) as r:
            _check(r.status, await r.read())
        items = iter(range(n))
        ok = 0

        async def worker() -> None:
            nonlocal ok
            for i in items:
                async with http.post(
                    f"{url}/rules/{RULES[i % len(RULES)]}/trigger",
                    data=b"{}",
                    headers=_headers(),
                ) as r:
                    _check(r.status, await r.read())
                ok += 1

        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
        return ok


async def run_httpx(url: str, n: int) -> int:
    limits = httpx.Limits(max_connections=100, max_keepalive_connections=100)
    async with httpx.AsyncClient(limits=limits) as http:
        r = await http.post(
            f"{url}/rules/{RULES[0]}/trigger", content=b"{}", headers=_headers()
        )
        _check(r.status_code, r.content)
        items = iter(range(n))
        ok = 0

        async def worker() -> None:
            nonlocal ok
            for i in items:
                r = await http.post(
                    f"{url}/rules/{RULES[i % len(RULES)]}/trigger",
                    content=b"{}",
                    headers=_headers(),
                )
                _check(r.status_code, r.content)
                ok += 1

        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
        return ok


KINDS: dict[str, Measure] = {
    "sdk": run_sdk,
    "aiohttp": run_aiohttp,
    "httpx": run_httpx,
    "sdk_journal": run_sdk_journal,
    "sdk_otel": run_sdk_otel,
    "sdk_no_otel": run_sdk_no_otel,
}


def loops() -> dict[str, Callable[[], asyncio.AbstractEventLoop]]:
    """
    The event loops measured: the default one, and uvloop when installed.
    """
    found: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {
        "asyncio": asyncio.new_event_loop
    }
    if uvloop is not None:
        found["uvloop"] = uvloop.new_event_loop
    return found


def measure(
    loop_factory: Callable[[], asyncio.AbstractEventLoop],
    kind: str,
    url: str,
    n: int,
    server_pids: list[int],
) -> dict[str, float]:
    """
    One timed run of one client kind on a fresh event loop.
    """
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        servers_before = sum(cpu_seconds(p) for p in server_pids)
        cpu_before, started = time.process_time(), time.perf_counter()
        ok = runner.run(KINDS[kind](url, n))
        seconds = time.perf_counter() - started
        cpu = time.process_time() - cpu_before
        servers = sum(cpu_seconds(p) for p in server_pids) - servers_before
    if ok != n:
        raise AssertionError(f"{kind}: {ok} of {n} triggers succeeded")
    return {
        "rps": n / seconds,
        "cpu_us": cpu / n * 1e6,
        "server_cpu_share": servers / seconds,
    }


def spread(values: list[float]) -> dict[str, float]:
    return {
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
    }


def bench_throughput(
    n: int, rounds: int, servers: int, httpx_share: float = 0.1
) -> dict[str, dict[str, dict[str, float]]]:
    """
    Run the interleaved rounds; return per loop the spreads of every figure.
    """
    sizes = {
        "sdk": n,
        "aiohttp": n,
        "httpx": max(100, int(n * httpx_share)),
        "sdk_journal": n,
        "sdk_otel": n,
        "sdk_no_otel": n,
    }
    kinds = list(KINDS)
    factories = loops()
    samples: dict[str, dict[str, list[float]]] = {name: {} for name in factories}
    with trigger_servers(servers) as (url, pids):
        for factory in factories.values():  # warm-up, not counted
            for kind in kinds:
                measure(factory, kind, url, min(500, sizes[kind]), pids)
        for r in range(rounds):
            for name, factory in factories.items():
                order = kinds[r % len(kinds) :] + kinds[: r % len(kinds)]
                got = {k: measure(factory, k, url, sizes[k], pids) for k in order}
                s = samples[name]
                for k, m in got.items():
                    s.setdefault(f"{k}_rps", []).append(m["rps"])
                    s.setdefault(f"{k}_cpu_us", []).append(m["cpu_us"])
                    s.setdefault(f"{k}_server_cpu", []).append(m["server_cpu_share"])
                s.setdefault("sdk_vs_aiohttp", []).append(
                    got["sdk"]["rps"] / got["aiohttp"]["rps"]
                )
                s.setdefault("sdk_vs_httpx", []).append(
                    got["sdk"]["rps"] / got["httpx"]["rps"]
                )
                s.setdefault("cpu_sdk_vs_aiohttp", []).append(
                    got["aiohttp"]["cpu_us"] / got["sdk"]["cpu_us"]
                )
                s.setdefault("journal_vs_sdk", []).append(
                    got["sdk_journal"]["rps"] / got["sdk"]["rps"]
                )
                s.setdefault("journal_us_per_item", []).append(
                    got["sdk_journal"]["cpu_us"] - got["sdk"]["cpu_us"]
                )
                s.setdefault("otel_vs_sdk", []).append(
                    got["sdk_otel"]["rps"] / got["sdk"]["rps"]
                )
                s.setdefault("noop_otel_vs_absent", []).append(
                    got["sdk"]["rps"] / got["sdk_no_otel"]["rps"]
                )
    result = {
        name: {key: spread(values) for key, values in s.items()}
        for name, s in samples.items()
    }
    for name, figures in result.items():
        print(
            f"1. throughput ({name}, {servers} servers, {rounds} rounds): "
            + ", ".join(
                f"{k} {figures[f'{k}_rps']['median']:.0f} req/s "
                f"({figures[f'{k}_cpu_us']['median']:.0f} us CPU/req)"
                for k in kinds
            )
            + f"; sdk/aiohttp {_range(figures['sdk_vs_aiohttp'])}, "
            f"sdk/httpx {_range(figures['sdk_vs_httpx'], 1)}, "
            f"servers busy {figures['sdk_server_cpu']['median']:.2f} cores in sdk runs"
        )
    return result


def _range(s: dict[str, float], digits: int = 2) -> str:
    return f"{s['median']:.{digits}f}x ({s['min']:.{digits}f}-{s['max']:.{digits}f})"
