"""
The client-side token bucket that keeps a client under the API's rate limit.

Owns request admission: ``rate`` requests per minute with a small burst,
shared by every request of one client, triggers served before other calls and
polls, yet every fourth contested token kept for a waiting poll (so waits are
never starved by a long bulk run), and a drain until ``Retry-After`` when the
server answers 429, capped like every server-given delay. No background task:
waiters are woken by one timer handle at a time.

``Limiter`` is what the request path needs of any limiter: this bucket, or
the one a coordinator shares between processes (``sequence_async.redis``).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import time
from collections import deque
from collections.abc import Callable
from typing import Protocol

from . import errors
from ._checks import check_number
from ._wire import cap_delay


# When polls wait behind other requests, every POLL_SHARE-th token goes to a
# poll: triggers still come first, but waits keep moving.
POLL_SHARE = 4
# The slowest rate a limiter takes: one request a day (a slower one would
# hold the second request for ever, as a hang). The largest burst.
MIN_RATE = 1 / 1440
MAX_BURST = 1e9


def check_rate(per_minute: object, burst: object) -> tuple[float, float]:
    """
    Return ``rate_limit`` and the burst it allows (default a tenth of it).

    Raises:
        TypeError: Not numbers.
        ValueError: A rate below one request a day, or a burst that is not
            a finite number above 0 and at most ``MAX_BURST``.
    """
    rate = check_number(per_minute, "rate_limit")
    if rate is None or rate < MIN_RATE * (1 - 1e-9):  # (1/24/60 is one ulp under)
        raise ValueError("rate_limit must be at least one request a day (1/1440)")
    given = check_number(burst, "rate_limit_burst", allow_none=True, maximum=MAX_BURST)
    return rate, min(MAX_BURST, max(1.0, given if given is not None else rate / 10))


class Priority(enum.IntEnum):
    """
    Who is served first when tokens are short (lower first).
    """

    TRIGGER = 0
    OTHER = 1
    POLL = 2


class Limiter(Protocol):
    """
    Request admission, as ``Requester`` uses it.
    """

    async def acquire(self, priority: Priority = Priority.OTHER) -> None:
        """Wait until a request of *priority* may go out."""

    def drain(self, seconds: float) -> None:
        """Admit nothing for *seconds* (capped): the server said 429."""

    def close(self) -> None:
        """Fail every queued request with ``ClientClosedError``; admit no more."""


class TokenBucket:
    """
    An asyncio token bucket with priorities.

    Args:
        per_minute: Sustained requests per minute.
        burst: Tokens that may be spent at once; default a tenth of a
            minute's worth, so no 60-second window ever sees much more than
            *per_minute* requests.
        clock: Monotonic seconds (injectable for tests).
    """

    __slots__ = (
        "_blocked_until",
        "_burst",
        "_clock",
        "_closed",
        "_queues",
        "_rate",
        "_since_poll",
        "_timer",
        "_tokens",
        "_updated",
    )

    def __init__(
        self,
        per_minute: float,
        *,
        burst: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        per_minute, self._burst = check_rate(per_minute, burst)
        self._rate = per_minute / 60.0
        self._closed = False
        self._since_poll = 0
        self._clock = clock
        self._tokens = self._burst
        self._updated = clock()
        self._blocked_until = 0.0
        self._queues: tuple[deque[asyncio.Future[None]], ...] = tuple(
            deque() for _ in Priority
        )
        self._timer: asyncio.TimerHandle | None = None

    def __repr__(self) -> str:
        waiting = sum(len(q) for q in self._queues)
        return f"<TokenBucket {self._rate * 60:g}/min, {waiting} waiting>"

    def _refill(self, now: float) -> None:
        self._tokens = min(
            self._burst, self._tokens + (now - self._updated) * self._rate
        )
        self._updated = now

    async def acquire(self, priority: Priority = Priority.OTHER) -> None:
        """
        Wait for a token; cancelling the wait gives nothing up.

        Raises:
            errors.ClientClosedError: The limiter was closed meanwhile.
        """
        if self._closed:
            raise errors.ClientClosedError("this SequenceClient is closed")
        now = self._clock()
        self._refill(now)
        if self._tokens >= 1 and now >= self._blocked_until and not any(self._queues):
            self._tokens -= 1
            return
        future = asyncio.get_running_loop().create_future()
        self._queues[priority].append(future)
        self._schedule(now)
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                self._tokens += 1  # granted just as we were cancelled: give it back
            else:
                with contextlib.suppress(ValueError):  # _wake may have dropped it
                    self._queues[priority].remove(future)
            self._schedule(self._clock())
            raise

    def drain(self, seconds: float) -> None:
        """
        Admit nothing for *seconds* (the server said 429 with ``Retry-After``).

        The pause is capped (``_wire.cap_delay``): no answer can block the
        client for longer than a minute.
        """
        now = self._clock()
        self._refill(now)
        self._tokens = 0.0
        pause = cap_delay(seconds)
        if pause is not None:
            self._blocked_until = max(self._blocked_until, now + pause)

    def close(self) -> None:
        """
        Fail every queued request with ``ClientClosedError``; admit no more.
        """
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for queue in self._queues:
            while queue:
                future = queue.popleft()
                if not future.done():
                    future.set_exception(
                        errors.ClientClosedError("this SequenceClient was closed")
                    )

    def _schedule(self, now: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not any(self._queues):
            return
        ready_at = max(
            self._blocked_until, now + max(0.0, 1 - self._tokens) / self._rate
        )
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(max(0.0, ready_at - now), self._wake)

    def _wake(self) -> None:
        self._timer = None
        now = self._clock()
        self._refill(now)
        while self._tokens >= 1 and now >= self._blocked_until:
            queue = self._next_queue()
            if queue is None:
                break
            future = queue.popleft()
            if future.done():
                continue
            self._tokens -= 1
            self._since_poll = (
                0 if queue is self._queues[Priority.POLL] else (self._since_poll + 1)
            )
            future.set_result(None)
        self._schedule(now)

    def _next_queue(self) -> deque[asyncio.Future[None]] | None:
        polls = self._queues[Priority.POLL]
        if polls and self._since_poll >= POLL_SHARE - 1:
            return polls
        return next((queue for queue in self._queues if queue), None)
