"""
One rate budget per API key across processes, over a link to shared state.

Owns ``Link`` (what the cluster modules need of the shared store; the Redis
one is in ``sequence_async.redis``, the only home of redis-py), ``Keys`` (the
names of one key's shared state: a digest of the API key in a ``{hash tag}``,
never the key), ``ClusterLimiter`` (a reservation GCRA on the store's clock,
with polls leaving headroom to triggers, a 429 pause shared by every process
and capped like every server delay, and an in-process ``TokenBucket`` to
fall back on while the store cannot be reached), ``CoordinatorError``
(public as ``sequence_async.redis.CoordinatorError``) and ``text`` (a
store's answer, bytes decoded).

May import: ``errors``, ``_checks``, ``_ratelimit``, ``_wire``, ``_redis_scripts``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, Protocol

import attrs

from . import _redis_scripts as scripts
from . import errors
from ._checks import check_number
from ._ratelimit import MIN_RATE, Priority, TokenBucket, check_rate
from ._wire import cap_delay


DAY = 86_400.0  # the longest lease, retry or call a coordinator takes (seconds)
# The longest burst window (microseconds, the store clock's unit): about 71
# years, so that the GCRA's sums stay integers a Lua number holds exactly.
MAX_TOLERANCE_US = 2**51
MIN_LEASE = 0.1  # the shortest lease or retry (seconds)


def times(timeout: object, lease: object, retry: object) -> tuple[float, float, float]:
    """
    Return a coordinator's *timeout*, *lease* and *retry*, checked.

    Each is seconds, at most a day; a lease or retry under ``MIN_LEASE``
    would beat on Redis without rest, and a timeout under a millisecond
    would call every answer an outage.

    Raises:
        TypeError, ValueError: One is not.
    """
    checked = []
    for value, name, floor in (
        (timeout, "timeout", 0.001),
        (lease, "lease", MIN_LEASE),
        (retry, "retry", MIN_LEASE),
    ):
        number = check_number(value, name, maximum=DAY) or 0.0
        if number < floor:
            raise ValueError(f"{name} must be at least {floor:g} seconds")
        checked.append(number)
    return checked[0], checked[1], checked[2]


class CoordinatorError(errors.SequenceError, ValueError):
    """
    Redis cannot serve as the coordinator: a bad URL, or not a Redis server.
    """


class Unavailable(Exception):  # noqa: N818 (internal signal, never raised to users)
    """
    The shared store did not answer in time (or is known to be down).
    """


class Link(Protocol):
    """
    One client's bounded, failure-aware access to the shared store.

    Every call is bounded by the link's timeout and raises ``Unavailable``
    on any failure (at once while the store is known to be down); the first
    failure of an outage logs the one WARNING, and the link keeps trying the
    store in the background.
    """

    @property
    def healthy(self) -> bool:
        """Whether the last call (or probe) reached the store."""

    @property
    def peers(self) -> int:
        """Clients seen on this API key at the last heartbeat (at least 1)."""

    async def check(self) -> None:
        """
        Make sure the store speaks the right protocol (once; raises the error).
        """

    async def run(self, script: str, keys: Sequence[str], args: Sequence[Any]) -> Any:
        """Run a script of ``_redis_scripts``."""

    async def get_many(self, keys: Sequence[str]) -> list[str | None]:
        """Read string keys."""

    async def drop_fields(self, key: str, fields: Sequence[str]) -> None:
        """Delete hash fields."""

    async def last_id(self, stream: str) -> str:
        """The id of the newest entry of *stream* (``0-0`` when empty)."""

    async def read(
        self, stream: str, after: str, block: float
    ) -> list[tuple[str, dict[str, str]]]:
        """Entries of *stream* after *after*, waiting up to *block* seconds."""

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run *coro* in the background until it ends or the link closes."""

    def every_beat(self, callback: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """Run *callback* at each heartbeat while the store answers."""

    def on_recover(self, callback: Callable[[], None]) -> None:
        """Call *callback* when the store answers again after an outage."""

    async def aclose(self) -> None:
        """Stop background work and detach from the coordinator."""


@attrs.frozen
class Keys:
    """
    The names of one API key's shared state, all in one ``{hash tag}`` slot.
    """

    prefix: str
    digest: str

    def _name(self, *parts: str) -> str:
        return ":".join((self.prefix, "{" + self.digest + "}", *parts))

    @property
    def budget(self) -> str:
        """The GCRA's theoretical arrival time (microseconds, store clock)."""
        return self._name("budget")

    @property
    def pause(self) -> str:
        """Until when nobody is admitted (a 429's ``Retry-After``)."""
        return self._name("pause")

    @property
    def members(self) -> str:
        """The clients heartbeating on this key."""
        return self._name("members")

    @property
    def events(self) -> str:
        """The stream of registrations, outcomes and freed leases."""
        return self._name("events")

    def lease(self, rule_id: str) -> str:
        """Who polls *rule_id*."""
        return self._name("lease", rule_id)

    def pending(self, rule_id: str) -> str:
        """The pending waits on *rule_id*, by execution id."""
        return self._name("pending", rule_id)

    def outcome(self, execution_id: str) -> str:
        """The stored outcome of an execution."""
        return self._name("outcome", execution_id)


class ClusterLimiter:
    """
    A rate budget shared by every client of one API key (a ``Limiter``).

    Each request reserves the next slot of the budget in one script call and
    sleeps until it. Polls reserve only while *headroom* tokens of the burst
    stay free, so a trigger never queues behind them.

    Args:
        link: The shared store.
        keys: The API key's names.
        per_minute: Requests per minute, for all clients of the key.
        burst: Requests that may go at once (default a tenth of a minute's).
        headroom: Tokens of the burst polls leave to other requests
            (default half of the rest of the burst).
    """

    def __init__(
        self,
        link: Link,
        keys: Keys,
        per_minute: float,
        *,
        burst: float | None = None,
        headroom: float | None = None,
    ) -> None:
        self._per_minute, self._burst = check_rate(per_minute, burst)
        self._link = link
        self._keys = keys
        spare = self._burst - 1
        room = spare / 2 if headroom is None else min(max(0.0, headroom), spare)
        self._interval = 60_000_000 / self._per_minute
        self._tolerance = int(min(spare * self._interval, MAX_TOLERANCE_US))
        self._poll_tolerance = int(
            min((spare - room) * self._interval, MAX_TOLERANCE_US)
        )
        self._blocked_until = 0.0
        self._closed = False
        self._closing: asyncio.Future[None] | None = None
        self._fallback: TokenBucket | None = None
        self._fallback_peers = 0
        self._retired: list[TokenBucket] = []
        # By burst tolerance, while a reservation call is in flight: the
        # requests that wait to go in the next call.
        self._gathering: dict[int, list[asyncio.Future[int]]] = {}
        self._calls: set[asyncio.Task[None]] = set()

    def __repr__(self) -> str:
        return f"<ClusterLimiter {self._per_minute:g}/min for {self._keys.budget}>"

    async def acquire(self, priority: Priority = Priority.OTHER) -> None:
        """
        Wait for this request's slot of the shared budget.

        Raises:
            errors.ClientClosedError: The client was closed meanwhile.
        """
        if self._closed:
            raise errors.ClientClosedError("this SequenceClient is closed")
        link = self._link
        await link.check()
        if link.healthy:
            tolerance = (
                self._poll_tolerance if priority is Priority.POLL else self._tolerance
            )
            try:
                wait = await self._reserve(tolerance)
            except Unavailable:
                pass
            else:
                seconds = max(
                    int(wait) / 1_000_000, self._blocked_until - time.monotonic()
                )
                if seconds > 0:
                    await self._sleep(seconds)
                return
        await self._local().acquire(priority)

    async def _reserve(self, tolerance: int) -> int:
        # The microseconds to wait for a slot. A request alone reserves at
        # once; those that come while a reservation of their priority is in
        # flight gather and go together in the next call: a burst (a bulk
        # run's first triggers) costs a round trip or two on one or two
        # connections, not a crowd of calls that each open a connection.
        batch = self._gathering.get(tolerance)
        if batch is not None:
            slot: asyncio.Future[int] = asyncio.get_running_loop().create_future()
            batch.append(slot)
            return await slot
        self._gathering[tolerance] = []
        try:
            waits = await self._link.run(
                scripts.RESERVE,
                [self._keys.budget, self._keys.pause],
                [int(self._interval), tolerance, 1],
            )
        finally:
            self._flush(tolerance)
        return ints(waits, 1)[0]

    def _flush(self, tolerance: int) -> None:
        # The call in flight ended: send what gathered meanwhile, if anything.
        batch = self._gathering.pop(tolerance)
        if batch:
            self._gathering[tolerance] = []
            task = asyncio.create_task(self._call(tolerance, batch))
            self._calls.add(task)
            task.add_done_callback(self._calls.discard)

    async def _call(self, tolerance: int, batch: list[asyncio.Future[int]]) -> None:
        failed: Exception = Unavailable("the reservation was not made")
        try:
            waits = await self._link.run(
                scripts.RESERVE,
                [self._keys.budget, self._keys.pause],
                [int(self._interval), tolerance, len(batch)],
            )
            for slot, wait in zip(batch, ints(waits, len(batch)), strict=True):
                if not slot.done():
                    slot.set_result(wait)
        except Unavailable as exc:
            failed = exc
        finally:
            for slot in batch:  # each falls back to the in-process bucket
                if not slot.done():
                    slot.set_exception(failed)
            self._flush(tolerance)

    def _local(self) -> TokenBucket:
        # While the store is away each client takes its share of the budget,
        # split between the clients seen at the last heartbeat.
        peers = max(1, self._link.peers)
        if self._fallback is None or self._fallback_peers != peers:
            # A bucket's rate is fixed: a new one for the new split (requests
            # queued in the old one still get their turn there).
            if self._fallback is not None:
                self._retired.append(self._fallback)
            self._fallback = TokenBucket(  # (no slower than a bucket may go)
                max(MIN_RATE, self._per_minute / peers),
                burst=max(1.0, self._burst / peers),
            )
            self._fallback_peers = peers
            pause = self._blocked_until - time.monotonic()
            if pause > 0:
                self._fallback.drain(pause)
        return self._fallback

    async def _sleep(self, seconds: float) -> None:
        if self._closing is None:
            self._closing = asyncio.get_running_loop().create_future()
        await asyncio.wait([self._closing], timeout=seconds)
        if self._closed:
            raise errors.ClientClosedError("this SequenceClient was closed")

    def drain(self, seconds: float) -> None:
        """
        Pause every client of the key for *seconds* (capped): a 429.

        This client pauses at once; the others at their next reservation,
        one round trip later.
        """
        pause = cap_delay(seconds)
        if pause is None:
            return
        self._blocked_until = max(self._blocked_until, time.monotonic() + pause)
        if self._fallback is not None:
            self._fallback.drain(pause)
        if self._link.healthy:
            self._link.spawn(self._drain_shared(pause))

    async def _drain_shared(self, pause: float) -> None:
        with contextlib.suppress(Unavailable):
            await self._link.run(
                scripts.DRAIN,
                [self._keys.budget, self._keys.pause],
                [int(pause * 1_000_000)],
            )

    def close(self) -> None:
        """
        Fail every sleeping request with ``ClientClosedError``; admit no more.
        """
        self._closed = True
        if self._closing is not None and not self._closing.done():
            self._closing.set_result(None)
        for bucket in (*self._retired, self._fallback):
            if bucket is not None:
                bucket.close()


def text(value: Any) -> Any:
    """
    Return the store's answer *value*, bytes decoded (in lists and dicts too).

    A client made by the caller may not decode responses.
    """
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, list | tuple):
        return [text(v) for v in value]
    if isinstance(value, dict):
        return {text(k): text(v) for k, v in value.items()}
    return value


def ints(answer: object, count: int | None = None) -> list[int]:
    """
    A script's answer as integers (*count* of them, if given).

    Raises:
        Unavailable: Anything else (a store that is not Redis, or not ours):
            the caller falls back, as when the store is away.
    """
    found: list[int] | None = None
    if isinstance(answer, list) and count in (None, len(answer)):
        with contextlib.suppress(TypeError, ValueError):
            found = [int(value) for value in answer]
    if found is None:
        raise Unavailable(f"the store answered {str(answer)[:60]!r}")
    return found
