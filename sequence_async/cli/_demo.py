"""
``demo``: bulk trigger-and-wait against the fake server, in-process.

Owns the command's options and its handler: it starts the fake server on a
free port, triggers ``--count`` executions over its rules with the progress
line, and prints the summary with the HTTP requests each execution took.
"""

from __future__ import annotations

import argparse
import os

import sequence_async as sq

from ._base import (
    EXIT_INTERRUPTED,
    EXIT_OK,
    MAX_DEMO_RULES,
    MAX_ITEMS,
    Subcommands,
    at_most,
    fraction,
    positive_float,
    positive_int,
)
from ._bulk import run_bulk
from ._output import Output
from ._progress import print_summary


def register(commands: Subcommands, common: argparse.ArgumentParser) -> None:
    """
    Add ``demo`` and its options.
    """
    demo = commands.add_parser(
        "demo",
        parents=[common],
        help="bulk trigger-and-wait against the embedded fake server",
    )
    demo.add_argument(
        "--count", type=at_most(MAX_ITEMS), default=300, help="executions to run (300)"
    )
    demo.add_argument(
        "--rules",
        type=at_most(MAX_DEMO_RULES),
        default=10,
        help="rules to spread them over (10)",
    )
    demo.add_argument(
        "--concurrency", type=positive_int, default=16, help="triggers in flight"
    )
    demo.add_argument(
        "--median",
        type=positive_float,
        default=1.5,
        help="median execution seconds (1.5)",
    )
    demo.add_argument(
        "--failure-rate",
        type=fraction,
        default=0.04,
        help="share of executions that fail, 0 to 1 (0.04)",
    )
    demo.add_argument(
        "--timeout",
        type=positive_float,
        default=120.0,
        metavar="S",
        help="seconds each wait may take (default 120)",
    )
    demo.add_argument(
        "--rng-seed", type=int, default=7, help="the server's draws (default 7)"
    )
    demo.set_defaults(run=demo_command, stops_itself=True)


async def demo_command(args: argparse.Namespace, out: Output) -> int:
    """
    Run the demo; exit 0 however the executions ended (they are made up).
    """
    # Imported here: the other commands need not load the server.
    from sequence_async import testing  # noqa: PLC0415

    seed = testing.demo_seed(
        rules=args.rules, failure_rate=args.failure_rate, median=args.median
    )
    api = args.api or os.environ.get("SEQUENCE_API") or "api-v1"
    async with testing.serve(
        seed, rng_seed=args.rng_seed, record=False, api=api
    ) as server:
        if not out.as_json:
            out.note(
                f"sequence-async demo: fake Sequence API at {server.url}; "
                f"{args.count} executions of {args.rules} rules, "
                f"concurrency {args.concurrency}"
            )
        rule_ids = server.rule_ids
        requests = [
            sq.TriggerRequest(rule_ids[n % len(rule_ids)]) for n in range(args.count)
        ]
        async with sq.SequenceClient(
            server.api_key, base_url=server.url, coordinator=False, api=api
        ) as client:
            summary = await run_bulk(
                client,
                requests,
                out=out,
                concurrency=args.concurrency,
                wait=True,
                timeout=args.timeout,
                max_failures=None,
                name_items=False,
            )
        http = sum(server.counts.values())
        summary.extra = {
            "http_requests": http,
            "requests_per_execution": round(http / max(1, summary.total), 2),
        }
    print_summary(out, summary)
    return EXIT_INTERRUPTED if summary.interrupted else EXIT_OK
