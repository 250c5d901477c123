"""
One worker process of the scale-out tests: trigger, wait, report as JSON.

Run as ``python tests/redis_worker.py --redis URL --rules ...`` with
``SEQUENCE_API_KEY`` and ``SEQUENCE_BASE_URL`` set. It triggers ``--count``
executions spread over ``--rules`` and waits for each, through a client
coordinated on Redis. With ``--hold K`` it stops after K triggers (their waits
running), prints ``{"ready": ..., "token": ...}`` and goes on when a line
comes on stdin: the test's cue to kill something mid-run. At the end it
prints one JSON line: outcomes, every HTTP request's time and status (seen
through aiohttp's tracing, so every request counts, retries and polls
included), and the WARNINGs it logged.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import time
from types import SimpleNamespace
from typing import Any

import aiohttp

from sequence_async import PollPolicy, RetryPolicy, SequenceClient, errors
from sequence_async.redis import RedisCoordinator


class _Warnings(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def _say(data: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(data) + "\n")
    sys.stdout.flush()


async def main(args: argparse.Namespace) -> None:
    """Trigger and wait; report."""
    warnings = _Warnings()
    logging.getLogger("sequence_async").addHandler(warnings)
    requests: list[tuple[float, int]] = []

    async def on_start(_: Any, context: SimpleNamespace, __: Any) -> None:
        context.sent = time.time()

    async def on_end(_: Any, context: SimpleNamespace, params: Any) -> None:
        requests.append((context.sent, params.response.status))

    trace = aiohttp.TraceConfig()
    trace.on_request_start.append(on_start)
    trace.on_request_end.append(on_end)
    rules = args.rules.split(",")
    async with (
        aiohttp.ClientSession(trace_configs=[trace]) as session,
        SequenceClient(
            session=session,
            rate_limit=args.rate,
            rate_limit_burst=args.burst,
            # a 429 reaching this client is an error of the run, not retried
            retry=RetryPolicy(max_retries=args.retries),
            poll=None
            if args.default_poll
            else PollPolicy(wait_initial=0.5, wait_max=2.0, jitter=0.0),
            coordinator=None
            if args.alone
            else RedisCoordinator.from_url(
                args.redis, lease=args.lease, retry=0.5, timeout=5.0
            ),
        ) as client,
    ):
        share = client._requester.shared.poller._share  # type: ignore[union-attr]
        token = getattr(share, "_token", None)
        outcomes: list[str] = []

        async def wait(execution: Any) -> None:
            try:
                result = await execution.wait(timeout=args.timeout)
                outcomes.append(str(result.status))
            except errors.SequenceError as exc:
                outcomes.append(type(exc).__name__)

        async def trigger(n: int) -> asyncio.Task[None] | None:
            try:
                execution = await client.rules.trigger(rules[n % len(rules)])
            except errors.SequenceError as exc:
                outcomes.append(type(exc).__name__)
                return None
            return asyncio.create_task(wait(execution))

        hold = args.count if args.hold is None else args.hold
        waits = await asyncio.gather(*(trigger(n) for n in range(hold)))
        if args.hold is not None:
            _say({"ready": True, "token": token})
            await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
            waits += await asyncio.gather(
                *(trigger(n) for n in range(hold, args.count))
            )
        await asyncio.gather(*(w for w in waits if w is not None))
        finished = time.time()
    _say(
        {
            "outcomes": outcomes,
            "requests": requests,
            "warnings": warnings.messages,
            "finished": finished,
        }
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--redis", required=True)
    parser.add_argument("--rules", required=True)
    parser.add_argument("--count", type=int, default=100)
    parser.add_argument("--rate", type=float, default=600)
    parser.add_argument("--burst", type=float, default=None)
    parser.add_argument("--lease", type=float, default=1.0)
    parser.add_argument("--timeout", type=float, default=30.0)
    parser.add_argument("--retries", type=int, default=0)
    parser.add_argument("--hold", type=int, default=None)
    parser.add_argument("--default-poll", action="store_true")
    parser.add_argument("--alone", action="store_true", help="no coordinator")
    asyncio.run(main(parser.parse_args()))
