"""
What every command shares: exit codes, the usage error, argument types, the client.

Owns the meaning of the exit codes (0 ok, 1 an API or execution failure,
2 a usage error or bad local input, 130 interrupted), the argument types
that reject bad local input before anything is sent, and how a command gets
its client (the key only from ``SEQUENCE_API_KEY``, never from the command
line, which ends up in shell history).
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import signal
import threading
import uuid
from collections.abc import AsyncIterable, Awaitable, Callable
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import sequence_async as sq


if TYPE_CHECKING:
    from ._output import Output


EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
T = TypeVar("T")
MAX_PAGE_SIZE = 100  # the API's largest page (`first`)
# A bulk command's items, each held in memory with its outcome: more is a
# mistake (or a runaway stdin) that would eat the machine before any output.
MAX_ITEMS = 1_000_000
MAX_DEMO_RULES = 10_000

Handler = Callable[[argparse.Namespace, "Output"], Awaitable[int]]
"""A command: parsed arguments and the output in, the exit code out."""


class Subcommands(Protocol):
    """
    What ``add_subparsers()`` returns, as the commands use it.
    """

    def add_parser(self, name: str, **kwargs: Any) -> argparse.ArgumentParser:
        """
        Add the parser of one command.
        """
        ...


class UsageError(Exception):
    """
    A mistake in how the command was called, or bad local input (exit code 2).
    """


class CommandError(Exception):
    """
    A command failed for a reason outside the API, such as a busy port (exit 1).
    """


def make_client(args: argparse.Namespace) -> sq.SequenceClient:
    """
    The client of a command: ``--base-url`` (else ``SEQUENCE_BASE_URL``).

    With ``--redis`` (on the commands that take it) it shares the key's
    budget and polling through that Redis.

    Raises:
        UsageError: ``SEQUENCE_API_KEY`` is not set.
    """
    if not os.environ.get("SEQUENCE_API_KEY"):
        raise UsageError("set SEQUENCE_API_KEY to your API key")
    redis_url: str | None = getattr(args, "redis", None)
    source = "--redis"
    if not redis_url:  # checked here too: a usage error, never a traceback
        redis_url, source = os.environ.get("SEQUENCE_REDIS_URL"), "SEQUENCE_REDIS_URL"
    settings: dict[str, Any] = {
        "base_url": args.base_url,
        "rate_limit": getattr(args, "rate_limit", None),
        "api": getattr(args, "api", None),
    }
    if args.request_timeout is not None:  # else the client's defaults
        settings["timeout"] = args.request_timeout
    if args.max_retries is not None:
        settings["max_retries"] = args.max_retries
    if not redis_url:
        return sq.SequenceClient(**settings)
    try:
        from sequence_async.redis import RedisCoordinator  # noqa: PLC0415
    except ImportError:
        raise UsageError(
            f'{source} needs the redis extra: pip install "sequence-async[redis]"'
            ' (".[redis]" in a clone of the repository)'
        ) from None
    try:
        coordinator = RedisCoordinator.from_url(redis_url)
    except ValueError as exc:  # CoordinatorError included: a bad URL
        raise UsageError(f"{source}: {exc}") from None
    return sq.SequenceClient(coordinator=coordinator, **settings)


def add_coordination(parser: argparse.ArgumentParser) -> None:
    """
    Add ``--redis URL`` and ``--rate-limit N``: share the key's budget.
    """
    parser.add_argument(
        "--redis",
        metavar="URL",
        help="share the rate budget and polling with every worker on this "
        "Redis (default SEQUENCE_REDIS_URL)",
    )
    parser.add_argument(
        "--rate-limit",
        type=positive_float,
        metavar="N",
        help="requests per minute (for all workers, with --redis)",
    )


async def first(items: AsyncIterable[T], limit: int) -> list[T]:
    """
    The first *limit* items; nothing past them is fetched.
    """
    rows: list[T] = []
    if limit <= 0:
        return rows
    async for item in items:
        rows.append(item)
        if len(rows) >= limit:
            break
    return rows


def page_size(limit: int) -> int:
    """
    The page size that fetches *limit* items in the fewest, smallest pages.
    """
    return max(1, min(limit, MAX_PAGE_SIZE))


def _number(text: str, kind: Callable[[str], float]) -> float:
    # ASCII digits only: int() also reads "1_5" (15) and other scripts' digits.
    if not text.isascii() or "_" in text:
        raise argparse.ArgumentTypeError(f"not a number: {text}")
    try:
        value = kind(text)
    except ValueError:
        whole = "" if kind is float else " (a whole number)"
        raise argparse.ArgumentTypeError(f"not a number{whole}: {text}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be finite: {text}")
    return value


def positive_int(text: str) -> int:
    """
    An integer above 0.
    """
    value = int(_number(text, int))
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive: {text}")
    return value


def interrupt_on_sigterm() -> None:
    """
    Make a SIGTERM raise ``KeyboardInterrupt``, as Ctrl-C does.

    Where the event loop does not take it over (``_run``, a bulk run), and
    in the main thread only (signals go nowhere else): a command stopped by
    ``docker stop`` ends as an interrupted one, exit 130.
    """
    with contextlib.suppress(ValueError):  # not the main thread
        signal.signal(signal.SIGTERM, _interrupt)


def settle() -> None:
    """
    From now on a SIGTERM changes nothing: the program's output is written.
    """
    _exiting.set()


_exiting = threading.Event()


def _interrupt(*_: object) -> None:
    if not _exiting.is_set():
        raise KeyboardInterrupt


def at_most(maximum: int) -> Callable[[str], int]:
    """
    The argument type of an integer from 1 to *maximum*.
    """

    def bounded(text: str) -> int:
        value = positive_int(text)
        if value > maximum:
            raise argparse.ArgumentTypeError(f"must be at most {maximum:,}: {text}")
        return value

    return bounded


def cents(text: str) -> int:
    """
    An amount in cents: an integer from 0 to ``MAX_CENTS``.

    Checked here, so that every command refuses it alike (exit 2).
    """
    value = int(_number(text, int))
    if not 0 <= value <= sq.MAX_CENTS:
        raise argparse.ArgumentTypeError(f"must be 0 to {sq.MAX_CENTS} cents: {text}")
    return value


def positive_float(text: str) -> float:
    """
    A finite number above 0 (seconds, for example).
    """
    value = _number(text, float)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive: {text}")
    return value


def non_negative_float(text: str) -> float:
    """
    A finite number, 0 or more.
    """
    value = _number(text, float)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more: {text}")
    return value


def chosen_key(given: str | None) -> str:
    """
    The idempotency key to send: *given*, else a new one.

    Chosen before sending, so that Ctrl-C can say which key to retry with. A
    given one, even "" (an unset shell variable), is the SDK's to check: never
    replaced by a new key, which would pay a re-run twice.
    """
    return str(uuid.uuid4()) if given is None else given


def retries(text: str) -> int:
    """
    A number of retries, 0 to 100.
    """
    value = int(_number(text, int))
    if not 0 <= value <= 100:
        raise argparse.ArgumentTypeError(f"must be from 0 to 100: {text}")
    return value


def fraction(text: str) -> float:
    """
    A share from 0 to 1.
    """
    value = _number(text, float)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"must be from 0 to 1: {text}")
    return value


def port(text: str) -> int:
    """
    A TCP port, 0 (any free one) to 65535.
    """
    value = int(_number(text, int))
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be from 0 to 65535: {text}")
    return value
