"""
What a client needs to share its rate budget and polls with other processes.

Owns ``Coordinator`` (the protocol ``sequence_async.redis.RedisCoordinator``
implements), ``key_digest`` (the only name of an API key that leaves the
process) and ``from_environment`` (``SEQUENCE_REDIS_URL``). redis-py is
imported only when that variable asks for it.

May import: ``_ratelimit``, ``_waits``; ``redis`` (the public module) lazily.
"""

from __future__ import annotations

import hashlib
import os
from typing import Protocol

from ._ratelimit import Limiter
from ._waits import PollShare


class Coordinator(Protocol):
    """
    Shares rate budgets and polls between processes (``RedisCoordinator``).
    """

    def attach(
        self, key_digest: str, *, rate_limit: float | None, burst: float | None
    ) -> tuple[Limiter | None, PollShare]:
        """
        Return a limiter and a poll share for one client of the key *key_digest*.

        The limiter is ``None`` when *rate_limit* is; closing the share
        detaches the client.
        """


def key_digest(key: str) -> str:
    """
    Return the name shared state uses for an API key: never the key itself.
    """
    return hashlib.sha256(b"sequence-async\x00" + key.encode()).hexdigest()[:24]


def scoped(digest: str, *, api: str, base_url: str) -> str:
    """
    The name of a key's account on one server: *digest* with the API and URL.

    Clients of one key against two servers (a test server and production,
    say) share no budget, no poll and no stored outcome in Redis.
    """
    return key_digest(f"{digest}\x00{api}\x00{base_url}")


def from_environment() -> Coordinator | None:
    """
    Return a ``RedisCoordinator`` for ``SEQUENCE_REDIS_URL``, if that is set.

    Raises:
        ImportError: It is set, and redis-py is not installed.
        ValueError: It is not a Redis URL.
    """
    url = os.environ.get("SEQUENCE_REDIS_URL")
    if not url:
        return None
    try:
        from .redis import RedisCoordinator  # noqa: PLC0415 (the extra, only when asked)
    except ImportError as exc:
        raise ImportError(
            "SEQUENCE_REDIS_URL is set, which needs redis-py: "
            'pip install "sequence-async[redis]" (".[redis]" in a clone)'
        ) from exc
    return RedisCoordinator.from_url(url)
