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

from ._base import interrupt_on_sigterm
from ._output import Output, printable
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
    name_items: bool = True,
) -> Summary:
    """
    Trigger *requests* with a live progress line; return the summary.

    Without ``--json``, each item that did not succeed (and each execution
    not waited for) gets a line that finds it again, unless not *name_items*
    (the demo's failures are on purpose). ``summary.interrupted`` tells
    whether SIGINT or SIGTERM stopped the run.
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
                run,
                line,
                stop,
                lambda o: _record(out, summary, o, stop, line if name_items else None),
            )
    finally:
        # Stopped, a second signal must not cut the list of items in flight
        # short: the handlers stay until the loop closes, after the summary.
        if not stop.is_set():
            with contextlib.suppress(NotImplementedError):
                for signum in _STOPS:
                    loop.remove_signal_handler(signum)
            interrupt_on_sigterm()  # (removed, it would be the default: a kill)
        line.stop()
    summary.seconds = time.monotonic() - started
    if in_flight is not None:
        summary.interrupted = True
        summary.in_flight = len(in_flight)
        if name_items or out.as_json:
            print_in_flight(out, in_flight)
        else:  # the demo's: its server stops with it, nothing to find again
            out.note(
                f"Interrupted; {len(in_flight)} were in flight on the demo's own "
                "server, which stopped with it: nothing to find again."
            )
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
    out: Output,
    summary: Summary,
    outcome: sq.TriggerOutcome,
    stop: asyncio.Event,
    named: ProgressLine | None,
) -> None:
    # One outcome: counted, and printed (with --json, or where *named*).
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
    elif named is not None and (line := _outcome_line(out, outcome, status)):
        line = printable(line)  # (a server's error text may drive a terminal)
        if not named.above(line):
            out.line(line)
    if out.closed:  # the reader of stdout left: stop as on Ctrl-C
        stop.set()


def _outcome_line(out: Output, outcome: sq.TriggerOutcome, status: str) -> str | None:
    # An outcome for a person, as "execution rule status [the way back]"
    # ("-" for no execution): nothing for an execution that executed; its
    # wait for one not waited for or not ended; its key for a trigger that
    # may have run, or never started.
    execution, rule_id = outcome.execution, outcome.request.rule_id
    if execution is not None:
        if outcome.result is not None:  # ended: named unless it all went
            executed = outcome.result.status == sq.ExecutionStatus.EXECUTED
            return None if executed else f"{execution.id}  {rule_id}  {status}"
        return f"{execution.id}  {rule_id}  {status}  {_wait(out, execution)}"
    key = outcome.idempotency_key
    if key and isinstance(outcome.error, sq.OutcomeUnknownError | sq.NotStartedError):
        again = _trigger(out, outcome.request, key)
        return f"-  {rule_id}  {status}  {again}"
    return f"-  {rule_id}  {status}: {str(outcome.error)[:200]}"


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
        out.line(printable(_in_flight_line(out, item)))


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
        wait = _wait(out, item.execution)
        return f"{item.execution.id}  {item.request.rule_id}  {wait}"
    command = _trigger(out, item.request, item.idempotency_key)
    return f"(triggering)  {item.request.rule_id}  {command}"


def _wait(out: Output, execution: sq.Execution) -> str:
    # The command that waits on *execution* again, from its token.
    return out.command("executions", "wait", execution.to_token())


def _trigger(out: Output, request: sq.TriggerRequest, key: str) -> str:
    # The command that triggers *request* again with its key: at most once.
    amount = request.manual_execute_amount
    return out.command(
        "rules",
        "trigger",
        request.rule_id,
        *(["--amount", str(amount)] if amount is not None else []),
        "--idempotency-key",
        key,
    )
