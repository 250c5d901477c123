"""
The ``sequence-async`` command line (also ``python -m sequence_async``).

Owns the parser's assembly, the global options and ``main``: how errors
become one line and an exit code (0 ok, 1 an API, execution or server
failure, 2 a usage error or bad local input, 130 interrupted). Each command
lives in its own module with its options beside its handler; ``_output``
renders results, ``_progress`` and ``_bulk`` run bulk triggers. The key
comes from ``SEQUENCE_API_KEY``, never from the command line (shell
history). Uses only the public API of ``sequence_async`` and
``sequence_async.testing``; rich (the ``cli`` extra) draws progress and
tables.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import re
import signal
import sys
import traceback
from collections.abc import Sequence
from typing import NoReturn

import sequence_async as sq

from . import (
    _accounts,
    _demo,
    _executions,
    _journal,
    _rules,
    _serve,
    _transfers,
    _trigger_many,
)
from ._base import (
    EXIT_FAILURE,
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    CommandError,
    Handler,
    UsageError,
    interrupt_on_sigterm,
    positive_float,
    retries,
    settle,
)
from ._output import Output, printable


__all__ = ["build_parser", "entry", "main"]

_COMMANDS = (
    _demo,
    _serve,
    _accounts,
    _rules,
    _executions,
    _transfers,
    _trigger_many,
    _journal,
)


def _global_options(*, suppress: bool) -> argparse.ArgumentParser:
    """
    The options every command takes, before or after the command name.
    """
    unset: object = argparse.SUPPRESS if suppress else False
    no_url: object = argparse.SUPPRESS if suppress else None
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--json", action="store_true", default=unset, help="machine-readable output"
    )
    common.add_argument(
        "--base-url",
        default=no_url,
        help="API base URL (default SEQUENCE_BASE_URL, else production)",
    )
    common.add_argument(
        "--debug", action="store_true", default=unset, help="tracebacks and DEBUG logs"
    )
    common.add_argument(
        "--request-timeout",
        type=positive_float,
        default=no_url,
        metavar="S",
        help="seconds each request may take (default 30)",
    )
    common.add_argument(
        "--max-retries",
        type=retries,
        default=no_url,
        metavar="N",
        help="retries of a failed request (default 3)",
    )
    common.add_argument(
        "--api",
        choices=["api-v1", "platform-v1"],
        default=no_url,
        help="which of Sequence's APIs the key belongs to (default SEQUENCE_API, "
        "else api-v1)",
    )
    return common


def build_parser() -> argparse.ArgumentParser:
    """
    The argument parser of every command.
    """
    parser = argparse.ArgumentParser(
        prog="sequence-async",
        description="The Sequence money-automation API from the shell.",
        epilog="The API key is read from SEQUENCE_API_KEY (never a flag: a flag "
        "would show it in the process list and the shell's history). "
        "'sequence-async COMMAND --help' tells each command's options.",
        parents=[_global_options(suppress=False)],
    )
    # Written after a command, a global option is parsed by that command's
    # subparser, whose defaults would overwrite the value given before the
    # command (and send to production). Its copies default to SUPPRESS: set
    # only when written.
    common = _global_options(suppress=True)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in _COMMANDS:
        command.register(commands, common)
    return parser


EXIT_BROKEN_PIPE = 141  # as a shell reports a process that SIGPIPE ended


def main(argv: Sequence[str] | None = None) -> int:
    """
    Run the command line; return the exit code.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    out = Output(as_json=args.json, program=_program(args))
    if args.debug:
        logging.basicConfig(level=logging.DEBUG)
        logging.getLogger("sequence_async.cli").debug(
            "command %s, base URL %s",
            args.command,
            re.sub(  # never a password in a base URL (refused, but logged first)
                r"//[^/]*@",
                "//***@",
                args.base_url or os.environ.get("SEQUENCE_BASE_URL") or "(default)",
            ),
        )
    command: Handler = args.run
    previous = signal.getsignal(signal.SIGTERM)
    try:
        interrupt_on_sigterm()
        try:
            code = asyncio.run(_run(command, args, out))
        finally:  # (a caller in this process gets its own handler back)
            with contextlib.suppress(ValueError, TypeError):
                signal.signal(signal.SIGTERM, previous)
    except UsageError as exc:
        return _fail(parser, args, exc, EXIT_USAGE, type_name=False)
    except CommandError as exc:
        return _fail(parser, args, exc, EXIT_FAILURE, type_name=False)
    except sq.JournalError as exc:  # a file that cannot be used: local input
        return _fail(parser, args, exc, EXIT_USAGE)
    except sq.SequenceError as exc:
        return _fail(parser, args, exc, EXIT_FAILURE)
    except (ValueError, TypeError) as exc:
        # The SDK checks every argument before sending: bad local input.
        return _fail(parser, args, exc, EXIT_USAGE)
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # a write to a closed stdout not made by Output
        out.stdout_gone()
        code = EXIT_BROKEN_PIPE
    if out.closed:
        # The reader of stdout went away (`| head`): what was left, and the
        # keys of anything stopped in flight, went to stderr.
        print("sequence-async: stdout was closed; stopped", file=sys.stderr)
        return EXIT_BROKEN_PIPE
    return code


