"""
``journal show FILE``: what a crash-safe bulk run's journal holds.

Owns the command and its options: counts by state, each item that needs a
person (``needs_review``, ``unknown``, ``rejected``), and the run's age. It
only reads the file, so it works while a run holds it.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import sequence_async as sq

from ._base import EXIT_OK, Subcommands, UsageError
from ._output import Output, text


def register(commands: Subcommands, common: argparse.ArgumentParser) -> None:
    """
    Add ``journal show``.
    """
    journal = commands.add_parser(
        "journal", parents=[common], help="read a bulk run's journal"
    )
    actions = journal.add_subparsers(dest="action", required=True, metavar="ACTION")
    show = actions.add_parser(
        "show", parents=[common], help="counts, items that need a person, age"
    )
    show.add_argument("file", metavar="FILE")
    show.set_defaults(run=show_journal)


async def show_journal(args: argparse.Namespace, out: Output) -> int:
    """
    Print the journal's counts by state, the items for a person, its age.
    """
    try:
        summary = sq.read_journal(args.file)
    except sq.JournalError as exc:  # no such file, or not a journal: bad input
        raise UsageError(str(exc)) from exc
    age = summary.age(time.time())
    attention = [_item(entry) for entry in summary.needs_attention]
    if out.as_json:
        out.json(
            {
                "path": summary.path,
                "run_id": summary.run_id,
                "age_seconds": round(age, 3),
                "counts": summary.counts,
                "never_sent": summary.never_sent,
                "items": sum(summary.counts.values()),
                "needs_attention": attention,
            }
        )
        return EXIT_OK
    out.pairs(
        [
            ("journal", text(summary.path)),
            ("run id", summary.run_id),
            ("age", _age(age)),
            ("items", str(sum(summary.counts.values()))),
            *((state, _count(summary, state)) for state in sorted(summary.counts)),
        ]
    )
    if attention:
        # One line per item, never cut nor folded: the key is what is needed.
        columns = ("position", "state", "rule_id", "idempotency_key", "error")
        out.line(f"\nNeeds a person ({', '.join(columns)}):")
        for item in attention:
            out.line("  " + "  ".join(text(item[column]) for column in columns))
    return EXIT_OK


def _count(summary: sq.JournalSummary, state: str) -> str:
    # A state's count; the failed items never sent are told apart (a run
    # stopped early leaves its intents written ahead so): a resume sends them.
    count = str(summary.counts[state])
    if state == "failed" and summary.never_sent:
        return f"{count} ({summary.never_sent} never sent: a resume sends them)"
    return count


def _item(entry: sq.JournalEntry) -> dict[str, Any]:
    return {
        "position": entry.position,
        "state": str(entry.state),
        "rule_id": entry.rule_id,
        "amount": entry.amount,
        "idempotency_key": entry.idempotency_key,
        "sent_at": entry.sent_at,
        "error": entry.error_message,
    }


def _age(seconds: float) -> str:
    hours, rest = divmod(int(max(0.0, seconds)), 3600)
    return f"{hours}h {rest // 60:02d}m"
