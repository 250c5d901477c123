"""
Retrying and polling, on tenacity (the only module that imports it).

Owns two schedules:

- request retries: exponential backoff with equal jitter,
  ``d = min(wait_max, wait_initial * 2 ** (n - 1))`` then a sleep drawn from
  ``[d / 2, d]``; a ``Retry-After`` hint wins (capped at 60 s); when the next
  sleep would pass the caller's deadline the last error is raised at once;
- polling (``PollPolicy``): the n-th poll of an execution comes
  ``min(wait_max, wait_initial * multiplier ** (n - 1))`` seconds after the
  previous one, scaled by a random factor in ``[1 - jitter, 1 + jitter]``;
  ``poll_loop`` runs a scheduler's ticks as a result-based tenacity retry.

``asyncio.CancelledError`` is a ``BaseException``, and the predicates here
only ever accept the package's own retryable errors or results, so
cancellation is never retried or swallowed.

May import: ``_wire``, ``errors``.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import attrs
import tenacity

from . import errors
from ._wire import MAX_RETRY_AFTER, is_retryable


T = TypeVar("T")
log = logging.getLogger("sequence_async")


@attrs.frozen(kw_only=True)
class RetryPolicy:
    """
    How failed requests are retried.

    Args:
        max_retries: Retries after the first attempt (0 turns retrying off).
        wait_initial: The first backoff step, in seconds.
        wait_max: The largest backoff step, in seconds.
    """

    max_retries: int = 3
    wait_initial: float = 0.5
    wait_max: float = 8.0

    def backoff(self, attempt: int) -> float:
        """
        Return the sleep after failed attempt number *attempt* (from 1).
        """
        step = min(self.wait_max, self.wait_initial * 2 ** (attempt - 1))
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
    """

    wait_initial: float = 1.0
    multiplier: float = 1.5
    wait_max: float = 15.0
    jitter: float = 0.2
    not_visible_grace: float = 30.0

    def delay(self, poll: int) -> float:
        """
        Return the delay before poll number *poll* (from 1).
        """
        step = min(self.wait_max, self.wait_initial * self.multiplier ** (poll - 1))
        return step * random.uniform(1 - self.jitter, 1 + self.jitter)


def _retry_after(exc: BaseException | None) -> float | None:
    if isinstance(exc, errors.RateLimitError) and exc.retry_after is not None:
        return min(exc.retry_after, MAX_RETRY_AFTER)
    return None


async def retry_request(
    send: Callable[[], Awaitable[T]],
    first_error: errors.SequenceError,
    *,
    policy: RetryPolicy,
    deadline: float | None,
    describe: str,
    on_retry_after: Callable[[float], None] | None = None,
) -> T:
    """
    Retry *send* after its first attempt failed with *first_error*.

    The fast path (no failure) never comes here: building the retry machinery
    per call costs tens of microseconds. Attempt 1 ran on the fast path, so
    tenacity's attempt ``n`` is our attempt ``n + 1``.

    Raises:
        errors.SequenceError: The last error, when retries ran out, the error
            is not retryable, or the next sleep would pass *deadline*
            (``time.monotonic()`` seconds).
    """
    waits: dict[int, float] = {}

    def wait_after(attempt: int, exc: BaseException | None) -> float:
        if attempt not in waits:
            hint = _retry_after(exc)
            waits[attempt] = hint if hint is not None else policy.backoff(attempt)
        return waits[attempt]

    def give_up(attempt: int, exc: BaseException | None) -> bool:
        return attempt > policy.max_retries or (
            deadline is not None
            and time.monotonic() + wait_after(attempt, exc) > deadline
        )

    def before_sleep(attempt: int, exc: BaseException | None, sleep: float) -> None:
        hint = _retry_after(exc)
        if hint is not None and on_retry_after is not None:
            on_retry_after(hint)
        log.info(
            "retrying %s after %s (attempt %d, sleeping %.2fs)",
            describe,
            type(exc).__name__,
            attempt,
            sleep,
        )

    if not is_retryable(first_error) or give_up(1, first_error):
        raise first_error
    before_sleep(1, first_error, wait_after(1, first_error))
    await asyncio.sleep(wait_after(1, first_error))

    def exc_of(state: tenacity.RetryCallState) -> BaseException | None:
        return state.outcome.exception() if state.outcome else None

    retrying = tenacity.AsyncRetrying(
        retry=tenacity.retry_if_exception(is_retryable),
        wait=lambda s: wait_after(s.attempt_number + 1, exc_of(s)),
        stop=lambda s: give_up(s.attempt_number + 1, exc_of(s)),
        before_sleep=lambda s: before_sleep(
            s.attempt_number + 1, exc_of(s), s.upcoming_sleep
        ),
        reraise=True,
    )
    return await retrying(send)


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