def entry() -> NoReturn:
    """
    The ``sequence-async`` program: ``main()``, then exit with its code.

    Its output is all written by then: a stop that lands while the
    interpreter shuts down changes nothing (not a kill, signal 15).
    """
    interrupt_on_sigterm()  # (what main() finds, and puts back when done)
    try:
        code = main()
    except KeyboardInterrupt:  # a stop as main() returned
        code = EXIT_INTERRUPTED
    finally:
        settle()  # (and ignored: at exit, Python puts a handler's default back)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    sys.exit(code)


def _program(args: argparse.Namespace) -> list[str]:
    # How to run this program again against the same server and API.
    program = ["sequence-async"]
    if args.api:
        program += ["--api", args.api]
    if args.base_url:
        program += ["--base-url", args.base_url]
    return program


async def _run(command: Handler, args: argparse.Namespace, out: Output) -> int:
    # A SIGTERM (docker stop, Kubernetes) stops every command as Ctrl-C
    # does: cancelled, it says how to find its work again, and exits 130. A
    # bulk command stops itself: until its run starts (stdin is read in this
    # task, and a signal taken by the loop would wait for the read to end)
    # the SIGTERM of interrupt_on_sigterm stops it at once, nothing sent.
    if getattr(args, "stops_itself", False):
        return await command(args, out)
    task = asyncio.current_task()
    stopped = asyncio.Event()

    def stop() -> None:
        stopped.set()
        if task is not None:
            task.cancel()

    loop = asyncio.get_running_loop()
    with contextlib.suppress(NotImplementedError, ValueError, RuntimeError):
        loop.add_signal_handler(signal.SIGTERM, stop)
    try:
        return await command(args, out)
    except asyncio.CancelledError:
        if stopped.is_set():
            return EXIT_INTERRUPTED
        raise
    finally:  # (the loop, closing, would leave the default: a kill)
        with contextlib.suppress(NotImplementedError, ValueError, RuntimeError):
            loop.remove_signal_handler(signal.SIGTERM)
        interrupt_on_sigterm()


def _fail(
    parser: argparse.ArgumentParser,
    args: argparse.Namespace,
    exc: Exception,
    code: int,
    *,
    type_name: bool = True,
) -> int:
    if args.debug and not isinstance(exc, UsageError | CommandError):
        traceback.print_exception(exc)  # the same exit code, with the traceback
    message = f"{type(exc).__name__}: {exc}" if type_name else str(exc)
    # Server-given codes and messages are shown escaped (one line, no escapes).
    print(f"{parser.prog}: {printable(message)}", file=sys.stderr)
    return code
