"""
``transfers list|get|create``.

Owns the command's options and its handler.
"""

from __future__ import annotations

import argparse
import asyncio

import sequence_async as sq

from ._base import (
    EXIT_OK,
    Subcommands,
    chosen_key,
    first,
    make_client,
    page_size,
    positive_int,
)
from ._output import Output


def register(commands: Subcommands, common: argparse.ArgumentParser) -> None:
    """
    Add ``transfers`` and its actions.
    """
    transfers = commands.add_parser(
        "transfers", parents=[common], help="list, get or create transfers"
    )
    actions = transfers.add_subparsers(dest="action", required=True)
    listing = actions.add_parser(
        "list", parents=[common], help="an account's transfers"
    )
    listing.add_argument("--account-id", required=True)
    listing.add_argument("--status")
    listing.add_argument(
        "--limit", type=positive_int, default=20, help="show at most N (20)"
    )
    actions.add_parser("get", parents=[common], help="get one transfer").add_argument(
        "id"
    )
    create = actions.add_parser("create", parents=[common], help="move money")
    create.add_argument("--from", dest="source", required=True, metavar="ACCOUNT_ID")
    create.add_argument("--to", dest="destination", required=True, metavar="ACCOUNT_ID")
    create.add_argument("--amount", type=positive_int, required=True, metavar="CENTS")
    create.add_argument("--description")
    create.add_argument("--idempotency-key", metavar="KEY")
    transfers.set_defaults(run=transfers_command)


async def transfers_command(args: argparse.Namespace, out: Output) -> int:
    """
    List an account's transfers, get one, or create one.
    """
    async with make_client(args) as client:
        if args.action == "list":
            transfers = client.transfers.list(
                account_id=args.account_id,
                status=args.status,
                page_size=page_size(args.limit),
            )
            out.table(
                await first(transfers, args.limit),
                [
                    "id",
                    "amount_in_cents",
                    "status",
                    "source",
                    "destination",
                    "created_at",
                ],
                "Transfers",
            )
        elif args.action == "get":
            out.data(await client.transfers.get(args.id))
        else:
            out.data(await _create(client, args, out))
    return EXIT_OK


async def _create(
    client: sq.SequenceClient, args: argparse.Namespace, out: Output
) -> sq.Transfer:
    key = chosen_key(args.idempotency_key)
    try:
        return await client.transfers.create(
            source_account_id=args.source,
            destination_account_id=args.destination,
            amount_in_cents=args.amount,
            description=args.description,
            idempotency_key=key,
        )
    except asyncio.CancelledError:  # Ctrl-C: the transfer may have been made
        again = out.command(
            "transfers",
            "create",
            "--from",
            args.source,
            "--to",
            args.destination,
            "--amount",
            str(args.amount),
            *(
                ["--description", args.description]
                if args.description is not None
                else []
            ),
            "--idempotency-key",
            key,
        )
        if out.as_json:
            out.json({"status": "in_flight", "idempotency_key": key, "retry": again})
        else:
            out.note(
                "Interrupted; the transfer may have been made. This finds it "
                "again (the same key moves the money at most once):"
            )
            out.line(again)
        raise
