"""
A payout worker: pay a batch with ``trigger_many``, then settle the doubtful.

Every payout has a business id, and its idempotency key is made from it
(``payout-<id>``), so one payout can never be paid twice: not by a retry, not
by this worker sending it again, not by a later run.

1. The batch goes out with ``trigger_many``. With ``--journal FILE`` the run
   is journalled (a SQLite file): if the worker dies half-way, running the
   same command again resumes the batch and pays nothing twice.
2. A payout whose trigger ran out of retries on lost answers or server errors
   ends with ``OutcomeUnknownError``: it may or may not have started. The
   worker sends the same trigger again with the key the outcome carries
   (``outcome.idempotency_key``), never a new one: Sequence replays the first
   execution if the payout did start, and starts it if it did not.

Try it against the fake server::

    sequence-async serve --port 8799 &
    export SEQUENCE_BASE_URL=http://127.0.0.1:8799/api/v1
    export SEQUENCE_API_KEY=sk_demo_fake_sequence_key
    python examples/payout_worker.py                     # a built-in batch
    python examples/payout_worker.py payouts.csv --journal payouts.db

A CSV has a header and the columns ``payout_id,rule_id,amount_cents``. The
worker prints one line per payout and a summary, and exits 1 when a payout
is not paid. A line says:

- paid, or recovered (paid on a second send with the same key);
- failed: refused, or its execution ended failed;
- unknown: may or may not have started, even after the re-sends;
- pending: started and still running at ``--timeout``;
- started: started, but its end could not be seen (a key that may trigger
  and not read, a lost connection): look it up by its execution id, and never
  pay it again under another payout id.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import sys
from collections.abc import Sequence

from sequence_async import (
    ExecutionFailedError,
    OutcomeUnknownError,
    SequenceClient,
    SequenceError,
    TriggerOutcome,
    TriggerRequest,
    WaitTimeoutError,
)


# What the worker pays when no CSV is given: the MANUAL rules of the demo
# organization that `sequence-async serve` runs.
DEMO_BATCH = (
    ("p-1001", "rule_0001", 150_000),
    ("p-1002", "rule_0004", 42_50),
    ("p-1003", "rule_0007", 9_999),
)


def read_batch(path: str | None) -> list[TriggerRequest]:
    """
    The payouts to make, as ``TriggerRequest``s keyed by their business id.
    """
    if path is None:
        rows = [
            {"payout_id": p, "rule_id": r, "amount_cents": str(a)}
            for p, r, a in DEMO_BATCH
        ]
    else:
        with open(path, newline="", encoding="utf-8") as file:  # noqa: PTH123
            rows = list(csv.DictReader(file))
    return [
        TriggerRequest(
            row["rule_id"],
            manual_execute_amount=int(row["amount_cents"]),
            idempotency_key=f"payout-{row['payout_id']}",
        )
        for row in rows
    ]


async def settle(
    client: SequenceClient,
    request: TriggerRequest,
    key: str,
    *,
    attempts: int,
    timeout: float,
) -> str:
    """
    Send a payout whose outcome is unknown again, with the same key.

    Returns the line to print. Waits a little longer between attempts: an
    outage that ate the first answers may last a while.
    """
    for attempt in range(1, attempts + 1):
        try:
            result = await client.trigger_and_wait(
                request.rule_id,
                manual_execute_amount=request.manual_execute_amount,
                idempotency_key=key,  # the SAME key: never pays twice
                timeout=timeout,
                raise_on_failure=False,
            )
        except OutcomeUnknownError:
            if attempt < attempts:
                await asyncio.sleep(attempt)
            continue
        except WaitTimeoutError as exc:  # started, and still running
            return pending(key, exc)
        except SequenceError as exc:
            if exc.execution is not None:  # started; then the wait failed
                return started(key, exc.execution.id, exc)
            return f"failed {key}: {type(exc).__name__}: {exc}"  # refused
        verdict = "recovered" if result.status != "failed" else "failed"
        return f"{verdict} {key}: {result.status} {result.id}"
    return f"unknown {key}: still unknown; send again later with this key"


def pending(key: str | None, error: WaitTimeoutError) -> str:
    """
    The line for a payout started and not finished in time: not paid yet.
    """
    return f"pending {key}: {error.execution.id} still {error.last_status}"


def started(key: str | None, execution_id: str, error: Exception) -> str:
    """
    The line for a payout that started but whose end was not seen.

    It may well be paid: it must never be paid again under another key.
    """
    return (
        f"started {key}: {execution_id}, its end not seen "
        f"({type(error).__name__}: {error}); look it up, do not pay it again"
    )


def describe(outcome: TriggerOutcome) -> str:
    """
    One line for a payout that ended (paid or failed) or is still running.
    """
    key, error = outcome.idempotency_key, outcome.error
    if isinstance(error, WaitTimeoutError):
        return pending(key, error)
    if outcome.ok and outcome.result is not None:
        seen = " (from the journal)" if outcome.from_journal else ""
        return f"paid {key}: {outcome.result.status} {outcome.result.id}{seen}"
    if (
        error is not None
        and outcome.execution is not None
        and not isinstance(error, ExecutionFailedError)
    ):
        # Triggered, then the wait failed: a failed execution is the only
        # "failed" that an execution can end in.
        return started(key, outcome.execution.id, error)
    return f"failed {key}: {type(error).__name__}: {error}"


async def run(
    batch: Sequence[TriggerRequest],
    *,
    journal: str | None,
    concurrency: int,
    attempts: int,
    timeout: float,
) -> int:
    """
    Pay *batch*; print a line per payout and a summary; return the exit code.
    """
    lines: list[str] = []
    unknown: list[TriggerOutcome] = []
    # The key and the URL come from SEQUENCE_API_KEY and SEQUENCE_BASE_URL.
    async with SequenceClient() as client:
        async with client.trigger_many(
            batch, concurrency=concurrency, timeout=timeout, journal=journal
        ) as bulk:
            async for outcome in bulk:  # in the order they finish
                if isinstance(outcome.error, OutcomeUnknownError):
                    print(
                        f"unknown {outcome.idempotency_key}: sending again "
                        "with the same key",
                        flush=True,
                    )
                    unknown.append(outcome)
                else:
                    lines.append(describe(outcome))
        # Every item gets a key before it is sent, so an unknown outcome
        # always carries one; the error carries it too.
        settled = await asyncio.gather(
            *(
                settle(
                    client,
                    o.request,
                    str(o.idempotency_key),
                    attempts=attempts,
                    timeout=timeout,
                )
                for o in unknown
            )
        )
    lines.extend(settled)
    for line in sorted(lines, key=lambda line: line.split()[1]):
        print(line)
    paid = sum(line.startswith(("paid", "recovered")) for line in lines)
    failed = sum(line.startswith("failed") for line in lines)
    left = len(lines) - paid - failed
    # "unknown" counts the unknown, the pending and the started.
    print(f"summary: {paid} paid, {failed} failed, {left} unknown")
    return 0 if paid == len(lines) else 1


def main(argv: Sequence[str] | None = None) -> int:
    """
    Parse the command line and pay the batch.
    """
    parser = argparse.ArgumentParser(description="Pay a batch of payouts.")
    parser.add_argument(
        "payouts", nargs="?", help="CSV: payout_id,rule_id,amount_cents"
    )
    parser.add_argument("--journal", help="a SQLite file: resume a run that died")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument(
        "--attempts", type=int, default=3, help="re-sends of an unknown outcome"
    )
    parser.add_argument(
        "--timeout", type=float, default=300.0, help="seconds to wait per payout"
    )
    args = parser.parse_args(argv)
    return asyncio.run(
        run(
            read_batch(args.payouts),
            journal=args.journal,
            concurrency=args.concurrency,
            attempts=args.attempts,
            timeout=args.timeout,
        )
    )


if __name__ == "__main__":
    sys.exit(main())
