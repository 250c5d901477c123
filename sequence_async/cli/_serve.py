"""
``serve``: run the fake Sequence server until interrupted.

Owns the command's options and its handler. The server is steered only
through the public ``sequence_async.testing`` API. It prints its URL and
key (one JSON line with ``--json``) and stops on SIGINT or SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import os
import shlex
import signal
from pathlib import Path
from typing import TYPE_CHECKING

from ._base import (
    EXIT_OK,
    CommandError,
    Subcommands,
    UsageError,
    fraction,
    non_negative_float,
    port,
    positive_float,
    positive_int,
)
from ._output import Output


if TYPE_CHECKING:
    from sequence_async import testing


def register(commands: Subcommands, common: argparse.ArgumentParser) -> None:
    """
    Add ``serve`` and its options.
    """
    serve = commands.add_parser(
        "serve", parents=[common], help="run the fake Sequence server"
    )
    serve.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)"
    )
    serve.add_argument("--port", type=port, default=8765, help="0 for any free port")
    serve.add_argument(
        "--seed", metavar="FILE", help="seed JSON (default: the demo organization)"
    )
    serve.add_argument(
        "--rate-limit", type=positive_int, help="requests per minute per key"
    )
    serve.add_argument(
        "--latency",
        type=non_negative_float,
        default=0.0,
        metavar="MS",
        help="added latency",
    )
    serve.add_argument(
        "--error-rate",
        type=fraction,
        default=0.0,
        help="share of requests answered 500, 0 to 1",
    )
    serve.add_argument(
        "--visibility-delay", type=non_negative_float, default=0.0, metavar="MS"
    )
    serve.add_argument(
        "--median",
        type=positive_float,
        metavar="S",
        help="median execution seconds, every rule",
    )
    serve.add_argument(
        "--rng-seed", type=int, default=0, help="the server's draws (default 0)"
    )
    serve.set_defaults(run=serve_command)


async def serve_command(args: argparse.Namespace, out: Output) -> int:
    """
    Serve until SIGINT or SIGTERM.
    """
    # Imported here: the other commands need not load the server.
    from sequence_async import testing  # noqa: PLC0415

    seed = _load_seed(args.seed) if args.seed else testing.demo_seed()
    async with contextlib.AsyncExitStack() as stack:
        try:
            server = await stack.enter_async_context(
                testing.serve(
                    seed,
                    host=args.host,
                    port=args.port,
                    rng_seed=args.rng_seed,
                    rate_limit=args.rate_limit,
                    record=False,
                    api=args.api or os.environ.get("SEQUENCE_API") or "api-v1",
                    visibility_delay=args.visibility_delay / 1000,
                )
            )
        except OSError as exc:
            reason = (
                "the port is in use; pick another with --port (0: any free port)"
                if exc.errno == errno.EADDRINUSE
                else exc.strerror or str(exc)
            )
            raise CommandError(
                f"cannot listen on {args.host}:{args.port}: {reason}"
            ) from None
        if args.latency or args.error_rate:
            server.set_faults(
                "*", latency=args.latency / 1000, error_rate=args.error_rate
            )
        if args.median is not None:
            server.set_behavior("*", testing.Behavior(median=args.median))
        if out.as_json:
            out.json({"url": server.url, "api_key": server.api_key, "api": server.api})
        else:
            out.line(f"Fake Sequence API listening on {server.url}")
            out.line(  # (quoted: a seed's key is pasted into a shell)
                f"export SEQUENCE_BASE_URL={shlex.quote(server.url or '')} "
                f"SEQUENCE_API_KEY={shlex.quote(server.api_key)} "
                f"SEQUENCE_API={server.api}"
            )
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):  # Windows: Ctrl-C raises
                loop.add_signal_handler(signum, stop.set)
        await stop.wait()
    return EXIT_OK


def _load_seed(path: str) -> testing.Seed:
    from sequence_async import testing  # noqa: PLC0415

    try:
        seed = testing.Seed.load(path)
    except OSError as exc:
        raise UsageError(f"cannot read the seed {path}: {exc.strerror}") from None
    except (ValueError, TypeError, KeyError) as exc:
        raise UsageError(f"{Path(path).name} is not a seed file: {exc}") from None
    if not seed.keys:  # every request would be a 401, and the export line empty
        raise UsageError(f'{Path(path).name} has no API key (its "keys" are empty)')
    return seed
