"""
The ``sequence-async`` command line (also ``python -m sequence_async``).

Owns argument parsing, output (tables, or ``--json``), the live progress bar
and summary of bulk runs, one-line errors and exit codes: 0 ok, 1 an API or
execution failure, 2 a usage error. The key comes from ``SEQUENCE_API_KEY``,
never from the command line (shell history). Uses only the public API and
the fake server; rich (the ``cli`` extra) draws the progress and tables.

May import: ``sequence_async`` (public API), ``sequence_async.testing``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import enum
import json
import os
import signal
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable, Sequence
from datetime import datetime
from typing import Any, TypeVar

import attrs

import sequence_async as sq
from sequence_async import testing


EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2
T = TypeVar("T")


class UsageError(Exception):
    """
    A mistake in how the command was called (exit code 2).
    """


def _jsonable(value: Any) -> Any:
    if attrs.has(type(value)):
        return {k: _jsonable(v) for k, v in attrs.asdict(value, recurse=False).items()}
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, enum.Enum):
        return value.value
    return value


class Output:
    """
    Where results go: rich tables for people, JSON lines for programs.
    """

    def __init__(self, *, as_json: bool) -> None:
        self.as_json = as_json
        self._console: Any = None

    @property
    def console(self) -> Any:
        """
        The rich console (stdout).
        """
        if self._console is None:
            self._console = _rich().console.Console()
        return self._console

    def data(self, value: Any) -> None:
        """
        Print one result.
        """
        if self.as_json:
            print(json.dumps(_jsonable(value), separators=(",", ":")))
        else:
            self.console.print(_jsonable(value))

    def table(self, rows: Sequence[Any], columns: Sequence[str], title: str) -> None:
        """
        Print rows as a table (or one JSON array).
        """
        if self.as_json:
            print(json.dumps([_jsonable(r) for r in rows], separators=(",", ":")))
            return
        table = _rich().table.Table(title=title)
        for column in columns:
            table.add_column(column)
        for row in rows:
            data = _jsonable(row)
            table.add_row(*(_cell(data.get(c)) for c in columns))
        self.console.print(table)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, dict):
        return str(value.get("name") or value.get("id") or value)
    return str(value)


def _rich() -> Any:
    try:
        import rich.console  # noqa: PLC0415
        import rich.progress  # noqa: PLC0415
        import rich.table  # noqa: PLC0415
    except ImportError:
        raise UsageError(
            "the command line needs the cli extra: pip install 'sequence-async[cli]'"
        ) from None
    return rich


# -- bulk runs -----------------------------------------------------------


@attrs.define
class Summary:
    """
    What a bulk run came to.
    """

    total: int = 0
    statuses: Counter[str] = attrs.Factory(Counter)
    seconds: float = 0.0

    @property
    def ok(self) -> int:
        """
        Items that succeeded.
        """
        return (
            self.statuses["executed"]
            + self.statuses["partial"]
            + self.statuses["triggered"]
        )


async def run_bulk(
    client: sq.SequenceClient,
    requests: Sequence[sq.TriggerRequest],
    *,
    out: Output,
    concurrency: int,
    wait: bool,
    timeout: float | None,
    max_failures: int | None,
) -> Summary:
    """
    Trigger *requests* with a live progress bar; return the summary.
    """
    summary = Summary(total=len(requests))
    started = time.monotonic()
    rich = None if out.as_json else _rich()
    progress = None
    if rich is not None:
        progress = rich.progress.Progress(
            rich.progress.SpinnerColumn(),
            rich.progress.TextColumn("[bold]{task.description}"),
            rich.progress.BarColumn(),
            rich.progress.MofNCompleteColumn(),
            rich.progress.TextColumn(
                "[green]{task.fields[ok]} ok[/] [red]{task.fields[failed]} failed[/] "
                "[cyan]{task.fields[flight]} in flight[/] {task.fields[rate]}/s"
            ),
            rich.progress.TimeElapsedColumn(),
            console=out.console,
        )
    task_id: Any = None

    def on_progress(p: sq.BulkProgress) -> None:
        if progress is not None and task_id is not None:
            progress.update(
                task_id,
                completed=p.finished,
                ok=p.succeeded,
                failed=p.failed + p.not_started,
                flight=p.started - p.succeeded - p.failed,
                rate=f"{p.finished / p.elapsed:.0f}" if p.elapsed > 0 else "0",
            )

    with progress if progress is not None else contextlib.nullcontext():
        if progress is not None:
            task_id = progress.add_task(
                "triggering" if not wait else "trigger + wait",
                total=len(requests),
                ok=0,
                failed=0,
                flight=0,
                rate="0",
            )
        async with client.trigger_many(
            requests,
            concurrency=concurrency,
            wait=wait,
            timeout=timeout,
            max_failures=max_failures,
            on_progress=on_progress,
        ) as run:
            async for outcome in run:
                key = _outcome_key(outcome)
                summary.statuses[key] += 1
                if out.as_json:
                    out.data(
                        {
                            "index": outcome.index,
                            "rule_id": outcome.request.rule_id,
                            "execution_id": outcome.execution.id
                            if outcome.execution
                            else None,
                            "status": key,
                            "error": str(outcome.error) if outcome.error else None,
                        }
                    )
    summary.seconds = time.monotonic() - started
    return summary


def _outcome_key(outcome: sq.TriggerOutcome) -> str:
    if outcome.result is not None:
        return str(outcome.result.status)
    if outcome.error is not None:
        return type(outcome.error).__name__
    return "triggered"


def print_summary(
    out: Output, summary: Summary, extra: dict[str, str] | None = None
) -> None:
    """
    Print the summary table of a bulk run.
    """
    rows = {
        **{name: str(count) for name, count in sorted(summary.statuses.items())},
        "total": str(summary.total),
        "seconds": f"{summary.seconds:.2f}",
        "per second": f"{summary.total / summary.seconds:.0f}"
        if summary.seconds
        else "-",
        **(extra or {}),
    }
    if out.as_json:
        print(json.dumps({"summary": rows}))
        return
    table = _rich().table.Table(title="Summary")
    table.add_column("outcome")
    table.add_column("count", justify="right")
    for name, value in rows.items():
        table.add_row(name, value)
    out.console.print(table)


# -- commands ------------------------------------------------------------


def _client(args: argparse.Namespace) -> sq.SequenceClient:
    if not os.environ.get("SEQUENCE_API_KEY"):
        raise UsageError("set SEQUENCE_API_KEY to your API key")
    return sq.SequenceClient(base_url=args.base_url)


async def cmd_demo(args: argparse.Namespace, out: Output) -> int:
    """Bulk trigger-and-wait against the fake server, in-process."""
    seed = testing.demo_seed(
        rules=args.rules, failure_rate=args.failure_rate, median=args.median
    )
    async with testing.serve(seed, rng_seed=args.rng_seed, record=False) as server:
        if not out.as_json:
            out.console.print(
                f"[bold]sequence-async demo[/]: fake Sequence API at {server.url}; "
                f"{args.count} executions of {args.rules} rules, "
                f"concurrency {args.concurrency}"
            )
        rule_ids = list(server.state.rules)
        requests = [
            sq.TriggerRequest(rule_ids[n % len(rule_ids)]) for n in range(args.count)
        ]
        async with sq.SequenceClient(server.api_key, base_url=server.url) as client:
            summary = await run_bulk(
                client,
                requests,
                out=out,
                concurrency=args.concurrency,
                wait=True,
                timeout=args.timeout,
                max_failures=None,
            )
        http = sum(server.counts.values())
        print_summary(
            out,
            summary,
            {
                "HTTP requests": str(http),
                "requests per execution": f"{http / max(1, summary.total):.2f}",
            },
        )
    return EXIT_OK


async def cmd_serve(args: argparse.Namespace, out: Output) -> int:
    """Run the fake server until interrupted."""
    seed = testing.Seed.load(args.seed) if args.seed else testing.demo_seed()
    async with testing.serve(
        seed,
        host=args.host,
        port=args.port,
        rng_seed=args.rng_seed,
        rate_limit=args.rate_limit,
        record=False,
        visibility_delay=args.visibility_delay / 1000,
    ) as server:
        if args.latency or args.error_rate:
            server.set_faults(
                "*", latency=args.latency / 1000, error_rate=args.error_rate
            )
        if args.median is not None:
            state = server.state
            state.default_behavior = testing.Behavior(median=args.median)
            state.behaviors = dict.fromkeys(state.rules, state.default_behavior)
        info = {"url": server.url, "api_key": server.api_key}
        if out.as_json:
            print(json.dumps(info), flush=True)
        else:
            print(f"Fake Sequence API listening on {server.url}", flush=True)
            print(
                f"export SEQUENCE_BASE_URL={server.url} "
                f"SEQUENCE_API_KEY={server.api_key}",
                flush=True,
            )
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
    return EXIT_OK


async def cmd_accounts(args: argparse.Namespace, out: Output) -> int:
    """Accounts list|get."""
    async with _client(args) as client:
        if args.action == "get":
            out.data(await client.accounts.get(args.id))
        else:
            rows = await client.accounts.list(type=args.type)
            out.table(rows, ["id", "name", "type", "institution_name"], "Accounts")
    return EXIT_OK


async def cmd_rules(args: argparse.Namespace, out: Output) -> int:
    """Rules list|get|trigger."""
    async with _client(args) as client:
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
        execution = await client.rules.trigger(
            args.id,
            manual_execute_amount=args.amount,
            idempotency_key=args.idempotency_key,
        )
        if not args.wait:
            out.data(
                {
                    "execution_id": execution.id,
                    "idempotency_key": execution.idempotency_key,
                    "token": execution.to_token(),
                }
            )
            return EXIT_OK
        return _finished(
            out, await execution.wait(args.timeout, raise_on_failure=False)
        )


async def cmd_executions(args: argparse.Namespace, out: Output) -> int:
    """Executions list|get|wait."""
    async with _client(args) as client:
        if args.action == "list":
            rows = await _first(
                aiter(
                    client.rule_executions.list(
                        rule_id=args.rule_id, status=args.status
                    )
                ),
                args.limit,
            )
            out.table(
                rows, ["id", "rule_id", "status", "created_at"], "Rule executions"
            )
            return EXIT_OK
        if args.action == "get":
            out.data(await client.rule_executions.get(args.id))
            return EXIT_OK
        handle = await _handle(client, args.id)
        return _finished(out, await handle.wait(args.timeout, raise_on_failure=False))


async def _handle(client: sq.SequenceClient, id_or_token: str) -> sq.Execution:
    if not id_or_token.lstrip().startswith("{"):
        return await client.execution_from_id(id_or_token)
    try:
        return client.execution_from_token(id_or_token)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


async def _first(items: AsyncIterator[T], limit: int) -> list[T]:
    rows: list[T] = []
    async for item in items:
        rows.append(item)
        if len(rows) >= limit:
            break
    return rows


def _finished(out: Output, result: sq.RuleExecution) -> int:
    out.data(result)
    return EXIT_FAILURE if result.status == sq.ExecutionStatus.FAILED else EXIT_OK


async def cmd_transfers(args: argparse.Namespace, out: Output) -> int:
    """Transfers list|get|create."""
    async with _client(args) as client:
        if args.action == "list":
            rows = await _first(
                aiter(
                    client.transfers.list(
                        account_id=args.account_id, status=args.status
                    )
                ),
                args.limit,
            )
            out.table(
                rows,
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
            out.data(
                await client.transfers.create(
                    source_account_id=args.source,
                    destination_account_id=args.destination,
                    amount_in_cents=args.amount,
                    description=args.description,
                    idempotency_key=args.idempotency_key,
                )
            )
    return EXIT_OK


async def cmd_trigger_many(args: argparse.Namespace, out: Output) -> int:
    """trigger-many RULE_ID... (or - for ids on stdin)."""
    ids = _rule_ids(args.rule_ids)
    requests = [
        sq.TriggerRequest(rule_id, manual_execute_amount=args.amount)
        for rule_id in ids
        for _ in range(args.repeat)
    ]
    if not requests:
        raise UsageError("no rule ids given")
    async with _client(args) as client:
        summary = await run_bulk(
            client,
            requests,
            out=out,
            concurrency=args.concurrency,
            wait=not args.no_wait,
            timeout=args.timeout,
            max_failures=args.max_failures,
        )
    print_summary(out, summary)
    return EXIT_OK if summary.ok == summary.total else EXIT_FAILURE


def _rule_ids(values: Iterable[str]) -> list[str]:
    ids: list[str] = []
    for value in values:
        if value == "-":
            ids += [line.strip() for line in sys.stdin if line.strip()]
        else:
            ids.append(value)
    return ids


# -- parsing -------------------------------------------------------------


def _positive(kind: Callable[[str], Any]) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        value = kind(text)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be positive: {text}")
        return value

    return parse


def _global_options(*, suppress: bool) -> argparse.ArgumentParser:
    """
    The options every command takes, before or after the command name.
    """
    unset: object = argparse.SUPPRESS if suppress else False
    no_url: object = argparse.SUPPRESS if suppress else None
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--json",
        action="store_true",
        default=unset,
        help="machine-readable output",
    )
    common.add_argument(
        "--base-url",
        default=no_url,
        help="API base URL (default SEQUENCE_BASE_URL, else production)",
    )
    common.add_argument(
        "--debug",
        action="store_true",
        default=unset,
        help="tracebacks and DEBUG logs",
    )
    return common


def build_parser() -> argparse.ArgumentParser:
    """
    The argument parser of every command.
    """
    parser = argparse.ArgumentParser(
        prog="sequence-async",
        description="The Sequence money-automation API from the shell.",
        parents=[_global_options(suppress=False)],
    )
    # Written after a command, a global option is parsed by that command's
    # subparser. Its default must not overwrite the value given before the
    # command, so the subparsers' copies default to SUPPRESS (no attribute).
    common = _global_options(suppress=True)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = commands.add_parser(
        "demo",
        parents=[common],
        help="bulk trigger-and-wait against the embedded fake server",
    )
    demo.add_argument(
        "--count", type=_positive(int), default=300, help="executions to run (300)"
    )
    demo.add_argument(
        "--rules",
        type=_positive(int),
        default=10,
        help="rules to spread them over (10)",
    )
    demo.add_argument("--concurrency", type=_positive(int), default=16)
    demo.add_argument(
        "--median",
        type=_positive(float),
        default=1.5,
        help="median execution seconds (1.5)",
    )
    demo.add_argument("--failure-rate", type=float, default=0.04)
    demo.add_argument("--timeout", type=_positive(float), default=120.0)
    demo.add_argument("--rng-seed", type=int, default=7)
    demo.set_defaults(run=cmd_demo)

    serve = commands.add_parser(
        "serve", parents=[common], help="run the fake Sequence server"
    )
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8765)
    serve.add_argument(
        "--seed", metavar="FILE", help="seed JSON (default: the demo organization)"
    )
    serve.add_argument(
        "--rate-limit", type=_positive(int), help="requests per minute per key"
    )
    serve.add_argument(
        "--latency", type=float, default=0.0, metavar="MS", help="added latency"
    )
    serve.add_argument(
        "--error-rate", type=float, default=0.0, help="share of requests answered 500"
    )
    serve.add_argument("--visibility-delay", type=float, default=0.0, metavar="MS")
    serve.add_argument(
        "--median", type=float, metavar="S", help="median execution seconds, every rule"
    )
    serve.add_argument("--rng-seed", type=int, default=0)
    serve.set_defaults(run=cmd_serve)

    accounts = commands.add_parser(
        "accounts", parents=[common], help="list or get accounts"
    )
    acc = accounts.add_subparsers(dest="action", required=True)
    acc_list = acc.add_parser("list", parents=[common])
    acc_list.add_argument(
        "--type", choices=["income_source", "pod", "external_account"]
    )
    acc.add_parser("get", parents=[common]).add_argument("id")
    accounts.set_defaults(run=cmd_accounts)

    rules = commands.add_parser(
        "rules", parents=[common], help="list, get or trigger rules"
    )
    rl = rules.add_subparsers(dest="action", required=True)
    rl.add_parser("list", parents=[common]).add_argument("--source-id")
    rl.add_parser("get", parents=[common]).add_argument("id")
    trigger = rl.add_parser("trigger", parents=[common])
    trigger.add_argument("id")
    trigger.add_argument(
        "--amount",
        type=int,
        metavar="CENTS",
        help="manual_execute_amount (MANUAL rules)",
    )
    trigger.add_argument("--idempotency-key")
    trigger.add_argument(
        "--wait", action="store_true", help="wait until the execution ends"
    )
    trigger.add_argument("--timeout", type=_positive(float), default=300.0, metavar="S")
    rules.set_defaults(run=cmd_rules)

    executions = commands.add_parser(
        "executions", parents=[common], help="list, get or wait for executions"
    )
    ex = executions.add_subparsers(dest="action", required=True)
    ex_list = ex.add_parser("list", parents=[common])
    ex_list.add_argument("--rule-id", required=True)
    ex_list.add_argument(
        "--status", choices=["in_progress", "executed", "partial", "failed"]
    )
    ex_list.add_argument("--limit", type=_positive(int), default=20)
    ex.add_parser("get", parents=[common]).add_argument("id")
    ex_wait = ex.add_parser("wait", parents=[common])
    ex_wait.add_argument("id", help="execution id, or a resume token")
    ex_wait.add_argument("--timeout", type=_positive(float), default=300.0, metavar="S")
    executions.set_defaults(run=cmd_executions)

    transfers = commands.add_parser(
        "transfers", parents=[common], help="list, get or create transfers"
    )
    tr = transfers.add_subparsers(dest="action", required=True)
    tr_list = tr.add_parser("list", parents=[common])
    tr_list.add_argument("--account-id", required=True)
    tr_list.add_argument("--status")
    tr_list.add_argument("--limit", type=_positive(int), default=20)
    tr.add_parser("get", parents=[common]).add_argument("id")
    create = tr.add_parser("create", parents=[common])
    create.add_argument("--from", dest="source", required=True, metavar="ACCOUNT_ID")
    create.add_argument("--to", dest="destination", required=True, metavar="ACCOUNT_ID")
    create.add_argument("--amount", type=_positive(int), required=True, metavar="CENTS")
    create.add_argument("--description")
    create.add_argument("--idempotency-key")
    transfers.set_defaults(run=cmd_transfers)

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
        type=_positive(int),
        default=1,
        help="trigger each rule this many times",
    )
    many.add_argument("--amount", type=int, metavar="CENTS")
    many.add_argument("--concurrency", type=_positive(int), default=16)
    many.add_argument(
        "--no-wait", action="store_true", help="do not wait for the executions"
    )
    many.add_argument("--timeout", type=_positive(float), default=300.0, metavar="S")
    many.add_argument("--max-failures", type=_positive(int))
    many.set_defaults(run=cmd_trigger_many)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """
    Run the command line; return the exit code.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    out = Output(as_json=args.json)
    if args.debug:
        import logging  # noqa: PLC0415

        logging.basicConfig(level=logging.DEBUG)
        logging.getLogger("sequence_async.cli").debug(
            "command %s, base URL %s",
            args.command,
            args.base_url or os.environ.get("SEQUENCE_BASE_URL") or "(default)",
        )
    command: Callable[[argparse.Namespace, Output], Coroutine[Any, Any, int]] = args.run
    try:
        return asyncio.run(command(args, out))
    except UsageError as exc:
        print(f"sequence-async: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (sq.SequenceError, ValueError, TypeError) as exc:
        if args.debug:
            raise
        print(f"sequence-async: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        return 130
