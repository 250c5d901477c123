"""
``rules list|get|trigger``.

Owns the command's options and its handler. ``trigger`` prints the
execution id, its idempotency key and its resume token whole (never
wrapped), or with ``--wait`` the finished execution.
"""

from __future__ import annotations

import argparse
import asyncio
import traceback

import sequence_async as sq

from ._base import (
    EXIT_FAILURE,
    EXIT_OK,
    Subcommands,
    add_coordination,
    cents,
    chosen_key,
    make_client,
    positive_float,
)
from ._bulk import print_in_flight
from ._executions import print_finished
from ._output import Output, printable


def register(commands: Subcommands, common: argparse.ArgumentParser) -> None:
    """
    Add ``rules`` and its actions.
    """
    rules = commands.add_parser(
        "rules", parents=[common], help="list, get or trigger rules"
    )
    actions = rules.add_subparsers(dest="action", required=True)
    listing = actions.add_parser("list", parents=[common], help="list rules")
    listing.add_argument("--source-id")
    actions.add_parser("get", parents=[common], help="get one rule").add_argument("id")
    trigger = actions.add_parser("trigger", parents=[common], help="trigger a rule")
    trigger.add_argument("id")
    trigger.add_argument(
        "--amount",
        type=cents,
        metavar="CENTS",
        help="manual_execute_amount (MANUAL rules)",
    )
    trigger.add_argument(
        "--idempotency-key",
        metavar="KEY",
        help="1 to 255 printable ASCII characters, no spaces (on platform-v1, "
        "1 to 36 of [A-Za-z0-9._:/|-]); the same key never moves money twice",
    )
    trigger.add_argument(
        "--wait", action="store_true", help="wait until the execution ends"
    )
    trigger.add_argument(
        "--timeout",
        type=positive_float,
        default=300.0,
        metavar="S",
        help="with --wait: seconds the wait may take (default 300)",
    )
    add_coordination(trigger)
    rules.set_defaults(run=rules_command)


async def rules_command(args: argparse.Namespace, out: Output) -> int:
    """
    List the rules, get one, or trigger one.
    """
    async with make_client(args) as client:
        if args.action == "list":
            out.table(
                await client.rules.list(source_id=args.source_id),
                ["id", "nickname", "status", "trigger_type"],
                "Rules",
            )
            return EXIT_OK
        if args.action == "get":
            out.data(await client.rules.get(args.id))
            return EXIT_OK
        return await _trigger(client, args, out)


async def _trigger(
    client: sq.SequenceClient, args: argparse.Namespace, out: Output
) -> int:
    key = chosen_key(args.idempotency_key)
    request = sq.TriggerRequest(
        args.id, manual_execute_amount=args.amount, idempotency_key=key
    )
    execution: sq.Execution | None = None
    try:
        execution = await client.rules.trigger(
            args.id, manual_execute_amount=args.amount, idempotency_key=key
        )
        if args.wait:
            return print_finished(
                out, await execution.wait(args.timeout, raise_on_failure=False)
            )
    except sq.WaitTimeoutError as exc:  # not finished: say how to wait again
        _print_started(out, exc.execution, problem="Not finished before --timeout")
        return EXIT_FAILURE
    except sq.SequenceError as exc:
        if execution is None:
            raise  # not triggered (or unknown: its error names the key)
        # Triggered, then the wait failed (a key that may trigger and not
        # read, a lost connection): never let it read as "not triggered".
        if args.debug:
            traceback.print_exception(exc)
        failed = printable(f"{type(exc).__name__}: {exc}")  # server text, escaped
        _print_started(
            out, execution, problem=f"Triggered, but the wait failed: {failed}"
        )
        return EXIT_FAILURE
    except asyncio.CancelledError:  # Ctrl-C: say how to find the execution again
        item = sq.InFlightItem(
            index=0, request=request, idempotency_key=key, execution=execution
        )
        print_in_flight(out, [item])
        raise
    _print_started(out, execution)
    return EXIT_OK


def _print_started(
    out: Output, execution: sq.Execution, *, problem: str | None = None
) -> None:
    # A started execution and how to wait on it (again, after *problem*).
    token = execution.to_token()
    shown = {
        "execution_id": execution.id,
        "rule_id": execution.rule_id,
        "idempotency_key": execution.idempotency_key,
        "token": token,
    }
    if problem is not None:
        shown["status"] = execution.status or "not seen yet"
        shown["problem"] = problem
    if out.as_json:
        out.json(shown)
        return
    if problem is not None:
        out.note(f"{shown.pop('problem')}; it goes on. To wait again:")
    out.pairs(
        [(name, value or "-") for name, value in shown.items()]
        + [("resume", out.command("executions", "wait", token))]
    )
