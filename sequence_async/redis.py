"""
Many workers, one API key: the rate budget and the polling shared on Redis.

Owns ``RedisCoordinator`` (public; ``pip install "sequence-async[redis]"``;
it also re-exports ``CoordinatorError``) and ``_RedisLink``: every Redis
call, each bounded by a timeout, with the one WARNING of an outage, the
heartbeat (lease renewals, registrations, the count of clients) and the
probe that finds Redis again. This is the only module that imports redis-py
(a ruff rule); the logic on top lives in ``_cluster`` (the shared GCRA) and
``_cluster_polls`` (one poller per rule), the Lua in ``_redis_scripts``.
Valkey works the same, and so does Redis Cluster (``RedisCluster``: every
script's keys share one ``{hash tag}``, so one slot).

May import: ``_checks``, ``_ids``, ``_ratelimit``, ``_waits``,
``_cluster``, ``_cluster_polls``, ``_redis_scripts``; redis-py.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any, Self

import redis.asyncio
import redis.exceptions

from ._checks import check_number, check_text
from ._cluster import ClusterLimiter, CoordinatorError, Keys, Unavailable, text, times
from ._cluster_polls import ClusterPolls
from ._ids import new_id
from ._ratelimit import Limiter
from ._redis_scripts import MEMBERS
from ._waits import PollShare


__all__ = ["CoordinatorError", "RedisCoordinator"]

log = logging.getLogger("sequence_async")
MAX_CALLS = 32
# Refusals at first contact: a clear error (checked before _AWAY's ConnectionError).
_WRONG = (
    redis.exceptions.AuthenticationError,
    redis.exceptions.AuthorizationError,
    redis.exceptions.InvalidResponse,
    redis.exceptions.ResponseError,
)
# Failures that mean "Redis is away for now": fall back and keep trying
# (the first two, though a ConnectionError or a ResponseError).
_AWAY = (
    redis.exceptions.BusyLoadingError,
    redis.exceptions.ReadOnlyError,
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    OSError,
    TimeoutError,
)


class RedisCoordinator:
    """
    Share rate budgets and polling between processes through Redis or Valkey.

    Every ``SequenceClient(coordinator=...)`` of the same API key on the same
    Redis (in any process, on any machine) shares one budget of its
    ``rate_limit`` requests per minute, pauses as a whole on a 429, and has
    one process poll each rule for everyone. Redis keys derive from a hash
    of the API key (never the key), carry a ``{hash tag}``, and all expire.

    When Redis is down, slow or unreachable, each client falls back to an
    in-process limiter (the budget split between the clients seen on the key
    at the last heartbeat) and polls on its own; one WARNING says so, and
    Redis is tried again every *retry* seconds.

    Args:
        client: A ``redis.asyncio.Redis``, or a ``redis.asyncio.RedisCluster``
            for Redis Cluster; used as is, never closed.
        prefix: The first part of every key name.
        timeout: Seconds any Redis call may take.
        lease: Seconds a rule's lease lasts unrenewed: a dead leader is
            replaced within this.
        retry: Seconds between attempts to reach Redis during a fallback.
        headroom: Tokens of the burst that polls leave to other requests
            (default half the burst).
    """

    def __init__(
        self,
        client: redis.asyncio.Redis | redis.asyncio.RedisCluster,
        *,
        prefix: str = "sequence-async",
        timeout: float = 1.0,
        lease: float = 10.0,
        retry: float = 1.0,
        headroom: float | None = None,
    ) -> None:
        if not isinstance(client, redis.asyncio.Redis | redis.asyncio.RedisCluster):
            raise TypeError("client must be a redis.asyncio.Redis or RedisCluster")
        if not check_text(prefix, "prefix", allow_none=False) or {"{", "}"} & set(
            prefix
        ):
            raise ValueError("prefix must be a non-empty string without braces")
        self._client = client
        self._prefix = prefix
        self.timeout, self.lease, self.retry = times(timeout, lease, retry)
        self._headroom = check_number(headroom, "headroom", allow_none=True)
        self._owned = False
        self._links: set[_RedisLink] = set()
        # At most this many calls at once (the stream readers aside): a crowd
        # of waiting requests queues here, not in the connection pool, which
        # would refuse it (redis-py's pools hold 100 by default).
        self.gate = asyncio.Semaphore(MAX_CALLS)

    @classmethod
    def from_url(cls, url: str, *, cluster: bool = False, **options: Any) -> Self:
        """
        Connect (lazily) to the Redis of *url*; the coordinator owns that client.

        Args:
            url: ``redis://``, ``rediss://`` or ``unix://``.
            cluster: *url* is a node of a Redis Cluster (not ``unix://``).
            **options: As for the constructor.

        Raises:
            CoordinatorError: *url* is not a Redis URL.
        """
        timeout = options.get("timeout", 1.0)
        try:
            # No socket_timeout: it would cut the stream's blocking reads;
            # every call is bounded by asyncio.timeout instead.
            kind = redis.asyncio.RedisCluster if cluster else redis.asyncio.Redis
            client = kind.from_url(
                url,
                socket_connect_timeout=timeout,
                socket_timeout=None,
                decode_responses=True,
            )
        except (ValueError, TypeError) as exc:
            scheme = str(url).partition(":")[0][:16]  # (urlsplit may raise too)
            raise CoordinatorError(  # (redis-py's text may quote the password)
                f"not a usable Redis URL (scheme {scheme!r}, {type(exc).__name__}); "
                "expected redis://HOST:PORT/DB, rediss://... or unix://PATH"
            ) from None
        coordinator = cls(client, **options)
        coordinator._owned = True
        return coordinator

    def __repr__(self) -> str:
        """Where Redis is (never its password), how many clients are attached."""
        if isinstance(self._client, redis.asyncio.RedisCluster):
            where = "cluster " + ",".join(n.name for n in self._client.startup_nodes)
        else:
            kwargs = self._client.connection_pool.connection_kwargs
            where = kwargs.get("path") or f"{kwargs.get('host')}:{kwargs.get('port')}"
        return f"<RedisCoordinator {where} ({len(self._links)} clients)>"

    def attach(
        self, key_digest: str, *, rate_limit: float | None, burst: float | None
    ) -> tuple[Limiter | None, PollShare]:
        """One client's limiter and poll share (``SequenceClient`` calls it)."""
        keys = Keys(self._prefix, key_digest)
        link = _RedisLink(self, self._client, keys, self._detach)
        limiter = (
            ClusterLimiter(link, keys, rate_limit, burst=burst, headroom=self._headroom)
            if rate_limit is not None
            else None
        )
        self._links.add(link)  # (once nothing can refuse the settings)
        return limiter, ClusterPolls(link, keys, link.token, lease=self.lease)

    async def _detach(self, link: _RedisLink) -> None:
        self._links.discard(link)
        if self._owned and not self._links:
            await self._client.aclose()  # reconnects if attached again

    async def aclose(self) -> None:
        """Close the Redis client if this coordinator made it (``from_url``)."""
        if self._owned:
            await self._client.aclose()

    async def __aenter__(self) -> Self:
        """Return the coordinator; leaving the block closes it (``aclose``)."""
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        """Close the coordinator."""
        await self.aclose()


class _RedisLink:
    # One client's access to Redis: a ``_cluster.Link``.

    def __init__(
        self,
        coordinator: RedisCoordinator,
        client: redis.asyncio.Redis | redis.asyncio.RedisCluster,
        keys: Keys,
        detach: Callable[[_RedisLink], Awaitable[None]],
    ) -> None:
        self._coordinator = coordinator
        self._redis = client
        self._detach = detach
        self._keys = keys
        self.token = new_id()
        self._healthy = True
        self._verified = False
        self._refused = False  # a command refused: no probe, no sharing
        self._bad: CoordinatorError | None = None
        self._peers = 1
        self._beats: list[Callable[[], Coroutine[Any, Any, None]]] = []
        self._recovers: list[Callable[[], None]] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._heart: asyncio.Task[None] | None = None
        self._scripts: dict[str, Any] = {}
        self._closed = False

    @property
    def healthy(self) -> bool:
        return self._healthy

    @property
    def peers(self) -> int:
        return self._peers

    async def check(self) -> None:
        if self._bad is not None:
            raise self._bad
        if self._heart is None and not self._closed:
            self._heart = asyncio.create_task(self._heartbeat())
        if self._verified or not self._healthy:
            return
        try:
            await self._call(self._redis.ping)
        except Unavailable:
            if self._bad is not None:
                raise self._bad from None
            return
        self._verified = True

    async def _call(
        self,
        make: Callable[[], Awaitable[Any]],
        *,
        extra: float = 0.0,
        probe: bool = False,
    ) -> Any:
        if self._bad is not None:  # only check() raises it, for the caller
            raise Unavailable(str(self._bad))
        # Queueing at the gate is ours, not Redis's: outside the timeout.
        async with contextlib.nullcontext() if extra else self._coordinator.gate:
            if not (self._healthy or probe):
                raise Unavailable("Redis is unreachable")
            return await self._bounded(make, extra)

    async def _bounded(self, make: Callable[[], Awaitable[Any]], extra: float) -> Any:
        try:
            async with asyncio.timeout(self._coordinator.timeout + extra):
                return text(await make())
        # Not only RedisError: redis-py's parser raises a plain ValueError
        # (IndexError, ...) on a reply that is not RESP.
        except Exception as exc:  # noqa: BLE001 (a reply we cannot read is "wrong")
            wrong = not isinstance(exc, _AWAY[:2]) and (
                isinstance(exc, _WRONG)
                or not isinstance(exc, (redis.exceptions.RedisError, *_AWAY))
            )
            # A command refused (NOPERM, or in a script) is no outage: a PING
            # would find Redis again and the fallback flap. For good, then.
            self._refused = self._refused or (
                isinstance(exc, redis.exceptions.NoPermissionError)
                or str(exc).startswith("ACL failure")
            )
            if wrong and not self._verified:  # (no fallback, no WARNING)
                self._healthy = False
                self._bad = CoordinatorError(
                    "the coordinator's server refused us or does not speak "
                    f"the Redis protocol: {type(exc).__name__}: {exc}"
                )
            self._away(exc)
            raise Unavailable(str(exc)) from None

    def _away(self, exc: BaseException) -> None:
        if self._healthy:
            self._healthy = False
            log.warning(
                "Redis is unreachable (%s%s); this client falls back to its "
                "own rate limiter (its share of the budget) and polls alone, %s",
                *(type(exc).__name__, f": {exc}" if str(exc) else "", self._again()),
            )

    def _again(self) -> str:
        if self._refused:
            return "until it restarts (give its Redis user that command)"
        return f"and tries Redis again every {self._coordinator.retry:g} s"

    async def run(self, script: str, keys: Sequence[str], args: Sequence[Any]) -> Any:
        registered = self._scripts.get(script)
        if registered is None:
            registered = self._scripts[script] = self._redis.register_script(script)
        return await self._call(lambda: registered(keys=list(keys), args=list(args)))

    async def get_many(self, keys: Sequence[str]) -> list[str | None]:
        values: list[str | None] = await self._call(
            lambda: self._redis.mget(list(keys))
        )
        return values

    async def drop_fields(self, key: str, fields: Sequence[str]) -> None:
        await self._call(lambda: self._redis.hdel(key, *fields))

    async def last_id(self, stream: str) -> str:
        newest = await self._call(lambda: self._redis.xrevrange(stream, count=1))
        return str(newest[0][0]) if newest else "0-0"

    async def read(
        self, stream: str, after: str, block: float
    ) -> list[tuple[str, dict[str, str]]]:
        answer = await self._call(
            lambda: self._redis.xread(
                {stream: after}, count=500, block=int(block * 1000)
            ),
            extra=block,
        )
        if not answer:
            return []
        if isinstance(answer, dict):  # RESP3
            answer = list(answer.items())
        return [(str(i), dict(f)) for _, entries in answer for i, f in entries]

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        if self._closed:
            coro.close()
            return
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def every_beat(self, callback: Callable[[], Coroutine[Any, Any, None]]) -> None:
        self._beats.append(callback)

    def on_recover(self, callback: Callable[[], None]) -> None:
        self._recovers.append(callback)

    async def _heartbeat(self) -> None:
        # Every third of a lease while Redis answers (renew leases, refresh
        # registrations, count the clients); every `retry` seconds while it
        # does not, until it answers again.
        coordinator = self._coordinator
        while not self._closed:
            if not self._healthy:
                if self._refused:
                    return  # a PING would pass, and the next command fail
                await asyncio.sleep(coordinator.retry)
                try:
                    await self._drop_idle()
                    await self._call(self._redis.ping, probe=True)
                except Unavailable:
                    if self._bad is not None:
                        return  # not a Redis server: no use trying again
                    continue
                self._healthy = self._verified = True
                log.info("Redis answers again; this client shares its budget again")
                for recovered in self._recovers:
                    recovered()
            try:
                members = await self.run(
                    MEMBERS,
                    [self._keys.members],
                    [self.token, max(1, int(coordinator.lease * 3000))],
                )
                self._peers = max(1, int(members))
                for beat in self._beats:
                    await beat()
            except Unavailable:
                pass
            except Exception:  # bad data in Redis: never the end of the heartbeat
                log.exception("a heartbeat of the Redis coordinator failed")
            if self._healthy:
                await asyncio.sleep(coordinator.lease / 3)

    async def _drop_idle(self) -> None:
        # Redis away, the pool's idle connections are dead: each would fail.
        client = self._redis
        with contextlib.suppress(Exception):
            if isinstance(client, redis.asyncio.RedisCluster):
                await asyncio.gather(*(n.disconnect() for n in client.get_nodes()))
            else:
                await client.connection_pool.disconnect(inuse_connections=False)

    async def aclose(self) -> None:
        self._closed = True
        tasks = list(self._tasks)
        if self._heart is not None:
            tasks.append(self._heart)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)
        await self._detach(self)
