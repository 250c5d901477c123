"""
Retrying and polling; the home of tenacity, which runs the poll loops.

Owns two schedules:

- request retries (``RetryPolicy``), a plain loop: exponential backoff with
  equal jitter, ``d = min(wait_max, wait_initial * 2 ** (n - 1))`` then a
  sleep drawn from ``[d / 2, d]``; a ``Retry-After`` hint wins (capped in
  ``_wire``); when the next sleep would pass the caller's deadline the last
  error is raised at once;
- polling (``PollPolicy``): the n-th poll of an execution comes
  ``min(wait_max, wait_initial * multiplier ** (n - 1))`` seconds after the
  previous one, scaled by a random factor in ``[1 - jitter, 1 + jitter]``;
  ``poll_loop`` runs a scheduler's ticks as a result-based tenacity retry.

``asyncio.CancelledError`` is a ``BaseException``, and the predicates here
only ever accept the package's own retryable errors or results, so
cancellation is never retried or swallowed.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import TypeVar

import attrs
import tenacity

from . import errors
from ._checks import check_count, check_number
from ._wire import is_retryable


T = TypeVar("T")
log = logging.getLogger("sequence_async")


def _grown(initial: float, factor: float, times: int, cap: float) -> float:
    # min(cap, initial * factor ** times), without overflowing on a long wait
    # (a day of polls is past a float's range at x1.5).
    try:
        return min(cap, initial * factor**times)
    except OverflowError:
        return cap


def _count(_: object, attribute: attrs.Attribute[int], value: object) -> None:
    check_count(value, attribute.name, minimum=0)


def _delay(_: object, attribute: attrs.Attribute[float], value: object) -> None:
    # 0 is a delay too; checked whatever its value, so that 0j or
    # Decimal(0) (equal to 0) is refused here, not at the first retry.
    if check_number(value, attribute.name, minimum=-math.inf) < 0:  # type: ignore[operator]
        raise ValueError(f"{attribute.name} must be 0 or more")


def _positive(_: object, attribute: attrs.Attribute[float], value: object) -> None:
    check_number(value, attribute.name)


def _fraction(_: object, attribute: attrs.Attribute[float], value: object) -> None:
    if not 0 <= check_number(value, attribute.name, minimum=-math.inf) < 1:  # type: ignore[operator]
        raise ValueError(f"{attribute.name} must be in [0, 1)")


@attrs.frozen(kw_only=True)
class RetryPolicy:
    """
    How failed requests are retried.

    Retry ``n`` sleeps a random time in ``[d / 2, d]`` with
    ``d = min(wait_max, wait_initial * 2 ** (n - 1))``, unless the server's
    ``Retry-After`` says otherwise. ``RetryPolicy(wait_initial=0,
    wait_max=0)`` retries without sleeping (for tests).

    Args:
        max_retries: Retries after the first attempt (0 turns retrying off).
        wait_initial: The first backoff step, in seconds.
        wait_max: The largest backoff step, in seconds.

    Raises:
        TypeError, ValueError: A negative, NaN or non-integer setting.
    """

    max_retries: int = attrs.field(default=3, validator=_count)
    wait_initial: float = attrs.field(default=0.5, validator=_delay)
    wait_max: float = attrs.field(default=8.0, validator=_delay)

    def backoff(self, attempt: int) -> float:
        """
        Return the sleep after failed attempt number *attempt* (from 1).
        """
        step = _grown(self.wait_initial, 2.0, attempt - 1, self.wait_max)
        return random.uniform(step / 2, step)


@attrs.frozen(kw_only=True)
class PollPolicy:
    """
    How often an execution is polled while waiting.

    The n-th poll comes ``min(wait_max, wait_initial * multiplier ** (n - 1))``
    seconds after the previous one (the first that long after the trigger),
    scaled by a random factor in ``[1 - jitter, 1 + jitter]``.

    Args:
        wait_initial: Delay before the first poll, in seconds.
        multiplier: Growth of the delay from one poll to the next.
        wait_max: The largest delay, in seconds.
        jitter: Relative jitter (0.2 = plus or minus 20%).
        not_visible_grace: Seconds after the trigger during which a 404 means
            "not visible yet" rather than "no such execution".
        settlement_interval: Seconds between polls of an execution whose
            rule has run and whose transfers only have to settle
            (``in_progress``, ``transfers_pending > 0``, no
            ``next_attempt_at``); ACH settlement can take days.
    """

    wait_initial: float = attrs.field(default=1.0, validator=_positive)
    multiplier: float = attrs.field(default=1.5, validator=_positive)
    wait_max: float = attrs.field(default=15.0, validator=_positive)
    jitter: float = attrs.field(default=0.2, validator=_fraction)
    not_visible_grace: float = attrs.field(default=30.0, validator=_delay)
    settlement_interval: float = attrs.field(default=600.0, validator=_positive)

    def delay(self, poll: int) -> float:
        """
        Return the delay before poll number *poll* (from 1).
        """
        step = _grown(self.wait_initial, self.multiplier, poll - 1, self.wait_max)
        return step * random.uniform(1 - self.jitter, 1 + self.jitter)


def resolve_retry(
    retry: RetryPolicy | None,
    max_retries: int | None,
    *,
    base: RetryPolicy | None = None,
) -> RetryPolicy:
    if retry is not None:
        if not isinstance(retry, RetryPolicy):
            raise TypeError("retry must be a RetryPolicy")
        return retry
    policy = base or RetryPolicy()
    if max_retries is None:
        return policy
    return RetryPolicy(
        max_retries=max_retries,  # checked by RetryPolicy
        wait_initial=policy.wait_initial,
        wait_max=policy.wait_max,
    )


def check_poll(poll: PollPolicy | None) -> PollPolicy | None:
    """
    Return *poll* when it is a ``PollPolicy`` or ``None``, else raise TypeError.
    """
    if poll is not None and not isinstance(poll, PollPolicy):
        raise TypeError("poll must be a PollPolicy")
    return poll


async def retry_request(
    send: Callable[[], Awaitable[T]],
    first_error: errors.SequenceError,
    *,
    policy: RetryPolicy,
    deadline: float | None,
    describe: str,
    on_retry: Callable[[Exception, float], Awaitable[None]] | None = None,
    fields: Mapping[str, object] | None = None,
) -> T:
    """
    Retry *send* after its first attempt failed with *first_error*.

    The fast path (no failure) never comes here. Before retry ``n`` the loop
    sleeps the server's ``Retry-After`` (already capped in ``_wire``) or
    ``policy.backoff(n)``; it gives up at once when the error is not
    retryable, when retries run out, or when the sleep would pass *deadline*
    (``time.monotonic()`` seconds). Each retry's INFO record carries
    *fields* (the call's) and the failed attempt's ``attempt`` and
    ``status`` as attributes.

    Raises:
        errors.SequenceError: The last error.
    """
    error = first_error
    for retry in range(1, policy.max_retries + 1):
        if not is_retryable(error):
            break
        hint = error.retry_after if isinstance(error, errors.APIStatusError) else None
        delay = hint if hint is not None else policy.backoff(retry)
        if deadline is not None and time.monotonic() + delay > deadline:
            break
        log.info(
            "retrying %s after %s (retry %d, sleeping %.2fs)",
            describe,
            type(error).__name__,
            retry,
            delay,
            extra={
                **(fields or {}),
                "status": getattr(error, "status", None),
                "attempt": retry,  # the attempt that failed
                "retry": retry,
                "delay": delay,
            },
        )
        if on_retry is not None:
            await on_retry(error, delay)
        await asyncio.sleep(delay)
        try:
            return await send()
        except errors.SequenceError as exc:
            error = exc
    raise error


async def poll_loop(
    tick: Callable[[], Awaitable[bool]],
    *,
    wait: Callable[[], float],
    sleep: Callable[[float], Awaitable[None]],
) -> None:
    """
    Call *tick* until it returns false, sleeping ``wait()`` seconds between.

    Result-based retry: a tick's result says whether anything is still
    pending. *wait* is asked afresh before every sleep (the schedule belongs
    to the caller's waiters), and *sleep* may end early when the caller has
    news. There is no stop: each waiter bounds its own wait with a deadline.
    """
    retrying = tenacity.AsyncRetrying(
        retry=tenacity.retry_if_result(bool),
        wait=lambda _: wait(),
        stop=tenacity.stop_never,
        sleep=sleep,
    )
    await retrying(tick)
