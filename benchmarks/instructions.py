"""
Benchmark 1b: client instructions per request, counted by callgrind.

Wall time and CPU time on a shared 2-core VM swing with whoever else runs;
the number of instructions the client executes per request does not. Each
client kind of benchmark 1 runs in its own process under
``valgrind --tool=callgrind`` against the same trigger servers, once with a
warm-up only and once with the warm-up and *n* triggers; the difference over
*n* is the kind's instructions per request (imports and set-up cancel out).
Only the client process is counted; the servers run natively.

Needs ``valgrind`` on PATH (skipped otherwise). Run alone:
``python benchmarks/instructions.py [-n 1000]``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import throughput


HERE = Path(__file__).resolve().parent
KINDS = ("aiohttp", "sdk", "sdk_no_otel")
WARM_UP = 200
VALGRIND = shutil.which("valgrind")


def available() -> bool:
    """
    Whether callgrind can run here.
    """
    return VALGRIND is not None


def _collected(url: str, kind: str, n: int) -> int:
    done = subprocess.run(
        [
            str(VALGRIND),
            "--tool=callgrind",
            "--callgrind-out-file=/dev/null",
            sys.executable,
            str(Path(__file__).resolve()),
            "--child",
            url,
            kind,
            str(n),
        ],
        capture_output=True,
        text=True,
        env=dict(os.environ, PYTHONHASHSEED="0"),
        check=True,
    )
    found = re.search(r"Collected : (\d+)", done.stderr)
    if found is None:
        raise RuntimeError(f"callgrind said nothing countable:\n{done.stderr[-800:]}")
    return int(found.group(1))


def bench_instructions(n: int, kinds: tuple[str, ...] = KINDS) -> dict[str, float]:
    """
    Instructions per request of each kind (thousands), two processes at once.

    (Every thread of the client counts: with ``sdk_journal``, its writer
    thread's too, though it runs beside the loop.)
    """
    with throughput.trigger_servers(2) as (url, _):
        runs = [(kind, count) for kind in kinds for count in (0, n)]
        with ThreadPoolExecutor(max_workers=2) as pool:
            totals = list(pool.map(lambda run: _collected(url, *run), runs))
    counted = dict(zip(runs, totals, strict=True))
    result = {kind: (counted[kind, n] - counted[kind, 0]) / n / 1000 for kind in kinds}
    print(
        f"1b. instructions per request (callgrind, n={n}): "
        + ", ".join(f"{kind} {k:.0f}k" for kind, k in result.items())
    )
    return result


def rows(result: dict[str, float] | None) -> list[str]:
    """
    Benchmark 1b's rows of the summary table.
    """
    if not result:
        return []
    raw, sdk, absent = result["aiohttp"], result["sdk"], result["sdk_no_otel"]
    ratio, noop = raw / sdk, absent / sdk

    def verdict(ok: bool) -> str:
        return "met" if ok else "**missed**"

    first = (
        "| 1b. client instructions per request (callgrind): raw aiohttp / SDK "
        f"| {ratio:.3f}x; {raw:.0f}k vs {sdk:.0f}k | >= 0.95x (#10), >= 0.90x "
        f"(design) | {verdict(ratio >= 0.95)} (0.95x), {verdict(ratio >= 0.90)} "
        "(0.90x) |"
    )
    second = (
        "| 1b. instructions: opentelemetry-api present, no SDK / absent "
        f"| {noop:.3f}x; {sdk:.0f}k vs {absent:.0f}k | >= 0.97x | "
        f"{verdict(noop >= 0.97)} |"
    )
    return [first, second]


def _child(url: str, kind: str, n: int) -> None:
    with asyncio.Runner() as runner:
        runner.run(throughput.KINDS[kind](url, WARM_UP))
        if n:
            runner.run(throughput.KINDS[kind](url, n))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("-n", type=int, default=1000)
    parser.add_argument(
        "--kinds",
        default=",".join(KINDS),
        help=f"comma-separated, of {', '.join(throughput.KINDS)}",
    )
    parser.add_argument("--child", nargs=3, metavar=("URL", "KIND", "N"))
    args = parser.parse_args()
    if args.child:
        url, kind, n = args.child
        _child(url, kind, int(n))
        return
    kinds = tuple(args.kinds.split(","))
    if unknown := set(kinds) - set(throughput.KINDS):
        parser.error(f"unknown kinds: {', '.join(sorted(unknown))}")
    bench_instructions(args.n, kinds)


if __name__ == "__main__":
    main()
