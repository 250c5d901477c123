"""
Running a bulk trigger from the command line, Ctrl-C included.

Owns ``run_bulk``: it drives ``trigger_many`` with the progress line and,
with ``--json``, prints one JSON line per outcome as it comes. On SIGINT (or
SIGTERM) it stops at a known point: it takes the outcomes already finished,
stops the run, then lists every item still in flight with what finds it
again (the execution id and resume token once triggered, the idempotency key
while the trigger is in flight) and draws the progress line once; a second
signal waits for that. The caller prints the summary and exits 130.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import Callable, Sequence
from typing import Any

import sequence_async as sq

from ._output import Output
from ._progress import ProgressLine, Summary, show_progress


# Ctrl-C, and the stop a supervisor sends (systemd, Kubernetes, docker stop).
_STOPS = (signal.SIGINT, signal.SIGTERM)


async def run_bulk(
    client: sq.SequenceClient,
    requests: Sequence[sq.TriggerRequest],
    *,
    out: Output,
    concurrency: int,
    wait: bool,
    timeout: float | None,
    max_failures: int | None,
    journal: str | None = None,
) -> Summary:
    """
    Trigger *requests* with a live progress line; return the summary.

    ``summary.interrupted`` tells whether SIGINT or SIGTERM stopped the run.
    """
    summary = Summary(total=len(requests))
    started = time.monotonic()
    line = ProgressLine(out, len(requests), show=show_progress(out))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    with contextlib.suppress(NotImplementedError):  # Windows: KeyboardInterrupt
        for signum in _STOPS:
            loop.add_signal_handler(signum, stop.set)
    in_flight = None
    try:
        run = client.trigger_many(
            requests,
            concurrency=concurrency,
            wait=wait,
            timeout=timeout,
            max_failures=max_failures,
            on_progress=line.update,
            journal=journal,
        )
        async with run:
            in_flight = await _consume(
                run, line, stop, lambda o: _record(out, summary, o, stop)
            )
    finally:
        # Stopped, a second signal must not cut the list of items in flight
        # short: the handlers stay until the loop closes, after the summary.
        if not stop.is_set():
            with contextlib.suppress(NotImplementedError):
                for signum in _STOPS:
                    loop.remove_signal_handler(signum)
        line.stop()
    summary.seconds = time.monotonic() - started
    if in_flight is not None:
        summary.interrupted = True
        summary.in_flight = len(in_flight)
        print_in_flight(out, in_flight)
    return summary


async def _consume(
    run: sq.BulkRun,
    line: ProgressLine,
    stop: asyncio.Event,
    record: Callable[[sq.TriggerOutcome], None],
) -> list[sq.InFlightItem] | None:
    """
    Record every outcome; on *stop*, return what is still in flight.

    An outcome leaves ``in_flight()`` when it is queued for the consumer, so
    the run stops only once every queued outcome was taken: the progress
    counts say how many there are (``on_progress`` runs as each is queued).
    """
    delivered = 0
    stopping = asyncio.ensure_future(stop.wait())
    following: asyncio.Future[sq.TriggerOutcome] | None = None
    try:
        while True:
            following = asyncio.ensure_future(anext(run))
            await asyncio.wait(
                {following, stopping}, return_when=asyncio.FIRST_COMPLETED
            )
            queued = line.latest.finished if line.latest is not None else 0
            if not following.done() and delivered < queued:
                await asyncio.wait({following})
            if following.done():
                try:
                    outcome = following.result()
                except StopAsyncIteration:
                    return None
                record(outcome)
                delivered += 1
                continue
            break  # nothing queued: stop here
    finally:
        stopping.cancel()
        if following is not None and not following.done():
            following.cancel()  # the run stops all its work
            with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration):
                await following
    # Read once the run has stopped: a worker may start a trigger until then.
    return run.in_flight()


def status_of(outcome: sq.TriggerOutcome) -> str:
    """
    How an outcome ended, in one word.
    """
    if outcome.result is not None:
        return str(outcome.result.status)
    if isinstance(outcome.error, sq.NotStartedError):
        return "not_started"
    if outcome.error is not None:
        return type(outcome.error).__name__
    return "triggered"


def _record(
    out: Output, summary: Summary, outcome: sq.TriggerOutcome, stop: asyncio.Event
) -> None:
    status = status_of(outcome)
    summary.statuses[status] += 1
    if out.as_json:
        execution = outcome.execution
        out.json(
            {
                "index": outcome.index,
                "rule_id": outcome.request.rule_id,
                "status": status,
                "execution_id": execution.id if execution else None,
                "idempotency_key": outcome.idempotency_key,
                "error": str(outcome.error) if outcome.error else None,
                "from_journal": outcome.from_journal,
            }
        )
        if out.closed:  # the reader of stdout left: stop as on Ctrl-C
            stop.set()


def print_in_flight(out: Output, items: Sequence[sq.InFlightItem]) -> None:
    """
    Print what finds each item again: JSON lines, or one command per line.
    """
    if out.as_json:
        for item in items:
            out.json(_in_flight_data(item))
        return
    if not items:
        out.note("Interrupted; nothing was in flight.")
        return
    out.note(
        f"Interrupted; {len(items)} still in flight. Each line below finds one "
        "again (resume the wait, or trigger again with the same key: the "
        "money moves at most once):"
    )
    for item in items:
        out.line(_in_flight_line(out, item))


def _in_flight_data(item: sq.InFlightItem) -> dict[str, Any]:
    execution = item.execution
    return {
        "index": item.index,
        "rule_id": item.request.rule_id,
        "status": "in_flight",
        "execution_id": execution.id if execution else None,
        "token": execution.to_token() if execution else None,
        "idempotency_key": item.idempotency_key,
    }


def _in_flight_line(out: Output, item: sq.InFlightItem) -> str:
    if item.execution is not None:
        wait = out.command("executions", "wait", item.execution.to_token())
        return f"{item.execution.id}  {item.request.rule_id}  {wait}"
    amount = item.request.manual_execute_amount
    command = out.command(
        "rules",
        "trigger",
        item.request.rule_id,
        *(["--amount", str(amount)] if amount is not None else []),
        "--idempotency-key",
        item.idempotency_key,
    )
    return f"(triggering)  {item.request.rule_id}  {command}"
