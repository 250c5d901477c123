"""
``executions list|get|wait``.

Owns the command's options and its handler, and how a finished execution
is printed and exits (``rules trigger --wait`` prints it the same way).
``list --limit N`` asks for pages of at most N items and stops at N.
"""

from __future__ import annotations

import argparse
import json

import sequence_async as sq

from ._base import (
    EXIT_FAILURE,
    EXIT_OK,
    Subcommands,
    UsageError,
    add_coordination,
    first,
    make_client,
    page_size,
    positive_float,
    positive_int,
)
from ._output import Output


def register(commands: Subcommands, common: argparse.ArgumentParser) -> None:
    """
    Add ``executions`` and its actions.
    """
    executions = commands.add_parser(
        "executions", parents=[common], help="list, get or wait for executions"
    )
    actions = executions.add_subparsers(dest="action", required=True)
    listing = actions.add_parser("list", parents=[common], help="a rule's executions")
    listing.add_argument("--rule-id", required=True)
    listing.add_argument(
        "--status", choices=["in_progress", "executed", "partial", "failed"]
    )
    listing.add_argument(
        "--limit", type=positive_int, default=20, help="show at most N (20)"
    )
    getting = actions.add_parser("get", parents=[common], help="get one execution")
    getting.add_argument("id")
    getting.add_argument("--rule-id", help="the execution's rule (platform-v1)")
    waiting = actions.add_parser(
        "wait", parents=[common], help="wait until an execution ends"
    )
    waiting.add_argument("id", help="execution id, or a resume token")
    waiting.add_argument("--rule-id", help="the execution's rule (platform-v1)")
    waiting.add_argument(
        "--timeout",
        type=positive_float,
        default=300.0,
        metavar="S",
        help="seconds the wait may take (default 300)",
    )
    add_coordination(waiting)
    executions.set_defaults(run=executions_command)


async def executions_command(args: argparse.Namespace, out: Output) -> int:
    """
    List a rule's executions, get one, or wait for one (by id or token).
    """
    if args.action == "wait" and args.api is None:
        args.api = _api_of(args.id)  # a token knows its API: resume there
    async with make_client(args) as client:
        if args.action == "list":
            executions = client.rule_executions.list(
                rule_id=args.rule_id,
                status=args.status,
                page_size=page_size(args.limit),
            )
            out.table(
                await first(executions, args.limit),
                ["id", "rule_id", "status", "created_at"],
                "Rule executions",
            )
            return EXIT_OK
        if args.action == "get":
            out.data(await client.rule_executions.get(args.id, rule_id=args.rule_id))
            return EXIT_OK
        handle = await _handle(client, args.id, args.rule_id)
        return print_finished(
            out, await handle.wait(args.timeout, raise_on_failure=False)
        )


def print_finished(out: Output, result: sq.RuleExecution) -> int:
    """
    Print a finished execution; exit 1 if it failed.
    """
    out.data(result)
    return EXIT_FAILURE if result.status == sq.ExecutionStatus.FAILED else EXIT_OK


async def _handle(
    client: sq.SequenceClient, id_or_token: str, rule_id: str | None
) -> sq.Execution:
    if "{" not in id_or_token:  # (no id has a brace: a broken token is refused)
        return await client.execution_from_id(id_or_token, rule_id=rule_id)
    try:
        return client.execution_from_token(id_or_token)
    except ValueError as exc:
        raise UsageError(f"not a resume token: {exc}") from None


def _api_of(id_or_token: str) -> str | None:
    # The API a resume token names, if it is one that names a known API.
    try:
        api = json.loads(id_or_token).get("api")
    except (ValueError, AttributeError, RecursionError):
        return None
    return api if api in ("api-v1", "platform-v1") else None
