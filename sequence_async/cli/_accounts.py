"""
``accounts list|get``.

Owns the command's options and its handler.
"""

from __future__ import annotations

import argparse

from ._base import EXIT_OK, Subcommands, make_client
from ._output import Output


def register(commands: Subcommands, common: argparse.ArgumentParser) -> None:
    """
    Add ``accounts`` and its actions.
    """
    accounts = commands.add_parser(
        "accounts", parents=[common], help="list or get accounts"
    )
    actions = accounts.add_subparsers(dest="action", required=True)
    listing = actions.add_parser("list", parents=[common], help="list accounts")
    listing.add_argument("--type", choices=["income_source", "pod", "external_account"])
    actions.add_parser("get", parents=[common], help="get one account").add_argument(
        "id"
    )
    accounts.set_defaults(run=accounts_command)


async def accounts_command(args: argparse.Namespace, out: Output) -> int:
    """
    List the accounts (a table), or get one (key/value lines).
    """
    async with make_client(args) as client:
        if args.action == "get":
            out.data(await client.accounts.get(args.id))
        else:
            rows = await client.accounts.list(type=args.type)
            out.table(rows, ["id", "name", "type", "institution_name"], "Accounts")
    return EXIT_OK
