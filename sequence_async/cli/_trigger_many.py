"""
``trigger-many RULE_ID...``: trigger many rules with a progress line.

Owns the command's options and its handler; the run itself, Ctrl-C
included, is ``_bulk.run_bulk``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable, Iterator

import sequence_async as sq

from ._base import (
    EXIT_FAILURE,
    EXIT_INTERRUPTED,
    EXIT_OK,
    MAX_ITEMS,
    Subcommands,
    UsageError,
    add_coordination,
    at_most,
    cents,
    make_client,
    positive_float,
    positive_int,
)
from ._bulk import run_bulk
from ._output import Output
from ._progress import print_summary


_LONGEST_LINE = 1024  # a rule id (at most 255 characters) and room for spaces


def register(commands: Subcommands, common: argparse.ArgumentParser) -> None:
    """
    Add ``trigger-many`` and its options.
    """
    many = commands.add_parser(
        "trigger-many", parents=[common], help="trigger many rules with a progress bar"
    )
    many.add_argument(
        "rule_ids",
        nargs="+",
        metavar="RULE_ID",
        help="rule ids; - reads them from stdin",
    )
    many.add_argument(
        "--repeat",
        type=at_most(MAX_ITEMS),
        default=1,
        help="trigger each rule this many times",
    )
    many.add_argument("--amount", type=cents, metavar="CENTS")
    many.add_argument(
        "--concurrency",
        type=positive_int,
        default=16,
        help="triggers in flight (default 16)",
    )
    many.add_argument(
        "--no-wait", action="store_true", help="do not wait for the executions"
    )
    many.add_argument(
        "--timeout",
        type=positive_float,
        default=300.0,
        metavar="S",
        help="seconds each wait may take (default 300)",
    )
    many.add_argument(
        "--max-failures",
        type=positive_int,
        help="start no more items once this many have failed",
    )
    add_coordination(many)
    many.add_argument(
        "--journal",
        metavar="FILE",
        help="record every item in FILE (SQLite); the same command again resumes",
    )
    many.set_defaults(run=trigger_many, stops_itself=True)


async def trigger_many(args: argparse.Namespace, out: Output) -> int:
    """
    Trigger every rule given (``--repeat`` times), waiting unless ``--no-wait``.
    """
    ids = _rule_ids(args.rule_ids, most=MAX_ITEMS // args.repeat)
    if not ids:
        raise UsageError("no rule ids given")
    requests = [
        sq.TriggerRequest(rule_id, manual_execute_amount=args.amount)
        for rule_id in ids
        for _ in range(args.repeat)
    ]
    async with make_client(args) as client:
        summary = await run_bulk(
            client,
            requests,
            out=out,
            concurrency=args.concurrency,
            wait=not args.no_wait,
            timeout=args.timeout,
            max_failures=args.max_failures,
            journal=args.journal,
        )
    print_summary(out, summary)
    if summary.interrupted:
        return EXIT_INTERRUPTED
    return EXIT_OK if summary.ok else EXIT_FAILURE


def _rule_ids(values: Iterable[str], *, most: int) -> list[str]:
    # The ids given, stdin's lines for "-"; at most *most* of them, read no
    # further (an endless stdin ends here, not in the machine's memory).
    ids: list[str] = []
    for value in values:
        given: Iterable[str] = _stdin_ids() if value == "-" else (value,)
        for rule_id in given:
            if len(ids) == most:
                raise UsageError(
                    f"at most {MAX_ITEMS:,} items in one run (rule ids times "
                    "--repeat): split the input"
                )
            ids.append(rule_id)
    return ids


def _stdin_ids() -> Iterator[str]:
    # Stdin's lines, stripped, blank ones left out; a line longer than any
    # id (a stream with no newline) is refused, never read whole.
    while line := sys.stdin.readline(_LONGEST_LINE + 2):
        if len(line.rstrip("\r\n")) > _LONGEST_LINE:
            raise UsageError(
                f"a line of stdin is longer than {_LONGEST_LINE} characters: "
                "no rule id is"
            )
        if stripped := line.strip():
            yield stripped
